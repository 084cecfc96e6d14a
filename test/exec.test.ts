/**
 * Any executable as a worker: one process per job (stdin, environment,
 * stdout as the result, stderr as the error) and persistent workers that
 * speak the line protocol of FORMAT.md, "Workers in any language", in bash
 * and Python. A timeout, a cancel and a closing pool leave no process of a
 * job behind; a persistent worker that dies or writes garbage fails only its
 * jobs. The workers of FORMAT.md run as FORMAT.md prints them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { JobInfo, Pool, PoolOptions, Queue } from '../dist/index.js';
import { dirq } from './support/cli.js';
import { startPool } from './support/pools.js';
import { tempDir, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const fixture = (name: string): string => new URL(`./fixtures/exec/${name}`, import.meta.url).pathname;
const JOB_SH = fixture('job.sh');
const JOB_PY = fixture('job.py');
const PERSISTENT_PY = fixture('persistent.py');

/** A process that is there and not a zombie (a zombie has ended; only its parent has not reaped it yet). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

/** Every live process whose command line holds `text`. */
function processesWith(text: string): number[] {
  const found: number[] = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      if (fs.readFileSync(`/proc/${name}/cmdline`, 'utf8').includes(text) && running(Number(name)))
        found.push(Number(name));
    } catch {
      // it ended while we looked
    }
  }
  return found;
}

/**
 * The pid of the child that job.sh's sleeper or deaf job started, once it has written it and the child has
 * become `dirq-<type>-<id>`: job.sh writes the pid just after the fork, before the child's `exec -a`, so a
 * loaded machine can show the pid with bash's command line for a while. `named: false` for a job whose timeout
 * may stop the child before it gets there.
 */
async function sleeperPid(q: Queue, id: string, { named = true } = {}): Promise<number> {
  const file = path.join(q.dir, `sleeper.${id}.pid`);
  await until(() => fs.existsSync(file) && fs.readFileSync(file, 'utf8').endsWith('\n'), 'the sleeper to start');
  const pid = Number(fs.readFileSync(file, 'utf8'));
  if (named) await until(() => processesWith(`-${id}`).includes(pid), 'the sleeper to exec', 10_000);
  return pid;
}

async function failure(q: Queue, id: string): Promise<JobInfo> {
  await expect(q.waitFor(id, { timeout: 30_000 })).rejects.toMatchObject({ code: 'EJOBFAILED' });
  return q.get(id);
}

function execPool(dir: string, exec: string | string[], options: Partial<PoolOptions> = {}): Promise<Pool> {
  return startPool(dir, { processor: { exec }, ...options });
}

function persistentPool(dir: string, exec: string | string[], options: Partial<PoolOptions> = {}): Promise<Pool> {
  return startPool(dir, { processor: { exec, persistent: true }, ...options });
}

describe('--exec, one process per job', () => {
  it('gives the command the data on stdin and the job in its environment, and takes stdout as the result', async () => {
    const { dir, q } = await tempQueue();
    const echo = await q.enqueue('echo', { to: 'a@example.com', n: [1, 2] }, { attempts: 4 });
    const text = await q.enqueue('text', 'ignored');
    const nothing = await q.enqueue('nothing');
    const raw = Buffer.from([0, 1, 2, 255, 10, 13, 0]);
    const bytes = await q.enqueue('bytes', raw);
    const pool = await execPool(dir, JOB_SH, { concurrency: 4 });
    expect(await q.waitFor(echo.id, { timeout: 30_000 })).toEqual({
      stdin: { to: 'a@example.com', n: [1, 2] },
      id: echo.id,
      type: 'echo',
      attempt: 1,
      attempts: 4,
      queue: q.dir,
    });
    expect(await q.waitFor(text.id, { timeout: 30_000 })).toBe('hello from bash');
    expect(await q.waitFor(nothing.id, { timeout: 30_000 })).toBeUndefined();
    const md5 = (await import('node:crypto')).createHash('md5').update(raw).digest('hex');
    expect(await q.waitFor(bytes.id, { timeout: 30_000 })).toBe(md5);
    await pool.close();
    await q.close();
  });

  it('fails the attempt with EEXEC, the end of stderr as the message and all of it as the stack; retries as usual', async () => {
    const { dir, q } = await tempQueue();
    const fail = await q.enqueue('fail', null, { attempts: 1 });
    const flaky = await q.enqueue('flaky', null, { attempts: 2, backoff: 10 });
    const unknown = await q.enqueue('no-such-type', null, { attempts: 1 });
    const pool = await execPool(dir, JOB_SH, { concurrency: 2 });
    const info = await failure(q, fail.id);
    expect(info.errors).toHaveLength(1);
    const [error] = info.errors;
    expect(error).toMatchObject({
      code: 'EEXEC',
      message: 'warming up\nstep 2 of 3\nerror: the printer is on fire (exit code 3)',
    });
    expect(error!.stack).toBe('starting\nwarming up\nstep 2 of 3\nerror: the printer is on fire');
    expect(await q.waitFor(flaky.id, { timeout: 30_000 })).toBe('second time lucky');
    expect(await q.get(flaky.id)).toMatchObject({
      attemptsMade: 1,
      runs: 2,
      errors: [{ code: 'EEXEC', message: 'not yet (exit code 1)' }],
    });
    expect((await failure(q, unknown.id)).errors[0]!.message).toBe('job.sh: no such type: no-such-type (exit code 64)');
    await pool.close();
    await q.close();
  });

  it('runs a Python script: JSON in, JSON out, a traceback as the error', async () => {
    const { dir, q } = await tempQueue();
    const add = await q.enqueue('add', { a: 2, b: 40 });
    const bad = await q.enqueue('divide', { a: 1 }, { attempts: 1 });
    const pool = await execPool(dir, ['python3', JOB_PY]);
    expect(await q.waitFor(add.id, { timeout: 30_000 })).toEqual({ sum: 42, by: 'python', attempt: 1 });
    const [error] = (await failure(q, bad.id)).errors;
    expect(error!.code).toBe('EEXEC');
    expect(error!.message).toMatch(/ValueError: python cannot do divide \(exit code 1\)$/);
    expect(error!.stack).toMatch(/^Traceback \(most recent call last\):/);
    await pool.close();
    await q.close();
  });

  it('a timeout stops the whole process group, a child that sleeps too; then the slot runs the next job', async () => {
    const { dir, q } = await tempQueue();
    // a timeout long enough that the sleeper is seen running on a loaded machine (300 ms was not, under load)
    const sleeper = await q.enqueue('sleeper', null, { attempts: 1, timeout: 2000 });
    const pool = await execPool(dir, JOB_SH, { concurrency: 1 });
    const child = await sleeperPid(q, sleeper.id);
    expect(processesWith(`dirq-sleeper-${sleeper.id}`)).toEqual([child]);
    const [error] = (await failure(q, sleeper.id)).errors;
    expect(error).toMatchObject({ code: 'EJOBTIMEOUT' });
    await until(() => !running(child), 'the sleeping child to be stopped', 10_000);
    expect(processesWith(`dirq-sleeper-${sleeper.id}`)).toEqual([]);
    const next = await q.enqueue('text');
    expect(await q.waitFor(next.id, { timeout: 30_000 })).toBe('hello from bash');
    await pool.close();
    await q.close();
  });

  it('a command deaf to SIGTERM, and its child, get SIGKILL; the slot stays taken until they have gone', async () => {
    const { dir, q } = await tempQueue();
    const deaf = await q.enqueue('deaf', null, { attempts: 1, timeout: 200 });
    const pool = await execPool(dir, JOB_SH, { concurrency: 1 });
    const child = await sleeperPid(q, deaf.id, { named: false });
    await failure(q, deaf.id);
    const next = await q.enqueue('text');
    await q.waitFor(next.id, { timeout: 30_000 });
    // the next job ran only once SIGKILL had ended the deaf group (the slot was taken until then)
    expect(running(child)).toBe(false);
    expect(processesWith(`dirq-deaf-${deaf.id}`)).toEqual([]);
    await pool.close();
    await q.close();
  });

  it('a cancel stops the group and fails the job ECANCELLED; a closing pool stops it and puts the job back', async () => {
    const { dir, q } = await tempQueue();
    const cancelled = await q.enqueue('sleeper', null, { attempts: 3 });
    // a cancel reaches a job held by another handle at its holder's heartbeat, every staleAfter/4
    const pool = await execPool(dir, JOB_SH, { concurrency: 2, staleAfter: 400 });
    const first = await sleeperPid(q, cancelled.id);
    await q.cancel(cancelled.id);
    expect((await failure(q, cancelled.id)).errors.at(-1)).toMatchObject({ code: 'ECANCELLED' });
    await until(() => !running(first), 'the cancelled sleeper to be stopped', 10_000);

    const held = await q.enqueue('sleeper', null, { attempts: 3 });
    const second = await sleeperPid(q, held.id);
    await pool.close({ timeout: 0 });
    expect(running(second)).toBe(false);
    expect(processesWith(`dirq-sleeper-${held.id}`)).toEqual([]);
    expect(await q.get(held.id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    await q.close();
  });

  it('middleware wraps each job of a per-job exec, in the pool process, and can fail it', async () => {
    const { dir, q } = await tempQueue();
    const outer = new URL('./fixtures/middleware/outer.mjs', import.meta.url).pathname;
    const pool = await execPool(dir, JOB_SH, { middleware: [outer] });
    const ok = await q.enqueue('echo', { n: 1 });
    const refused = await q.enqueue('echo', { outerThrows: true }, { attempts: 1 });
    expect(await q.waitFor(ok.id, { timeout: 30_000 })).toMatchObject({ stdin: { n: 1 }, after: 'outer' });
    expect((await failure(q, refused.id)).errors).toMatchObject([
      { code: 'EMIDDLEWARE', message: 'outer middleware refused the job' },
    ]);
    await pool.close();
    await q.close();
  });

  it('refuses a program that is not there or not executable before it touches a job (EBADOPTION)', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t');
    const notExecutable = path.join(tempDir(), 'job.sh');
    fs.copyFileSync(JOB_SH, notExecutable);
    fs.chmodSync(notExecutable, 0o644);
    for (const [exec, message] of [
      ['no-such-program-here --fast', /no exec program "no-such-program-here" in PATH/],
      [['/nowhere/job.sh'], /no exec program at \/nowhere\/job.sh/],
      [notExecutable, /is not executable: chmod \+x/],
    ] as const) {
      await expect(execPool(dir, exec as string | string[])).rejects.toMatchObject({ code: 'EBADOPTION', message });
      await expect(persistentPool(dir, exec as string | string[])).rejects.toMatchObject({
        code: 'EBADOPTION',
        message,
      });
    }
    expect(await q.get(id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    await q.close();
  });
});

describe('--exec --persistent, the line protocol', () => {
  it('runs many jobs per process, answers out of order with concurrency, and carries errors, bytes and attempts', async () => {
    const { dir, q } = await tempQueue();
    const slow = await q.enqueue('sleep', { ms: 1500 });
    const pool = await persistentPool(dir, ['python3', PERSISTENT_PY], { processes: 1, concurrency: 3 });
    await until(async () => (await q.get(slow.id)).state === 'active', 'the slow job to start');
    const quick = await q.enqueue('sleep', { ms: 1 });
    const quickDone = (await q.waitFor(quick.id, { timeout: 30_000 })) as { at: number };
    const slowDone = (await q.waitFor(slow.id, { timeout: 30_000 })) as { at: number };
    expect(quickDone.at).toBeLessThan(slowDone.at); // the later job answered first, on the same worker

    const adds = await q.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ type: 'add', data: { a: i, b: 1 } })));
    const results = (await Promise.all(adds.map(({ id }) => q.waitFor(id, { timeout: 30_000 })))) as {
      sum: number;
      pid: number;
    }[];
    expect(results.map((r) => r.sum)).toEqual(adds.map((_, i) => i + 1));
    expect(new Set(results.map((r) => r.pid)).size).toBe(1); // one process ran them all

    const fail = await q.enqueue('fail', 'u7', { attempts: 1 });
    expect((await failure(q, fail.id)).errors).toMatchObject([{ code: 'ENOUSER', message: 'no such user: u7' }]);
    const bytes = await q.enqueue('bytes', Buffer.alloc(1000, 7));
    expect(await q.waitFor(bytes.id, { timeout: 30_000 })).toEqual({ length: 1000 });
    const attempt = await q.enqueue('attempt', null, { attempts: 5 });
    expect(await q.waitFor(attempt.id, { timeout: 30_000 })).toEqual({ attempt: 1, attempts: 5 });
    await pool.close();
    await q.close();
  });

  it.each([
    [
      'garbage',
      /broke the line protocol and was stopped: it wrote "Traceback\? no, just a print\(\) in the wrong place" on stdout: that is not JSON/,
    ],
    ['stranger', /broke the line protocol .* it names job 00-0000000000000000-nobody.x, which it does not hold/],
    ['die', /the persistent worker \(pid \d+\) exited with code 5; its stderr ended: persistent.py: dying on purpose/],
  ])(
    'a worker that breaks the protocol (%s) fails only its jobs with EWORKER and is replaced',
    async (kind, message) => {
      const { dir, q } = await tempQueue();
      const errors: Error[] = [];
      const pool = await persistentPool(dir, ['python3', PERSISTENT_PY], { processes: 2 });
      pool.on('error', (e) => errors.push(e));
      const before = await q.enqueueMany(Array.from({ length: 10 }, (_, i) => ({ type: 'add', data: { a: i, b: 0 } })));
      await Promise.all(before.map(({ id }) => q.waitFor(id, { timeout: 30_000 })));
      const bad = await q.enqueue(kind, null, { attempts: 1 });
      const [error] = (await failure(q, bad.id)).errors;
      expect(error).toMatchObject({ code: 'EWORKER', message });
      await until(() => errors.length === 1 && pool.workers === 2, 'the broken worker to be replaced');
      expect(errors[0]).toMatchObject({ code: 'EWORKER' });
      const after = await q.enqueueMany(
        Array.from({ length: 10 }, (_, i) => ({ type: 'add', data: { a: i, b: 100 } })),
      );
      for (const [i, { id }] of after.entries())
        expect(await q.waitFor(id, { timeout: 30_000 })).toMatchObject({ sum: i + 100 });
      expect(pool.counts).toMatchObject({ completed: 20, failed: 1 });
      await pool.close();
      await q.close();
    },
  );

  it('a job that hangs past its timeout ends EJOBTIMEOUT; its worker finishes its other job, then is replaced and leaves nothing behind', async () => {
    const { dir, q } = await tempQueue();
    const pool = await persistentPool(dir, ['python3', PERSISTENT_PY], { processes: 1, concurrency: 2 });
    const first = (await q.waitFor((await q.enqueue('add', { a: 1, b: 1 })).id, { timeout: 30_000 })) as {
      pid: number;
    };
    const hang = await q.enqueue('hang', null, { attempts: 1, timeout: 300 });
    const slow = await q.enqueue('sleep', { ms: 800 });
    await until(async () => (await q.get(slow.id)).state === 'active', 'the slow job to start');
    expect((await failure(q, hang.id)).errors).toMatchObject([{ code: 'EJOBTIMEOUT' }]);
    expect(await q.waitFor(slow.id, { timeout: 30_000 })).toMatchObject({ slept: 800 }); // not cut short
    await until(() => !running(first.pid), 'the retired worker to be stopped', 10_000);
    const later = (await q.waitFor((await q.enqueue('add', { a: 2, b: 2 })).id, { timeout: 30_000 })) as {
      pid: number;
    };
    expect(later.pid).not.toBe(first.pid);
    expect(pool.counts).toMatchObject({ completed: 3, failed: 1 });
    await pool.close();
    expect(running(later.pid)).toBe(false);
    await q.close();
  });

  it('a cancelled job ends ECANCELLED at once, and its worker, which cannot be told, is replaced', async () => {
    const { dir, q } = await tempQueue();
    const pool = await persistentPool(dir, ['python3', PERSISTENT_PY], { processes: 1, staleAfter: 400 });
    const first = (await q.waitFor((await q.enqueue('add', { a: 1, b: 1 })).id, { timeout: 30_000 })) as {
      pid: number;
    };
    const hang = await q.enqueue('hang', null, { attempts: 3 });
    await until(async () => (await q.get(hang.id)).state === 'active', 'the hanging job to start');
    await q.cancel(hang.id);
    expect((await failure(q, hang.id)).errors).toMatchObject([{ code: 'ECANCELLED' }]);
    await until(() => !running(first.pid), 'the worker to be stopped', 10_000);
    const later = (await q.waitFor((await q.enqueue('add', { a: 2, b: 2 })).id, { timeout: 30_000 })) as {
      pid: number;
    };
    expect(later.pid).not.toBe(first.pid);
    await pool.close();
    await q.close();
  });

  it('a worker that cannot start at all stops the pool with EPROCESSOR after its crash loop', async () => {
    const { dir, q } = await tempQueue();
    const dead = path.join(tempDir(), 'dead.sh');
    fs.writeFileSync(dead, '#!/bin/sh\necho "dead.sh: missing config" >&2\nexit 1\n', { mode: 0o755 });
    const errors: Error[] = [];
    const pool = await persistentPool(dir, dead, { processes: 1 });
    pool.on('error', (e) => errors.push(e));
    await until(
      () => errors.some((e) => (e as { code?: string }).code === 'EPROCESSOR'),
      'the crash loop to stop the pool',
    );
    expect(errors.at(-1)!.message).toMatch(
      /workers died \d+ times in 10 s; the last: .*exited with code 1; its stderr ended: dead.sh: missing config/,
    );
    await pool.close();
    await q.close();
  });
});

describe('the workers of FORMAT.md, "Workers in any language"', () => {
  const FORMAT_MD = fs.readFileSync(new URL('../FORMAT.md', import.meta.url), 'utf8');
  const block = (lang: string): string => {
    const found = [...FORMAT_MD.matchAll(new RegExp('^```' + lang + ' persistent-worker\\n([\\s\\S]*?)^```$', 'gm'))];
    expect(found).toHaveLength(1);
    return found[0]![1]!;
  };

  it('the Python worker adds, and fails what it cannot do', async () => {
    const { dir, q } = await tempQueue();
    const script = path.join(tempDir(), 'worker.py');
    fs.writeFileSync(script, block('python'));
    const pool = await persistentPool(dir, ['python3', script], { processes: 2 });
    const add = await q.enqueue('add', { a: 20, b: 22 });
    const other = await q.enqueue('mul', { a: 2 }, { attempts: 1 });
    expect(await q.waitFor(add.id, { timeout: 30_000 })).toEqual({ sum: 42 });
    expect((await failure(q, other.id)).errors).toMatchObject([{ message: 'no such type: mul' }]);
    await pool.close();
    await q.close();
  });

  it('the bash worker sizes files, and fails a file that is not there', async () => {
    const { dir, q } = await tempQueue();
    const script = path.join(tempDir(), 'worker.sh');
    fs.writeFileSync(script, block('bash'));
    const file = path.join(tempDir(), 'photo.jpg');
    fs.writeFileSync(file, Buffer.alloc(1234));
    const pool = await persistentPool(dir, ['bash', script], { processes: 1 });
    const size = await q.enqueue('size', file);
    const missing = await q.enqueue('size', '/nowhere/at/all', { attempts: 1 });
    expect(await q.waitFor(size.id, { timeout: 30_000 })).toEqual({ bytes: 1234 });
    expect((await failure(q, missing.id)).errors).toMatchObject([{ message: 'no such file' }]);
    await pool.close();
    await q.close();
  });
});

describe('dirq work --exec', () => {
  it('drains a queue through a bash script, and through a persistent Python worker', async () => {
    const { dir, q } = await tempQueue();
    const jobs = await q.enqueueMany(Array.from({ length: 5 }, () => ({ type: 'text' })));
    const run = await dirq(['work', dir, '--exec', JOB_SH, '--concurrency', '2', '--drain', '--quiet']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    for (const { id } of jobs) expect(await q.waitFor(id, { timeout: 1000 })).toBe('hello from bash');

    const adds = await q.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ type: 'add', data: { a: i, b: i } })));
    const persistent = await dirq([
      'work',
      dir,
      '--exec',
      `python3 ${PERSISTENT_PY}`,
      '--persistent',
      '--processes',
      '2',
      '--drain',
      '--quiet',
    ]);
    expect(persistent).toMatchObject({ code: 0, stderr: '' });
    for (const [i, { id }] of adds.entries())
      expect(await q.waitFor(id, { timeout: 1000 })).toMatchObject({ sum: 2 * i });
    await q.close();
  });

  it('exits 2 with one line, touching no job, when the program is not there', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t');
    const run = await dirq(['work', dir, '--exec', './no-such-script.sh --fast', '--drain']);
    expect(run.code).toBe(2);
    expect(run.stderr.trim().split('\n')).toHaveLength(1);
    expect(run.stderr).toMatch(/no exec program at .*no-such-script\.sh/);
    expect(await q.get(id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    await q.close();
  });
});
