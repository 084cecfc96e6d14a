/**
 * Running a processor function on a claimed job in this process: the job as
 * a processor sees it (processor.ts), and its outcome. Used by the Pool for
 * function processors and by dirqueue/testing's runJobs.
 */
import { recordError } from '../store/errors.js';
import type { Job } from '../queue/job.js';
import type { EnqueueOptions } from '../queue/options.js';
import type { Queue } from '../queue/queue.js';
import { runBatch, type BatchProcessor } from './batch.js';
import type { Processor, ProcessorJob } from './processor.js';
import type { JobFields, RunOutcome } from './worker-messages.js';

/** The fields of a claimed job that a processor sees, as plain data (they cross to a thread or a process). */
export function jobFields(job: Job): JobFields {
  const fields: JobFields = {
    id: job.id,
    type: job.type,
    data: job.data,
    attempt: job.attempt,
    attempts: job.attempts,
    priority: job.priority,
  };
  return withOptionalFields(job, fields);
}

/** `into` with the fields a job has only sometimes (absent, not undefined, when it has not). */
function withOptionalFields<T extends JobFields>(job: Job, into: T): T {
  if (job.schedule !== undefined) into.schedule = job.schedule;
  if (job.group !== undefined) into.group = job.group;
  if (job.parents !== undefined) into.parents = job.parents;
  if (job.batch !== undefined) into.batch = job.batch;
  if (job.coalesce !== undefined) into.coalesce = job.coalesce;
  return into;
}

/**
 * Where a processor's signal comes from: read only when the processor reads its `signal`, so a
 * LazyAbort (the pool's) makes none for a processor that never does.
 */
export interface SignalSource {
  readonly signal: AbortSignal;
}

/** Run `processor` on `job` here, with `signal`'s signal as the job's signal; never rejects. */
export async function runInProcess(
  processor: Processor,
  job: Job,
  queue: Queue,
  signal: SignalSource,
): Promise<RunOutcome> {
  try {
    return { ok: true, result: await processor(view(job, queue, signal)) };
  } catch (error) {
    return { ok: false, error: recordError(error) };
  }
}

/** Run a batch processor on `jobs` here, `signals[i]`'s signal the signal of `jobs[i]`; never rejects. */
export function runBatchInProcess(
  processor: BatchProcessor,
  jobs: readonly Job[],
  queue: Queue,
  signals: readonly SignalSource[],
): Promise<RunOutcome[]> {
  return runBatch(
    processor,
    jobs.map((job, i) => view(job, queue, signals[i]!)),
  );
}

function view(job: Job, queue: Queue, abort: SignalSource): ProcessorJob {
  // one literal, not a spread of jobFields(job): a spread into a literal with a getter cost 7-13 us per
  // job here against 0.9 us, a twelfth of what a whole job costs the pool (a --cpu-prof of a drain)
  return withOptionalFields(job, {
    id: job.id,
    type: job.type,
    data: job.data,
    attempt: job.attempt,
    attempts: job.attempts,
    priority: job.priority,
    // a getter: most processors never read it, and the signal is made only for one that does
    get signal() {
      return abort.signal;
    },
    progress: (value) => job.progress(value),
    log: (line) => job.log(line),
    enqueue: (type, data, options) => queue.enqueue(type, data, withKeyFrom(options, job.id)),
  } satisfies ProcessorJob);
}

/**
 * A running job's enqueue under a unique key hands the key over when the job itself holds it: the
 * recursive-queuing pattern (a job enqueues its own next run under its own key) would otherwise be
 * refused as a duplicate of the running job. keys.ts hands over only when `from` is running and holds
 * the key; for any other key this changes nothing.
 */
export function withKeyFrom(options: EnqueueOptions | undefined, from: string): EnqueueOptions | undefined {
  if (options === null || typeof options !== 'object' || options.key === undefined || 'keyFrom' in options)
    return options;
  return { ...options, keyFrom: from };
}
