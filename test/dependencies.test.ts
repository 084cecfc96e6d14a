/**
 * Jobs that wait for jobs (enqueue's `after`): waiting/, the release by one
 * rename when every parent has ended, job.parents, the failure policy, and
 * the backstops (a sweep, fsck --repair) for a release a crash cut short.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsck, type ProcessorJob } from '../dist/index.js';
import { bootId } from '../dist/store/liveness.js';
import { census, duplicates } from './support/census.js';
import { startPool } from './support/pools.js';
import { rejects } from './support/rejects.js';
import { deadPid, openQueue, tempDir, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

/** The names in DIR/SUB as `ls` shows them (deps/.marker, the file every marker links, is a dot file). */
const ls = (dir: string, sub: string): string[] =>
  fs
    .readdirSync(path.join(dir, sub))
    .filter((name) => !name.startsWith('.'))
    .sort();

describe('after: a job waits in waiting/ for the jobs it names', () => {
  it('a chain of 100 jobs, each after the one before, runs in order through a pool', async () => {
    const { dir, q } = await tempQueue();
    const ids: string[] = [];
    for (let i = 0; i < 100; i++) {
      const options = i === 0 ? {} : { after: [ids[i - 1]!] };
      ids.push((await q.enqueue('link', { i }, options)).id);
    }
    expect(await q.counts()).toMatchObject({ queue: 1, waiting: 99 });
    const order: number[] = [];
    const pool = await startPool(dir, {
      processor: (job: ProcessorJob) => {
        const { i } = job.data as { i: number };
        order.push(i);
        if (i > 0) expect(job.parents).toEqual([{ id: ids[i - 1], state: 'done', result: i - 1 }]);
        return i;
      },
      concurrency: 4,
    });
    await until(async () => (await q.counts()).done === 100, 'the chain to run');
    await pool.close();
    expect(order).toEqual([...Array(100).keys()]);
    expect(ls(dir, 'deps')).toEqual([]); // every marker went with its release
    expect(ls(dir, 'waiting')).toEqual([]);
    await q.close();
  });

  it('a diamond runs D once, with both parents’ results', async () => {
    const { dir, q } = await tempQueue();
    const a = await q.enqueue('a');
    const b = await q.enqueue('b', undefined, { after: [a.id] });
    const c = await q.enqueue('c', undefined, { after: [a.id] });
    const d = await q.enqueue('d', undefined, { after: [b.id, c.id, b.id] }); // a repeated id counts once
    const runs: string[] = [];
    let seen: unknown;
    const pool = await startPool(dir, {
      processor: (job: ProcessorJob) => {
        runs.push(job.type);
        if (job.type === 'd') seen = job.parents;
        return `${job.type}!`;
      },
      concurrency: 2,
    });
    await until(async () => (await q.counts()).done === 4, 'the diamond to run');
    await pool.close();
    expect(runs.filter((t) => t === 'd')).toHaveLength(1);
    expect(runs.indexOf('d')).toBe(3);
    expect(seen).toEqual([
      { id: b.id, state: 'done', result: 'b!' },
      { id: c.id, state: 'done', result: 'c!' },
    ]);
    const info = await q.get(d.id);
    expect(info.after).toEqual([b.id, c.id]);
    expect(info.parents).toEqual(seen);
    expect(info.history.map((e) => e.event)).toEqual(['released', 'result']);
    await q.close();
  });

  it('a parent that ended before the child was enqueued counts at once', async () => {
    const { q } = await tempQueue();
    const p = await q.enqueue('p');
    await (await q.claim())!.complete(7);
    const child = await q.enqueue('c', undefined, { after: [p.id] });
    expect((await q.get(child.id)).state).toBe('queue');
    const job = (await q.claim())!;
    expect(job.parents).toEqual([{ id: p.id, state: 'done', result: 7 }]);
    await job.complete();
    await q.close();
  });

  it('shows where it waits: counts, list, get (waitingFor), and dirq-style JSON', async () => {
    const { q } = await tempQueue();
    const p = await q.enqueue('p');
    const c = await q.enqueue('c', 1, { after: [p.id], afterFailed: 'run' });
    expect(await q.counts()).toEqual({ queue: 1, delayed: 0, active: 0, done: 0, failed: 0, waiting: 1 });
    expect((await q.list('waiting')).map((j) => j.id)).toEqual([c.id]);
    const info = await q.get(c.id);
    expect(info).toMatchObject({
      state: 'waiting',
      after: [p.id],
      afterFailed: 'run',
      waitingFor: [{ id: p.id, state: 'queue' }],
    });
    expect((await q.stats()).counts.waiting).toBe(1);
    await q.close();
  });

  it('a failed parent fails its child with EPARENTFAILED naming it, and the failure runs down the chain', async () => {
    const { q } = await tempQueue();
    const p = await q.enqueue('p', undefined, { attempts: 1 });
    const c = await q.enqueue('c', undefined, { after: [p.id] });
    const g = await q.enqueue('g', undefined, { after: [c.id] });
    const anyway = await q.enqueue('anyway', undefined, { after: [c.id], afterFailed: 'run' });
    await (await q.claim())!.fail(new Error('the disk is on fire'));
    const child = await q.get(c.id);
    expect(child.state).toBe('failed');
    expect(child.error).toMatchObject({ code: 'EPARENTFAILED' });
    expect(child.error!.message).toContain(`waits for job ${p.id}, which failed: the disk is on fire`);
    expect(child.parents).toEqual([{ id: p.id, state: 'failed', error: { message: 'the disk is on fire' } }]);
    expect((await q.get(g.id)).error).toMatchObject({ code: 'EPARENTFAILED' });
    const job = (await q.claim())!;
    expect(job.id).toBe(anyway.id);
    expect(job.parents).toEqual([
      { id: c.id, state: 'failed', error: expect.objectContaining({ code: 'EPARENTFAILED' }) },
    ]);
    await job.complete();
    expect((await q.totals()).c?.failed).toBe(1); // the release that failed it counted it
    await q.close();
  });

  it('a parent removed or cancelled releases its children per policy, never leaves them waiting', async () => {
    const { dir, q } = await tempQueue();
    const removed = await q.enqueue('p');
    const cancelled = await q.enqueue('p', undefined, { delay: 60_000 });
    const a = await q.enqueue('c', undefined, { after: [removed.id] });
    const b = await q.enqueue('c', undefined, { after: [cancelled.id], afterFailed: 'run' });
    await q.remove(removed.id);
    expect((await q.get(a.id)).error?.message).toMatch(/which was removed before it ended/);
    await q.cancel(cancelled.id);
    const info = await q.get(b.id);
    expect(info.state).toBe('queue');
    expect(info.parents).toEqual([
      { id: cancelled.id, state: 'failed', error: expect.objectContaining({ code: 'ECANCELLED' }) },
    ]);
    expect(ls(dir, 'deps')).toEqual([]);
    await q.close();
  });

  it('a waiting job removed, purged or cancelled takes its markers with it', async () => {
    const { dir, q } = await tempQueue();
    const p = await q.enqueue('p');
    const [x, y, z] = [
      await q.enqueue('c', undefined, { after: [p.id] }),
      await q.enqueue('c', undefined, { after: [p.id] }),
      await q.enqueue('c', undefined, { after: [p.id] }),
    ];
    expect(ls(dir, `deps/${p.id}`)).toEqual([x.id, y.id, z.id].sort());
    expect(await q.remove(x.id)).toBe('waiting');
    expect(await q.cancel(y.id)).toEqual({ id: y.id, state: 'failed' });
    expect(await q.purge('waiting')).toBe(1);
    expect(ls(dir, 'deps')).toEqual([]);
    expect(await q.counts()).toMatchObject({ waiting: 0, queue: 1, failed: 1 });
    await q.close();
  });

  it('refuses bad input with a typed error, adding nothing', async () => {
    const { dir, q } = await tempQueue();
    const p = await q.enqueue('p');
    const ghost = p.id.replace(/\.p$/, '.ghost');
    await rejects(
      q.enqueue('c', 1, { after: [ghost] }),
      'ENOTFOUND',
      /in after is in no state .* a job can wait only for jobs that exist/,
    );
    await rejects(q.enqueue('c', 1, { after: [] }), 'EBADOPTION', /after must be a non-empty array/);
    await rejects(
      q.enqueue('c', 1, { after: 'x' as unknown as string[] }),
      'EBADOPTION',
      /after must be a non-empty array/,
    );
    await rejects(q.enqueue('c', 1, { after: ['nope'] }), 'EBADOPTION', /after must hold job ids/);
    const many = Array.from({ length: 101 }, (_, i) =>
      p.id.replace(/-(\d{16})-/, (_m, us: string) => `-${String(Number(us) + i).padStart(16, '0')}-`),
    );
    await rejects(
      q.enqueue('c', 1, { after: many }),
      'EBADOPTION',
      /more than 100: to wait for more, put them in a batch/,
    );
    await rejects(q.enqueue('c', 1, { after: [p.id], delay: 10 }), 'EBADOPTION', /give it no delay or runAt/);
    await rejects(
      q.enqueue('c', 1, { after: [p.id], afterFailed: 'skip' as 'run' }),
      'EBADOPTION',
      /afterFailed must be 'fail' or 'run'/,
    );
    await rejects(
      q.enqueueMany([{ type: 'c' }, { type: 'c', after: [ghost] }]),
      'ENOTFOUND',
      /item 1: job .* in after/,
    );
    expect(await q.counts()).toMatchObject({ queue: 1, waiting: 0 });
    expect(ls(dir, 'deps')).toEqual([]);
    expect(ls(dir, 'tmp')).toEqual([]);
    await q.close();
  });

  it('enqueueMany takes after too, for jobs enqueued before the call', async () => {
    const { q } = await tempQueue();
    const p = await q.enqueue('p');
    const refs = await q.enqueueMany([{ type: 'c', after: [p.id] }, { type: 'd' }]);
    expect((await q.get(refs[0]!.id)).state).toBe('waiting');
    await (await q.claim({ types: ['p'] }))!.complete();
    expect((await q.get(refs[0]!.id)).state).toBe('queue');
    await q.close();
  });
});

describe('a release a crash cut short is finished by a sweep and by fsck --repair', () => {
  /** A parent completed by a process that died before it released its child: done/ has it, the child still waits. */
  async function cutShort(): Promise<{ dir: string; parent: string; child: string }> {
    const { dir, q } = await tempQueue({ maintenance: false });
    const parent = (await q.enqueue('p')).id;
    const child = (await q.enqueue('c', undefined, { after: [parent] })).id;
    const job = (await q.claim())!;
    fs.appendFileSync(
      job.path,
      `${JSON.stringify({ event: 'result', at: new Date().toISOString(), attempt: 1, claim: job.claim, value: 1 })}\n`,
    );
    fs.renameSync(job.path, path.join(dir, 'done', parent)); // the ending's rename, then the crash
    await q.close();
    return { dir, parent, child };
  }

  it('the sweep releases a child whose parent ended without releasing it', async () => {
    const { dir, child } = await cutShort();
    const q = await openQueue(dir); // its first sweep
    expect((await q.get(child)).state).toBe('queue');
    expect(ls(dir, 'deps')).toEqual([]);
    await q.close();
  });

  it('fsck reports it, and --repair releases it', async () => {
    const { dir, child } = await cutShort();
    const report = await fsck(dir);
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'waiting', path: `waiting/${child}`, repaired: false }),
    ]);
    const repaired = await fsck(dir, { repair: true });
    expect(repaired.findings[0]).toMatchObject({ action: 'released to queue/', repaired: true });
    expect(census(dir).get(child)).toEqual(['queue']);
    expect((await fsck(dir)).findings).toEqual([]);
  });

  it('a releaser that died between its two renames (waiting/ID@CLAIM) is finished by the sweep, once', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const parent = (await q.enqueue('p')).id;
    const child = (await q.enqueue('c', undefined, { after: [parent] })).id;
    await (await q.claim())!.complete();
    // put the child back as a release that died: waiting/ID@CLAIM of an owner whose process is gone
    fs.renameSync(path.join(dir, 'queue', child), path.join(dir, 'waiting', child));
    const owner = `${os
      .hostname()
      .split('.')[0]!
      .replace(/[^A-Za-z0-9-]/g, '-')
      .slice(0, 32)}.${await deadPid()}.dead00`;
    const heartbeat = {
      host: os.hostname(),
      bootId: bootId(),
      pid: Number(owner.split('.')[1]),
      startTime: '1',
      started: '',
    };
    fs.writeFileSync(path.join(dir, 'workers', owner), JSON.stringify(heartbeat));
    fs.renameSync(path.join(dir, 'waiting', child), path.join(dir, 'waiting', `${child}@${owner}.0`));
    await q.close();
    const other = await openQueue(dir);
    const job = (await other.claim())!;
    expect(job.id).toBe(child);
    expect(job.parents).toEqual([{ id: parent, state: 'done' }]);
    await job.complete();
    expect(duplicates(dir)).toEqual([]);
    expect(ls(dir, 'waiting')).toEqual([]);
    await other.close();
  });

  it('a link planted at deps/PARENT or batches/ID (a group member in a shared queue) is never listed through', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const outside = tempDir();
    const victim = '50-1763830000000000-victim.t';
    fs.mkdirSync(path.join(outside, 'pending'), { recursive: true });
    fs.mkdirSync(path.join(outside, 'done'));
    for (const name of [victim, 'passwd']) {
      fs.writeFileSync(path.join(outside, name), 'keep');
      fs.writeFileSync(path.join(outside, 'pending', name), 'keep');
    }
    fs.writeFileSync(path.join(outside, 'batch.json'), '{"total":1,"created":"2026-01-01T00:00:00Z"}');
    const parent = await q.enqueue('p');
    await (await q.claim())!.complete(); // an ended parent: the sweep would release its children
    fs.symlinkSync(outside, path.join(dir, 'deps', parent.id));
    fs.symlinkSync(outside, path.join(dir, 'batches', 'b0000000000000000aaaaaaaa'));
    await q.recover();
    await fsck(dir, { repair: true });
    for (const name of [victim, 'passwd']) {
      expect(fs.readFileSync(path.join(outside, name), 'utf8')).toBe('keep');
      expect(fs.readFileSync(path.join(outside, 'pending', name), 'utf8')).toBe('keep');
    }
    expect(fs.readdirSync(path.join(outside, 'done'))).toEqual([]);
    await q.close();
  });
});
