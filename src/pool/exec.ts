// PLACEHOLDER until the h-exec branch lands (this session): replaced by the real per-job exec runner.
import { DirQueueError } from '../store/errors.js';
import type { Processor } from './processor.js';

export function checkCommand(command: readonly string[]): void {
  throw new DirQueueError('EBADOPTION', `exec processors are not built yet: ${command.join(' ')}`);
}

export function execProcessor(command: readonly string[], options: { queueDir: string }): Processor {
  throw new DirQueueError('EBADOPTION', `exec processors are not built yet: ${command.join(' ')} ${options.queueDir}`);
}
