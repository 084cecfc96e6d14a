/**
 * Coalescing (issue 15): enqueue's `coalesce` key in the id (a C tag) and the envelope, claimMany with
 * and without coalesce, the index's per-(type, key) FIFOs, files whose tag and key disagree, and bad
 * input. Pool batchSize: test/pool-batch.test.ts. The codec alone: test/names.test.ts. That a
 * coalesced claim costs the same whatever the backlog is measured in bench/coalesce.js, not asserted.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { coalesceTag, groupTag, idCoalesceTag, idEnqueuedUs, idGroupTag, NameMaker } from '../dist/store/names.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';
import { dirq, ok } from './support/cli.js';
import { tempDir, tempQueue } from './support/temp.js';
import { rejects } from './support/rejects.js';

const KEYS = Array.from({ length: 10 }, (_, i) => `user-${i}`);

const tags = new Map<string, string>();
const tagOf = (key: string): string => tags.get(key) ?? (tags.set(key, coalesceTag(key)), coalesceTag(key));
/** A job id of coalesce key `key` ('' for none), optionally grouped. */
const id = (us: number, key = '', type = 't', group = ''): string =>
  `50-${String(us).padStart(16, '0')}-a${group === '' ? '' : `G${groupTag(group)}`}${key === '' ? '' : `C${tagOf(key)}`}.${type}`;

describe('the ready index by (type, coalesce key)', () => {
  it('takeCoalesced gives the jobs of one type and key in order, skipping what take() took', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 9; t++) index.add(id(t, KEYS[t % 3], t % 2 === 0 ? 'a' : 'b'));
    index.add(id(10));
    index.add(id(11));
    expect(index.take(new Set(['b']))).toBe(id(1, KEYS[1], 'b'));
    const tag = coalesceTag(KEYS[1]!);
    expect(index.takeCoalesced('b', tag)).toBe(id(7, KEYS[1], 'b'));
    expect(index.takeCoalesced('b', tag)).toBeUndefined();
    expect(index.takeCoalesced('a', tag)).toBe(id(4, KEYS[1], 'a'));
    const t = new Set(['t']);
    expect(index.take(new Set(['a']), undefined, true)).toBeUndefined(); // keyless: the next job of a has a key
    expect(index.take(t, undefined, true)).toBe(id(10)); // the jobs of no key come from the buckets
    index.delete(id(11));
    expect(index.take(t, undefined, true)).toBeUndefined();
    expect(index.takeCoalesced('a', coalesceTag(KEYS[0]!), new Set(['a']))).toBeUndefined(); // a skipped type
    expect(index.size).toBe(6);
    const rest: string[] = [];
    for (let next = index.take(undefined); next !== undefined; next = index.take(undefined)) rest.push(next);
    expect(rest).toHaveLength(6); // what takeCoalesced took is not taken again
    index.reset([id(3, KEYS[0]), id(2, KEYS[0])]);
    expect(index.takeCoalesced('t', coalesceTag(KEYS[0]!))).toBe(id(2, KEYS[0]));
  });

  it('a parked group ends a coalesced batch; keys and groups are read from the names alone', () => {
    const index = new ReadyIndex(Infinity);
    index.add(id(1, 'k', 't', 'g1'));
    index.add(id(2, 'k', 't', 'g2'));
    expect(idGroupTag(id(1, 'k', 't', 'g1'))).toBe(groupTag('g1'));
    expect(idCoalesceTag(id(1, 'k', 't', 'g1'))).toBe(coalesceTag('k'));
    index.park('t', groupTag('g1'));
    expect(index.takeCoalesced('t', coalesceTag('k'))).toBeUndefined();
    index.unpark('t');
    expect(index.takeCoalesced('t', coalesceTag('k'))).toBe(id(1, 'k', 't', 'g1'));
  });
});

describe('claimMany', () => {
  it('with coalesce: one type and one key, max honoured; jobs of no key come with jobs of no key', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueueMany(
      Array.from({ length: 60 }, (_, n) => ({ type: n % 2 === 0 ? 'a' : 'b', data: n, coalesce: KEYS[n % 3]! })),
    );
    await q.enqueueMany(Array.from({ length: 5 }, (_, n) => ({ type: 'a', data: 100 + n })));
    const first = await q.claimMany({ types: ['a', 'b'], max: 7, coalesce: true });
    expect(first).toHaveLength(7);
    expect(new Set(first.map((j) => j.type))).toEqual(new Set(['a']));
    expect(new Set(first.map((j) => j.coalesce))).toEqual(new Set([KEYS[0]]));
    const active = fs.readdirSync(path.join(dir, 'active'))[0]!;
    const envelope = JSON.parse(fs.readFileSync(path.join(dir, 'active', active), 'utf8')) as { coalesce?: string };
    expect(KEYS).toContain(envelope.coalesce);
    for (const job of first) await job.complete();
    // next in FIFO order is job 2 (key 2), then 4 (key 1), then 42 (key 0): all jobs of type a and key 2 come, none of another key
    const more = await q.claimMany({ types: ['a'], max: 100, coalesce: true });
    expect(more.map((j) => j.coalesce)).toEqual(Array(10).fill(KEYS[2]));
    for (const job of more) await job.fail(new Error('again')); // each ends on its own
    for (const key of [KEYS[1], KEYS[0]]) {
      const batch = await q.claimMany({ types: ['a'], max: 100, coalesce: true });
      expect(batch.map((j) => j.coalesce)).toEqual(Array(key === KEYS[0] ? 3 : 10).fill(key));
      for (const job of batch) await job.complete();
    }
    const keyless = await q.claimMany({ types: ['a'], max: 100, coalesce: true });
    expect(keyless.map((j) => [j.coalesce, j.data])).toEqual([100, 101, 102, 103, 104].map((n) => [undefined, n]));
    for (const job of keyless) await job.complete();
    const counts = await q.counts();
    expect(counts.done).toBe(25);
    expect(counts.delayed + counts.queue).toBe(40); // type b untouched, and the failed ones wait for their retries
    for (const job of more) expect((await q.get(job.id)).state).not.toBe('done');
    await q.close();
  });

  it('without coalesce: mixes keys but not types', async () => {
    const { q } = await tempQueue();
    await q.enqueueMany(
      Array.from({ length: 40 }, (_, n) => ({ type: n < 20 ? 'a' : 'b', data: n, coalesce: KEYS[n % 10]! })),
    );
    const jobs = await q.claimMany({ max: 30 });
    expect(jobs).toHaveLength(20);
    expect(new Set(jobs.map((j) => j.type))).toEqual(new Set(['a']));
    expect(new Set(jobs.map((j) => j.coalesce)).size).toBe(10);
    expect(new Set(jobs.map((j) => j.id)).size).toBe(20);
    for (const job of jobs) await job.complete();
    expect(await q.claimMany({ max: 1 })).toHaveLength(1);
    await q.close();
  });

  it('resolves [] when nothing is ready; a group and a coalesce key together', async () => {
    const { q } = await tempQueue();
    expect(await q.claimMany({ max: 5, coalesce: true })).toEqual([]);
    const ref = await q.enqueue('t', 1, { group: 'tenant-1', coalesce: 'user-1', delay: 1 });
    expect(idGroupTag(ref.id)).toBe(groupTag('tenant-1'));
    expect(idCoalesceTag(ref.id)).toBe(coalesceTag('user-1'));
    const [job] = await q.claimMany({ max: 5, coalesce: true, wait: 5_000 });
    expect(job).toMatchObject({ group: 'tenant-1', coalesce: 'user-1' });
    await job!.complete();
    expect((await q.get(ref.id)).state).toBe('done');
    await q.close();
  });

  it('files whose tag and key disagree are not lost: claimed alone, or put back by a batch of another key', async () => {
    const { dir, q } = await tempQueue();
    const write = (name: string, envelope: object): void =>
      fs.writeFileSync(path.join(dir, 'queue', name), `${JSON.stringify(envelope)}\n`);
    const us = idEnqueuedUs((await q.enqueue('t', 'first', { coalesce: 'user-1' })).id);
    const liar = id(us + 1, 'user-1'); // the tag of user-1, the key user-2 (a hand-written file)
    const untagged = id(us + 2); // no tag, the key user-1
    write(liar, { data: 'liar', coalesce: 'user-2' });
    write(untagged, { data: 'untagged', coalesce: 'user-1' });
    await q.recover(); // the index sees files written behind its back at a rescan (or a watch event)
    await q.enqueue('t', 'second', { coalesce: 'user-1' });
    const batch = await q.claimMany({ max: 10, coalesce: true });
    expect(batch.map((j) => j.data)).toEqual(['first', 'second']); // the liar was claimed, seen, put back
    for (const job of batch) await job.complete();
    const alone = await q.claimMany({ max: 10, coalesce: true });
    expect(alone.map((j) => [j.data, j.attempt])).toEqual([['liar', 1]]); // its attempt not counted
    await alone[0]!.complete();
    const other = await q.claimMany({ max: 10, coalesce: true });
    expect(other.map((j) => j.data)).toEqual(['untagged']);
    await other[0]!.complete();
    expect(await q.counts()).toMatchObject({ queue: 0, active: 0, done: 4 });
    await q.close();
  });

  it('an id whose tags would not fit in 32 characters is refused when it is made (EBADOPTION)', () => {
    const maker = new NameMaker();
    expect(() => maker.id(50, 't', 1_800_000_000_000_000, { group: 'g'.repeat(10), coalesce: 'c'.repeat(12) })).toThrow(
      /unique part would be 36 characters .* at most 32/,
    );
  });

  it('bad input: max 0 or 1.5 or missing, coalesce not a boolean; enqueue coalesce not a string or too long', async () => {
    const { q } = await tempQueue();
    await rejects(q.claimMany({ max: 0 }), 'EBADOPTION', /max must be an integer of at least 1, got 0/);
    await rejects(q.claimMany({ max: 1.5 }), 'EBADOPTION', /max must be an integer/);
    await rejects(q.claimMany({} as never), 'EBADOPTION', /max must be/);
    await rejects(q.claimMany({ max: 2, coalesce: 'yes' as never }), 'EBADOPTION', /coalesce must be true or false/);
    await rejects(q.enqueue('t', 1, { coalesce: 7 as never }), 'EBADOPTION', /coalesce must be a string/);
    await rejects(q.enqueue('t', 1, { coalesce: 'x'.repeat(257) }), 'EBADOPTION', /at most 256 characters/);
    await rejects(q.enqueue('t', 1, { coalesce: '' }), 'EBADOPTION', /non-empty/);
    await rejects(q.enqueueMany([{ type: 't', coalesce: 1 as never }]), 'EBADOPTION', /coalesce must be/);
    expect(await q.counts()).toMatchObject({ queue: 0 });
    await q.close();
  });
});

describe('dirq enqueue --coalesce', () => {
  it('puts the key in the envelope and the tag in the id; a bad key is a usage error', async () => {
    const dir = tempDir();
    await ok(['init', dir]);
    const id = (await ok(['enqueue', dir, 'work', '{}', '--coalesce', 'user-7'])).trim();
    expect(idCoalesceTag(id)).toBe(coalesceTag('user-7'));
    expect((JSON.parse(fs.readFileSync(path.join(dir, 'queue', id), 'utf8')) as { coalesce?: string }).coalesce).toBe(
      'user-7',
    );
    const bad = await dirq(['enqueue', dir, 'work', '{}', '--coalesce', '']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toMatch(/coalesce must be a non-empty string/);
  });
});
