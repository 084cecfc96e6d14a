/**
 * What a draining pool still has to wait for, read from the directory: the
 * ready jobs of its types, its own claims, and the delayed jobs of its types.
 *
 * It is read in one synchronous pass, so the pool's own claims, endings and
 * retries cannot move a job between the listings (they run on this thread);
 * a move by another process during the pass is seen at the next look. The
 * pool's own claims are listed from active/, not from its run table, because
 * a claim that has renamed its job but not yet handed it to a thread is in
 * active/ first.
 */
import type { Layout } from '../store/layout.js';
import { listDir } from '../store/files.js';
import { readInfo } from '../queue/inspect.js';
import { encodeType, idEncodedType, isId, parseActiveName, parseDelayedName } from '../store/names.js';

export interface DelayedJob {
  id: string;
  /** When it is due, ms since the epoch. */
  runAt: number;
  /** The file's name in delayed/. */
  name: string;
}

export interface Pending {
  /** A job of these types is ready in queue/, or `owner` holds a claim in active/. */
  busy: boolean;
  /** The delayed jobs of these types, in due order. */
  delayed: DelayedJob[];
}

/** Encoded types to match names against; undefined matches every type. */
export function typeFilter(types: readonly string[] | undefined): ReadonlySet<string> | undefined {
  return types === undefined ? undefined : new Set(types.map(encodeType));
}

export function pending(layout: Layout, owner: string, types: ReadonlySet<string> | undefined): Pending {
  const ours = (id: string): boolean => types === undefined || types.has(idEncodedType(id));
  const delayed: DelayedJob[] = [];
  for (const name of listDir(layout.paths.delayed).sort()) {
    const parsed = parseDelayedName(name);
    if (parsed !== undefined && ours(parsed.id)) delayed.push({ id: parsed.id, runAt: parsed.dueUs / 1000, name });
  }
  // queue/ after delayed/, against the direction promotion moves jobs, so a job promoted meanwhile is seen once
  const ready = listDir(layout.paths.queue).some((name) => isId(name) && ours(name));
  const claimed = listDir(layout.paths.active).some((name) => {
    const parsed = parseActiveName(name);
    return parsed !== undefined && parsed.claim.owner === owner;
  });
  return { busy: ready || claimed, delayed };
}

/**
 * Split delayed jobs into retries (a job that failed an attempt and waits for
 * its backoff: its outcome is still open) and jobs scheduled to run later
 * that have never failed. One read per job: done once, when a drain ends.
 */
export function splitRetries(
  layout: Layout,
  delayed: readonly DelayedJob[],
  defaults: { maxJobBytes: number; attempts: number },
): { retries: DelayedJob[]; scheduled: DelayedJob[] } {
  const retries: DelayedJob[] = [];
  const scheduled: DelayedJob[] = [];
  for (const job of delayed) {
    const info = readInfo(layout, 'delayed', job.name, defaults);
    if (info === undefined) continue; // promoted or removed meanwhile
    (info.attemptsMade > 0 ? retries : scheduled).push(job);
  }
  return { retries, scheduled };
}
