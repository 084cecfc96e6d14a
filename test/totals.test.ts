/**
 * Lifetime counters (totals.ts): per-process deltas folded by sweeps into
 * workers/totals. Each delta counts once, whether folds die between steps,
 * overlap in several processes, or run while a reader reads.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { Layout } from '../dist/store/layout.js';
import { FOLD_STALE_MS, foldTotals, readTotals, Tally } from '../dist/store/totals.js';
import { exited, openQueue, spawnNode, tempDir } from './support/temp.js';
import { systemError } from './support/faults.js';
import { lineFrom } from './support/wait.js';

const child = new URL('./fixtures/child.mjs', import.meta.url).pathname;

async function newLayout(): Promise<Layout> {
  const dir = path.join(tempDir(), 'q');
  await (await openQueue(dir, { maintenance: false })).close();
  return new Layout(dir);
}

const counterFiles = (layout: Layout): string[] =>
  fs
    .readdirSync(layout.paths.workers)
    .filter((n) => n.startsWith('totals'))
    .sort();
const put = (layout: Layout, name: string, value: unknown): void =>
  fs.writeFileSync(layout.file('workers', name), `${JSON.stringify(value)}\n`);

async function deltas(layout: Layout, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const tally = new Tally(layout, `host.1.t${i}`);
    tally.add('a', 'completed', i);
    tally.add('b', 'enqueued');
    await tally.flush();
    await tally.flush(); // nothing new: writes nothing
  }
}

describe('lifetime totals', () => {
  it('fold deltas of many processes into one base, each counted once', async () => {
    const layout = await newLayout();
    await deltas(layout, 20);
    expect(counterFiles(layout)).toHaveLength(20);
    const expected = { a: { completed: 190 }, b: { enqueued: 20 } };
    expect(readTotals(layout)).toEqual(expected);
    expect(await foldTotals(layout, 'host.1.f.0', Date.now())).toBe(0); // the first fold makes the base
    expect(await foldTotals(layout, 'host.1.f.1', Date.now())).toBe(20);
    expect(counterFiles(layout)).toEqual(['totals']);
    expect(readTotals(layout)).toEqual(expected);
    expect(await foldTotals(layout, 'host.1.f.2', Date.now())).toBe(0);
  });

  it('a fold that died after writing its base counts nothing twice, and the next fold cleans up after it', async () => {
    const layout = await newLayout();
    put(layout, 'totals', { gen: 3, counts: { a: { completed: 5 } }, absorbed: ['totals.host.1.x.0'] });
    put(layout, 'totals.host.1.x.0', { counts: { a: { completed: 5 } } }); // absorbed, not yet deleted
    put(layout, 'totals~host.1.dead.0', { gen: 2, counts: { a: { completed: 0 } }, absorbed: [] }); // its old copy
    put(layout, 'totals.host.1.y.0', { counts: { a: { completed: 1 } } });
    expect(readTotals(layout)).toEqual({ a: { completed: 6 } });
    // a fold's copy is judged by its ctime, which the rename set and utimes cannot backdate: a later "now" instead
    expect(await foldTotals(layout, 'host.1.f.0', Date.now() + FOLD_STALE_MS + 1000)).toBe(1);
    expect(counterFiles(layout)).toEqual(['totals']);
    expect(readTotals(layout)).toEqual({ a: { completed: 6 } });
  });

  it('a fold whose new base cannot be written (a full disk) gives the base its name back: the next fold folds at once', async () => {
    const layout = await newLayout();
    await deltas(layout, 2);
    expect(await foldTotals(layout, 'host.1.f.0', Date.now())).toBe(0); // the first fold makes an empty base
    expect(await foldTotals(layout, 'host.1.f.1', Date.now())).toBe(2);
    for (const owner of ['u0', 'u1', 'u2'])
      put(layout, `totals.host.1.${owner}.0`, { counts: { a: { completed: 1 } } });
    const open = fs.openSync.bind(fs);
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((file, ...rest) => {
      if (String(file).includes('/tmp/.totals~')) throw systemError('ENOSPC', 'openSync', [file]);
      return open(file, ...rest);
    });
    try {
      await expect(foldTotals(layout, 'host.1.f.2', Date.now())).rejects.toMatchObject({ code: 'ENOSPC' });
    } finally {
      spy.mockRestore();
    }
    expect(counterFiles(layout).filter((name) => !name.startsWith('totals.'))).toEqual(['totals']);
    expect(fs.readdirSync(layout.paths.tmp)).toEqual([]);
    expect(await foldTotals(layout, 'host.1.f.3', Date.now())).toBe(3); // not FOLD_STALE_MS later
    expect(counterFiles(layout)).toEqual(['totals']);
    expect(readTotals(layout)).toEqual({ a: { completed: 1 + 3 }, b: { enqueued: 2 } });
  });

  it('a delta whose write fails (a full disk) keeps its counts for the next write', async () => {
    const layout = await newLayout();
    const tally = new Tally(layout, 'host.1.w');
    tally.add('a', 'completed', 2);
    const open = fs.openSync.bind(fs);
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((file, ...rest) => {
      if (String(file).includes('/tmp/.totals.')) throw systemError('ENOSPC', 'openSync', [file]);
      return open(file, ...rest);
    });
    try {
      await expect(tally.flush()).rejects.toMatchObject({ code: 'ENOSPC' });
    } finally {
      spy.mockRestore();
    }
    tally.add('a', 'completed', 1);
    await tally.flush();
    expect(readTotals(layout)).toEqual({ a: { completed: 3 } });
    expect(fs.readdirSync(layout.paths.tmp)).toEqual([]);
  });

  it('a fold in flight holding an old base is not taken over: the rename, not the write, dates it', async () => {
    const layout = await newLayout();
    put(layout, 'totals', { gen: 1, counts: { a: { completed: 2 } }, absorbed: [] });
    const longAgo = new Date(Date.now() - 10 * FOLD_STALE_MS);
    fs.utimesSync(layout.file('workers', 'totals'), longAgo, longAgo); // written long ago
    fs.renameSync(layout.file('workers', 'totals'), layout.file('workers', 'totals~host.1.busy.0')); // a fold takes it now
    put(layout, 'totals.host.1.y.0', { counts: { a: { completed: 1 } } });
    expect(await foldTotals(layout, 'host.1.f.0', Date.now())).toBe(0);
    expect(counterFiles(layout)).toEqual(['totals.host.1.y.0', 'totals~host.1.busy.0']);
    expect(readTotals(layout)).toEqual({ a: { completed: 3 } });
  });

  it('a fold that died holding the base still counts for readers, and is taken over once stale', async () => {
    const layout = await newLayout();
    put(layout, 'totals~host.1.dead.0', { gen: 5, counts: { a: { completed: 7 } }, absorbed: [] });
    put(layout, 'totals.host.1.y.0', { counts: { a: { completed: 1 } } });
    expect(readTotals(layout)).toEqual({ a: { completed: 8 } });
    expect(await foldTotals(layout, 'host.1.f.0', Date.now())).toBe(0); // maybe still folding: left alone
    expect(counterFiles(layout)).toEqual(['totals.host.1.y.0', 'totals~host.1.dead.0']);
    expect(await foldTotals(layout, 'host.1.f.1', Date.now() + FOLD_STALE_MS + 1000)).toBe(1);
    expect(counterFiles(layout)).toEqual(['totals']);
    expect(readTotals(layout)).toEqual({ a: { completed: 8 } });
  });

  it('ignores stray and malformed files, and a type named __proto__ is just a type', async () => {
    const layout = await newLayout();
    // written as text: a __proto__ key in an object literal would set the prototype instead
    fs.writeFileSync(
      layout.file('workers', 'totals.host.1.z.0'),
      '{"counts":{"__proto__":{"failed":2},"x":{"failed":-1,"completed":1.5,"recovered":"many"}}}\n',
    );
    fs.writeFileSync(layout.file('workers', 'totals.host.1.z.1'), 'not json');
    execFileSync('mkfifo', [layout.file('workers', 'totals.host.1.z.2')]); // never blocks a reader
    fs.symlinkSync('/etc/passwd', layout.file('workers', 'totals.host.1.z.3')); // never followed
    const totals = readTotals(layout);
    expect(Object.keys(totals)).toEqual(['__proto__']);
    expect(totals['__proto__']).toEqual({ failed: 2 });
    expect(({} as Record<string, unknown>).failed).toBeUndefined();
  });

  it('folds racing in several processes without the lock count every delta exactly once', async () => {
    const layout = await newLayout();
    await foldTotals(layout, 'host.1.f.0', Date.now()); // makes the base the sweepers will race for
    await deltas(layout, 100);
    const sweepers = Array.from({ length: 4 }, () =>
      spawnNode([child, 'sweep-unlocked', layout.root], { stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    await Promise.all(sweepers.map((s) => lineFrom(s, 'ready')));
    for (const s of sweepers) s.stdin!.write('go\n');
    for (const s of sweepers) expect(await exited(s)).toBe(0);
    expect(readTotals(layout)).toEqual({ a: { completed: 4950 }, b: { enqueued: 100 } });
    await foldTotals(layout, 'host.1.f.1', Date.now());
    expect(counterFiles(layout)).toEqual(['totals']);
    expect(readTotals(layout)).toEqual({ a: { completed: 4950 }, b: { enqueued: 100 } });
  });

  it('a reader never sees a total drop while processes enqueue, flush and fold', async () => {
    const layout = await newLayout();
    const writers = [0, 1].map(() => spawnNode([child, 'open-enqueue', layout.root, '40']));
    const done = Promise.all(writers.map(exited));
    let ended = false;
    void done.then(() => (ended = true));
    let last = 0;
    let reads = 0;
    while (!ended) {
      const now = readTotals(layout).counted?.enqueued ?? 0;
      expect(now).toBeGreaterThanOrEqual(last);
      last = now;
      reads++;
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(await done).toEqual([0, 0]);
    expect(readTotals(layout).counted).toEqual({ enqueued: 80 });
    expect(reads).toBeGreaterThan(10);
  });
});
