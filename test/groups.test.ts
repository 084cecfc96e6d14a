/**
 * Groups (issue 13, fairness): enqueue's `group` takes turns with the other
 * groups of a type and priority, with real claims and with a Pool; where the
 * group shows (id tag, envelope, q.get, job.group, dirq show and ls); and
 * bad groups through the API, schedules and the CLI. The index alone:
 * test/ready-index-groups.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Job, ProcessorJob } from '../dist/index.js';
import { encodeEnvelope, groupOf, parseJobFile } from '../dist/store/envelope.js';
import { groupTag, idGroupTag } from '../dist/store/names.js';
import { dirq, expectOneLineError, ok, okJson } from './support/cli.js';
import { startPool } from './support/pools.js';
import { openQueue, tempDir, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';
import { rejects } from './support/rejects.js';

/** 10,000 jobs of group A, then 10 of group B (issue 13's proof). */
async function tenThousandThenTen(q: Awaited<ReturnType<typeof openQueue>>): Promise<Set<string>> {
  for (let i = 0; i < 10_000; i += 1000)
    await q.enqueueMany(Array.from({ length: 1000 }, (_, n) => ({ type: 'work', data: i + n, group: 'A' })));
  const b = await q.enqueueMany(Array.from({ length: 10 }, (_, n) => ({ type: 'work', data: n, group: 'B' })));
  return new Set(b.map((r) => r.id));
}

describe('round robin between groups, with real claims', () => {
  it('10,000 jobs of group A, then 10 of group B: every B job starts within the first 40 starts', async () => {
    const { q } = await tempQueue({ durable: false });
    const b = await tenThousandThenTen(q);
    const starts: string[] = [];
    for (let job = await q.claim(); job !== undefined && starts.length < 100; job = await q.claim()) {
      starts.push(job.id);
      await job.complete();
    }
    await q.close();
    const positions = starts.flatMap((id, i) => (b.has(id) ? [i] : []));
    expect(positions).toHaveLength(10);
    expect(Math.max(...positions)).toBeLessThan(40);
  });

  it('the same with a Pool of 4 in-process workers', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { durable: false });
    const b = await tenThousandThenTen(q);
    await q.close();
    const starts: string[] = [];
    const pool = await startPool(dir, {
      processor: (job: ProcessorJob) => {
        starts.push(job.id);
      },
      concurrency: 4,
    });
    await until(() => starts.length >= 100, '100 starts');
    await pool.close();
    const positions = starts.flatMap((id, i) => (b.has(id) ? [i] : []));
    expect(positions).toHaveLength(10);
    expect(Math.max(...positions)).toBeLessThan(40);
  });

  it('without groups the order is the plain FIFO it was', async () => {
    const { q } = await tempQueue({ durable: false });
    const refs = await q.enqueueMany(Array.from({ length: 50 }, (_, n) => ({ type: 'work', data: n })));
    const order: string[] = [];
    for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
      order.push(job.id);
      await job.complete();
    }
    await q.close();
    expect(order).toEqual(refs.map((r) => r.id));
  });
});

describe('where a group shows', () => {
  it('in the id (its tag), the envelope, q.get, q.list, the claimed Job and the processor job', async () => {
    const { dir, q } = await tempQueue({ durable: false });
    const { id } = await q.enqueue('work', { n: 1 }, { group: 'tenant-42' });
    expect(idGroupTag(id)).toBe(groupTag('tenant-42'));
    expect(id).toMatch(new RegExp(`^50-\\d{16}-[a-z0-9]+G${groupTag('tenant-42')}\\.work$`));
    const line = fs.readFileSync(path.join(dir, 'queue', id), 'utf8').split('\n')[0]!;
    expect(JSON.parse(line)).toMatchObject({ type: 'work', data: { n: 1 }, group: 'tenant-42' });
    expect(await q.get(id)).toMatchObject({ id, group: 'tenant-42' });
    expect((await q.list('queue'))[0]).toMatchObject({ group: 'tenant-42' });
    const delayed = await q.enqueue('work', null, { group: 'tenant-42', delay: 60_000 });
    expect(idGroupTag(delayed.id)).toBe(groupTag('tenant-42'));
    const plain = await q.enqueue('work', null);
    expect(idGroupTag(plain.id)).toBe('');
    expect(await q.get(plain.id)).not.toHaveProperty('group');
    const job = (await q.claim()) as Job;
    expect(job.group).toBe('tenant-42');
    await job.complete();
    const other = (await q.claim()) as Job;
    expect(other.group).toBeUndefined();
    await other.release();

    const seen: (string | undefined)[] = [];
    const pool = await startPool(dir, {
      processor: (j: ProcessorJob) => {
        seen.push(j.group);
      },
    });
    await q.enqueue('work', null, { group: 'tenant-7' });
    await until(() => seen.length >= 2, 'both jobs ran');
    await pool.close();
    await q.close();
    expect(seen.sort()).toEqual(['tenant-7', undefined]);
  });

  it('the envelope round-trips its group; a group that is not a string is ignored', () => {
    const text = encodeEnvelope({ type: 'work', data: 1, group: 'tenant-42' });
    expect(text).toBe('{"type":"work","data":1,"group":"tenant-42"}\n');
    expect(groupOf(parseJobFile(text).envelope)).toBe('tenant-42');
    expect(groupOf(parseJobFile('{"type":"work","group":42}\n').envelope)).toBeUndefined();
    expect(groupOf(parseJobFile('{}\n').envelope)).toBeUndefined();
  });

  it('a schedule with a group makes tagged jobs, and still finds its runs', async () => {
    const { dir, q } = await tempQueue({ durable: false });
    await q.schedule('nightly', { type: 'report', every: 100, group: 'tenant-9', overlap: 'allow' });
    await until(() => fs.readdirSync(path.join(dir, 'queue')).length > 0, 'a slot made');
    const [id] = fs.readdirSync(path.join(dir, 'queue'));
    expect(idGroupTag(id!)).toBe(groupTag('tenant-9'));
    expect(await q.get(id!)).toMatchObject({ group: 'tenant-9', schedule: { name: 'nightly' } });
    const job = (await q.claim({ types: ['report'] })) as Job;
    expect(job.group).toBe('tenant-9');
    await job.complete();
    await q.unschedule('nightly');
    await q.schedule('nightly', { type: 'report', every: 100, group: 'tenant-9', paused: true });
    const [info] = await q.schedules();
    await q.close();
    expect(info?.lastSuccess).toBeInstanceOf(Date); // its done/ job is found by the schedule's unique part
  });
});

describe('bad groups', () => {
  it('a group of the wrong type, empty, too long or not well-formed text: EBADOPTION, nothing enqueued', async () => {
    const { dir, q } = await tempQueue({ durable: false });
    await rejects(
      q.enqueue('work', null, { group: 42 as unknown as string }),
      'EBADOPTION',
      /group must be a string, got 42/,
    );
    await rejects(q.enqueue('work', null, { group: '' }), 'EBADOPTION', /group must be a non-empty string/);
    await rejects(
      q.enqueue('work', null, { group: 'x'.repeat(257) }),
      'EBADOPTION',
      /group must be at most 256 characters, got 257/,
    );
    await rejects(q.enqueue('work', null, { group: 'a\ud800' }), 'EBADOPTION', /lone surrogate/);
    await rejects(
      q.enqueueMany([{ type: 'work' }, { type: 'work', group: '' }]),
      'EBADOPTION',
      /enqueueMany: item 1: group must be a non-empty string/,
    );
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([]);
    await q.enqueue('work', null, { group: 'x'.repeat(256) }); // the longest is fine
    await q.enqueue('work', null, { group: 'ünïcode ✓ / tenant' });
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(2);
    await rejects(
      q.schedule('s', { type: 't', every: 1000, group: '' }),
      'EBADSCHEDULE',
      /group must be a non-empty string/,
    );
    await q.close();
  });

  it('from the CLI: --group, dirq show and dirq ls (a GROUP column only when a listed job has one), and bad groups', async () => {
    const dir = tempDir();
    await ok(['init', dir]);
    const plain = (await ok(['enqueue', dir, 'work', '{}'])).trim();
    expect(await ok(['ls', dir])).not.toMatch(/GROUP/);
    const grouped = (await ok(['enqueue', dir, 'work', '{}', '--group', 'tenant-42'])).trim();
    expect(idGroupTag(grouped)).toBe(groupTag('tenant-42'));
    expect(await ok(['show', dir, grouped])).toMatch(/^GROUP\s+tenant-42$/m);
    expect(await ok(['show', dir, plain])).not.toMatch(/GROUP/);
    const listing = (await ok(['ls', dir])).split('\n');
    expect(listing[0]).toMatch(/^ID\s+TYPE\s+GROUP\s+PRI\s/);
    expect(listing.find((l) => l.startsWith(grouped))).toMatch(/\swork\s+tenant-42\s+50\s/);
    expect(listing.find((l) => l.startsWith(plain))).toMatch(/\swork\s+-\s+50\s/);
    const json = await okJson<{ id: string; group?: string }[]>(['ls', dir, '--json']);
    expect(json.find((j) => j.id === grouped)?.group).toBe('tenant-42');
    expect(json.find((j) => j.id === plain)).not.toHaveProperty('group');
    expect(await okJson(['show', dir, grouped, '--json'])).toMatchObject({ group: 'tenant-42' });
    for (const [group, message] of [
      ['', /group must be a non-empty string/],
      ['x'.repeat(257), /group must be at most 256 characters/],
    ] as const) {
      expectOneLineError(await dirq(['enqueue', dir, 'work', '{}', '--group', group]), 2, message);
    }
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(2);
  });
});
