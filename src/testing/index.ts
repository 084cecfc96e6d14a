/**
 * dirqueue/testing: what a test of a processor needs, without a worker pool
 * or a server. `testQueue()` is a real queue in a fresh temporary directory
 * that its close() removes; `runJobs()` runs every ready job through a
 * processor function in this process, one at a time, and says what
 * completed and what failed: Minion's perform_jobs, Oban.Testing's
 * drain_queue, Sidekiq::Testing's drain. The jobs end through the queue's
 * own verbs, so retries, backoff, children and unique keys behave as they
 * do under a Pool.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runInProcess } from '../pool/in-process.js';
import type { Processor } from '../pool/processor.js';
import type { QueueOptions } from '../queue/options.js';
import { Queue } from '../queue/queue.js';
import { DirQueueError, recordError, type RecordedError } from '../store/errors.js';
import { describe } from '../store/names.js';
import { checkBoolean, checkInteger, checkKnown } from '../store/option-checks.js';

/** A Queue in a temporary directory of its own; close() closes it and removes the directory. */
export type TestQueue = Queue & AsyncDisposable;

/**
 * Open a queue in a fresh directory under the OS's temp directory. Options
 * are Queue.open's; `durable` defaults to false here (a test needs no fsync).
 * It is AsyncDisposable too: `await using q = await testQueue()` (TypeScript 5.2+,
 * Node 24) closes and removes it at the end of the block.
 */
export async function testQueue(options: QueueOptions = {}): Promise<TestQueue> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-test-'));
  let queue: Queue;
  try {
    queue = await Queue.open(dir, { durable: false, ...options, create: true });
  } catch (error) {
    fs.rmSync(dir, { recursive: true, force: true });
    throw error;
  }
  const close = queue.close.bind(queue);
  const closeAndRemove = async (): Promise<void> => {
    try {
      await close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  return Object.assign(queue, { close: closeAndRemove, [Symbol.asyncDispose]: closeAndRemove });
}

export interface RunJobsOptions {
  /** Only jobs of these types; others stay where they are. */
  types?: readonly string[];
  /**
   * Also run delayed jobs (retries waiting for their backoff, jobs enqueued
   * with a delay) as if their time had come, until none of these types is
   * left in delayed/ either. @default false
   */
  delayed?: boolean;
  /** Give up, rejecting with ETIMEOUT, after this many runs: a job that enqueues itself forever. @default 10000 */
  max?: number;
}

export interface CompletedRun {
  id: string;
  type: string;
  data: unknown;
  attempt: number;
  result: unknown;
}

export interface FailedRun {
  id: string;
  type: string;
  data: unknown;
  attempt: number;
  error: RecordedError;
  /** True when the job has attempts left: it went to delayed/ or queue/ to run again; false when it is in failed/. */
  retrying: boolean;
}

/** Every run of runJobs, in the order they ended. A job that failed and then completed is in both lists. */
export interface RunJobsResult {
  completed: CompletedRun[];
  failed: FailedRun[];
}

const DEFAULT_MAX_RUNS = 10_000;

/**
 * Run every ready job (of `types`, when given) through `processor` in this
 * process, one at a time, until none is ready; with `delayed`, delayed jobs
 * are made ready and run too, so a job that fails and has attempts left runs
 * again in the same call. Jobs that jobs enqueue run as well. The processor
 * gets the same job a Pool's function processor gets (data, attempt,
 * signal, progress, log, enqueue); `Data` types its `data`, as the caller
 * knows what it enqueued.
 */
export async function runJobs<Data = unknown>(
  queue: Queue,
  processor: Processor<Data>,
  options: RunJobsOptions = {},
): Promise<RunJobsResult> {
  if (!(queue instanceof Queue))
    throw new DirQueueError(
      'EBADOPTION',
      `runJobs needs a Queue (from testQueue() or Queue.open), got ${describe(queue)}`,
    );
  if (typeof processor !== 'function')
    throw new DirQueueError(
      'EBADOPTION',
      `runJobs runs a processor function, (job) => result, got ${describe(processor)}; for a module, import its default export`,
    );
  const { types, delayed = false, max = DEFAULT_MAX_RUNS } = checkOptions(options);
  const out: RunJobsResult = { completed: [], failed: [] };
  const wanted = (type: string): boolean => types === undefined || types.includes(type);
  for (let runs = 0; ;) {
    const job = await queue.claim(types === undefined ? { wait: 0 } : { types, wait: 0 });
    if (job === undefined) {
      if (!delayed || !(await readyDelayed(queue, wanted))) return out;
      continue;
    }
    if (++runs > max) {
      await job.release();
      throw new DirQueueError(
        'ETIMEOUT',
        `runJobs gave up after ${max} runs with jobs still ready (the last: ${job.id}): does a job enqueue itself forever? Raise max if not`,
      );
    }
    const ran = await runInProcess(processor as Processor, job, queue, job); // Data: the caller's word for what it enqueued
    const base = { id: job.id, type: job.type, data: job.data, attempt: job.attempt };
    if (ran.ok) {
      try {
        await job.complete(ran.result);
        out.completed.push({ ...base, result: ran.result });
        continue;
      } catch (error) {
        if ((error as DirQueueError).code !== 'EBADDATA') throw error;
        // a result JSON cannot hold fails the job, as under a Pool
        const recorded = recordError(error);
        const where = await job.fail(Object.assign(new Error(recorded.message), recorded));
        out.failed.push({ ...base, error: recorded, retrying: where === 'retrying' });
        continue;
      }
    }
    const where = await job.fail(Object.assign(new Error(ran.error.message), ran.error));
    out.failed.push({ ...base, error: ran.error, retrying: where === 'retrying' });
  }
}

/** Make every delayed job of the wanted types ready now (Queue.retry). Resolves false when there was none. */
async function readyDelayed(queue: Queue, wanted: (type: string) => boolean): Promise<boolean> {
  let moved = false;
  for (const info of await queue.list('delayed')) {
    if (!wanted(info.type)) continue;
    try {
      await queue.retry(info.id);
      moved = true;
    } catch (error) {
      if ((error as DirQueueError).code !== 'ENOTFOUND') throw error; // else made ready elsewhere meanwhile
    }
  }
  return moved;
}

function checkOptions(options: RunJobsOptions): RunJobsOptions {
  if (options === null || typeof options !== 'object')
    throw new DirQueueError('EBADOPTION', `runJobs options must be an object, got ${describe(options)}`);
  checkKnown(options, ['types', 'delayed', 'max'], 'runJobs option');
  const { types, delayed, max } = options;
  if (types !== undefined && (!Array.isArray(types) || !types.every((t) => typeof t === 'string')))
    throw new DirQueueError('EBADOPTION', `types must be an array of job types, got ${describe(types)}`);
  if (delayed !== undefined) checkBoolean(delayed, 'delayed');
  if (max !== undefined) checkInteger(max, 'max', 1);
  return options;
}
