/**
 * I4 nothing lost and I6 no daemon, with real processes: SIGKILL, SIGSTOP,
 * skewed clocks (faketime), pid reuse, EPERM, and overlapping sweeps.
 * Staleness is produced by backdating heartbeat mtimes, never by waiting.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { parseJobFile } from '../dist/store/envelope.js';
import { Layout } from '../dist/store/layout.js';
import { sweep } from '../dist/maintenance/sweep.js';
import { bootId, processStartTime } from '../dist/store/liveness.js';
import { hostToken, NameMaker } from '../dist/store/names.js';
import { lockSweeps } from '../dist/maintenance/sweep-lock.js';
import { duplicates } from './support/census.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { resultLine } from './support/fake.js';
import { systemError } from './support/faults.js';
import { deadPid, exited, openQueue, openToAll, spawnNode, tempDir, tempQueue, track } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const child = checkoutForOtherUsers().child; // a copy other users may read wherever the checkout is
const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();
const isRoot = process.getuid?.() === 0;

/** Spawn a child that claims one job and holds it until told "go". Resolves once it holds it. */
async function holder(
  dir: string,
  env: Record<string, string> = {},
  command: string[] = [],
): Promise<{ child: ChildProcess; id: string; owner: string }> {
  const args = [...command, process.execPath, child, 'hold', dir];
  const proc = track(
    spawn(args[0]!, args.slice(1), { stdio: ['pipe', 'pipe', 'inherit'], env: { ...process.env, ...env } }),
  );
  const line = await new Promise<string>((resolve, reject) => {
    let buffer = '';
    proc.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const found = buffer.split('\n').find((l) => l.startsWith('claimed '));
      if (found) resolve(found);
    });
    proc.once('exit', (code) => reject(new Error(`holder exited ${code}`)));
  });
  const id = line.split(' ')[1]!;
  const active = ls(dir, 'active').find((n) => n.startsWith(`${id}@`))!;
  const claim = active.slice(active.indexOf('@') + 1);
  return { child: proc, id, owner: claim.slice(0, claim.lastIndexOf('.')) };
}

function backdate(file: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  fs.utimesSync(file, then, then);
}

function output(proc: ChildProcess): Promise<string> {
  let text = '';
  proc.stdout!.on('data', (c: Buffer) => (text += c.toString()));
  return exited(proc).then(() => text);
}

describe('recovering claims (I4)', () => {
  it('a SIGKILLed worker on this host is noticed at the next sweep, its attempt counted', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    await q.enqueue('t', 'work', { attempts: 3 });
    const { child: worker, id } = await holder(dir);
    worker.kill('SIGKILL');
    await exited(worker);
    const report = await q.recover(); // no staleAfter wait: the pid is gone
    expect(report.recovered).toEqual([{ id, claim: expect.any(String), reason: 'crashed', to: 'queue' }]);
    const job = (await q.claim())!;
    expect(job.id).toBe(id);
    expect(job.attempt).toBe(2);
    await job.complete('ok');
    const info = await q.get(id);
    expect(info.errors).toEqual([{ message: 'the worker holding the job died', code: 'ECRASHED' }]);
    expect(info.history.map((e) => e.event)).toEqual(['revoked', 'result']);
    expect(duplicates(dir)).toEqual([]);
    await q.close();
  });

  it('a running job cancelled and then its worker SIGKILLed: the sweep ends it in failed/ (ECANCELLED), never queue/', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    await q.enqueue('t', 'work', { attempts: 3 });
    const { child: worker, id } = await holder(dir);
    expect(await q.cancel(id)).toMatchObject({ id, state: 'active' });
    expect(fs.readdirSync(path.join(dir, 'cancel'))).toEqual([expect.stringMatching(new RegExp(`^${id}@`))]);
    worker.kill('SIGKILL');
    await exited(worker);
    const report = await q.recover();
    expect(report.recovered).toEqual([{ id, claim: expect.any(String), reason: 'crashed', to: 'failed' }]);
    expect([ls(dir, 'queue'), ls(dir, 'active'), ls(dir, 'failed')]).toEqual([[], [], [id]]);
    expect((await q.get(id)).errors.at(-1)).toMatchObject({ code: 'ECANCELLED' });
    expect(fs.readdirSync(path.join(dir, 'cancel'))).toEqual([]); // the request went with its claim
    expect(duplicates(dir)).toEqual([]);
    await q.close();
  });

  it('a crashed job whose attempts are used up goes to failed/ with the reason', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t', 'once', { attempts: 1 });
    const { child: worker } = await holder(dir);
    worker.kill('SIGKILL');
    await exited(worker);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, to: 'failed' })]);
    await expect(q.waitFor(id)).rejects.toMatchObject({ code: 'EJOBFAILED', message: expect.stringContaining('died') });
    await q.close();
  });

  it('leaves a live worker alone, and lets it complete', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t');
    const { child: worker } = await holder(dir);
    expect((await q.recover()).recovered).toEqual([]);
    worker.stdin!.write('go\n');
    expect(await output(worker)).toContain('completed');
    expect(await q.waitFor(id)).toMatch(/^result of \d+$/);
    await q.close();
  });

  it('fences a SIGSTOPped worker: recovered after staleAfter, its late complete refused, the recoverer result stands', async () => {
    const { dir, q } = await tempQueue({ maintenance: false, staleAfter: 5000 });
    const { id } = await q.enqueue('t');
    const { child: worker, owner } = await holder(dir, { DIRQ_STALE_AFTER: '5000' });
    worker.kill('SIGSTOP');
    backdate(path.join(dir, 'workers', owner), 6000); // silent for longer than staleAfter
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled', to: 'queue' })]);
    const job = (await q.claim())!;
    expect(job.attempt).toBe(2);
    await job.complete('recoverer');
    const said = output(worker);
    worker.kill('SIGCONT');
    worker.stdin!.write('go\n');
    expect(await said).toContain('refused ECOMPROMISED');
    expect(await q.waitFor(id)).toBe('recoverer');
    const text = fs.readFileSync(path.join(dir, 'done', id), 'utf8');
    expect(parseJobFile(text).result).toEqual({ value: 'recoverer' });
    expect(ls(dir, 'active')).toEqual([]);
    await q.close();
  });

  it('a worker frozen for real past staleAfter writes nothing into the job it lost once resumed', async () => {
    // about time: the worker's own clock must see it was frozen, so it is frozen for real (staleAfter 600 ms)
    const { dir, q } = await tempQueue({ maintenance: false, staleAfter: 600 });
    const { id } = await q.enqueue('t');
    const { child: worker } = await holder(dir, { DIRQ_STALE_AFTER: '600' });
    worker.kill('SIGSTOP');
    await until(async () => (await q.recover()).recovered.length === 1, 'the frozen claim to go stale');
    const job = (await q.claim())!;
    await job.complete('recoverer');
    const before = fs.readFileSync(path.join(dir, 'done', id), 'utf8');
    const said = output(worker);
    worker.kill('SIGCONT');
    worker.stdin!.write('go\n');
    expect(await said).toContain('refused ECOMPROMISED');
    expect(fs.readFileSync(path.join(dir, 'done', id), 'utf8')).toBe(before); // not even a voided line
    expect(await q.waitFor(id)).toBe('recoverer');
    await q.close();
  });

  it('a live worker takes back its own job staleAfter past its timeout, though it keeps appending progress', async () => {
    // the claim's run time is the holder's own monotonic clock, not a file time: this test waits ~0.2 s
    const { dir, q } = await tempQueue({ maintenance: false, staleAfter: 100 });
    const { id } = await q.enqueue('t', null, { timeout: 50 });
    const { child: worker, owner } = await holder(dir, { DIRQ_STALE_AFTER: '100', DIRQ_HOLD_PROGRESS: '10' });
    await until(async () => (await q.get(id)).state === 'queue', 'the holder to take back its overdue job');
    expect((await q.get(id)).errors).toEqual([expect.objectContaining({ code: 'EJOBTIMEOUT' })]);
    const events = parseJobFile(fs.readFileSync(path.join(dir, 'queue', id), 'utf8')).events;
    expect(events.filter((e) => e.event === 'progress').length).toBeGreaterThan(0);
    expect(events.find((e) => e.event === 'revoked')).toMatchObject({
      reason: 'timeout',
      by: expect.stringMatching(new RegExp(`^${owner.replace(/\./g, '\\.')}\\.`)),
    });
    worker.stdin!.write('go\n');
    expect(await output(worker)).toContain('refused ECOMPROMISED');
    expect(ls(dir, 'active')).toEqual([]);
    const again = (await q.claim())!;
    expect(again.attempt).toBe(2);
    await again.complete();
    await q.close();
  });
});

describe('judging liveness', () => {
  /** Fake a claim by `pid` on this host with a heartbeat of the given identity. */
  async function fakeClaim(
    dir: string,
    pid: number,
    startTime: string,
    host = os.hostname(),
    nonce = 'fake',
  ): Promise<string> {
    const q = await openQueue(dir, { maintenance: false });
    const { id } = await q.enqueue('t', 'x');
    await q.close();
    const owner = `${hostToken(host)}.${pid}.${nonce}`;
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
    fs.writeFileSync(
      path.join(dir, 'workers', owner),
      JSON.stringify({ host, bootId: bootId(), pid, startTime, started: '' }),
    );
    return id;
  }

  it("a dead claim whose file is also at its ending's name (a rename a power cut left half done) stays ended there", async () => {
    const dir = tempDir();
    const claimName = (id: string): string => ls(dir, 'active').find((n) => n.startsWith(id))!;
    // completed: the result line is in the one file, at active/ and at done/ (btrfs left this after cuts)
    const completed = await fakeClaim(dir, 1, 'not-the-start-time', os.hostname(), 'completed');
    const claim = claimName(completed);
    fs.appendFileSync(path.join(dir, 'active', claim), resultLine(claim.slice(claim.indexOf('@') + 1)));
    fs.linkSync(path.join(dir, 'active', claim), path.join(dir, 'done', completed));
    // released: at active/ and back in queue/
    const released = await fakeClaim(dir, 1, 'not-the-start-time', os.hostname(), 'released');
    fs.linkSync(path.join(dir, 'active', claimName(released)), path.join(dir, 'queue', released));
    // the control: a dead claim with no other name is taken back
    const crashed = await fakeClaim(dir, 1, 'not-the-start-time', os.hostname(), 'crashed');
    const q = await openQueue(dir, { maintenance: false });
    const report = await q.recover();
    expect(report.recovered).toEqual([expect.objectContaining({ id: crashed, reason: 'crashed', to: 'queue' })]);
    expect(ls(dir, 'active')).toEqual([]);
    expect(duplicates(dir)).toEqual([]);
    const done = await q.get(completed);
    expect(done?.state).toBe('done');
    expect(done?.torn).toBeUndefined(); // its result stands: no revoked event voids it
    expect(ls(dir, 'queue').sort()).toEqual([crashed, released].sort());
    expect(fs.statSync(path.join(dir, 'queue', released)).nlink).toBe(1);
    await q.close();
  });

  it('a reused pid (same pid, other start time) is dead; the right start time is alive', async () => {
    const dir = tempDir();
    const reused = await fakeClaim(dir, process.pid, 'not-the-start-time');
    const q = await openQueue(dir, { maintenance: false });
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id: reused, reason: 'crashed' })]);
    const alive = await fakeClaim(dir, process.pid, processStartTime(process.pid)!);
    expect((await q.recover()).recovered).toEqual([]);
    expect((await q.get(alive)).state).toBe('active');
    await q.close();
  });

  it('EPERM from kill(pid, 0) means alive (a non-root judge of a root worker)', async () => {
    if (!isRoot) throw new Error('this test runs a judge as another user and needs root (CI runs as root)');
    const dir = tempDir();
    const id = await fakeClaim(dir, 1, processStartTime(1)!); // pid 1 belongs to root
    openToAll(dir);
    const dead = await fakeClaim(dir, 1, 'not-the-start-time', os.hostname(), 'dead'); // the control: a dead claim it may recover
    const deadFile = ls(dir, 'active').find((n) => n.startsWith(dead))!;
    fs.chownSync(path.join(dir, 'active', deadFile), 65534, 65534);
    const judge = spawnNode([child, 'recover', dir], { uid: 65534, gid: 65534 });
    const report = JSON.parse(await output(judge)) as { swept: boolean; recovered: { id: string }[] };
    expect(report).toMatchObject({ swept: true });
    expect(report.recovered.map((r) => r.id)).toEqual([dead]);
    expect(ls(dir, 'active')).toEqual([expect.stringContaining(id)]);
  });

  it("a sweeper that may not write a dead claim's file leaves it as it was, finishes the sweep, and says why", async () => {
    if (!isRoot) throw new Error('this test runs a sweeper as another user and needs root (CI runs as root)');
    const dir = tempDir();
    const id = await fakeClaim(dir, 1, 'not-the-start-time'); // dead, and its file is root's, mode 0644
    const claimed = ls(dir, 'active');
    const producer = await openQueue(dir, { maintenance: false });
    const { id: due } = await producer.enqueue('t', 'due', { delay: 3600_000 });
    await producer.close();
    const [delayed] = ls(dir, 'delayed') as [string]; // make it due long ago
    fs.renameSync(
      path.join(dir, 'delayed', delayed),
      path.join(dir, 'delayed', delayed.replace(/^\d{16}/, '0000000000000001')),
    );
    openToAll(dir);
    const sweeper = spawnNode([child, 'recover', dir], { uid: 65534, gid: 65534 });
    const report = JSON.parse(await output(sweeper)) as { error: { code: string; message: string } };
    expect(report.error.code).toBe('EACCES');
    expect(report.error.message).toMatch(
      new RegExp(`could not take back 1 stale claim\\(s\\), first ${id.replace(/\./g, '\\.')}: .*group-shared`),
    );
    expect(ls(dir, 'active')).toEqual(claimed); // the claim as it was, no half-recovered copy
    expect(ls(dir, 'queue')).toEqual([due]); // the rest of the sweep ran: the due job was promoted
    const q = await openQueue(dir, { maintenance: false });
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'crashed', to: 'queue' })]);
    expect((await q.get(id)).attemptsMade).toBe(1);
    await q.close();
  });

  it('another host is judged by its heartbeat alone, in the filesystem clock', async () => {
    const dir = tempDir();
    const id = await fakeClaim(dir, 1, 'whatever', 'elsewhere.example.com');
    const q = await openQueue(dir, { maintenance: false, staleAfter: 5000 });
    expect((await q.recover()).recovered).toEqual([]);
    backdate(path.join(dir, 'workers', 'elsewhere.1.fake'), 6000);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled' })]);
    await q.close();
  });

  it('an owner whose heartbeat the disk fails to read (EIO) is not judged: its old claim stays, with a warning', async () => {
    const dir = tempDir();
    const id = await fakeClaim(dir, 1, 'whatever', 'elsewhere.example.com');
    const heartbeat = path.join(dir, 'workers', 'elsewhere.1.fake');
    const claim = path.join(dir, 'active', ls(dir, 'active')[0]!);
    const q = await openQueue(dir, { maintenance: false, staleAfter: 100 });
    // the claim is older than staleAfter: judged by its age, as a claim without a heartbeat is, it would be taken back
    await until(() => Date.now() - fs.lstatSync(claim).ctimeMs > 300, 'the claim to be older than staleAfter');
    const warnings: Error[] = [];
    q.on('warning', (error) => warnings.push(error));
    const open = fs.openSync.bind(fs);
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((file, ...rest) => {
      if (file === heartbeat) throw systemError('EIO', 'openSync', [file]);
      return open(file, ...rest);
    });
    try {
      fs.utimesSync(heartbeat, new Date(), new Date()); // its owner is alive: it beat just now
      expect((await q.recover()).recovered).toEqual([]);
    } finally {
      spy.mockRestore();
    }
    expect(ls(dir, 'active')).toEqual([path.basename(claim)]);
    await until(() => warnings.length > 0, 'the warning');
    expect(warnings[0]).toMatchObject({
      code: 'EIO',
      message: expect.stringMatching(/elsewhere\.1\.fake failed: an I\/O error.*claims are left alone/),
    });
    // readable again and silent past staleAfter: taken back as usual
    backdate(heartbeat, 6000);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled' })]);
    await q.close();
  });

  it.each([
    ['+60s', 'does not steal a live claim'],
    ['-60s', 'still recovers a dead claim'],
  ])('a judge whose clock is %s %s (faketime)', async (skew) => {
    if (!fs.existsSync('/usr/bin/faketime'))
      throw new Error('faketime is missing: apt-get install faketime (.ci/run does)');
    const { dir, q } = await tempQueue({ maintenance: false, staleAfter: 30_000 });
    await q.enqueue('t', 'live');
    const { child: worker, id: live } = await holder(dir, { DIRQ_STALE_AFTER: '30000' });
    const dead = await (async () => {
      const owner = 'otherhost.77.dead';
      const { id } = await q.enqueue('t', 'dead');
      fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
      fs.writeFileSync(path.join(dir, 'workers', owner), '{}');
      backdate(path.join(dir, 'workers', owner), 45_000); // silent for 45 s: dead by the filesystem clock
      return id;
    })();
    const skewed = track(
      spawn('faketime', ['-f', skew, process.execPath, child, 'recover', dir], {
        stdio: ['ignore', 'pipe', 'inherit'],
        env: { ...process.env, DIRQ_STALE_AFTER: '30000', FAKETIME_DONT_FAKE_MONOTONIC: '1' },
      }),
    );
    const clock = Number(execFileSync('faketime', ['-f', skew, 'date', '+%s'], { encoding: 'utf8' }));
    expect(Math.abs(clock - Date.now() / 1000 - (skew === '+60s' ? 60 : -60))).toBeLessThan(10); // the skew is real
    const report = JSON.parse(await output(skewed)) as { recovered: { id: string }[] };
    expect(report.recovered.map((r) => r.id)).toEqual([dead]);
    expect(ls(dir, 'active')).toEqual([expect.stringContaining(live)]);
    worker.stdin!.write('go\n');
    expect(await output(worker)).toContain('completed');
    await q.close();
  });
});

describe('maintenance without a daemon (I6)', () => {
  it('one sweeper at a time: a timer sweep skips while another holds the lock, recover() waits for it', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t', 'x');
    const owner = 'elsewhere.1.dead';
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
    fs.writeFileSync(path.join(dir, 'workers', owner), '{}');
    backdate(path.join(dir, 'workers', owner), 3600_000);
    const lock = (await lockSweeps(new Layout(dir), 'elsewhere.2.sweeper', 10_000))!;
    const settings = { ...q.options, durable: q.options.durable !== false, tmpMaxAge: 3600_000 };
    expect(await sweep(new Layout(dir), new NameMaker(), settings, false, [])).toMatchObject({
      swept: false,
      recovered: [],
    });
    expect(ls(dir, 'active')).toEqual([`${id}@${owner}.0`]);
    const waiting = q.recover();
    lock.release();
    expect(await waiting).toMatchObject({
      swept: true,
      recovered: [expect.objectContaining({ id, reason: 'stalled' })],
    });
    await q.close();
  });

  it('promotes due delayed jobs at open, when no worker ran at their time', async () => {
    const dir = tempDir();
    const producer = await openQueue(dir, { maintenance: false });
    const { id } = await producer.enqueue('t', 'x', { delay: 60_000 });
    await producer.close();
    const name = ls(dir, 'delayed')[0]!;
    const due = name.replace(/^\d{16}/, String((Date.now() - 1000) * 1000).padStart(16, '0')); // its time has come
    fs.renameSync(path.join(dir, 'delayed', name), path.join(dir, 'delayed', due));
    const opener = await openQueue(dir); // maintenance on: sweeps first
    expect(ls(dir, 'queue')).toEqual([id]);
    await opener.close();
  });

  it('prunes done/ by retention and cleans abandoned tmp/ files', async () => {
    const { dir, q } = await tempQueue({ maintenance: false, keepDone: 3600_000 });
    const { id: recent } = await q.enqueue('t');
    await (await q.claim())!.complete();
    const oldUs = (Date.now() - 3 * 3600_000) * 1000;
    const ended = `50-${oldUs}-old.t`; // ready 3 h ago, ended 2 h ago: pruned
    const endedLate = `50-${oldUs + 1}-late.t`; // ready 3 h ago, ended just now: kept
    for (const name of [ended, endedLate]) fs.writeFileSync(path.join(dir, 'done', name), `{}\n${resultLine()}`);
    backdate(path.join(dir, 'done', ended), 2 * 3600_000);
    backdate(path.join(dir, 'done', recent), 2 * 3600_000); // its id says it was ready recently: never stat'ed
    const abandoned = `${ended}.elsewhere.1.writer.tmp`; // a job temp (ID.OWNER.tmp): the only kind sweeps delete besides the library's dot files
    const fresh = `${endedLate}.elsewhere.1.writer.tmp`;
    fs.writeFileSync(path.join(dir, 'tmp', abandoned), 'half');
    backdate(path.join(dir, 'tmp', abandoned), 2 * 3600_000);
    fs.writeFileSync(path.join(dir, 'tmp', fresh), 'being written');
    const report = await q.recover();
    expect(report).toMatchObject({ swept: true, pruned: 1, tmpRemoved: 1 });
    expect(ls(dir, 'tmp')).toEqual([fresh]);
    expect(ls(dir, 'done')).toEqual([endedLate, recent].sort());
    await q.close();
  });

  it('several processes sweeping at once (no lock) lose nothing and move nothing twice', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    const dead = await deadPid();
    const owner = `${hostToken()}.${dead}.dead`;
    fs.writeFileSync(
      path.join(dir, 'workers', owner),
      JSON.stringify({ host: os.hostname(), bootId: bootId(), pid: dead, startTime: '1', started: '' }),
    );
    const refs = await q.enqueueMany(Array.from({ length: 200 }, (_, i) => ({ type: 't', data: i })));
    for (const [i, { id }] of refs.entries())
      fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.${i.toString(36)}`));
    const delayed = await q.enqueueMany(
      Array.from({ length: 200 }, (_, i) => ({ type: 'd', data: i, runAt: Date.now() + 60_000 })),
    );
    for (const name of ls(dir, 'delayed')) {
      fs.renameSync(
        path.join(dir, 'delayed', name),
        path.join(dir, 'delayed', name.replace(/^\d{16}/, '0000000000000001')),
      );
    }
    await q.close();
    const sweepers = Array.from({ length: 4 }, () =>
      spawnNode([child, 'sweep-unlocked', dir], { stdio: ['pipe', 'pipe', 'inherit'] }),
    );
    await Promise.all(sweepers.map((s) => lineFrom(s, 'ready')));
    const outputs = sweepers.map(output);
    for (const s of sweepers) s.stdin!.write('go\n');
    const reports = (await Promise.all(outputs)).map(
      (o) => JSON.parse(o.trim().split('\n').at(-1)!) as { recovered: { id: string }[]; promoted: number },
    );
    const recovered = reports.flatMap((r) => r.recovered.map((x) => x.id));
    expect(recovered.sort()).toEqual(refs.map((r) => r.id).sort()); // each exactly once across all sweepers
    expect(reports.reduce((n, r) => n + r.promoted, 0)).toBe(200);
    expect(duplicates(dir)).toEqual([]);
    expect(ls(dir, 'active')).toEqual([]);
    expect(ls(dir, 'queue')).toHaveLength(400);
    for (const { id } of refs) {
      const record = parseJobFile(fs.readFileSync(path.join(dir, 'queue', id), 'utf8'));
      expect(record.events.filter((e) => e.event === 'revoked')).toHaveLength(1);
    }
    expect(delayed).toHaveLength(200);
  });
});
