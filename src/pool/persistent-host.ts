/**
 * A persistent exec worker (`dirq work --exec CMD --persistent`): one
 * long-running process of any language that reads one JSON job per line on
 * stdin and writes one JSON outcome per line on stdout, in any order
 * (FORMAT.md, "Workers in any language"). To the Pool it is a Host like a
 * worker thread or process. Its line protocol has no way to stop one job, so
 * a job that must stop (a timeout, a cancel) settles at once and its worker
 * is retired: it takes nothing more, finishes its other jobs, and is replaced.
 * A worker that dies, or writes a line that is not an outcome of a job it
 * holds, fails only the jobs it holds, with EWORKER.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { EventEmitter } from 'node:events';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { DirQueueError, type DirQueueErrorCode } from '../store/errors.js';
import { describe } from '../store/names.js';
import { deathOf, StderrTail, stopGroup } from './child-process.js';
import type { Host, HostEvents } from './worker-host.js';
import type { JobFields, RunOutcome } from './worker-messages.js';

const STDERR_LINES = 8;

interface Held {
  id: string;
  settle: (outcome: RunOutcome) => void;
}

export class PersistentHost extends EventEmitter<HostEvents> implements Host {
  readonly ready: Promise<void>;
  readonly runs = new Map<number, Held>();
  served = 0;
  retiring = false;
  isReady = false;
  idleSince = Date.now();
  readonly #child: ChildProcessWithoutNullStreams;
  readonly #stderr: StderrTail;
  /** The jobs in flight by job id: outcomes name jobs, the pool names runs. */
  readonly #byId = new Map<string, Held>();
  /** Jobs that ended here before their worker answered (abort): their late answers are no protocol error. */
  readonly #abandoned = new Set<string>();
  #stopping: Promise<void> | undefined;
  #broken: DirQueueError | undefined;

  constructor(command: readonly string[], options: { queueDir: string }) {
    super();
    const [program, ...args] = command;
    this.#child = spawn(program!, args, {
      detached: true, // its own process group: stopping it stops what it started
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, DIRQ_QUEUE: path.resolve(options.queueDir) },
    });
    const child = this.#child;
    this.#stderr = new StderrTail(child.stderr, STDERR_LINES);
    child.stdin.on('error', () => undefined); // EPIPE once it has died: its exit reports that
    createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => this.#receive(line));
    this.ready = new Promise((resolve, reject) => {
      child.once('spawn', () => {
        this.isReady = true;
        this.idleSince = Date.now();
        resolve();
      });
      child.on('error', (error) => {
        if (child.pid === undefined)
          reject(
            new DirQueueError('EPROCESSOR', `the persistent worker ${program!} could not start: ${error.message}`),
          );
      });
    });
    this.ready.catch(() => undefined);
    child.once('exit', (code, signal) => {
      void this.#stderr.drained().then(() => {
        const error =
          this.#stopping !== undefined && this.#broken === undefined
            ? undefined
            : (this.#broken ??
              new DirQueueError(
                'EWORKER',
                `the persistent worker (pid ${child.pid ?? '?'}) ${deathOf({ code, signal, stderr: this.#stderr })}`,
              ));
        this.#failHeld(error ?? new DirQueueError('EWORKER', 'the persistent worker was stopped'));
        this.emit('exit', error);
      });
    });
  }

  /** One job per line, one call per job. */
  get calls(): number {
    return this.runs.size;
  }

  run(run: number, job: JobFields): Promise<RunOutcome> {
    this.served++;
    return new Promise((resolve) => {
      const held: Held = {
        id: job.id,
        settle: (outcome) => {
          this.runs.delete(run);
          this.#byId.delete(job.id);
          if (this.runs.size === 0) this.idleSince = Date.now();
          resolve(outcome);
        },
      };
      this.runs.set(run, held);
      this.#byId.set(job.id, held);
      this.#child.stdin.write(`${jobLine(job)}\n`);
    });
  }

  /** The protocol cannot stop one job: it ends now, and its worker is replaced once its other jobs have. */
  abort(run: number, code: DirQueueErrorCode, reason: string): void {
    const held = this.runs.get(run);
    if (held === undefined) return;
    this.retiring = true;
    this.#abandoned.add(held.id);
    held.settle({ ok: false, error: { message: reason, code } });
  }

  reply(): void {
    // a persistent worker makes no calls (progress, log, enqueue): there is nothing to answer
  }

  ping(): Promise<boolean> {
    return Promise.resolve(this.#child.exitCode === null && this.#child.signalCode === null);
  }

  terminate(): Promise<void> {
    if (this.#stopping === undefined) {
      this.#child.stdin.end(); // a worker that reads to the end of its input may leave by itself
      const pid = this.#child.pid;
      this.#stopping = pid === undefined ? Promise.resolve() : stopGroup(pid);
    }
    return this.#stopping;
  }

  #receive(line: string): void {
    if (line.trim() === '') return;
    const outcome = parseOutcome(line);
    if (typeof outcome !== 'string' && this.#abandoned.delete(outcome.id)) return;
    const held = typeof outcome === 'string' ? undefined : this.#byId.get(outcome.id);
    if (typeof outcome === 'string' || held === undefined) {
      const why = typeof outcome === 'string' ? outcome : `it names job ${outcome.id}, which it does not hold`;
      this.#break(`wrote ${describe(line.length > 200 ? `${line.slice(0, 200)}...` : line)} on stdout: ${why}`);
      return;
    }
    held.settle(outcome.outcome);
  }

  /** It broke the line protocol: nothing it says can be trusted to name the right job, so it is stopped. */
  #break(what: string): void {
    if (this.#broken !== undefined) return;
    this.#broken = new DirQueueError(
      'EWORKER',
      `the persistent worker (pid ${this.#child.pid ?? '?'}) broke the line protocol and was stopped: it ${what}. Each stdout line must be {"id": ID, "ok": true, "result": VALUE} or {"id": ID, "ok": false, "error": {"message": TEXT}} (FORMAT.md, "Workers in any language"); write anything else on stderr`,
    );
    this.#failHeld(this.#broken);
    void this.terminate();
  }

  #failHeld(error: DirQueueError): void {
    for (const held of this.runs.values())
      held.settle({ ok: false, error: { message: error.message, code: error.code } });
  }
}

/** A job as one line of JSON for the worker: a raw payload (`dirq enqueue --file`) travels as base64 in "bytes". */
function jobLine(job: JobFields): string {
  const line: Record<string, unknown> = { id: job.id, type: job.type };
  if (job.data instanceof Uint8Array) line.bytes = Buffer.from(job.data).toString('base64');
  else line.data = job.data ?? null;
  line.attempt = job.attempt;
  line.attempts = job.attempts;
  if (job.schedule !== undefined) line.schedule = job.schedule;
  if (job.group !== undefined) line.group = job.group;
  if (job.parents !== undefined) line.parents = job.parents;
  if (job.batch !== undefined) line.batch = job.batch;
  return JSON.stringify(line);
}

/** An outcome line as the pool hears it, or what is wrong with it. */
function parseOutcome(line: string): { id: string; outcome: RunOutcome } | string {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'that is not JSON';
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return 'that is not a JSON object';
  const { id, ok, result, error } = value as Record<string, unknown>;
  if (typeof id !== 'string') return 'it has no "id" string';
  if (ok === true) return { id, outcome: { ok: true, result } };
  if (ok !== false) return 'its "ok" is neither true nor false';
  if (typeof error === 'string') return { id, outcome: { ok: false, error: { message: error } } };
  if (error === null || typeof error !== 'object' || typeof (error as { message?: unknown }).message !== 'string')
    return 'its "error" has no "message" string';
  const { message, code } = error as { message: string; code?: unknown };
  return { id, outcome: { ok: false, error: typeof code === 'string' ? { message, code } : { message } } };
}
