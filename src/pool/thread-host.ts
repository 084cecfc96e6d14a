/**
 * One worker thread as the pool sees it: starts it, waits for its processor
 * to load, sends it jobs and hears back results, pings it to tell a busy
 * thread from one stuck in synchronous code, and terminates it.
 */
import { EventEmitter } from 'node:events';
import { Worker, type ResourceLimits } from 'node:worker_threads';
import { DirQueueError, type DirQueueErrorCode } from '../store/errors.js';
import type { FromThread, JobFields, RunOutcome, ToThread } from './thread-messages.js';

export interface ThreadEvents {
  /** The thread asks for progress, log or enqueue on behalf of a running job. */
  call: [message: Extract<FromThread, { t: 'call' }>];
  /** The thread ended; `error` when it died rather than being terminated. */
  exit: [error: Error | undefined];
}

const entry = new URL('./thread.js', import.meta.url);

export class ThreadHost extends EventEmitter<ThreadEvents> {
  readonly ready: Promise<void>;
  /** Runs in flight on this thread. */
  readonly runs = new Map<number, (outcome: RunOutcome) => void>();
  /** Jobs sent to this thread so far. */
  served = 0;
  /** Takes no more jobs; terminated once its runs end (maxJobsPerThread). */
  retiring = false;
  /** Its processor has loaded. */
  isReady = false;
  #worker: Worker;
  #pings = new Map<number, () => void>();
  #nextPing = 0;
  #terminating = false;

  constructor(processor: string, resourceLimits: ResourceLimits | undefined) {
    super();
    this.#worker = new Worker(entry, { workerData: { processor }, ...(resourceLimits ? { resourceLimits } : {}) });
    this.ready = new Promise((resolve, reject) => {
      const onMessage = (message: FromThread): void => {
        if (message.t === 'ready') {
          this.#worker.off('error', onError);
          this.isReady = true;
          resolve();
        } else if (message.t === 'load-error') {
          reject(new DirQueueError('EPROCESSOR', `the processor ${processor} failed to load: ${message.message}`));
          void this.terminate();
        }
      };
      const onError = (error: Error): void =>
        reject(
          new DirQueueError(
            'EPROCESSOR',
            `the processor thread for ${processor} died while loading: ${error.message}`,
            { cause: error },
          ),
        );
      this.#worker.once('error', onError);
      this.#worker.on('message', onMessage);
    });
    this.ready.catch(() => undefined);
    let died: Error | undefined;
    this.#worker.on('error', (error) => (died = error));
    this.#worker.on('message', (message: FromThread) => this.#receive(message));
    this.#worker.on('exit', (code) => {
      const error = this.#terminating ? undefined : (died ?? new Error(`the thread exited with code ${code}`));
      for (const [run, settle] of this.runs) {
        this.runs.delete(run);
        settle({
          ok: false,
          error: { message: `the worker thread died: ${error?.message ?? 'terminated'}`, code: 'ETHREAD' },
        });
      }
      for (const answer of this.#pings.values()) answer();
      this.emit('exit', error);
    });
  }

  run(run: number, job: JobFields): Promise<RunOutcome> {
    this.served++;
    return new Promise((resolve) => {
      this.runs.set(run, resolve);
      this.#send({ t: 'run', run, job });
    });
  }

  abort(run: number, code: DirQueueErrorCode, reason: string): void {
    this.#send({ t: 'abort', run, code, reason });
  }

  reply(message: Extract<ToThread, { t: 'reply' }>): void {
    this.#send(message);
  }

  /** Resolves true if the thread answers within `ms`: its event loop is not stuck. */
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
      this.#send({ t: 'ping', n });
    });
  }

  async terminate(): Promise<void> {
    this.#terminating = true;
    await this.#worker.terminate();
  }

  #send(message: ToThread): void {
    this.#worker.postMessage(message);
  }

  #receive(message: FromThread): void {
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
    }
  }
}
