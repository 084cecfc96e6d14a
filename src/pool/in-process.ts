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
  if (job.schedule !== undefined) fields.schedule = job.schedule;
  if (job.group !== undefined) fields.group = job.group;
  if (job.parents !== undefined) fields.parents = job.parents;
  if (job.batch !== undefined) fields.batch = job.batch;
  if (job.coalesce !== undefined) fields.coalesce = job.coalesce;
  return fields;
}

/** Run `processor` on `job` here, with `signal` as the job's signal; never rejects. */
export async function runInProcess(
  processor: Processor,
  job: Job,
  queue: Queue,
  signal: AbortSignal,
): Promise<RunOutcome> {
  try {
    return { ok: true, result: await processor(view(job, queue, signal)) };
  } catch (error) {
    return { ok: false, error: recordError(error) };
  }
}

/** Run a batch processor on `jobs` here, `signals[i]` the signal of `jobs[i]`; never rejects. */
export function runBatchInProcess(
  processor: BatchProcessor,
  jobs: readonly Job[],
  queue: Queue,
  signals: readonly AbortSignal[],
): Promise<RunOutcome[]> {
  return runBatch(
    processor,
    jobs.map((job, i) => view(job, queue, signals[i]!)),
  );
}

function view(job: Job, queue: Queue, signal: AbortSignal): ProcessorJob {
  return {
    ...jobFields(job),
    signal,
    progress: (value) => job.progress(value),
    log: (line) => job.log(line),
    enqueue: (type, data, options) => queue.enqueue(type, data, withKeyFrom(options, job.id)),
  };
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
