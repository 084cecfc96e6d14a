/** dirq stats DIR: counts, ages, types, the last minute; --sla for monitors, --watch like top. */
import { pauseJson } from './pause.js';
import { describeLimit } from './limit.js';
import type { LimitInfo } from '../queue/limits.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { formatAge, parseDuration } from '../store/duration.js';
import type { Stats } from '../queue/inspect.js';
import { Layout, STATES } from '../store/layout.js';
import type { Queue } from '../queue/queue.js';
import type { ScheduleInfo } from '../queue/schedules.js';
import { recent, type Recent } from '../queue/throughput.js';
import { COUNTERS, FLUSH_MS, type Counter } from '../store/totals.js';
import {
  EXIT_CHECK,
  jsonText,
  openExisting,
  parse,
  print,
  printJson,
  table,
  type Align,
  type Command,
} from './common.js';

export const stats: Command = {
  name: 'stats',
  summary: 'counts and ages per state, types, last-minute throughput; --sla for monitors',
  help: `Usage: dirq stats DIR [--json] [--sla D [--quiet]] [--watch [--interval D]]

Show, for the queue in DIR: how many jobs are in each state and how old the
oldest of them is (since it became ready; in delayed/, since it was put
there; in active/, since it was claimed); when the next delayed job is due;
the longest any job that may run has waited to start (in queue/, or past
its due time in delayed/); the jobs of each type by state; the jobs that
ended in the last minute (or since the queue was made, if it is younger):
how many, how fast, and their latency (from ready to ended), read from the
files in done/ and failed/; and the lifetime totals (jobs enqueued,
completed, retried, failed and recovered since the queue was made, as the
library counted them; retention and purges do not lower them); and the
pauses and the limits in force, with how much of each limit is in use
(dirq limits lists them, and broken limit files, in full).

The counts are one pass over the directories in the order jobs flow
(delayed, queue, active, done, failed): a job that moves on meanwhile is
counted once, where it arrived; one moving back (a release, a retry) may
be missed. The lifetime totals are what each process has written: a
process writes its counts every ${FLUSH_MS / 1000}s (and when it closes), so while
workers run the totals trail done/ and failed/ by up to ${FLUSH_MS / 1000}s of work.

--sla D is a check for cron or a monitor (Nagios-style): it prints one line,
"OK: ..." or "CRITICAL: job ID has waited 6m12s in queue/, over the SLA of
5m ...", and exits 3 when a job has waited longer than D to start: in
queue/, or in delayed/ past its due time (nothing moved it to queue/); or
when a schedule with its own sla (dirq schedule --sla) is late: no run of it
has completed for longer than that ("CRITICAL: schedule NAME is late ...").

Options:
  --json         print the stats as one object (README, "JSON output"; ages
                 in ms; "limits": the limits in force, as dirq limits --json
                 shows them); with --sla also "sla": {"limit": MS, "ok": BOOL};
                 with --watch one object per line, each with "interval": the
                 jobs that ended since the last refresh, as in "recent"
  --sla D        check that no job has waited longer than D to start (30s, 5m, 1h)
  -q, --quiet    with --sla: print nothing while within the SLA (for cron)
  --watch        refresh until Ctrl-C, like top
  --interval D   time between refreshes with --watch (default 2s)
  --debug        print the stack trace of an error
  -h, --help     show this help

Examples:
  dirq stats /var/spool/mail-out
  dirq stats /var/spool/mail-out --sla 5m || page-someone
  dirq stats /var/spool/mail-out --watch --interval 1s
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        json: { type: 'boolean' },
        sla: { type: 'string' },
        quiet: { type: 'boolean', short: 'q' },
        watch: { type: 'boolean' },
        interval: { type: 'string' },
      },
      { min: 1, max: 1 },
    );
    if (parsed === undefined) return 0;
    const { values } = parsed;
    const view: View = {
      json: values.json === true,
      quiet: values.quiet === true,
      sla: values.sla === undefined ? undefined : parseDuration(values.sla, '--sla'),
    };
    const interval = values.interval === undefined ? 2000 : Math.max(10, parseDuration(values.interval, '--interval'));
    const q = await openExisting(parsed.positionals[0]!);
    try {
      if (values.watch === true) {
        await watch(q, view, interval);
        return 0;
      }
      const late = view.sla === undefined ? [] : (await q.schedules()).filter((x) => x.late);
      const breached = show(await report(q, undefined), view, late);
      return breached ? EXIT_CHECK : 0;
    } finally {
      await q.close();
    }
  },
};

/** Stats plus the lifetime totals summed over types; with --watch, the jobs that ended within the last refresh interval. */
type Report = Stats & {
  totals: Record<Counter, number>;
  paused: Record<string, unknown>[];
  /** The limits in force (a broken limit file is none: dirq limits and fsck name it). */
  limits: LimitInfo[];
  interval?: Recent;
};

async function report(q: Queue, interval: number | undefined): Promise<Report> {
  const [s, byType, pauses, all] = await Promise.all([q.stats(), q.totals(), q.paused(), q.limits()]);
  const paused = pauses.map(pauseJson);
  const limits = all.filter((l): l is LimitInfo => !('invalid' in l));
  const totals = Object.fromEntries(COUNTERS.map((c) => [c, 0])) as Record<Counter, number>;
  for (const row of Object.values(byType)) for (const c of COUNTERS) totals[c] += row[c] ?? 0;
  // the rate now, as top shows it: over the refresh interval, not diluted by a quiet minute before
  return interval === undefined
    ? { ...s, totals, paused, limits }
    : { ...s, totals, paused, limits, interval: recent(new Layout(q.dir), interval) };
}

interface View {
  json: boolean;
  quiet: boolean;
  /** The SLA, ms, when checking one. */
  sla: number | undefined;
}

/** Print one report; returns true when the SLA is breached (a job waited too long, or a schedule is `late`). */
function show(s: Report, view: View, late: readonly ScheduleInfo[] = []): boolean {
  const waited = view.sla !== undefined && s.waiting !== null && s.waiting > view.sla;
  const breached = waited || late.length > 0;
  if (view.json) {
    const lateJson = late.map((x) => ({
      name: x.name,
      sla: x.sla,
      lateBy: x.lateBy,
      lastSuccess: x.lastSuccess ?? null,
    }));
    printJson(view.sla === undefined ? s : { ...s, sla: { limit: view.sla, ok: !breached, lateSchedules: lateJson } });
  } else if (view.sla !== undefined) {
    if (!waited && late.length > 0) print(lateLine(late, s, view.sla));
    else if (breached || !view.quiet) print(slaLine(s, view.sla, breached));
  } else {
    print(render(s));
  }
  return breached;
}

/** The status line for a late schedule (the first; the count says how many more), in the style of slaLine. */
function lateLine(late: readonly ScheduleInfo[], s: Stats, sla: number): string {
  const first = late[0]!;
  const since =
    first.lastSuccess === undefined
      ? 'no run of it has completed yet'
      : `its last run completed ${formatAge(Date.now() - first.lastSuccess.getTime())} ago`;
  const more = late.length > 1 ? ` (and ${late.length - 1} more late schedule${late.length > 2 ? 's' : ''})` : '';
  return `CRITICAL: schedule ${first.name} is late: ${since}, over its sla of ${formatAge(first.sla ?? 0)}${more} | wait=${((s.waiting ?? 0) / 1000).toFixed(1)}s;;${sla / 1000} late=${late.length}`;
}

/** The Nagios-style status line, with performance data after the `|`. */
function slaLine(s: Stats, sla: number, breached: boolean): string {
  const ready = `${s.counts.queue} job${s.counts.queue === 1 ? '' : 's'} ready`;
  const perf = `| wait=${((s.waiting ?? 0) / 1000).toFixed(1)}s;;${sla / 1000} ready=${s.counts.queue}`;
  const where =
    s.waitingState === 'delayed' ? 'past its due time in delayed/ (nothing has moved it to queue/)' : 'in queue/';
  if (breached)
    return `CRITICAL: job ${s.waitingId!} has waited ${formatAge(s.waiting!)} ${where}, over the SLA of ${formatAge(sla)} (${ready}) ${perf}`;
  const longest =
    s.waitingState === 'delayed'
      ? `the longest wait is ${formatAge(s.waiting!)} ${where}`
      : `the longest wait in queue/ is ${formatAge(s.waiting!)}`;
  const wait = s.waiting === null ? 'nothing is waiting in queue/' : longest;
  return `OK: ${wait}, within the SLA of ${formatAge(sla)} (${ready}) ${perf}`;
}

/** Refresh every `interval` until SIGINT or SIGTERM: in place on a terminal, as repeated blocks otherwise. */
async function watch(q: Queue, view: View, interval: number): Promise<void> {
  const stop = new AbortController();
  const onSignal = (): void => stop.abort();
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-boolean-literal-compare -- isTTY is undefined, not false, when stdout is not a terminal (typed boolean)
  const tty = process.stdout.isTTY === true && !view.json;
  try {
    while (!stop.signal.aborted) {
      const s = await report(q, interval);
      if (view.json) {
        print(
          jsonText(
            view.sla === undefined
              ? s
              : { ...s, sla: { limit: view.sla, ok: !(s.waiting !== null && s.waiting > view.sla) } },
            true,
          ),
        );
      } else {
        const header = `dirq stats ${q.dir}: every ${formatAge(interval)}, at ${new Date().toTimeString().slice(0, 8)} (Ctrl-C to stop)`;
        const sla =
          view.sla === undefined ? '' : `\n\n${slaLine(s, view.sla, s.waiting !== null && s.waiting > view.sla)}`;
        process.stdout.write(`${tty ? '\x1b[H\x1b[2J' : ''}${header}\n\n${render(s)}${sla}\n${tty ? '' : '\n'}`);
      }
      await sleep(interval, undefined, { signal: stop.signal }).catch(() => undefined);
    }
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

function render(s: Report): string {
  const age = (ms: number | null): string => (ms === null ? '-' : formatAge(ms));
  const states = table(
    ['STATE', 'JOBS', 'OLDEST'],
    STATES.map((state) => [state, String(s.counts[state]), age(s.oldest[state])]),
    ['left', 'right', 'right'],
  );
  const longest =
    s.waitingState === 'delayed'
      ? `Longest wait: ${age(s.waiting)}, past its due time in delayed/`
      : `Longest wait in queue/: ${age(s.waiting)}`;
  const out = [states, '', longest];
  if (s.paused.length > 0) out.push(`Paused: ${s.paused.map(pausedText).join(', ')}`);
  if (s.limits.length > 0) out.push(`Limits: ${s.limits.map((l) => `${l.type}: ${describeLimit(l)}`).join('; ')}`);
  if (s.nextDue !== null)
    out.push(
      `Next delayed job due: ${s.nextDue <= 0 ? `overdue by ${formatAge(-s.nextDue)}` : `in ${formatAge(s.nextDue)}`}`,
    );
  if (s.interval !== undefined) out.push(recentLine(s.interval));
  out.push(recentLine(s.recent));
  out.push(
    `Since the queue was made (each process adds its counts every ${FLUSH_MS / 1000}s): ${COUNTERS.map((c) => `${s.totals[c]} ${c}`).join(', ')}`,
  );
  const types = Object.keys(s.types).sort();
  if (types.length > 0) {
    const align: Align[] = ['left', ...STATES.map((): Align => 'right')];
    const rows = types.map((type) => [type, ...STATES.map((state) => String(s.types[type]![state]))]);
    out.push('', table(['TYPE', ...STATES.map((st) => st.toUpperCase())], rows, align));
  }
  return out.join('\n');
}

/** One pause for the stats text: "send (until 2026-12-02T10:00:00.000Z)", "the whole queue (until resumed)". */
function pausedText(p: Record<string, unknown>): string {
  const what = typeof p.type === 'string' ? p.type : 'the whole queue';
  return `${what} (${typeof p.until === 'string' ? `until ${p.until}` : 'until resumed'})`;
}

function recentLine(r: Stats['recent']): string {
  const window = formatAge(r.windowMs).replace(/^1m$/, 'minute');
  if (r.completed + r.failed === 0) return `Last ${window}: no jobs ended`;
  const latency =
    r.latency === null
      ? ''
      : `; latency p50 ${formatAge(r.latency.p50)}, p95 ${formatAge(r.latency.p95)}, max ${formatAge(r.latency.max)}`;
  return `Last ${window}: ${r.completed} done, ${r.failed} failed (${r.perSecond}/s)${latency}`;
}
