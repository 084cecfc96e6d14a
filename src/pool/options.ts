/**
 * The Pool's own options, with their defaults and validation; the options it
 * passes on to its Queue are checked by queue/options.ts.
 */
import type { ResourceLimits } from 'node:worker_threads';
import { DirQueueError } from '../store/errors.js';
import { describe, encodeType } from '../store/names.js';
import { checkInteger, checkKnown, checkMs } from '../store/option-checks.js';
import { queueDefaults, type QueueOptions } from '../queue/options.js';
import { processorSpecifier, type Processor } from './processor.js';

export interface PoolOptions extends QueueOptions {
  /**
   * The processor: a module whose default export is `async (job) => result`,
   * run in worker threads; or a function, run in-process. A module is a path,
   * resolved against process.cwd() when the Pool is made (not against the
   * calling module: pass `new URL('../send.js', import.meta.url)` for that),
   * or a file: URL, as a URL object or a 'file://' string.
   */
  processor: string | URL | Processor;
  /** Worker threads (module processors only). @default 1 */
  threads?: number;
  /** Jobs in flight per thread (module) or in all (function). @default 1 */
  concurrency?: number;
  /** Only jobs of these types; all types when omitted. */
  types?: readonly string[];
  /** Default run limit of a job, ms (a job's own `timeout` wins). @default undefined (none) */
  jobTimeout?: number;
  /** Replace a thread after it has run this many jobs (leaky processors). @default Infinity */
  maxJobsPerThread?: number;
  /** worker_threads resource limits per thread, e.g. { maxOldGenerationSizeMb: 256 }. @default undefined */
  resourceLimits?: ResourceLimits;
  /** close() waits this long for running jobs before releasing them back to queue/, ms. @default 30000 */
  closeTimeout?: number;
  /** After a timeout, a thread that does not answer a ping within this long is stuck and replaced, ms. @default 1000 */
  stuckAfter?: number;
}

export interface ResolvedPoolOptions {
  processor: string | Processor;
  threads: number;
  concurrency: number;
  types: readonly string[] | undefined;
  jobTimeout: number | undefined;
  maxJobsPerThread: number;
  resourceLimits: ResourceLimits | undefined;
  closeTimeout: number;
  stuckAfter: number;
  queue: QueueOptions;
}

export const poolDefaults = Object.freeze({
  threads: 1,
  concurrency: 1,
  maxJobsPerThread: Infinity,
  closeTimeout: 30_000,
  stuckAfter: 1000,
} as const) satisfies Partial<ResolvedPoolOptions>;

const POOL_OPTIONS = Object.freeze([
  'processor',
  'threads',
  'concurrency',
  'types',
  'jobTimeout',
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
    threads,
    concurrency,
    types,
    jobTimeout,
    maxJobsPerThread,
    resourceLimits,
    closeTimeout,
    stuckAfter,
    ...queue
  } = options;
  checkKnown(queue, Object.keys(queueDefaults), 'Pool option', POOL_OPTIONS);
  let resolved: string | Processor;
  if (typeof processor === 'function') resolved = processor;
  else if (processor instanceof URL || (typeof processor === 'string' && processor.length > 0))
    resolved = processorSpecifier(processor);
  else {
    throw new DirQueueError(
      'EBADOPTION',
      `processor must be a module path, a file URL or a function, got ${describe(processor)}`,
    );
  }
  const o: ResolvedPoolOptions = {
    processor: resolved,
    threads: threads ?? poolDefaults.threads,
    concurrency: concurrency ?? poolDefaults.concurrency,
    types,
    jobTimeout,
    maxJobsPerThread: maxJobsPerThread ?? poolDefaults.maxJobsPerThread,
    resourceLimits,
    closeTimeout: closeTimeout ?? poolDefaults.closeTimeout,
    stuckAfter: stuckAfter ?? poolDefaults.stuckAfter,
    queue,
  };
  checkInteger(o.threads, 'threads', 1);
  checkInteger(o.concurrency, 'concurrency', 1);
  if (o.maxJobsPerThread !== Infinity) checkInteger(o.maxJobsPerThread, 'maxJobsPerThread', 1);
  if (o.jobTimeout !== undefined) checkMs(o.jobTimeout, 'jobTimeout', 1);
  checkMs(o.closeTimeout, 'closeTimeout', 0);
  checkMs(o.stuckAfter, 'stuckAfter', 1);
  if (o.types !== undefined) o.types = checkTypes(o.types);
  if (typeof o.processor === 'function' && threads !== undefined && threads !== 1) {
    throw new DirQueueError(
      'EBADOPTION',
      'threads applies to module processors; a function processor runs in-process (use concurrency)',
    );
  }
  return o;
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
