/**
 * Many hosts, one directory (NFS.md): hosts simulated on this machine, each
 * with its own hostname and pid namespace (unshare), its own caching FUSE
 * mount of the shared queue (bindfs, entry and attribute caches of 2 s: no
 * inotify across mounts, stale lookups and stat results, like NFS clients),
 * and for some a skewed clock (faketime). Each scenario checks the
 * invariants: every job done exactly once unless a host died, nothing lost,
 * nothing left in active/.
 *
 * Time: staleness is produced by backdating heartbeats where the test is not
 * about time; the dead-host scenario measures the recovery bound, so it
 * waits staleAfter (5 s) for real.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJobFile } from '../dist/store/envelope.js';
import type { Queue } from '../dist/index.js';
import { census, duplicates } from './support/census.js';
import { backdate } from './support/fake.js';
import { logLines, mountCached, requireHosts, startHost, type Host } from './support/hosts.js';
import { openQueue, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

const STALE_AFTER = 5000;
const SWEEP_INTERVAL = 300;
const POLL = 100;
/** The maintenance lock's stale time (src/maintenance/sweep.ts). */
const LOCK_STALE = 10_000;

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

/** A fresh queue in a temp dir (the "server" side), its layout made directly. */
async function sharedQueue(): Promise<string> {
  const dir = tempDir();
  await (await openQueue(dir, { maintenance: false })).close();
  return dir;
}

/** The settings every pool host runs with; `log` gets one line per event. */
function hostEnv(log: string, extra: Record<string, string> = {}): Record<string, string> {
  return {
    DIRQ_HOST_LOG: log,
    DIRQ_POLL: String(POLL),
    DIRQ_STALE_AFTER: String(STALE_AFTER),
    DIRQ_SWEEP_INTERVAL: String(SWEEP_INTERVAL),
    ...extra,
  };
}

/** The value the job's counted result holds (revoked claims' results are void). */
function resultOf(dir: string, id: string): { host: string; attempt: number } {
  return parseJobFile(fs.readFileSync(path.join(dir, 'done', id), 'utf8')).result?.value as {
    host: string;
    attempt: number;
  };
}

async function enqueue(q: Queue, count: number, data: Record<string, unknown> = {}): Promise<string[]> {
  return (await q.enqueueMany(Array.from({ length: count }, (_, i) => ({ type: 't', data: { i, ...data } })))).map(
    (r) => r.id,
  );
}

/** Nothing left anywhere but done/, each id exactly once. */
function expectAllDone(dir: string, ids: string[]): void {
  expect(duplicates(dir)).toEqual([]);
  expect([...census(dir).keys()].sort()).toEqual([...ids].sort());
  for (const state of ['queue', 'delayed', 'active', 'failed']) expect(ls(dir, state), state).toEqual([]);
  expect(ls(dir, 'done')).toHaveLength(ids.length);
}

/** A pool host's "ready HOST PID CLOCK" line shows its clock off by `skew` ms (faketime works). */
function expectSkew(ready: string, skew: number): void {
  const clock = Number(ready.split(' ')[3]);
  expect(Math.abs(clock - Date.now() - skew), ready).toBeLessThan(10_000);
}

async function stopAll(hosts: Host[]): Promise<void> {
  expect(await Promise.all(hosts.map((h) => h.stop()))).toEqual(hosts.map(() => 0));
}

describe('the simulated hosts behave like NFS clients', () => {
  it('no inotify event across mounts; stale lookups and directory mtimes for the cache time', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const [a, b] = [mountCached(dir), mountCached(dir)];
    const seen: string[] = [];
    const watcher = fs.watch(path.join(a, 'queue'), (_event, name) => seen.push(String(name)));
    try {
      const mtimeBefore = fs.statSync(path.join(a, 'queue')).mtimeMs;
      fs.writeFileSync(path.join(b, 'tmp', 'x'), '{}\n');
      fs.renameSync(path.join(b, 'tmp', 'x'), path.join(b, 'queue', '50-0000000000000001-x.t')); // another host's rename
      expect(fs.statSync(path.join(a, 'queue')).mtimeMs).toBe(mtimeBefore); // attribute cache: the change does not show yet
      fs.writeFileSync(path.join(a, 'tmp', 'y'), '{}\n');
      fs.renameSync(path.join(a, 'tmp', 'y'), path.join(a, 'queue', '50-0000000000000002-y.t')); // this host's own rename
      await until(() => seen.includes('50-0000000000000002-y.t'), 'the event of the local rename');
      expect(seen).toEqual(['50-0000000000000002-y.t']); // events are in order: the other host's rename raised none here
      // a name looked up here, then moved away through the other mount, still stats here, and cannot be claimed
      const name = '50-0000000000000001-x.t';
      fs.statSync(path.join(a, 'queue', name));
      fs.renameSync(path.join(b, 'queue', name), path.join(b, 'active', `${name}@hostb.1.n.1`));
      expect(fs.existsSync(path.join(a, 'queue', name))).toBe(true); // stale positive lookup
      expect(() => fs.renameSync(path.join(a, 'queue', name), path.join(a, 'active', `${name}@hosta.1.n.1`))).toThrow(
        /ENOENT/,
      );
      expect(ls(dir, 'active')).toEqual([`${name}@hostb.1.n.1`]);
    } finally {
      watcher.close();
    }
  });

  it('unshare gives each host its own hostname and colliding pids', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const q = await openQueue(dir, { maintenance: false });
    await q.enqueue('t');
    const holder = startHost('host1', 'hold', mountCached(dir), { env: { DIRQ_STALE_AFTER: String(STALE_AFTER) } });
    const claim = (await holder.line('claimed ')).split(' ')[3]!;
    const judge = startHost('host2', 'judge', mountCached(dir), { env: { DIRQ_STALE_AFTER: String(STALE_AFTER) } });
    const report = JSON.parse(await judge.line('{')) as { pid: number; host: string };
    expect(claim).toMatch(/^host1\.1\.[a-z0-9]+\.[a-z0-9]+$/); // pid 1 on host1 ...
    expect(report).toMatchObject({ pid: 1, host: 'host2' }); // ... and pid 1 on host2
    holder.send('go');
    await holder.line('completed');
    expect([await holder.exited(), await judge.exited()]).toEqual([0, 0]);
    await q.close();
  });
});

describe('many hosts, one queue directory', () => {
  it('a pid on another host means nothing: its live claim is not judged by our pid 1, its death only by the lease', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const q = await openQueue(dir, { maintenance: false });
    const { id } = await q.enqueue('t');
    const env = { DIRQ_STALE_AFTER: String(STALE_AFTER) };
    const holder = startHost('host1', 'hold', mountCached(dir), { env });
    const claim = (await holder.line('claimed ')).split(' ')[3]!;
    expect(claim.split('.')[1]).toBe('1');
    const judgeMount = mountCached(dir);
    const judge = async (): Promise<{ pid: number; recovered: { id: string; reason: string }[] }> => {
      const host = startHost('host2', 'judge', judgeMount, { env });
      const report = JSON.parse(await host.line('{')) as { pid: number; recovered: { id: string; reason: string }[] };
      expect(await host.exited()).toBe(0);
      return report;
    };
    // the judge is pid 1 too, alive with another start time: judged by pid, the claim would look like a reused pid
    expect(await judge()).toMatchObject({ pid: 1, recovered: [] });
    await holder.kill();
    expect((await judge()).recovered).toEqual([]); // dead, but another host's pid is not ours to check: only the lease decides
    backdate(path.join(dir, 'workers', claim.slice(0, claim.lastIndexOf('.'))), STALE_AFTER + 3000); // the lease ran out (filesystem clock)
    expect((await judge()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled' })]);
    expect(ls(dir, 'queue')).toEqual([id]);
    await q.close();
  });

  it('1. three hosts with pools drain 3,000 jobs through three caching mounts: each exactly once, polling said once', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const log = path.join(dir, 'hosts.log');
    const hosts = ['host1', 'host2', 'host3'].map((name) =>
      startHost(name, 'pool', mountCached(dir), { env: hostEnv(log) }),
    );
    await Promise.all(hosts.map((h) => h.line('ready')));
    const producer = await openQueue(mountCached(dir), { watch: false, maintenance: false });
    const ids: string[] = [];
    for (let batch = 0; batch < 10; batch++) ids.push(...(await enqueue(producer, 300))); // while the hosts drain
    await until(() => ls(dir, 'done').length === ids.length, 'every job done', 120_000);
    await stopAll(hosts);
    await producer.close();

    expectAllDone(dir, ids);
    const starts = logLines(log, 'start').map(([, id]) => id!);
    expect(starts).toHaveLength(ids.length); // no job ran twice
    expect(new Set(starts)).toEqual(new Set(ids));
    const completed = logLines(log, 'completed');
    expect(completed.map(([, id]) => id).sort()).toEqual([...ids].sort());
    expect(logLines(log, 'lost')).toEqual([]);
    expect(logLines(log, 'recovered')).toEqual([]); // caching never made a live claim look stale
    for (const host of hosts) {
      const mine = completed.filter((l) => l[3] === host.name);
      expect(mine.length, `${host.name} shared the work`).toBeGreaterThan(0);
      for (const [, id, attempt] of mine.slice(0, 20))
        expect(resultOf(dir, id!)).toEqual({ host: host.name, attempt: Number(attempt) });
      // 'auto' found the FUSE mount and said once that it polls
      expect(host.lines.filter((l) => l.startsWith(`warning EPOLLING ${host.name} `))).toHaveLength(1);
    }
  });

  it('2. a host whose processes are all SIGKILLed: another host takes its jobs back within staleAfter + a sweep + a poll', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const log = path.join(dir, 'hosts.log');
    const producer = await openQueue(dir, { maintenance: false });
    const ids = await enqueue(producer, 600, { sleep: 20 });
    const hosts = ['host1', 'host2', 'host3'].map((name) =>
      startHost(name, 'pool', mountCached(dir), { env: hostEnv(log) }),
    );
    const held = (): string[] => ls(dir, 'active').filter((n) => n.includes('@host1.'));
    await until(() => ls(dir, 'done').length >= 100 && held().length > 0, 'host1 to be busy');
    const victim = hosts.shift()!;
    await victim.kill();
    const killedAt = Date.now();
    // killed in the middle of a sweep, it leaves the sweep lock, which others take over once it is 10 s old (NFS.md)
    const leftLock = fs.existsSync(path.join(dir, 'workers', '.lock'));
    const orphans = held().map((n) => n.slice(0, n.indexOf('@')));
    expect(orphans.length).toBeGreaterThan(0);
    const restarted = (): boolean => {
      const again = new Set(
        logLines(log, 'start')
          .filter(([, , attempt, host]) => attempt === '2' && host !== 'host1')
          .map(([, id]) => id),
      );
      return orphans.every((id) => again.has(id));
    };
    await until(restarted, 'the dead host jobs to start again elsewhere', 30_000);
    const took = Date.now() - killedAt;
    const bound = Math.max(STALE_AFTER, leftLock ? LOCK_STALE : 0) + 1.25 * SWEEP_INTERVAL + POLL; // NFS.md: the bound for a dead host
    // not by pid (host1's pids mean nothing here) but by the lease: its last beat was up to staleAfter/4 before the
    // kill, and the attribute cache (2 s) can show it older still
    expect(took).toBeGreaterThan(STALE_AFTER - STALE_AFTER / 4 - 2000 - 500);
    expect(took).toBeLessThan(bound + 1500); // + scheduling slack on a loaded 2-core machine
    await until(() => ls(dir, 'done').length === ids.length, 'every job done', 60_000);
    await stopAll(hosts);
    await producer.close();

    expectAllDone(dir, ids);
    expect(logLines(log, 'lost')).toEqual([]);
    const recovered = logLines(log, 'recovered').map(([, id]) => id!);
    expect(recovered.sort()).toEqual([...orphans].sort()); // exactly the dead host's claims, each once
    for (const id of ids) {
      const result = resultOf(dir, id);
      if (orphans.includes(id)) expect(result).toMatchObject({ attempt: 2 });
      else expect(result.attempt, id).toBe(1); // a job runs twice only after a crash
      if (result.attempt === 2) expect(result.host).not.toBe('host1');
    }
    const twice = new Set(
      logLines(log, 'start')
        .filter(([, , attempt]) => attempt !== '1')
        .map(([, id]) => id),
    );
    for (const id of twice) expect(orphans).toContain(id);
  });

  it('3. clocks 60 s ahead and 60 s behind: no live claim is stolen, dead claims are still recovered', async () => {
    requireHosts({ faketime: true });
    const dir = await sharedQueue();
    const log = path.join(dir, 'hosts.log');
    const producer = await openQueue(dir, { maintenance: false });
    // a dead host's claims: its heartbeat is silent for 3 x staleAfter in the filesystem's clock
    const deadOwner = 'host9.4242.dead';
    const dead = await enqueue(producer, 3);
    for (const [i, id] of dead.entries())
      fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${deadOwner}.${i}`));
    fs.writeFileSync(
      path.join(dir, 'workers', deadOwner),
      JSON.stringify({ host: 'host9', bootId: 'x', pid: 4242, startTime: '1', started: '' }),
    );
    backdate(path.join(dir, 'workers', deadOwner), 3 * STALE_AFTER);
    // the host behind starts first: judging by its own clock the dead heartbeat would be 45 s in the future
    const behind = startHost('host2', 'pool', mountCached(dir), { skew: '-60s', env: hostEnv(log) });
    expectSkew(await behind.line('ready'), -60_000);
    await until(() => dead.every((id) => ls(dir, 'done').includes(id)), 'the dead host jobs to be recovered and run');
    for (const id of dead) {
      const revoked = parseJobFile(fs.readFileSync(path.join(dir, 'done', id), 'utf8')).events.find(
        (e) => e.event === 'revoked',
      );
      expect(revoked).toMatchObject({ by: expect.stringMatching(/^host2\./) }); // the host 60 s behind recovered them
    }
    const ahead = startHost('host1', 'pool', mountCached(dir), { skew: '+60s', env: hostEnv(log) });
    const plain = startHost('host3', 'pool', mountCached(dir), { env: hostEnv(log) });
    expectSkew(await ahead.line('ready'), 60_000);
    expectSkew(await plain.line('ready'), 0);
    // live claims held longer than staleAfter on every host; judged by its own clock, host1 would see them 60 s old
    const long = await enqueue(producer, 12, { sleep: STALE_AFTER + 1500 });
    await until(
      () =>
        ['host1', 'host2', 'host3'].every((h) => ls(dir, 'active').filter((n) => n.includes(`@${h}.`)).length === 4),
      'each host to hold 4',
    );
    await until(() => long.every((id) => ls(dir, 'done').includes(id)), 'the long jobs to finish', 60_000);
    await stopAll([behind, ahead, plain]);
    await producer.close();

    expectAllDone(dir, [...dead, ...long]);
    expect(logLines(log, 'lost')).toEqual([]);
    for (const id of long) expect(resultOf(dir, id).attempt, id).toBe(1);
    expect(new Set(long.map((id) => resultOf(dir, id).host))).toEqual(new Set(['host1', 'host2', 'host3']));
    for (const id of dead) expect(resultOf(dir, id).attempt).toBe(2);
  });

  it('4. a host frozen past staleAfter and resumed: its late completions are refused, the recovering host results stand', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const log = path.join(dir, 'hosts.log');
    const producer = await openQueue(dir, { maintenance: false });
    const frozen = startHost('host1', 'pool', mountCached(dir), { env: hostEnv(log, { DIRQ_MAINTENANCE: '0' }) });
    await frozen.line('ready');
    const ids = await enqueue(producer, 4, { sleep: 1000 });
    await until(() => logLines(log, 'start').length === 4, 'host1 to start all 4');
    await frozen.freeze();
    const heartbeat = ls(dir, 'workers').find((n) => n.startsWith('host1.'))!;
    backdate(path.join(dir, 'workers', heartbeat), STALE_AFTER + 3000); // silent past staleAfter: as if frozen that long
    const recoverer = startHost('host2', 'pool', mountCached(dir), { env: hostEnv(log) });
    await until(() => ids.every((id) => ls(dir, 'done').includes(id)), 'host2 to recover and finish them');
    frozen.thaw();
    await until(() => logLines(log, 'lost').length === 4, 'host1 to find its claims lost');
    await stopAll([frozen, recoverer]);
    await producer.close();

    expectAllDone(dir, ids);
    expect(
      logLines(log, 'lost')
        .map(([, id, attempt, host]) => [id, attempt, host])
        .sort(),
    ).toEqual(ids.map((id) => [id, '1', 'host1']).sort());
    expect(
      logLines(log, 'completed')
        .map(([, id, , host]) => [id, host])
        .sort(),
    ).toEqual(ids.map((id) => [id, 'host2']).sort());
    for (const id of ids) {
      expect(resultOf(dir, id)).toEqual({ host: 'host2', attempt: 2 }); // the recoverer's result stands
      const text = fs.readFileSync(path.join(dir, 'done', id), 'utf8');
      expect(text).toContain('"host":"host1"'); // host1's late result did land in the file, and is void
    }
  });
});
