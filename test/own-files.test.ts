/**
 * Nothing outside the queue is ever touched (defects issue S1-S3, D4, D5,
 * D11): every name the library reads from a file passes the codec before it
 * becomes a path, and every non-job file it opens or replaces (settings,
 * workers/.clock, the sweep lock, heartbeats, counters, keys/, metrics
 * output) is never followed through a link, never blocks on a FIFO, and is
 * checked to be the kind of file it should be.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsck } from '../dist/maintenance/fsck.js';
import { DirQueueError, Queue } from '../dist/index.js';
import { Layout } from '../dist/store/layout.js';
import { bootId } from '../dist/store/liveness.js';
import { sweep } from '../dist/maintenance/sweep.js';
import { hostToken, NameMaker } from '../dist/store/names.js';
import { dirq } from './support/cli.js';
import { backdate, claimByDeadWorker, deadHeartbeat } from './support/fake.js';
import { deadPid, exited, openQueue, spawnNode, tempDir, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const ls = (dir: string, sub: string): string[] => fs.readdirSync(path.join(dir, sub)).sort();
const HOUR = 3600_000;

/** A queue in `base`/q and, beside it, a file and a directory that must never change. */
async function queueWithVictims(
  options: Parameters<typeof openQueue>[1] = {},
): Promise<{ dir: string; q: Queue; victim: string; victimDir: string }> {
  const base = tempDir();
  const dir = path.join(base, 'q');
  const q = await openQueue(dir, { maintenance: false, ...options });
  const victim = path.join(base, 'victim.txt');
  fs.writeFileSync(victim, 'root:secret-hash:0:0\n');
  const victimDir = path.join(base, 'outside');
  fs.mkdirSync(victimDir, { mode: 0o700 });
  fs.chmodSync(victimDir, 0o700);
  return { dir, q, victim, victimDir };
}

/** One sweep as a timer runs it: skipped when the lock is held. */
function sweepOnce(dir: string, staleAfter: number): ReturnType<typeof sweep> {
  return sweep(
    new Layout(dir),
    new NameMaker(),
    { staleAfter, attempts: 3, maxJobBytes: 1 << 20, keepDone: Infinity, tmpMaxAge: HOUR },
    false,
    [],
  );
}

/** Resolves with how a child ended; a child still running after `ms` is killed and reported as hung. */
async function endOf(child: ReturnType<typeof spawnNode>, ms: number): Promise<number | NodeJS.Signals | 'hung'> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), ms)));
  const how = await Promise.race([exited(child), hung]);
  clearTimeout(timer);
  if (how === 'hung') {
    child.kill('SIGKILL');
    await exited(child);
  }
  return how;
}

describe('S1: names read from files pass the codec before they become paths', () => {
  it('a workers/totals whose "absorbed" names ../../victim.txt and ../queue/ID deletes neither at the next sweep', async () => {
    const { dir, q, victim } = await queueWithVictims();
    const { id } = await q.enqueue('t', 'keep me');
    const delta = `totals.${q.owner}.0`; // a real delta the base absorbed: still cleaned up
    fs.writeFileSync(path.join(dir, 'workers', delta), '{"counts":{"t":{"enqueued":1}}}\n');
    fs.writeFileSync(
      path.join(dir, 'workers', 'totals'),
      `${JSON.stringify({ gen: 3, counts: { t: { enqueued: 1 } }, absorbed: ['../../victim.txt', `../queue/${id}`, delta] })}\n`,
    );
    fs.writeFileSync(path.join(dir, 'workers', `totals.${q.owner}.1`), '{"counts":{"t":{"completed":1}}}\n'); // something to fold
    await q.recover();
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    expect(ls(dir, 'queue')).toEqual([id]);
    expect(fs.existsSync(path.join(dir, 'workers', delta))).toBe(false);
    expect(await q.totals()).toEqual({ t: { enqueued: 2, completed: 1 } });
    await q.close();
  });

  it('a workers/totals that is a link or a FIFO is never followed or blocked on: a fold replaces the name itself', async () => {
    for (const make of ['link', 'fifo'] as const) {
      const { dir, q, victim } = await queueWithVictims();
      const base = path.join(dir, 'workers', 'totals');
      if (make === 'link') fs.symlinkSync(victim, base);
      else execFileSync('mkfifo', [base]);
      fs.writeFileSync(path.join(dir, 'workers', `totals.${q.owner}.0`), '{"counts":{"t":{"completed":2}}}\n');
      await q.recover();
      await q.recover(); // the first made room for a base (the bad one was moved aside), the second folds
      expect(fs.readFileSync(victim, 'utf8'), make).toBe('root:secret-hash:0:0\n');
      expect(fs.lstatSync(base).isFile(), make).toBe(true);
      expect(await q.totals(), make).toEqual({ t: { completed: 2 } });
      await q.close();
    }
  });

  it('a heartbeat that is a link or a FIFO is never followed or blocked on: its fresh claims are judged by their own age, and kept', async () => {
    const { dir, q, victim } = await queueWithVictims();
    const ids = [(await q.enqueue('t', 1)).id, (await q.enqueue('t', 2)).id];
    const owners = ['elsewhere.1.link', 'elsewhere.1.fifo'];
    fs.symlinkSync(victim, path.join(dir, 'workers', owners[0]!));
    execFileSync('mkfifo', [path.join(dir, 'workers', owners[1]!)]);
    for (const [i, id] of ids.entries())
      fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owners[i]}.0`));
    // no heartbeat to read: each claim is judged by its ctime (the rename into active/), fresh here
    expect(await q.recover()).toMatchObject({ swept: true, recovered: [], heartbeatsRemoved: 0 });
    expect(ls(dir, 'active')).toHaveLength(2);
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    await q.close();
  });

  it('a heartbeat whose pid is not a process id (a negative group id) is not judged dead at once', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('t');
    const owner = `${hostToken()}.99999.grp`;
    // kill(-99999, 0) is ESRCH (no such process group): read as a pid, it made a live worker look crashed
    fs.writeFileSync(
      path.join(dir, 'workers', owner),
      JSON.stringify({ host: os.hostname(), bootId: bootId(), pid: -99999, startTime: '1', started: '' }),
    );
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
    expect((await q.recover()).recovered).toEqual([]);
    expect(ls(dir, 'active')).toEqual([`${id}@${owner}.0`]);
    await q.close();
  });
});

describe('S2/S3: settings and the layout are never followed through a link', () => {
  it('fsck --repair replaces a symlinked dirqueue.json itself, never the file it points to', async () => {
    const { dir, q, victim } = await queueWithVictims();
    await q.close();
    fs.rmSync(path.join(dir, 'dirqueue.json'));
    fs.symlinkSync(victim, path.join(dir, 'dirqueue.json'));
    const report = await fsck(dir, { repair: true });
    expect(report.findings).toEqual([
      expect.objectContaining({ kind: 'settings', repaired: true, problem: expect.stringMatching(/symbolic link/) }),
    ]);
    expect(report.findings[0]!.problem).not.toContain('secret');
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    expect(fs.lstatSync(path.join(dir, 'dirqueue.json')).isFile()).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({ format: 'dirqueue' });
    expect(ls(dir, 'tmp')).toEqual([]);
  });

  it('opening a queue whose dirqueue.json is a link refuses it, saying so, without reading the target', async () => {
    const { dir, q, victim } = await queueWithVictims();
    await q.close();
    fs.rmSync(path.join(dir, 'dirqueue.json'));
    fs.symlinkSync(victim, path.join(dir, 'dirqueue.json'));
    const error = await Queue.open(dir, { create: false }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(DirQueueError);
    expect(error).toMatchObject({
      code: 'ENOTQUEUE',
      message: expect.stringMatching(/is a symbolic link.*never follows/),
    });
    expect((error as Error).message).not.toContain('secret');
  });

  it('dirq init --mode 0660 on a queue whose keys/ is a link refuses, and chmods and rewrites nothing', async () => {
    const { dir, q, victimDir } = await queueWithVictims();
    await q.close();
    const settings = fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8');
    fs.rmdirSync(path.join(dir, 'keys'));
    fs.symlinkSync(victimDir, path.join(dir, 'keys'));
    const run = await dirq(['init', dir, '--mode', '0660']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(
      /keys is a symbolic link, not a directory: dirqueue never follows symbolic links inside a queue/,
    );
    expect(fs.statSync(victimDir).mode & 0o7777).toBe(0o700);
    expect(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8')).toBe(settings);
  });

  it('dirq init --mode 0660 on a queue whose dirqueue.json is a link leaves the target as it was', async () => {
    const { dir, q, victim } = await queueWithVictims();
    await q.close();
    const real = path.join(path.dirname(victim), 'settings-elsewhere.json');
    fs.renameSync(path.join(dir, 'dirqueue.json'), real);
    const before = fs.readFileSync(real, 'utf8');
    fs.symlinkSync(real, path.join(dir, 'dirqueue.json'));
    const run = await dirq(['init', dir, '--mode', '0660']);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/dirqueue\.json is a symbolic link/);
    expect(fs.readFileSync(real, 'utf8')).toBe(before);
    expect(fs.lstatSync(path.join(dir, 'dirqueue.json')).isSymbolicLink()).toBe(true);
  });

  it('a queue whose tmp/ is a link to a directory elsewhere does not open, so no job is written there', async () => {
    const { dir, q, victimDir } = await queueWithVictims();
    await q.close();
    fs.rmdirSync(path.join(dir, 'tmp'));
    fs.symlinkSync(victimDir, path.join(dir, 'tmp'));
    await expect(Queue.open(dir, { create: false })).rejects.toMatchObject({
      code: 'EBADFILE',
      message: expect.stringMatching(/tmp is a symbolic link.*dirq fsck/),
    });
    expect(fs.readdirSync(victimDir)).toEqual([]);
  });

  it('dirq metrics --output refuses a symbolic link instead of writing through it', async () => {
    const { dir, q, victim } = await queueWithVictims();
    await q.close();
    const out = path.join(path.dirname(victim), 'metrics.prom');
    fs.symlinkSync(victim, out);
    const run = await dirq(['metrics', dir, '--output', out]);
    expect(run.code).not.toBe(0);
    expect(run.stderr).toMatch(/metrics\.prom is a symbolic link, not a regular file/);
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    const plain = path.join(path.dirname(victim), 'plain.prom');
    expect((await dirq(['metrics', dir, '--output', plain])).code).toBe(0);
    expect(fs.readFileSync(plain, 'utf8')).toMatch(/^# HELP dirqueue_jobs/);
    expect(fs.readdirSync(path.dirname(victim)).filter((n) => n.startsWith('.'))).toEqual([]); // no temp file left
  });
});

describe('D4: a FIFO where a settings file belongs never hangs a command', () => {
  it('dirq ls on a queue whose dirqueue.json is a FIFO ends at once with a reason', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    await q.close();
    fs.rmSync(path.join(dir, 'dirqueue.json'));
    execFileSync('mkfifo', [path.join(dir, 'dirqueue.json')]);
    const { CLI } = await import('./support/cli.js');
    const child = spawnNode([CLI, 'ls', dir]);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    expect(await endOf(child, 20_000)).toBe(1); // before: blocked in open(2) forever
    expect(stderr).toMatch(/dirqueue\.json is a FIFO/);
  });
});

describe('D5: workers/.clock that is not a regular file', () => {
  for (const [kind, make] of [
    ['a FIFO', (p: string) => execFileSync('mkfifo', [p])],
    ['a directory', (p: string) => fs.mkdirSync(p)],
    ['a symbolic link', (p: string) => fs.symlinkSync('/etc/hostname', p)],
  ] as const) {
    it(`${kind}: sweeps still recover a dead worker's jobs, with a warning, and fsck --repair removes it`, async () => {
      const { dir, q } = await tempQueue({ maintenance: false });
      const { id } = await q.enqueue('t');
      claimByDeadWorker(dir, id);
      const clock = path.join(dir, 'workers', '.clock');
      fs.rmSync(clock, { force: true });
      make(clock);
      const report = await q.recover();
      expect(report.recovered).toEqual([expect.objectContaining({ id, reason: 'crashed', to: 'queue' })]);
      expect(report.warnings).toEqual([
        expect.objectContaining({ code: 'EBADFILE', message: expect.stringContaining(`.clock is ${kind}`) }),
      ]);
      expect(ls(dir, 'tmp')).toEqual([]); // the scratch clock is gone
      await q.close();
      const check = await fsck(dir);
      expect(check.findings).toEqual([
        expect.objectContaining({ kind: 'stale-helper', path: 'workers/.clock', repaired: false }),
      ]);
      expect((await fsck(dir, { repair: true })).findings).toEqual([
        expect.objectContaining({ path: 'workers/.clock', repaired: true }),
      ]);
      expect(fs.existsSync(clock)).toBe(false);
      expect(fs.readFileSync('/etc/hostname', 'utf8').length).toBeGreaterThan(0);
    });
  }

  it('a timed sweep gives the problem as a warning event', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    await q.close();
    execFileSync('mkfifo', [path.join(dir, 'workers', '.clock')]);
    const opened = await openQueue(dir, { sweepInterval: 20 });
    const warning = await new Promise<Error>((resolve) => opened.once('warning', resolve));
    expect(warning).toMatchObject({ code: 'EBADFILE' });
    await opened.close();
  });
});

describe('the maintenance lock (workers/.lock)', () => {
  it('a stale lock (older than staleAfter/2 in the filesystem clock) is taken over; a lock that is not a file is moved aside', async () => {
    const { dir, q, victim } = await queueWithVictims({ staleAfter: 4000 });
    const lock = path.join(dir, 'workers', '.lock');
    fs.writeFileSync(lock, 'dead.1.sweeper\n');
    backdate(lock, 2500);
    expect(await q.recover()).toMatchObject({ swept: true });
    expect(fs.existsSync(lock)).toBe(false);
    fs.symlinkSync(victim, lock);
    expect(await q.recover()).toMatchObject({ swept: true });
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    expect(ls(dir, 'workers').filter((n) => n.startsWith('.lock'))).toEqual([]);
    await q.close();
  });

  it('a lock left by a sweeper of this host whose process is gone is taken over at once, fresh as it is', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const lock = path.join(dir, 'workers', '.lock');
    const dead = await deadPid();
    fs.writeFileSync(
      lock,
      `${JSON.stringify({ owner: `${hostToken()}.${dead}.gone`, host: os.hostname(), bootId: bootId(), pid: dead, startTime: '1', started: '' })}\n`,
    );
    const timerSweep = await sweepOnce(dir, q.options.staleAfter);
    expect(timerSweep).toMatchObject({ swept: true }); // a timer's sweep does not wait: it took the lock over
    expect(fs.existsSync(lock)).toBe(false);
    await q.close();
  });
});

describe('D11: heartbeats and keys left by crashes', () => {
  it('a sweep deletes heartbeats of workers known dead or long silent that hold nothing, and keeps the others', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const beat = (name: string): string => path.join(dir, 'workers', name);
    const deadIdle = deadHeartbeat(dir, 'idle');
    const { id } = await q.enqueue('t');
    const deadHolding = claimByDeadWorker(dir, id); // its claim is taken back first, then it holds nothing
    const far = (nonce: string, ageMs: number): string => {
      const name = `elsewhere.4242.${nonce}`;
      fs.writeFileSync(
        beat(name),
        JSON.stringify({ host: 'elsewhere', bootId: 'b', pid: 4242, startTime: '1', started: '' }),
      );
      backdate(beat(name), ageMs);
      return name;
    };
    const silent = far('silent', 2 * HOUR);
    const fresh = far('fresh', 0);
    const writing = far('writing', 2 * HOUR);
    fs.writeFileSync(path.join(dir, 'tmp', `50-1763830000000000-w.t.${writing}.tmp`), '{}\n'); // a tmp/ file still names it
    const report = await q.recover();
    expect(report.recovered.map((r) => r.id)).toEqual([id]);
    expect(report.heartbeatsRemoved).toBe(3);
    for (const gone of [deadIdle, deadHolding, silent]) expect(fs.existsSync(beat(gone)), gone).toBe(false);
    for (const kept of [fresh, writing]) expect(fs.existsSync(beat(kept)), kept).toBe(true);
    await q.close();
  });

  it('a worker whose heartbeat a sweep deleted (stopped past the silence bound) makes it again', async () => {
    const { dir, q } = await tempQueue({ maintenance: false, staleAfter: 200 });
    expect(await q.claim()).toBeUndefined(); // starts the heartbeat
    const mine = path.join(dir, 'workers', q.owner);
    fs.unlinkSync(mine);
    await until(() => fs.existsSync(mine), 'the heartbeat to be made again');
    await q.close();
    expect(fs.existsSync(mine)).toBe(false);
  });

  for (const [kind, make] of [
    ['a regular file', (p: string) => fs.writeFileSync(p, 'mine')],
    ['a directory', (p: string) => fs.mkdirSync(p)],
  ] as const) {
    it(`a keys/ entry that is ${kind} gives a typed error saying what to do, and is left alone`, async () => {
      const { dir, q } = await tempQueue({ maintenance: false });
      const entry = path.join(dir, 'keys', 'k');
      make(entry);
      const error = await q.enqueue('t', 1, { key: 'k' }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(DirQueueError);
      expect(error).toMatchObject({
        code: 'EBADFILE',
        message: expect.stringMatching(new RegExp(`keys/k is ${kind}, not a unique key.*move it out of`)),
      });
      expect(fs.existsSync(entry)).toBe(true);
      expect(ls(dir, 'queue')).toEqual([]);
      expect(ls(dir, 'tmp')).toEqual([]);
      expect((await q.enqueue('t', 2, { key: 'other' })).duplicate).toBe(false);
      await q.close();
    });
  }

  it('a key whose link points outside the queue is a broken key: taken over, its target untouched', async () => {
    const { dir, q, victim } = await queueWithVictims();
    fs.symlinkSync(path.relative(path.join(dir, 'keys'), victim), path.join(dir, 'keys', 'k'));
    const ref = await q.enqueue('t', 1, { key: 'k' });
    expect(ref.duplicate).toBe(false);
    expect(fs.readlinkSync(path.join(dir, 'keys', 'k'))).toBe(ref.id);
    expect(fs.readFileSync(victim, 'utf8')).toBe('root:secret-hash:0:0\n');
    await q.close();
  });
});

describe('a job file replaced by something else under its name (store/open.ts)', () => {
  /** A file at `dir`/active/NAME of each kind an outsider could put there, and what appending must say of it. */
  function kinds(dir: string): { name: string; make: (file: string) => void; says: RegExp }[] {
    const outside = path.join(dir, 'outside.txt');
    fs.writeFileSync(outside, 'not a job\n');
    return [
      { name: 'a FIFO', make: (file) => execFileSync('mkfifo', [file]), says: /is a FIFO, not a job file/ },
      { name: 'a link', make: (file) => fs.symlinkSync(outside, file), says: /is a symbolic link, not a job file/ },
      { name: 'a directory', make: (file) => fs.mkdirSync(file), says: /is a directory, not a job file/ },
    ];
  }

  it('appendLine and truncateFile refuse a FIFO, a link or a directory with EBADFILE, never blocking or following; a job file with another name is still appended to', async () => {
    const { appendLine, truncateFile } = await import('../dist/store/files.js');
    const dir = tempDir();
    for (const { name, make, says } of kinds(dir)) {
      const file = path.join(dir, `job-${name.replace(/ /g, '-')}`);
      make(file);
      expect(() => appendLine(file, '{"event":"x"}'), name).toThrow(
        expect.objectContaining({ code: 'EBADFILE', message: expect.stringMatching(says) }),
      );
      expect(() => truncateFile(file, 0), name).toThrow(expect.objectContaining({ code: 'EBADFILE' }));
    }
    expect(fs.readFileSync(path.join(dir, 'outside.txt'), 'utf8')).toBe('not a job\n'); // the link's target is as it was
    expect(appendLine(path.join(dir, 'gone'), '{}')).toBeUndefined(); // a claim taken back meanwhile
    expect(() => truncateFile(path.join(dir, 'gone'), 0)).toThrow(expect.objectContaining({ code: 'ENOENT' }));
    const job = path.join(dir, 'job');
    fs.writeFileSync(job, '{"v":1}\n');
    fs.linkSync(job, path.join(dir, 'job-by-ln')); // outsiders enqueue with ln(1) too: the job stays a job
    expect(appendLine(job, '{"event":"y"}\n')).toMatchObject({ endsWithNewline: true });
    expect(fs.readFileSync(path.join(dir, 'job-by-ln'), 'utf8')).toBe('{"v":1}\n{"event":"y"}\n');
  });
});
