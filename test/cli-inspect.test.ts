/**
 * Looking at a queue: dirq show, stats (--sla, --watch, the last minute) and
 * metrics (Prometheus text format), spawned as users run them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { table } from '../dist/cli/common.js';
import {
  CLI,
  closed,
  dirq,
  enqueued,
  expectOneLineError,
  newQueue,
  ok,
  okJson,
  runAll,
  onTerminal,
} from './support/cli.js';
import { exited, openQueue, spawnNode, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

interface StatsJson {
  schema: number;
  counts: Record<string, number>;
  oldest: Record<string, number | null>;
  waiting: number | null;
  waitingId: string | null;
  waitingState: 'queue' | 'delayed' | null;
  interval?: StatsJson['recent'];
  recent: {
    windowMs: number;
    completed: number;
    failed: number;
    perSecond: number;
    latency: { p50: number; p95: number; max: number } | null;
  };
  sla?: { limit: number; ok: boolean };
  totals: Record<string, number>;
}

describe('dirq show', () => {
  it('shows a done job: data, attempts, result, history', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{"to":"a@example.com"}', '--priority', '20');
    await runAll(dir);
    const lines = (await ok(['show', dir, id])).split('\n');
    expect(lines.slice(0, 5)).toEqual([
      `ID        ${id}`,
      'STATE     done',
      'TYPE      email',
      'PRIORITY  20',
      'ATTEMPTS  succeeded on attempt 1 of 3',
    ]);
    expect(lines).toContain(`FILE      ${path.join(dir, 'done', id)}`);
    expect(lines).toContain('DATA      {"to":"a@example.com"}');
    expect(lines).toContain('RESULT    {"ok":{"to":"a@example.com"}}');
    expect(lines).toContainEqual(expect.stringMatching(/^CREATED {3}\d{4}-\d\d-\d\dT.*Z \(\d+(ms|s) ago\)$/));
    const history = lines.slice(lines.indexOf('HISTORY') + 1);
    expect(history[0]).toMatch(/^ {2}AT\s+EVENT\s+ATTEMPT\s+CLAIM\s+DETAIL$/);
    expect(history[1]).toMatch(/^ {2}\S+Z\s+result\s+1\s+\S+\.[0-9a-z]+\s+\{"ok":\{"to":"a@example\.com"\}\}$/);
  });

  it('shows a failed job with its error and stack, found by its path too; --json has everything', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '[1]', '--attempts', '1');
    await runAll(dir, () => 'the SMTP server said no');
    const text = await ok(['show', dir, path.join(dir, 'failed', id)]);
    expect(text).toMatch(/\nSTATE {5}failed\n/);
    expect(text).toMatch(/\nATTEMPTS {2}1 of 1 used\n/);
    expect(text).toMatch(/\nERROR {5}the SMTP server said no \(EPROCESS\)\n {12}at /);
    expect(text).toMatch(/\n {2}\S+Z\s+error\s+1\s+\S+\s+the SMTP server said no\n?$/);
    const job = await okJson<Record<string, unknown>>(['show', dir, id]);
    expect(job).toMatchObject({
      id,
      state: 'failed',
      type: 'email',
      priority: 50,
      data: [1],
      attemptsMade: 1,
      attempts: 1,
      error: {
        message: 'the SMTP server said no',
        code: 'EPROCESS',
        stack: expect.stringContaining('Error: the SMTP server said no'),
      },
      history: [expect.objectContaining({ event: 'error', attempt: 1, message: 'the SMTP server said no' })],
      path: path.join(dir, 'failed', id),
    });
  });

  it('a torn done/ job: show says its success is not proven, ls done marks it, both --json carry torn', async () => {
    const dir = await newQueue();
    const torn = await enqueued(dir, 'email', '1');
    const kept = await enqueued(dir, 'email', '2');
    await runAll(dir);
    const file = path.join(dir, 'done', torn);
    fs.writeFileSync(file, `${fs.readFileSync(file, 'utf8').split('\n')[0]}\n`); // a power cut kept the rename, not the result line
    const lines = (await ok(['show', dir, torn])).split('\n');
    expect(lines).toContain('ATTEMPTS  not proven: the result of attempt 1 of 3 was lost (torn), so it runs again');
    expect(lines).toContainEqual(expect.stringMatching(/^RESULT {4}torn: it has no result event/));
    expect(await okJson(['show', dir, torn])).toMatchObject({
      attemptsMade: 0,
      torn: expect.stringMatching(/no result event/),
    });

    const listed = await dirq(['ls', dir, 'done']);
    expect(listed.code).toBe(0);
    const [header, ...rows] = listed.stdout.trimEnd().split('\n');
    expect(header).toMatch(/\sATTEMPTS\s+RESULT$/);
    expect(rows).toEqual([
      expect.stringMatching(new RegExp(`^${torn}\\s.*\\s0/3\\s+torn$`)),
      expect.stringMatching(new RegExp(`^${kept}\\s.*\\s0/3\\s+ok$`)),
    ]);
    expect(listed.stderr).toMatch(/^\(1 torn: the result was lost.*dirq fsck --repair/);
    const json = await okJson<Record<string, unknown>[]>(['ls', dir, 'done']);
    expect(json.map((job) => [job.id, job.torn])).toEqual([
      [torn, expect.stringMatching(/no result event/)],
      [kept, undefined],
    ]);
  });

  it('finds a delayed job by its delayed/ name, and shows when it runs', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'report', '--delay', '2h');
    const [name] = fs.readdirSync(path.join(dir, 'delayed'));
    const text = await ok(['show', dir, `delayed/${name}`]);
    expect(text).toMatch(new RegExp(`^ID {8}${id.replace(/\./g, '\\.')}\n`));
    expect(text).toMatch(/\nRUNS AT {3}\S+Z \(in 1h59m\)\n/);
    expect(text).toMatch(/\nDATA {6}\(none\)\n/);
  });
});

describe('tables of any length (D10)', () => {
  it('lays out 200,000 rows, past what spreading them into Math.max can take', () => {
    const rows = Array.from({ length: 200_000 }, (_, i) => [String(i), i === 123_456 ? 'the widest cell' : 'x']);
    const lines = table(['N', 'CELL'], rows, ['right', 'left']).split('\n');
    expect(lines).toHaveLength(200_001);
    expect(lines[0]).toBe('     N  CELL');
    expect(lines[123_457]).toBe('123456  the widest cell');
  });

  it('dirq show prints a job with 200,000 history lines', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    fs.appendFileSync(
      path.join(dir, 'queue', id),
      '{"event":"retry","at":"2026-01-01T00:00:00.000Z"}\n'.repeat(200_000),
    );
    const text = await ok(['show', dir, id]);
    expect(text.split('\n').filter((l) => /^ {2}\S+Z\s+retry\s/.test(l)).length).toBe(200_000);
  });
});

/** Say in dirqueue.json that the queue was made `ms` ago. */
function madeAgo(dir: string, ms: number): void {
  const file = path.join(dir, 'dirqueue.json');
  const settings = JSON.parse(fs.readFileSync(file, 'utf8')) as Record<string, unknown>;
  fs.writeFileSync(file, JSON.stringify({ ...settings, created: new Date(Date.now() - ms).toISOString() }));
}

describe('dirq stats', () => {
  it('--sla counts a delayed job past its due time as waiting (item 4)', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'report', '{}', '--delay', '1s');
    const [name] = fs.readdirSync(path.join(dir, 'delayed'));
    const due = String((Date.now() - 1_800_000) * 1000).padStart(16, '0'); // as if its second had passed half an hour ago, unpromoted
    fs.renameSync(path.join(dir, 'delayed', name!), path.join(dir, 'delayed', `${due}~${id}`));
    const run = await dirq(['stats', dir, '--sla', '2s']);
    expect(run).toMatchObject({ code: 3, stderr: '' });
    expect(run.stdout).toMatch(
      new RegExp(
        `^CRITICAL: job ${id.replace(/\./g, '\\.')} has waited 30m past its due time in delayed/ \\(nothing has moved it to queue/\\), over the SLA of 2s \\(0 jobs ready\\) \\| wait=18\\d\\d\\.\\ds;;2 ready=0\n$`,
      ),
    );
    const stats = await okJson<StatsJson>(['stats', dir]);
    expect(stats).toMatchObject({ schema: 1, waitingId: id, waitingState: 'delayed' });
    expect(stats.waiting).toBeGreaterThanOrEqual(1_800_000);
    expect(await ok(['stats', dir])).toMatch(
      /\nLongest wait: 30m, past its due time in delayed\/\nNext delayed job due: overdue by 30m\n/,
    );
    expect((await dirq(['stats', dir, '--sla', '1h'])).code).toBe(0);
  });

  it('divides by the time the queue has existed when it is younger than a minute (item 9)', async () => {
    const dir = await newQueue();
    madeAgo(dir, 10_000);
    for (let i = 0; i < 5; i++) await enqueued(dir, 'email', String(i));
    await runAll(dir);
    const { recent } = await okJson<StatsJson>(['stats', dir]);
    expect(recent.windowMs).toBeGreaterThanOrEqual(10_000);
    expect(recent.windowMs).toBeLessThan(60_000);
    expect(recent.perSecond).toBe(Math.round((5 / (recent.windowMs / 1000)) * 100) / 100);
    expect(await ok(['stats', dir])).toMatch(/\nLast \d+s: 5 done, 0 failed \(0\.\d+\/s\)/);
  });

  it('counts a job seen in two directories once, where it went (item 9)', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    // what a listing sees when the job is claimed between reading queue/ and active/: both names
    fs.linkSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@host.1.abc.0`));
    const stats = await okJson<StatsJson>(['stats', dir]);
    expect(stats.counts).toEqual({ queue: 0, delayed: 0, active: 1, done: 0, failed: 0, waiting: 0 });
    expect(Object.values(stats.counts).reduce((a, b) => a + b)).toBe(1);
  });

  it('ages active/ from the claim, not from when the job became ready (item 9)', async () => {
    const dir = await newQueue();
    const hourAgo = String((Date.now() - 3600_000) * 1000).padStart(16, '0');
    const id = `50-${hourAgo}-old.email`;
    fs.writeFileSync(path.join(dir, 'queue', id), '{}\n'); // ready an hour ago
    const q = await openQueue(dir);
    const job = await q.claim();
    expect(job!.id).toBe(id);
    const first = await okJson<StatsJson>(['stats', dir]);
    expect(first.oldest.active).toBeLessThan(60_000);
    expect(await ok(['show', dir, id])).toMatch(
      new RegExp(`\nCLAIMED BY  ${job!.claim.replace(/\./g, '\\.')}, \\S+Z \\(\\d+(ms|s) ago\\)\n`),
    );
    await job!.progress({ pct: 50 }); // an append moves the file's times: the claim's first event stands in
    const second = await okJson<StatsJson>(['stats', dir]);
    expect(second.oldest.active).toBeLessThan(60_000);
    await job!.complete();
    await q.close();
  });

  it('counts jobs that ended in the last minute, with their latency; older ones do not count', async () => {
    const dir = await newQueue();
    madeAgo(dir, 3600_000);
    for (let i = 0; i < 4; i++) await enqueued(dir, 'email', String(i), '--attempts', '1');
    await runAll(dir, (data) => (data === 3 ? 'no' : undefined));
    const [old] = fs.readdirSync(path.join(dir, 'done'));
    const twoMinutesAgo = new Date(Date.now() - 120_000);
    fs.utimesSync(path.join(dir, 'done', old!), twoMinutesAgo, twoMinutesAgo);
    const stats = await okJson<StatsJson>(['stats', dir]);
    expect(stats.counts).toMatchObject({ done: 3, failed: 1 });
    expect(stats.recent).toEqual({
      windowMs: 60_000,
      completed: 2,
      failed: 1,
      perSecond: 0.05,
      latency: { p50: expect.any(Number), p95: expect.any(Number), max: expect.any(Number) },
    });
    expect(stats.recent.latency!.p50).toBeGreaterThanOrEqual(0);
    expect(stats.recent.latency!.max).toBeGreaterThanOrEqual(stats.recent.latency!.p50);
    expect(await ok(['stats', dir])).toMatch(
      /\nLast minute: 2 done, 1 failed \(0\.05\/s\); latency p50 \d+(ms|s), p95 \d+(ms|s), max \d+(ms|s)\n/,
    );
    // the lifetime totals count the job whose file is too old for the last minute
    expect(stats.totals).toEqual({ enqueued: 4, completed: 3, retried: 0, failed: 1, recovered: 0 });
    expect(await ok(['stats', dir])).toMatch(
      /\nSince the queue was made \(each process adds its counts every 5s\): 4 enqueued, 3 completed, 0 retried, 1 failed, 0 recovered\n/,
    );
  });

  it('says when no jobs ended in the last minute', async () => {
    const dir = await newQueue();
    madeAgo(dir, 3600_000);
    expect(await ok(['stats', dir])).toMatch(/\nLast minute: no jobs ended\n/);
    expect((await okJson<StatsJson>(['stats', dir])).recent).toEqual({
      windowMs: 60_000,
      completed: 0,
      failed: 0,
      perSecond: 0,
      latency: null,
    });
  });

  it('--sla: exits 0 with an OK line within the SLA, 3 with a CRITICAL line naming the job that waited too long', async () => {
    const dir = await newQueue();
    expect(await dirq(['stats', dir, '--sla', '1m'])).toEqual({
      code: 0,
      stdout: 'OK: nothing is waiting in queue/, within the SLA of 1m (0 jobs ready) | wait=0.0s;;60 ready=0\n',
      stderr: '',
    });
    const oldest = await enqueued(dir, 'email', '{}');
    await enqueued(dir, 'email', '{}', '--priority', '1');
    const within = await dirq(['stats', dir, '--sla', '1h']);
    expect(within).toMatchObject({ code: 0, stderr: '' });
    expect(within.stdout).toMatch(
      /^OK: the longest wait in queue\/ is \d+(ms|s), within the SLA of 1h \(2 jobs ready\) \| wait=\d+\.\ds;;3600 ready=2\n$/,
    );
    // the first job was enqueued by a process that has exited since: it has waited more than 1 ms
    const breached = await dirq(['stats', dir, '--sla', '1ms']);
    expect(breached).toMatchObject({ code: 3, stderr: '' });
    expect(breached.stdout).toMatch(
      new RegExp(
        `^CRITICAL: job ${oldest.replace(/\./g, '\\.')} has waited \\d+(ms|s) in queue/, over the SLA of 1ms \\(2 jobs ready\\) \\| wait=\\d+\\.\\ds;;0\\.001 ready=2\n$`,
      ),
    );
  });

  it('--sla --quiet prints nothing within the SLA (for cron), the CRITICAL line otherwise', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    expect(await dirq(['stats', dir, '--sla', '1h', '--quiet'])).toEqual({ code: 0, stdout: '', stderr: '' });
    const breached = await dirq(['stats', dir, '--sla', '1ms', '-q']);
    expect(breached.code).toBe(3);
    expect(breached.stdout).toMatch(/^CRITICAL: job /);
  });

  it('--sla --json adds the verdict to the stats object and keeps the exit code', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    const run = await dirq(['stats', dir, '--sla', '1ms', '--json']);
    expect(run.code).toBe(3);
    const stats = JSON.parse(run.stdout) as StatsJson;
    expect(stats).toMatchObject({ counts: { queue: 1 }, waitingId: id, sla: { limit: 1, ok: false } });
    expect(stats.waiting).toBeGreaterThan(1);
  });

  it('--watch repeats plain blocks into a pipe and stops on SIGINT with exit 0', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    const child = spawnNode([CLI, 'stats', dir, '--watch', '--interval', '50ms']);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    const headers = (): number =>
      out.split('\n').filter((l) => l.startsWith(`dirq stats ${dir}: every 50ms, at `)).length;
    await until(() => headers() >= 3, 'three refreshes');
    child.kill('SIGINT');
    expect(await exited(child)).toBe(0);
    await closed(child.stdout!);
    expect(out).not.toContain('\x1b');
    const blocks = out.split(/^dirq stats .*\n/m).slice(1);
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    for (const block of blocks) expect(block).toMatch(/^\nSTATE\s+JOBS\s+OLDEST\nqueue\s+1\s[^]*\n\n$/);
  });

  it('--watch clears and redraws in place on a terminal; Ctrl-C stops it', async () => {
    const dir = await newQueue();
    const child = onTerminal(['stats', dir, '--watch', '--interval', '50ms']);
    let tty = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (tty += chunk));
    // eslint-disable-next-line no-control-regex -- the terminal's escapes (\x1b[H\x1b[2J, clear the screen) are what the test looks for
    await until(() => (tty.match(/\x1b\[H\x1b\[2J/g) ?? []).length >= 2, 'two redraws');
    child.stdin!.write('\x03'); // Ctrl-C on the terminal: SIGINT to dirq
    expect(await exited(child)).toBe(0);
    // eslint-disable-next-line no-control-regex -- likewise
    expect(tty).toMatch(/^\x1b\[H\x1b\[2Jdirq stats /);
  });

  it('--watch shows the rate over the refresh interval, not only over the last minute (item 9)', async () => {
    const dir = await newQueue();
    madeAgo(dir, 3600_000);
    for (let i = 0; i < 3; i++) await enqueued(dir, 'email', String(i));
    await runAll(dir);
    const child = spawnNode([CLI, 'stats', dir, '--watch', '--json', '--interval', '10m']);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    await until(() => out.includes('\n'), 'the first refresh');
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    const first = JSON.parse(out.split('\n')[0]!) as StatsJson;
    expect(first.interval).toMatchObject({ windowMs: 600_000, completed: 3, failed: 0, perSecond: 0.01 });
    expect(first.recent).toMatchObject({ windowMs: 60_000, completed: 3, perSecond: 0.05 });
  });

  it('--watch --json prints one object per line', async () => {
    const dir = await newQueue();
    const child = spawnNode([CLI, 'stats', dir, '--watch', '--json', '--interval', '20ms']);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    await until(() => out.split('\n').length > 3, 'three lines');
    child.kill('SIGTERM');
    expect(await exited(child)).toBe(0);
    await closed(child.stdout!);
    for (const line of out.trimEnd().split('\n')) expect(JSON.parse(line)).toMatchObject({ counts: { queue: 0 } });
  });
});

describe('dirq metrics', () => {
  /** Each line is a comment or `name{labels} value`. */
  const SAMPLE =
    /^(dirqueue_[a-z_]+)\{((?:[a-z_]+="(?:[^"\\\n]|\\["\\n])*",?)*)\} (-?\d+(?:\.\d+)?(?:e[+-]?\d+)?|NaN|[+-]Inf)$/;

  it('prints the Prometheus text format: HELP and TYPE per family, escaped labels', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    await enqueued(dir, 'email', '{}', '--attempts', '1');
    await enqueued(dir, 'report', '{}', '--delay', '1h');
    await enqueued(dir, 'we"ird\\type\nx', '{}');
    const q = await openQueue(dir);
    await (await q.claim())!.complete('ok');
    await q.close();
    const text = await ok(['metrics', dir]);
    const lines = text.trimEnd().split('\n');
    const families = new Set<string>();
    for (const line of lines) {
      if (line.startsWith('# HELP ')) families.add(line.split(' ')[2]!);
      else if (line.startsWith('# TYPE '))
        expect(line).toMatch(/^# TYPE (dirqueue_[a-z_]+ gauge|dirqueue_[a-z_]+_total counter)$/);
      else {
        const m = SAMPLE.exec(line);
        expect(m, line).not.toBeNull();
        expect(families.has(m![1]!), `${m![1]} has HELP before its samples`).toBe(true);
      }
    }
    const q1 = `queue="${dir}"`;
    expect(lines).toContain(`dirqueue_jobs{${q1},state="queue"} 2`);
    expect(lines).toContain(`dirqueue_jobs{${q1},state="delayed"} 1`);
    expect(lines).toContain(`dirqueue_jobs{${q1},state="done"} 1`);
    expect(lines).toContain(`dirqueue_oldest_age_seconds{${q1},state="active"} 0`);
    expect(lines).toContain(`dirqueue_jobs_by_type{${q1},type="we\\"ird\\\\type\\nx",state="queue"} 1`);
    expect(lines).toContain(`dirqueue_jobs_by_type{${q1},type="report",state="delayed"} 1`);
    expect(lines).toContain(`dirqueue_completed_last_minute{${q1}} 1`);
    expect(lines).toContainEqual(
      expect.stringMatching(new RegExp(`^dirqueue_latency_seconds\\{queue="[^"]+",quantile="0\\.95"\\} \\d`)),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^dirqueue_longest_wait_seconds\{queue="[^"]+"\} \d+(\.\d+)?$/));
    expect(lines).toContain(`dirqueue_job_events_total{${q1},type="email",event="enqueued"} 2`);
    expect(lines).toContain(`dirqueue_job_events_total{${q1},type="email",event="completed"} 1`);
    expect(lines).toContain(`dirqueue_job_events_total{${q1},type="email",event="failed"} 0`);
    expect(lines).toContain(`dirqueue_job_events_total{${q1},type="report",event="enqueued"} 1`);
  });

  it('keeps lifetime totals that retention and purges do not lower', async () => {
    const dir = await newQueue();
    await ok(['enqueue', dir, 'bulk', '--jsonl', '-', '--attempts', '1'], '1\n2\n3\n4\n');
    await runAll(dir, (data) => (data === 4 ? 'no' : undefined));
    const events = async (): Promise<Record<string, number>> => {
      const families = await okJson<{ name: string; samples: { labels: Record<string, string>; value: number }[] }[]>([
        'metrics',
        dir,
      ]);
      const total = families.find((f) => f.name === 'dirqueue_job_events_total')!;
      return Object.fromEntries(
        total.samples.filter((x) => x.labels.type === 'bulk').map((x) => [String(x.labels.event), x.value]),
      );
    };
    const expected = { enqueued: 4, completed: 3, retried: 0, failed: 1, recovered: 0 };
    expect(await events()).toEqual(expected);
    await ok(['purge', dir, 'done']);
    await ok(['purge', dir, 'failed']);
    await ok(['recover', dir]); // a sweep folds the per-process counts into workers/totals
    expect(await events()).toEqual(expected);
    expect(fs.readdirSync(path.join(dir, 'workers')).filter((n) => n.startsWith('totals'))).toEqual(['totals']);
  });

  it('leaves latency out when no job completed, and writes a file atomically with --output', async () => {
    const dir = await newQueue();
    const out = path.join(tempDir(), 'dirqueue.prom');
    expect(await dirq(['metrics', dir, '--output', out])).toEqual({ code: 0, stdout: '', stderr: '' });
    const text = fs.readFileSync(out, 'utf8');
    expect(text).toMatch(/^# HELP dirqueue_jobs /);
    expect(text).not.toContain('dirqueue_latency_seconds');
    expect(fs.readdirSync(path.dirname(out))).toEqual(['dirqueue.prom']);
    expect(fs.statSync(out).mode & 0o777).toBe(0o644);
  });

  it('prints the families as JSON with --json', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    const families = await okJson<
      { name: string; help: string; type: string; samples: { labels: Record<string, string>; value: number }[] }[]
    >(['metrics', dir]);
    const jobs = families.find((f) => f.name === 'dirqueue_jobs')!;
    expect(jobs).toMatchObject({ type: 'gauge', help: expect.any(String) });
    expect(jobs.samples).toContainEqual({ labels: { queue: dir, state: 'queue' }, value: 1 });
  });

  it('fails with one line for an unwritable --output', async () => {
    const dir = await newQueue();
    const taken = path.join(tempDir(), 'x.prom');
    fs.mkdirSync(taken); // a directory where the file should go
    expectOneLineError(
      await dirq(['metrics', dir, '--output', taken]),
      1,
      /x\.prom is a directory, not a regular file/,
    );
  });
});

describe('dirq ls --type, --grep, --older-than', () => {
  /** Rewrite a job file's created time, as if it had been enqueued `ms` ago. */
  function backdate(file: string, ms: number): void {
    const [first, ...rest] = fs.readFileSync(file, 'utf8').split('\n');
    const envelope = { ...(JSON.parse(first!) as object), created: new Date(Date.now() - ms).toISOString() };
    fs.writeFileSync(file, [JSON.stringify(envelope), ...rest].join('\n'));
  }

  it('keeps only the jobs that match every filter given; --limit and the count apply to those', async () => {
    const dir = await newQueue();
    const q = await openQueue(dir);
    const mail = (await q.enqueue('send', { to: 'a@example.com' }, { attempts: 1 })).id;
    const other = (await q.enqueue('send', { to: 'b@example.com' }, { attempts: 1 })).id;
    const photo = (await q.enqueue('resize', { path: 'a@example.com.jpg' }, { attempts: 1 })).id;
    await q.close();
    await runAll(dir, (data) =>
      (data as { to?: string }).to === 'b@example.com' ? 'connect ECONNREFUSED 10.0.0.1:25' : 'no such file',
    );
    backdate(path.join(dir, 'failed', mail), 2 * 3600_000);
    const ids = async (...filters: string[]): Promise<string[]> =>
      (await okJson<{ id: string }[]>(['ls', dir, 'failed', ...filters])).map((job) => job.id);

    expect(await ids('--type', 'send')).toEqual([mail, other]);
    expect(await ids('--type', 'send', '--type', 'resize')).toEqual([mail, other, photo]);
    expect(await ids('--grep', 'a@example.com')).toEqual([mail, photo]); // in the data
    expect(await ids('--grep', 'ECONNREFUSED')).toEqual([other]); // in the error
    expect(await ids('--grep', 'econnrefused')).toEqual([]); // case matters, as grep -F
    expect(await ids('--older-than', '1h')).toEqual([mail]);
    expect(await ids('--type', 'resize', '--grep', 'a@example.com', '--older-than', '1h')).toEqual([]);

    const limited = await dirq(['ls', dir, 'failed', '--grep', 'a@example.com', '--limit', '1']);
    expect(limited.code).toBe(0);
    expect(limited.stdout.split('\n')[1]).toMatch(new RegExp(`^${mail.replace(/\./g, '\\.')}\\s+send\\s`));
    expect(limited.stderr).toBe('(1 of 2 matching jobs in failed/; raise --limit to see more)\n');
    expect(await dirq(['ls', dir, 'failed', '--type', 'thumbnail'])).toMatchObject({
      code: 0,
      stdout: '',
      stderr: 'No matching jobs in failed/.\n',
    });
  });

  it('refuses a bad --older-than or an empty --grep in one line', async () => {
    const dir = await newQueue();
    expectOneLineError(await dirq(['ls', dir, '--older-than', 'yesterday']), 2, /--older-than must be a duration like/);
    expectOneLineError(await dirq(['ls', dir, '--grep', '']), 2, /--grep needs some text/);
  });
});
