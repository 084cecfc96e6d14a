/**
 * Clean: delete what no one will use again: tmp/ files a writer abandoned
 * (old, or its writer is gone) and the heartbeats of workers that are gone
 * and hold nothing. Only names the library makes are deleted.
 */
import fs from 'node:fs';
import { errnoOf, fsError } from '../store/errors.js';
import { listDir } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { isDeadHere, isWriterGone, readHeartbeat } from '../store/liveness.js';
import { isLibraryTmpName, isOwnerName, parseActiveName, tmpWriterOf } from '../store/names.js';

/**
 * A heartbeat silent this long whose worker holds no claim is deleted by
 * sweeps even when its worker is not known dead (another host's): it would
 * only pile up. If that worker was merely stopped, it makes its heartbeat
 * again when it resumes (liveness.ts Heartbeat.beat).
 */
export const SILENT_HEARTBEAT_MS = 3600_000;

/** Abandoned files in tmp/ (a writer died mid-enqueue) are deleted after this long: sweeps and fsck's default. */
export const TMP_MAX_AGE_MS = 3600_000;

/**
 * Delete tmp/ files that no writer will rename: older than `maxAge`, or left
 * by a writer that died. Returns how many, and the writers whose files remain.
 * Only names the library makes there are deleted (isLibraryTmpName): anything
 * else is not ours to delete, and `dirq fsck` names it.
 */
export function removeAbandoned(
  layout: Layout,
  maxAge: number,
  now: number,
): { removed: number; writers: Set<string> } {
  let removed = 0;
  const writers = new Set<string>();
  const gone = new Map<string, boolean>(); // per writer: a batch in flight has thousands of files
  for (const name of listDir(layout.paths.tmp)) {
    if (!isLibraryTmpName(name)) continue;
    const owner = tmpWriterOf(name);
    if (owner !== undefined && !gone.has(owner)) gone.set(owner, isWriterGone(layout, owner));
    const cutoff = owner !== undefined && gone.get(owner) === true ? Infinity : now - maxAge;
    if (unlinkIfOlder(layout.file('tmp', name), cutoff)) removed++;
    else if (owner !== undefined) writers.add(owner);
  }
  return { removed, writers };
}

/**
 * Delete the heartbeats of workers that hold no claim (after this sweep took
 * back what it could) and have no file left in tmp/ (a heartbeat is what
 * tells a dead writer's tmp/ files and unique keys from a live one's), when
 * their worker is known dead or has been silent for `silentMs`. Only names
 * the codec calls owners are touched, and never this process's own.
 */
export function removeGoneHeartbeats(
  layout: Layout,
  self: string,
  writers: ReadonlySet<string>,
  silentMs: number,
  now: number,
): number {
  const holders = new Set<string>();
  for (const name of listDir(layout.paths.active)) {
    const claim = parseActiveName(name)?.claim;
    if (claim !== undefined) holders.add(claim.owner);
  }
  let removed = 0;
  for (const name of listDir(layout.paths.workers)) {
    if (!isOwnerName(name) || name === self || holders.has(name) || writers.has(name)) continue;
    const path = layout.file('workers', name);
    const beat = readHeartbeat(path);
    if (beat === undefined) continue; // gone meanwhile, or not a heartbeat file: fsck names it
    const dead = beat.identity !== undefined && isDeadHere(beat.identity);
    if (!dead && now - beat.mtimeMs <= silentMs) continue;
    try {
      fs.unlinkSync(path);
      removed++;
    } catch (error) {
      if (errnoOf(error) !== 'ENOENT') throw fsError(`removing the heartbeat ${path}`, error);
    }
  }
  return removed;
}

/** Delete the file at `path` if it is not a directory and its mtime is at or before `cutoff`; false if it is younger or gone. */
export function unlinkIfOlder(path: string, cutoff: number): boolean {
  try {
    const stat = fs.lstatSync(path);
    if (stat.mtimeMs > cutoff || stat.isDirectory()) return false;
    fs.unlinkSync(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`removing ${path}`, error);
  }
}
