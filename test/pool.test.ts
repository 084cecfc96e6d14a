/** The worker pool: threads that run a processor module, or an in-process function (watch and poll-only modes). */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { Pool, type Processor } from '../dist/index.js';
import { processors, startPool } from './support/pools.js';
import { tempDir, tempQueue, WATCH } from './support/temp.js';
import { until } from './support/wait.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

describe('Pool', () => {
  it('drains jobs with worker threads and resolves onIdle', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ type: 't', data: { i } })));
    const pool = await startPool(dir, { processor: processors('echo'), threads: 2, concurrency: 4 });
    await pool.onIdle();
    expect(pool.counts).toMatchObject({ completed: 200, failed: 0, running: 0 });
    expect(await q.counts()).toMatchObject({ queue: 0, active: 0, done: 200 });
    const result = (await q.waitFor(refs[7]!.id)) as { echo: unknown; thread: number };
    expect(result.echo).toEqual({ i: 7 });
    expect(result.thread).toBeGreaterThan(0); // it ran in a worker thread
    await pool.close();
    await q.close();
  });

  it('picks up a job another process enqueues while it is idle', async () => {
    // watching: only the inotify event can start it within the deadline, since the poll and the rescan
    // floor are a minute away; poll-only: the 50 ms poll finds it (queue/'s mtime moved)
    const { dir, q } = await tempQueue();
    const pool = await startPool(dir, {
      processor: processors('echo'),
      rescanInterval: 60_000,
      pollInterval: WATCH ? 60_000 : 50,
    });
    await pool.onIdle();
    const { id } = await q.enqueue('t', { late: true });
    expect(await q.waitFor(id, { timeout: 5_000 })).toMatchObject({ echo: { late: true } });
    await pool.close();
    await q.close();
  });

  it('takes only its types, however large the backlog of others', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueueMany(Array.from({ length: 5000 }, (_, i) => ({ type: 'other', data: i, priority: 0 })));
    const mine = await q.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ type: 'mine', data: i, priority: 99 })));
    const pool = await startPool(dir, { processor: processors('echo'), types: ['mine'], concurrency: 4 });
    await pool.onIdle();
    expect(pool.counts.completed).toBe(20);
    for (const { id } of mine) expect((await q.get(id)).state).toBe('done');
    expect(await q.counts()).toMatchObject({ queue: 5000, done: 20, active: 0 });
    await pool.close();
    await q.close();
  });

  it('runs an in-process function at the given concurrency', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueueMany(Array.from({ length: 50 }, (_, i) => ({ type: 't', data: i })));
    let inFlight = 0;
    let most = 0;
    const pool = await startPool(dir, {
      concurrency: 5,
      processor: async (job) => {
        most = Math.max(most, ++inFlight);
        await new Promise((resolve) => setTimeout(resolve, 2));
        inFlight--;
        return (job.data as number) * 2;
      },
    });
    await pool.onIdle();
    expect(pool.counts.completed).toBe(50);
    expect(most).toBe(5);
    await pool.close();
    await q.close();
  });

  it('a result JSON cannot hold fails the attempt with EBADDATA, leaving nothing in active/', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', null, { attempts: 1 });
    const pool = await startPool(dir, { processor: async () => ({ n: 10n }) });
    await pool.onIdle();
    expect(pool.counts).toMatchObject({ completed: 0, failed: 1 });
    expect(await q.get(id)).toMatchObject({ state: 'failed', error: { code: 'EBADDATA' } });
    expect(ls(dir, 'active')).toEqual([]);
    await pool.close();
    await q.close();
  });

  it('keeps an in-process function that ignores its timeout in its slot until it returns', async () => {
    const { dir, q } = await tempQueue();
    const slow = await q.enqueue('t', 'slow', { attempts: 1, priority: 10, timeout: 50 });
    const next = await q.enqueue('t', 'next', { priority: 20 });
    const order: string[] = [];
    let finishSlow!: () => void;
    const slowMayEnd = new Promise<void>((resolve) => (finishSlow = resolve));
    const pool = await startPool(dir, {
      concurrency: 1,
      processor: async (job) => {
        order.push(`start ${String(job.data)}`);
        if (job.data === 'slow') {
          await slowMayEnd; // ignores job.signal, as a careless function does
          order.push('end slow');
        } else {
          finishSlow(); // had it started early, it would let the slow one end only now
        }
        return job.data;
      },
    });
    const failed = new Promise((resolve) => pool.once('failed', resolve));
    await failed; // the slow job's attempt failed at its timeout, while its function still runs
    expect(await q.get(slow.id)).toMatchObject({ state: 'failed', error: { code: 'EJOBTIMEOUT' } });
    // let the pump have its turns: had the timeout freed the slot, it would claim and start "next" within them
    for (let turn = 0; turn < 100 && order.length === 1; turn++) await new Promise((resolve) => setImmediate(resolve));
    finishSlow(); // the function ends only now; with one slot, "next" waits for it
    await until(async () => (await q.get(next.id)).state === 'done', 'the next job to run');
    expect(order).toEqual(['start slow', 'end slow', 'start next']);
    await pool.close();
    await q.close();
  });

  it('kills a thread spinning past its job timeout and carries on with later jobs', async () => {
    const { dir, q } = await tempQueue();
    const spin = await q.enqueue('t', { spin: true }, { attempts: 1, priority: 10 });
    const later = await q.enqueueMany(Array.from({ length: 5 }, (_, i) => ({ type: 't', data: { i } })));
    const errors: string[] = [];
    const pool = await startPool(dir, { processor: processors('echo'), jobTimeout: 300, stuckAfter: 200 });
    pool.on('error', (e) => errors.push(`${(e as { code?: string }).code}: ${e.message}`));
    await until(() => pool.counts.completed === 5, 'the later jobs to run');
    await expect(q.waitFor(spin.id)).rejects.toMatchObject({ code: 'EJOBFAILED', jobError: { code: 'EJOBTIMEOUT' } });
    for (const { id } of later) expect((await q.get(id)).state).toBe('done');
    expect(errors).toEqual([expect.stringMatching(/^ESTUCK: .*stuck in synchronous code/)]);
    await pool.close();
    await q.close();
  });

  it('a thread stuck in synchronous code: its other job goes back to queue/ unharmed and runs again', async () => {
    const { dir, q } = await tempQueue();
    // one thread takes both (the spin first: lower priority runs first); its 'run' message for the
    // other job is never read, so only the release on replacing the thread can get that job out
    const spin = await q.enqueue('t', { spin: true }, { attempts: 1, priority: 10, timeout: 300 });
    const other = await q.enqueue('t', { other: true }, { attempts: 1 });
    const errors: string[] = [];
    const pool = await startPool(dir, { processor: processors('echo'), concurrency: 2, stuckAfter: 200 });
    pool.on('error', (e) => errors.push(e.message));
    await expect(q.waitFor(spin.id, { timeout: 30_000 })).rejects.toMatchObject({ jobError: { code: 'EJOBTIMEOUT' } });
    // attempts: 1, so an ETHREAD (or any) failure charged to it would have dead-lettered it
    expect(await q.waitFor(other.id, { timeout: 30_000 })).toMatchObject({ echo: { other: true }, attempt: 1 });
    expect(await q.get(other.id)).toMatchObject({ state: 'done', attemptsMade: 0, errors: [] }); // attemptsMade counts failed attempts
    expect(pool.counts).toMatchObject({ completed: 1, failed: 1, retried: 0, released: 1 });
    expect(errors).toEqual([expect.stringContaining('stuck in synchronous code')]);
    await pool.close();
    await q.close();
  });

  it('a thread stuck in synchronous code: neighbours whose own timeouts pass meanwhile go back unharmed too', async () => {
    const { dir, q } = await tempQueue();
    // one thread runs all three; the pool's jobTimeout applies to each, so the neighbours' timers
    // fire a moment after the spinning job's, while its thread is being pinged (stuckAfter is long)
    const spin = await q.enqueue('t', { spin: true }, { attempts: 1, priority: 10 });
    const neighbours = await q.enqueueMany([1, 2].map((i) => ({ type: 't', data: { sleep: 10, i }, attempts: 1 })));
    const errors: string[] = [];
    const pool = await startPool(dir, {
      processor: processors('echo'),
      concurrency: 3,
      jobTimeout: 400,
      stuckAfter: 3000,
    });
    pool.on('error', (e) => errors.push(e.message));
    await expect(q.waitFor(spin.id, { timeout: 30_000 })).rejects.toMatchObject({ jobError: { code: 'EJOBTIMEOUT' } });
    for (const { id } of neighbours) {
      // attempts: 1, so an EJOBTIMEOUT charged to a neighbour would have dead-lettered it
      expect(await q.waitFor(id, { timeout: 30_000 })).toMatchObject({ attempt: 1 });
      expect(await q.get(id)).toMatchObject({ state: 'done', attemptsMade: 0, errors: [] });
    }
    expect(pool.counts).toMatchObject({ completed: 2, failed: 1, retried: 0, released: 2 });
    expect(errors).toEqual([expect.stringContaining('stuck in synchronous code')]);
    await pool.close();
    await q.close();
  });

  it('aborts the signal of a job past its timeout, and retries it', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { hang: true }, { timeout: 100, attempts: 2, backoff: 0 });
    const pool = await startPool(dir, { processor: processors('echo') });
    await expect(q.waitFor(id, { timeout: 30_000 })).rejects.toMatchObject({ code: 'EJOBFAILED' });
    const info = await q.get(id);
    expect(info.attemptsMade).toBe(2);
    expect(info.errors.map((e) => e.code)).toEqual(['EJOBTIMEOUT', 'EJOBTIMEOUT']);
    expect(pool.counts).toMatchObject({ retried: 1, failed: 1 });
    await pool.close();
    await q.close();
  });

  it('recycles threads after maxJobsPerThread', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ type: 't', data: { i } })));
    const pool = await startPool(dir, { processor: processors('echo'), maxJobsPerThread: 3 });
    await pool.onIdle();
    const threads = new Map<number, number>();
    for (const { id } of refs) {
      const { thread } = (await q.waitFor(id)) as { thread: number };
      threads.set(thread, (threads.get(thread) ?? 0) + 1);
    }
    expect([...threads.values()].every((n) => n <= 3)).toBe(true);
    expect(threads.size).toBeGreaterThanOrEqual(4);
    await pool.close();
    await q.close();
  });

  it('records what a processor throws, retrying then dead-lettering', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { throw: 'bad input' }, { attempts: 2, backoff: 0 });
    const events: string[] = [];
    const pool = await startPool(dir, { processor: processors('echo') });
    pool.on('retrying', (job) => events.push(`retrying ${job.attempt}`));
    pool.on('failed', (job, error) => events.push(`failed ${job.attempt} ${error.code}`));
    await expect(q.waitFor(id, { timeout: 30_000 })).rejects.toMatchObject({ code: 'EJOBFAILED' });
    expect(events).toEqual(['retrying 1', 'failed 2 EPROCESSOR_TEST']);
    expect((await q.get(id)).error).toMatchObject({
      message: 'bad input',
      code: 'EPROCESSOR_TEST',
      stack: expect.stringContaining('echo.mjs'),
    });
    await pool.close();
    await q.close();
  });

  it('fails a job whose result cannot be kept, and keeps its progress, logs and child jobs', async () => {
    const { dir, q } = await tempQueue();
    const bad = await q.enqueue('t', { badResult: true }, { attempts: 1 });
    const parent = await q.enqueue('t', { progress: true, children: 3 });
    const pool = await startPool(dir, { processor: processors('echo'), types: ['t'] });
    await expect(q.waitFor(bad.id, { timeout: 30_000 })).rejects.toMatchObject({
      message: expect.stringContaining('cannot be sent back'),
    });
    await q.waitFor(parent.id, { timeout: 30_000 });
    const history = (await q.get(parent.id)).history;
    expect(history.map((e) => e.event)).toEqual(['progress', 'log', 'result']);
    expect(history[0]).toMatchObject({ value: { step: 1 } });
    expect(history[1]).toMatchObject({ line: 'halfway there' });
    expect((await q.list('queue')).map((j) => j.data)).toEqual([0, 1, 2].map((i) => ({ parent: parent.id, i })));
    await pool.close();
    await q.close();
  });

  it('reports a thread that dies outside a job, fails its job, and replaces it', async () => {
    const { dir, q } = await tempQueue();
    const crash = await q.enqueue('t', { crash: true }, { attempts: 1 });
    const errors: string[] = [];
    const pool = await startPool(dir, { processor: processors('crash') });
    pool.on('error', (e) => errors.push(e.message));
    await expect(q.waitFor(crash.id, { timeout: 30_000 })).rejects.toMatchObject({
      message: expect.stringContaining('worker thread died'),
    });
    const after = await q.enqueue('t', {});
    expect(await q.waitFor(after.id, { timeout: 30_000 })).toBe('survived');
    expect(errors).toEqual([expect.stringContaining('boom outside the job')]);
    await pool.close();
    await q.close();
  });

  it.each([
    ['broken', 'failed to load: this module is broken on purpose'],
    ['no-default', 'has no default export function'],
  ])('refuses to start when the processor %s cannot load', async (name, message) => {
    const { dir, q } = await tempQueue();
    await expect(startPool(dir, { processor: processors(name), threads: 2 })).rejects.toMatchObject({
      code: 'EPROCESSOR',
      message: expect.stringContaining(message),
    });
    await q.close();
  });

  it('stops with EPROCESSOR when a replacement thread cannot load the processor, instead of respawning', async () => {
    const { dir, q } = await tempQueue();
    const marker = path.join(tempDir(), 'broken');
    const processor = new URL(`${pathToFileURL(processors('breaks-later')).href}?marker=${encodeURIComponent(marker)}`);
    const errors: Error[] = [];
    const pool = await startPool(dir, { processor, maxJobsPerThread: 1 }); // loaded: the marker is absent
    pool.on('error', (e) => errors.push(e));
    const closed = new Promise<Error | undefined>((resolve) => pool.once('closed', resolve));
    fs.writeFileSync(marker, '');
    // the first job retires its thread; the replacement's import throws
    const first = await q.enqueue('t', { n: 1 });
    const second = await q.enqueue('t', { n: 2 });
    const reason = await closed;
    expect(reason).toMatchObject({
      code: 'EPROCESSOR',
      message: expect.stringContaining('failed to load: this module broke after the pool started'),
    });
    expect(errors).toEqual([reason]); // the one error the pool reports, and the reason it closed
    expect(await q.get(first.id)).toMatchObject({ state: 'done', result: { echo: { n: 1 } } });
    expect(await q.get(second.id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    expect(ls(dir, 'active')).toEqual([]);
    await pool.close(); // already closed: resolves at once
    await q.close();
  });

  it('closes gracefully: running jobs finish, nothing is left in active/', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 4 }, () => ({ type: 't', data: { sleep: 200 } })));
    const pool = await startPool(dir, { processor: processors('echo'), threads: 2, concurrency: 2 });
    await until(() => pool.counts.running === 4, 'four jobs running');
    await pool.close();
    expect(ls(dir, 'active')).toEqual([]);
    for (const { id } of refs) expect((await q.get(id)).state).toBe('done');
    await q.close();
  });

  it('releases jobs still running at closeTimeout back to queue/, attempt not counted', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { hang: true });
    const pool = await startPool(dir, { processor: processors('echo'), closeTimeout: 100 });
    await until(() => pool.counts.running === 1, 'the job to run');
    await pool.close();
    expect(pool.counts.released).toBe(1);
    expect(ls(dir, 'active')).toEqual([]);
    expect(await q.get(id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    await q.close();
  });

  it('onDrained waits for a retry due within its bound, and resolves with the delayed jobs of its types it did not wait for', async () => {
    const { dir, q } = await tempQueue();
    const soon = await q.enqueue('t', { failUntil: 2 }, { attempts: 2, backoff: 200 });
    const late = await q.enqueue('t', { throw: 'again later' }, { attempts: 2, backoff: 3600_000 });
    const scheduled = await q.enqueue('t', {}, { delay: 3600_000 });
    await q.enqueue('other', {}, { delay: 3600_000 }); // not its type: neither waited for nor reported
    const pool = await startPool(dir, { processor: processors('echo'), types: ['t'] });
    const left = await pool.onDrained({ within: 10_000 });
    expect(await q.get(soon.id)).toMatchObject({ state: 'done', attemptsMade: 1 });
    expect(left.retries.map((j) => j.id)).toEqual([late.id]);
    expect(left.scheduled.map((j) => j.id)).toEqual([scheduled.id]);
    expect(left.retries[0]!.runAt).toBeGreaterThan(Date.now() + 3000_000);
    await pool.close();
    await q.close();
  });

  it('starts delayed jobs when they are due', async () => {
    const { dir, q } = await tempQueue();
    const pool = await startPool(dir, { processor: processors('echo') });
    await pool.onIdle();
    const enqueued = Date.now();
    const { id } = await q.enqueue('t', { later: true }, { delay: 300 });
    expect(await q.waitFor(id, { timeout: 30_000 })).toMatchObject({ echo: { later: true } });
    expect(Date.now() - enqueued).toBeGreaterThanOrEqual(300);
    await pool.close();
    await q.close();
  });

  it('a thread over its memory limit dies, fails its job, and is replaced', async () => {
    const { dir, q } = await tempQueue();
    const hog = await q.enqueue('t', { hog: true }, { attempts: 1 });
    const errors: string[] = [];
    const pool = await startPool(dir, {
      processor: processors('echo'),
      resourceLimits: { maxOldGenerationSizeMb: 32 },
    });
    pool.on('error', (e) => errors.push(e.message));
    await expect(q.waitFor(hog.id, { timeout: 30_000 })).rejects.toMatchObject({ jobError: { code: 'ETHREAD' } });
    const after = await q.enqueue('t', { fine: true });
    expect(await q.waitFor(after.id, { timeout: 30_000 })).toMatchObject({ echo: { fine: true } });
    expect(errors).toEqual([expect.stringContaining('worker thread died')]);
    await pool.close();
    await q.close();
  });

  it("takes its processor as a 'file://' string (or a URL object), and refuses other URLs at once", async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { by: 'url' });
    const pool = await startPool(dir, { processor: pathToFileURL(processors('echo')).href });
    expect(await q.waitFor(id, { timeout: 30_000 })).toMatchObject({ echo: { by: 'url' } });
    await pool.close();
    for (const processor of ['https://example.com/send.js', new URL('node:fs')]) {
      await expect(startPool(dir, { processor })).rejects.toMatchObject({
        code: 'EBADOPTION',
        message: expect.stringMatching(/^processor must be a module path or a file: URL/),
      });
    }
    await q.close();
  });

  it('validates its options', async () => {
    const { dir, q } = await tempQueue();
    await expect(startPool(dir, { processor: processors('echo'), threads: 0 })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining('threads'),
    });
    await expect(startPool(dir, { processor: 42 as never })).rejects.toMatchObject({ code: 'EBADOPTION' });
    await expect(startPool(dir, { processor: async () => 1, threads: 2 })).rejects.toMatchObject({
      code: 'EBADOPTION',
    });
    await expect(startPool(dir, { processor: processors('echo'), types: [] })).rejects.toMatchObject({
      code: 'EBADOPTION',
    });
    await q.close();
  });
  it('starts once: a second start() rejects with ESTARTED', async () => {
    const { dir, q } = await tempQueue();
    const pool = await startPool(dir, { processor: processors('echo') });
    await expect(pool.start()).rejects.toMatchObject({
      code: 'ESTARTED',
      message: expect.stringContaining('make a new Pool'),
    });
    await pool.close();
    await q.close();
  });

  it('onDrained() before start() rejects with ENOTSTARTED', async () => {
    const { dir, q } = await tempQueue();
    const pool = new Pool(dir, { processor: processors('echo') });
    await expect(pool.onDrained()).rejects.toMatchObject({ code: 'ENOTSTARTED' });
    await q.close();
  });

  it("gives the queue's notices as 'warning' events, not as 'error'", async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    execFileSync('mkfifo', [path.join(dir, 'workers', '.clock')]); // a sweep works around it and warns EBADFILE
    const errors: Error[] = [];
    const pool = new Pool(dir, { processor: processors('echo'), durable: false, watch: WATCH, sweepInterval: 20 });
    pool.on('error', (e) => errors.push(e));
    const warning = new Promise<Error>((resolve) => pool.once('warning', resolve));
    await pool.start();
    expect(await warning).toMatchObject({ code: 'EBADFILE' });
    await pool.close();
    expect(errors).toEqual([]);
    await q.close();
  });

  it('a processor gets the same DirQueueError, with its code, in a thread and in-process', async () => {
    const inProcess = ((await import(processors('classes'))) as { default: Processor }).default;
    for (const processor of [processors('classes'), inProcess]) {
      const { dir, q } = await tempQueue();
      const report = path.join(tempDir(), 'report.json');
      const refused = await q.enqueue('t', { enqueue: true });
      const timedOut = await q.enqueue('t', { report }, { timeout: 100, attempts: 1 });
      const pool = await startPool(dir, { processor });
      expect(await q.waitFor(refused.id, { timeout: 30_000 })).toEqual({ instance: true, code: 'EBADTYPE' });
      await expect(q.waitFor(timedOut.id, { timeout: 30_000 })).rejects.toMatchObject({
        jobError: { code: 'EJOBTIMEOUT' },
      });
      await until(() => fs.existsSync(report), 'the processor to report its abort reason');
      expect(JSON.parse(fs.readFileSync(report, 'utf8'))).toEqual({ instance: true, code: 'EJOBTIMEOUT' });
      await pool.close();
      await q.close();
    }
  });
});
