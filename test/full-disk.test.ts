/**
 * A real full disk (issue 11): a small tmpfs holding a queue with jobs in
 * every state (queue/, delayed/, active/ under live claims and under the
 * claims of a dead and of a silent worker, done/, failed/), unique keys and
 * lifetime counters, filled to the last byte by a filler file grown until
 * ENOSPC, or in the second case to the last inode (nr_inodes= small: creates
 * fail with ENOSPC while bytes remain). The filler is topped up before every
 * operation, since some free space (prune, rm, purge). Then every operation
 * of the API, a Pool and the CLI either works (reads; renames, unlinks and
 * appends that fit need no new space) or rejects with ENOSPC and the advice
 * to free space, and the CLI exits 1 with that one line. After each one every
 * job is in exactly one state, none is lost or made from nothing, tmp/ is
 * empty, active/ holds just the claims still held, and fsck finds nothing.
 * Then the filler goes, every operation succeeds, and the queue drains to the
 * expected set of completed jobs, fsck clean.
 *
 * tmpfs allocates by pages: an append that fits in the last page of its file
 * takes no new space, so on the full disk a small result or error line lands
 * and one larger than a page does not. Needs root (to mount); about 10 s.
 *
 * A queue in memory makes no fsync (store/fs-kind.ts), so the durable handle
 * here writes as the other one does; the fsync paths' own handling of ENOSPC
 * (a batch whose fdatasyncs or syncfs are in flight when a file fails) is
 * io-errors.test.ts's, which fails each of their calls with ENOSPC on a disk.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirQueueError, fsck, Pool, type Job, type PoolOptions, type Queue, type QueueOptions } from '../dist/index.js';
import { Layout } from '../dist/store/layout.js';
import { bootId } from '../dist/store/liveness.js';
import { hostToken } from '../dist/store/names.js';
import { readTotals, type Counter, type Totals } from '../dist/store/totals.js';
import { census, duplicates } from './support/census.js';
import { dirq, type Run } from './support/cli.js';
import { deadPid, openQueue, tempDir } from './support/temp.js';

const isRoot = process.getuid?.() === 0;
const FULL = /the filesystem is full: free space/;
const PAGE = 4096;
const big = (c: string): string => c.repeat(2 * PAGE); // never fits in a file's last page
const day = 24 * 3600 * 1000;
const ago = (ms: number): Date => new Date(Date.now() - ms);

type Kind = 'bytes' | 'inodes';

interface Filler {
  /** Grow until the disk is full; returns how much was added. */
  fill(): number;
  /** Delete the filler. */
  free(): void;
}

/** A filler file grown until not one more byte fits (bytes), or empty files until no inode is left (inodes). */
function filler(mount: string, kind: Kind): Filler {
  const file = path.join(mount, 'filler');
  const many = path.join(mount, 'fillers');
  let n = 0;
  return {
    fill() {
      if (kind === 'inodes') {
        fs.mkdirSync(many, { recursive: true });
        for (let added = 0; ; added++) {
          try {
            fs.closeSync(fs.openSync(path.join(many, String(n++)), 'wx'));
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            return added;
          }
        }
      }
      const fd = fs.openSync(file, 'a');
      let added = 0;
      try {
        for (let chunk = 1 << 20; chunk >= 1;) {
          try {
            const wrote = fs.writeSync(fd, Buffer.alloc(chunk));
            added += wrote;
            if (wrote < chunk) chunk >>= 1;
          } catch (error) {
            if ((error as NodeJS.ErrnoException).code !== 'ENOSPC') throw error;
            chunk >>= 1;
          }
        }
      } finally {
        fs.closeSync(fd);
      }
      return added;
    },
    free() {
      fs.rmSync(file, { force: true });
      fs.rmSync(many, { recursive: true, force: true });
    },
  };
}

/** The expectations every CLI call that hit the full disk meets: exit 1, one line of advice, no stack. */
function expectFullRun(run: Run, what: string): void {
  expect(run.code, `${what}: ${run.stderr}`).toBe(1);
  expect(run.stdout, what).toBe('');
  expect(run.stderr.split('\n'), what).toEqual([
    expect.stringMatching(/^dirq: \S.*the filesystem is full: free space/),
    '',
  ]);
}

function expectOk(run: Run, what: string): string {
  expect(run, what).toMatchObject({ code: 0, stderr: '' });
  return run.stdout;
}

interface Mounted {
  /** The queue's directory, on the tmpfs. */
  dir: string;
  kind: Kind;
  disk: Filler;
  /** A handle the test closes (or the cleanup does): durable, no timed sweeps, polling. */
  open: (options?: QueueOptions) => Promise<Queue>;
  /** A Pool the cleanup closes if the test does not. */
  pool: (options: PoolOptions) => Pool;
}

/** Run `body` on a fresh small tmpfs, unmounted afterwards whatever happens. */
async function onTmpfs(kind: Kind, body: (m: Mounted) => Promise<void>): Promise<void> {
  if (!isRoot) throw new Error('this test mounts a small tmpfs and needs root (CI runs as root)');
  const mount = tempDir();
  // bytes: 4 MiB, room for the 300-job batch once freed; inodes: as many as that needs, and bytes to spare
  const options = kind === 'bytes' ? 'size=4m' : 'size=16m,nr_inodes=1000';
  execFileSync('mount', ['-t', 'tmpfs', '-o', options, 'tmpfs', mount]);
  const dir = path.join(mount, 'q');
  const queues: Queue[] = [];
  const pools: Pool[] = [];
  let failure: unknown;
  try {
    await body({
      dir,
      kind,
      disk: filler(mount, kind),
      async open(options = {}) {
        const q = await openQueue(dir, { durable: true, maintenance: false, watch: false, ...options });
        queues.push(q);
        return q;
      },
      pool(options) {
        const pool = new Pool(dir, options);
        return pool;
      },
    });
  } catch (error) {
    failure = error;
  }
  // unmount whatever happened, and let the test's own failure win over the cleanup's
  const closed = await Promise.allSettled([
    ...pools.map((p) => p.close({ timeout: 0 })),
    ...queues.map((q) => q.close()),
  ]);
  let unmounted: unknown;
  try {
    execFileSync('umount', [mount], { stdio: 'pipe' });
  } catch (error) {
    execFileSync('umount', ['-l', mount]);
    unmounted = error;
  }
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows whatever the body threw
  if (failure !== undefined) throw failure;
  for (const result of closed) if (result.status === 'rejected') throw result.reason;
  // eslint-disable-next-line @typescript-eslint/only-throw-error -- umount's error
  if (unmounted !== undefined) throw unmounted;
}

async function everyOperation({ dir, kind, disk, open, pool: newPool }: Mounted): Promise<void> {
  const names = (state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();
  /** Every id acknowledged as enqueued; those deleted on purpose (rm, purge, prune). */
  const acked = new Set<string>();
  const removed = new Set<string>();
  const add = (...refs: { id: string; duplicate: boolean }[]): string[] =>
    refs.map((ref) => (ref.duplicate ? ref.id : (acked.add(ref.id), ref.id)));

  // ---- a queue with jobs in every state, keys and counters ----
  const setup = await open({ maintenance: true }); // a queue that has swept: its clock and lock files exist
  const [r1, r2] = add(await setup.enqueue('t', 'r1'), await setup.enqueue('t', 'r2'));
  add(await setup.enqueue('t', 'k1', { key: 'k1' }));
  const [later, due] = add(
    await setup.enqueue('d', 'later', { delay: 3600_000 }),
    await setup.enqueue('d', 'due', { delay: 3600_000 }),
  );
  const [forPool] = add(await setup.enqueue('p', 'pool'));
  const [hA, hB, hC] = add(
    await setup.enqueue('h', 'A', { key: 'ka' }),
    await setup.enqueue('h', 'B', { attempts: 3, backoff: 0 }),
    await setup.enqueue('h', 'C'),
  );
  const [, old1, old2, f1, f2, f3] = add(
    ...(await setup.enqueueMany(
      ['c1', 'old1', 'old2', 'f1', 'f2', 'f3'].map((data) => ({ type: 'e', data, attempts: 1, key: data })),
    )),
  );
  for (let job = await setup.claim({ types: ['e'] }); job; job = await setup.claim({ types: ['e'] })) {
    if ((job.data as string).startsWith('f')) await job.fail(new Error('boom'));
    else await job.complete({ ok: job.data });
  }
  const [x1, x2] = add(await setup.enqueue('x', 'x1', { key: 'x1' }), await setup.enqueue('x', 'x2'));
  await setup.close(); // its counts are written: a delta in workers/
  const q = await open();
  await q.recover(); // makes workers/totals
  await q.recover(); // folds the delta into it
  const counter = await open();
  add(await counter.enqueue('t', 'counted'));
  await counter.close(); // and one more delta, for the sweep on the full disk to fold
  expect(names('workers')).toEqual(expect.arrayContaining(['totals', expect.stringMatching(/^totals\./)]));
  const onDisk = (): Totals => readTotals(new Layout(dir));
  const totalsBefore = onDisk();
  expect(totalsBefore.t).toMatchObject({ enqueued: 4 });
  expect(names('keys')).toEqual(['k1', 'ka', 'x1']);
  // claims held by a live handle
  const held = new Map<string, Job>();
  for (let job = await q.claim({ types: ['h'] }); job; job = await q.claim({ types: ['h'] })) held.set(job.id, job);
  expect([...held.keys()]).toEqual([hA, hB, hC]);
  /** Claims of workers that are gone, not yet taken back. */
  const lostClaims = new Set<string>();
  /** Move a job from queue/ to a claim of `owner`, whose heartbeat says `identity`, silent for `silentMs`. */
  const plantClaim = (id: string, owner: string, identity: object, silentMs: number): string => {
    const heartbeat = path.join(dir, 'workers', owner);
    fs.writeFileSync(heartbeat, JSON.stringify(identity));
    fs.utimesSync(heartbeat, ago(silentMs), ago(silentMs));
    const claim = `${id}@${owner}.0`;
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', claim));
    lostClaims.add(claim);
    return claim;
  };
  // a worker on another host silent for longer than staleAfter (30 s), whose heartbeat a sweep keeps (for an hour)
  const silentClaim = plantClaim(x2!, 'elsewhere.77.silent', {}, 45_000);
  // a delayed job due now, for the sweep to promote; one done 2 days ago, for purge
  const dueName = names('delayed').find((name) => name.endsWith(`~${due}`))!;
  fs.renameSync(
    path.join(dir, 'delayed', dueName),
    path.join(dir, 'delayed', dueName.replace(/^\d{16}/, '0000000000000001')),
  );
  fs.utimesSync(path.join(dir, 'done', old2!), ago(2 * day), ago(2 * day));
  const fast = await open({ durable: false });
  const fresh = await open({ backoff: 0 }); // has not claimed yet: its first claim makes its heartbeat

  /** After every step: one state each, none lost or made up, tmp/ empty, only held claims in active/, fsck clean. */
  const check = async (what: string): Promise<void> => {
    expect(duplicates(dir), what).toEqual([]);
    const where = census(dir);
    for (const id of acked) if (!removed.has(id)) expect(where.has(id), `${what}: lost ${id}`).toBe(true);
    for (const id of where.keys())
      expect(acked.has(id) && !removed.has(id), `${what}: ${id} should not be there`).toBe(true);
    expect(names('tmp'), `${what}: left in tmp/`).toEqual([]);
    const claims = [...held.values()].filter((job) => !job.settled).map((job) => path.basename(job.path));
    expect(names('active'), `${what}: active/`).toEqual([...claims, ...lostClaims].sort());
    expect((await fsck(dir)).findings, `${what}: fsck`).toEqual([]);
  };
  /** Free the disk for a step of the test's own, then fill it again. */
  const withRoom = (step: () => void): void => {
    disk.free();
    step();
    fill();
  };
  const fill = (): void => {
    disk.fill();
    const { bavail, ffree } = fs.statfsSync(dir);
    expect(kind === 'bytes' ? bavail : ffree, 'the disk is full').toBe(0);
  };
  /** The operation works on the full disk. */
  const works = async <T>(what: string, op: () => Promise<T>): Promise<T> => {
    fill();
    const value = await op();
    await check(what);
    return value;
  };
  /** The operation rejects with the typed ENOSPC error and its advice, and changes nothing. */
  const refused = async (what: string, op: () => Promise<unknown>): Promise<void> => {
    fill();
    const before = census(dir);
    const error = await op().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, `${what} should have failed`).toBeInstanceOf(DirQueueError);
    expect((error as DirQueueError).code, `${what}: ${String(error)}`).toBe('ENOSPC');
    expect((error as Error).message, what).toMatch(FULL);
    expect(census(dir), what).toEqual(before);
    await check(what);
  };
  /** Refused on a disk out of bytes, works on one out of inodes (an append, bytes to spare). */
  const bytesRefuse = kind === 'bytes' ? refused : works;
  const cli = async (what: string, ...args: string[]): Promise<Run> => {
    fill();
    const run = await dirq(args);
    await check(`dirq ${what}`);
    return run;
  };

  // ---- the full disk ----
  fill();
  await check('filled');
  if (kind === 'inodes') expect(fs.statfsSync(dir).bavail, 'bytes remain').toBeGreaterThan(0);
  await refused('enqueue (durable)', () => q.enqueue('t', 'no'));
  await refused('enqueue (not durable)', () => fast.enqueue('t', 'no'));
  await refused('enqueue with a unique key', () => q.enqueue('t', 'no', { key: 'k2' }));
  expect(names('keys')).toEqual(['k1', 'ka', 'x1']);
  await refused('enqueueMany of 3', () => q.enqueueMany([{ type: 't' }, { type: 't', key: 'k3' }, { type: 't' }]));
  await refused('enqueueMany of 300', () =>
    q.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ type: 't', data: i }))),
  );
  await refused('enqueueMany not durable', () => fast.enqueueMany([{ type: 't' }, { type: 't' }]));
  const claimOf = (handle: Queue) => async (): Promise<Job | undefined> => {
    const job = await handle.claim({ types: ['t'] });
    if (job !== undefined) held.set(job.id, job);
    return job;
  };
  expect((await works('claim', claimOf(q)))?.id).toBe(r1);
  // a handle's first claim makes its heartbeat: an empty file where bytes are out (stamped by hand), none without an inode
  if (kind === 'bytes') expect((await works('claim by a handle without a heartbeat yet', claimOf(fresh)))?.id).toBe(r2);
  else await refused('claim by a handle without a heartbeat yet', claimOf(fresh));
  // an ending that does not fit leaves the job held and its file as it was (no torn result or error line)
  const endOf = async (job: Job, what: string, end: () => Promise<unknown>): Promise<void> => {
    const before = fs.readFileSync(job.path);
    await bytesRefuse(`${what} larger than a page`, end);
    if (job.settled) return;
    expect(fs.readFileSync(job.path), `${what}: the file`).toEqual(before);
  };
  const jobA = held.get(hA!)!;
  await endOf(jobA, 'complete with a result', () => jobA.complete(big('r')));
  if (!jobA.settled) await works('complete', () => jobA.complete('small'));
  expect(names('keys'), 'complete frees the key').toEqual(['k1', 'x1']);
  const jobB = held.get(hB!)!;
  await endOf(jobB, 'fail with an error', () => jobB.fail(new Error(big('e'))));
  if (!jobB.settled) await works('fail', () => jobB.fail(new Error('small')));
  expect((await q.get(hB!)).attemptsMade, 'one failed attempt, not two').toBe(1);
  await works('release', () => held.get(hC!)!.release());
  expect(names('queue')).toEqual(expect.arrayContaining([hB, hC]));
  await works('retry of a failed job', () => q.retry(f1!));
  expect((await works('get', () => q.get(f1!))).state).toBe('queue');
  // a sweep takes the silent worker's claim back and promotes the due job, by renames and a small append; it cannot
  // write its lock (it sweeps without it: the lock only saves work) nor fold the counters (a warning: a later sweep folds)
  const swept = await works('a sweep', async () => {
    const report = await q.recover();
    lostClaims.delete(silentClaim);
    return report;
  });
  expect(swept).toMatchObject({
    swept: true,
    recovered: [{ id: x2, reason: 'stalled', to: 'queue' }],
    promoted: 1,
    pruned: 0,
  });
  expect(swept.warnings.map((w) => [w.code, w.message])).toEqual([
    ['ENOSPC', expect.stringMatching(/maintenance lock could not be taken.*full.*: swept without it/)],
    ['ENOSPC', expect.stringMatching(FULL)],
  ]);
  expect(names('queue')).toEqual(expect.arrayContaining([x2, due]));
  // the counters on disk survive the fold that failed (none went down)
  const totalsAfter = onDisk();
  for (const [type, row] of Object.entries(totalsBefore))
    for (const [name, n] of Object.entries(row))
      expect(totalsAfter[type]?.[name as Counter], `${type} ${name}`).toBeGreaterThanOrEqual(n);
  // a dead worker of this host (its pid is gone): its claim, and a done job past keepDone, made with a little room
  const ancient = old1!.replace(/-\d{16}-/, '-0000001000000000-');
  const pid = await deadPid();
  withRoom(() => {
    plantClaim(x1!, `${hostToken()}.${pid}.dead`, { host: os.hostname(), bootId: bootId(), pid, startTime: '1' }, 0);
    fs.renameSync(path.join(dir, 'done', old1!), path.join(dir, 'done', ancient));
    fs.utimesSync(path.join(dir, 'done', ancient), ago(30 * day), ago(30 * day));
    acked.delete(old1!);
    acked.add(ancient);
  });
  const swept2 = await works('a sweep that prunes', async () => {
    const report = await q.recover();
    lostClaims.clear();
    removed.add(ancient);
    return report;
  });
  expect(swept2).toMatchObject({ swept: true, recovered: [{ id: x1, reason: 'crashed', to: 'queue' }], pruned: 1 });
  expect(swept2.warnings[0]).toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(/maintenance lock/) });
  await works('Queue.open', async () => {
    const other = await open();
    await other.close();
  });

  // a pool: where bytes are out it runs its job, cannot record the result, puts the job back and stops;
  // where inodes are out its queue cannot make a heartbeat, so it claims nothing and says why
  await works('Pool start, run, close', async () => {
    const pool = newPool({ processor: async () => big('p'), types: ['p'], watch: false, pollInterval: 50 });
    const warnings: Error[] = [];
    const warned = new Promise<void>((resolve) =>
      pool.on('warning', (warning) => {
        warnings.push(warning);
        resolve();
      }),
    );
    const errors: Error[] = [];
    const reported = new Promise<void>((resolve) =>
      pool.on('error', (error) => {
        errors.push(error);
        resolve();
      }),
    );
    await pool.start();
    await Promise.all([reported, warned]); // the opening sweep's warnings come on the next turn
    await pool.close();
    expect(errors[0], String(errors[0])).toBeInstanceOf(DirQueueError);
    expect(errors[0]).toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(FULL) });
    expect(warnings, 'its opening sweep, without the lock').toContainEqual(
      expect.objectContaining({ code: 'ENOSPC', message: expect.stringMatching(/maintenance lock/) }),
    );
    expect(pool.counts).toMatchObject({ completed: 0, released: kind === 'bytes' ? 1 : 0, running: 0 });
  });
  expect(await q.get(forPool!)).toMatchObject({ state: 'queue', attemptsMade: 0 });

  expectFullRun(await cli('enqueue', 'enqueue', dir, 't', '"no"'), 'dirq enqueue');
  fill();
  const reads = await Promise.all([
    dirq(['ls', dir, 'failed']),
    dirq(['stats', dir]),
    dirq(['show', dir, f2!]),
    dirq(['fsck', dir]),
  ]);
  for (const [i, run] of reads.entries()) expectOk(run, `dirq read ${i}`);
  expect(reads[0].stdout).toContain(f2);
  expect(reads[3].stdout).toMatch(/clean/);
  await check('dirq ls, stats, show, fsck');
  expect(expectOk(await cli('fsck --repair', 'fsck', dir, '--repair'), 'fsck --repair')).toMatch(/clean/);
  removed.add(f3!);
  removed.add(old2!);
  fill();
  const [retried, rm, purged] = await Promise.all([
    dirq(['retry', dir, f2!]),
    dirq(['rm', dir, f3!]),
    dirq(['purge', dir, 'done', '--older-than', '1d']),
  ]);
  expect(expectOk(retried, 'retry')).toContain(f2);
  expect(expectOk(rm, 'rm')).toContain(f3);
  expect(expectOk(purged, 'purge')).toMatch(/purged 1 job/);
  await check('dirq retry, rm, purge');

  // ---- free the disk: every operation works, and the queue drains ----
  disk.free();
  add(await q.enqueue('t', 'durable'), await fast.enqueue('t', 'fast'), await q.enqueue('t', 'k2', { key: 'k2' }));
  add(...(await q.enqueueMany([{ type: 't' }, { type: 't', key: 'k3' }, { type: 't' }])));
  add(...(await q.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ type: 'b', data: i })))));
  add(...(await fast.enqueueMany([{ type: 't' }, { type: 't' }])));
  for (const job of held.values()) if (!job.settled) await job.complete(big('r')); // a result larger than a page fits now
  const next = (await fresh.claim({ types: ['t'] }))!;
  await next.fail(new Error(big('e')));
  expect(await q.get(next.id)).toMatchObject({ state: 'queue', attemptsMade: 1 });
  await (await fresh.claim({ types: ['t'] }))!.release();
  const [once] = add(await q.enqueue('o', 'once', { attempts: 1 }));
  await (await q.claim({ types: ['o'] }))!.fail(new Error(big('e')));
  await q.retry(once!);
  const [gone] = add(await q.enqueue('t', 'to remove'));
  removed.add(gone!);
  const writes = await Promise.all([
    dirq(['enqueue', dir, 't', '"cli"']),
    dirq(['rm', dir, gone!]),
    dirq(['retry', dir, later!]), // a delayed job: runs now
    dirq(['purge', dir, 'done', '--older-than', '7d']),
  ]);
  const cliId = expectOk(writes[0], 'enqueue').trimEnd();
  add({ id: cliId, duplicate: false });
  for (const [i, run] of writes.entries()) expectOk(run, `dirq write ${i}`);
  expect(writes[3].stdout).toMatch(/purged 0 jobs/);
  const reads2 = await Promise.all([dirq(['ls', dir]), dirq(['stats', dir]), dirq(['show', dir, cliId])]);
  for (const [i, run] of reads2.entries()) expectOk(run, `dirq read ${i}`);
  expect((await q.recover()).warnings).toEqual([]);
  const pool = newPool({
    processor: async (job) => ({ ok: job.data ?? null, big: big('p') }),
    watch: false,
    pollInterval: 50,
  });
  await pool.start();
  expect(await pool.onDrained({ within: 0 })).toMatchObject({ retries: [], scheduled: [] });
  await pool.close();
  for (const handle of [q, fast, fresh]) await handle.close();
  const end = census(dir);
  const expected = [...acked].filter((id) => !removed.has(id)).sort();
  expect([...end.keys()].sort()).toEqual(expected);
  for (const id of expected) expect(end.get(id), id).toEqual(['done']);
  expect([names('tmp'), names('active'), names('keys')]).toEqual([[], [], []]);
  const checked = JSON.parse(expectOk(await dirq(['fsck', dir, '--repair', '--json']), 'fsck')) as {
    findings: unknown[];
    unrepaired: number;
  };
  expect(checked).toMatchObject({ findings: [], unrepaired: 0 });
}

/**
 * A dead worker's claim whose file ends just short of a page: its revoked
 * line does not fit, so the sweep cannot take it back. It leaves the claim
 * as it was, does the rest of its work, says the disk is full, and takes the
 * claim back once there is room.
 */
async function revokeThatDoesNotFit({ dir, disk, open }: Mounted): Promise<void> {
  const q = await open({ maintenance: true }); // a queue that has swept: its clock and lock files exist
  const probe = await q.enqueue('t', '');
  const overhead = fs.statSync(path.join(dir, 'queue', probe.id)).size;
  await q.remove(probe.id);
  const { id } = await q.enqueue('t', 'x'.repeat(PAGE - 40 - overhead)); // 40 bytes short of a page
  const file = path.join(dir, 'queue', id);
  expect(fs.statSync(file).size).toBe(PAGE - 40);
  const pid = await deadPid();
  const owner = `${hostToken()}.${pid}.dead`;
  fs.writeFileSync(
    path.join(dir, 'workers', owner),
    JSON.stringify({ host: os.hostname(), bootId: bootId(), pid, startTime: '1' }),
  );
  const claim = path.join(dir, 'active', `${id}@${owner}.0`);
  fs.renameSync(file, claim);
  const before = fs.readFileSync(claim);
  const due = await q.enqueue('t', 'due', { delay: 3600_000 });
  const [delayed] = fs.readdirSync(path.join(dir, 'delayed'));
  fs.renameSync(
    path.join(dir, 'delayed', delayed!),
    path.join(dir, 'delayed', delayed!.replace(/^\d{16}/, '0000000000000001')),
  ); // due now
  disk.fill();
  const error = await q.recover().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DirQueueError);
  expect(error).toMatchObject({ code: 'ENOSPC', message: expect.stringMatching(FULL) });
  expect(fs.readFileSync(claim), 'the claim is left as it was').toEqual(before);
  expect(fs.readdirSync(path.join(dir, 'queue')), 'the rest of the sweep ran').toEqual([due.id]);
  expect([duplicates(dir), fs.readdirSync(path.join(dir, 'tmp'))]).toEqual([[], []]);
  disk.free();
  expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'crashed', to: 'queue' })]);
  for (let job = await q.claim(); job; job = await q.claim()) await job.complete();
  await q.close();
  expect(fs.readdirSync(path.join(dir, 'done')).sort()).toEqual([id, due.id].sort());
  expect((await fsck(dir)).findings).toEqual([]);
}

describe('a full disk (a real tmpfs, filled)', () => {
  it(
    'no bytes left: every operation works or says the disk is full, and nothing is lost',
    () => onTmpfs('bytes', everyOperation),
    30_000,
  );
  it('no inodes left (bytes remain): every operation works or says the disk is full, and nothing is lost', () =>
    onTmpfs('inodes', everyOperation));
  it('a dead claim whose revoked line does not fit stays as it was until there is room', () =>
    onTmpfs('bytes', revokeThatDoesNotFit));
});
