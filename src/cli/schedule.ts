/** dirq schedule DIR NAME TYPE [JSON|-] (--cron EXPR [--tz ZONE] | --every DUR) [...]: create or replace a schedule. */
import { parseDuration } from '../store/duration.js';
import type { ScheduleSpec } from '../store/schedule-spec.js';
import { parseBackoff, parseData } from './enqueue.js';
import { parse, parseInteger, print, printJson, readStdin, UsageError, withQueue, type Command } from './common.js';
import { scheduleJson, scheduleLines } from './schedules.js';

export const schedule: Command = {
  name: 'schedule',
  summary: 'create or replace a recurring job (cron or every), one job per slot',
  help: `Usage: dirq schedule DIR NAME TYPE [JSON|-] (--cron EXPR [--tz ZONE] | --every DUR) [options]

Create the schedule NAME in the queue in DIR, or replace it: a job of TYPE,
with the JSON data (or stdin for "-", or none), at every slot of --cron or
--every. The schedule is the file DIR/schedules/NAME.json, which you may also
cat and edit by hand; every process with the queue open makes each slot's job,
exactly one per slot, within milliseconds of its time (the slots are judged in
the filesystem's clock). A change takes effect within a poll (1 s) or a sweep
(5 s), from the next slot on: no slot runs twice. NAME is 1 to 100 of
A-Z a-z 0-9 _ . - (not starting with a dot).

Options:
  --cron EXPR        5 fields (minute hour day month weekday), or 6 with
                     seconds first: "*/5 * * * *", "0 6 * * 1-5"
  --tz ZONE          the time zone of --cron (IANA: Europe/Berlin; default UTC);
                     a time a DST change skips runs at the first instant after
                     it, a time it repeats runs once
  --every DUR        a job every DUR (at least 100ms): 30s, 5m, 1h; slots are
                     aligned to --start (else to the Unix epoch)
  --start TIME       no slot before TIME (ISO 8601)
  --end TIME         no slot after TIME (ISO 8601)
  --overlap MODE     skip (default): no new job while the previous one is still
                     waiting or running; allow: a job for every slot
  --catch-up MODE    what happens to slots missed while nothing had the queue
                     open: last (default) makes one job for the latest, none
                     makes none (a slot found over 1 s late counts as missed),
                     all makes one per missed slot (at most 1,000, the latest)
  --sla DUR          the schedule is late when no run of it has completed for
                     DUR (dirq stats --sla and dirq schedules say so)
  --priority N       the jobs' priority, 0..99 (default 50)
  --attempts N       the jobs' attempts (default: the queue's)
  --timeout DUR      the jobs' timeout
  --backoff B        the jobs' backoff, as in dirq enqueue
  --group G          the jobs' group, as in dirq enqueue: they take turns with
                     other groups' jobs of the type
  --paused           make no jobs until replaced without --paused
  --json             print the schedule as dirq schedules --json shows one
  --debug            print the stack trace of an error
  -h, --help         show this help

Examples:
  dirq schedule /var/spool/shop cancel-abandoned CancelAbandonedOrders --cron "*/5 * * * *" --sla 15m
  dirq schedule /var/spool/shop report daily-report '{"to":"ops"}' --cron "0 6 * * *" --tz Europe/Berlin
  dirq schedule /var/spool/shop poll poll-feed --every 90s --overlap allow
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        cron: { type: 'string' },
        tz: { type: 'string' },
        every: { type: 'string' },
        start: { type: 'string' },
        end: { type: 'string' },
        overlap: { type: 'string' },
        'catch-up': { type: 'string' },
        sla: { type: 'string' },
        priority: { type: 'string' },
        attempts: { type: 'string' },
        timeout: { type: 'string' },
        backoff: { type: 'string' },
        group: { type: 'string' },
        paused: { type: 'boolean' },
        json: { type: 'boolean' },
      },
      { min: 3, max: 4 },
    );
    if (parsed === undefined) return 0;
    const { values } = parsed;
    const [dir, name, type, dataArg] = parsed.positionals as [string, string, string, string?];
    if ((values.cron === undefined) === (values.every === undefined))
      throw new UsageError('give --cron EXPR or --every DUR (one of them): see dirq schedule --help');
    const spec: ScheduleSpec = { type };
    if (dataArg !== undefined) spec.data = parseData(dataArg === '-' ? await readStdin() : dataArg, dataArg === '-');
    if (values.cron !== undefined) spec.cron = values.cron;
    if (values.tz !== undefined) spec.tz = values.tz;
    if (values.every !== undefined) spec.every = parseDuration(values.every, '--every');
    if (values.start !== undefined) spec.startAt = parseTime(values.start, '--start');
    if (values.end !== undefined) spec.endAt = parseTime(values.end, '--end');
    if (values.overlap !== undefined) spec.overlap = values.overlap as NonNullable<ScheduleSpec['overlap']>;
    if (values['catch-up'] !== undefined) spec.catchUp = values['catch-up'] as NonNullable<ScheduleSpec['catchUp']>;
    if (values.sla !== undefined) spec.sla = parseDuration(values.sla, '--sla');
    if (values.priority !== undefined) spec.priority = parseInteger(values.priority, '--priority');
    if (values.attempts !== undefined) spec.attempts = parseInteger(values.attempts, '--attempts');
    if (values.timeout !== undefined) spec.timeout = parseDuration(values.timeout, '--timeout');
    if (values.backoff !== undefined) spec.backoff = parseBackoff(values.backoff);
    if (values.group !== undefined) spec.group = values.group;
    if (values.paused === true) spec.paused = true;
    const info = await withQueue(dir, (q) => q.schedule(name, spec));
    if (values.json === true) printJson(scheduleJson(info));
    else print(scheduleLines(info).join('\n'));
    return 0;
  },
};

function parseTime(text: string, flag: string): Date {
  const at = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at.getTime()))
    throw new UsageError(`${flag} must be an ISO 8601 time like 2026-11-22T18:00:00Z, got ${JSON.stringify(text)}`);
  return at;
}
