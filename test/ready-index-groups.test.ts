import { describe, expect, it } from 'vitest';
import { groupTag, idGroupTag } from '../dist/store/names.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';

/** A job id of group `group` ('' for none): the unique part ends with G and the group's tag. */
const id = (priority: number, us: number, group = '', type = 't', unique = 'a'): string =>
  `${String(priority).padStart(2, '0')}-${String(us).padStart(16, '0')}-${unique}${group === '' ? '' : `G${groupTag(group)}`}.${type}`;

function drain(index: ReadyIndex, types?: Set<string>): string[] {
  const out: string[] = [];
  for (let next = index.take(types); next !== undefined; next = index.take(types)) out.push(next);
  return out;
}

/** The group of each id in `ids`, by the tags of `groups`. */
function groupsOf(ids: string[], groups: string[]): string[] {
  const byTag = new Map(groups.map((g) => [groupTag(g), g]));
  return ids.map((i) => byTag.get(idGroupTag(i)) ?? '');
}

describe('groups in the ready index', () => {
  it('takes turns between the groups of one bucket, each in FIFO order', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 6; t++) index.add(id(50, t, 'A'));
    index.add(id(50, 100, 'B'));
    index.add(id(50, 101, 'B'));
    index.add(id(50, 200, 'C'));
    index.add(id(50, 50)); // no group: the group '' takes turns like the others
    const order = drain(index);
    expect(groupsOf(order, ['A', 'B', 'C'])).toEqual(['A', 'B', 'C', '', 'A', 'B', 'A', 'A', 'A', 'A']);
    const a = order.filter((i) => idGroupTag(i) === groupTag('A'));
    expect(a).toEqual([...a].sort()); // FIFO within the group
    expect(index.size).toBe(0);
  });

  it('10,000 jobs of A then 10 of B: every B job is among the first 20 taken', () => {
    const index = new ReadyIndex(10_000, () => 1_000_000_000);
    for (let i = 0; i < 10_000; i++) index.add(id(50, 1_000_000 + i, 'A'));
    for (let i = 0; i < 10; i++) index.add(id(50, 2_000_000 + i, 'B'));
    const order = drain(index);
    expect(order).toHaveLength(10_010);
    const lastB = Math.max(...order.map((i, n) => (idGroupTag(i) === groupTag('B') ? n : -1)));
    expect(lastB).toBeLessThan(20);
  });

  it('keeps priorities strict across buckets: a group takes turns only within its priority', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 3; t++) index.add(id(50, t, 'A'));
    for (let t = 1; t <= 3; t++) index.add(id(50, 10 + t, 'B'));
    index.add(id(10, 100, 'B')); // more urgent, enqueued last
    index.add(id(90, 0, 'C')); // least urgent, enqueued first
    const order = drain(index);
    expect(order[0]).toBe(id(10, 100, 'B'));
    expect(order.at(-1)).toBe(id(90, 0, 'C'));
    expect(groupsOf(order.slice(1, 7), ['A', 'B'])).toEqual(['A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('still ages: a priority-90 job runs behind the urgent jobs of 7 groups enqueued less than 90 x agingStep after it', () => {
    const index = new ReadyIndex(10, () => 1_000_000); // 10 ms a level, ranked before anything has waited
    const low = id(90, 1_000_000, 'slow');
    index.add(low);
    for (let i = 1; i <= 2000; i++) index.add(id(0, 1_000_000 + i * 1000, `g${i % 7}`));
    const order = drain(index);
    // the urgent bucket's head is its front group's: the turns reorder the urgent jobs by a few places
    // around 900 ms, yet none enqueued 7 turns or more after 900 ms runs before it
    const at = order.indexOf(low);
    expect(at).toBeGreaterThanOrEqual(893);
    expect(at).toBeLessThanOrEqual(900);
    for (const before of order.slice(0, at)) expect(Number(before.slice(3, 19))).toBeLessThan(1_000_000 + 907_000);
  });

  it('and once aged fully, runs a grouped job ahead of the urgent backlog enqueued after it', () => {
    const index = new ReadyIndex(10, () => 1_000_000 + 900_000); // it has waited 90 x 10 ms
    const low = id(90, 1_000_000, 'slow');
    for (let i = 1; i <= 2000; i++) index.add(id(0, 1_000_000 + i * 1000, `g${i % 7}`));
    index.add(low);
    expect(index.take(undefined)).toBe(low);
  });

  it('puts a job a claim took back at the head of its group', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 3; t++) index.add(id(50, t, 'A'));
    const first = index.take(undefined)!;
    expect(first).toBe(id(50, 1, 'A'));
    index.add(first); // the claim could not run it
    expect(drain(index)).toEqual([id(50, 1, 'A'), id(50, 2, 'A'), id(50, 3, 'A')]);
    // with two groups: back at the head of A's FIFO, A's turn comes again after B's
    index.reset([id(50, 1, 'A'), id(50, 2, 'A'), id(50, 3, 'B')]);
    const a1 = index.take(undefined)!;
    expect(a1).toBe(id(50, 1, 'A'));
    index.add(a1);
    expect(drain(index)).toEqual([id(50, 3, 'B'), id(50, 1, 'A'), id(50, 2, 'A')]);
  });

  it('parks a group (its jobs are skipped, still counted) and unparks it at the back of the rotation', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 3; t++) {
      index.add(id(50, t, 'A'));
      index.add(id(50, 10 + t, 'B'));
      index.add(id(50, 20 + t, 'C'));
      index.add(id(40, 30 + t, 'A')); // another priority of the type: parked too
      index.add(id(50, 40 + t, 'A', 'u')); // another type: not parked
    }
    index.park('t', groupTag('A'));
    index.park('t', groupTag('A')); // again: nothing more
    index.add(id(40, 99, 'A')); // a job of a parked group arrives: parked as well
    expect(groupsOf(drain(index, new Set(['t'])), ['A', 'B', 'C'])).toEqual(['B', 'C', 'B', 'C', 'B', 'C']);
    expect(index.size).toBe(10);
    expect(index.take(new Set(['t']))).toBeUndefined();
    expect(index.take(undefined)).toBe(id(50, 41, 'A', 'u'));
    index.unpark('t', groupTag('A'));
    expect(drain(index, new Set(['t']))).toEqual([
      id(40, 31, 'A'),
      id(40, 32, 'A'),
      id(40, 33, 'A'),
      id(40, 99, 'A'),
      id(50, 1, 'A'),
      id(50, 2, 'A'),
      id(50, 3, 'A'),
    ]);
  });

  it('unparks every parked group of a type at once, and parks the jobs of no group by the tag ""', () => {
    const index = new ReadyIndex(Infinity);
    index.add(id(50, 1, 'A'));
    index.add(id(50, 2, 'B'));
    index.add(id(50, 3));
    index.park('t', groupTag('A'));
    index.park('t', groupTag('B'));
    index.park('t', '');
    expect(index.take(undefined)).toBeUndefined();
    index.unpark('t', groupTag('Z')); // not parked: nothing happens
    index.unpark('nosuchtype');
    expect(index.take(undefined)).toBeUndefined();
    index.unpark('t');
    expect(drain(index)).toHaveLength(3);
  });

  it('a park and unpark before the parked entry reaches the front leaves one turn, not two', () => {
    const index = new ReadyIndex(Infinity);
    for (let t = 1; t <= 4; t++) {
      index.add(id(50, t, 'A'));
      index.add(id(50, 10 + t, 'B'));
    }
    index.park('t', groupTag('B'));
    index.unpark('t', groupTag('B'));
    index.park('t', groupTag('B'));
    index.unpark('t', groupTag('B'));
    expect(groupsOf(drain(index), ['A', 'B'])).toEqual(['A', 'B', 'A', 'B', 'A', 'B', 'A', 'B']);
  });

  it('keeps parked groups parked across a rescan, which starts the turns at the oldest head', () => {
    const index = new ReadyIndex(Infinity);
    index.park('t', groupTag('A'));
    index.reset([id(50, 5, 'C'), id(50, 1, 'A'), id(50, 3, 'B'), id(50, 4, 'B'), id(50, 6, 'C')]);
    expect(drain(index)).toEqual([id(50, 3, 'B'), id(50, 5, 'C'), id(50, 4, 'B'), id(50, 6, 'C')]);
    index.unpark('t');
    expect(drain(index)).toEqual([id(50, 1, 'A')]);
  });

  it('forgets ids of a group without scanning, and drops a group whose jobs are all gone', () => {
    const index = new ReadyIndex(Infinity);
    index.add(id(50, 1, 'A'));
    index.add(id(50, 2, 'A'));
    index.add(id(50, 3, 'B'));
    index.delete(id(50, 1, 'A'));
    index.delete(id(50, 2, 'A'));
    expect(drain(index)).toEqual([id(50, 3, 'B')]);
    expect(index.size).toBe(0);
  });

  it('serves 10,000 groups in turns, with 9,990 of them parked, and their jobs in FIFO order', () => {
    const index = new ReadyIndex(10_000, () => 1_000_000_000);
    const groups = Array.from({ length: 10_000 }, (_, g) => `tenant-${g}`);
    const tags = groups.map(groupTag);
    expect(new Set(tags).size).toBe(10_000);
    for (let round = 0; round < 5; round++)
      for (let g = 0; g < groups.length; g++) index.add(id(50, 1_000_000 + round * 10_000 + g, groups[g]));
    for (let g = 10; g < groups.length; g++) index.park('t', tags[g]!);
    expect(groupsOf(drain(index), groups.slice(0, 10))).toEqual(
      Array.from({ length: 50 }, (_, i) => `tenant-${i % 10}`),
    );
    index.unpark('t');
    const rest = drain(index);
    expect(rest).toHaveLength(49_950);
    // one turn each: the first 9,990 taken are of 9,990 different groups
    expect(new Set(rest.slice(0, 9990).map(idGroupTag)).size).toBe(9990);
    for (let i = 9990; i < rest.length; i++) expect(rest[i]! > rest[i - 9990]!).toBe(true);
    expect(index.size).toBe(0);
  });

  it('ranks a grouped job made ready early by when it became ready, under its group', () => {
    const early = id(50, 60_009_000, 'A', 't', 'due');
    const index = new ReadyIndex(
      Infinity,
      () => 5_000,
      (i) => (i === early ? 2_500 : undefined),
    );
    for (const i of [id(50, 2_000, 'A'), early, id(50, 3_000, 'A'), id(50, 4_000, 'B')]) index.add(i);
    expect(drain(index)).toEqual([id(50, 2_000, 'A'), id(50, 4_000, 'B'), early, id(50, 3_000, 'A')]);
  });
});
