/**
 * dirqueue/testing: testQueue() makes and removes its directory; runJobs()
 * runs what is ready through a processor in-process, with retries, delays,
 * children and type filters as a Pool would, and refuses bad input.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import type { ProcessorJob } from '../dist/index.js';
import { runJobs, testQueue } from '../dist/testing/index.js';

describe('testQueue', () => {
  it('opens a real queue in a fresh temporary directory, and close() removes it', async () => {
    const q = await testQueue();
    const other = await testQueue({ maxJobBytes: 4096 });
    expect(q.dir).not.toBe(other.dir);
    expect(fs.readdirSync(q.dir)).toContain('queue');
    const { id } = await q.enqueue('t', { n: 1 });
    expect(await q.get(id)).toMatchObject({ state: 'queue', data: { n: 1 } });
    expect(other.options.maxJobBytes).toBe(4096);
    await q.close();
    expect(fs.existsSync(q.dir)).toBe(false);
    expect(fs.existsSync(other.dir)).toBe(true);
    await other[Symbol.asyncDispose]();
    expect(fs.existsSync(other.dir)).toBe(false);
  });

  it('refuses bad options as Queue.open does, leaving no directory behind', async () => {
    const before = fs.readdirSync('/tmp').filter((name) => name.startsWith('dirq-test-')).length;
    await expect(testQueue({ maxJobBytes: -1 })).rejects.toMatchObject({ code: 'EBADOPTION' });
    expect(fs.readdirSync('/tmp').filter((name) => name.startsWith('dirq-test-')).length).toBeLessThanOrEqual(before);
  });
});

describe('runJobs', () => {
  it('runs every ready job and says what completed and what failed', async () => {
    const q = await testQueue();
    const a = await q.enqueue('add', { a: 1, b: 2 });
    const b = await q.enqueue('add', { a: 40, b: 2 });
    const bad = await q.enqueue('add', { a: 'x' }, { attempts: 1 });
    const seen: number[] = [];
    const { completed, failed } = await runJobs(q, (job: ProcessorJob<{ a: unknown; b?: number }>) => {
      seen.push(job.attempt);
      if (typeof job.data.a !== 'number') throw Object.assign(new Error('a must be a number'), { code: 'EINPUT' });
      return job.data.a + job.data.b!;
    });
    expect(completed).toEqual([
      { id: a.id, type: 'add', data: { a: 1, b: 2 }, attempt: 1, result: 3 },
      { id: b.id, type: 'add', data: { a: 40, b: 2 }, attempt: 1, result: 42 },
    ]);
    expect(failed).toMatchObject([
      { id: bad.id, attempt: 1, retrying: false, error: { message: 'a must be a number', code: 'EINPUT' } },
    ]);
    expect(seen).toEqual([1, 1, 1]);
    expect(await q.counts()).toMatchObject({ queue: 0, done: 2, failed: 1 });
    expect(await q.waitFor(b.id, { timeout: 1000 })).toBe(42);
    await q.close();
  });

  it('leaves a retry waiting for its backoff in delayed/, and with delayed: true runs it until it ends', async () => {
    const q = await testQueue();
    const flaky = await q.enqueue('flaky', null, { attempts: 3, backoff: { type: 'fixed', delay: 60_000 } });
    let calls = 0;
    const processor = (job: ProcessorJob): string => {
      calls++;
      if (job.attempt < 2) throw new Error(`not yet (attempt ${job.attempt})`);
      return `done at attempt ${job.attempt}`;
    };
    const first = await runJobs(q, processor);
    expect(first).toMatchObject({ completed: [], failed: [{ id: flaky.id, attempt: 1, retrying: true }] });
    expect((await q.get(flaky.id)).state).toBe('delayed');

    const second = await runJobs(q, processor, { delayed: true });
    expect(second.failed).toEqual([]);
    expect(second.completed).toMatchObject([{ id: flaky.id, attempt: 2, result: 'done at attempt 2' }]);
    expect(calls).toBe(2);
    expect(await q.get(flaky.id)).toMatchObject({ state: 'done', attemptsMade: 1, runs: 2 });
    await q.close();
  });

  it('runs a job that always fails through all its attempts with delayed: true, ending in failed/', async () => {
    const q = await testQueue();
    const doomed = await q.enqueue('doomed', null, { attempts: 3 });
    const { completed, failed } = await runJobs(
      q,
      () => {
        throw new Error('always');
      },
      { delayed: true },
    );
    expect(completed).toEqual([]);
    expect(failed.map((f) => [f.attempt, f.retrying])).toEqual([
      [1, true],
      [2, true],
      [3, false],
    ]);
    expect(await q.get(doomed.id)).toMatchObject({ state: 'failed', attemptsMade: 3 });
    await q.close();
  });

  it('runs the children jobs enqueue in the same call, and only the types asked for', async () => {
    const q = await testQueue();
    await q.enqueue('post', { title: 'hello' });
    const other = await q.enqueue('report', null);
    const { completed } = await runJobs(
      q,
      async (job) => {
        if (job.type === 'post') {
          await job.progress(50);
          await job.log('fanning out');
          for (const kind of ['email', 'feed'])
            await job.enqueue(kind, { post: (job.data as { title: string }).title });
          return 'posted';
        }
        return `${job.type} sent`;
      },
      { types: ['post', 'email', 'feed'] },
    );
    expect(completed.map((c) => [c.type, c.result])).toEqual([
      ['post', 'posted'],
      ['email', 'email sent'],
      ['feed', 'feed sent'],
    ]);
    expect((await q.get(other.id)).state).toBe('queue');
    const { history } = await q.get(completed[0]!.id);
    expect(history).toMatchObject([
      { event: 'progress', value: 50 },
      { event: 'log', line: 'fanning out' },
      { event: 'result', value: 'posted' },
    ]);
    await q.close();
  });

  it('runs a delayed job only when asked to', async () => {
    const q = await testQueue();
    const later = await q.enqueue('t', 'later', { delay: 60_000 });
    expect(await runJobs(q, () => 'ran')).toEqual({ completed: [], failed: [] });
    expect((await q.get(later.id)).state).toBe('delayed');
    expect((await runJobs(q, () => 'ran', { delayed: true })).completed).toMatchObject([
      { id: later.id, result: 'ran' },
    ]);
    await q.close();
  });

  it('gives up with ETIMEOUT after max runs when a job enqueues itself forever, leaving it in queue/', async () => {
    const q = await testQueue();
    await q.enqueue('loop');
    const forever = async (job: ProcessorJob): Promise<void> => {
      await job.enqueue('loop');
    };
    await expect(runJobs(q, forever, { max: 25 })).rejects.toMatchObject({
      code: 'ETIMEOUT',
      message: expect.stringMatching(/gave up after 25 runs/) as unknown,
    });
    expect(await q.counts()).toMatchObject({ queue: 1, active: 0, done: 25 });
    await q.close();
  });

  it.each([
    ['a queue that is not one', () => runJobs({} as never, () => 1), /runJobs needs a Queue/],
    [
      'a processor that is not a function',
      (q: unknown) => runJobs(q as never, './send.js' as never),
      /processor function/,
    ],
    [
      'an unknown option',
      (q: unknown) => runJobs(q as never, () => 1, { type: ['a'] } as never),
      /unknown runJobs option "type"/,
    ],
    [
      'types not an array',
      (q: unknown) => runJobs(q as never, () => 1, { types: 'a' as never }),
      /types must be an array/,
    ],
    [
      'delayed not a boolean',
      (q: unknown) => runJobs(q as never, () => 1, { delayed: 1 as never }),
      /delayed must be true or false/,
    ],
    ['max 0', (q: unknown) => runJobs(q as never, () => 1, { max: 0 }), /max must be an integer >= 1/],
  ])('refuses %s with EBADOPTION, running nothing', async (_, call, message) => {
    const q = await testQueue();
    const { id } = await q.enqueue('t');
    await expect(call(q)).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringMatching(message) as unknown,
    });
    expect((await q.get(id)).state).toBe('queue');
    await q.close();
  });
});
