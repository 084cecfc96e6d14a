/**
 * A schedule's spec (FORMAT.md, "Schedules"): what schedules/NAME.json holds,
 * its checks (the same for q.schedule, the CLI and a file edited by hand), and
 * the slot arithmetic every process must agree on: a slot is a pure function
 * of the spec, so any process on any host computes the same slots and the
 * cursor (schedule-files.ts) says which of them are handled.
 *
 * Cron expressions are croner's (5 fields, or 6 with seconds first; time zones
 * and DST through Intl): in a DST gap a slot that does not exist runs at the
 * first instant after it, in a repeat the repeated wall time runs once (its
 * first occurrence). Croner's `engines` is node >= 18.
 */
import { Cron } from 'croner';
import { isBackoff, type BackoffSpec } from './envelope.js';
import { ScheduleError } from './errors.js';
import { checkJson } from './json-check.js';
import { checkGroup, describe, encodeType, isScheduleName, PRIORITY_MAX, PRIORITY_MIN } from './names.js';

/** The smallest `every`: below it a slot's job could not be made on time by a sweep-less process anyway. */
export const EVERY_MIN_MS = 100;
/** catchUp 'all' makes at most this many missed runs (the latest ones); older missed slots are skipped, with a warning. */
export const CATCH_UP_MAX = 1000;
/** catchUp 'none': a slot found later than this after its time was missed while nothing had the queue open. */
export const ON_TIME_MS = 1000;

export type Overlap = 'skip' | 'allow';
export type CatchUp = 'none' | 'last' | 'all';

/** What q.schedule takes. Exactly one of `cron` and `every`. */
export interface ScheduleSpec {
  /** The job type of every run. */
  type: string;
  /** The data of every run (JSON). */
  data?: unknown;
  /** A cron expression: 5 fields (minute hour day month weekday), or 6 with seconds first. */
  cron?: string;
  /** The IANA time zone of `cron` ('Europe/Berlin'). @default 'UTC' */
  tz?: string;
  /** A run every this many ms (an integer >= 100), aligned to `startAt` (else to the Unix epoch). */
  every?: number;
  /** No slot before this time. */
  startAt?: Date | number | string;
  /** No slot after this time. */
  endAt?: Date | number | string;
  /** Make no runs (slots pass, skipped) until paused is false again. @default false */
  paused?: boolean;
  /** 'skip': no new run while the previous one is waiting or running; 'allow': a run per slot. @default 'skip' */
  overlap?: Overlap;
  /** What to do with slots that passed while no process had the queue open. @default 'last' */
  catchUp?: CatchUp;
  /** The schedule is late when no run of it has completed for this many ms. */
  sla?: number;
  /** The runs' priority, 0..99. @default 50 */
  priority?: number;
  /** The runs' attempts. @default the queue's */
  attempts?: number;
  /** The runs' backoff (a number is a fixed delay in ms). @default the queue's */
  backoff?: BackoffSpec | number;
  /** The runs' timeout, ms. @default the queue's */
  timeout?: number;
  /** The runs' group (enqueue's `group`): they take turns with other groups' jobs of the type. */
  group?: string;
}

/** schedules/NAME.json: the spec as JSON, dates as ISO 8601, plus when it was made. */
export type StoredSchedule = Omit<ScheduleSpec, 'startAt' | 'endAt' | 'backoff'> & {
  startAt?: string;
  endAt?: string;
  backoff?: BackoffSpec;
  created?: string;
};

const FIELDS = [
  'type',
  'data',
  'cron',
  'tz',
  'every',
  'startAt',
  'endAt',
  'paused',
  'overlap',
  'catchUp',
  'sla',
  'priority',
  'attempts',
  'backoff',
  'timeout',
  'group',
] as const satisfies readonly (keyof ScheduleSpec)[];

/** Throws EBADSCHEDULE unless `name` can name a schedule (its file is NAME.json). */
export function checkScheduleName(name: unknown): string {
  if (!isScheduleName(name)) {
    throw new ScheduleError(
      'name',
      `a schedule name must be 1 to 100 of A-Z a-z 0-9 _ . - and not start with a dot (it names the file schedules/NAME.json), got ${describe(name)}`,
    );
  }
  return name;
}

/**
 * Check a spec (from q.schedule, the CLI, or a file) and return what its file
 * holds. `where` prefixes messages ("schedules/x.json: ").
 */
export function checkScheduleSpec(spec: unknown, where = '', fileFields = false): StoredSchedule {
  const fail = (field: string, message: string, position?: { field: number; offset: number }): never => {
    throw new ScheduleError(field, `${where}${message}`, position);
  };
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    fail('spec', `a schedule must be an object { type, cron | every, ... }, got ${describe(spec)}`);
  }
  const s = spec as Record<string, unknown>;
  const known: readonly string[] = fileFields ? [...FIELDS, 'created'] : FIELDS;
  for (const field of Object.keys(s)) {
    if (s[field] !== undefined && !known.includes(field))
      fail(field, `unknown schedule field ${JSON.stringify(field)}; the fields are ${known.join(', ')}`);
  }
  const out: StoredSchedule = { type: '' };
  try {
    encodeType(s.type);
  } catch (error) {
    fail('type', (error as Error).message);
  }
  out.type = s.type as string;
  if (s.data !== undefined) {
    try {
      checkJson(s.data, 'data');
    } catch (error) {
      fail('data', (error as Error).message);
    }
    out.data = s.data;
  }
  const hasCron = s.cron !== undefined;
  const hasEvery = s.every !== undefined;
  if (hasCron === hasEvery) {
    fail(
      hasCron ? 'cron' : 'every',
      hasCron
        ? 'give either cron or every, not both'
        : `give cron (an expression like "*/5 * * * *") or every (ms, an integer >= ${EVERY_MIN_MS})`,
    );
  }
  if (hasCron) {
    out.cron = checkCron(s.cron, where);
    if (s.tz !== undefined) out.tz = checkZone(s.tz, where);
  } else {
    if (s.tz !== undefined) fail('tz', 'tz applies to cron expressions only; every counts milliseconds');
    if (!Number.isSafeInteger(s.every) || (s.every as number) < EVERY_MIN_MS) {
      fail('every', `every must be an integer number of ms >= ${EVERY_MIN_MS}, got ${describe(s.every)}`);
    }
    out.every = s.every as number;
  }
  const startAt = s.startAt === undefined ? undefined : checkTime(s.startAt, 'startAt', where);
  const endAt = s.endAt === undefined ? undefined : checkTime(s.endAt, 'endAt', where);
  if (startAt !== undefined && endAt !== undefined && endAt < startAt) {
    fail(
      'endAt',
      `endAt (${new Date(endAt).toISOString()}) is before startAt (${new Date(startAt).toISOString()}): give an end after the start`,
    );
  }
  if (startAt !== undefined) out.startAt = new Date(startAt).toISOString();
  if (endAt !== undefined) out.endAt = new Date(endAt).toISOString();
  if (s.paused !== undefined) {
    if (typeof s.paused !== 'boolean') fail('paused', `paused must be true or false, got ${describe(s.paused)}`);
    out.paused = s.paused as boolean;
  }
  if (s.overlap !== undefined) {
    if (s.overlap !== 'skip' && s.overlap !== 'allow')
      fail('overlap', `overlap must be 'skip' or 'allow', got ${describe(s.overlap)}`);
    out.overlap = s.overlap as Overlap;
  }
  if (s.catchUp !== undefined) {
    if (s.catchUp !== 'none' && s.catchUp !== 'last' && s.catchUp !== 'all')
      fail('catchUp', `catchUp must be 'none', 'last' or 'all', got ${describe(s.catchUp)}`);
    out.catchUp = s.catchUp as CatchUp;
  }
  if (s.sla !== undefined) out.sla = checkPositiveMs(s.sla, 'sla', where);
  if (s.priority !== undefined) {
    if (!Number.isInteger(s.priority) || (s.priority as number) < PRIORITY_MIN || (s.priority as number) > PRIORITY_MAX)
      fail(
        'priority',
        `priority must be an integer ${PRIORITY_MIN}..${PRIORITY_MAX} (lower runs first), got ${describe(s.priority)}`,
      );
    out.priority = s.priority as number;
  }
  if (s.attempts !== undefined) {
    if (!Number.isSafeInteger(s.attempts) || (s.attempts as number) < 1)
      fail('attempts', `attempts must be an integer >= 1, got ${describe(s.attempts)}`);
    out.attempts = s.attempts as number;
  }
  if (s.backoff !== undefined) {
    const b = typeof s.backoff === 'number' ? { type: 'fixed', delay: s.backoff } : s.backoff;
    if (!isBackoff(b) || (b as { delay: number }).delay > Number.MAX_SAFE_INTEGER)
      fail(
        'backoff',
        `backoff must be ms, { type: 'fixed', delay } or { type: 'exponential', delay, max?, jitter? (0..1) }, got ${describe(s.backoff)}`,
      );
    out.backoff = b as BackoffSpec;
  }
  if (s.timeout !== undefined) out.timeout = checkPositiveMs(s.timeout, 'timeout', where);
  if (s.group !== undefined) {
    try {
      out.group = checkGroup(s.group);
    } catch (error) {
      fail('group', (error as Error).message);
    }
  }
  if (fileFields && s.created !== undefined) {
    if (typeof s.created !== 'string' || Number.isNaN(Date.parse(s.created)))
      fail('created', `created must be an ISO 8601 time, got ${describe(s.created)}`);
    out.created = s.created as string;
  }
  return out;
}

const FIELD_NAMES_5 = ['minute', 'hour', 'day of month', 'month', 'day of week'];
const FIELD_NAMES_6 = ['second', ...FIELD_NAMES_5];

function checkCron(value: unknown, where: string): string {
  if (typeof value !== 'string' || value.trim() === '') {
    throw new ScheduleError('cron', `${where}cron must be an expression like "*/5 * * * *", got ${describe(value)}`);
  }
  const fields = [...value.matchAll(/\S+/g)];
  if (fields.length !== 5 && fields.length !== 6) {
    throw new ScheduleError(
      'cron',
      `${where}cron ${JSON.stringify(value)} has ${fields.length} fields: give 5 (minute hour day month weekday) or 6 (second first)`,
      { field: Math.min(fields.length, 6) + 1, offset: value.length },
    );
  }
  const names = fields.length === 5 ? FIELD_NAMES_5 : FIELD_NAMES_6;
  try {
    new Cron(value, { paused: true });
  } catch (error) {
    // croner says what is wrong, not always where: find the first field that fails on its own
    const at = fields.findIndex((_, i) => {
      const alone = fields.map((f, j) => (j === i ? f[0] : '*')).join(' ');
      try {
        new Cron(alone, { paused: true });
        return false;
      } catch {
        return true;
      }
    });
    const i = at === -1 ? 0 : at;
    const offset = fields[i]!.index;
    throw new ScheduleError(
      'cron',
      `${where}cron ${JSON.stringify(value)} does not parse at field ${i + 1} (${names[i]!}, ${JSON.stringify(fields[i]![0])}, character ${offset + 1}): ${(error as Error).message.replace(/^CronPattern: /, '')}`,
      { field: i + 1, offset },
    );
  }
  return value;
}

function checkZone(value: unknown, where: string): string {
  if (typeof value !== 'string' || value === '') {
    throw new ScheduleError(
      'tz',
      `${where}tz must be an IANA time zone name like "Europe/Berlin", got ${describe(value)}`,
    );
  }
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: value });
  } catch {
    throw new ScheduleError(
      'tz',
      `${where}unknown time zone ${JSON.stringify(value)}: give an IANA name like "Europe/Berlin", "America/New_York" or "UTC"`,
    );
  }
  return value;
}

function checkTime(value: unknown, field: string, where: string): number {
  const ms =
    value instanceof Date ? value.getTime() : typeof value === 'string' ? Date.parse(value) : (value as number);
  if (typeof ms !== 'number' || !Number.isFinite(ms) || ms < 0 || ms >= 1e13) {
    throw new ScheduleError(
      field,
      `${where}${field} must be a Date, ms since the epoch or an ISO 8601 time, got ${describe(value)}`,
    );
  }
  return Math.round(ms);
}

function checkPositiveMs(value: unknown, field: string, where: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < 1 || value > Number.MAX_SAFE_INTEGER) {
    throw new ScheduleError(field, `${where}${field} must be a number of milliseconds >= 1, got ${describe(value)}`);
  }
  return value;
}

/** The slots of one stored spec, in ms since the epoch. */
export class Slots {
  readonly spec: StoredSchedule;
  #cron: Cron | undefined;
  #every: number | undefined;
  #anchor: number;
  #start: number;
  #end: number;

  constructor(spec: StoredSchedule) {
    this.spec = spec;
    this.#start = spec.startAt === undefined ? -Infinity : Date.parse(spec.startAt);
    this.#end = spec.endAt === undefined ? Infinity : Date.parse(spec.endAt);
    this.#anchor = spec.startAt === undefined ? 0 : this.#start;
    if (spec.cron !== undefined) this.#cron = new Cron(spec.cron, { paused: true, timezone: spec.tz ?? 'UTC' });
    else this.#every = spec.every!;
  }

  /** The first slot strictly after `afterMs`, or undefined when there is none (past endAt). */
  next(afterMs: number): number | undefined {
    const from = Math.max(afterMs, this.#start - 1);
    let slot: number | undefined;
    if (this.#every !== undefined) {
      slot = this.#anchor + (Math.floor((from - this.#anchor) / this.#every) + 1) * this.#every;
    } else {
      slot = this.#cron!.nextRun(new Date(from))?.getTime();
    }
    return slot === undefined || slot > this.#end ? undefined : slot;
  }

  /**
   * The slots in (afterMs, nowMs]: the latest `max` of them, ascending, and
   * whether there were more (older) ones.
   */
  due(afterMs: number, nowMs: number, max: number): { slots: number[]; more: boolean } {
    const to = Math.min(nowMs, this.#end);
    const from = Math.max(afterMs, this.#start - 1);
    if (to <= from) return { slots: [], more: false };
    if (this.#every !== undefined) {
      const first = this.next(afterMs);
      if (first === undefined || first > to) return { slots: [], more: false };
      const last = this.#anchor + Math.floor((to - this.#anchor) / this.#every) * this.#every;
      const count = (last - first) / this.#every + 1;
      const n = Math.min(count, max);
      return { slots: Array.from({ length: n }, (_, i) => last - (n - 1 - i) * this.#every!), more: count > n };
    }
    const runs = this.#cron!.previousRuns(max + 1, new Date(to + 1)).map((d) => d.getTime());
    const slots = runs.filter((t) => t > from && t <= to).reverse();
    const more = slots.length > max;
    return { slots: more ? slots.slice(-max) : slots, more };
  }
}
