import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { CompromisedError, DirQueueError, JobFailedError, Queue, type Job } from '../dist/index.js';
import { place, type Prepared } from '../dist/queue/enqueue.js';
import { Layout } from '../dist/store/layout.js';
import { nowUs, parseId } from '../dist/store/names.js';
import { libfaketime } from './support/hosts.js';
import { exited, openQueue, spawnNode, tempDir, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();
const CHILD = new URL('./fixtures/child.mjs', import.meta.url).pathname;

describe('Queue.open', () => {
  it('creates the layout and dirqueue.json', async () => {
    const dir = path.join(tempDir(), 'q');
    const q = await openQueue(dir);
    expect(ls(dir, '.')).toEqual([
      'active',
      'batches',
      'delayed',
      'deps',
      'dirqueue.json',
      'done',
      'failed',
      'keys',
      'queue',
      'schedules',
      'tmp',
      'waiting',
      'workers',
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({
      format: 'dirqueue',
      version: '1.3',
    });
    await q.close();
  });

  it('refuses a missing directory with create: false, and a non-queue directory', async () => {
    const base = tempDir();
    await expect(Queue.open(path.join(base, 'missing'), { create: false })).rejects.toMatchObject({ code: 'ENOQUEUE' });
    fs.writeFileSync(path.join(base, 'notes.txt'), 'hello');
    await expect(Queue.open(base)).rejects.toMatchObject({
      code: 'ENOTQUEUE',
      message: expect.stringContaining('not empty'),
    });
    await expect(Queue.open(path.join(base, 'notes.txt'))).rejects.toMatchObject({ code: 'ENOTQUEUE' });
    expect(fs.readdirSync(base)).toEqual(['notes.txt']);
  });

  it('validates options with actionable messages', async () => {
    const dir = tempDir();
    await expect(Queue.open(dir, { staleAfter: -1 })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining('staleAfter'),
    });
    await expect(Queue.open(dir, { watch: 'yes' as unknown as boolean })).rejects.toMatchObject({ code: 'EBADOPTION' });
    await expect(Queue.open(dir, { backoff: { type: 'linear' } as never })).rejects.toMatchObject({
      code: 'EBADOPTION',
    });
    await expect(Queue.open('')).rejects.toMatchObject({ code: 'EBADOPTION' });
    await expect(Queue.open(dir, { backoff: -5 })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining('backoff'),
    });
  });

  it('takes a plain number of ms as the default backoff, as enqueue does (D11)', async () => {
    const { dir, q } = await tempQueue({ backoff: 60_000, maintenance: false });
    await q.enqueue('t', 1);
    const job = await q.claim();
    expect(await job!.fail(new Error('again'))).toBe('retrying');
    const [name] = fs.readdirSync(path.join(dir, 'delayed'));
    const { history } = await q.get(job!.id);
    const failedAt = Date.parse(history.at(-1)!.at);
    expect(Number(name!.slice(0, 16)) / 1000 - failedAt).toBe(60_000);
    await q.close();
  });
});

describe('enqueue and claim', () => {
  it('runs jobs by priority then FIFO, and records results in done/', async () => {
    const { dir, q } = await tempQueue();
    const a = await q.enqueue('t', { n: 1 });
    const b = await q.enqueue('t', { n: 2 }, { priority: 10 });
    const c = await q.enqueue('t', { n: 3 });
    expect(ls(dir, 'queue')).toEqual([b.id, a.id, c.id]);
    const seen: unknown[] = [];
    for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
      expect(job.attempt).toBe(1);
      seen.push(job.data);
      await job.complete({ doubled: (job.data as { n: number }).n * 2 });
    }
    expect(seen).toEqual([{ n: 2 }, { n: 1 }, { n: 3 }]);
    expect(await q.waitFor(b.id)).toEqual({ doubled: 4 });
    expect(await q.get(a.id)).toMatchObject({ state: 'done', result: { doubled: 2 }, type: 't', priority: 50 });
    expect(await q.counts()).toEqual({ queue: 0, delayed: 0, active: 0, done: 3, failed: 0, waiting: 0 });
    await q.close();
  });

  it('names the claimer in active/ and keeps the file while claimed', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 'x');
    const job = (await q.claim())!;
    expect(ls(dir, 'active')).toEqual([`${id}@${job.claim}`]);
    expect(job.claim.startsWith(q.owner)).toBe(true);
    expect((await q.get(id)).state).toBe('active');
    await job.release();
    expect(ls(dir, 'queue')).toEqual([id]);
    const again = (await q.claim())!;
    expect(again.attempt).toBe(1); // a release does not count
    await again.complete();
    await q.close();
  });

  it('keeps data faithful: JSON values, strings, raw bytes, nothing', async () => {
    const { q } = await tempQueue();
    const values = [
      { deep: { list: [1, 'two', null, true, { x: -0.5 }] } },
      'plain text',
      0,
      null,
      [],
      Buffer.from([0, 255, 10]),
    ];
    for (const v of values) await q.enqueue('t', v);
    await q.enqueue('t');
    const got: unknown[] = [];
    for (let job = await q.claim(); job; job = await q.claim()) {
      got.push(job.data);
      await job.complete();
    }
    expect(got).toEqual([...values, undefined]);
    await q.close();
  });

  it('filters claims by type', async () => {
    const { q } = await tempQueue();
    await q.enqueueMany(Array.from({ length: 500 }, (_, i) => ({ type: 'bulk', data: i })));
    const { id } = await q.enqueue('mail', 'm', { priority: 99 });
    const types = ['sms'];
    expect(await q.claim({ types })).toBeUndefined();
    types.push('mail'); // the same array, changed: still honoured
    const job = (await q.claim({ types }))!;
    expect(job.id).toBe(id);
    await job.complete();
    expect(await q.claim({ types: ['mail', 'sms'] })).toBeUndefined();
    expect((await q.counts()).queue).toBe(500);
    await q.close();
  });

  it('sees jobs another process (or queue handle) puts in queue/', async () => {
    const { dir, q } = await tempQueue();
    expect(await q.claim()).toBeUndefined();
    const other = await openQueue(dir);
    const { id } = await other.enqueue('t', 1);
    expect((await q.claim({ wait: 0 }))?.id).toBe(id); // never "nothing" while a job is ready
    const waiting = q.claim({ wait: 30_000 });
    const second = await other.enqueue('t', 2);
    const job = await waiting;
    expect(job?.id).toBe(second.id);
    await other.close();
    await q.close();
  });

  it("claims from its index: no directory listing per claim, and a types filter opens no other type's file", async () => {
    const { dir, q } = await tempQueue({ pollInterval: 60_000, rescanInterval: 60_000, maintenance: false });
    await q.enqueueMany(Array.from({ length: 1000 }, (_, i) => ({ type: 'bulk', data: i })));
    const mail = await q.enqueueMany(Array.from({ length: 5 }, () => ({ type: 'mail', priority: 99 })));
    await (await q.claim({ types: ['bulk'] }))!.complete(); // discovery has started and listed queue/ once
    const listings = vi.spyOn(fs, 'readdirSync');
    const opens = vi.spyOn(fs, 'openSync');
    for (let i = 0; i < 200; i++) await (await q.claim({ types: ['bulk'] }))!.complete();
    expect(listings).not.toHaveBeenCalled();
    opens.mockClear();
    for (const { id } of mail) expect((await q.claim({ types: ['mail'] }))!.id).toBe(id);
    const opened = opens.mock.calls.map(([file]) => path.basename(String(file)));
    expect(opened.length).toBeGreaterThan(0);
    expect(opened.filter((name) => !name.includes('.mail'))).toEqual([]); // never a bulk job's file
    vi.restoreAllMocks();
    expect(ls(dir, 'queue')).toHaveLength(799);
    await q.close();
  });

  it('claim({ wait: 0 }) finds a job that a shell script just moved into queue/', async () => {
    const { dir, q } = await tempQueue();
    expect(await q.claim()).toBeUndefined(); // discovery is running, the index is empty
    const name = `50-${Date.now() * 1000}-shell1.t`;
    execFileSync('sh', [
      '-c',
      `printf '{"type":"t","data":"from sh"}\\n' > "$1/tmp/x" && mv "$1/tmp/x" "$1/queue/${name}"`,
      'sh',
      dir,
    ]);
    const job = await q.claim({ wait: 0 }); // no wait: the move is done, so the job is ready now
    expect(job).toMatchObject({ id: name, data: 'from sh' });
    await job!.complete();
    await q.close();
  });

  it('answers undefined after wait when nothing is ready', async () => {
    const { q } = await tempQueue();
    expect(await q.claim({ wait: 20 })).toBeUndefined();
    await q.close();
  });

  it('delays jobs in delayed/ and runs them when due', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 'later', { delay: 200 });
    expect(ls(dir, 'queue')).toEqual([]);
    expect(ls(dir, 'delayed')).toHaveLength(1);
    expect(await q.claim()).toBeUndefined();
    const job = await q.claim({ wait: 30_000 });
    expect(job?.id).toBe(id);
    expect(Date.now()).toBeGreaterThanOrEqual((await q.get(id)).readyAt.getTime());
    await job!.complete();
    await q.close();
  });

  it('promotes delayed jobs on time after a forward step of the wall clock, without a timer loop (D8)', async () => {
    const { q } = await tempQueue({ maintenance: false }); // no sweep to promote them: discovery alone
    const { id: before } = await q.enqueue('t', 'due an hour after it was enqueued', { delay: 3_600_000 });
    expect(await q.claim()).toBeUndefined(); // its promotion timer is armed, for an hour from now
    const real = Date.now.bind(Date);
    const step = vi.spyOn(Date, 'now').mockImplementation(() => real() + 3_600_000); // suspend or NTP: an hour ahead
    const timers = vi.spyOn(globalThis, 'setTimeout');
    try {
      const { id: after } = await q.enqueue('t', 'after the step', { delay: 50 });
      const claimed = [];
      for (let i = 0; i < 2; i++) {
        const job = await q.claim({ wait: 10_000 });
        claimed.push(job?.id);
        await job?.complete();
      }
      expect(claimed).toEqual([before, after]);
      // a promotion timer that re-arms at once while the job is not due yet is a loop of 0 ms timers
      expect(timers.mock.calls.filter(([, ms]) => (ms ?? 0) < 1).length).toBeLessThan(10);
    } finally {
      timers.mockRestore();
      step.mockRestore();
    }
    await q.close();
  });

  it('a worker whose wall clock really steps an hour ahead promotes on time (D8, libfaketime)', async () => {
    const lib = libfaketime();
    if (lib === undefined) throw new Error('libfaketime is missing: apt-get install faketime (.ci/run does)');
    const { dir, q } = await tempQueue();
    await q.close();
    const offset = path.join(tempDir(), 'faketime');
    fs.writeFileSync(offset, '+0\n');
    const env = {
      ...process.env,
      LD_PRELOAD: lib,
      FAKETIME_TIMESTAMP_FILE: offset,
      FAKETIME_NO_CACHE: '1',
      FAKETIME_DONT_FAKE_MONOTONIC: '1',
    };
    const worker = spawnNode([CHILD, 'clock-step', dir, offset], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    worker.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    expect(await exited(worker)).toBe(0);
    expect(out).toBe('stepped true\nclaimed\n'); // before: not claimed within 10 s (due an hour later by its clock)
  }, 30_000);

  it('a promotion that fails in the background is a warning, and is tried again (Correctness 2)', async () => {
    const { q } = await tempQueue({ maintenance: false });
    const warnings: Error[] = [];
    q.on('warning', (error) => warnings.push(error));
    const rename = fs.renameSync;
    const denied = vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (String(from).includes(`${path.sep}delayed${path.sep}`))
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      rename(from, to);
    });
    try {
      const { id } = await q.enqueue('t', 'later', { delay: 20 });
      expect(await q.claim()).toBeUndefined(); // starts watching and polling; the job is not due yet
      await until(() => warnings.length > 0, 'a warning', 10_000); // before: an uncaught throw in the promotion timer
      expect(warnings[0]).toMatchObject({ code: 'EACCES', message: expect.stringContaining('delayed') });
      denied.mockRestore();
      const job = await q.claim({ wait: 30_000 });
      expect(job?.id).toBe(id);
      await job!.complete();
    } finally {
      denied.mockRestore();
    }
    await q.close();
  });

  it('schedules with runAt, and a past runAt is ready at once', async () => {
    const { dir, q } = await tempQueue();
    const future = await q.enqueue('t', 1, { runAt: new Date(Date.now() + 3_600_000) });
    const past = await q.enqueue('t', 2, { runAt: Date.now() - 1000 });
    expect(ls(dir, 'queue')).toEqual([past.id]);
    expect((await q.get(future.id)).state).toBe('delayed');
    await q.retry(future.id); // run now
    expect((await q.get(future.id)).state).toBe('queue');
    await q.close();
  });

  it('retry of a delayed job runs it now: after the jobs ready before the retry, before those enqueued after it, whoever claims', async () => {
    const { dir, q } = await tempQueue({ agingStep: Infinity });
    const future = await q.enqueue('t', 'future', { delay: 3_600_000 });
    expect(await q.claim()).toBeUndefined(); // this handle's index is live from here on, as a worker's is
    await q.enqueueMany([
      { type: 't', data: 'b1' },
      { type: 't', data: 'b2' },
    ]); // the backlog
    await q.retry(future.id);
    const after = await q.enqueueMany([
      { type: 't', data: 'a1' },
      { type: 't', data: 'a2' },
    ]);
    await q.enqueue('t', 'urgent', { priority: 10 }); // priorities still come first
    const order = ['urgent', 'b1', 'b2', 'future', 'a1', 'a2'];
    const claimAll = async (handle: Queue): Promise<Job[]> => {
      const jobs: Job[] = [];
      for (let job = await handle.claim(); job; job = await handle.claim()) jobs.push(job);
      return jobs;
    };
    const mine = await claimAll(q);
    expect(mine.map((job) => job.data)).toEqual(order);
    for (const job of mine) await job.release();
    // a handle that finds the retried job in its first scan of queue/ ranks it the same way
    const other = await openQueue(dir, { agingStep: Infinity });
    const theirs = await claimAll(other);
    expect(theirs.map((job) => job.data)).toEqual(order);
    for (const job of theirs) await job.complete();
    expect(after.every((ref) => ref.id < future.id)).toBe(true); // the id keeps its due time: only its rank changed
    await q.close();
    await other.close();
  });

  it('a job retried early that fails again waits its backoff: promoted, it ranks from its due time, not from its failure', async () => {
    const { dir, q } = await tempQueue({ agingStep: Infinity, maintenance: false });
    const future = await q.enqueue('t', 'future', { delay: 3_600_000, backoff: 60_000 });
    await q.retry(future.id);
    expect(await (await q.claim())!.fail(new Error('again'))).toBe('retrying');
    const during = await q.enqueue('t', 'during the backoff');
    // its backoff ends (the delayed/ name says when) a microsecond after that job was enqueued
    const [name] = ls(dir, 'delayed');
    const dueUs = parseId(during.id)!.enqueuedUs + 1;
    fs.renameSync(
      path.join(dir, 'delayed', name!),
      path.join(dir, 'delayed', name!.replace(/^\d{16}/, String(dueUs).padStart(16, '0'))),
    );
    // due a microsecond after an id's time, which may read up to a millisecond ahead of Date.now(): a sweep
    // promotes it once Date.now() gets there, unless this queue's own promotion timer (which claim started)
    // is first; both go through promote()
    await until(async () => (await q.recover()) && ls(dir, 'delayed').length === 0, 'the job to be promoted');
    expect([ls(dir, 'delayed'), ls(dir, 'queue').sort()]).toEqual([[], [during.id, future.id].sort()]);
    const other = await openQueue(dir, { agingStep: Infinity, maintenance: false });
    const order: unknown[] = [];
    for (let job = await other.claim(); job; job = await other.claim()) {
      order.push(job.data);
      await job.complete();
    }
    expect(order).toEqual(['during the backoff', 'future']);
    await q.close();
    await other.close();
  });

  it('a delayed job leaves later jobs their own enqueue time and place in line (Correctness 1)', async () => {
    const { dir, q } = await tempQueue();
    const other = await openQueue(dir);
    const [, later] = await q.enqueueMany([
      { type: 'report', delay: 3_600_000 },
      { type: 'email', data: 'mine' },
    ]);
    const { id: plain } = await q.enqueue('email', 'mine too');
    const { id: theirs } = await other.enqueue('email', 'theirs');
    for (const id of [later!.id, plain]) expect((await q.get(id)).readyAt.getTime()).toBeLessThan(Date.now() + 60_000); // not an hour ahead
    expect(ls(dir, 'queue')).toEqual([later!.id, plain, theirs]); // run order: as enqueued, across processes
    const data: unknown[] = [];
    for (let job = await q.claim(); job; job = await q.claim()) {
      data.push(job.data);
      await job.complete();
    }
    expect(data).toEqual(['mine', 'mine too', 'theirs']);
    await other.close();
    await q.close();
  });

  it('once a low priority has waited p x agingStep, no job enqueued after it starts before it (I8, real files)', async () => {
    const { q } = await tempQueue({ agingStep: 1 });
    const { id: low } = await q.enqueue('t', 'low', { priority: 90 });
    const enqueuedUs = parseId(low)!.enqueuedUs;
    const overtakenBy: string[] = [];
    // two urgent jobs for each claim: the stream outpaces the worker, until the low one runs
    for (let job; job?.id !== low;) {
      await q.enqueueMany([
        { type: 't', priority: 0 },
        { type: 't', priority: 0 },
      ]);
      const startedUs = nowUs();
      job = (await q.claim())!;
      await job.complete();
      if (startedUs >= enqueuedUs + 90 * 1000 && parseId(job.id)!.enqueuedUs > enqueuedUs) overtakenBy.push(job.id);
    }
    expect(overtakenBy).toEqual([]);
    await q.close();
  });

  it('enqueueMany writes a batch with durability and keeps order', async () => {
    const { dir, q } = await tempQueue({ durable: true });
    const refs = await q.enqueueMany(
      Array.from({ length: 300 }, (_, i) => ({
        type: i % 2 ? 'odd' : 'even',
        data: i,
        priority: i % 3 === 0 ? 20 : 50,
      })),
    );
    expect(new Set(refs.map((r) => r.id)).size).toBe(300);
    expect(ls(dir, 'queue')).toHaveLength(300);
    expect(ls(dir, 'tmp')).toEqual([]);
    const order: number[] = [];
    for (let job = await q.claim(); job; job = await q.claim()) {
      order.push(job.data as number);
      await job.complete();
    }
    const expected = [...Array(300).keys()].sort((a, b) => (a % 3 === 0 ? 20 : 50) - (b % 3 === 0 ? 20 : 50) || a - b);
    expect(order).toEqual(expected);
    await q.close();
  });

  it('enqueueMany validates every item before writing any', async () => {
    const { dir, q } = await tempQueue();
    await expect(
      q.enqueueMany([
        { type: 'a', data: 1 },
        { type: 'a', data: 2, priority: 500 },
      ]),
    ).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining('item 1'),
    });
    expect(ls(dir, 'queue')).toEqual([]);
    expect(ls(dir, 'tmp')).toEqual([]);
    await q.close();
  });
});

describe('failures and retries', () => {
  it('retries with backoff through delayed/, then dead-letters in failed/', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', null, { attempts: 3, backoff: { type: 'fixed', delay: 30 } });
    let job = (await q.claim())!;
    expect(await job.fail(new Error('first'))).toBe('retrying');
    expect(ls(dir, 'delayed')).toHaveLength(1);
    job = (await q.claim({ wait: 30_000 }))!;
    expect(job.attempt).toBe(2);
    expect(await job.fail(Object.assign(new Error('second'), { code: 'EHTTP' }))).toBe('retrying');
    job = (await q.claim({ wait: 30_000 }))!;
    expect(job.attempt).toBe(3);
    expect(await job.fail('third')).toBe('failed');
    expect(ls(dir, 'failed')).toEqual([id]);
    const info = await q.get(id);
    expect(info).toMatchObject({ state: 'failed', attemptsMade: 3, attempts: 3, error: { message: 'third' } });
    expect(info.errors.map((e) => e.message)).toEqual(['first', 'second', 'third']);
    expect(info.errors[1]).toMatchObject({ code: 'EHTTP' });
    await expect(q.waitFor(id)).rejects.toBeInstanceOf(JobFailedError);
    await expect(q.waitFor(id)).rejects.toMatchObject({
      code: 'EJOBFAILED',
      message: expect.stringContaining('third'),
    });

    await q.retry(id); // a fresh set of attempts, the attempt number keeps counting
    job = (await q.claim())!;
    expect(job.attempt).toBe(4);
    expect(await job.fail('again')).toBe('retrying');
    await q.close();
  });

  it('takes the backoff from a queue-wide function of the attempt and error', async () => {
    const seen: [number, string][] = [];
    const { dir, q } = await tempQueue({
      backoff: (attempt, error) => {
        seen.push([attempt, error.message]);
        return attempt * 3_600_000;
      },
    });
    const { id } = await q.enqueue('t');
    const before = Date.now();
    await (await q.claim())!.fail(new Error('nope'));
    expect(seen).toEqual([[1, 'nope']]);
    const info = await q.get(id);
    expect(info.state).toBe('delayed');
    expect(info.runAt!.getTime() - before).toBeGreaterThanOrEqual(3_600_000);
    expect(info.runAt!.getTime() - before).toBeLessThan(3_700_000);
    expect(ls(dir, 'delayed')).toHaveLength(1);
    await q.close();
  });

  it('retries at once with backoff 0', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueue('t', null, { backoff: 0 });
    const job = (await q.claim())!;
    await job.fail('x');
    expect(ls(dir, 'queue')).toHaveLength(1);
    expect((await q.claim())?.attempt).toBe(2);
    await q.close();
  });

  it('a result JSON cannot hold is refused and leaves the claim held, to fail or release', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', null, { attempts: 1 });
    const job = (await q.claim())!;
    await expect(job.complete({ n: 10n })).rejects.toMatchObject({
      code: 'EBADDATA',
      message: expect.stringContaining('result.n'),
    });
    expect(job.settled).toBe(false);
    expect(ls(dir, 'active')).toHaveLength(1);
    await job.fail(new DirQueueError('EBADDATA', 'unsendable result'));
    expect(await q.get(id)).toMatchObject({ state: 'failed', error: { code: 'EBADDATA' } });
    await q.enqueue('t');
    const other = (await q.claim())!;
    await expect(other.complete(() => 1)).rejects.toMatchObject({ code: 'EBADDATA' });
    await q.close(); // close releases a job still held
    expect(ls(dir, 'active')).toEqual([]);
    expect(ls(dir, 'queue')).toEqual([other.id]);
  });

  it('a backoff function that throws does not strand the job: the default backoff stands in, with a warning', async () => {
    const { dir, q } = await tempQueue({
      backoff: () => {
        throw new Error('oops');
      },
    });
    const warnings: Error[] = [];
    q.on('warning', (error) => warnings.push(error));
    const { id } = await q.enqueue('t');
    const before = Date.now();
    expect(await (await q.claim())!.fail(new Error('nope'))).toBe('retrying');
    const after = Date.now();
    expect(ls(dir, 'active')).toEqual([]);
    const info = await q.get(id);
    expect(info.state).toBe('delayed');
    // the default: 1 s +-20% after the first attempt failed, which was between before and after
    expect(info.runAt!.getTime()).toBeGreaterThanOrEqual(before + 800 - 1);
    expect(info.runAt!.getTime()).toBeLessThanOrEqual(after + 1200 + 1);
    expect(warnings).toEqual([
      expect.objectContaining({
        code: 'EBADOPTION',
        message: expect.stringMatching(/backoff function threw .*\(oops\)/),
      }),
    ]);
    await q.close();
  });

  it('a backoff too long to write down (a job backoff of 1e15 ms) falls back to the default too', async () => {
    const { dir, q } = await tempQueue();
    const warnings: Error[] = [];
    q.on('warning', (error) => warnings.push(error));
    const { id } = await q.enqueue('t', null, { backoff: 1e15 });
    const before = Date.now();
    expect(await (await q.claim())!.fail(new Error('nope'))).toBe('retrying');
    expect(ls(dir, 'active')).toEqual([]);
    expect((await q.get(id)).runAt!.getTime()).toBeLessThan(before + 60_000);
    expect(warnings).toEqual([
      expect.objectContaining({ code: 'EBADOPTION', message: expect.stringMatching(/out of range/) }),
    ]);
    await q.close();
  });

  it('refuses a second ending of one claim', async () => {
    const { q } = await tempQueue();
    await q.enqueue('t');
    const job = (await q.claim())!;
    await job.complete();
    await expect(job.fail('late')).rejects.toMatchObject({ code: 'EBADSTATE' });
    await q.close();
  });

  it('refuses complete after the claim was taken away (ECOMPROMISED); what it wrote is void', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t');
    const job = (await q.claim())!;
    // what a recoverer does to the holder: take the file, record the revoke, put it back in queue/
    const queued = path.join(dir, 'queue', id);
    fs.renameSync(job.path, queued);
    fs.appendFileSync(
      queued,
      `${JSON.stringify({ event: 'revoked', at: new Date().toISOString(), attempt: 1, claim: job.claim, reason: 'stalled', by: 'x.1.y.0' })}\n`,
    );
    await expect(job.complete('stale result')).rejects.toBeInstanceOf(CompromisedError);
    const info = await q.get(id);
    expect(info.state).toBe('queue');
    expect(info.result).toBeUndefined();
    const again = (await q.claim())!;
    expect(again.attempt).toBe(2);
    await again.complete('fresh result');
    expect(await q.waitFor(id)).toBe('fresh result');
    await q.close();
  });

  it('a holder whose job close() released gets ECOMPROMISED from every later call, and the job runs again', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t');
    const job = (await q.claim())!;
    await q.close();
    expect(ls(dir, 'queue')).toEqual([id]);
    const calls: [string, () => Promise<unknown>][] = [
      ['complete', () => job.complete('late')],
      ['fail', () => job.fail(new Error('late'))],
      ['release', () => job.release()],
      ['progress', () => job.progress(1)],
      ['log', () => job.log('late')],
    ];
    for (const [name, call] of calls) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, name).toBeInstanceOf(CompromisedError);
      expect(error, name).toMatchObject({
        code: 'ECOMPROMISED',
        message: expect.stringContaining('the queue was closed'),
      });
    }
    expect(ls(dir, 'queue')).toEqual([id]); // nothing the late calls did moved or wrote it
    expect(
      fs
        .readFileSync(path.join(dir, 'queue', id), 'utf8')
        .split('\n')
        .filter(Boolean),
    ).toHaveLength(1);
    const other = await openQueue(dir);
    const again = (await other.claim())!;
    expect(again.attempt).toBe(1); // a release does not count an attempt
    await again.complete('fresh');
    expect(await other.waitFor(id)).toBe('fresh');
    await other.close();
  });
});

describe('lost replies (NFS)', () => {
  it('a completion whose rename succeeded but reported ENOENT still counts', async () => {
    const { q } = await tempQueue();
    const { id } = await q.enqueue('t');
    const job = (await q.claim())!;
    const rename = fs.renameSync;
    const spy = vi.spyOn(fs, 'renameSync').mockImplementationOnce((from, to) => {
      rename(from, to);
      throw Object.assign(new Error('ENOENT: the reply was lost'), { code: 'ENOENT' });
    });
    await job.complete('kept');
    spy.mockRestore();
    expect(await q.waitFor(id)).toBe('kept');
    await q.close();
  });
});

describe('inspection and administration', () => {
  it('lists states in run order with a limit', async () => {
    const { q } = await tempQueue();
    const ids = [];
    for (const priority of [60, 20, 40]) ids.push((await q.enqueue('t', priority, { priority })).id);
    expect((await q.list('queue')).map((j) => j.data)).toEqual([20, 40, 60]);
    expect(await q.list('queue', { limit: 1 })).toHaveLength(1);
    await expect(q.list('bogus' as never)).rejects.toMatchObject({ code: 'EBADOPTION' });
    await q.close();
  });

  it('reports stats: counts, oldest ages, waiting, per type', async () => {
    const { q } = await tempQueue();
    await q.enqueue('a', 1);
    await q.enqueue('b', 2, { delay: 60_000 });
    const s = await q.stats();
    expect(s.counts).toEqual({ queue: 1, delayed: 1, active: 0, done: 0, failed: 0, waiting: 0 });
    expect(s.types).toMatchObject({ a: { queue: 1 }, b: { delayed: 1 } });
    expect(s.oldest.queue).toBeGreaterThanOrEqual(0);
    expect(s.oldest.done).toBeNull();
    expect(s.waiting).toBeGreaterThanOrEqual(0);
    await q.close();
  });

  it('counts a job found in two states (it moved on while they were listed) once, in the later, whichever state holds most', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const ids: string[] = [];
    for (let i = 0; i < 8; i++) ids.push((await q.enqueue('t', i)).id);
    const copy = (id: string, state: string, name = id): void =>
      fs.copyFileSync(path.join(dir, 'queue', id), path.join(dir, state, name));
    const due = String(Date.now() * 1000 + 60_000_000).padStart(16, '0');
    for (const id of ids.slice(5)) fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'done', id));
    // queue/ holds most: one of its jobs also in delayed/ (before it), others in done/ and failed/ (after it)
    copy(ids[0]!, 'delayed', `${due}~${ids[0]}`);
    copy(ids[1]!, 'done');
    copy(ids[2]!, 'done');
    copy(ids[2]!, 'failed'); // two ended states: each keeps it
    expect(await q.counts()).toEqual({ queue: 3, delayed: 0, active: 0, done: 5, failed: 1, waiting: 0 });
    // done/ holds most now: every job of queue/ is also there
    for (const id of [ids[0]!, ids[3]!, ids[4]!]) copy(id, 'done');
    const s = await q.stats();
    expect(s.counts).toEqual({ queue: 0, delayed: 0, active: 0, done: 8, failed: 1, waiting: 0 });
    expect(s.types).toEqual({ t: s.counts });
    expect(s.nextDue).toBeNull(); // its delayed/ twin moved on
    await q.close();
  });

  it('removes and purges, but not running jobs', async () => {
    const { dir, q } = await tempQueue();
    const a = await q.enqueue('t', 1);
    const b = await q.enqueue('t', 2);
    expect(await q.remove(a.id)).toBe('queue');
    await expect(q.remove(a.id)).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const job = (await q.claim())!;
    await expect(q.remove(b.id)).rejects.toMatchObject({ code: 'EBADSTATE' });
    await job.complete();
    const old = path.join(dir, 'done', b.id);
    fs.utimesSync(old, new Date(Date.now() - 86_400_000), new Date(Date.now() - 86_400_000));
    expect(await q.purge('done', { olderThan: 3_600_000 })).toBe(1);
    expect(ls(dir, 'done')).toEqual([]);
    await expect(q.purge('active')).rejects.toMatchObject({ code: 'EBADSTATE' });
    await q.close();
  });

  it('waitFor resolves on completion by another handle, times out, and knows unknown ids', async () => {
    const { dir, q } = await tempQueue();
    const worker = await openQueue(dir);
    const { id } = await q.enqueue('t', 21);
    const result = q.waitFor(id, { timeout: 30_000 });
    const job = (await worker.claim({ wait: 30_000 }))!;
    await job.complete((job.data as number) * 2);
    expect(await result).toBe(42);
    const { id: slow } = await q.enqueue('t');
    await expect(q.waitFor(slow, { timeout: 10 })).rejects.toMatchObject({ code: 'ETIMEOUT' });
    await expect(q.waitFor('50-1763830000000000-zz.none')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await worker.close();
    await q.close();
  });

  it('waitFor without a timeout rejects ENOTFOUND once its job is removed, ready or delayed (D9)', async () => {
    const { q } = await tempQueue();
    const ready = await q.enqueue('t', 'ready');
    const later = await q.enqueue('t', 'later', { delay: 3_600_000 });
    // waitFor has looked for the job once it returns its promise (the first pass runs synchronously)
    const outcomes = [ready.id, later.id].map((id) =>
      q.waitFor(id).then(
        () => 'finished',
        (error: unknown) => (error as { code?: string }).code,
      ),
    );
    expect(await q.remove(ready.id)).toBe('queue');
    expect(await q.remove(later.id)).toBe('delayed');
    expect(await Promise.all(outcomes)).toEqual(['ENOTFOUND', 'ENOTFOUND']); // before: waited for ever
    await q.close();
  }, 20_000);

  it('rejects use after close with ECLOSED, and close resolves waiting claims', async () => {
    const { q } = await tempQueue();
    const waiting = q.claim({ wait: 60_000 });
    await q.close();
    expect(await waiting).toBeUndefined();
    await expect(q.enqueue('t')).rejects.toMatchObject({ code: 'ECLOSED' });
    await expect(q.claim()).rejects.toBeInstanceOf(DirQueueError);
  });

  it('a unique key that keeps changing hands gives up with ECONTENTION, not a filesystem code', async () => {
    const { q } = await tempQueue();
    // every try finds the key taken, and then released before it can be read
    const taken = vi.spyOn(fs, 'symlinkSync').mockImplementation(() => {
      throw Object.assign(new Error('EEXIST: file already exists'), { code: 'EEXIST' });
    });
    try {
      await expect(q.enqueue('t', null, { key: 'k' })).rejects.toMatchObject({
        code: 'ECONTENTION',
        message: expect.stringContaining('too much contention, try again'),
      });
    } finally {
      taken.mockRestore();
    }
    expect((await q.enqueue('t', null, { key: 'k' })).id).toBeTruthy();
    await q.close();
  });

  it('a job file removed from tmp/ before its rename fails the enqueue with EVANISHED, not a filesystem code', async () => {
    const { dir, q } = await tempQueue();
    const gone: Prepared = {
      id: '50-1763830000000000-zz.gone',
      type: 't',
      content: '',
      delayed: undefined,
      key: undefined,
      keyFrom: undefined,
      after: undefined,
      state: 'queue',
      tmp: path.join(dir, 'tmp', 'gone'),
    };
    let thrown: unknown;
    try {
      place(new Layout(dir), gone);
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toMatchObject({
      code: 'EVANISHED',
      message: expect.stringContaining('is something cleaning tmp/?'),
    });
    await q.close();
  });
});
