/**
 * What a queue did lately, read from done/ and failed/ alone (no counters
 * to keep, no daemon): a job file's mtime is when its last event was
 * appended, that is when the job ended, and its id's time is when it became
 * ready. So the jobs that ended in the last window are those with a recent
 * mtime, and each one's latency (ready to ended: the wait plus the run) is
 * mtime minus its id's time.
 *
 * This costs one lstat per file in done/ and failed/ (about 1 us each here),
 * fine for `dirq stats` and a metrics scrape, not for a hot path.
 */
import fs from 'node:fs';
import { listDir } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { parseId } from '../store/names.js';

/** The default window: one minute. */
export const RECENT_WINDOW_MS = 60_000;

export interface Recent {
  /**
   * The window looked at, ms: the last minute by default, or since the
   * queue was made when that is later (at least a second), so that a young
   * queue's rate is not divided by time it did not exist.
   */
  windowMs: number;
  /** Jobs that ended in done/ within the window. */
  completed: number;
  /** Jobs that ended in failed/ within the window. */
  failed: number;
  /** (completed + failed) per second over the window. */
  perSecond: number;
  /**
   * Ready-to-ended time of the jobs completed within the window, ms
   * (null when none completed): median, 95th percentile, longest.
   */
  latency: { p50: number; p95: number; max: number } | null;
}

/**
 * The jobs that ended within the last `windowMs` before `now` (ms since the
 * epoch), but not before `notBefore` (when the queue was made), if given.
 */
export function recent(layout: Layout, windowMs = RECENT_WINDOW_MS, now = Date.now(), notBefore = -Infinity): Recent {
  windowMs = Math.max(Math.min(windowMs, 1000), Math.min(windowMs, now - notBefore));
  const since = now - windowMs;
  const latencies: number[] = [];
  const completed = endedSince(layout, 'done', since, latencies);
  const failed = endedSince(layout, 'failed', since);
  latencies.sort((a, b) => a - b);
  const latency =
    latencies.length === 0
      ? null
      : { p50: quantile(latencies, 0.5), p95: quantile(latencies, 0.95), max: latencies.at(-1)! };
  return {
    windowMs: Math.round(windowMs),
    completed,
    failed,
    perSecond: round((completed + failed) / (windowMs / 1000)),
    latency,
  };
}

function endedSince(layout: Layout, state: 'done' | 'failed', since: number, latencies?: number[]): number {
  let n = 0;
  for (const name of listDir(layout.paths[state])) {
    const id = parseId(name);
    if (id === undefined) continue;
    let mtimeMs: number;
    try {
      mtimeMs = fs.lstatSync(layout.file(state, name)).mtimeMs;
    } catch {
      continue; // purged or pruned meanwhile
    }
    if (mtimeMs < since) continue;
    n++;
    latencies?.push(Math.max(0, Math.round(mtimeMs - id.enqueuedUs / 1000)));
  }
  return n;
}

/** The nearest-rank quantile of sorted values. */
function quantile(sorted: readonly number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))]!;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}
