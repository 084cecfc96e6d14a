/**
 * Pool batchSize (issue 15, coalescing): the processor gets arrays of jobs of one type and one coalesce
 * key, claimed with claimMany({ coalesce: true }), and answers an array as long; each job ends on its
 * own. In-process, in worker threads and in worker processes, and from dirq work --batch-size.
 */
import { describe, expect, it } from 'vitest';
import { batchProcessor, DirQueueError, Pool, type Processor, type ProcessorJob } from '../dist/index.js';
import { CLI } from './support/cli.js';
import { processors, startPool } from './support/pools.js';
import { exited, spawnNode, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const KEYS = Array.from({ length: 10 }, (_, i) => `user-${i}`);

interface Seen {
  batch: string;
  size: number;
  keys: string[];
  types: string[];
  n: number;
}

/** 1,000 jobs over 10 keys (and 50 of no key), interleaved, of two types. */
const items = Array.from({ length: 1_000 }, (_, n) => ({
  type: n % 7 === 0 ? 'other' : 'digest',
  data: { n },
  ...(n % 20 === 19 ? {} : { coalesce: KEYS[n % 10]! }),
}));

/** Run the 1,000 jobs through a pool of `options` with batchSize 50; every job's result (one each). */
async function drain(options: { processor: string | Processor; isolation?: 'process'; threads?: number }) {
  const { dir, q } = await tempQueue();
  await q.enqueueMany(items);
  const results = new Map<number, Seen>();
  const twice: number[] = [];
  const pool = await startPool(dir, { ...options, batchSize: 50, concurrency: 2 });
  pool.on('completed', (_job, result) => {
    const seen = result as Seen;
    if (results.has(seen.n)) twice.push(seen.n);
    results.set(seen.n, seen);
  });
  await until(() => results.size === items.length, 'every job done');
  await pool.onIdle();
  await pool.close();
  expect(await q.counts()).toMatchObject({ queue: 0, active: 0, done: items.length, failed: 0 });
  await q.close();
  expect(twice).toEqual([]);
  return [...results.values()];
}

/** Every batch has one type and one key, at most 50 jobs, and its results say the same size. */
function checkBatches(results: Seen[]): void {
  const batches = new Map<string, Seen[]>();
  for (const seen of results) batches.set(seen.batch, [...(batches.get(seen.batch) ?? []), seen]);
  for (const [, jobs] of batches) {
    expect(jobs[0]!.keys).toHaveLength(1);
    expect(jobs[0]!.types).toHaveLength(1);
    expect(jobs.length).toBe(jobs[0]!.size);
    expect(jobs.length).toBeLessThanOrEqual(50);
  }
  expect(batches.size).toBeLessThan(results.length / 5); // batches, not one by one
}

describe('Pool batchSize', () => {
  it('1,000 jobs over 10 keys, in-process: every batch has one key, each job ends once', async () => {
    const batch = batchProcessor<{ n: number }>((jobs) => {
      const keys = [...new Set(jobs.map((j) => j.coalesce ?? ''))];
      const types = [...new Set(jobs.map((j) => j.type))];
      return jobs.map((j) => ({ batch: jobs[0]!.id, size: jobs.length, keys, types, n: j.data.n }));
    });
    checkBatches(await drain({ processor: batch }));
  });

  it('the same in worker threads and in worker processes', async () => {
    checkBatches(await drain({ processor: processors('batch'), threads: 2 }));
    checkBatches(await drain({ processor: processors('batch'), isolation: 'process' }));
  });

  it('an Error in the answer fails that job only, which retries alone; a throw or a short answer fails them all', async () => {
    const { dir, q } = await tempQueue();
    const ok = await q.enqueueMany(
      Array.from({ length: 10 }, (_, n) => ({ type: 't', data: { n, fail: n % 3 === 0 }, coalesce: 'k', backoff: 1 })),
    );
    const retried: string[] = [];
    const pool = await startPool(dir, { processor: processors('batch'), batchSize: 10 });
    pool.on('retrying', (job) => retried.push(job.id));
    await until(async () => (await q.counts()).done === 10, 'the batch and its retries done');
    expect(retried.sort()).toEqual(ok.filter((_, n) => n % 3 === 0).map((r) => r.id));
    for (const [n, ref] of ok.entries()) expect((await q.get(ref.id)).attemptsMade).toBe(n % 3 === 0 ? 1 : 0);
    // every job carries the trigger: the running pool may claim them in more than one batch, as their files appear
    const thrown = await q.enqueueMany(
      [1, 2, 3].map(() => ({ type: 'u', data: { throw: true }, coalesce: 'k', attempts: 1 })),
    );
    const short = await q.enqueueMany(
      [1, 2, 3].map(() => ({ type: 'v', data: { short: true }, coalesce: 'k', attempts: 1 })),
    );
    await until(async () => (await q.counts()).failed === 6, 'both batches failed');
    for (const { id } of thrown) expect((await q.get(id)).error?.message).toBe('the whole batch failed');
    for (const { id } of short)
      expect((await q.get(id)).error).toMatchObject({
        code: 'EPROCESSOR',
        message: expect.stringMatching(/must return an array of one entry per job .* got an array of \d+ for \d+ jobs/),
      });
    await pool.close();
    await q.close();
  });

  it('a job cancelled in a running batch ends ECANCELLED; the others complete', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 3 }, (_, n) => ({ type: 't', data: n, coalesce: 'k' })));
    let started: ((jobs: ProcessorJob[]) => void) | undefined;
    const running = new Promise<ProcessorJob[]>((resolve) => (started = resolve));
    const batch = batchProcessor(async (jobs) => {
      started!(jobs);
      await new Promise((resolve) => jobs[1]!.signal.addEventListener('abort', resolve));
      return jobs.map((j) => j.data);
    });
    const pool = await startPool(dir, { processor: batch, batchSize: 3 });
    const jobs = await running;
    expect(jobs.map((j) => j.id)).toEqual(refs.map((r) => r.id));
    await q.cancel(refs[1]!.id);
    await until(async () => (await q.counts()).done === 2 && (await q.counts()).failed === 1, 'the batch ended');
    expect((await q.get(refs[1]!.id)).error?.code).toBe('ECANCELLED');
    await pool.close();
    await q.close();
  });

  it('a batch runs under the shortest timeout of its jobs: at it, every job fails EJOBTIMEOUT', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(
      [undefined, 100, 60_000].map((timeout) => ({
        type: 't',
        coalesce: 'k',
        attempts: 1,
        ...(timeout === undefined ? {} : { timeout }),
      })),
    );
    const batch = batchProcessor(async (jobs) => {
      await Promise.all(jobs.map((j) => new Promise((resolve) => j.signal.addEventListener('abort', resolve))));
      return jobs.map(() => 'too late');
    });
    const pool = await startPool(dir, { processor: batch, batchSize: 3, jobTimeout: 30_000 });
    await until(async () => (await q.counts()).failed === 3, 'the batch timed out');
    for (const { id } of refs) expect((await q.get(id)).error?.code).toBe('EJOBTIMEOUT');
    await pool.close();
    await q.close();
  });

  it('bad options: batchSize not an integer >= 1, or with an exec processor or middleware (EBADOPTION)', () => {
    const bad = (options: object, message: RegExp): void => {
      let error: unknown;
      try {
        new Pool('/nonexistent', { processor: () => undefined, ...options });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(DirQueueError);
      expect((error as DirQueueError).code).toBe('EBADOPTION');
      expect((error as Error).message).toMatch(message);
    };
    bad({ batchSize: 0 }, /batchSize must be an integer >= 1, got 0/);
    bad({ batchSize: 2.5 }, /batchSize must be an integer >= 1, got 2.5/);
    bad({ batchSize: '5' }, /batchSize must be an integer >= 1/);
    bad({ processor: { exec: 'cat' }, batchSize: 5 }, /an exec processor takes one job at a time/);
    bad({ processor: { exec: 'cat', persistent: true }, batchSize: 5 }, /an exec processor/);
    bad({ processor: processors('batch'), middleware: [processors('echo')], batchSize: 5 }, /middleware wraps/);
  });
});

describe('dirq work --batch-size', () => {
  it('drains coalesced jobs in batches; a bad size is a usage error', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(
      Array.from({ length: 40 }, (_, n) => ({ type: 't', data: { n }, coalesce: KEYS[n % 4]! })),
    );
    const child = spawnNode([CLI, 'work', dir, processors('batch'), '--batch-size', '10', '--drain']);
    let stdout = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
    expect(await exited(child)).toBe(0);
    expect(stdout).toContain('batches of up to 10');
    const batches = new Set<string>();
    for (const { id } of refs) {
      const info = await q.get(id);
      expect(info.state).toBe('done');
      batches.add((info.result as Seen).batch);
    }
    expect(batches.size).toBe(4);
    const bad = spawnNode([CLI, 'work', dir, processors('batch'), '--batch-size', '0', '--drain']);
    expect(await exited(bad)).not.toBe(0);
    await q.close();
  });
});
