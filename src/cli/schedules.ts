/** dirq schedules DIR: list the schedules with their next and latest runs. */
import { formatAge } from '../store/duration.js';
import type { ScheduleInfo } from '../queue/schedules.js';
import { print, printJson, parse, table, withQueue, type Command } from './common.js';

export const schedules: Command = {
  name: 'schedules',
  summary: 'list the schedules: spec, next run, last run, late?',
  help: `Usage: dirq schedules DIR [--json]

List the schedules of the queue in DIR, by name: the job type, the cron
expression (with its time zone) or interval, the next run in local time and
UTC, the latest run (its slot and where its job is now), and whether the
schedule is late (no run completed within its --sla) or paused. A schedule
file that cannot be used (broken by hand) is listed as INVALID with the
reason; it makes no jobs until fixed, and the others go on.

Options:
  --json     print an array of {"name", "spec", "type", "cron"|"every", "tz",
             "paused", "next" (ISO), "last": {"slot", "id", "state"},
             "lastSuccess", "sla", "late", "lateBy", "invalid"}
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq schedules /var/spool/shop
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const list = await withQueue(parsed.positionals[0]!, (q) => q.schedules());
    if (parsed.values.json === true) {
      printJson(list.map(scheduleJson));
      return 0;
    }
    if (list.length === 0) {
      print('no schedules (dirq schedule DIR NAME TYPE --cron EXPR | --every DUR adds one)');
      return 0;
    }
    const now = Date.now();
    print(
      table(
        ['NAME', 'TYPE', 'WHEN', 'NEXT (LOCAL)', 'NEXT (UTC)', 'LAST', 'STATUS'],
        list.map((s) =>
          s.invalid !== undefined
            ? [s.name, '-', '-', '-', '-', '-', `INVALID: ${s.invalid}`]
            : [
                s.name,
                s.type ?? '-',
                when(s),
                s.next === undefined ? '-' : localTime(s.next),
                s.next === undefined ? '-' : s.next.toISOString(),
                s.last === undefined
                  ? '-'
                  : `${formatAge(now - s.last.slot.getTime())} ago (${s.last.state ?? 'pruned'})`,
                status(s),
              ],
        ),
      ),
    );
    return 0;
  },
};

/** A schedule as --json prints it: dates as ISO strings. */
export function scheduleJson(s: ScheduleInfo): Record<string, unknown> {
  return {
    ...s,
    next: s.next?.toISOString() ?? null,
    last: s.last === undefined ? null : { ...s.last, slot: s.last.slot.toISOString(), state: s.last.state ?? null },
    lastSuccess: s.lastSuccess?.toISOString() ?? null,
  };
}

/** What `dirq schedule` prints after writing one. */
export function scheduleLines(s: ScheduleInfo): string[] {
  return [
    `schedule ${s.name}: ${s.type ?? '-'} ${when(s)}${s.paused ? ' (paused)' : ''}`,
    `next run: ${s.next === undefined ? 'none' : `${localTime(s.next)} (${s.next.toISOString()})`}`,
  ];
}

function when(s: ScheduleInfo): string {
  return s.cron !== undefined ? `cron "${s.cron}" ${s.tz ?? 'UTC'}` : `every ${formatAge(s.every ?? 0)}`;
}

function status(s: ScheduleInfo): string {
  const parts: string[] = [];
  if (s.paused) parts.push('paused');
  if (s.late) parts.push(`LATE by ${formatAge(s.lateBy ?? 0)} (sla ${formatAge(s.sla ?? 0)})`);
  else if (s.sla !== undefined) parts.push(`ok (sla ${formatAge(s.sla)})`);
  return parts.length === 0 ? 'ok' : parts.join(', ');
}

function localTime(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const offset = -date.getTimezoneOffset();
  const sign = offset >= 0 ? '+' : '-';
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ${sign}${pad(Math.floor(Math.abs(offset) / 60))}:${pad(Math.abs(offset) % 60)}`;
}
