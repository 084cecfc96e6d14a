/** dirq metrics DIR: the queue's gauges and lifetime counters in the Prometheus text format. */
import fs from 'node:fs';
import path from 'node:path';
import type { Stats } from '../queue/inspect.js';
import type { ScheduleInfo } from '../queue/schedules.js';
import { STATES } from '../store/layout.js';
import { badFile, notRegular, replaceFile } from '../store/safe-file.js';
import { COUNTERS, type Totals } from '../store/totals.js';
import { parse, printJson, UsageError, withQueue, type Command } from './common.js';

export const metrics: Command = {
  name: 'metrics',
  summary: 'Prometheus text format: jobs per state and type, ages, throughput, lifetime totals',
  help: `Usage: dirq metrics DIR [--output FILE] [--json]

Print the state of the queue in DIR in the Prometheus text exposition
format, every sample labelled queue="DIR":

  dirqueue_jobs{state}                   jobs in each state
  dirqueue_oldest_age_seconds{state}     age of the oldest job of each state (0 if none;
                                         active: since its claim)
  dirqueue_longest_wait_seconds          longest time a job has waited to start: in
                                         queue/, or past its due time in delayed/
  dirqueue_jobs_by_type{type,state}      jobs of each type in each state
  dirqueue_completed_last_minute         jobs that ended in done/ in the last minute
  dirqueue_failed_last_minute            jobs that ended in failed/ in the last minute
  dirqueue_throughput_per_second         jobs ended per second over the last minute
                                         (since the queue was made, if it is younger)
  dirqueue_latency_seconds{quantile}     ready-to-ended time of the jobs completed in
                                         the last minute: 0.5, 0.95, 1 (max); absent if none
  dirqueue_job_events_total{type,event}  counter: jobs enqueued, completed, retried,
                                         failed and recovered since the queue was made,
                                         by every process that opened it (the library
                                         counts; jobs moved by hand with mv are not seen;
                                         each process writes its counts every 5s)
  dirqueue_schedule_last_success_timestamp_seconds{schedule}
                                         when the latest completed run of each schedule
                                         ended (0 if none is in done/)
  dirqueue_schedule_lateness_seconds{schedule}
                                         how far past its sla each schedule with one is
                                         (0 when on time)
  dirqueue_schedule_next_run_timestamp_seconds{schedule}
                                         the next slot of each schedule (absent if none)

For node_exporter's textfile collector, write the file with --output (it is
replaced atomically, so the collector never reads half of it) from cron.

Options:
  --output FILE  write to FILE atomically instead of stdout
  --json         print the metric families as JSON: [{"name", "help", "type",
                 "samples": [{"labels": {...}, "value": N}]}]
  --debug        print the stack trace of an error
  -h, --help     show this help

Examples:
  dirq metrics /var/spool/mail-out
  * * * * *  dirq metrics /var/spool/mail-out --output /var/lib/node_exporter/textfile/mail-out.prom
`,
  async run(args) {
    const parsed = parse(this, args, { output: { type: 'string' }, json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    if (parsed.values.output !== undefined) checkOutputDir(parsed.values.output);
    const { dir, stats, totals, schedules } = await withQueue(parsed.positionals[0]!, async (q) => ({
      dir: q.dir,
      stats: await q.stats(),
      totals: await q.totals(),
      schedules: await q.schedules(),
    }));
    const families = collect(dir, stats, totals, schedules);
    if (parsed.values.json === true) {
      printJson(families);
      return 0;
    }
    const text = exposition(families);
    if (parsed.values.output === undefined) {
      process.stdout.write(text);
    } else {
      await writeOutput(parsed.values.output, text);
    }
    return 0;
  },
};

/**
 * Replace FILE with `text` by renaming a fresh file (made beside it, so on
 * its filesystem) over it: a collector reads the old text or the new, never
 * half of one. A symbolic link at FILE is refused rather than replaced or
 * followed: dirq never writes through links (a root cron job must not be
 * steered onto another file).
 */
async function writeOutput(file: string, text: string): Promise<void> {
  const dir = path.dirname(path.resolve(file));
  const kind = notRegular(file);
  if (kind !== undefined)
    throw badFile(file, kind, 'give --output the path of a regular file (or a new one), not a link to one');
  await replaceFile(file, text, { tmpDir: dir, mode: 0o644 });
}

/** A missing directory for --output is the caller's mistake, not the queue's: say so before reading the queue. */
function checkOutputDir(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let isDir: boolean;
  try {
    isDir = fs.statSync(dir).isDirectory();
  } catch {
    isDir = false;
  }
  if (!isDir)
    throw new UsageError(
      `--output ${file}: the directory ${dir} does not exist: create it, or write the file elsewhere`,
    );
}

interface Sample {
  labels: Record<string, string>;
  value: number;
}

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: Sample[];
}

function collect(queue: string, s: Stats, totals: Totals, schedules: readonly ScheduleInfo[]): Family[] {
  const gauge = (name: string, help: string, samples: Sample[]): Family => ({
    name: `dirqueue_${name}`,
    help,
    type: 'gauge',
    samples,
  });
  const one = (value: number, labels: Record<string, string> = {}): Sample => ({ labels: { queue, ...labels }, value });
  const seconds = (ms: number | null): number => (ms === null ? 0 : ms / 1000);
  const families = [
    gauge(
      'jobs',
      'Jobs in each state.',
      STATES.map((state) => one(s.counts[state], { state })),
    ),
    gauge(
      'oldest_age_seconds',
      'Age of the oldest job in each state (0 when empty).',
      STATES.map((state) => one(seconds(s.oldest[state]), { state })),
    ),
    gauge(
      'longest_wait_seconds',
      'Longest time a job has waited to start: in queue/, or past its due time in delayed/.',
      [one(seconds(s.waiting))],
    ),
    gauge(
      'jobs_by_type',
      'Jobs of each type in each state.',
      Object.keys(s.types)
        .sort()
        .flatMap((type) => STATES.map((state) => one(s.types[type]![state], { type, state }))),
    ),
    gauge('completed_last_minute', 'Jobs that ended in done/ in the last minute.', [one(s.recent.completed)]),
    gauge('failed_last_minute', 'Jobs that ended in failed/ in the last minute.', [one(s.recent.failed)]),
    gauge(
      'throughput_per_second',
      'Jobs ended per second over the last minute (since the queue was made, if it is younger).',
      [one(s.recent.perSecond)],
    ),
  ];
  const types = [...new Set([...Object.keys(s.types), ...Object.keys(totals)])].sort();
  families.push({
    name: 'dirqueue_job_events_total',
    help: 'Jobs enqueued, completed, retried, failed and recovered since the queue was made.',
    type: 'counter',
    samples: types.flatMap((type) => COUNTERS.map((event) => one(totals[type]?.[event] ?? 0, { type, event }))),
  });
  const valid = schedules.filter((x) => x.invalid === undefined);
  if (valid.length > 0) {
    families.push(
      gauge(
        'schedule_last_success_timestamp_seconds',
        'When the latest completed run of each schedule ended, seconds since the epoch (0 when none is in done/).',
        valid.map((x) => one((x.lastSuccess?.getTime() ?? 0) / 1000, { schedule: x.name })),
      ),
      gauge(
        'schedule_lateness_seconds',
        'How far past its sla each schedule with one is: no run completed for that long beyond it (0 when on time).',
        valid.filter((x) => x.sla !== undefined).map((x) => one((x.lateBy ?? 0) / 1000, { schedule: x.name })),
      ),
      gauge(
        'schedule_next_run_timestamp_seconds',
        'The next slot of each schedule, seconds since the epoch.',
        valid.filter((x) => x.next !== undefined).map((x) => one(x.next!.getTime() / 1000, { schedule: x.name })),
      ),
    );
  }
  const { latency } = s.recent;
  if (latency !== null) {
    families.push(
      gauge('latency_seconds', 'Ready-to-ended time of the jobs completed in the last minute.', [
        one(latency.p50 / 1000, { quantile: '0.5' }),
        one(latency.p95 / 1000, { quantile: '0.95' }),
        one(latency.max / 1000, { quantile: '1' }),
      ]),
    );
  }
  return families;
}

/** The text exposition format: HELP and TYPE lines, then one line per sample. */
function exposition(families: readonly Family[]): string {
  const lines: string[] = [];
  for (const f of families) {
    lines.push(`# HELP ${f.name} ${f.help.replace(/\\/g, '\\\\').replace(/\n/g, '\\n')}`, `# TYPE ${f.name} ${f.type}`);
    for (const { labels, value } of f.samples) {
      const pairs = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
      lines.push(`${f.name}{${pairs.join(',')}} ${formatValue(value)}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

/** Label values escape backslash, double quote and line feed. */
function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n');
}

function formatValue(value: number): string {
  if (Number.isNaN(value)) return 'NaN';
  if (!Number.isFinite(value)) return value > 0 ? '+Inf' : '-Inf';
  return String(Math.round(value * 1000) / 1000);
}
