/**
 * Finding and claiming jobs when the filesystem lies a little (NFS.md):
 * 'auto' polls on network and FUSE filesystems and says so once; polls find
 * jobs another host added even while the directory's attributes are cached;
 * names that a listing shows but a lookup does not (stale or not-yet-there)
 * are skipped without error and never run twice; a poll lists queue/ only
 * when its mtime moved, plus the settling scan and the every-5th-poll floor,
 * spread by +-20%; a claim or a recovery whose rename reply was lost (ENOENT
 * or EIO after success, RFC 1813 4.5) is kept, once.
 *
 * The caching mounts are bindfs (test/support/hosts.ts); the lost replies are
 * simulated by a spy on fs.renameSync, the one way to lose a reply without an
 * NFS server; the polls run on fake timers, listings counted by a spy on
 * fs.readdirSync.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { Discovery } from '../dist/queue/discovery.js';
import { parseJobFile } from '../dist/store/envelope.js';
import { filesystemKind } from '../dist/store/fs-kind.js';
import { Queue } from '../dist/index.js';
import { Layout } from '../dist/store/layout.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';
import { census, duplicates } from './support/census.js';
import { dirq } from './support/cli.js';
import { claimByDeadWorker } from './support/fake.js';
import { mountCached, requireHosts } from './support/hosts.js';
import { processors } from './support/pools.js';
import { openQueue, tempDir, tempQueue } from './support/temp.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

async function sharedQueue(): Promise<string> {
  const dir = tempDir();
  await (await openQueue(dir, { maintenance: false })).close();
  return dir;
}

/** Write a job by hand (FORMAT.md) with a chosen id, through `dir` (any view of the queue). */
function handEnqueue(dir: string, id: string): void {
  fs.writeFileSync(path.join(dir, 'tmp', id), '{"data":"by hand"}\n', { flag: 'wx' });
  fs.renameSync(path.join(dir, 'tmp', id), path.join(dir, 'queue', id));
}

afterEach(() => {
  vi.restoreAllMocks(); // first: a spy on a faked timer function would restore the fake
  vi.useRealTimers();
});

describe("watch: 'auto'", () => {
  it('detects network and FUSE filesystems by statfs type', () => {
    requireHosts();
    expect(filesystemKind(os.tmpdir())).toMatchObject({ shared: false });
    expect(filesystemKind(mountCached(tempDir()))).toEqual({
      type: 0x65735546,
      name: 'FUSE',
      shared: true,
      memory: false,
    });
    expect(filesystemKind('/dev/shm')).toMatchObject({ shared: false, memory: true }); // tmpfs: no fsync there (Queue)
    expect(filesystemKind('/no/such/dir')).toMatchObject({ shared: false, type: undefined });
  });

  it('polls on a FUSE mount and says so once (EPOLLING); watch: true or false says nothing', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const mount = mountCached(dir);
    const notices = async (options: { watch?: boolean }): Promise<Error[]> => {
      const q = await openQueue(mount, { maintenance: false, watch: 'auto', ...options }); // the default; the tests' is not
      const heard: Error[] = [];
      q.on('warning', (error) => heard.push(error));
      await q.claim();
      await q.claim({ wait: 120 });
      await q.close();
      return heard;
    };
    const auto = await notices({});
    expect(auto).toHaveLength(1);
    expect(auto[0]).toMatchObject({
      code: 'EPOLLING',
      message: expect.stringMatching(/FUSE filesystem .* polling every 50 ms/),
    });
    expect(await notices({ watch: false })).toEqual([]);
    expect(await notices({ watch: true })).toEqual([]);
    const local = await tempQueue({ watch: 'auto', maintenance: false });
    const heard: Error[] = [];
    local.q.on('warning', (error) => heard.push(error));
    await local.q.claim();
    expect(heard).toEqual([]);
    await local.q.close();
  });

  it('refuses other values of watch', async () => {
    await expect(Queue.open(tempDir(), { watch: 'yes' as never })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringContaining("'auto'"),
    });
  });

  it('dirq work on a FUSE mount: the notice once on stderr; --poll and --stale-after are taken', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const producer = await openQueue(mountCached(dir), { watch: false, maintenance: false });
    await producer.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ type: 't', data: { i } })));
    const auto = await dirq(['work', mountCached(dir), processors('echo'), '--drain']);
    expect(auto.code).toBe(0);
    expect(auto.stdout).toContain('20 completed');
    expect(auto.stderr.match(/EPOLLING|polling every 1000 ms instead of watching/g)).toHaveLength(1);
    await producer.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ type: 't', data: { i } })));
    const polled = await dirq([
      'work',
      mountCached(dir),
      processors('echo'),
      '--drain',
      '--poll',
      '200ms',
      '--stale-after',
      '10s',
    ]);
    expect(polled).toMatchObject({ code: 0, stderr: '' });
    expect(polled.stdout).toContain('20 completed');
    expect(ls(dir, 'done')).toHaveLength(40);
    await producer.close();
  });
});

describe('polling through caches', () => {
  it("finds another host's job within a few polls while queue/'s attributes are cached for 30 s (the full-rescan floor)", async () => {
    requireHosts();
    const dir = await sharedQueue();
    const poller = await openQueue(mountCached(dir, { attrTimeout: 30, entryTimeout: 30 }), {
      watch: false,
      pollInterval: 100,
      maintenance: false,
    });
    expect(await poller.claim()).toBeUndefined(); // starts polling
    // this test is about a cache's time: let the poller settle on queue/'s mtime and cache it
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const other = await openQueue(mountCached(dir), { watch: false, maintenance: false });
    const { id } = await other.enqueue('t', 'from another host');
    const started = Date.now();
    const job = await poller.claim({ wait: 10_000 });
    expect(job?.id).toBe(id);
    expect(Date.now() - started).toBeLessThan(2500); // 5 polls of 100 ms (jittered), not the 30 s cache
    await job!.complete();
    await Promise.all([poller.close(), other.close()]);
  });
});

describe('cheap polls (watch: false)', () => {
  const POLL = 1000; // not below MTIME_DOUBT_MS (1 s), so a new mtime's settling scan is the very next poll

  /**
   * A Discovery of a fresh queue, polling on fake timers; performance.now,
   * its monotonic clock, follows them. Listings of queue/ are counted by a spy
   * on fs.readdirSync (what listDir calls), poll delays by a spy on setTimeout.
   */
  async function polling(): Promise<{
    dir: string;
    index: ReadyIndex;
    discovery: Discovery;
    poll: () => boolean;
    delays: number[];
    notified: () => number;
  }> {
    const dir = await sharedQueue();
    const layout = new Layout(dir);
    const then = new Date(Date.now() - 60_000);
    fs.utimesSync(layout.paths.queue, then, then); // so any change made by the test gives queue/ a new mtime, whatever the timestamp granularity
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    vi.spyOn(performance, 'now').mockImplementation(() => Date.now());
    const timeout = vi.spyOn(globalThis, 'setTimeout');
    const readdir = vi.spyOn(fs, 'readdirSync');
    const listings = (): number => readdir.mock.calls.filter(([p]) => p === layout.paths.queue).length;
    const index = new ReadyIndex(Infinity);
    // rescanInterval far off: the floor is FLOOR_POLLS polls, and the delayed/ scan timer never fires here
    const discovery = new Discovery(layout, index, { watch: false, pollInterval: POLL, rescanInterval: 3_600_000 });
    let notifications = 0;
    discovery.onChange(() => notifications++);
    discovery.start();
    expect(listings()).toBe(1); // the first scan
    const delays: number[] = [];
    const poll = (): boolean => {
      const [before, scheduled] = [listings(), timeout.mock.calls.length];
      delays.push(timeout.mock.calls.at(-1)![1]!);
      vi.advanceTimersToNextTimer(); // the pending poll, nothing else
      expect(timeout.mock.calls.length, 'each poll schedules the next').toBe(scheduled + 1);
      return listings() > before;
    };
    return { dir, index, discovery, poll, delays, notified: () => notifications };
  }

  it('lists queue/ only when its mtime changed, the settling scan after it, and every 5th poll (the floor)', async () => {
    vi.spyOn(Math, 'random').mockReturnValue(0.5); // no jitter: polls exactly POLL apart, so the floor falls on a fixed poll
    const { dir, index, discovery, poll, notified } = await polling();
    const run = (polls: number): string => Array.from({ length: polls }, () => (poll() ? 'L' : '.')).join('');
    // poll 1 is the settling scan of the first mtime (seen at the first scan), then the floor every 5 polls
    expect(run(18)).toBe('L....L....L....L..');
    expect(index.size).toBe(0);
    const id = `50-${String(Date.now() * 1000).padStart(16, '0')}-byhand1.t`;
    handEnqueue(dir, id); // another host's job: queue/'s mtime moves
    expect(notified()).toBe(0);
    expect(run(1)).toBe('L'); // listed at the next poll, not at the floor
    expect(index.take(undefined)).toBe(id); // the one job there is
    expect(notified()).toBe(1); // and claimers waiting are woken
    expect(run(6)).toBe('L....L'); // settled the next poll, then the floor counts from there
    discovery.close();
  });

  it('polls are spread by +-20% of pollInterval', async () => {
    const { discovery, poll, delays } = await polling();
    for (let i = 0; i < 60; i++) poll();
    expect(delays).toHaveLength(60);
    for (const delay of delays) {
      expect(delay).toBeGreaterThanOrEqual(0.8 * POLL);
      expect(delay).toBeLessThanOrEqual(1.2 * POLL);
    }
    expect(Math.max(...delays) - Math.min(...delays)).toBeGreaterThan(0.2 * POLL); // spread over the range, not in step (fails by chance with p < 1e-12)
    discovery.close();
  });
});

describe('stale lookups (I3)', () => {
  it('names the index lists but another host already took are skipped without error, never run twice', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const [a, b] = [mountCached(dir), mountCached(dir)];
    const producer = await openQueue(dir, { maintenance: false });
    const ids = (await producer.enqueueMany(Array.from({ length: 20 }, (_, i) => ({ type: 't', data: i })))).map(
      (r) => r.id,
    );
    const qa = await openQueue(a, { watch: false, maintenance: false });
    expect(await qa.claim({ types: ['other'] })).toBeUndefined(); // its index now lists all 20
    for (const id of ids) fs.statSync(path.join(a, 'queue', id)); // and host a has looked them up
    const qb = await openQueue(b, { watch: false, maintenance: false });
    for (let job = await qb.claim(); job !== undefined; job = await qb.claim()) await job.complete('b');
    expect(ids.every((id) => fs.existsSync(path.join(a, 'queue', id)))).toBe(true); // a's lookups are stale ...
    expect(await qa.claim()).toBeUndefined(); // ... its claims fail with ENOENT and move on
    expect(ls(dir, 'done')).toEqual([...ids].sort());
    expect(duplicates(dir)).toEqual([]);
    await Promise.all([qa.close(), qb.close(), producer.close()]);
  });

  it('a name listed before its lookup succeeds (not there yet) is skipped, then claimed once when it shows', async () => {
    requireHosts();
    const dir = await sharedQueue();
    const c = mountCached(dir, { negativeTimeout: 2 }); // NFS lookupcache=all: failed lookups are cached too
    const id = `50-${String(Date.now() * 1000).padStart(16, '0')}-byhand1.t`;
    expect(fs.existsSync(path.join(c, 'queue', id))).toBe(false); // looked up before it exists
    handEnqueue(dir, id);
    expect(fs.readdirSync(path.join(c, 'queue'))).toContain(id); // listed ...
    expect(fs.existsSync(path.join(c, 'queue', id))).toBe(false); // ... but not there yet for a lookup
    const qc = await openQueue(c, { watch: false, maintenance: false });
    expect(await qc.claim()).toBeUndefined(); // skipped, no error
    const job = await qc.claim({ wait: 10_000 });
    expect(job).toMatchObject({ id, attempt: 1, data: 'by hand' });
    await job!.complete();
    expect([...census(dir)]).toEqual([[id, ['done']]]);
    await qc.close();
  });
});

describe('claims survive lost replies (I3, RFC 1813 4.5)', () => {
  const inActive = (p: unknown): boolean => String(p).includes(`${path.sep}active${path.sep}`);

  /**
   * The next rename into active/ (a claim's; with `fromActive`, a revoke's,
   * from one claim to the recoverer's) succeeds on the "server" but reports
   * `code`, as a lost reply and its retransmission do. Returns how many such
   * renames were tried.
   */
  function loseNextClaimReply(code: 'ENOENT' | 'EIO', happened = true, fromActive = false): () => number {
    const rename = fs.renameSync;
    let tried = 0;
    const spy = vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (!inActive(to) || inActive(from) !== fromActive) {
        rename(from, to);
        return;
      }
      tried++;
      spy.mockRestore();
      if (happened) rename(from, to);
      throw Object.assign(new Error(`${code}: simulated lost reply, rename '${String(from)}' -> '${String(to)}'`), {
        code,
        errno: code === 'EIO' ? -5 : -2,
        syscall: 'rename',
      });
    });
    return () => tried;
  }

  it.each(['ENOENT', 'EIO'] as const)(
    "%s after a recovery's revoke rename happened: recovered once, back in queue/ with the attempt counted",
    async (code) => {
      const { dir, q } = await tempQueue({ maintenance: false });
      const { id } = await q.enqueue('t', 'x');
      claimByDeadWorker(dir, id);
      const tried = loseNextClaimReply(code, true, true);
      const report = await q.recover();
      expect(tried()).toBe(1);
      expect(report.recovered).toEqual([{ id, claim: expect.any(String), reason: 'crashed', to: 'queue' }]);
      expect(ls(dir, 'active')).toEqual([]);
      expect([...census(dir)]).toEqual([[id, ['queue']]]);
      const record = parseJobFile(fs.readFileSync(path.join(dir, 'queue', id), 'utf8'));
      expect(record.events.filter((e) => e.event === 'revoked')).toEqual([
        expect.objectContaining({ reason: 'crashed', attempt: 1 }),
      ]);
      expect(record.attemptsMade).toBe(1);
      expect((await q.recover()).recovered).toEqual([]); // nothing left to take back
      const job = await q.claim();
      expect(job).toMatchObject({ id, attempt: 2 });
      await job!.complete();
      expect(duplicates(dir)).toEqual([]);
      await q.close();
    },
  );

  it("ENOENT when the revoke rename did not happen (another recoverer's race, as it looks): nothing taken back, the claim left for the next sweep", async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t', 'x');
    const owner = claimByDeadWorker(dir, id);
    const tried = loseNextClaimReply('ENOENT', false, true);
    expect((await q.recover()).recovered).toEqual([]);
    expect(tried()).toBe(1);
    expect(ls(dir, 'active')).toEqual([`${id}@${owner}.0`]);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'crashed', to: 'queue' })]);
    expect((await q.get(id)).attemptsMade).toBe(1);
    await q.close();
  });

  it.each(['ENOENT', 'EIO'] as const)('%s after the rename happened: the claim is ours, run once', async (code) => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t', 'x');
    loseNextClaimReply(code);
    const job = await q.claim();
    expect(job?.id).toBe(id);
    await job!.complete('ok');
    expect(await q.waitFor(id)).toBe('ok');
    expect(ls(dir, 'active')).toEqual([]);
    expect(duplicates(dir)).toEqual([]);
    await q.close();
  });

  it('EIO when the rename did not happen: the claim fails with EIO and the job stays ready', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t', 'x');
    loseNextClaimReply('EIO', false);
    await expect(q.claim()).rejects.toMatchObject({ code: 'EIO' });
    expect(ls(dir, 'queue')).toEqual([id]);
    const job = await q.claim();
    expect(job?.id).toBe(id);
    await job!.complete();
    await q.close();
  });

  it('ENOENT when another claimer was first: lost race, the next job is tried', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const [first, second] = (
      await q.enqueueMany([
        { type: 't', data: 1 },
        { type: 't', data: 2 },
      ])
    ).map((r) => r.id);
    fs.renameSync(path.join(dir, 'queue', first!), path.join(dir, 'active', `${first}@elsewhere.1.x.1`)); // taken behind our back
    const job = await q.claim();
    expect(job?.id).toBe(second);
    await job!.complete();
    await q.close();
  });
});
