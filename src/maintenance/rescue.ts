/**
 * Rescue (I4): take back the claims of workers that died or went silent.
 * Each claim is judged by its owner's heartbeat (a pid known dead on this
 * host, or silence past staleAfter) or, with no heartbeat, by the age of the
 * claim; the take-back is two renames, so of several sweepers only one wins.
 * River's job rescuer does this job for a database.
 */
import fs from 'node:fs';
import { encodeEvent, parseJobFile, type Envelope, type JobEvent, type RevokeReason } from '../store/envelope.js';
import { DirQueueError, fsError } from '../store/errors.js';
import { appendLine, listDir, move, readJobFile, sameFile, type ReadOutcome } from '../store/files.js';
import { releaseKeyOf } from '../store/keys.js';
import { afterEnding } from '../store/release.js';
import { isCancelRequested, removeCancel } from '../store/cancels.js';
import type { Layout } from '../store/layout.js';
import { heartbeatAt, isDeadHere, type HeartbeatReading } from '../store/liveness.js';
import { activeName, isDelayedNameOf, parseActiveName, type NameMaker } from '../store/names.js';

/** What taking a claim back needs to know. */
export interface RevokeSettings {
  attempts: number;
  maxJobBytes: number;
}

export interface RescueSettings extends RevokeSettings {
  staleAfter: number;
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

/**
 * A job a take-back left under this process's claim at `path`: the step after
 * taking the claim over failed, and so did the rename back (a disk that went
 * read-only). Its Queue moves it on to `to` at its next claim, sweep or close;
 * if the process dies first, it is a stale claim of its own, taken back by the next sweep.
 */
export interface Stranded {
  id: string;
  path: string;
  to: 'queue' | 'failed';
}

/** What one pass of the rescue did. */
export interface RescueReport {
  recovered: Recovered[];
  /** The claims whose take-back failed; the rest were judged and taken back. */
  unrecovered: Unrecovered[];
  /** Owners whose heartbeat the disk failed to read: their claims were not judged. */
  warnings: DirQueueError[];
}

/**
 * Take back every stale claim but this process's own. One that fails does not
 * stop the others. An owner whose heartbeat the disk fails to read is not
 * judged at all (its claims wait for a sweep that can read it): the error
 * is a warning, once. Jobs a failed take-back left under our claim go to
 * `stranded` (the caller's, so that none is forgotten if a later step throws).
 */
export function recoverStale(
  layout: Layout,
  names: NameMaker,
  settings: RescueSettings,
  now: number,
  stranded: Stranded[],
): RescueReport {
  const report: RescueReport = { recovered: [], unrecovered: [], warnings: [] };
  const owners = new Map<string, HeartbeatReading | undefined | DirQueueError>();
  for (const name of listDir(layout.paths.active)) {
    const parsed = parseActiveName(name);
    if (parsed === undefined) continue;
    const { claim } = parsed;
    const owner = claim.owner;
    if (owner === names.owner) continue; // our own claims: this process is alive by definition
    if (!owners.has(owner)) owners.set(owner, readOwner(layout, owner, report.warnings));
    const heartbeat = owners.get(owner);
    if (heartbeat instanceof DirQueueError) continue;
    const reason = judge(layout, name, heartbeat, settings, now);
    if (reason === undefined) continue;
    try {
      const to = revoke(layout, names, settings, name, parsed.id, claim.claim, reason, stranded);
      if (to !== undefined) report.recovered.push({ id: parsed.id, claim: claim.claim, reason, to });
    } catch (error) {
      report.unrecovered.push({ id: parsed.id, error: error as Error });
    }
  }
  return report;
}

function readOwner(
  layout: Layout,
  owner: string,
  warnings: DirQueueError[],
): HeartbeatReading | undefined | DirQueueError {
  try {
    return heartbeatAt(layout.file('workers', owner));
  } catch (error) {
    const failed = error as DirQueueError;
    warnings.push(failed);
    return failed;
  }
}

/** After a sweep that did all it could: the claims it could not take back, as one error. */
export function unrecoveredError(problems: readonly Unrecovered[]): DirQueueError {
  const [first] = problems as [Unrecovered];
  const code = first.error instanceof DirQueueError ? first.error.code : 'EFS';
  // a fault of the disk carries its own advice (fsError); a job file this process may not write needs another sweeper
  const todo =
    code === 'EACCES' || code === 'EPERM' || code === 'EFS'
      ? '; sweep as a user who may write the job files, or make the queue group-shared (dirq init --mode 0660)'
      : '; the next sweep tries again';
  return new DirQueueError(
    code,
    `could not take back ${problems.length} stale claim(s), first ${first.id}: ${first.error.message}${todo}`,
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
  heartbeat: HeartbeatReading | undefined,
  settings: RescueSettings,
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
 * When a step fails, the claim is put back as it was and the error thrown;
 * what could not even be put back is added to `stranded`.
 */
export function revoke(
  layout: Layout,
  names: NameMaker,
  settings: RevokeSettings,
  name: string,
  id: string,
  oldClaim: string,
  reason: RevokeReason,
  stranded: Stranded[],
): 'queue' | 'failed' | undefined {
  const ours = names.claim();
  const held = layout.file('active', activeName(id, ours));
  if (!move(layout.file('active', name), held, true)) return undefined; // another recoverer, or the owner, was first
  try {
    if (endedAlready(layout, held, id)) {
      fs.unlinkSync(held); // its ending's rename landed; only the old name outlived a cut
      return undefined;
    }
  } catch (error) {
    putBack(layout, held, name, id, stranded); // judged again by the next sweep, as it was
    throw fsError(`looking for where the ending of ${held} put it`, error);
  }
  let read: ReadOutcome;
  try {
    read = readJobFile(held, settings.maxJobBytes);
    if (!read.ok && !read.gone && read.ioError !== undefined) throw read.ioError;
  } catch (error) {
    // the read failed (EIO, ...), which says nothing of the file: put the claim back as it was, for a
    // sweep that can read it, rather than set a good job aside in failed/ as unreadable
    putBack(layout, held, name, id, stranded);
    throw error;
  }
  let attempt = 1;
  let exhausted = false;
  if (read.ok) {
    try {
      const revoked = {
        event: 'revoked' as const,
        at: new Date(0).toISOString(),
        attempt: 0,
        claim: oldClaim,
        reason,
        by: ours,
      };
      const record = parseJobFile(`${read.text}\n${encodeEvent(revoked)}`);
      attempt = record.attemptsMade;
      exhausted = record.attemptsSinceRetry >= (record.envelope.attempts ?? settings.attempts);
    } catch {
      exhausted = true; // an unparsable file cannot run again
    }
  }
  // a cancelled job whose holder died (or overran) ends in failed/, not back in queue/ (store/cancels.ts)
  let cancelled: boolean;
  try {
    cancelled = read.ok && isCancelRequested(layout, id, oldClaim);
  } catch (error) {
    putBack(layout, held, name, id, stranded); // as for a failed read: judged again by a sweep that can look
    throw error;
  }
  if (read.ok || (!read.gone && read.canAppend)) {
    try {
      const at = new Date().toISOString();
      const revoked = encodeEvent({ event: 'revoked', at, attempt, claim: oldClaim, reason, by: ours });
      appendLine(held, cancelled ? revoked + encodeEvent(cancelledEvent(id, attempt, ours, at)) : revoked); // one write
    } catch (error) {
      // Without its revoked event the job cannot go on (the old claim's writes would stand and the
      // attempt would not count): put the claim back as it was, for a sweeper that may write the file.
      putBack(layout, held, name, id, stranded, cancelled ? 'failed' : 'queue');
      throw error;
    }
  }
  const to = exhausted || cancelled || !read.ok ? 'failed' : 'queue';
  try {
    move(held, layout.file(to, id), false, true);
  } catch (error) {
    stranded.push({ id, path: held, to }); // its revoked event is written: it only needs the rename
    throw error;
  }
  if (cancelled) removeCancel(layout, id, oldClaim);
  if (to === 'failed') {
    const envelope = read.ok ? envelopeOf(read.text) : undefined;
    releaseKeyOf(layout, envelope?.key, id);
    // what waited for it goes on; a release that fails here is the next sweep's (releases.ts)
    const ctx = { layout, claim: () => names.claim(), maxJobBytes: settings.maxJobBytes };
    afterEnding(ctx, { id, state: 'failed', envelope }, () => undefined);
  }
  return to;
}

/**
 * Whether the claim's file, taken over at `held`, is also at the name its
 * ending gives it (done/ID, failed/ID, queue/ID, or its name in delayed/),
 * one file at both: then its holder's ending renamed it and a power cut kept
 * the new name but not the old one's removal, and the caller unlinks `held`,
 * leaving the job where its ending put it. btrfs does that: the power-cut
 * harness found acknowledged durable: 'all' completions in active/ and done/
 * after cuts, even with both directories fsynced after the rename (together
 * or one after the other); so an 'all' ending now fsyncs only the new name's
 * directory (job.ts) and leaves this to the sweep. Taking such a claim back
 * would append a revoked event to the one file, void the completion in done/
 * too, and run the job again. The torn-result pass still judges done/ as
 * ever. Costs one lstat per claim taken back, the rest only for a file with
 * other names.
 */
function endedAlready(layout: Layout, held: string, id: string): boolean {
  const file = fs.lstatSync(held, { throwIfNoEntry: false });
  if (file === undefined || file.nlink <= 1) return false;
  const same = (path: string): boolean => sameFile(file, path);
  return (
    same(layout.file('done', id)) ||
    same(layout.file('failed', id)) ||
    same(layout.file('queue', id)) ||
    listDir(layout.paths.delayed).some((name) => isDelayedNameOf(name, id) && same(layout.file('delayed', name)))
  );
}

/** The error a cancelled job ends with when a sweep, not its holder, ends it. */
function cancelledEvent(id: string, attempt: number, claim: string, at: string): JobEvent {
  const message = `job ${id} was cancelled, and its worker ended before it could stop it`;
  return { event: 'error', at, attempt: Math.max(1, attempt), claim, message, code: 'ECANCELLED' };
}

/** Give a claim taken over back to its old name (so it is judged again, as it was); stranded under ours when that fails. */
function putBack(
  layout: Layout,
  held: string,
  name: string,
  id: string,
  stranded: Stranded[],
  to: 'queue' | 'failed' = 'queue',
): void {
  try {
    move(held, layout.file('active', name));
  } catch {
    // without its revoked event: the attempt is not counted; a cancelled job goes to failed/ all the same
    stranded.push({ id, path: held, to });
  }
}

function envelopeOf(text: string): Envelope | undefined {
  try {
    return parseJobFile(text).envelope;
  } catch {
    return undefined;
  }
}
