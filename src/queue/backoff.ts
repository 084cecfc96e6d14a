/** How long a failed job waits before its next attempt. */
import type { BackoffSpec } from '../store/envelope.js';
import type { RecordedError } from '../store/errors.js';
import type { BackoffFunction } from './options.js';

/** Delay in ms after attempt `attempt` (1-based) failed with `error`. */
export function backoffDelay(
  spec: BackoffSpec | BackoffFunction,
  attempt: number,
  error: RecordedError,
  random: () => number = Math.random,
): number {
  if (typeof spec === 'function') {
    const ms = spec(attempt, error);
    return Number.isFinite(ms) && ms > 0 ? ms : 0;
  }
  if (spec.type === 'fixed') return spec.delay;
  const raw = spec.delay * 2 ** (attempt - 1);
  const capped = spec.max === undefined ? raw : Math.min(raw, spec.max);
  const jitter = spec.jitter ?? 0;
  return Math.round(capped * (1 - jitter + 2 * jitter * random()));
}
