/**
 * The processor runtime inside a worker, a thread or a child process: imports
 * the processor module and its middleware once, then runs the jobs the pool
 * sends, many at a time. It never touches the queue directory: results,
 * progress, logs and child jobs go back to the pool as messages.
 *
 * In a thread the messages go through parentPort; in a child process through
 * its IPC channel (forked with structured clone, so a job sees the same
 * values either way). A child process ignores SIGINT: a Ctrl-C in a terminal
 * reaches the whole process group, and the pool that owns this process
 * decides how its jobs end (it finishes or releases them, then stops its
 * workers). It exits when the pool's channel closes: a pool that died cannot
 * record what this process would still do.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { CompromisedError, DirQueueError, recordError, type ErrorCode } from '../store/errors.js';
import { importMiddleware, importProcessor, wrap } from './middleware.js';
import type { Processor, ProcessorJob } from './processor.js';
import { runBatch, type BatchProcessor } from './batch.js';
import type { FromWorker, JobFields, RunOutcome, ToWorker, WorkerModules } from './worker-messages.js';

interface Transport {
  modules: WorkerModules;
  send(message: FromWorker): void;
  onMessage(listener: (message: ToWorker) => void): void;
}

function transport(): Transport {
  if (parentPort !== null) {
    const port = parentPort;
    return {
      modules: workerData as WorkerModules,
      send: (message) => port.postMessage(message),
      onMessage: (listener) => port.on('message', listener),
    };
  }
  const send = process.send?.bind(process);
  if (send === undefined) throw new Error('worker-runtime.js runs in a worker thread or a forked process');
  process.on('SIGINT', () => undefined);
  process.on('disconnect', () => process.exit(0));
  return {
    modules: JSON.parse(process.argv[2]!) as WorkerModules,
    send: (message) => void send(message),
    onMessage: (listener) => process.on('message', listener),
  };
}

const channel = transport();
const send = (message: FromWorker): void => channel.send(message);
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

/** The job as the processor sees it, its signal registered under its run for the pool's aborts. */
function view(runId: number, fields: JobFields): ProcessorJob {
  const controller = new AbortController();
  running.set(runId, controller);
  return {
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
}

async function run(processor: Processor, runId: number, fields: JobFields): Promise<void> {
  const job = view(runId, fields);
  let outcome: RunOutcome;
  try {
    outcome = { ok: true, result: await processor(job) };
  } catch (error) {
    outcome = { ok: false, error: recordError(error) };
  }
  answer(runId, outcome);
}

/** One call of a batch processor (batch.ts); each job's outcome goes back under its own run. */
async function batch(processor: BatchProcessor, runIds: readonly number[], jobs: readonly JobFields[]): Promise<void> {
  const outcomes = await runBatch(
    processor,
    jobs.map((fields, i) => view(runIds[i]!, fields)),
  );
  runIds.forEach((runId, i) => answer(runId, outcomes[i]!));
}

function answer(runId: number, outcome: RunOutcome): void {
  running.delete(runId);
  try {
    send({ t: 'done', run: runId, ...outcome });
  } catch (error) {
    // the result cannot cross to the pool (a function, a class instance...): that is the job's error
    send({
      t: 'done',
      run: runId,
      ok: false,
      error: { message: `the result cannot be sent back: ${recordError(error).message}`, code: 'EBADDATA' },
    });
  }
}

/**
 * The error the pool raised for a call, as the class an in-process processor
 * would have caught: structured clone keeps only its message and code, so
 * build the DirQueueError again from them.
 */
function rebuild(error: { message: string; code?: string }): Error {
  if (error.code === undefined) return new Error(error.message);
  if (error.code === 'ECOMPROMISED') return new CompromisedError(error.message);
  return new DirQueueError(error.code as ErrorCode, error.message);
}

async function main(): Promise<void> {
  const { processor: specifier, middleware } = channel.modules;
  let processor: Processor;
  try {
    processor = wrap(await importProcessor(specifier), await importMiddleware(middleware));
  } catch (error) {
    const { message, stack } = recordError(error);
    send(stack === undefined ? { t: 'load-error', message } : { t: 'load-error', message, stack });
    return;
  }
  channel.onMessage((message) => {
    switch (message.t) {
      case 'run':
        void run(processor, message.run, message.job);
        break;
      case 'batch':
        // a pool with batchSize sends only batches: its module's default export takes the array
        void batch(processor as unknown as BatchProcessor, message.runs, message.jobs);
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
