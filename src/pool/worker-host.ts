/**
 * One worker as the pool sees it, a thread or a child process: starts it,
 * waits for its processor to load, sends it jobs and hears back results,
 * pings it to tell a busy worker from one stuck in synchronous code, and
 * stops it. The two kinds differ only in their channel (below): how they
 * start, carry messages, die and are stopped.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { DirQueueError, type DirQueueErrorCode } from '../store/errors.js';
import { deathOf, KILL_AFTER_MS, StderrTail } from './child-process.js';
import type { FromWorker, JobFields, RunOutcome, ToWorker, WorkerModules } from './worker-messages.js';

export interface HostEvents {
  /** The worker asks for progress, log or enqueue on behalf of a running job. */
  call: [message: Extract<FromWorker, { t: 'call' }>];
  /** The worker ended; `error` when it died rather than being stopped. */
  exit: [error: DirQueueError | undefined];
}

/** What the Pool needs of a worker, whatever runs inside it (worker-host.ts, persistent-host.ts). */
export interface Host extends EventEmitter<HostEvents> {
  /** Resolves once the worker can take jobs; rejects with EPROCESSOR when it cannot start. */
  readonly ready: Promise<void>;
  /** Runs in flight on this worker, one per job. */
  readonly runs: ReadonlyMap<number, unknown>;
  /** Processor calls in flight on this worker: its runs, a batch counting once (what `concurrency` bounds). */
  readonly calls: number;
  /** Jobs sent to this worker so far. */
  served: number;
  /** Takes no more jobs; stopped once its runs end. */
  retiring: boolean;
  /** Started, and can take jobs. */
  isReady: boolean;
  /** When its last run ended (ms since the epoch), or when it became ready: how long it has been idle. */
  idleSince: number;
  run(run: number, job: JobFields): Promise<RunOutcome>;
  /** One processor call on `jobs` (batch.ts), runs[i] the run of jobs[i]: each job's outcome. Not for a persistent exec worker. */
  runBatch?(runs: readonly number[], jobs: readonly JobFields[]): Promise<RunOutcome>[];
  abort(run: number, code: DirQueueErrorCode, reason: string): void;
  reply(message: Extract<ToWorker, { t: 'reply' }>): void;
  /** Resolves true if the worker answers within `ms`: its event loop is not stuck. */
  ping(ms: number): Promise<boolean>;
  /** Stop it; resolves once it has gone. */
  terminate(): Promise<void>;
}

/** How a host reaches its worker. */
interface Channel {
  post(message: ToWorker): void;
  onMessage(listener: (message: FromWorker) => void): void;
  /** Once, when the worker has gone: `error` unless stop() ended it. */
  onExit(listener: (error: DirQueueError | undefined) => void): void;
  stop(): Promise<void>;
}

const entry = new URL('./worker-runtime.js', import.meta.url);

/** Lines of a worker process's stderr kept for the report of its death. */
const STDERR_LINES = 8;

export type Isolation = 'thread' | 'process';

export class WorkerHost extends EventEmitter<HostEvents> implements Host {
  readonly ready: Promise<void>;
  readonly runs = new Map<number, (outcome: RunOutcome) => void>();
  served = 0;
  retiring = false;
  isReady = false;
  idleSince = Date.now();
  readonly #channel: Channel;
  #calls = 0;
  #pings = new Map<number, () => void>();
  #nextPing = 0;

  constructor(isolation: Isolation, modules: WorkerModules, resourceLimits: ResourceLimits | undefined) {
    super();
    this.#channel =
      isolation === 'thread' ? threadChannel(modules, resourceLimits) : processChannel(modules, resourceLimits);
    const { processor } = modules;
    let settled = false;
    this.ready = new Promise((resolve, reject) => {
      this.#channel.onMessage((message) => {
        if (settled) {
          this.#receive(message);
          return;
        }
        settled = true;
        if (message.t === 'ready') {
          this.isReady = true;
          this.idleSince = Date.now();
          resolve();
        } else {
          const text = message.t === 'load-error' ? message.message : `it sent ${message.t} before it was ready`;
          reject(new DirQueueError('EPROCESSOR', text));
          void this.terminate();
        }
      });
      this.#channel.onExit((error) => {
        if (!settled) {
          settled = true;
          reject(
            new DirQueueError(
              'EPROCESSOR',
              `the worker ${isolation} for ${processor} died while loading: ${error?.message ?? 'stopped'}`,
              { cause: error },
            ),
          );
        }
        this.#exited(error);
      });
    });
    this.ready.catch(() => undefined);
  }

  get calls(): number {
    return this.#calls;
  }

  run(run: number, job: JobFields): Promise<RunOutcome> {
    return this.#send([run], { t: 'run', run, job })[0]!;
  }

  runBatch(runs: readonly number[], jobs: readonly JobFields[]): Promise<RunOutcome>[] {
    return this.#send(runs, { t: 'batch', runs: [...runs], jobs: [...jobs] });
  }

  /** Post one processor call for `runs`; each resolves with its job's outcome, and the call ends with the last. */
  #send(runs: readonly number[], message: ToWorker): Promise<RunOutcome>[] {
    this.served += runs.length;
    this.#calls++;
    let left = runs.length;
    const outcomes = runs.map(
      (run) =>
        new Promise<RunOutcome>((resolve) => {
          this.runs.set(run, (outcome) => {
            if (--left === 0) this.#calls--;
            if (this.runs.size === 0) this.idleSince = Date.now();
            resolve(outcome);
          });
        }),
    );
    this.#channel.post(message);
    return outcomes;
  }

  abort(run: number, code: DirQueueErrorCode, reason: string): void {
    this.#channel.post({ t: 'abort', run, code, reason });
  }

  reply(message: Extract<ToWorker, { t: 'reply' }>): void {
    this.#channel.post(message);
  }

  ping(ms: number): Promise<boolean> {
    const n = this.#nextPing++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.#pings.delete(n);
        resolve(false);
      }, ms);
      this.#pings.set(n, () => {
        clearTimeout(timer);
        this.#pings.delete(n);
        resolve(true);
      });
      this.#channel.post({ t: 'ping', n });
    });
  }

  terminate(): Promise<void> {
    return this.#channel.stop();
  }

  #exited(error: DirQueueError | undefined): void {
    for (const [run, settle] of this.runs) {
      this.runs.delete(run);
      settle({
        ok: false,
        error: { message: error?.message ?? 'the worker was stopped', code: error?.code ?? 'ETHREAD' },
      });
    }
    for (const answer of this.#pings.values()) answer();
    this.emit('exit', error);
  }

  #receive(message: FromWorker): void {
    switch (message.t) {
      case 'done': {
        const settle = this.runs.get(message.run);
        this.runs.delete(message.run);
        settle?.(message.ok ? { ok: true, result: message.result } : { ok: false, error: message.error });
        break;
      }
      case 'pong':
        this.#pings.get(message.n)?.();
        break;
      case 'call':
        this.emit('call', message);
        break;
      default:
        break;
    }
  }
}

function threadChannel(modules: WorkerModules, resourceLimits: ResourceLimits | undefined): Channel {
  const worker = new Worker(entry, { workerData: modules, ...(resourceLimits ? { resourceLimits } : {}) });
  let stopping = false;
  let died: Error | undefined;
  worker.on('error', (error) => (died = error));
  return {
    post: (message) => worker.postMessage(message),
    onMessage: (listener) => worker.on('message', listener),
    onExit: (listener) =>
      worker.once('exit', (code) => {
        if (stopping) {
          listener(undefined);
          return;
        }
        const why = died?.message ?? `it exited with code ${code}`;
        listener(new DirQueueError('ETHREAD', `the worker thread died: ${why}`, { cause: died }));
      }),
    stop: async () => {
      stopping = true;
      await worker.terminate();
    },
  };
}

/**
 * A worker process, forked with the advanced (structured clone) serialization,
 * so a job's data and result cross as they do to a thread. Its memory limit
 * is V8's own flag; its stderr goes on to ours, and its last lines are kept
 * to say why it died.
 */
function processChannel(modules: WorkerModules, resourceLimits: ResourceLimits | undefined): Channel {
  const heap = resourceLimits?.maxOldGenerationSizeMb;
  const child: ChildProcess = fork(entry, [JSON.stringify(modules)], {
    serialization: 'advanced',
    stdio: ['ignore', 'inherit', 'pipe', 'ipc'],
    execArgv: [...process.execArgv, ...(heap === undefined ? [] : [`--max-old-space-size=${heap}`])],
  });
  const stderr = new StderrTail(child.stderr!, STDERR_LINES);
  let stopping = false;
  let startError: Error | undefined;
  child.on('error', (error) => (startError = error));
  const gone = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  return {
    post: (message) => {
      // after the process died its channel is closed: the exit event reports it
      if (child.connected) child.send(message, (error) => error ?? undefined);
    },
    onMessage: (listener) => child.on('message', (message) => listener(message as FromWorker)),
    onExit: (listener) =>
      child.once('exit', (code, signal) => {
        if (stopping) {
          listener(undefined);
          return;
        }
        void stderr
          .drained()
          .then(() =>
            listener(
              new DirQueueError(
                'EWORKER',
                `the worker process (pid ${child.pid ?? '?'}) ${deathOf({ code, signal, heap, stderr, startError })}`,
              ),
            ),
          );
      }),
    stop: async () => {
      stopping = true;
      if (child.exitCode === null && child.signalCode === null) {
        child.kill('SIGTERM');
        const kill = setTimeout(() => child.kill('SIGKILL'), KILL_AFTER_MS);
        await gone;
        clearTimeout(kill);
      }
    },
  };
}
