/**
 * The Pool's own options, with their defaults and validation; the options it
 * passes on to its Queue are checked by queue/options.ts.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { DirQueueError } from '../store/errors.js';
import { describe, encodeType } from '../store/names.js';
import { checkBoolean, checkInteger, checkKnown, checkMs } from '../store/option-checks.js';
import { queueDefaults, type QueueOptions } from '../queue/options.js';
import { processorSpecifier, type Processor } from './processor.js';
import type { Isolation } from './worker-host.js';

/** A number of workers, fixed or autoscaled between min and max (both >= 1). */
export type WorkerCount = number | { min: number; max: number };

/**
 * Any executable as the processor (`dirq work --exec`): one process per job,
 * or with `persistent` one long-running process per worker that speaks
 * FORMAT.md's line protocol. A string runs through `/bin/sh -c`; an array is
 * the program and its arguments, run as they are.
 */
export interface ExecProcessor {
  exec: string | readonly string[];
  persistent?: boolean;
}

export interface PoolOptions extends QueueOptions {
  /**
   * The processor: a module whose default export is `async (job) => result`,
   * run in worker threads or processes; a function, run in-process; or an
   * executable ({ exec }). A module is a path, resolved against process.cwd()
   * when the Pool is made (not against the calling module: pass
   * `new URL('../send.js', import.meta.url)` for that), or a file: URL, as a
   * URL object or a 'file://' string. With `batchSize` above 1 the function,
   * or the module's default export, takes an array of jobs: a BatchProcessor
   * (pass a function as `batchProcessor(async (jobs) => ...)`, batch.ts).
   */
  processor: string | URL | Processor | ExecProcessor;
  /**
   * Up to this many ready jobs of one type and one coalesce key (enqueue's `coalesce`) in one processor
   * call, claimed with claimMany({ coalesce: true }): the processor takes an array and returns an array
   * as long, an Error in the place of a job that failed (batch.ts). Each job ends on its own; the batch
   * runs under the shortest timeout of its jobs. Not with an exec processor or middleware. An integer >= 1.
   * @default 1 (one job per call, the processor takes the job itself)
   */
  batchSize?: number;
  /** Where a module processor runs: worker threads, or child processes (a crash costs only that process's jobs). @default 'thread' */
  isolation?: Isolation;
  /** Worker threads: a number, or { min, max } to grow with the backlog and shrink when idle. @default 1 */
  threads?: WorkerCount;
  /** Worker processes (isolation 'process', or a persistent exec): a number or { min, max }. @default 1 */
  processes?: WorkerCount;
  /** An autoscaled pool stops a worker that has had no job for this long, down to min, ms. @default 30000 */
  idleTimeout?: number;
  /** Modules whose default export `async (job, next) => result` wraps every run, outermost first, where the job runs. */
  middleware?: readonly (string | URL)[];
  /** Replace a worker after a job it ran failed (threw, timed out). @default false */
  recycleAfterError?: boolean;
  /** Processor calls in flight per worker (module, persistent exec) or in all (function, per-job exec); a batch is one. @default 1 */
  concurrency?: number;
  /** Only jobs of these types; all types when omitted. */
  types?: readonly string[];
  /** Default run limit of a job, ms (a job's own `timeout` wins). @default undefined (none) */
  jobTimeout?: number;
  /** Replace a worker (thread or process) after it has run this many jobs (leaky processors). @default Infinity */
  maxJobsPerWorker?: number;
  /** The same as maxJobsPerWorker, by its first name. */
  maxJobsPerThread?: number;
  /**
   * Resource limits per worker, e.g. { maxOldGenerationSizeMb: 256 }: all of
   * worker_threads' for threads; maxOldGenerationSizeMb for processes (V8's
   * --max-old-space-size). @default undefined
   */
  resourceLimits?: ResourceLimits;
  /** close() waits this long for running jobs before releasing them back to queue/, ms. @default 30000 */
  closeTimeout?: number;
  /**
   * After a job's timeout, a worker that has not ended the job within this
   * long (stuck in synchronous code, or ignoring its signal) is replaced and
   * its other jobs go back to queue/, ms. @default 1000
   */
  stuckAfter?: number;
}

/** Where the pool runs jobs: what `processor` and `isolation` come to. */
export type Runner =
  | { kind: 'thread' | 'process'; processor: string }
  | { kind: 'in-process'; processor: Processor }
  | { kind: 'exec'; command: readonly string[] }
  | { kind: 'persistent'; command: readonly string[] };

export interface ResolvedPoolOptions {
  runner: Runner;
  /** The workers of a thread, process or persistent runner, min === max when fixed. */
  workers: { min: number; max: number };
  idleTimeout: number;
  middleware: readonly string[];
  recycleAfterError: boolean;
  concurrency: number;
  batchSize: number;
  types: readonly string[] | undefined;
  jobTimeout: number | undefined;
  maxJobsPerWorker: number;
  resourceLimits: ResourceLimits | undefined;
  closeTimeout: number;
  stuckAfter: number;
  queue: QueueOptions;
}

export const poolDefaults = Object.freeze({
  workers: 1,
  idleTimeout: 30_000,
  recycleAfterError: false,
  concurrency: 1,
  batchSize: 1,
  maxJobsPerWorker: Infinity,
  closeTimeout: 30_000,
  stuckAfter: 1000,
} as const);

const POOL_OPTIONS = Object.freeze([
  'processor',
  'isolation',
  'threads',
  'processes',
  'idleTimeout',
  'middleware',
  'recycleAfterError',
  'concurrency',
  'batchSize',
  'types',
  'jobTimeout',
  'maxJobsPerWorker',
  'maxJobsPerThread',
  'resourceLimits',
  'closeTimeout',
  'stuckAfter',
] as const) satisfies readonly (keyof PoolOptions)[];

export function resolvePoolOptions(options: PoolOptions): ResolvedPoolOptions {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `Pool options must be an object with a processor, got ${describe(options)}`);
  }
  const {
    processor,
    isolation,
    threads,
    processes,
    idleTimeout,
    middleware,
    recycleAfterError,
    concurrency,
    batchSize,
    types,
    jobTimeout,
    maxJobsPerWorker,
    maxJobsPerThread,
    resourceLimits,
    closeTimeout,
    stuckAfter,
    ...queue
  } = options;
  checkKnown(queue, Object.keys(queueDefaults), 'Pool option', POOL_OPTIONS);
  const runner = resolveRunner(processor, isolation);
  if (threads !== undefined && processes !== undefined)
    throw new DirQueueError('EBADOPTION', 'give threads or processes, not both: a pool runs one kind of worker');
  if (threads !== undefined && runner.kind !== 'thread')
    throw new DirQueueError('EBADOPTION', `threads applies to worker threads; ${workersHint(runner.kind)}`);
  if (processes !== undefined && runner.kind !== 'process' && runner.kind !== 'persistent')
    throw new DirQueueError('EBADOPTION', `processes applies to worker processes; ${workersHint(runner.kind)}`);
  if (maxJobsPerWorker !== undefined && maxJobsPerThread !== undefined)
    throw new DirQueueError('EBADOPTION', 'give maxJobsPerWorker or maxJobsPerThread (the same option), not both');
  const o: ResolvedPoolOptions = {
    runner,
    workers: workerCount(threads ?? processes ?? poolDefaults.workers, threads !== undefined ? 'threads' : 'processes'),
    idleTimeout: checkMs(idleTimeout ?? poolDefaults.idleTimeout, 'idleTimeout', 0),
    middleware: checkMiddleware(middleware, runner),
    recycleAfterError: recycleAfterError ?? poolDefaults.recycleAfterError,
    concurrency: concurrency ?? poolDefaults.concurrency,
    batchSize: batchSize ?? poolDefaults.batchSize,
    types,
    jobTimeout,
    maxJobsPerWorker: maxJobsPerWorker ?? maxJobsPerThread ?? poolDefaults.maxJobsPerWorker,
    resourceLimits: checkLimits(resourceLimits, runner),
    closeTimeout: closeTimeout ?? poolDefaults.closeTimeout,
    stuckAfter: stuckAfter ?? poolDefaults.stuckAfter,
    queue,
  };
  checkBoolean(o.recycleAfterError, 'recycleAfterError');
  checkInteger(o.concurrency, 'concurrency', 1);
  checkBatchSize(o);
  if (o.maxJobsPerWorker !== Infinity)
    checkInteger(o.maxJobsPerWorker, maxJobsPerThread !== undefined ? 'maxJobsPerThread' : 'maxJobsPerWorker', 1);
  if (o.jobTimeout !== undefined) checkMs(o.jobTimeout, 'jobTimeout', 1);
  checkMs(o.closeTimeout, 'closeTimeout', 0);
  checkMs(o.stuckAfter, 'stuckAfter', 1);
  if (o.types !== undefined) o.types = checkTypes(o.types);
  return o;
}

/** batchSize: an integer >= 1; above 1 only where a JavaScript processor takes the whole array. */
function checkBatchSize(o: ResolvedPoolOptions): void {
  checkInteger(o.batchSize, 'batchSize', 1);
  if (o.batchSize === 1) return;
  if (o.runner.kind === 'exec' || o.runner.kind === 'persistent')
    throw new DirQueueError(
      'EBADOPTION',
      `batchSize applies to a module or function processor, which takes the array of jobs; an exec processor takes one job at a time: leave batchSize out (got ${o.batchSize})`,
    );
  if (o.middleware.length > 0)
    throw new DirQueueError(
      'EBADOPTION',
      `middleware wraps the run of one job and batchSize ${o.batchSize} runs an array: leave one out, or do the middleware's work in the batch processor`,
    );
}

const ISOLATIONS: readonly Isolation[] = ['thread', 'process'];

function resolveRunner(processor: PoolOptions['processor'], isolation: unknown): Runner {
  if (isolation !== undefined && !ISOLATIONS.includes(isolation as Isolation)) {
    throw new DirQueueError('EBADOPTION', `isolation must be 'thread' or 'process', got ${describe(isolation)}`);
  }
  if (typeof processor === 'function') {
    if (isolation !== undefined)
      throw new DirQueueError(
        'EBADOPTION',
        `a function processor runs in-process and cannot move to a ${isolation as string}: give its module's path for isolation '${isolation as string}'`,
      );
    return { kind: 'in-process', processor }; // a BatchProcessor when batchSize > 1 (pool.ts calls it so)
  }
  if (processor instanceof URL || (typeof processor === 'string' && processor.length > 0))
    return { kind: isolation === 'process' ? 'process' : 'thread', processor: processorSpecifier(processor) };
  if (processor !== null && typeof processor === 'object' && 'exec' in processor) {
    if (isolation !== undefined)
      throw new DirQueueError('EBADOPTION', 'an exec processor runs in its own processes: leave isolation out');
    const { exec, persistent, ...rest } = processor;
    checkKnown(rest, ['exec', 'persistent'], 'exec processor field');
    if (persistent !== undefined) checkBoolean(persistent, 'processor.persistent');
    const command = execCommand(exec);
    return persistent === true ? { kind: 'persistent', command } : { kind: 'exec', command };
  }
  throw new DirQueueError(
    'EBADOPTION',
    `processor must be a module path, a file URL, a function or { exec: 'command' }, got ${describe(processor)}`,
  );
}

/** A command line: a string for /bin/sh -c, or the program and its arguments. */
function execCommand(exec: unknown): readonly string[] {
  if (typeof exec === 'string' && exec.trim().length > 0) return Object.freeze(['/bin/sh', '-c', exec]);
  if (Array.isArray(exec) && exec.length > 0 && exec.every((part) => typeof part === 'string') && exec[0] !== '')
    return Object.freeze([...exec]);
  throw new DirQueueError(
    'EBADOPTION',
    `processor.exec must be a command line ('./resize.sh --fast') or a non-empty array of strings (['./resize.sh', '--fast']), got ${describe(exec)}`,
  );
}

function workersHint(kind: Runner['kind']): string {
  if (kind === 'in-process' || kind === 'exec')
    return `this pool runs its jobs ${kind === 'exec' ? 'one process per job' : 'in-process'} (use concurrency)`;
  return kind === 'process' ? "isolation 'process' takes processes" : "give isolation: 'process' for processes";
}

function workerCount(count: WorkerCount, name: string): { min: number; max: number } {
  if (typeof count === 'number') {
    checkInteger(count, name, 1);
    return { min: count, max: count };
  }
  if (count === null || typeof count !== 'object')
    throw new DirQueueError('EBADOPTION', `${name} must be a number or { min, max }, got ${describe(count)}`);
  const { min, max, ...rest } = count;
  checkKnown(rest, ['min', 'max'], `${name} field`);
  checkInteger(min, `${name}.min`, 1);
  checkInteger(max, `${name}.max`, 1);
  if (min > max)
    throw new DirQueueError('EBADOPTION', `${name}.min (${min}) is more than ${name}.max (${max}): give min <= max`);
  return { min, max };
}

function checkMiddleware(middleware: unknown, runner: Runner): readonly string[] {
  if (middleware === undefined) return [];
  if (!Array.isArray(middleware))
    throw new DirQueueError('EBADOPTION', `middleware must be an array of module paths, got ${describe(middleware)}`);
  if (runner.kind === 'persistent' && middleware.length > 0)
    throw new DirQueueError(
      'EBADOPTION',
      'middleware runs in JavaScript around a job; a persistent exec worker runs its jobs in its own program: wrap them there',
    );
  return Object.freeze(
    middleware.map((m: unknown, i) => {
      if (!(m instanceof URL) && (typeof m !== 'string' || m.length === 0))
        throw new DirQueueError(
          'EBADOPTION',
          `middleware[${i}] must be a module path or a file URL, got ${describe(m)}`,
        );
      return processorSpecifier(m);
    }),
  );
}

function checkLimits(limits: ResourceLimits | undefined, runner: Runner): ResourceLimits | undefined {
  if (limits === undefined) return undefined;
  if (limits === null || typeof limits !== 'object')
    throw new DirQueueError('EBADOPTION', `resourceLimits must be an object, got ${describe(limits)}`);
  if (runner.kind === 'thread') return limits;
  if (runner.kind !== 'process')
    throw new DirQueueError(
      'EBADOPTION',
      'resourceLimits applies to worker threads and processes of a module processor',
    );
  checkKnown(limits, ['maxOldGenerationSizeMb'], 'resourceLimits field of a worker process');
  if (limits.maxOldGenerationSizeMb !== undefined)
    checkInteger(limits.maxOldGenerationSizeMb, 'resourceLimits.maxOldGenerationSizeMb', 1);
  return limits;
}

/**
 * Every element is checked here, once: the pool claims with these types on
 * every pump, and a claim refuses a type it cannot encode, so one bad element
 * would make every claim throw and the pump retry forever.
 */
function checkTypes(types: unknown): readonly string[] {
  if (!Array.isArray(types) || types.length === 0) {
    throw new DirQueueError('EBADOPTION', `types must be a non-empty array of job types, got ${describe(types)}`);
  }
  types.forEach((type: unknown, i) => {
    try {
      encodeType(type);
    } catch (err) {
      const why = err instanceof DirQueueError ? err.message : String(err);
      throw new DirQueueError(
        'EBADOPTION',
        `types[${i}] is not a job type (${why}); give the types the jobs were enqueued with`,
      );
    }
  });
  return Object.freeze([...(types as string[])]);
}
