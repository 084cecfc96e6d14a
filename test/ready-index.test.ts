import { describe, expect, it } from 'vitest';
import { ReadyIndex } from '../src/ready-index.js';

const id = (priority: number, us: number, type = 't', unique = 'a'): string =>
  `${String(priority).padStart(2, '0')}-${String(us).padStart(16, '0')}-${unique}.${type}`;

function drain(index: ReadyIndex, types?: Set<string>): string[] {
  const out: string[] = [];
  for (let next = index.take(types); next !== undefined; next = index.take(types)) out.push(next);
  return out;
}

describe('the ready index', () => {
  it('takes by priority, then FIFO, whatever order ids arrive in (strict priority)', () => {
    const index = new ReadyIndex(Infinity);
    const ids = [id(50, 3), id(50, 1), id(10, 9), id(99, 0), id(50, 2), id(10, 8, 'u'), id(0, 5)];
    for (const i of ids) index.add(i);
    expect(index.add(id(50, 1))).toBe(false);
    expect(drain(index)).toEqual([...ids].sort());
    expect(index.size).toBe(0);
  });

  it('filters by type without touching other types', () => {
    const index = new ReadyIndex(Infinity);
    for (let i = 0; i < 1000; i++) index.add(id(50, i, 'bulk'));
    index.add(id(90, 5000, 'mail'));
    expect(index.take(new Set(['mail']))).toBe(id(90, 5000, 'mail'));
    expect(index.take(new Set(['mail', 'none']))).toBeUndefined();
    expect(index.count(new Set(['bulk']))).toBe(1000);
  });

  it('ages waiting jobs so a low priority is not starved (I8)', () => {
    const stepMs = 10;
    const index = new ReadyIndex(stepMs);
    // a priority-90 job enqueued at t=0 against priority-0 jobs enqueued later and later
    index.add(id(90, 0, 't', 'low'));
    for (let t = 1; t <= 2000; t++) index.add(id(0, t * 1000, 't', 'hi'));
    const order = drain(index);
    const position = order.indexOf(id(90, 0, 't', 'low'));
    // it may wait behind urgent jobs enqueued up to 90 x 10 ms after it, no more
    expect(position).toBe(900);
  });

  it('forgets ids that left queue/ without scanning, and takes a re-added id once', () => {
    const index = new ReadyIndex(Infinity);
    for (const i of [id(50, 1), id(50, 2), id(50, 3), id(10, 1, 'u')]) index.add(i);
    index.delete(id(50, 1));
    index.delete(id(10, 1, 'u'));
    index.delete(id(99, 9)); // never known: nothing happens
    expect(index.count(new Set(['t']))).toBe(2);
    expect(index.count(new Set(['u']))).toBe(0);
    index.add(id(50, 1)); // it came back (released)
    expect(drain(index)).toEqual([id(50, 1), id(50, 2), id(50, 3)]);
    expect(index.size).toBe(0);
    expect(index.take(undefined)).toBeUndefined();
  });

  it('rebuilds from a rescan', () => {
    const index = new ReadyIndex(Infinity);
    index.add(id(50, 1));
    index.reset([id(60, 1), id(40, 2), id(40, 1)]);
    expect(drain(index)).toEqual([id(40, 1), id(40, 2), id(60, 1)]);
  });

  it('drains a 100,000-job backlog in order', () => {
    const index = new ReadyIndex(10_000);
    const ids: string[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(id(i % 3 === 0 ? 10 : 50, 1763830000000000 + i, 'bulk'));
    for (const i of [...ids].reverse()) index.add(i);
    expect(index.size).toBe(100_000);
    expect(drain(index)).toEqual(ids.sort());
  });
});
