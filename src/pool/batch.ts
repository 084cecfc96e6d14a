/**
 * Batches (Pool's `batchSize`): the processor gets an array of jobs of one type and one coalesce key
 * (Queue.claimMany with coalesce) and returns an array as long, one entry per job: an Error fails that
 * job's attempt, any other value is its result. Each job keeps its own claim and ends on its own; what
 * the processor throws, or an answer that is not such an array, fails every job of the batch. The same
 * in a worker thread, a worker process and in-process.
 */
import { recordError } from '../store/errors.js';
import { describe } from '../store/names.js';
import type { Processor, ProcessorJob } from './processor.js';
import type { RunOutcome } from './worker-messages.js';

/** A processor of batches: one entry per job, in the jobs' order; an Error entry fails that job. */
export type BatchProcessor<Data = unknown, Result = unknown> = (
  jobs: ProcessorJob<Data>[],
) => (Result | Error)[] | Promise<(Result | Error)[]>;

/**
 * A batch function as Pool's `processor` (with batchSize > 1): the function itself, typed so. PoolOptions
 * types `processor` as one job's, since a union of the two would leave the parameter of every inline
 * `(job) => ...` untyped.
 */
export function batchProcessor<Data = unknown, Result = unknown>(processor: BatchProcessor<Data, Result>): Processor {
  return processor as unknown as Processor;
}

/** Run `processor` on `jobs` and give each job's outcome, in order; never rejects. */
export async function runBatch(processor: BatchProcessor, jobs: ProcessorJob[]): Promise<RunOutcome[]> {
  let answer: unknown;
  try {
    answer = await processor(jobs);
  } catch (error) {
    return failAll(recordError(error), jobs.length);
  }
  if (!Array.isArray(answer) || answer.length !== jobs.length) {
    const got = Array.isArray(answer) ? `an array of ${answer.length}` : describe(answer);
    return failAll(
      {
        message: `a batch processor must return an array of one entry per job (a result, or an Error for a job that failed): got ${got} for ${jobs.length} jobs`,
        code: 'EPROCESSOR',
      },
      jobs.length,
    );
  }
  return answer.map((entry: unknown) =>
    entry instanceof Error ? { ok: false, error: recordError(entry) } : { ok: true, result: entry },
  );
}

function failAll(error: Extract<RunOutcome, { ok: false }>['error'], n: number): RunOutcome[] {
  return Array.from({ length: n }, () => ({ ok: false, error }));
}
