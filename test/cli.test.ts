/**
 * The dirq CLI, spawned as users run it: `node dist/cli/main.js ...` on temp
 * queues: init, enqueue, ls, stats, help, and bad input for every verb.
 * Other verbs: test/cli-*.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { STATES } from '../dist/index.js';
import { dirq, envelope, expectOneLineError, ID, jobFiles, libraryQueue, newQueue, ok } from './support/cli.js';
import { openQueue, tempDir } from './support/temp.js';

describe('dirq init', () => {
  it('creates the layout and prints the absolute path; again is harmless', async () => {
    const dir = path.join(tempDir(), 'spool', 'mail-out');
    expect(await ok(['init', dir])).toBe(`${dir}\n`);
    for (const d of ['tmp', ...STATES]) expect(fs.statSync(path.join(dir, d)).isDirectory()).toBe(true);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({
      format: 'dirqueue',
      version: '1.3',
    });
    expect(JSON.parse(await ok(['init', dir, '--json']))).toEqual({ schema: 1, dir, mode: null });
  });

  it('refuses a directory that holds something else', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'notes.txt'), 'mine\n');
    const run = await dirq(['init', dir]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^dirq: .*not empty and not a queue.*\n$/);
    expect(fs.readdirSync(dir)).toEqual(['notes.txt']);
  });
});

describe('dirq enqueue', () => {
  it('takes the data from the argument and prints the id, which is the file name in queue/', async () => {
    const dir = await newQueue();
    const id = (await ok(['enqueue', dir, 'send', '{"to":"a@example.com"}'])).trimEnd();
    expect(id).toMatch(ID);
    expect(id).toMatch(/^50-.*\.send$/);
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
    expect(envelope(path.join(dir, 'queue', id))).toMatchObject({ type: 'send', data: { to: 'a@example.com' } });
  });

  it('reads the data from stdin with -', async () => {
    const dir = await newQueue();
    const id = (await ok(['enqueue', dir, 'mail/out', '-'], '{"to": ["a", "b"],\n "n": 2}\n')).trimEnd();
    expect(id).toMatch(/\.mail%2Fout$/);
    expect(envelope(path.join(dir, 'queue', id))).toMatchObject({ type: 'mail/out', data: { to: ['a', 'b'], n: 2 } });
  });

  it('enqueues a job without data when none is given', async () => {
    const dir = await newQueue();
    const id = (await ok(['enqueue', dir, 'tick'])).trimEnd();
    expect(envelope(path.join(dir, 'queue', id))).not.toHaveProperty('data');
  });

  it('sets --priority, --attempts, and prints {"id"} with --json', async () => {
    const dir = await newQueue();
    const { id } = JSON.parse(
      await ok(['enqueue', dir, 'send', '{}', '--priority', '7', '--attempts=5', '--json']),
    ) as { id: string };
    expect(id).toMatch(/^07-/);
    expect(envelope(path.join(dir, 'queue', id))).toMatchObject({ attempts: 5 });
  });

  it('puts a job with --delay in delayed/, due that long from now', async () => {
    const dir = await newQueue();
    const before = Date.now();
    const id = (await ok(['enqueue', dir, 'report', '{}', '--delay', '10s'])).trimEnd();
    const after = Date.now();
    const [name, ...others] = fs.readdirSync(path.join(dir, 'delayed'));
    expect(others).toEqual([]);
    expect(name).toMatch(new RegExp(`^\\d{16}~${id.replace(/[.]/g, '\\.')}$`));
    const dueMs = Number(name!.slice(0, 16)) / 1000;
    expect(dueMs).toBeGreaterThanOrEqual(before + 10_000);
    expect(dueMs).toBeLessThanOrEqual(after + 10_000);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([]);
  });
});

describe('dirq ls', () => {
  it('prints an aligned table in run order: priority, then enqueue time', async () => {
    const dir = await newQueue();
    const low = (await ok(['enqueue', dir, 'thumbnail', '{"n":1}', '--priority', '90'])).trimEnd();
    const normal = (await ok(['enqueue', dir, 'email', '{"n":2}'])).trimEnd();
    const urgent = (await ok(['enqueue', dir, 'email', '{"n":3}', '--priority', '5', '--attempts', '9'])).trimEnd();
    const lines = (await ok(['ls', dir])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^ID\s+TYPE\s+PRI\s+AGE\s+ATTEMPTS$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual([urgent, normal, low]);
    const [, , pri, age, attempts] = lines[1]!.split(/\s+/);
    expect(pri).toBe('5');
    expect(age).toMatch(/^\d+(ms|s)$/);
    expect(attempts).toBe('0/9');
    // Aligned: every row's columns start where the header's do (left) or end where they do (right).
    const typeAt = lines[0]!.indexOf('TYPE');
    const attemptsEnd = lines[0]!.length;
    for (const line of lines.slice(1)) {
      expect(line.slice(typeAt)).toMatch(/^(email|thumbnail)\s/);
      expect(line.length).toBe(attemptsEnd);
    }
    const limited = await dirq(['ls', dir, 'queue/', '--limit', '1']);
    expect(limited.code).toBe(0);
    expect(limited.stdout.trimEnd().split('\n')[1]).toMatch(new RegExp(`^${urgent.replace(/[.]/g, '\\.')}\\s`));
    expect(limited.stderr).toBe('(1 of 3 jobs in queue/; raise --limit to see more)\n');
  });

  it('prints jobs as a JSON array with --json, and honours --limit', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'email', '{"to":"x"}']);
    await ok(['enqueue', dir, 'email', '[1,2]', '--priority', '10', '--attempts', '4']);
    const before = Date.now();
    const jobs = JSON.parse(await ok(['ls', dir, '--json'])) as Record<string, unknown>[];
    const after = Date.now();
    expect(jobs).toHaveLength(2);
    expect(jobs[0]).toMatchObject({
      state: 'queue',
      type: 'email',
      priority: 10,
      attemptsMade: 0,
      attempts: 4,
      data: [1, 2],
    });
    expect(jobs[1]).toMatchObject({ state: 'queue', type: 'email', priority: 50, attemptsMade: 0, data: { to: 'x' } });
    for (const job of jobs) {
      expect(job.id).toMatch(ID);
      expect(new Date(job.readyAt as string).getTime()).toBeGreaterThan(0);
      expect(new Date(job.createdAt as string).getTime()).toBeGreaterThan(0);
      const created = new Date(job.createdAt as string).getTime();
      expect(job.age).toBeGreaterThanOrEqual(Math.max(0, before - created)); // ms since enqueue, the AGE column
      expect(job.age).toBeLessThanOrEqual(after - created);
    }
    const limited = JSON.parse(await ok(['ls', dir, 'queue', '--json', '--limit', '1'])) as { id: string }[];
    expect(limited.map((j) => j.id)).toEqual([jobs[0]!.id]);
  });

  it('lists delayed, done and failed jobs with their own column', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'later', '{}', '--delay', '2h']);
    await ok(['enqueue', dir, 'good', '{}']);
    await ok(['enqueue', dir, 'bad', '{}', '--attempts', '1', '--priority', '60']);
    const q = await openQueue(dir);
    try {
      await (await q.claim())!.complete('fine');
      await (await q.claim())!.fail(new Error('the SMTP server said no'));
    } finally {
      await q.close();
    }
    const delayed = (await ok(['ls', dir, 'delayed'])).split('\n');
    expect(delayed[0]).toMatch(/\sDUE IN$/);
    expect(delayed[1]).toMatch(/\s1h59m$/);
    expect(await ok(['ls', dir, 'done'])).toMatch(/\.good\s+good\s+50\s/);
    const failed = (await ok(['ls', dir, 'failed'])).split('\n');
    expect(failed[0]).toMatch(/\sERROR$/);
    expect(failed[1]).toMatch(/\s1\/1\s+the SMTP server said no$/);
    const [done] = JSON.parse(await ok(['ls', dir, 'done', '--json'])) as Record<string, unknown>[];
    expect(done).toMatchObject({ state: 'done', type: 'good', result: 'fine' });
  });

  it('prints nothing on stdout for an empty state', async () => {
    const dir = await newQueue();
    expect(await dirq(['ls', dir, 'failed'])).toEqual({ code: 0, stdout: '', stderr: 'No jobs in failed/.\n' });
    expect(JSON.parse(await ok(['ls', dir, '--json']))).toEqual([]);
  });
});

describe('dirq stats', () => {
  it('prints counts keyed by state, ages and types with --json', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'email', '{}']);
    await ok(['enqueue', dir, 'email', '{}']);
    await ok(['enqueue', dir, 'report', '{}', '--delay', '1h']);
    const stats = JSON.parse(await ok(['stats', dir, '--json'])) as {
      counts: Record<string, number>;
      oldest: Record<string, number | null>;
      waiting: number | null;
      types: Record<string, Record<string, number>>;
    };
    expect(stats.counts).toEqual({ queue: 2, delayed: 1, active: 0, done: 0, failed: 0, waiting: 0 });
    expect(stats.oldest.queue).toBeGreaterThanOrEqual(0);
    expect(stats.oldest.done).toBeNull();
    expect(stats.waiting).toBeGreaterThanOrEqual(0);
    expect(stats.types).toEqual({
      email: { queue: 2, delayed: 0, active: 0, done: 0, failed: 0, waiting: 0 },
      report: { queue: 0, delayed: 1, active: 0, done: 0, failed: 0, waiting: 0 },
    });
  });

  it('prints tables for people', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'email', '{}']);
    const lines = (await ok(['stats', dir])).split('\n');
    expect(lines[0]).toMatch(/^STATE\s+JOBS\s+OLDEST$/);
    expect(lines[1]).toMatch(/^queue\s+1\s+\d+(ms|s)$/);
    expect(lines[3]).toMatch(/^active\s+0\s+-$/);
    expect(lines).toContainEqual(expect.stringMatching(/^Longest wait in queue\/: \d+(ms|s)$/));
    expect(lines).toContainEqual(expect.stringMatching(/^TYPE\s+QUEUE\s+DELAYED\s+ACTIVE\s+DONE\s+FAILED\s+WAITING$/));
    expect(lines).toContainEqual(expect.stringMatching(/^email\s+1\s+0\s+0\s+0\s+0\s+0$/));
  });
});

describe('help', () => {
  it('describes every command with an example, and the exit codes', async () => {
    const overview = await ok(['--help']);
    expect(overview).toMatch(/^Usage: dirq COMMAND DIR/);
    for (const verb of [
      'init',
      'enqueue',
      'work',
      'ls',
      'show',
      'stats',
      'retry',
      'rm',
      'purge',
      'recover',
      'wait',
      'fsck',
      'metrics',
    ]) {
      expect(overview).toContain(`  ${verb} `);
      const help = await ok([verb, '--help']);
      expect(help).toMatch(new RegExp(`^Usage: dirq ${verb} DIR`));
      expect(help).toMatch(/\nExamples?:\n {2}dirq /);
      expect(await ok(['help', verb])).toBe(help);
    }
    expect(overview).toMatch(/Exit codes:\n {2}0 {2}success\n {2}1 .*\n.*\n {2}2 {2}usage error/);
    expect(overview).toMatch(/\n {2}3 {2}a check failed: stats --sla .*\n.*fsck/);
    expect(overview).toMatch(/\n {2}4 {2}wait --timeout/);
    expect(overview).toMatch(
      /\nStates: queue, delayed, active, done, failed, waiting\.\nDurations: 100ms, 30s, 5m, 2h, 7d/,
    );
  });
});

describe('bad input: exit non-zero, one line on stderr, nothing enqueued', () => {
  const cases: { name: string; args: (dir: string) => string[]; input?: string; code: number; message: RegExp }[] = [
    { name: 'malformed JSON', args: (d) => ['enqueue', d, 'send', '{to:1}'], code: 2, message: /not valid JSON/ },
    {
      name: 'malformed JSON on stdin',
      args: (d) => ['enqueue', d, 'send', '-'],
      input: '{"a":',
      code: 2,
      message: /stdin is not valid JSON/,
    },
    { name: 'empty stdin', args: (d) => ['enqueue', d, 'send', '-'], input: '', code: 2, message: /stdin is empty/ },
    {
      name: 'priority 500',
      args: (d) => ['enqueue', d, 'send', '{}', '--priority', '500'],
      code: 2,
      message: /priority must be an integer 0\.\.99.*got 500/,
    },
    {
      name: 'a priority that is no number',
      args: (d) => ['enqueue', d, 'send', '{}', '--priority', 'high'],
      code: 2,
      message: /--priority must be a whole number, got "high"/,
    },
    {
      name: 'a bad delay',
      args: (d) => ['enqueue', d, 'send', '{}', '--delay', '10 minutes'],
      code: 2,
      message: /--delay must be a duration like 100ms/,
    },
    {
      name: 'zero attempts',
      args: (d) => ['enqueue', d, 'send', '{}', '--attempts', '0'],
      code: 2,
      message: /attempts must be an integer >= 1/,
    },
    {
      name: 'a flag without its value',
      args: (d) => ['enqueue', d, 'send', '{}', '--priority'],
      code: 2,
      message: /option --priority needs a value/,
    },
    {
      name: 'an unknown flag',
      args: (d) => ['enqueue', d, 'send', '{}', '--prio', '5'],
      code: 2,
      message: /unknown option --prio \(see dirq enqueue --help\)/,
    },
    {
      name: 'a value for a boolean flag',
      args: (d) => ['enqueue', d, 'send', '{}', '--json=yes'],
      code: 2,
      message: /option --json does not take a value/,
    },
    {
      name: 'a missing type',
      args: (d) => ['enqueue', d],
      code: 2,
      message: /missing arguments: usage: dirq enqueue DIR TYPE/,
    },
    {
      name: 'an extra argument',
      args: (d) => ['enqueue', d, 'send', '{}', 'extra'],
      code: 2,
      message: /unexpected argument "extra"/,
    },
    {
      name: 'a missing queue dir',
      args: (d) => ['enqueue', path.join(d, 'nope'), 'send', '{}'],
      code: 1,
      message: /no queue at .*nope.*dirq init/,
    },
    {
      name: 'a missing queue dir and a bad priority',
      args: (d) => ['enqueue', path.join(d, 'nope'), 'send', '{}', '--priority', '500'],
      code: 2,
      message: /priority/,
    },
    {
      name: 'a directory that is not a queue',
      args: (d) => ['enqueue', path.dirname(d), 'send', '{}'],
      code: 1,
      message: /is not a queue .*dirq init/,
    },
    {
      name: 'an unknown verb',
      args: (d) => ['frobnicate', d],
      code: 2,
      message:
        /unknown command "frobnicate": use one of init, enqueue, .*ls, show, stats, workers, retry, rm, purge, recover, wait, fsck, metrics.* \(see dirq --help\)$/,
    },
    { name: 'no verb', args: () => [], code: 2, message: /missing command/ },
    {
      name: 'an unknown state',
      args: (d) => ['ls', d, 'pending'],
      code: 2,
      message: /unknown state "pending": use one of queue, delayed, active, done, failed, waiting/,
    },
    { name: 'an unknown flag of ls', args: (d) => ['ls', d, '--all'], code: 2, message: /unknown option --all/ },
    {
      name: 'a bad limit',
      args: (d) => ['ls', d, '--limit', 'ten'],
      code: 2,
      message: /--limit must be a whole number/,
    },
    {
      name: 'a limit of 0',
      args: (d) => ['ls', d, '--limit', '0'],
      code: 2,
      message: /--limit must be 1 or more, got 0 \(leave it out to list every job\)$/,
    },
    {
      name: 'a negative priority',
      args: (d) => ['enqueue', d, 'send', '{}', '--priority', '-1'],
      code: 2,
      message: /^dirq: priority must be an integer 0\.\.99 .*got -1$/,
    },
    {
      name: 'a value starting with -',
      args: (d) => ['enqueue', d, 'send', '{}', '--key', '-k'],
      code: 2,
      message: /option --key needs a value \(for a value that starts with '-', write --key=-k\)/,
    },
    {
      name: 'ls of a file',
      args: (d) => ['ls', path.join(d, 'dirqueue.json')],
      code: 1,
      message: /dirqueue\.json is a file, not a queue directory: give the directory that holds dirqueue\.json$/,
    },
    {
      name: 'ls of a state directory',
      args: (d) => ['ls', path.join(d, 'queue')],
      code: 1,
      message:
        /q\/queue is the queue\/ directory of the queue \S+\/q: give the queue's directory, \S+\/q \(to list its jobs: dirq ls \S+\/q queue\)$/,
    },
    {
      name: 'metrics --output in a missing directory',
      args: (d) => ['metrics', d, '--output', path.join(d, 'nope', 'x.prom')],
      code: 2,
      message: /--output \S+x\.prom: the directory \S+nope does not exist: create it, or write the file elsewhere$/,
    },
    { name: 'stats of a missing queue', args: (d) => ['stats', path.join(d, 'nope')], code: 1, message: /no queue at/ },
    {
      name: 'a bad --at',
      args: (d) => ['enqueue', d, 'send', '{}', '--at', 'tomorrow'],
      code: 2,
      message: /--at must be an ISO 8601 time/,
    },
    {
      name: '--delay and --at',
      args: (d) => ['enqueue', d, 'send', '{}', '--delay', '1s', '--at', '2030-01-01T00:00:00Z'],
      code: 2,
      message: /give --delay or --at, not both/,
    },
    {
      name: 'JSON and --file',
      args: (d) => ['enqueue', d, 'send', '{}', '--file', '/etc/hostname'],
      code: 2,
      message: /give the data once: a JSON argument or --file/,
    },
    {
      name: 'a missing --file',
      args: (d) => ['enqueue', d, 'send', '--file', path.join(d, 'nope.bin')],
      code: 2,
      message: /cannot read --file .*nope\.bin: ENOENT/,
    },
    {
      name: 'a bad --jsonl line',
      args: (d) => ['enqueue', d, 'send', '--jsonl', '-'],
      input: '{"a":1}\n{"b":\n',
      code: 2,
      message: /line 2 of stdin is not valid JSON/,
    },
    {
      name: '--jsonl with --key',
      args: (d) => ['enqueue', d, 'send', '--jsonl', '-', '--key', 'k'],
      input: '{}\n',
      code: 2,
      message: /--key .* cannot be used with --jsonl/,
    },
    {
      name: 'an empty --key',
      args: (d) => ['enqueue', d, 'send', '{}', '--key', ''],
      code: 2,
      message: /key must be a non-empty string/,
    },
    {
      name: 'a bad type',
      args: (d) => ['enqueue', d, 'x'.repeat(200), '{}'],
      code: 2,
      message: /job type is too long/,
    },
    {
      name: 'show of a malformed id',
      args: (d) => ['show', d, 'nope'],
      code: 2,
      message: /not a job id: "nope" \(ids look like/,
    },
    {
      name: 'show of a job not there',
      args: (d) => ['show', d, '50-1763830000000000-gone.email'],
      code: 1,
      message: /no job 50-1763830000000000-gone\.email in any state/,
    },
    {
      name: 'show without an id',
      args: (d) => ['show', d],
      code: 2,
      message: /show: missing arguments: usage: dirq show DIR ID/,
    },
    {
      name: 'stats with a bad --sla',
      args: (d) => ['stats', d, '--sla', 'soon'],
      code: 2,
      message: /--sla must be a duration like 100ms, 30s/,
    },
    {
      name: 'stats with a bad --interval',
      args: (d) => ['stats', d, '--watch', '--interval', '-1s'],
      code: 2,
      message: /option --interval needs a value|--interval must be a duration/,
    },
    {
      name: 'retry with neither ids nor --all',
      args: (d) => ['retry', d],
      code: 2,
      message: /give the ids of the jobs to retry, or --all/,
    },
    {
      name: 'retry with ids and --all',
      args: (d) => ['retry', d, '50-1763830000000000-a.email', '--all'],
      code: 2,
      message: /give job ids or --all, not both/,
    },
    {
      name: 'retry --type without --all',
      args: (d) => ['retry', d, '50-1763830000000000-a.email', '--type', 'email'],
      code: 2,
      message: /--type selects jobs for --all/,
    },
    {
      name: 'retry of a job not there',
      args: (d) => ['retry', d, '50-1763830000000000-gone.email'],
      code: 1,
      message: /no job 50-1763830000000000-gone\.email/,
    },
    {
      name: 'rm of a job not there',
      args: (d) => ['rm', d, '50-1763830000000000-gone.email'],
      code: 1,
      message: /no job 50-1763830000000000-gone\.email/,
    },
    {
      name: 'purge of an unknown state',
      args: (d) => ['purge', d, 'old'],
      code: 2,
      message: /unknown state "old": use one of queue, delayed, done, failed, waiting$/,
    },
    {
      name: 'purge of active',
      args: (d) => ['purge', d, 'active'],
      code: 2,
      message: /active jobs cannot be purged: they are running/,
    },
    {
      name: 'purge with a bad --older-than',
      args: (d) => ['purge', d, 'done', '--older-than', '7 days'],
      code: 2,
      message: /--older-than must be a duration/,
    },
    {
      name: 'wait with a bad --timeout',
      args: (d) => ['wait', d, '50-1763830000000000-a.email', '--timeout', 'forever'],
      code: 2,
      message: /--timeout must be a duration/,
    },
    {
      name: 'wait for a job not there',
      args: (d) => ['wait', d, '50-1763830000000000-gone.email'],
      code: 1,
      message: /no job 50-1763830000000000-gone\.email/,
    },
    {
      name: 'recover of a missing queue',
      args: (d) => ['recover', path.join(d, 'nope')],
      code: 1,
      message: /no queue at .*dirq init/,
    },
    {
      name: 'fsck of a missing queue',
      args: (d) => ['fsck', path.join(d, 'nope')],
      code: 1,
      message: /nope does not exist: create a queue with dirq init/,
    },
    {
      name: 'metrics of a missing queue',
      args: (d) => ['metrics', path.join(d, 'nope')],
      code: 1,
      message: /no queue at/,
    },
    {
      name: 'init with a bad --mode',
      args: (d) => ['init', path.join(d, 'nope'), '--mode', 'rw-rw----'],
      code: 2,
      message: /--mode must be an octal file mode like 0660/,
    },
    {
      name: 'init with a mode the owner cannot write',
      args: (d) => ['init', path.join(d, 'nope'), '--mode', '0440'],
      code: 2,
      message: /--mode must be file permissions in octal with owner read and write/,
    },
    {
      name: 'an unknown flag of metrics',
      args: (d) => ['metrics', d, '--format', 'json'],
      code: 2,
      message: /unknown option --format \(see dirq metrics --help\)/,
    },
    {
      name: 'an unknown flag of fsck',
      args: (d) => ['fsck', d, '--fix'],
      code: 2,
      message: /unknown option --fix \(see dirq fsck --help\)/,
    },
  ];

  it.each(cases)('$name', async ({ args, input, code, message }) => {
    const dir = await libraryQueue();
    const run = await dirq(args(dir), input);
    expectOneLineError(run, code, message);
    expect(jobFiles(dir)).toEqual([]);
    expect(fs.existsSync(path.join(dir, 'nope'))).toBe(false);
    expect(fs.readdirSync(path.dirname(dir))).toEqual(['q']);
  });

  it('adds the stack trace with --debug', async () => {
    const dir = await libraryQueue();
    const run = await dirq(['enqueue', dir, 'send', '{}', '--priority', '500', '--debug']);
    expect(run.code).toBe(2);
    const lines = run.stderr.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^dirq: priority must be/);
    expect(lines[1]).toMatch(/^DirQueueError: priority must be/);
    expect(lines.slice(2).some((l) => /^\s+at /.test(l))).toBe(true);
    expect(jobFiles(dir)).toEqual([]);
  });
});
