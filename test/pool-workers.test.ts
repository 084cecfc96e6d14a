/**
 * Worker processes (isolation 'process'), autoscaling between min and max,
 * middleware in threads, processes and in-process, recycleAfterError, and the
 * options' checks. Crashes are real: a processor that segfaults, calls
 * process.exit, outgrows its heap, or spins deaf to SIGTERM.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { type Pool, type PoolOptions, type Processor } from '../dist/index.js';
import { processors, startPool } from './support/pools.js';
import { tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const middleware = (name: string): string => new URL(`./fixtures/middleware/${name}.mjs`, import.meta.url).pathname;
const isolated = processors('isolated');

interface Ran {
  pid: number;
  thread: number;
  trail: string[];
  echo: unknown;
  after?: string;
  tookMs?: number;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The same as isolated.mjs's default case, for the in-process runs. */
const inProcess: Processor = (job) => {
  const data = (job.data ?? {}) as { throw?: string };
  if (data.throw !== undefined) throw new Error(data.throw);
  return { pid: process.pid, thread: 0, trail: (job as { trail?: string[] }).trail ?? [], echo: job.data };
};

describe("isolation: 'process'", () => {
  it('a worker that segfaults, calls process.exit or outgrows its heap costs only its own job; the pool replaces it', async () => {
    const { dir, q } = await tempQueue();
    const crashes = await q.enqueueMany(
      [{ segv: true }, { exit: 3 }, { hog: true }].map((data) => ({ type: 't', data, attempts: 2, backoff: 10 })),
    );
    const fine = await q.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ type: 't', data: { i } })));
    const errors: string[] = [];
    const pool = await startPool(dir, {
      processor: isolated,
      isolation: 'process',
      processes: 3,
      resourceLimits: { maxOldGenerationSizeMb: 64 },
    });
    pool.on('error', (e) => errors.push(e.message));
    for (const { id } of fine) expect(await q.waitFor(id, { timeout: 60_000 })).toMatchObject({ echo: {} });
    const why = ['was killed by SIGSEGV', 'exited with code 3', 'ran out of memory (its limit: 64 MB)'];
    for (const [i, { id }] of crashes.entries()) {
      await expect(q.waitFor(id, { timeout: 60_000 })).rejects.toMatchObject({ jobError: { code: 'EWORKER' } });
      const info = await q.get(id);
      expect(info).toMatchObject({ state: 'failed', attemptsMade: 2 });
      expect(info.errors.map((e) => e.code)).toEqual(['EWORKER', 'EWORKER']);
      expect(info.errors[0]!.message).toContain(why[i]);
    }
    expect(errors).toHaveLength(6);
    expect(pool.counts).toMatchObject({ completed: 20, failed: 3, retried: 3 });
    expect(pool.workers).toBe(3); // each dead worker was replaced
    const { id } = await q.enqueue('t', { after: true });
    expect(await q.waitFor(id, { timeout: 30_000 })).toMatchObject({ echo: { after: true } });
    await pool.close();
    await q.close();
  });

  it('a process stuck past a timeout and deaf to SIGTERM is SIGKILLed; its other job goes back to queue/ unharmed', async () => {
    const { dir, q } = await tempQueue();
    const first = await q.enqueue('t', { first: true });
    const errors: Error[] = [];
    const pool = await startPool(dir, {
      processor: isolated,
      isolation: 'process',
      concurrency: 2,
      stuckAfter: 300,
    });
    pool.on('error', (e) => errors.push(e));
    const { pid } = (await q.waitFor(first.id, { timeout: 30_000 })) as Ran;
    const neighbour = await q.enqueue('t', { sleep: 1500 }, { priority: 5, timeout: 60_000 });
    await until(async () => (await q.get(neighbour.id)).state === 'active', 'the neighbour to start');
    const spinner = await q.enqueue('t', { spinDeaf: true }, { attempts: 1, timeout: 300 });
    await expect(q.waitFor(spinner.id, { timeout: 30_000 })).rejects.toMatchObject({
      jobError: { code: 'EJOBTIMEOUT' },
    });
    await until(() => !alive(pid), 'the stuck process to be killed', 30_000);
    const ran = (await q.waitFor(neighbour.id, { timeout: 30_000 })) as Ran;
    expect(ran.pid).not.toBe(pid); // it ran again, in the replacement
    expect(await q.get(neighbour.id)).toMatchObject({ state: 'done', attemptsMade: 0, runs: 1 }); // released: not counted
    expect(errors.map((e) => (e as { code?: string }).code)).toEqual(['ESTUCK']);
    expect(errors[0]!.message).toContain('stuck in synchronous code');
    await pool.close();
    await q.close();
  });

  it('recycles processes after maxJobsPerWorker, and runs progress, logs and child jobs from a process', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ type: 't', data: { i } })));
    const pool = await startPool(dir, { processor: isolated, isolation: 'process', maxJobsPerWorker: 2 });
    const pids = new Map<number, number>();
    for (const { id } of refs) {
      const { pid } = (await q.waitFor(id, { timeout: 30_000 })) as Ran;
      pids.set(pid, (pids.get(pid) ?? 0) + 1);
    }
    expect(pids.size).toBeGreaterThanOrEqual(3);
    expect([...pids.values()].every((n) => n <= 2)).toBe(true);
    expect(pids.has(process.pid)).toBe(false);
    await pool.close();
    const echo = await startPool(dir, { processor: processors('echo'), isolation: 'process' });
    const parent = await q.enqueue('t', { progress: true, children: 2 });
    expect(await q.waitFor(parent.id, { timeout: 30_000 })).toMatchObject({ echo: { children: 2 } });
    const history = (await q.get(parent.id)).history.map((e) => e.event);
    expect(history).toEqual(['progress', 'log', 'result']);
    await until(async () => (await q.counts()).done === 9, 'the two child jobs to run too');
    await echo.close();
    await q.close();
  });
});

describe.each(['thread', 'process'] as const)('a %s worker', (isolation) => {
  it('whose job ignores its signal past its timeout is stopped and replaced; its other job goes back', async () => {
    const { dir, q } = await tempQueue();
    const errors: Error[] = [];
    const pool = await startPool(dir, { processor: isolated, isolation, concurrency: 2, stuckAfter: 300 });
    pool.on('error', (e) => errors.push(e));
    const neighbour = await q.enqueue('t', { sleep: 1000 }, { priority: 5, timeout: 60_000 });
    await until(async () => (await q.get(neighbour.id)).state === 'active', 'the neighbour to start');
    const deaf = await q.enqueue('t', { deaf: true }, { attempts: 1, timeout: 200 });
    await expect(q.waitFor(deaf.id, { timeout: 30_000 })).rejects.toMatchObject({ jobError: { code: 'EJOBTIMEOUT' } });
    expect(await q.waitFor(neighbour.id, { timeout: 30_000 })).toMatchObject({ echo: { sleep: 1000 } });
    expect(await q.get(neighbour.id)).toMatchObject({ attemptsMade: 0, runs: 1 }); // released: not counted
    expect(errors.map((e) => e.message)).toEqual([expect.stringContaining('ignored its signal for 300 ms')]);
    await pool.close();
    await q.close();
  });

  it('recycleAfterError replaces the worker after a job throws; by default the worker stays', async () => {
    for (const recycleAfterError of [true, false]) {
      const { dir, q } = await tempQueue();
      const [before, , after] = await q.enqueueMany([
        { type: 't', data: {}, priority: 3 },
        { type: 't', data: { throw: 'no' }, priority: 2, attempts: 1 },
        { type: 't', data: {}, priority: 1 },
      ]);
      const pool = await startPool(dir, { processor: isolated, isolation, recycleAfterError });
      await pool.onIdle();
      const a = (await q.waitFor(before!.id)) as Ran;
      const b = (await q.waitFor(after!.id)) as Ran;
      const where = (r: Ran): number => (isolation === 'thread' ? r.thread : r.pid);
      if (recycleAfterError) expect(where(b)).not.toBe(where(a));
      else expect(where(b)).toBe(where(a));
      await pool.close();
      await q.close();
    }
  });
});

describe.each(['thread', 'process', 'in-process'] as const)('middleware in-%s', (where) => {
  const options = (extra: Partial<PoolOptions> = {}): PoolOptions => ({
    processor: where === 'in-process' ? inProcess : isolated,
    ...(where === 'process' ? { isolation: 'process' as const } : {}),
    middleware: [middleware('outer'), middleware('inner')],
    ...extra,
  });

  it('wraps every run, outermost first; what a middleware throws fails the attempt', async () => {
    const { dir, q } = await tempQueue();
    const ok = await q.enqueue('t', { n: 1 });
    const refused = await q.enqueue('t', { outerThrows: true }, { attempts: 1 });
    const pool = await startPool(dir, options());
    const ran = (await q.waitFor(ok.id, { timeout: 30_000 })) as Ran;
    expect(ran).toMatchObject({ trail: ['outer', 'inner'], after: 'outer', echo: { n: 1 } });
    expect(typeof ran.tookMs).toBe('number');
    await expect(q.waitFor(refused.id, { timeout: 30_000 })).rejects.toMatchObject({
      jobError: { code: 'EMIDDLEWARE', message: 'outer middleware refused the job' },
    });
    await pool.close();
    await q.close();
  });

  it('a middleware module without a default export stops the start with EPROCESSOR', async () => {
    const { dir, q } = await tempQueue();
    await expect(startPool(dir, options({ middleware: [middleware('no-default')] }))).rejects.toMatchObject({
      code: 'EPROCESSOR',
      message: expect.stringContaining('has no default export function: export default async function (job, next)'),
    });
    await q.close();
  });
});

describe.each(['thread', 'process'] as const)('autoscaled %s workers', (isolation) => {
  it('grow to max while jobs wait and every worker is busy, and shrink to min when idle', async () => {
    const { dir, q } = await tempQueue();
    const count = { min: 1, max: 3 };
    const pool: Pool = await startPool(dir, {
      processor: isolated,
      isolation,
      ...(isolation === 'thread' ? { threads: count } : { processes: count }),
      idleTimeout: 300,
    });
    const sizes: string[] = [];
    pool.on('grew', (n) => sizes.push(`+${n}`));
    pool.on('shrank', (n) => sizes.push(`-${n}`));
    expect(pool.workers).toBe(1);
    // one job at a time never needs a second worker
    for (let i = 0; i < 3; i++) await q.waitFor((await q.enqueue('t', { i })).id, { timeout: 30_000 });
    expect(sizes).toEqual([]);
    // the jobs wait for a file, so every worker stays busy however slowly a loaded machine starts the next one
    const release = path.join(dir, 'release');
    await q.enqueueMany(Array.from({ length: 30 }, () => ({ type: 't', data: { untilExists: release } })));
    await until(() => sizes.includes('+3') && pool.counts.running === 3, 'the pool to grow to max', 30_000);
    fs.writeFileSync(release, '');
    await pool.onIdle();
    await until(() => pool.workers === 1, 'the pool to shrink to min', 30_000);
    expect(sizes).toEqual(['+2', '+3', '-2', '-1']);
    expect(pool.counts).toMatchObject({ completed: 33, failed: 0 });
    await pool.close();
    await q.close();
  });

  it('keep the others working while a new worker starts slowly, so none is stopped as idle meanwhile', async () => {
    const { dir, q } = await tempQueue();
    const count = { min: 1, max: 2 };
    const pool: Pool = await startPool(dir, {
      processor: processors('slow-start'),
      isolation,
      ...(isolation === 'thread' ? { threads: count } : { processes: count }),
      idleTimeout: 300,
    });
    const sizes: string[] = [];
    let completedWhenGrown = 0;
    pool.on('grew', (n) => {
      sizes.push(`+${n}`);
      completedWhenGrown = pool.counts.completed;
    });
    pool.on('shrank', (n) => sizes.push(`-${n}`));
    await q.enqueueMany(Array.from({ length: 20 }, () => ({ type: 't', data: { sleep: 100 } })));
    await until(() => pool.counts.completed === 20, 'the jobs to run', 60_000);
    await until(() => pool.workers === 1, 'the pool to shrink to min', 30_000);
    // the first worker ran jobs for the second it took the second to load (about ten), instead of idling
    expect(completedWhenGrown).toBeGreaterThanOrEqual(3);
    expect(sizes).toEqual(['+2', '-1']);
    await pool.close();
    await q.close();
  });
});

describe('worker options', () => {
  it.each<[string, Partial<PoolOptions>, RegExp]>([
    ['min > max', { threads: { min: 3, max: 2 } }, /threads\.min \(3\) is more than threads\.max \(2\)/],
    ['zero workers', { threads: 0 }, /threads must be an integer >= 1, got 0/],
    ['zero min', { processes: { min: 0, max: 2 }, isolation: 'process' }, /processes\.min must be an integer >= 1/],
    ['a misspelt isolation', { isolation: 'proces' as never }, /isolation must be 'thread' or 'process', got "proces"/],
    ['threads for processes', { isolation: 'process', threads: 2 }, /threads applies to worker threads/],
    ['processes for threads', { processes: 2 }, /processes applies to worker processes/],
    ['a middleware that is not a list', { middleware: 'a.js' as never }, /middleware must be an array/],
    ['both names of max jobs', { maxJobsPerWorker: 2, maxJobsPerThread: 3 }, /maxJobsPerWorker or maxJobsPerThread/],
    [
      'a thread-only limit for processes',
      { isolation: 'process', resourceLimits: { stackSizeMb: 4 } },
      /unknown resourceLimits field of a worker process "stackSizeMb"/,
    ],
    [
      'a non-boolean recycleAfterError',
      { recycleAfterError: 'yes' as never },
      /recycleAfterError must be true or false/,
    ],
  ])('refuse %s with EBADOPTION', async (_, extra, message) => {
    const { dir, q } = await tempQueue();
    await expect(startPool(dir, { processor: isolated, ...extra })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringMatching(message),
    });
    await q.close();
  });

  it('refuse to move a function processor to another process or thread', async () => {
    const { dir, q } = await tempQueue();
    await expect(startPool(dir, { processor: inProcess, isolation: 'process' })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining("give its module's path for isolation 'process'"),
    });
    await q.close();
  });
});
