/**
 * The processor runtime inside a worker thread: imports the processor module
 * once, then runs the jobs the pool sends, many at a time. It never touches
 * the queue directory: results, progress, logs and child jobs go back to the
 * pool's main thread as messages.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CompromisedError, DirQueueError, recordError, type ErrorCode } from '../store/errors.js';
import type { Processor, ProcessorJob } from './processor.js';
import type { FromThread, JobFields, ToThread } from './thread-messages.js';

const port = parentPort!;
const send = (message: FromThread): void => port.postMessage(message);

const running = new Map<number, AbortController>();
const calls = new Map<number, { resolve(value: unknown): void; reject(error: Error): void }>();
let nextCall = 0;

function call(run: number, method: 'progress' | 'log' | 'enqueue', args: unknown[]): Promise<unknown> {
  const req = nextCall++;
  return new Promise((resolve, reject) => {
    calls.set(req, { resolve, reject });
    send({ t: 'call', req, run, method, args });
  });
}

async function run(processor: Processor, runId: number, fields: JobFields): Promise<void> {
  const controller = new AbortController();
  running.set(runId, controller);
  const job: ProcessorJob = {
    ...fields,
    signal: controller.signal,
    progress: async (value) => {
      await call(runId, 'progress', [value]);
    },
    log: async (line) => {
      await call(runId, 'log', [line]);
    },
    enqueue: (type, data, options) =>
      call(runId, 'enqueue', [type, data, options]) as ReturnType<ProcessorJob['enqueue']>,
  };
  let message: FromThread;
  try {
    message = { t: 'done', run: runId, ok: true, result: await processor(job) };
  } catch (error) {
    message = { t: 'done', run: runId, ok: false, error: recordError(error) };
  }
  running.delete(runId);
  try {
    send(message);
  } catch (error) {
    // the result cannot cross to the main thread (a function, a class instance...): that is the job's error
    send({
      t: 'done',
      run: runId,
      ok: false,
      error: { message: `the result cannot be sent back: ${recordError(error).message}`, code: 'EBADDATA' },
    });
  }
}

/**
 * The error the pool's main thread raised for a call, as the class an
 * in-process processor would have caught: structured clone keeps only its
 * message and code, so build the DirQueueError again from them.
 */
function rebuild(error: { message: string; code?: string }): Error {
  if (error.code === undefined) return new Error(error.message);
  if (error.code === 'ECOMPROMISED') return new CompromisedError(error.message);
  return new DirQueueError(error.code as ErrorCode, error.message);
}

async function main(): Promise<void> {
  const specifier = (workerData as { processor: string }).processor;
  let processor: Processor;
  try {
    const module = (await import(specifier)) as { default?: unknown };
    if (typeof module.default !== 'function') {
      throw new Error(`${specifier} has no default export function: export default async function (job) { ... }`);
    }
    processor = module.default as Processor;
  } catch (error) {
    const { message, stack } = recordError(error);
    send(stack === undefined ? { t: 'load-error', message } : { t: 'load-error', message, stack });
    return;
  }
  port.on('message', (message: ToThread) => {
    switch (message.t) {
      case 'run':
        void run(processor, message.run, message.job);
        break;
      case 'abort':
        running.get(message.run)?.abort(new DirQueueError(message.code as ErrorCode, message.reason));
        break;
      case 'ping':
        send({ t: 'pong', n: message.n });
        break;
      case 'reply': {
        const pending = calls.get(message.req);
        calls.delete(message.req);
        if (message.ok) pending?.resolve(message.value);
        else pending?.reject(rebuild(message.error));
        break;
      }
    }
  });
  send({ t: 'ready' });
}

void main();
