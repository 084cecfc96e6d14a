/**
 * One maintenance sweep (I4, I6): recover claims whose owner died or went
 * silent, promote due delayed jobs, prune done/ by its retention, and delete
 * abandoned tmp/ files (old, or left by a writer that died). Any process with
 * the queue open may sweep; a lock keeps it to one at a time normally, and
 * every step is a single-winner rename or an idempotent delete, so two
 * overlapping sweeps never move a job twice. The lock is the library's own
 * (sweep-lock.ts says why it is not proper-lockfile's).
 */
import fs from 'node:fs';
import { encodeEvent, parseJobFile, type RevokeReason } from '../store/envelope.js';
import { DirQueueError, errnoOf, fsError } from '../store/errors.js';
import { appendLine, listDir, move, readJobFile } from '../store/files.js';
import { releaseKeyOf } from '../store/keys.js';
import { promoteDueJobs } from '../queue/discovery.js';
import type { Layout } from '../store/layout.js';
import { filesystemNow, isDeadHere, isWriterGone, readHeartbeat } from '../store/liveness.js';
import { activeName, isLibraryTmpName, isOwnerName, parseActiveName, parseId, parseTmpName, type NameMaker } from '../store/names.js';
import { CLOCK_FILE, lockSweeps } from '../store/sweep-lock.js';
import { foldTotals } from '../store/totals.js';
import { requeueTornAfterBoot, type TornReport } from './torn.js';

/** What taking a claim back needs to know. */
export interface RevokeSettings {
  attempts: number;
  maxJobBytes: number;
}

export interface SweepSettings extends RevokeSettings {
  staleAfter: number;
  keepDone: number;
  tmpMaxAge: number;
}

export interface Recovered {
  id: string;
  /** The claim that was taken back. */
  claim: string;
  reason: RevokeReason;
  /** Where the job went. */
  to: 'queue' | 'failed';
}

/** A stale claim this sweep could not take back (it may not write the job file, say). */
export interface Unrecovered {
  id: string;
  error: Error;
}

export interface SweepReport {
  /** False when another process held the maintenance lock, so nothing was done. */
  swept: boolean;
  recovered: Recovered[];
  /**
   * Stale claims whose take-back failed; the rest of the sweep ran. Most often
   * this process may not write the job file, and the claim was put back as it
   * was, for a sweeper that may. Queue.recover() throws an error naming them.
   */
  unrecovered: Unrecovered[];
  promoted: number;
  pruned: number;
  tmpRemoved: number;
  /** Heartbeats deleted: of workers known dead, or silent for SILENT_HEARTBEAT_MS, that held nothing. */
  heartbeatsRemoved: number;
  /**
   * Problems the sweep worked around, say a FIFO at workers/.clock (it read
   * the clock from a scratch file instead). Queue emits each as a 'warning'.
   */
  warnings: DirQueueError[];
  /** done/ jobs whose result was torn, put back in queue/ (only in the first sweep after a boot: torn.ts). */
  torn?: TornReport;
}

/**
 * The lock is held for a sweep (milliseconds, usually). A holder that died
 * leaves it, and others take it over once it is this old in the filesystem's
 * clock: staleAfter/2, kept within 2..10 s, so a dead sweeper never stretches
 * the recovery bound past staleAfter (NFS.md quotes these bounds).
 */
const lockStaleMs = (staleAfter: number): number => Math.min(10_000, Math.max(2000, staleAfter / 2));

/**
 * A heartbeat silent this long whose worker holds no claim is deleted by
 * sweeps even when its worker is not known dead (another host's): it would
 * only pile up. If that worker was merely stopped, it makes its heartbeat
 * again when it resumes (liveness.ts Heartbeat.beat).
 */
const SILENT_HEARTBEAT_MS = 3600_000;

const notSwept = (): SweepReport => ({ swept: false, recovered: [], unrecovered: [], promoted: 0, pruned: 0, tmpRemoved: 0, heartbeatsRemoved: 0, warnings: [] });

/**
 * Run one sweep under the maintenance lock. `wait`: wait for the lock (an
 * explicit recover()) instead of skipping the sweep (a timer's).
 */
export async function sweep(layout: Layout, names: NameMaker, settings: SweepSettings, wait: boolean): Promise<SweepReport> {
  const replaced = layout.checkIdentities(); // before the lock, whose temp file is made in tmp/
  if (replaced !== undefined) return { ...notSwept(), warnings: [replaced] };
  const stale = lockStaleMs(settings.staleAfter);
  const lock = await lockSweeps(layout, names.owner, stale, wait ? stale + 1000 : 0);
  if (lock === undefined) return notSwept();
  try {
    return await sweepUnlocked(layout, names, settings);
  } finally {
    try {
      lock.release();
    } catch {
      // a lock left behind is taken over once stale
    }
  }
}

/** The sweep itself; safe to run concurrently with other sweeps. */
export async function sweepUnlocked(layout: Layout, names: NameMaker, settings: SweepSettings): Promise<SweepReport> {
  // A directory of the layout swapped for a link (or another directory) since the queue was opened would
  // make this sweep delete or rename files outside the queue: do nothing at all then (S3).
  const replaced = layout.checkIdentities();
  if (replaced !== undefined) return { ...notSwept(), warnings: [replaced] };
  const { now, warning } = filesystemNow(layout.file('workers', CLOCK_FILE), layout.paths.tmp);
  const problems: Unrecovered[] = [];
  const recovered = recoverStale(layout, names, settings, now, problems);
  const promoted = promoteDueJobs(layout);
  // before pruning: after a power cut a torn job's mtime may be old, and it must run again, not be pruned
  const torn = await requeueTornAfterBoot(layout, settings.maxJobBytes);
  const pruned = pruneDone(layout, settings.keepDone, now);
  const tmp = removeAbandoned(layout, settings.tmpMaxAge, now);
  const heartbeatsRemoved = removeGoneHeartbeats(layout, names.owner, tmp.writers, Math.max(SILENT_HEARTBEAT_MS, settings.staleAfter), now);
  await foldTotals(layout, names.claim(), now);
  const warnings = warning === undefined ? [] : [warning];
  return { swept: true, recovered, unrecovered: problems, promoted, pruned, tmpRemoved: tmp.removed, heartbeatsRemoved, warnings, torn };
}

function recoverStale(
  layout: Layout,
  names: NameMaker,
  settings: SweepSettings,
  now: number,
  problems: Unrecovered[],
): Recovered[] {
  const out: Recovered[] = [];
  const owners = new Map<string, ReturnType<typeof readHeartbeat>>();
  for (const name of listDir(layout.paths.active)) {
    const parsed = parseActiveName(name);
    if (parsed === undefined) continue;
    const { claim } = parsed;
    const owner = `${claim.host}.${claim.pid}.${claim.nonce}`;
    if (owner === names.owner) continue; // our own claims: this process is alive by definition
    if (!owners.has(owner)) owners.set(owner, readHeartbeat(layout.file('workers', owner)));
    const reason = judge(layout, name, owners.get(owner), settings, now);
    if (reason === undefined) continue;
    try {
      const to = revoke(layout, names, settings, name, parsed.id, claim.claim, reason);
      if (to !== undefined) out.push({ id: parsed.id, claim: claim.claim, reason, to });
    } catch (error) {
      problems.push({ id: parsed.id, error: error as Error }); // one job this process may not recover does not stop the sweep
    }
  }
  return out;
}

/** After a sweep that did all it could: the claims it could not take back, as one error. */
export function unrecoveredError(problems: readonly Unrecovered[]): DirQueueError {
  const [first] = problems as [Unrecovered];
  const code = first.error instanceof DirQueueError ? first.error.code : 'EFS';
  return new DirQueueError(
    code,
    `could not take back ${problems.length} stale claim(s), first ${first.id}: ${first.error.message}; ` +
      'sweep as a user who may write the job files, or make the queue group-shared (dirq init --mode 0660)',
    { cause: first.error },
  );
}

/**
 * Why the claim `name` should be taken back, or undefined while its owner is
 * alive. A job past its timeout is not judged here: its owner, alive by
 * definition, takes it back itself (Queue), timed by its own monotonic clock.
 * The active file's ctime is no measure of a job's run time, because every
 * progress or log append refreshes it.
 */
function judge(
  layout: Layout,
  name: string,
  heartbeat: ReturnType<typeof readHeartbeat>,
  settings: SweepSettings,
  now: number,
): RevokeReason | undefined {
  if (heartbeat !== undefined) {
    if (heartbeat.identity !== undefined && isDeadHere(heartbeat.identity)) return 'crashed';
    return now - heartbeat.mtimeMs > settings.staleAfter ? 'stalled' : undefined;
  }
  // no heartbeat: the owner closed without releasing, or claims by hand; its lease is the age of
  // the claim's last sign of life, the rename into active/ or an append (ctime, the filesystem's clock)
  try {
    return now - fs.lstatSync(layout.file('active', name)).ctimeMs > settings.staleAfter ? 'crashed' : undefined;
  } catch {
    return undefined; // gone meanwhile: its owner ended it
  }
}

/**
 * Take the claim back: one rename of that exact active name to a claim of
 * ours (so only one recoverer wins), record why, then one rename to queue/
 * (attempt counted) or failed/ (attempts exhausted). Returns where it went.
 */
export function revoke(
  layout: Layout,
  names: NameMaker,
  settings: RevokeSettings,
  name: string,
  id: string,
  oldClaim: string,
  reason: RevokeReason,
): 'queue' | 'failed' | undefined {
  const ours = names.claim();
  const held = layout.file('active', activeName(id, ours));
  if (!move(layout.file('active', name), held, true)) return undefined; // another recoverer, or the owner, was first
  const read = readJobFile(held, settings.maxJobBytes);
  let attempt = 1;
  let exhausted = false;
  if (read.ok) {
    try {
      const revoked = { event: 'revoked' as const, at: new Date(0).toISOString(), attempt: 0, claim: oldClaim, reason, by: ours };
      const record = parseJobFile(`${read.text}\n${encodeEvent(revoked)}`);
      attempt = record.attemptsMade;
      exhausted = record.attemptsSinceRetry >= (record.envelope.attempts ?? settings.attempts);
    } catch {
      exhausted = true; // an unparsable file cannot run again
    }
  }
  if (read.ok || (!read.gone && read.canAppend)) {
    try {
      appendLine(held, `${encodeEvent({ event: 'revoked', at: new Date().toISOString(), attempt, claim: oldClaim, reason, by: ours })}`);
    } catch (error) {
      // Without its revoked event the job cannot go on (the old claim's writes would stand and the
      // attempt would not count): put the claim back as it was, for a sweeper that may write the file.
      try {
        move(held, layout.file('active', name));
      } catch {
        // left under our claim: taken back like any of ours, once this process is gone
      }
      throw error;
    }
  }
  const to = exhausted || !read.ok ? 'failed' : 'queue';
  move(held, layout.file(to, id));
  if (to === 'failed' && read.ok) releaseKeyOf(layout, keyOf(read.text), id);
  return to;
}

function keyOf(text: string): unknown {
  try {
    return parseJobFile(text).envelope.key;
  } catch {
    return undefined;
  }
}

/** Delete done/ jobs that ended more than `keepDone` ms ago (by mtime: the result append). */
function pruneDone(layout: Layout, keepDone: number, now: number): number {
  if (keepDone === Infinity) return 0;
  const cutoff = now - keepDone;
  let pruned = 0;
  for (const name of listDir(layout.paths.done)) {
    const parsed = parseId(name);
    // an id's time is when the job became ready, so it ended later: younger ids need no stat
    if (parsed === undefined || parsed.enqueuedUs / 1000 > cutoff) continue;
    if (unlinkIfOlder(layout.file('done', name), cutoff)) pruned++;
  }
  return pruned;
}

/**
 * Delete tmp/ files that no writer will rename: older than `maxAge`, or left
 * by a writer that died. Returns how many, and the writers whose files remain.
 * Only names the library makes there are deleted (isLibraryTmpName): anything
 * else is not ours to delete, and `dirq fsck` names it.
 */
function removeAbandoned(layout: Layout, maxAge: number, now: number): { removed: number; writers: Set<string> } {
  let removed = 0;
  const writers = new Set<string>();
  const gone = new Map<string, boolean>(); // per writer: a batch in flight has thousands of files
  for (const name of listDir(layout.paths.tmp)) {
    if (!isLibraryTmpName(name)) continue;
    const owner = parseTmpName(name)?.owner;
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
function removeGoneHeartbeats(layout: Layout, self: string, writers: ReadonlySet<string>, silentMs: number, now: number): number {
  const holders = new Set<string>();
  for (const name of listDir(layout.paths.active)) {
    const claim = parseActiveName(name)?.claim;
    if (claim !== undefined) holders.add(`${claim.host}.${claim.pid}.${claim.nonce}`);
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

function unlinkIfOlder(path: string, cutoff: number): boolean {
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
