/**
 * Batches (enqueueBatch, q.batch, dirq batch): callbacks that run once when
 * every job of the batch has ended (onComplete) or all succeeded
 * (onSuccess), however many processes end the last jobs, and whatever
 * crashes in between.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsck } from '../dist/index.js';
import { census, duplicates } from './support/census.js';
import { dirq } from './support/cli.js';
import { rejects } from './support/rejects.js';
import { exited, openQueue, spawnNode, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const CHILD = new URL('./fixtures/child.mjs', import.meta.url).pathname;

/** Claim and complete (or fail for good, for types in `failing`) every ready job. */
async function drain(q: Awaited<ReturnType<typeof openQueue>>, failing: string[] = []): Promise<string[]> {
  const ran: string[] = [];
  for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
    ran.push(job.type);
    if (failing.includes(job.type)) await job.fail(new Error(`${job.type} failed`));
    else await job.complete({ batch: job.batch ?? null });
  }
  return ran;
}

describe('enqueueBatch', () => {
  it('runs onComplete and onSuccess once when every job succeeded; the callback sees the batch', async () => {
    const { dir, q } = await tempQueue();
    const batch = await q.enqueueBatch([{ type: 'mail', data: 1 }, { type: 'mail', data: 2 }, { type: 'feed' }], {
      onComplete: { type: 'complete', data: { post: 7 } },
      onSuccess: { type: 'published', priority: 10 },
    });
    expect(batch.id).toMatch(/^b\d{16}[a-z0-9]{8}$/);
    expect(batch.jobs).toHaveLength(3);
    expect(await q.counts()).toMatchObject({ queue: 3, waiting: 0 }); // the callbacks wait in the batch's directory
    expect(fs.readdirSync(path.join(dir, 'batches', batch.id)).sort()).toEqual([
      '.marker',
      'batch.json',
      'done',
      'failed',
      'onComplete',
      'onSuccess',
      'pending',
    ]);
    expect(fs.readdirSync(path.join(dir, 'batches', batch.id, 'pending')).sort()).toEqual(
      batch.jobs.map((j) => j.id).sort(),
    );
    const before = await q.batch(batch.id);
    expect(before).toMatchObject({ total: 3, pending: 3, done: 0, failed: 0, ended: false });
    expect(before.onComplete?.state).toBe('waiting');
    expect(await drain(q)).toEqual(['mail', 'mail', 'feed', 'published', 'complete']);
    const after = await q.batch(batch.id);
    expect(after).toMatchObject({ total: 3, pending: 0, done: 3, failed: 0, ended: true });
    expect(after.onComplete).toEqual({ id: before.onComplete!.id, state: 'done' });
    expect(after.onSuccess?.state).toBe('done');
    const cb = await q.get(after.onComplete!.id);
    expect(cb.result).toEqual({ batch: { id: batch.id, total: 3, done: 3, failed: 0, failedIds: [] } });
    expect(cb.data).toEqual({ post: 7 });
    await q.close();
  });

  it('a batch with a failure runs onComplete only; onSuccess is skipped (deleted, never run)', async () => {
    const { q } = await tempQueue();
    const batch = await q.enqueueBatch([{ type: 'ok' }, { type: 'bad', attempts: 1 }], {
      onComplete: { type: 'complete' },
      onSuccess: { type: 'success' },
    });
    expect(await drain(q, ['bad'])).toEqual(['ok', 'bad', 'complete']);
    const info = await q.batch(batch.id);
    expect(info).toMatchObject({ done: 1, failed: 1, ended: true, failedIds: [batch.jobs[1]!.id] });
    expect(info.onSuccess?.state).toBe('skipped');
    expect(info.onComplete?.state).toBe('done');
    expect(await q.counts()).toMatchObject({ waiting: 0, queue: 0, done: 2, failed: 1 });
    await q.close();
  });

  it('a job of the batch cancelled or removed counts as failed, and the batch still ends', async () => {
    const { q } = await tempQueue();
    const batch = await q.enqueueBatch([{ type: 'a' }, { type: 'b' }, { type: 'c' }], {
      onComplete: { type: 'complete' },
    });
    await q.cancel(batch.jobs[0]!.id);
    await q.remove(batch.jobs[1]!.id);
    expect(await drain(q)).toEqual(['c', 'complete']);
    expect(await q.batch(batch.id)).toMatchObject({ done: 1, failed: 2, ended: true });
    await q.close();
  });

  it('refuses a batch with no jobs, keys in it, waits in its callbacks, and unknown options', async () => {
    const { dir, q } = await tempQueue();
    await rejects(q.enqueueBatch([]), 'EBADOPTION', /non-empty array .* a batch with no jobs would never end/);
    await rejects(
      q.enqueueBatch([{ type: 'a', key: 'k' }]),
      'EBADOPTION',
      /item 0 has key, which a batch does not take/,
    );
    await rejects(
      q.enqueueBatch([{ type: 'a' }], { onComplete: { type: 'c', delay: 5 } }),
      'EBADOPTION',
      /onComplete has delay/,
    );
    await rejects(
      q.enqueueBatch([{ type: 'a' }], { onDone: { type: 'c' } } as never),
      'EBADOPTION',
      /unknown enqueueBatch option "onDone"/,
    );
    await rejects(q.enqueueBatch([{ type: '' }]), 'EBADTYPE', /enqueueBatch: item 0/);
    await rejects(q.batch('b0000000000000000nothere'), 'ENOTFOUND', /no batch "b0000000000000000nothere"/);
    expect(fs.readdirSync(path.join(dir, 'batches'))).toEqual([]);
    expect(await q.counts()).toMatchObject({ queue: 0, waiting: 0 });
    await q.close();
  });

  it('dirq batch shows it, and --json has every field', async () => {
    const { dir, q } = await tempQueue();
    const batch = await q.enqueueBatch([{ type: 'a' }], { onComplete: { type: 'complete' } });
    await q.close();
    const text = await dirq(['batch', dir, batch.id]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(/JOBS\s+1: 1 pending, 0 done, 0 failed/);
    expect(text.stdout).toMatch(/ONCOMPLETE\s+\S+ \(waiting\)/);
    const json = JSON.parse((await dirq(['batch', dir, batch.id, '--json'])).stdout) as Record<string, unknown>;
    expect(json).toMatchObject({ schema: 1, id: batch.id, total: 1, pending: 1, ended: false });
    expect((await dirq(['batch', dir, 'nope'])).code).toBe(1);
  });
});

describe('a batch whose last jobs end in a crash', () => {
  it('a job that ended without marking its batch is counted by the sweep, and the callback made, once', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const batch = await q.enqueueBatch([{ type: 'a' }], { onComplete: { type: 'complete' } });
    const job = (await q.claim())!;
    fs.appendFileSync(
      job.path,
      `${JSON.stringify({ event: 'result', at: new Date().toISOString(), attempt: 1, claim: job.claim })}\n`,
    );
    fs.renameSync(job.path, path.join(dir, 'done', job.id)); // the ending's rename, then the crash
    await q.close();
    const report = await fsck(dir);
    expect(report.findings.map((f) => f.path)).toEqual([
      `batches/${batch.id}/onComplete`, // the callback not made
      `batches/${batch.id}/pending/${job.id}`, // the job counted as pending
    ]);
    const other = await openQueue(dir);
    expect(await drain(other)).toEqual(['complete']);
    expect(await other.batch(batch.id)).toMatchObject({ done: 1, ended: true, onComplete: { state: 'done' } });
    expect((await fsck(dir)).findings).toEqual([]);
    await other.close();
  });

  it('4 processes finish the 1,000 jobs of a batch while being SIGKILLed: one onComplete job, run to its end once', async () => {
    const { dir, q } = await tempQueue();
    const batch = await q.enqueueBatch(
      Array.from({ length: 1000 }, (_, i) => ({ type: 'm', data: i })),
      { onComplete: { type: 'complete' } },
    );
    await q.close();
    const log = path.join(dir, '..', 'log');
    const env = { ...process.env, DIRQ_STALE_AFTER: '1000', DIRQ_SWEEP_INTERVAL: '100' };
    const start = async (): Promise<ReturnType<typeof spawnNode>> => {
      const child = spawnNode([CHILD, 'drain-all', dir, log], { env });
      await lineFrom(child, 'ready');
      return child;
    };
    const workers = await Promise.all([start(), start(), start(), start()]);
    const done = (): number => fs.readdirSync(path.join(dir, 'done')).length;
    // kill one worker at a time as the batch nears its end (the last jobs and the callback are where it counts)
    let kills = 0;
    for (const threshold of [200, 500, 800, 950, 990, 998, 1000]) {
      await until(() => done() >= threshold, `${threshold} jobs done`, 60_000);
      const victim = kills++ % workers.length;
      workers[victim]!.kill('SIGKILL');
      await exited(workers[victim]!);
      workers[victim] = await start();
    }
    await until(() => done() === 1001, 'every job and the callback done', 60_000);
    for (const worker of workers) expect(await exited(worker)).toBe(0);
    expect(duplicates(dir)).toEqual([]);
    const callbacks = [...census(dir)].filter(([id]) => id.endsWith('.complete'));
    expect(callbacks, 'exactly one callback job, in done/').toEqual([[expect.any(String), ['done']]]);
    const after = await openQueue(dir);
    expect(await after.batch(batch.id)).toMatchObject({
      total: 1000,
      done: 1000,
      failed: 0,
      pending: 0,
      onComplete: { state: 'done' },
    });
    const cb = await after.get(callbacks[0]![0]);
    expect(cb.history.filter((e) => e.event === 'released')).toHaveLength(1);
    await after.close();
  });
});
