// PLACEHOLDER until the h-exec branch lands (this session): replaced by the real persistent exec host.
import { WorkerHost } from './worker-host.js';

export class PersistentHost extends WorkerHost {
  constructor(command: readonly string[], options: { queueDir: string }) {
    super('process', { processor: `${command.join(' ')} ${options.queueDir}`, middleware: [] }, undefined);
    throw new Error('persistent exec workers are not built yet');
  }
}
