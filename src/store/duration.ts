/**
 * Durations as people type them (`100ms`, `30s`, `5m`, `2h`, `7d`, `1h30m`)
 * and ages as people read them (`850ms`, `3s`, `4m12s`, `42m`, `2h5m`, `5d`).
 * The CLI's flags (--delay, --older-than, --sla) and its tables use these.
 */
import { DirQueueError } from './errors.js';
import { describe } from './names.js';

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
type Unit = keyof typeof UNIT_MS;

/** One or more NUMBER UNIT parts, largest unit first: `1h30m`, `4m12s`, `1.5s`. */
const PART = /(\d+(?:\.\d+)?|\.\d+)(ms|s|m|h|d)/y;
const BARE_NUMBER = /^(?:\d+(?:\.\d+)?|\.\d+)$/;

/**
 * Parse a duration into whole milliseconds (rounded). A bare number is
 * milliseconds. Throws EBADOPTION naming `name` when `text` is not a
 * duration or is negative.
 */
export function parseDuration(text: string | number, name = 'duration'): number {
  if (typeof text === 'number') {
    if (Number.isFinite(text) && text >= 0) return Math.round(text);
    throw badDuration(text, name);
  }
  if (typeof text !== 'string') throw badDuration(text, name);
  const s = text.trim();
  if (BARE_NUMBER.test(s)) return Math.round(Number(s));
  if (s.length === 0) throw badDuration(text, name);
  let ms = 0;
  let lastUnitMs = Infinity;
  PART.lastIndex = 0;
  while (PART.lastIndex < s.length) {
    const at = PART.lastIndex;
    const m = PART.exec(s);
    if (m === null) throw badDuration(text, name, at > 0 ? `unexpected ${JSON.stringify(s.slice(at))}` : undefined);
    const unitMs = UNIT_MS[m[2] as Unit];
    if (unitMs >= lastUnitMs) throw badDuration(text, name, 'give each unit once, largest first (1h30m, not 30m1h)');
    lastUnitMs = unitMs;
    ms += Number(m[1]) * unitMs;
  }
  if (!Number.isSafeInteger(Math.round(ms))) throw badDuration(text, name, 'too long');
  return Math.round(ms);
}

function badDuration(value: unknown, name: string, detail?: string): DirQueueError {
  return new DirQueueError(
    'EBADOPTION',
    `${name} must be a duration like 100ms, 30s, 5m, 2h, 7d or 1h30m (a bare number is ms), got ${describe(value)}${detail === undefined ? '' : `: ${detail}`}`,
  );
}

/**
 * An age or interval for people, as precise as it is useful (kubectl's style):
 * `850ms`, `42s`, `4m12s` (under 10 minutes), `42m`, `2h5m` (under 8 hours),
 * `30h` (under 2 days), `5d3h` (under 8 days), `12d`. Negative values (a time
 * still to come) get a leading `-`; NaN is `-`.
 */
export function formatAge(ms: number): string {
  if (Number.isNaN(ms)) return '-';
  if (ms < 0) return `-${formatAge(-ms)}`;
  if (ms === Infinity) return 'forever';
  if (ms < 1000) return `${Math.floor(ms)}ms`;
  const seconds = Math.floor(ms / 1000);
  if (seconds < 60) return `${seconds}s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 10) return join(minutes, 'm', seconds % 60, 's');
  if (minutes < 60) return `${minutes}m`;
  const hours = Math.floor(minutes / 60);
  if (hours < 8) return join(hours, 'h', minutes % 60, 'm');
  if (hours < 48) return `${hours}h`;
  const days = Math.floor(hours / 24);
  if (days < 8) return join(days, 'd', hours % 24, 'h');
  return `${days}d`;
}

function join(major: number, majorUnit: string, minor: number, minorUnit: string): string {
  return minor === 0 ? `${major}${majorUnit}` : `${major}${majorUnit}${minor}${minorUnit}`;
}
