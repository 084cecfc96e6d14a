/**
 * Limits held across processes (issue 13's proof): 4 processes of 4 claim
 * loops under `concurrency: 3`, with and without SIGKILLs of holders; a
 * rate of 20 per second across 3 processes; `groupConcurrency` across 2.
 * Each job's start and end are stamped by the process that ran it (the
 * 'limited' mode of test/fixtures/child.mjs); overlaps are computed from
 * the stamps of every process. Then 2 simulated hosts (test/support/hosts.ts)
 * under a concurrency limit and a rate.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { logLines, mountCached, requireHosts, startHost } from './support/hosts.js';
import { exited, openQueue, spawnNode, tempDir, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const child = path.join(import.meta.dirname, 'fixtures', 'child.mjs');

interface Run {
  id: string;
  pid: number;
  start: number;
  end: number | undefined;
}

/** The runs in the log: a start, and its end when the process lived to stamp it. */
function runs(log: string): Run[] {
  const out = new Map<string, Run>();
  const text = fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : '';
  for (const line of text.split('\n')) {
    const [kind, id, pid, at] = line.split(' ');
    if (kind === undefined || id === undefined || at === undefined) continue;
    const key = `${id} ${pid}`;
    if (kind === 'S') out.set(key, { id, pid: Number(pid), start: Number(at), end: undefined });
    else out.get(key)!.end = Number(at);
  }
  return [...out.values()];
}

/** The most runs overlapping at any instant; a run its process never ended ends when that process was killed. */
function maxOverlap(all: readonly Run[], killedAt: ReadonlyMap<number, number>): number {
  const events: [number, number][] = [];
  for (const r of all) {
    events.push([r.start, 1]);
    events.push([r.end ?? killedAt.get(r.pid) ?? Infinity, -1]);
  }
  events.sort((a, b) => a[0] - b[0] || a[1] - b[1]); // an end before a start at the same ms
  let now = 0;
  let max = 0;
  for (const [, d] of events) max = Math.max(max, (now += d));
  return max;
}

/** Mean number of runs in progress between the first start and the last end (throughput in "workers"). */
function meanBusy(all: readonly Run[]): number {
  const ended = all.filter((r) => r.end !== undefined);
  const span = Math.max(...ended.map((r) => r.end!)) - Math.min(...ended.map((r) => r.start));
  return ended.reduce((sum, r) => sum + (r.end! - r.start), 0) / span;
}

function spawnWorkers(dir: string, log: string, n: number, env: Record<string, string> = {}): ChildProcess[] {
  return Array.from({ length: n }, () =>
    spawnNode([child, 'limited', dir, log], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, DIRQ_SWEEP_INTERVAL: '200', ...env },
    }),
  );
}

async function stop(children: readonly ChildProcess[]): Promise<void> {
  const running = children.filter((c) => c.exitCode === null && c.signalCode === null);
  for (const c of running) c.kill('SIGTERM');
  await Promise.all(running.map((c) => exited(c)));
}

describe('concurrency across processes', () => {
  it('4 processes x 4 workers, concurrency 3: at most 3 run at once, and 3 are kept busy', async () => {
    const { dir, q } = await tempQueue();
    const log = path.join(tempDir(), 'runs.log');
    await q.limit('t', { concurrency: 3 });
    await q.enqueueMany(Array.from({ length: 60 }, (_, i) => ({ type: 't', data: { i, ms: 60 } })));
    const children = spawnWorkers(dir, log, 4);
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    await until(async () => (await q.counts()).done === 60, 'all 60 jobs done', 60_000);
    await stop(children);
    const all = runs(log);
    expect(all).toHaveLength(60);
    expect(new Set(all.map((r) => r.pid)).size).toBeGreaterThan(1); // the processes shared the work
    expect(maxOverlap(all, new Map())).toBe(3);
    // throughput near 3 workers' (each job is 60 ms of sleep): a single worker's would be 1
    const busy = meanBusy(all);
    console.log(`concurrency 3 across 4 x 4: mean busy ${busy.toFixed(2)} workers`);
    expect(busy).toBeGreaterThan(2);
    expect(fs.readdirSync(path.join(dir, 'limits', 't')).filter((f) => /^\d+$/.test(f))).toEqual([]);
    await q.close();
  });

  it('holders SIGKILLed mid-job: the limit is never exceeded, their slots come back at the next sweep, every job ends', async () => {
    const { dir, q } = await tempQueue();
    const log = path.join(tempDir(), 'runs.log');
    await q.limit('t', { concurrency: 3 });
    await q.enqueueMany(Array.from({ length: 120 }, (_, i) => ({ type: 't', data: { i, ms: 50 }, attempts: 10 })));
    let children = spawnWorkers(dir, log, 4);
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    const killedAt = new Map<number, number>();
    const restarts: number[] = [];
    for (let round = 0; round < 3; round++) {
      // kill a process that holds a slot, as it runs its job
      await until(() => {
        const holders = new Set(
          runs(log)
            .filter((r) => r.end === undefined && !killedAt.has(r.pid))
            .map((r) => r.pid),
        );
        return children.some((c) => holders.has(c.pid!));
      }, 'a process running a job');
      const running = new Set(
        runs(log)
          .filter((r) => r.end === undefined && !killedAt.has(r.pid))
          .map((r) => r.pid),
      );
      const victim = children.find((c) => running.has(c.pid!))!;
      const lost = runs(log)
        .filter((r) => r.end === undefined && r.pid === victim.pid)
        .map((r) => r.id);
      victim.kill('SIGKILL');
      await exited(victim);
      const killed = Date.now();
      killedAt.set(victim.pid!, killed);
      // its jobs run again elsewhere once a sweep (every 200 ms here) sees its pid dead and frees its slots
      await until(
        () => lost.every((id) => runs(log).some((r) => r.id === id && r.start > killed)),
        "the killed holder's jobs started again",
        10_000,
      );
      restarts.push(Date.now() - killed);
      const [fresh] = spawnWorkers(dir, log, 1);
      await lineFrom(fresh!, 'ready');
      children = [...children.filter((c) => c !== victim), fresh!];
    }
    await until(async () => (await q.counts()).done === 120, 'all 120 jobs done', 60_000);
    await stop(children);
    const all = runs(log);
    expect(new Set(all.filter((r) => r.end !== undefined).map((r) => r.id)).size).toBe(120);
    expect(all.filter((r) => r.end === undefined).length).toBeGreaterThanOrEqual(3); // the killed runs, run again
    expect(maxOverlap(all, killedAt)).toBeLessThanOrEqual(3);
    console.log(`SIGKILLed holders: their jobs started again ${restarts.join(', ')} ms after the kill`);
    expect(fs.readdirSync(path.join(dir, 'limits', 't')).filter((f) => /^\d+$/.test(f))).toEqual([]);
    await q.close();
  });
});

describe('rate across processes', () => {
  it('20 per second across 3 processes for 5 s: no 1-second window has more than 20 starts, and at least 80 run', async () => {
    const { dir, q } = await tempQueue();
    const log = path.join(tempDir(), 'runs.log');
    await q.limit('t', { rate: { max: 20, per: 1000 } });
    await q.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ type: 't', data: { i } })));
    const children = spawnWorkers(dir, log, 3, { DIRQ_STAMP: 'ctime' });
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    await until(() => runs(log).length > 0, 'the first start', 10_000);
    const first = Math.min(...runs(log).map((r) => r.start));
    await until(() => Date.now() - first >= 5500, '5 s of starts', 15_000);
    await stop(children);
    // 5 s from the first start; each start stamped by its claim's rename (ctime), as the limit counts it
    const starts = runs(log)
      .map((r) => r.start)
      .sort((a, b) => a - b)
      .filter((t) => t < first + 5000);
    let worst = 0;
    for (const t of starts) worst = Math.max(worst, starts.filter((s) => s >= t && s < t + 1000).length);
    console.log(`rate 20/s across 3 processes: ${starts.length} starts in 5 s, busiest 1-s window ${worst}`);
    expect(worst).toBeLessThanOrEqual(20);
    expect(starts.length).toBeGreaterThanOrEqual(80);
    expect(new Set(runs(log).map((r) => r.pid)).size).toBeGreaterThan(1);
    await q.close();
  });
});

describe('groupConcurrency across processes', () => {
  it('2 processes, groupConcurrency 1: never two jobs of one group at once; other groups run beside it', async () => {
    const { dir, q } = await tempQueue();
    const log = path.join(tempDir(), 'runs.log');
    await q.limit('t', { groupConcurrency: 1 });
    const items: { type: string; data: { ms: number }; group: string }[] = [];
    for (let i = 0; i < 10; i++)
      for (const group of ['a', 'b', 'c']) items.push({ type: 't', data: { ms: 30 }, group });
    const refs = await q.enqueueMany(items);
    const groupOf = new Map(refs.map((r, i) => [r.id, items[i]!.group]));
    const children = spawnWorkers(dir, log, 2);
    await Promise.all(children.map((c) => lineFrom(c, 'ready')));
    await until(async () => (await q.counts()).done === 30, 'all 30 jobs done', 60_000);
    await stop(children);
    const all = runs(log);
    for (const group of ['a', 'b', 'c']) {
      expect(
        maxOverlap(
          all.filter((r) => groupOf.get(r.id) === group),
          new Map(),
        ),
        `group ${group}`,
      ).toBe(1);
    }
    expect(maxOverlap(all, new Map())).toBeGreaterThan(1);
    await q.close();
  });
});

describe('limits across simulated hosts', () => {
  it('2 hosts (own hostname, pid namespace and caching FUSE mount): concurrency 3 (2 workers a host) and a rate of 5 per 500 ms hold across them', async () => {
    requireHosts();
    const dir = path.join(tempDir(), 'q');
    const q = await openQueue(dir, { maintenance: false });
    fs.chmodSync(dir, 0o755);
    await q.limit('c', { concurrency: 3 });
    await q.limit('r', { rate: { max: 5, per: 500 } });
    const log = path.join(tempDir(), 'log');
    // 2 workers a host: 3 running at once needs both hosts, so reaching it (and never passing it) proves the slots are shared
    const env = {
      DIRQ_HOST_LOG: log,
      DIRQ_POLL: '100',
      DIRQ_STALE_AFTER: '2000',
      DIRQ_SWEEP_INTERVAL: '300',
      DIRQ_CONCURRENCY: '2',
    };
    const hosts = ['host1', 'host2'].map((name) => startHost(name, 'pool', mountCached(dir), { env }));
    await Promise.all(hosts.map((h) => h.line('ready')));
    // after both are ready, so both see them from the start
    await q.enqueueMany([
      ...Array.from({ length: 30 }, () => ({ type: 'c', data: { sleep: 40 } })),
      ...Array.from({ length: 20 }, () => ({ type: 'r', data: {} })),
    ]);
    await until(() => logLines(log, 'completed').length === 50, 'all 50 jobs done on the 2 hosts', 60_000);
    await Promise.all(hosts.map((h) => h.stop()));
    const ends = new Map(logLines(log, 'end').map(([, id, , , ms]) => [id!, Number(ms)]));
    const starts = logLines(log, 'start');
    const c = starts
      .filter(([, id]) => id!.endsWith('.c'))
      .map(([, id, , host, ms]) => ({ id: id!, pid: 0, host, start: Number(ms), end: ends.get(id!) }));
    expect(maxOverlap(c, new Map())).toBe(3);
    // a token is used again only `per` after its last use at claim time; a start is stamped up to
    // DISPATCH_SLACK later, in a pool's worker thread: so no window of per - slack holds more than max
    const DISPATCH_SLACK = 150;
    const r = starts.filter(([, id]) => id!.endsWith('.r')).map(([, , , , ms]) => Number(ms));
    let worst = 0;
    for (const t of r) worst = Math.max(worst, r.filter((s) => s >= t && s < t + 500 - DISPATCH_SLACK).length);
    const span = Math.max(...r) - Math.min(...r);
    console.log(
      `across 2 hosts: rate 5/500ms, busiest ${500 - DISPATCH_SLACK}-ms window ${worst}, 20 starts over ${span} ms`,
    );
    expect(worst).toBeLessThanOrEqual(5);
    expect(span).toBeGreaterThanOrEqual(3 * 500 - DISPATCH_SLACK); // 20 starts need 4 windows: 3 between the first and the last
    await q.close();
  });
});
