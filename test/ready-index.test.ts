import { describe, expect, it } from 'vitest';
import { idEnqueuedUs } from '../dist/store/names.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';

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
    expect(drain(index, new Set(['bulk']))).toHaveLength(1000);
    expect(index.size).toBe(0);
  });

  it('before anything has waited, a low priority runs behind urgent jobs enqueued less than p x agingStep after it', () => {
    const stepMs = 10;
    const index = new ReadyIndex(stepMs, () => 0); // ranked at t=0: nothing has waited yet
    // a priority-90 job enqueued at t=0 against priority-0 jobs enqueued later and later
    index.add(id(90, 0, 't', 'low'));
    for (let t = 1; t <= 2000; t++) index.add(id(0, t * 1000, 't', 'hi'));
    const order = drain(index);
    expect(order.indexOf(id(90, 0, 't', 'low'))).toBe(899); // those of t = 1..899 ms; at 900 ms it ties and is older
  });

  /**
   * The bound of I8 (README): once a job of priority p has waited p x agingStep,
   * no job enqueued after it runs before it. Simulated time, one millisecond a
   * step: two priority-0 jobs arrive and one is claimed, so the stream outpaces
   * the workers and the urgent backlog grows for ever.
   */
  function starve(backlog: number): { startedMs: number; overtakenAfterMs: number[] } {
    const stepMs = 20;
    let now = 0;
    const index = new ReadyIndex(stepMs, () => now);
    let n = 0;
    for (let i = backlog; i > 0; i--) index.add(id(0, 1_000_000 - i, 't', `old${n++}`)); // waiting before it
    const low = id(90, 1_000_000, 't', 'low');
    index.add(low);
    const overtakenAfterMs: number[] = [];
    for (let ms = 0; ms < 100_000; ms++) {
      now = 1_000_001 + ms * 1000; // a microsecond later than it, and one millisecond per claim
      index.add(id(0, now, 't', `a${n++}`));
      index.add(id(0, now, 't', `b${n++}`));
      const taken = index.take(undefined)!;
      if (taken === low) return { startedMs: ms, overtakenAfterMs };
      if (idEnqueuedUs(taken) > 1_000_000 && ms >= 90 * stepMs) overtakenAfterMs.push(ms);
    }
    throw new Error('the priority-90 job never started');
  }

  it('starts a priority-90 job after 90 x agingStep under an endless stream of priority-0 jobs (I8, Correctness 7)', () => {
    // before: it ran after every urgent job of the 1,800 ms after it, at 3,600 ms
    expect(starve(0)).toEqual({ startedMs: 1800, overtakenAfterMs: [] });
  });

  it('and behind a backlog enqueued before it, right after that backlog, never after later jobs (I8)', () => {
    expect(starve(3000)).toEqual({ startedMs: 3000, overtakenAfterMs: [] });
  });

  it('once aged fully, runs jobs in enqueue order whatever their priority', () => {
    const index = new ReadyIndex(10, () => 10_000_000); // 10 s after the jobs: all of them waited over 99 x 10 ms
    const ids = [id(90, 1000, 't', 'x'), id(0, 2000, 't', 'x'), id(10, 3000, 't', 'y'), id(50, 3000, 'u', 'x')];
    for (const i of [...ids].reverse()) index.add(i);
    expect(drain(index)).toEqual(ids);
  });

  it('forgets ids that left queue/ without scanning, and takes a re-added id once', () => {
    const index = new ReadyIndex(Infinity);
    for (const i of [id(50, 1), id(50, 2), id(50, 3), id(10, 1, 'u')]) index.add(i);
    index.delete(id(50, 1));
    index.delete(id(10, 1, 'u'));
    index.delete(id(99, 9)); // never known: nothing happens
    expect(drain(index, new Set(['u']))).toEqual([]);
    expect(index.size).toBe(2);
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
    const index = new ReadyIndex(10_000, () => 1763830000000000); // as they are enqueued: priority order
    const ids: string[] = [];
    for (let i = 0; i < 100_000; i++) ids.push(id(i % 3 === 0 ? 10 : 50, 1763830000000000 + i, 'bulk'));
    for (const i of [...ids].reverse()) index.add(i);
    expect(index.size).toBe(100_000);
    expect(drain(index)).toEqual(ids.sort());
  });
});

describe("a job made ready before its id's time (retry of a delayed job)", () => {
  it('ranks by when it became ready, not by its id, and is taken under its id', () => {
    const early = id(50, 60_009_000, 't', 'due'); // a minute ahead of the clock
    const index = new ReadyIndex(
      Infinity,
      () => 5_000,
      (i) => (i === early ? 2_500 : undefined),
    );
    for (const i of [id(50, 2_000), early, id(50, 3_000), id(50, 4_000)]) index.add(i);
    expect(drain(index)).toEqual([id(50, 2_000), early, id(50, 3_000), id(50, 4_000)]);
    index.reset([id(50, 3_000), early]); // a rescan ranks it the same way
    expect(drain(index)).toEqual([early, id(50, 3_000)]);
    index.add(early);
    index.delete(early); // claimed elsewhere: forgotten under its rank key too
    expect(index.take(undefined)).toBeUndefined();
  });

  it('a job promoted at its due time, while this clock reads a little behind, ranks by its id, not by its old mtime', () => {
    // promotion judges due-ness by Date.now(); nowUs() may lag it by a millisecond, and hosts' clocks differ:
    // such a job is not early, and its mtime (when it was written, long before its due time) must not rank it
    const promoted = id(50, 5_500, 't', 'due');
    const index = new ReadyIndex(
      Infinity,
      () => 5_000,
      (i) => (i === promoted ? 1_000 : undefined),
    );
    for (const i of [id(50, 2_000), promoted, id(50, 3_000)]) index.add(i);
    expect(drain(index)).toEqual([id(50, 2_000), id(50, 3_000), promoted]);
  });
});
