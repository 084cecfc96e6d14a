/**
 * A type's limits as q.limit takes them and limits/TYPE/limit.json holds
 * them (FORMAT.md, "Limits"): how many of its jobs may run at once anywhere,
 * how many may start in any window of `per` ms, and how many of one group's
 * may run at once. Checked the same way from the API and from a file edited
 * by hand: a file that does not pass is reported, never obeyed.
 */
import { DirQueueError } from './errors.js';
import { describe } from './names.js';

/** Slots and tokens are files: a limit larger than this would be a directory of that many names. */
export const LIMIT_MAX = 10_000;
/** The shortest rate window: below it the clocks of two hosts (and mtime granularity) decide more than the limit. */
export const RATE_PER_MIN_MS = 10;

export interface RateLimit {
  /** At most this many starts... */
  max: number;
  /** ...in any window of this many ms. */
  per: number;
}

export interface LimitSpec {
  /** Never more than this many jobs of the type running at once, on every host. */
  concurrency?: number;
  /** Never more than `max` starts of the type in any `per` ms, on every host. */
  rate?: RateLimit;
  /** Never more than this many jobs of one group (enqueue's `group`) of the type running at once. */
  groupConcurrency?: number;
}

/** A limit as stored: the spec, and when and by whom it was set. */
export interface StoredLimit extends LimitSpec {
  at?: string;
  by?: string;
}

/** The spec, checked (throws EBADOPTION naming the field and what would do). */
export function checkLimitSpec(spec: unknown): LimitSpec {
  if (spec === null || typeof spec !== 'object' || Array.isArray(spec)) {
    throw bad(
      `a limit is { concurrency, rate: { max, per }, groupConcurrency } (or null to clear), got ${describe(spec)}`,
    );
  }
  const { concurrency, rate, groupConcurrency, ...rest } = spec as Record<string, unknown>;
  const unknown = Object.keys(rest);
  if (unknown.length > 0) {
    throw bad(
      `unknown limit option ${JSON.stringify(unknown[0])}: the options are concurrency, rate and groupConcurrency`,
    );
  }
  const out: LimitSpec = {};
  if (concurrency !== undefined) out.concurrency = count(concurrency, 'concurrency');
  if (groupConcurrency !== undefined) out.groupConcurrency = count(groupConcurrency, 'groupConcurrency');
  if (rate !== undefined) {
    if (rate === null || typeof rate !== 'object' || Array.isArray(rate)) {
      throw bad(`rate must be { max, per } (at most max starts in any per ms), got ${describe(rate)}`);
    }
    const { max, per, ...other } = rate as Record<string, unknown>;
    const extra = Object.keys(other);
    if (extra.length > 0) throw bad(`unknown rate option ${JSON.stringify(extra[0])}: a rate is { max, per }`);
    const perMs = per;
    if (typeof perMs !== 'number' || !Number.isSafeInteger(perMs) || perMs < RATE_PER_MIN_MS) {
      throw bad(`rate.per must be a whole number of ms, at least ${RATE_PER_MIN_MS}, got ${describe(per)}`);
    }
    out.rate = { max: count(max, 'rate.max'), per: perMs };
  }
  if (out.concurrency === undefined && out.rate === undefined && out.groupConcurrency === undefined) {
    throw bad('a limit needs at least one of concurrency, rate and groupConcurrency (to remove a limit, pass null)');
  }
  return out;
}

/** limit.json's content: the spec with when and by whom. */
export function limitContent(spec: LimitSpec, by: string): string {
  return `${JSON.stringify({ ...spec, at: new Date().toISOString(), by })}\n`;
}

/** A limit file's content, checked: the stored limit, or why it is none. */
export function parseLimitContent(text: string): StoredLimit | { reason: string } {
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    return { reason: 'its content is not JSON' };
  }
  if (content === null || typeof content !== 'object' || Array.isArray(content)) {
    return { reason: 'its content is not a JSON object' };
  }
  const { at, by, ...spec } = content as Record<string, unknown>;
  try {
    const checked: StoredLimit = checkLimitSpec(spec);
    if (typeof at === 'string') checked.at = at;
    if (typeof by === 'string') checked.by = by;
    return checked;
  } catch (error) {
    return { reason: (error as Error).message };
  }
}

function count(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1 || value > LIMIT_MAX) {
    throw bad(
      `${field} must be a whole number from 1 to ${LIMIT_MAX}, got ${describe(value)} (to remove the limit, pass null)`,
    );
  }
  return value;
}

function bad(message: string): DirQueueError {
  return new DirQueueError('EBADOPTION', message);
}
