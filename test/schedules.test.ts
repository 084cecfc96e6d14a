/**
 * Schedules in one process: the slot arithmetic (fake times, real zones with
 * DST gaps and repeats), the typed errors of bad specs, the files, catchUp,
 * overlap, an edit while a pool runs, a broken file beside good ones, the
 * recursive-queuing handover, and the SLA checks. The races between processes
 * and hosts are in schedules-race.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Pool, ScheduleError, type ProcessorJob } from '../dist/index.js';
import { Slots, checkScheduleSpec } from '../dist/store/schedule-spec.js';
import { scheduledJobId, scheduleUnique } from '../dist/store/names.js';
import { fsck } from '../dist/maintenance/fsck.js';
import { dirq, expectOneLineError } from './support/cli.js';
import { deadHeartbeat } from './support/fake.js';
import { openQueue, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

const iso = (ms: number | undefined): string => (ms === undefined ? 'none' : new Date(ms).toISOString());
const at = (text: string): number => Date.parse(text);

/** The jobs of schedule `name` in `state`, by slot. */
function jobsOf(dir: string, name: string, state = 'queue'): string[] {
  const unique = scheduleUnique(name);
  return fs
    .readdirSync(path.join(dir, state))
    .filter((id) => id.includes(`-${unique}.`))
    .sort();
}

/** Backdate a schedule's first cursor: the schedule began `ms` ago (it has handled nothing since). */
function beganAt(dir: string, name: string, when: number): void {
  const cursor = path.join(dir, 'schedules', `.${name}@0000000000000000`);
  fs.utimesSync(cursor, new Date(when), new Date(when));
}

describe('slots (fake times)', () => {
  it('every: aligned to the epoch, or to startAt; bounded by endAt; due() keeps the latest', () => {
    const every = new Slots({ type: 't', every: 200 });
    expect(every.next(1000)).toBe(1200);
    expect(every.next(1199)).toBe(1200);
    expect(every.due(1000, 2000, 1000)).toEqual({ slots: [1200, 1400, 1600, 1800, 2000], more: false });
    expect(every.due(1000, 2000, 2)).toEqual({ slots: [1800, 2000], more: true });
    expect(every.due(2000, 2199, 10)).toEqual({ slots: [], more: false });
    const bounded = new Slots({ type: 't', every: 1000, startAt: iso(1500), endAt: iso(3500) });
    expect(bounded.next(0)).toBe(1500);
    expect(bounded.next(1500)).toBe(2500);
    expect(bounded.next(3500)).toBeUndefined();
    expect(bounded.due(0, 10_000, 100).slots).toEqual([1500, 2500, 3500]);
  });

  it('cron in UTC, 5 and 6 fields', () => {
    const five = new Slots({ type: 't', cron: '*/5 * * * *' });
    expect(iso(five.next(at('2026-01-01T00:03:00Z')))).toBe('2026-01-01T00:05:00.000Z');
    expect(iso(five.next(at('2026-01-01T00:05:00Z')))).toBe('2026-01-01T00:10:00.000Z'); // strictly after
    const six = new Slots({ type: 't', cron: '*/10 * * * * *' });
    expect(six.due(at('2026-01-01T00:00:00Z'), at('2026-01-01T00:00:35Z'), 10).slots.map(iso)).toEqual([
      '2026-01-01T00:00:10.000Z',
      '2026-01-01T00:00:20.000Z',
      '2026-01-01T00:00:30.000Z',
    ]);
  });

  it('Europe/Berlin: a time the spring DST gap skips runs once, at the first instant after; a repeated time runs once', () => {
    const daily = new Slots({ type: 't', cron: '30 2 * * *', tz: 'Europe/Berlin' });
    // 2026-03-29: 02:00 CET becomes 03:00 CEST, so 02:30 does not exist
    const gap = daily.due(at('2026-03-28T12:00:00Z'), at('2026-03-30T12:00:00Z'), 10).slots.map(iso);
    expect(gap).toEqual(['2026-03-29T01:00:00.000Z', '2026-03-30T00:30:00.000Z']); // 03:00 CEST, then 02:30 CEST
    // 2026-10-25: 03:00 CEST becomes 02:00 CET, so 02:30 happens twice: the first one runs
    const repeat = daily.due(at('2026-10-24T12:00:00Z'), at('2026-10-26T12:00:00Z'), 10).slots.map(iso);
    expect(repeat).toEqual(['2026-10-25T00:30:00.000Z', '2026-10-26T01:30:00.000Z']);
    expect(iso(daily.next(at('2026-10-25T00:30:00Z')))).toBe('2026-10-26T01:30:00.000Z');
  });

  it('America/New_York: hourly runs every elapsed hour across the fall-back repeat; daily 01:30 once', () => {
    const hourly = new Slots({ type: 't', cron: '0 * * * *', tz: 'America/New_York' });
    expect(hourly.due(at('2026-11-01T03:30:00Z'), at('2026-11-01T07:30:00Z'), 10).slots.map(iso)).toEqual([
      '2026-11-01T04:00:00.000Z', // 00:00 EDT
      '2026-11-01T05:00:00.000Z', // 01:00 EDT
      '2026-11-01T06:00:00.000Z', // 01:00 EST
      '2026-11-01T07:00:00.000Z', // 02:00 EST
    ]);
    const daily = new Slots({ type: 't', cron: '30 1 * * *', tz: 'America/New_York' });
    expect(daily.due(at('2026-10-31T12:00:00Z'), at('2026-11-02T06:00:00Z'), 10).slots.map(iso)).toEqual([
      '2026-11-01T05:30:00.000Z',
    ]);
    const spring = new Slots({ type: 't', cron: '30 2 * * *', tz: 'America/New_York' });
    expect(iso(spring.next(at('2026-03-07T12:00:00Z')))).toBe('2026-03-08T07:00:00.000Z'); // 03:00 EDT
  });
});

describe('bad specs get a typed error that says what to do', () => {
  const bad = (spec: unknown): ScheduleError => {
    try {
      checkScheduleSpec(spec);
    } catch (error) {
      return error as ScheduleError;
    }
    throw new Error('accepted');
  };

  it('cron that does not parse, with the position; wrong field counts', () => {
    const e = bad({ type: 't', cron: '*/5 * * x *' });
    expect(e).toBeInstanceOf(ScheduleError);
    expect(e).toMatchObject({ code: 'EBADSCHEDULE', field: 'cron', position: { field: 4, offset: 8 } });
    expect(e.message).toMatch(/field 4 \(month, "x", character 9\)/);
    expect(bad({ type: 't', cron: '61 * * * * *' })).toMatchObject({ position: { field: 1, offset: 0 } });
    expect(bad({ type: 't', cron: '* * *' }).message).toMatch(/has 3 fields: give 5 .* or 6/);
    expect(bad({ type: 't', cron: '* * * * * * *' }).message).toMatch(/has 7 fields/);
  });

  it('unknown zone, bad every, both or neither, endAt before startAt, unknown fields, bad options', () => {
    expect(bad({ type: 't', cron: '* * * * *', tz: 'Mars/Olympus' })).toMatchObject({ field: 'tz' });
    expect(bad({ type: 't', cron: '* * * * *', tz: 'Mars/Olympus' }).message).toMatch(/unknown time zone.*IANA/);
    expect(bad({ type: 't', every: 99 }).message).toMatch(/every must be an integer number of ms >= 100, got 99/);
    expect(bad({ type: 't', every: 150.5 })).toMatchObject({ field: 'every' });
    expect(bad({ type: 't', every: '1s' })).toMatchObject({ field: 'every' });
    expect(bad({ type: 't', every: 1000, cron: '* * * * *' }).message).toMatch(/either cron or every, not both/);
    expect(bad({ type: 't' }).message).toMatch(/give cron .* or every/);
    expect(bad({ type: 't', every: 1000, tz: 'UTC' })).toMatchObject({ field: 'tz' });
    const order = bad({ type: 't', every: 1000, startAt: '2027-01-01T00:00:00Z', endAt: '2026-01-01T00:00:00Z' });
    expect(order).toMatchObject({ field: 'endAt' });
    expect(order.message).toMatch(/endAt .* is before startAt/);
    expect(bad({ type: 't', evry: 1000 }).message).toMatch(/unknown schedule field "evry"/);
    expect(bad({ type: '', every: 1000 })).toMatchObject({ field: 'type' });
    expect(bad({ type: 't', every: 1000, overlap: 'never' })).toMatchObject({ field: 'overlap' });
    expect(bad({ type: 't', every: 1000, catchUp: 'some' })).toMatchObject({ field: 'catchUp' });
    expect(bad({ type: 't', every: 1000, priority: 100 })).toMatchObject({ field: 'priority' });
    expect(bad({ type: 't', every: 1000, data: { f: () => 1 } })).toMatchObject({ field: 'data' });
  });

  it('a name that cannot be a file name', async () => {
    const q = await openQueue(tempDir());
    for (const name of ['', '.hidden', 'a/b', 'x@y', 'x'.repeat(101), 'é']) {
      await expect(q.schedule(name, { type: 't', every: 1000 })).rejects.toMatchObject({
        code: 'EBADSCHEDULE',
        field: 'name',
      });
    }
    await q.close();
  });
});

describe('q.schedule, q.schedules, q.unschedule and the files', () => {
  it('writes schedules/NAME.json for cat, keeps the cursor and created on replace, removes everything on unschedule', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    const info = await q.schedule('report', {
      type: 'make-report',
      data: { to: 'ops' },
      cron: '0 6 * * *',
      tz: 'Europe/Berlin',
    });
    expect(info).toMatchObject({
      name: 'report',
      type: 'make-report',
      cron: '0 6 * * *',
      tz: 'Europe/Berlin',
      paused: false,
    });
    expect(info.next).toBeInstanceOf(Date);
    const text = fs.readFileSync(path.join(dir, 'schedules', 'report.json'), 'utf8');
    expect(text).toContain('\n  "cron": "0 6 * * *",\n'); // pretty JSON, for people
    const created = (JSON.parse(text) as { created: string }).created;
    const cursors = (): string[] => fs.readdirSync(path.join(dir, 'schedules')).filter((f) => f.startsWith('.report@'));
    expect(cursors()).toEqual(['.report@0000000000000000']);
    await q.schedule('report', { type: 'make-report', every: 60_000, paused: true });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'schedules', 'report.json'), 'utf8'))).toMatchObject({
      every: 60_000,
      paused: true,
      created,
    });
    expect(cursors()).toEqual(['.report@0000000000000000']);
    expect((await q.schedules()).map((s) => [s.name, s.every, s.paused])).toEqual([['report', 60_000, true]]);
    expect(await q.unschedule('report')).toBe(true);
    expect(await q.unschedule('report')).toBe(false);
    expect(fs.readdirSync(path.join(dir, 'schedules'))).toEqual([]);
    await q.close();
  });

  it('a job carries schedule { name, at }: in its envelope, q.get(), the processor job and dirq show', async () => {
    const dir = tempDir();
    const seen: ProcessorJob[] = [];
    const pool = new Pool(dir, {
      processor: (job) => void seen.push(job),
      durable: false,
      pollInterval: 50,
    });
    await pool.start();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('tick', { type: 'tick', every: 100, data: { n: 1 }, priority: 7 });
    await until(() => seen.length >= 1, 'a scheduled job to run');
    await pool.close();
    const job = seen[0]!;
    expect(job.schedule).toEqual({ name: 'tick', at: expect.stringMatching(/^\d{4}-\d\d-\d\dT.*Z$/) });
    expect(job.id).toMatch(/^07-\d{16}-s[a-z0-9]{20}\.tick$/);
    expect(job.data).toEqual({ n: 1 });
    expect(Date.parse(job.schedule!.at) % 100).toBe(0); // the slot: a multiple of every since the epoch
    const info = await q.get(job.id);
    expect(info.schedule).toEqual(job.schedule);
    expect(info.readyAt.getTime()).toBe(Date.parse(job.schedule!.at)); // the id's time is the slot
    const envelope = JSON.parse(fs.readFileSync(path.join(dir, 'done', job.id), 'utf8').split('\n')[0]!) as {
      schedule: unknown;
    };
    expect(envelope.schedule).toEqual(job.schedule);
    const show = await dirq(['show', dir, job.id]);
    expect(show.stdout).toMatch(new RegExp(`SCHEDULE\\s+tick, the slot of ${job.schedule!.at}`));
    const [listed] = await q.schedules();
    expect(listed).toMatchObject({ name: 'tick', last: { state: expect.any(String) } });
    await q.close();
  });
});

describe('catchUp: all processes stopped for 10 slots, then one opens', () => {
  for (const [catchUp, made] of [
    ['none', 0],
    ['last', 1],
    ['all', 10],
  ] as const) {
    it(`${catchUp} makes ${made}`, async () => {
      const dir = tempDir();
      const setup = await openQueue(dir, { maintenance: false });
      // slots every 5 s from `start`: the 11th slot was 2 s ago, and the schedule last handled the 1st
      const start = Date.now() - 52_000;
      await setup.schedule('s', { type: 't', every: 5000, startAt: start, catchUp, overlap: 'allow' });
      await setup.close();
      beganAt(dir, 's', start);
      const q = await openQueue(dir); // its first sweep catches up, before open resolves
      const jobs = jobsOf(dir, 's');
      await q.close();
      expect(jobs).toHaveLength(made);
      const slots = jobs.map((id) => Number(id.slice(3, 19)) / 1000);
      if (made > 0) expect(slots.at(-1)).toBe(start + 50_000); // the latest missed slot is among them
      if (made === 10) expect(slots).toEqual(Array.from({ length: 10 }, (_, i) => start + 5000 * (i + 1)));
      // either way the cursor moved past the missed slots: nothing more to make until the next one
      const names = fs.readdirSync(path.join(dir, 'schedules'));
      expect(names).toContain(`.s@${String((start + 50_000) * 1000).padStart(16, '0')}`);
    });
  }
});

describe('overlap, edits, broken files', () => {
  it("overlap 'skip' with a job slower than the interval: never two runs at once", async () => {
    const dir = tempDir();
    const runs: { slot: string; start: number; end: number }[] = [];
    let running = 0;
    let most = 0;
    const pool = new Pool(dir, {
      processor: async (job: ProcessorJob) => {
        running++;
        most = Math.max(most, running);
        const start = Date.now();
        await new Promise((resolve) => setTimeout(resolve, 450));
        running--;
        runs.push({ slot: job.schedule!.at, start, end: Date.now() });
      },
      concurrency: 4,
      durable: false,
      pollInterval: 50,
    });
    await pool.start();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('slow', { type: 'slow', every: 100 });
    await until(() => runs.length >= 3, 'three runs', 15_000);
    await q.unschedule('slow');
    await pool.close();
    await q.close();
    expect(most).toBe(1);
    const slots = runs.map((r) => Date.parse(r.slot));
    for (let i = 1; i < slots.length; i++) expect(slots[i]! - slots[i - 1]!).toBeGreaterThanOrEqual(400); // slots skipped
  });

  it('an edit of the file from every: 1000 to every: 200 while a pool runs changes the rate within a poll', async () => {
    const dir = tempDir();
    const slots: number[] = [];
    const pool = new Pool(dir, {
      processor: (job: ProcessorJob) => void slots.push(Date.parse(job.schedule!.at)),
      durable: false,
      pollInterval: 100,
    });
    await pool.start();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('rate', { type: 'rate', every: 1000, overlap: 'allow' });
    await until(() => slots.length >= 1, 'the first run at every: 1000', 5000);
    const file = path.join(dir, 'schedules', 'rate.json');
    const edited = Date.now();
    fs.writeFileSync(file, fs.readFileSync(file, 'utf8').replace('"every": 1000', '"every": 200')); // as an editor would
    await until(() => slots.length >= 8, 'runs at every: 200', 10_000);
    await pool.close();
    await q.close();
    const after = slots.filter((s) => s > edited);
    const gaps = after.slice(1).map((s, i) => s - after[i]!);
    expect(gaps.slice(-4)).toEqual([200, 200, 200, 200]);
    expect(after[0]! - edited).toBeLessThan(1000 + 200); // within a poll (100 ms) of the edit, on the next 200 ms slot
    expect(new Set(slots).size).toBe(slots.length); // no slot twice across the edit
  });

  it('a schedule file broken by hand: a warning, INVALID in schedules, fsck reports it, the others go on', async () => {
    const dir = tempDir();
    const q0 = await openQueue(dir, { maintenance: false });
    await q0.schedule('good', { type: 'g', every: 100, overlap: 'allow' });
    await q0.close();
    fs.writeFileSync(path.join(dir, 'schedules', 'bad.json'), '{"type": "b", "every": 5}\n');
    fs.writeFileSync(path.join(dir, 'schedules', 'worse.json'), '{"type": \n');
    const warnings: Error[] = [];
    const q = await openQueue(dir);
    q.on('warning', (w) => warnings.push(w));
    await until(() => jobsOf(dir, 'good').length >= 3, 'the good schedule to keep making jobs');
    await until(() => warnings.length >= 2, 'a warning per broken file');
    expect(warnings.map((w) => (w as { code?: string }).code)).toEqual(['EBADSCHEDULE', 'EBADSCHEDULE']);
    const list = await q.schedules();
    expect(list.find((s) => s.name === 'bad')?.invalid).toMatch(/every must be an integer number of ms >= 100/);
    expect(list.find((s) => s.name === 'worse')?.invalid).toMatch(/not JSON/);
    expect(list.find((s) => s.name === 'good')?.invalid).toBeUndefined();
    const run = await dirq(['schedules', dir]);
    expect(run.stdout).toMatch(/bad .*INVALID: .*every must be/);
    await q.close();
    const report = await fsck(dir);
    expect(report.findings.filter((f) => f.kind === 'schedule').map((f) => f.path)).toEqual([
      'schedules/bad.json',
      'schedules/worse.json',
    ]);
  });
});

describe('recursive queuing and SLAs', () => {
  it('a running job enqueues its own next run under its own key (the key is handed over)', async () => {
    const dir = tempDir();
    const results: unknown[] = [];
    const pool = new Pool(dir, {
      processor: async (job: ProcessorJob) => {
        const { n } = job.data as { n: number };
        if (n < 3) results.push(await job.enqueue('again', { n: n + 1 }, { key: 'loop' }));
        return n;
      },
      durable: false,
      pollInterval: 50,
    });
    await pool.start();
    const q = await openQueue(dir, { maintenance: false });
    await q.enqueue('again', { n: 0 }, { key: 'loop' });
    await until(() => fs.readdirSync(path.join(dir, 'done')).length === 4, 'four runs');
    await pool.close();
    expect(results).toHaveLength(3);
    for (const r of results) expect(r).toMatchObject({ duplicate: false });
    expect(fs.readdirSync(path.join(dir, 'keys'))).toEqual([]); // the last run's ending freed the key
    await q.close();
  });

  it('dirq stats --sla exits 3 naming a late schedule; metrics export last success and lateness', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('hourly', { type: 'h', every: 3_600_000, sla: 1 }); // nothing completes within 1 ms
    await q.schedule('fine', { type: 'f', every: 3_600_000, sla: 3_600_000 });
    await until(async () => (await q.schedules()).some((s) => s.late), 'the schedule to be late');
    await q.close();
    const stats = await dirq(['stats', dir, '--sla', '1h']);
    expect(stats.code).toBe(3);
    expect(stats.stdout.trim().split('\n')).toHaveLength(1);
    expect(stats.stdout).toMatch(/^CRITICAL: schedule hourly is late: no run of it has completed yet, over its sla of/);
    const metrics = await dirq(['metrics', dir]);
    expect(metrics.stdout).toMatch(/dirqueue_schedule_lateness_seconds\{queue="[^"]+",schedule="hourly"\} \d/);
    expect(metrics.stdout).toMatch(/dirqueue_schedule_lateness_seconds\{queue="[^"]+",schedule="fine"\} 0\n/);
    expect(metrics.stdout).toMatch(
      /dirqueue_schedule_last_success_timestamp_seconds\{queue="[^"]+",schedule="fine"\} 0\n/,
    );
    const json = JSON.parse((await dirq(['schedules', dir, '--json'])).stdout) as { name: string; late: boolean }[];
    expect(json.map((s) => [s.name, s.late])).toEqual([
      ['fine', false],
      ['hourly', true],
    ]);
  });
});

describe('the CLI verbs and fsck', () => {
  it('dirq schedule, schedules and unschedule, with --json; bad input exits 2 with one line', async () => {
    const dir = tempDir();
    await (await openQueue(dir, { maintenance: false })).close();
    const made = await dirq([
      'schedule',
      dir,
      'rep',
      'report',
      '{"to":"ops"}',
      '--cron',
      '*/5 * * * *',
      '--tz',
      'Europe/Berlin',
      '--sla',
      '15m',
      '--json',
    ]);
    expect(made.code).toBe(0);
    expect(JSON.parse(made.stdout)).toMatchObject({
      schema: 1,
      name: 'rep',
      cron: '*/5 * * * *',
      tz: 'Europe/Berlin',
      sla: 900_000,
      spec: { data: { to: 'ops' } },
    });
    const text = await dirq(['schedules', dir]);
    expect(text.stdout).toMatch(
      /^NAME\s+TYPE\s+WHEN\s+NEXT \(LOCAL\)\s+NEXT \(UTC\)\s+LAST\s+STATUS\nrep\s+report\s+cron "\*\/5 \* \* \* \*" Europe\/Berlin .* ok \(sla 15m\)$/m,
    );
    const list = JSON.parse((await dirq(['schedules', dir, '--json'])).stdout) as { name: string; next: string }[];
    expect(list).toEqual([
      expect.objectContaining({ name: 'rep', next: expect.stringMatching(/:[0-5][05]:00\.000Z$/) }),
    ]);
    expectOneLineError(
      await dirq(['schedule', dir, 'x', 't', '--cron', '*/5 * * x *']),
      2,
      /does not parse at field 4 \(month, "x", character 9\)/,
    );
    expectOneLineError(
      await dirq(['schedule', dir, 'x', 't', '--every', '50ms']),
      2,
      /every must be an integer number of ms >= 100/,
    );
    expectOneLineError(await dirq(['schedule', dir, 'x', 't']), 2, /give --cron EXPR or --every DUR/);
    expectOneLineError(await dirq(['schedule', dir, 'a/b', 't', '--every', '1s']), 2, /schedule name must be/);
    expectOneLineError(
      await dirq(['schedule', dir, 'x', 't', '--every', '1s', '--tz', 'Nowhere/Land']),
      2,
      /tz applies to cron/,
    );
    expect(JSON.parse((await dirq(['unschedule', dir, 'rep', '--json'])).stdout)).toEqual({
      schema: 1,
      name: 'rep',
      removed: true,
    });
    expectOneLineError(await dirq(['unschedule', dir, 'rep']), 1, /no schedule "rep"/);
  });

  it('fsck --repair completes a slot a dead maker left half-made, and deletes orphaned and second cursors', async () => {
    const dir = tempDir();
    const q = await openQueue(dir, { maintenance: false });
    await q.schedule('half', { type: 't', every: 3_600_000 });
    await q.schedule('gone', { type: 't', every: 3_600_000 });
    await q.close();
    // a maker (dead, on this host) wrote its job, took the cursor, and died before placing the job
    const maker = deadHeartbeat(dir);
    const slotUs = 1_800_000_000_000_000;
    const id = scheduledJobId('half', 50, 't', slotUs);
    fs.writeFileSync(
      path.join(dir, 'tmp', `.slot.${maker}.${id}`),
      '{"type":"t","schedule":{"name":"half","at":"x"}}\n',
    );
    const sched = (f: string): string => path.join(dir, 'schedules', f);
    fs.renameSync(sched('.half@0000000000000000'), sched(`.half@${slotUs}@${maker}`));
    fs.writeFileSync(sched('.half@0000000000000001'), ''); // a copy's second cursor
    fs.unlinkSync(sched('gone.json')); // an unschedule cut short: its cursor stays
    const report = await fsck(dir);
    expect(report.findings.filter((f) => f.kind === 'schedule').map((f) => f.path)).toEqual([
      'schedules/.gone@0000000000000000',
      'schedules/.half@0000000000000001',
      `schedules/.half@${slotUs}@${maker}`,
    ]);
    const repaired = await fsck(dir, { repair: true });
    expect(repaired.unrepaired).toBe(0);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([id]);
    expect(fs.readdirSync(path.join(dir, 'schedules')).sort()).toEqual(['.half.last', `.half@${slotUs}`, 'half.json']);
    expect((await fsck(dir)).findings.filter((f) => f.kind === 'schedule')).toEqual([]);
  });
});
