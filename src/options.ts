/**
 * Every option of the public classes, with its default and its validation.
 */
import { DirQueueError, type RecordedError } from './errors.js';
import { isBackoff, type BackoffSpec } from './envelope.js';
import { checkPriority, describe, encodeKey, PRIORITY_DEFAULT } from './names.js';

/** Milliseconds to wait before attempt `attempt + 1`, after `error` ended attempt `attempt`. */
export type BackoffFunction = (attempt: number, error: RecordedError) => number;

export interface QueueOptions {
  /** Create the queue layout when the directory is missing or empty. @default true */
  create?: boolean;
  /**
   * fsync each job file and its directory before enqueue resolves, so a job
   * survives power loss. false trades that for speed (README has the numbers).
   * @default true
   */
  durable?: boolean;
  /** Notice new jobs through inotify (fs.watch); false polls only (NFS). @default true */
  watch?: boolean;
  /** How often a waiting claim checks queue/ for changes when events may be missed, ms. @default 1000 */
  pollInterval?: number;
  /** A full rescan of queue/ at least this often, the floor under watching (I7), ms. @default 30000 */
  rescanInterval?: number;
  /**
   * Ageing against starvation (I8): each agingStep ms of waiting counts as one
   * priority level, so a job of priority p waits at most p x agingStep behind
   * more urgent newer jobs. Infinity gives strict priority.
   * @default 10000
   */
  agingStep?: number;
  /** A claim whose owner showed no sign of life for this long is stale, ms. @default 30000 */
  staleAfter?: number;
  /**
   * Run maintenance (recover stale claims, promote due delayed jobs, prune
   * done/, clean tmp/) once at open and then every `sweepInterval` (I6).
   * @default true
   */
  maintenance?: boolean;
  /** Time between maintenance sweeps, ms, jittered by +-25%. @default 5000 */
  sweepInterval?: number;
  /** Completed jobs are deleted from done/ this long after they ended, ms; Infinity keeps them. @default 604800000 (7 days) */
  keepDone?: number;
  /** Job files larger than this are set aside in failed/, bytes. @default 16777216 */
  maxJobBytes?: number;
  /** Attempts for jobs that do not set their own. @default 3 */
  attempts?: number;
  /** Backoff for jobs that do not set their own. @default { type: 'exponential', delay: 1000, jitter: 0.2 } */
  backoff?: BackoffSpec | BackoffFunction;
  /** Timeout for jobs that do not set their own, ms; undefined for none. @default undefined */
  timeout?: number;
}

export interface ResolvedQueueOptions extends Required<Omit<QueueOptions, 'timeout'>> {
  timeout: number | undefined;
}

export const queueDefaults = Object.freeze({
  create: true,
  durable: true,
  watch: true,
  pollInterval: 1000,
  rescanInterval: 30_000,
  agingStep: 10_000,
  staleAfter: 30_000,
  maintenance: true,
  sweepInterval: 5000,
  keepDone: 7 * 24 * 3600 * 1000,
  maxJobBytes: 16 * 1024 * 1024,
  attempts: 3,
  backoff: Object.freeze({ type: 'exponential', delay: 1000, jitter: 0.2 }),
  timeout: undefined,
} as const) satisfies Readonly<ResolvedQueueOptions>;

export function resolveQueueOptions(options: QueueOptions = {}): ResolvedQueueOptions {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `Queue options must be an object, got ${describe(options)}`);
  }
  const o = { ...queueDefaults, ...dropUndefined(options) } as ResolvedQueueOptions;
  checkBoolean(o.create, 'create');
  checkBoolean(o.durable, 'durable');
  checkBoolean(o.watch, 'watch');
  checkMs(o.pollInterval, 'pollInterval', 1);
  checkMs(o.rescanInterval, 'rescanInterval', 1);
  if (o.agingStep !== Infinity) checkMs(o.agingStep, 'agingStep', 1);
  checkMs(o.staleAfter, 'staleAfter', 1);
  checkBoolean(o.maintenance, 'maintenance');
  checkMs(o.sweepInterval, 'sweepInterval', 1);
  if (o.keepDone !== Infinity) checkMs(o.keepDone, 'keepDone', 0);
  checkInteger(o.maxJobBytes, 'maxJobBytes', 64);
  checkInteger(o.attempts, 'attempts', 1);
  if (typeof o.backoff !== 'function') checkBackoff(o.backoff, 'backoff');
  if (o.timeout !== undefined) checkMs(o.timeout, 'timeout', 1);
  return o;
}

export interface EnqueueOptions {
  /** 0..99, lower runs first. @default 50 */
  priority?: number;
  /** Run no sooner than this many ms from now (the job waits in delayed/). @default 0 */
  delay?: number;
  /** Run no sooner than this time (a Date or ms since the epoch). Excludes `delay`. */
  runAt?: Date | number;
  /** How many times to try before the job goes to failed/. @default the queue's `attempts` */
  attempts?: number;
  /** Wait between attempts. A number is a fixed delay in ms. @default the queue's `backoff` */
  backoff?: BackoffSpec | number;
  /** A run longer than this many ms counts as a failed attempt. @default the queue's `timeout` */
  timeout?: number;
  /**
   * A unique key: while a job with this key is waiting or running, enqueueing
   * another with the same key returns the first one's id instead (with
   * `duplicate: true`). The key is free again once that job ends.
   */
  key?: string;
}

export interface ResolvedEnqueueOptions {
  priority: number;
  /** Due time in ms since the epoch, when the job must wait in delayed/. */
  runAt: number | undefined;
  attempts: number | undefined;
  backoff: BackoffSpec | undefined;
  timeout: number | undefined;
  key: string | undefined;
}

export function resolveEnqueueOptions(options: EnqueueOptions = {}, now = Date.now()): ResolvedEnqueueOptions {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `enqueue options must be an object, got ${describe(options)}`);
  }
  const priority = options.priority === undefined ? PRIORITY_DEFAULT : checkPriority(options.priority);
  if (options.delay !== undefined && options.runAt !== undefined) {
    throw new DirQueueError('EBADOPTION', 'give either delay or runAt, not both');
  }
  let runAt: number | undefined;
  if (options.delay !== undefined) {
    checkMs(options.delay, 'delay', 0);
    runAt = options.delay > 0 ? now + options.delay : undefined;
  } else if (options.runAt !== undefined) {
    const at = options.runAt instanceof Date ? options.runAt.getTime() : options.runAt;
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      throw new DirQueueError('EBADOPTION', `runAt must be a valid Date or ms since the epoch, got ${describe(options.runAt)}`);
    }
    runAt = at > now ? Math.round(at) : undefined;
  }
  if (options.attempts !== undefined) checkInteger(options.attempts, 'attempts', 1);
  let backoff: BackoffSpec | undefined;
  if (typeof options.backoff === 'number') {
    checkMs(options.backoff, 'backoff', 0);
    backoff = { type: 'fixed', delay: options.backoff };
  } else if (options.backoff !== undefined) {
    backoff = checkBackoff(options.backoff, 'backoff');
  }
  if (options.timeout !== undefined) checkMs(options.timeout, 'timeout', 1);
  if (options.key !== undefined) encodeKey(options.key);
  return { priority, runAt, attempts: options.attempts, backoff, timeout: options.timeout, key: options.key };
}

export function checkMs(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new DirQueueError('EBADOPTION', `${name} must be a number of milliseconds >= ${min}, got ${describe(value)}`);
  }
  return value;
}

function checkInteger(value: unknown, name: string, min: number): void {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new DirQueueError('EBADOPTION', `${name} must be an integer >= ${min}, got ${describe(value)}`);
  }
}

function checkBoolean(value: unknown, name: string): void {
  if (typeof value !== 'boolean') throw new DirQueueError('EBADOPTION', `${name} must be true or false, got ${describe(value)}`);
}

function checkBackoff(value: unknown, name: string): BackoffSpec {
  if (!isBackoff(value)) {
    throw new DirQueueError(
      'EBADOPTION',
      `${name} must be ms, { type: 'fixed', delay } or { type: 'exponential', delay, max?, jitter? (0..1) }, got ${describe(value)}`,
    );
  }
  return value;
}

function dropUndefined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}
