/**
 * Exactly one job per slot across real processes and simulated hosts, with
 * no leader: three processes with the queue open and an every: 200 schedule;
 * the same while a chaos loop SIGKILLs them (some in the middle of making a
 * slot's job); and two hosts whose clocks are 2 s ahead and 2 s behind. A job
 * placed twice at its name (the ids are a function of schedule and slot)
 * would be a second rename into queue/: an inotify watch on queue/ counts
 * them, one event per job.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { scheduleUnique } from '../dist/store/names.js';
import { mountCached, requireHosts, startHost } from './support/hosts.js';
import { exited, openQueue, spawnNode, tempDir } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const CHILD = new URL('./fixtures/child.mjs', import.meta.url).pathname;
const EVERY = 200;

/** Slot times (ms) of schedule `name`'s jobs in `state`, in order. */
function slotsOf(dir: string, name: string, state = 'queue'): number[] {
  const unique = scheduleUnique(name);
  return fs
    .readdirSync(path.join(dir, state))
    .filter((id) => id.includes(`-${unique}.`))
    .map((id) => Number(id.slice(3, 19)) / 1000)
    .sort((a, b) => a - b);
}

/** Every slot from the first to the last, each once: nothing lost, nothing twice. */
function expectContiguous(slots: number[]): void {
  expect(slots.length).toBeGreaterThan(5);
  const first = slots[0]!;
  expect(slots).toEqual(Array.from({ length: slots.length }, (_, i) => first + i * EVERY));
}

/** Counts the renames into queue/ per name: a job placed twice shows up as two. */
function watchPlacements(dir: string): { counts: Map<string, number>; close(): void } {
  const counts = new Map<string, number>();
  const watcher = fs.watch(path.join(dir, 'queue'), (_event, name) => {
    if (name !== null && fs.existsSync(path.join(dir, 'queue', name))) counts.set(name, (counts.get(name) ?? 0) + 1);
  });
  return { counts, close: () => watcher.close() };
}

function startSchedulers(dir: string, n: number, env: Record<string, string> = {}) {
  return Array.from({ length: n }, () =>
    spawnNode([CHILD, 'schedule', dir], { env: { ...process.env, DIRQ_SWEEP_INTERVAL: '500', ...env } }),
  );
}

async function stop(children: ReturnType<typeof spawnNode>[]): Promise<void> {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await Promise.all(children.map(exited));
}

describe('exactly one job per slot, no leader', () => {
  it('3 processes with an every: 200 schedule for 5 s: the jobs equal the slots, none twice', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('beat', { type: 'beat', every: EVERY, overlap: 'allow', catchUp: 'all' });
    const placed = watchPlacements(dir);
    const children = startSchedulers(dir, 3);
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    const started = Date.now();
    await until(() => (slotsOf(dir, 'beat').at(-1) ?? 0) >= started + 5000, '5 s of slots made by the three', 20_000);
    await stop(children);
    placed.close();
    await q.close();
    const slots = slotsOf(dir, 'beat');
    expectContiguous(slots);
    expect(slots.filter((slot) => slot >= started).length).toBeGreaterThanOrEqual(25); // 5 s at every: 200
    for (const [name, count] of placed.counts) expect(count, name).toBe(1);
    expect(fs.readdirSync(path.join(dir, 'tmp')).filter((f) => f.startsWith('.slot.'))).toEqual([]); // losers cleaned up
  });

  it('SIGKILL in the middle of making a slot, again and again: never two jobs, never a lost slot', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('kill', { type: 'kill', every: EVERY, overlap: 'allow', catchUp: 'all' });
    const placed = watchPlacements(dir);
    const children = startSchedulers(dir, 3);
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    let kills = 0;
    while (kills < 12) {
      // kill one at a time, at a slot (when makers are at work), so another process is always up
      const i = kills % children.length;
      const next = Math.ceil(Date.now() / EVERY) * EVERY + (kills % 3); // 0-2 ms into a slot
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, next - Date.now())));
      children[i]!.kill('SIGKILL');
      await exited(children[i]!);
      kills++;
      children[i] = startSchedulers(dir, 1)[0]!;
      await lineFrom(children[i], 'ready');
    }
    const last = slotsOf(dir, 'kill').at(-1)!;
    await until(() => slotsOf(dir, 'kill').at(-1)! >= last + 2 * EVERY, 'the survivors to go on');
    await stop(children);
    placed.close();
    await q.close();
    expectContiguous(slotsOf(dir, 'kill'));
    for (const [name, count] of placed.counts) expect(count, name).toBe(1);
    const cursors = fs.readdirSync(path.join(dir, 'schedules')).filter((f) => f.startsWith('.kill@'));
    expect(cursors).toHaveLength(1); // pending cursors of the killed were completed
  });

  it('2 simulated hosts, clocks 2 s ahead and 2 s behind: one job per slot, run once, none made early', async () => {
    requireHosts({ faketime: true });
    const dir = tempDir();
    const setup = await openQueue(dir, { maintenance: false });
    await setup.schedule('skew', { type: 'skew', every: EVERY, overlap: 'allow', catchUp: 'all' });
    await setup.close();
    const log = path.join(dir, 'hosts.log');
    const env = { DIRQ_HOST_LOG: log, DIRQ_POLL: '100', DIRQ_STALE_AFTER: '5000', DIRQ_SWEEP_INTERVAL: '500' };
    const ahead = startHost('host1', 'pool', mountCached(dir), { skew: '+2s', env });
    const behind = startHost('host2', 'pool', mountCached(dir), { skew: '-2s', env });
    await Promise.all([ahead.line('ready'), behind.line('ready')]);
    await until(() => slotsOf(dir, 'skew', 'done').length >= 20, '20 slots run', 30_000);
    await Promise.all([ahead.stop(), behind.stop()]);
    expectContiguous(slotsOf(dir, 'skew', 'done'));
    const ran = fs
      .readFileSync(log, 'utf8')
      .split('\n')
      .filter((l) => l.startsWith('start '))
      .map((l) => l.split(' ')[1]!);
    expect(new Set(ran).size).toBe(ran.length); // each run once
    // none made early by the host whose clock is ahead: a job file is born (the filesystem's clock) after its slot
    for (const id of fs.readdirSync(path.join(dir, 'done')).filter((n) => n.includes(`-${scheduleUnique('skew')}.`))) {
      const born = fs.statSync(path.join(dir, 'done', id)).birthtimeMs;
      if (born > 0) expect(born, id).toBeGreaterThanOrEqual(Number(id.slice(3, 19)) / 1000 - 10); // 10 ms: the coarse clock of mtimes
    }
  });
});
