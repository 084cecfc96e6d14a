/**
 * The invariants (ARCHITECTURE.md, I1..I9) that the queue core owns, each by name.
 * (I4 and I6, recovery and maintenance, have their own file.)
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { move } from '../dist/store/files.js';
import { census, duplicates } from './support/census.js';
import { exited, openQueue, spawnNode, tempDir, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const child = new URL('./fixtures/child.mjs', import.meta.url).pathname;
const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

describe('I1 one place', () => {
  it('every transition keeps each job in exactly one state directory', async () => {
    const { dir, q } = await tempQueue();
    const ids = (
      await q.enqueueMany(Array.from({ length: 40 }, (_, i) => ({ type: 't', data: i, backoff: i % 2 ? 0 : 5 })))
    ).map((r) => r.id);
    for (let n = 0; n < 40; n++) {
      const job = (await q.claim({ wait: 5000 }))!;
      expect(duplicates(dir)).toEqual([]);
      if (n % 4 === 0) await job.complete(n);
      else if (n % 4 === 1) await job.fail('no');
      else if (n % 4 === 2) await job.release();
      else await job.fail('no more');
      expect(duplicates(dir)).toEqual([]);
    }
    expect([...census(dir).keys()].sort()).toEqual(ids.sort());
    await q.close();
  });

  it('a process SIGKILLed at random instructions never leaves a job in two states or none', async () => {
    const dir = tempDir();
    await (await openQueue(dir)).close();
    const log = path.join(dir, 'enqueued.log'); // beside the state directories, not in one
    let seen = 0;
    for (let round = 0; round < 8; round++) {
      const worker = spawnNode([child, 'churn', dir, log]);
      await lineFrom(worker, 'ready');
      const target = seen + 20 + Math.floor(Math.random() * 40);
      await until(
        () => fs.readdirSync(path.join(dir, 'done')).length + fs.readdirSync(path.join(dir, 'failed')).length >= target,
        'progress',
      );
      worker.kill('SIGKILL');
      await exited(worker);
      seen = target;
      expect(duplicates(dir)).toEqual([]);
    }
    // jobs a killed process held are still in active/ (recovery brings them back); none vanished:
    // every file ever renamed into place is in some state, and tmp/ holds only unfinished writes
    const jobs = census(dir);
    const enqueued = fs.readFileSync(log, 'utf8').split('\n').filter(Boolean);
    expect(enqueued.length).toBeGreaterThan(seen);
    expect(enqueued.filter((id) => !jobs.has(id))).toEqual([]); // every job whose enqueue resolved is somewhere
    for (const name of ls(dir, 'tmp')) expect(name.endsWith('.tmp')).toBe(true);
  });
});

describe('I2 complete or absent', () => {
  it('a reader never sees a partial file in queue/, even while a writer is killed mid-write', async () => {
    const { dir, q } = await tempQueue();
    const size = 2 * 1024 * 1024;
    const writer = spawnNode([child, 'write-big', dir, String(size)]);
    await lineFrom(writer, 'ready');
    let claimed = 0;
    let invalid = 0;
    q.on('invalid', () => invalid++);
    while (claimed < 15) {
      const job = await q.claim({ wait: 30_000 });
      if (job === undefined) continue;
      expect((job.data as { data: string }).data.length).toBe(size);
      await job.complete();
      claimed++;
    }
    writer.kill('SIGKILL');
    await exited(writer);
    for (let job = await q.claim(); job; job = await q.claim()) {
      expect((job.data as { data: string }).data.length).toBe(size);
      await job.complete();
    }
    expect(invalid).toBe(0);
    expect(ls(dir, 'failed')).toEqual([]);
    await q.close();
  });

  it('skips names that do not match the pattern, and sets aside unparsable files with the reason', async () => {
    const { dir, q } = await tempQueue();
    fs.writeFileSync(path.join(dir, 'queue', 'README'), 'not a job');
    fs.writeFileSync(path.join(dir, 'queue', '.50-1763830000000000-a.t.swp'), '{}');
    const bad = '50-1763830000000000-bad.t';
    fs.writeFileSync(path.join(dir, 'queue', bad), '{"data": oops');
    const { id } = await q.enqueue('t', 'fine');
    const invalid: string[] = [];
    q.on('invalid', ({ reason }) => invalid.push(reason));
    const job = (await q.claim())!;
    expect(job.id).toBe(id);
    await job.complete();
    expect(ls(dir, 'queue')).toEqual(['.50-1763830000000000-a.t.swp', 'README']);
    expect(ls(dir, 'failed')).toEqual([bad]);
    expect(invalid).toEqual([expect.stringContaining('not JSON')]);
    expect((await q.get(bad)).invalid).toContain('not JSON');
    expect(await q.counts()).toMatchObject({ queue: 0, failed: 1, done: 1 });
    await q.close();
  });

  it('writes under tmp/ and renames into place; durable enqueue leaves nothing in tmp/', async () => {
    const { dir, q } = await tempQueue({ durable: true });
    const { id } = await q.enqueue('t', { x: 1 });
    expect(ls(dir, 'tmp')).toEqual([]);
    expect(fs.readFileSync(path.join(dir, 'queue', id), 'utf8')).toMatch(
      /^\{"type":"t","data":\{"x":1\},"created":"[^"]+"\}\n$/,
    );
    await q.close();
  });
});

describe('I3 claim by rename', () => {
  it('a lost race (ENOENT) moves on to the next candidate', async () => {
    const { dir, q } = await tempQueue({ watch: false });
    const first = await q.enqueue('t', 1);
    const second = await q.enqueue('t', 2);
    expect(await q.claim({ types: ['none'] })).toBeUndefined(); // builds the index with both
    fs.renameSync(path.join(dir, 'queue', first.id), path.join(dir, 'active', `${first.id}@other.1.x.0`));
    const job = (await q.claim())!;
    expect(job.id).toBe(second.id);
    await job.complete();
    await q.close();
  });

  it('a rename reported lost whose own target exists counts as won (NFS retransmission)', () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'won'), '');
    expect(move(path.join(dir, 'gone'), path.join(dir, 'won'), true)).toBe(true);
    expect(move(path.join(dir, 'gone'), path.join(dir, 'won'), false)).toBe(false);
    expect(move(path.join(dir, 'gone'), path.join(dir, 'absent'), true)).toBe(false);
  });
});

describe('I5 names sort', () => {
  it('LC_ALL=C ls queue/ lists jobs in the order claims take them', async () => {
    const { dir, q } = await tempQueue({ agingStep: Infinity });
    for (let i = 0; i < 60; i++) await q.enqueue(i % 2 ? 'a' : 'b', i, { priority: (i * 37) % 100 });
    const listed = spawnSync('ls', [path.join(dir, 'queue')], {
      env: { ...process.env, LC_ALL: 'C' },
      encoding: 'utf8',
    })
      .stdout.trim()
      .split('\n');
    const claimed: string[] = [];
    for (let job = await q.claim(); job; job = await q.claim()) {
      claimed.push(job.id);
      await job.complete();
    }
    expect(claimed).toEqual(listed);
    expect(listed.map((id) => id.slice(0, 2))).toEqual([...listed.map((id) => id.slice(0, 2))].sort());
    await q.close();
  });
});
