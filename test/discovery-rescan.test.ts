/**
 * The rescan under watching (the floor of I7, and what an overflow of events
 * triggers) runs in the background, a slice of the listing at a time, and
 * brings the index in step instead of rebuilding it: it adds the names the
 * events missed, drops the names that are gone, and keeps the names that came
 * into queue/ while it listed, whether or not the listing showed them.
 *
 * Discovery and a ReadyIndex are driven directly, with real inotify events and
 * real timers; names are written by hand (FORMAT.md), as another program would.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Discovery } from '../dist/queue/discovery.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';
import { Layout } from '../dist/store/layout.js';
import { openQueue, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

let clock = Date.now() * 1000 - 3_600_000_000; // an hour ago, so no id is early
const newId = (): string => `50-${String(++clock).padStart(16, '0')}-byhand1.t`;

/** A job placed by hand: written in tmp/, renamed into queue/. */
function handEnqueue(layout: Layout, id: string): void {
  fs.writeFileSync(layout.file('tmp', id), '{"data":null}\n', { flag: 'wx' });
  fs.renameSync(layout.file('tmp', id), layout.file('queue', id));
}

const discoveries: Discovery[] = [];
afterEach(() => {
  for (const d of discoveries.splice(0)) d.close();
  vi.restoreAllMocks();
});

async function watching(rescanInterval: number): Promise<{ layout: Layout; index: ReadyIndex; discovery: Discovery }> {
  const dir = tempDir();
  await (await openQueue(dir, { maintenance: false })).close();
  const layout = new Layout(dir);
  const index = new ReadyIndex(Infinity);
  const discovery = new Discovery(layout, index, { watch: true, pollInterval: 60_000, rescanInterval }, (error) => {
    throw error;
  });
  discoveries.push(discovery);
  return { layout, index, discovery };
}

const held = (index: ReadyIndex): Set<string> => new Set([...index.rounds()].map(([id]) => id));
const holds = (index: ReadyIndex, id: string): boolean => held(index).has(id);

describe('the rescan under watching', () => {
  it('adds a name the events missed and drops a name that is gone, listing in slices', async () => {
    const { layout, index, discovery } = await watching(50);
    for (let i = 0; i < 10_000; i++) fs.writeFileSync(path.join(layout.paths.queue, newId()), '{}\n');
    const opendir = vi.spyOn(fs, 'opendirSync');
    const readdir = vi.spyOn(fs, 'readdirSync');
    discovery.start(); // the first scan, synchronous: the first claim needs it
    expect(index.size).toBe(10_000);
    const missed = newId();
    handEnqueue(layout, missed);
    await until(() => holds(index, missed), 'the event of the new job');
    index.delete(missed); // as if its event had been lost
    const gone = newId();
    index.add(gone); // as if the event of its departure had been lost
    await until(() => holds(index, missed) && !holds(index, gone), 'a rescan to bring the index in step');
    expect(index.size).toBe(10_001);
    // the rescans opened queue/ for a streamed listing; none listed it whole at once
    expect(opendir.mock.calls.filter(([p]) => p === layout.paths.queue).length).toBeGreaterThan(0);
    expect(readdir.mock.calls.filter(([p]) => p === layout.paths.queue)).toHaveLength(1); // the first scan only
  });

  it('keeps every name that came into queue/ while it listed, whether the listing showed it or not', async () => {
    const { layout, index, discovery } = await watching(1);
    for (let i = 0; i < 20_000; i++) fs.writeFileSync(path.join(layout.paths.queue, newId()), '{}\n');
    const opendir = vi.spyOn(fs, 'opendirSync');
    discovery.start();
    const produced: string[] = [];
    for (let i = 0; i < 600; i++) {
      const id = newId();
      handEnqueue(layout, id);
      produced.push(id);
      await new Promise((resolve) => setImmediate(resolve)); // a slice of a rescan may run between two moves
      if (i % 50 === 49) {
        await discovery.catchUp(); // the events of the moves so far have been read
        const ids = held(index);
        const missing = produced.filter((p) => !ids.has(p));
        expect(missing, 'jobs whose event came in while a rescan listed').toEqual([]);
      }
    }
    // the producer ran across several rescans, so it really was interleaved with their slices
    expect(opendir.mock.calls.filter(([p]) => p === layout.paths.queue).length).toBeGreaterThan(2);
    expect(index.size).toBe(20_600);
  });
});
