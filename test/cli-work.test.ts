/** dirq work: a pool from the command line, stopped by signals or --drain. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, closed, dirq } from './support/cli.js';
import { processors } from './support/pools.js';
import { exited, spawnNode, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const active = (dir: string): string[] => fs.readdirSync(path.join(dir, 'active'));

/** The poll project runs dirq work poll-only (as on NFS), polling often enough for tests. */
const MODE = process.env.DIRQ_TEST_WATCH === '0' ? ['--poll', '50ms'] : [];

function work(dir: string, ...args: string[]) {
  const child = spawnNode([CLI, 'work', dir, processors('echo'), ...MODE, ...args]);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (stdout += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
  const done = exited(child).then(async (code) => {
    await Promise.all([closed(child.stdout!), closed(child.stderr!)]);
    return { code, stdout, stderr };
  });
  return { child, done, output: () => stdout };
}

describe('dirq work', () => {
  it("prints the queue's notices as warnings on stderr, apart from errors", async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    execFileSync('mkfifo', [path.join(dir, 'workers', '.clock')]); // its opening sweep works around it, with an EBADFILE notice
    await q.enqueue('t', {});
    const run = await work(dir, '--drain').done;
    expect(run.code).toBe(0);
    expect(run.stderr.match(/^dirq work: warning: .*workers\/\.clock is a FIFO/gm)).toHaveLength(1);
    await q.close();
  });

  it('--drain runs every job and exits 0 once idle', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 30 }, (_, i) => ({ type: 't', data: { i } })));
    const { done } = work(dir, '--drain', '--threads', '2', '--concurrency', '4');
    const run = await done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('30 completed');
    for (const { id } of refs) expect((await q.get(id)).state).toBe('done');
    await q.close();
  });

  it('--drain waits for a retry due within --drain-within, and only mentions a job scheduled later', async () => {
    const { dir, q } = await tempQueue();
    const retried = await q.enqueue('t', { failUntil: 2 }, { attempts: 2, backoff: 300 });
    const fine = await q.enqueue('t', { fine: true });
    const later = await q.enqueue('t', { later: true }, { delay: 2 * 3600_000 });
    const run = await work(dir, '--drain').done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('stopped: 2 completed, 1 retried, 0 failed');
    expect(run.stdout).toMatch(/not waited for: 1 job\(s\) scheduled later, the next at \d{4}-/);
    expect(await q.get(retried.id)).toMatchObject({ state: 'done', attemptsMade: 1 });
    expect((await q.get(fine.id)).state).toBe('done');
    expect((await q.get(later.id)).state).toBe('delayed');
    await q.close();
  });

  it('--drain exits 1 naming a retry due after --drain-within, instead of 0 with the job unfinished', async () => {
    const { dir, q } = await tempQueue();
    const retried = await q.enqueue('t', { throw: 'not yet' }, { attempts: 2, backoff: 3600_000 });
    const run = await work(dir, '--drain', '--drain-within', '5s').done;
    expect(run.code).toBe(1);
    expect(run.stdout).toContain('stopped: 0 completed, 1 retried, 0 failed');
    expect(run.stderr).toMatch(
      new RegExp(
        `^dirq: drained, but 1 job\\(s\\) wait in delayed/ for a retry due after --drain-within 5s: ${retried.id.replace(/\./g, '\\.')} at \\d{4}-.*dirq retry`,
        'm',
      ),
    );
    expect((await q.get(retried.id)).state).toBe('delayed');
    const bad = await dirq(['work', dir, processors('echo'), '--drain-within', '5s']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^dirq: --drain-within goes with --drain/);
    await q.close();
  });

  it('SIGTERM lets running jobs finish, leaves nothing in active/, and exits 0', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany(Array.from({ length: 2 }, () => ({ type: 't', data: { sleep: 300 } })));
    const w = work(dir, '--concurrency', '2');
    await until(() => active(dir).length === 2, 'both jobs to run');
    w.child.kill('SIGTERM');
    const run = await w.done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('SIGTERM: finishing running jobs');
    expect(active(dir)).toEqual([]);
    for (const { id } of refs) expect((await q.get(id)).state).toBe('done');
    await q.close();
  });

  it('a second signal releases running jobs at once, attempt not counted', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { hang: true });
    const w = work(dir, '--close-timeout', '1h');
    await until(() => active(dir).length === 1, 'the job to run');
    w.child.kill('SIGINT');
    await until(() => w.output().includes('SIGINT: finishing'), 'the first signal to be seen');
    w.child.kill('SIGINT');
    const run = await w.done;
    expect(run.code).toBe(0);
    expect(run.stdout).toContain('1 released');
    expect(await q.get(id)).toMatchObject({ state: 'queue', attemptsMade: 0 });
    await q.close();
  });

  it('--types leaves other types alone, --job-timeout fails a job with EJOBTIMEOUT, --max-jobs recycles threads', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueueMany(Array.from({ length: 50 }, (_, i) => ({ type: 'other', data: { i }, priority: 0 })));
    const hang = await q.enqueue('mine', { hang: true }, { attempts: 1, priority: 10 });
    const mine = await q.enqueueMany(Array.from({ length: 6 }, (_, i) => ({ type: 'mine', data: { i } })));
    const run = await work(dir, '--types', 'mine', '--job-timeout', '300ms', '--max-jobs', '2', '--drain').done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain('stopped: 6 completed, 0 retried, 1 failed');
    expect(run.stderr).toContain(`failed ${hang.id} (attempt 1): the job ran longer than its timeout of 300 ms`);
    expect(await q.get(hang.id)).toMatchObject({ state: 'failed', attemptsMade: 1 });
    expect((await q.get(hang.id)).errors.map((e) => e.code)).toEqual(['EJOBTIMEOUT']);
    expect(await q.counts()).toMatchObject({ queue: 50, active: 0, done: 6, failed: 1 });
    for (const job of await q.list('queue')) expect(job).toMatchObject({ type: 'other', attemptsMade: 0 });
    // 7 jobs, at most 2 per thread: the 6 that completed ran in at least 3 threads
    const perThread = new Map<number, number>();
    for (const { id } of mine) {
      const { thread } = (await q.waitFor(id)) as { thread: number };
      perThread.set(thread, (perThread.get(thread) ?? 0) + 1);
    }
    expect(
      [...perThread.values()].every((n) => n <= 2),
      JSON.stringify([...perThread]),
    ).toBe(true);
    expect(perThread.size).toBeGreaterThanOrEqual(3);
    await q.close();
  });

  it('exits 1 when its threads keep dying, instead of respawning forever', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueueMany(Array.from({ length: 10 }, () => ({ type: 't', data: { crash: true }, attempts: 1 })));
    const run = await dirq(['work', dir, processors('crash'), ...MODE, '--quiet']);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^dirq: workers died \d+ times in 10 s/m);
    expect(fs.readdirSync(path.join(dir, 'active'))).toEqual([]);
    await q.close();
  });

  it('resolves a relative processor path against the current directory', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', { here: true });
    const run = await dirq(['work', dir, 'echo.mjs', ...MODE, '--drain'], undefined, {
      cwd: path.dirname(processors('echo')),
    });
    expect(run.code, run.stderr).toBe(0);
    expect(await q.waitFor(id)).toMatchObject({ echo: { here: true } });
    await q.close();
  });

  it('fails in one line when the processor cannot load, or the options are bad', async () => {
    const { dir, q } = await tempQueue();
    const broken = await dirq(['work', dir, processors('broken')]);
    expect(broken.code).toBe(1);
    expect(broken.stderr.trim().split('\n')).toEqual([
      expect.stringMatching(/^dirq: the processor .* failed to load: this module is broken/),
    ]);
    const bad = await dirq(['work', dir, processors('echo'), '--threads', 'many']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/^dirq: --threads must be a whole number/);
    const missing = await dirq(['work', path.join(dir, 'nope'), processors('echo')]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split('\n')).toHaveLength(1);
    await q.close();
  });
});
