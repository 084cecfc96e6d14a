/**
 * Operating on jobs: dirq retry, rm, purge, recover and wait, spawned as
 * users run them, with their output, --json shapes and exit codes.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  CLI,
  closed,
  dirq,
  enqueued,
  expectOneLineError,
  jobFiles,
  newQueue,
  ok,
  okJson,
  runAll,
  onTerminal,
} from './support/cli.js';
import { backdate, claimByDeadWorker } from './support/fake.js';
import { exited, openQueue, spawnNode } from './support/temp.js';
import { until } from './support/wait.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

/** A queue with jobs that failed for good: `n` of type email and one of type sms. */
async function withFailures(n: number): Promise<{ dir: string; emails: string[]; sms: string }> {
  const dir = await newQueue();
  const emails: string[] = [];
  for (let i = 0; i < n; i++) emails.push(await enqueued(dir, 'email', String(i), '--attempts', '1'));
  const sms = await enqueued(dir, 'sms', '{}', '--attempts', '1');
  await runAll(dir, () => 'down');
  expect(ls(dir, 'failed')).toHaveLength(n + 1);
  return { dir, emails: emails.sort(), sms };
}

describe('dirq retry', () => {
  it('sends failed jobs back to queue/ with fresh attempts, by id or by path', async () => {
    const { dir, emails, sms } = await withFailures(2);
    expect(await ok(['retry', dir, emails[0]!, `failed/${sms}`])).toBe(`retried ${emails[0]}\nretried ${sms}\n`);
    expect(ls(dir, 'queue')).toEqual([emails[0], sms].sort());
    expect(ls(dir, 'failed')).toEqual([emails[1]]);
    const job = await okJson<{ attemptsMade: number; history: { event: string }[] }>(['show', dir, sms]);
    expect(job.history.map((e) => e.event)).toEqual(['error', 'retry']);
    const q = await openQueue(dir);
    const claimed = await q.claim({ types: ['sms'] });
    expect(claimed!.attempt).toBe(2); // its history is kept, yet it gets a fresh set of attempts
    await claimed!.complete();
    await q.close();
  });

  it("counts attempts per round after a retry, and every round's runs apart (item 5)", async () => {
    const dir = await newQueue();
    const q = await openQueue(dir, { backoff: 0 });
    const { id } = await q.enqueue('email', {}, { attempts: 2 });
    const failRound = async (): Promise<void> => {
      for (let i = 0; i < 2; i++) await (await q.claim())!.fail(new Error('down'));
    };
    await failRound();
    await q.retry(id);
    await failRound();
    const failed = (await ok(['ls', dir, 'failed'])).split('\n');
    expect(failed[0]).toMatch(/^ID\s+TYPE\s+PRI\s+AGE\s+ATTEMPTS\s+RUNS\s+ERROR$/);
    expect(failed[1]).toMatch(/\s2\/2\s+4\s+down$/);
    expect(await ok(['show', dir, id])).toMatch(
      /\nATTEMPTS {2}2 of 2 used since the last retry \(retried once; 4 runs in all\)\n/,
    );
    expect(await okJson(['show', dir, id])).toMatchObject({
      attemptsMade: 4,
      attemptsSinceRetry: 2,
      attempts: 2,
      runs: 4,
      retries: 1,
    });
    await q.retry(id);
    await (await q.claim())!.complete('sent');
    await q.close();
    expect(await ok(['show', dir, id])).toMatch(
      /\nATTEMPTS {2}succeeded on attempt 1 of 2 since the last retry \(retried 2 times; 5 runs in all\)\n/,
    );
    expect((await ok(['ls', dir, 'done'])).split('\n')[1]).toMatch(/\s0\/2\s+5$/);
  });

  it('--all retries every failed job, --type only those of a type; --json lists them', async () => {
    const { dir, emails, sms } = await withFailures(3);
    expect(await okJson(['retry', dir, '--all', '--type', 'sms'])).toEqual({ schema: 1, retried: [sms], skipped: [] });
    expect(ls(dir, 'failed')).toEqual(emails);
    expect(await ok(['retry', dir, '--all'])).toBe(emails.map((id) => `retried ${id}\n`).join(''));
    expect(ls(dir, 'failed')).toEqual([]);
    expect(await dirq(['retry', dir, '--all'])).toEqual({ code: 0, stdout: '', stderr: 'No jobs in failed/.\n' });
  });

  it('--all leaves a FIFO that a claim set aside in failed/; retrying it by id is refused (item 15)', async () => {
    const { dir, emails, sms } = await withFailures(1);
    const fifo = '50-1763830000000000-fifo.email';
    execFileSync('mkfifo', [path.join(dir, 'queue', fifo)]);
    await runAll(dir); // the claim sets the FIFO aside
    expect(ls(dir, 'failed')).toEqual([emails[0], fifo, sms].sort());
    const run = await dirq(['retry', dir, '--all']);
    expect(run).toMatchObject({
      code: 0,
      stdout: [emails[0], sms]
        .sort()
        .map((id) => `retried ${id}\n`)
        .join(''),
    });
    const why = `skipped ${fifo}: failed/${fifo} is a FIFO, not a job file: it can never run, so it stays; look at it, then remove it (dirq rm)\n`;
    expect(run.stderr).toBe(`${why}2 retried, 1 skipped (not a job file)\n`);
    expect(ls(dir, 'failed')).toEqual([fifo]);
    expect(ls(dir, 'queue')).toEqual([emails[0], sms].sort());
    // with only the FIFO left, it says what it did, not that failed/ is empty
    expect(await dirq(['retry', dir, '--all'])).toEqual({
      code: 0,
      stdout: '',
      stderr: `${why}0 retried, 1 skipped (not a job file)\n`,
    });
    const json = await dirq(['retry', dir, '--all', '--json']);
    expect([json.code, JSON.parse(json.stdout), json.stderr]).toEqual([
      0,
      { schema: 1, retried: [], skipped: [fifo] },
      why,
    ]);
    expectOneLineError(await dirq(['retry', dir, fifo]), 1, /is a FIFO, not a job file/);
    expect(fs.lstatSync(path.join(dir, 'failed', fifo)).isFIFO()).toBe(true);
  });

  it('runs a delayed job now', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'report', '{}', '--delay', '1h');
    await ok(['retry', dir, id]);
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
  });

  it('retries the others and exits 1 when one cannot be retried', async () => {
    const { dir, emails } = await withFailures(1);
    const ready = await enqueued(dir, 'email', '{}');
    const run = await dirq(['retry', dir, ready, emails[0]!]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe(`retried ${emails[0]}\n`);
    expect(run.stderr).toBe(`dirq: job ${ready} is in queue/; only failed and delayed jobs can be retried\n`);
    expect(ls(dir, 'queue')).toEqual([emails[0], ready].sort());
  });
});

describe('dirq rm', () => {
  it('deletes jobs from any state but active/, and says from where', async () => {
    const { dir, emails } = await withFailures(1);
    const ready = await enqueued(dir, 'email', '{}');
    const later = await enqueued(dir, 'email', '{}', '--delay', '1h');
    expect(await ok(['rm', dir, ready, later, emails[0]!])).toBe(
      `removed ${ready} (from queue/)\nremoved ${later} (from delayed/)\nremoved ${emails[0]} (from failed/)\n`,
    );
    expect(jobFiles(dir).filter((f) => !f.startsWith('failed/'))).toEqual([]);
  });

  it('refuses a running job with exit 1, removes the rest; --json lists what it removed', async () => {
    const dir = await newQueue();
    const running = await enqueued(dir, 'email', '{}', '--priority', '1');
    const ready = await enqueued(dir, 'email', '{}');
    const q = await openQueue(dir);
    const job = await q.claim();
    expect(job!.id).toBe(running);
    const run = await dirq(['rm', dir, running, ready, '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({ schema: 1, removed: [{ id: ready, state: 'queue' }] });
    expect(run.stderr).toBe(`dirq: job ${running} is running (active/); wait for it to end, then remove it\n`);
    await job!.complete();
    await q.close();
    expect(jobFiles(dir)).toEqual([`done/${running}`]);
  });
});

describe('dirq purge', () => {
  it('deletes every job of a state, or only those older than --older-than', async () => {
    const dir = await newQueue();
    for (let i = 0; i < 5; i++) await enqueued(dir, 'email', String(i));
    await runAll(dir);
    const done = ls(dir, 'done');
    for (const id of done.slice(0, 3)) backdate(path.join(dir, 'done', id), 8 * 86_400_000);
    expect(await ok(['purge', dir, 'done', '--older-than', '7d'])).toBe('purged 3 jobs from done/ (older than 7d)\n');
    expect(ls(dir, 'done')).toEqual(done.slice(3));
    expect(await okJson(['purge', dir, 'done/'])).toEqual({ schema: 1, state: 'done', removed: 2 });
    expect(await ok(['purge', dir, 'failed'])).toBe('purged 0 jobs from failed/\n');
  });

  it('draws a progress bar on a terminal', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'bulk', '--jsonl', '-'], Array.from({ length: 2100 }, () => '1').join('\n'));
    const child = onTerminal(['purge', dir, 'queue']);
    let tty = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (tty += chunk));
    expect(await exited(child)).toBe(0);
    await closed(child.stdout!);
    // eslint-disable-next-line no-control-regex -- the terminal's escape (\x1b[2K) is what the test looks for
    expect(tty).toMatch(/purge queue\/ \[#{30}\] 100% 2100\/2100\r\x1b\[2Kpurged 2100 jobs from queue\/\r?\n$/);
    expect(jobFiles(dir)).toEqual([]);
  });

  it('purges queue/ too, and prints no progress bar into a pipe', async () => {
    const dir = await newQueue();
    const lines = Array.from({ length: 1200 }, () => '{}').join('\n');
    await ok(['enqueue', dir, 'bulk', '--jsonl', '-'], lines);
    expect(await dirq(['purge', dir, 'queue'])).toEqual({
      code: 0,
      stdout: 'purged 1200 jobs from queue/\n',
      stderr: '',
    });
    expect(jobFiles(dir)).toEqual([]);
  });
});

describe('dirq recover', () => {
  it('takes back the claim of a dead worker now, and reports it', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    const owner = claimByDeadWorker(dir, id);
    const text = await ok(['recover', dir]);
    expect(text).toBe(
      `recovered ${id} from ${owner}.0 (crashed) -> queue/\n1 claim taken back, 0 delayed jobs promoted, 0 done jobs pruned, 0 abandoned tmp/ files removed\n`,
    );
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
    expect((await okJson<{ attemptsMade: number }>(['show', dir, id])).attemptsMade).toBe(1);
  });

  it('promotes due delayed jobs; --json is the sweep report', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}', '--delay', '1h');
    const [name] = ls(dir, 'delayed');
    fs.renameSync(path.join(dir, 'delayed', name!), path.join(dir, 'delayed', `0000000000000001~${id}`)); // due long ago
    expect(await okJson(['recover', dir])).toEqual({
      schema: 1,
      swept: true,
      recovered: [],
      unrecovered: [],
      promoted: 1,
      pruned: 0,
      tmpRemoved: 0,
      heartbeatsRemoved: 0,
      warnings: [],
      torn: { requeued: [], problems: [] },
    });
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
  });

  it("other commands only look: ls and stats leave a dead worker's claim for recover", async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    claimByDeadWorker(dir, id);
    await ok(['ls', dir, 'active']);
    await ok(['stats', dir]);
    expect(jobFiles(dir)).toEqual([expect.stringMatching(new RegExp(`^active/${id.replace(/\./g, '\\.')}@`))]);
  });
});

describe('dirq wait', () => {
  it('prints the result of a done job and exits 0; --json wraps it', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{"to":"a"}');
    await runAll(dir);
    expect(await ok(['wait', dir, id])).toBe('{\n  "ok": {\n    "to": "a"\n  }\n}\n');
    expect(await okJson(['wait', dir, id])).toEqual({ schema: 1, id, state: 'done', result: { ok: { to: 'a' } } });
  });

  it('waits for a running job until its worker completes it', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '"x"');
    const q = await openQueue(dir);
    const job = await q.claim();
    const child = spawnNode([CLI, 'wait', dir, id, '--timeout', '1m']);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    // dirq wait watches done/ and failed/ (inotify) once it has seen the job is not finished
    await until(() => watching(child.pid!) || child.exitCode !== null, 'dirq wait to watch for the job');
    await job!.complete('sent');
    await q.close();
    expect(await exited(child)).toBe(0);
    await closed(child.stdout!);
    expect(out).toBe('"sent"\n');
  });

  it("exits 1 with the job's error on one line when it failed; --json prints the error", async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}', '--attempts', '1');
    await runAll(dir, () => 'mailbox full');
    expectOneLineError(
      await dirq(['wait', dir, id]),
      1,
      new RegExp(`^dirq: job ${id.replace(/\./g, '\\.')} failed: mailbox full$`),
    );
    const run = await dirq(['wait', dir, id, '--json']);
    expect(run.code).toBe(1);
    expect(JSON.parse(run.stdout)).toEqual({
      schema: 1,
      id,
      state: 'failed',
      error: { message: 'mailbox full', code: 'EPROCESS', stack: expect.any(String) },
    });
  });

  it("exits 1 with ENOTFOUND's message when the job it waits for is removed (D9)", async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    const child = spawnNode([CLI, 'wait', dir, id]);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    await until(() => watching(child.pid!) || child.exitCode !== null, 'dirq wait to watch for the job');
    expect(await ok(['rm', dir, id])).toContain(id);
    const code = await exited(child);
    await closed(child.stderr!);
    expectOneLineError(
      { code, stdout: '', stderr },
      1,
      new RegExp(`^dirq: no job ${id.replace(/\./g, '\\.')} in any state`),
    );
  }, 30_000);

  it('exits 4 after --timeout, saying where the job is', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    expectOneLineError(
      await dirq(['wait', dir, id, '--timeout', '100ms']),
      4,
      /did not finish within 100ms: it is in queue\/; wait longer with a larger --timeout$/,
    );
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
  });
});

/** Whether process `pid` holds an inotify descriptor (Linux). */
function watching(pid: number): boolean {
  try {
    return fs.readdirSync(`/proc/${pid}/fd`).some((fd) => {
      try {
        return fs.readlinkSync(`/proc/${pid}/fd/${fd}`) === 'anon_inode:inotify';
      } catch {
        return false;
      }
    });
  } catch {
    return false;
  }
}
