/**
 * Rescue (I4): take back the claims of workers that died or went silent.
 * Each claim is judged by its owner's heartbeat (a pid known dead on this
 * host, or silence past staleAfter) or, with no heartbeat, by the age of the
 * claim; the take-back is two renames, so of several sweepers only one wins.
 * River's job rescuer does this job for a database.
 */
import fs from 'node:fs';
import { encodeEvent, parseJobFile, type RevokeReason } from '../store/envelope.js';
import { DirQueueError } from '../store/errors.js';
import { appendLine, listDir, move, readJobFile } from '../store/files.js';
import { releaseKeyOf } from '../store/keys.js';
import type { Layout } from '../store/layout.js';
import { isDeadHere, readHeartbeat } from '../store/liveness.js';
import { activeName, parseActiveName, type NameMaker } from '../store/names.js';

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

/** Take back every stale claim but this process's own; the ones that fail go to `problems`. */
export function recoverStale(
  layout: Layout,
  names: NameMaker,
  settings: RescueSettings,
  now: number,
  problems: Unrecovered[],
): Recovered[] {
  const out: Recovered[] = [];
  const owners = new Map<string, ReturnType<typeof readHeartbeat>>();
  for (const name of listDir(layout.paths.active)) {
    const parsed = parseActiveName(name);
    if (parsed === undefined) continue;
    const { claim } = parsed;
    const owner = claim.owner;
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
  if (read.ok || (!read.gone && read.canAppend)) {
    try {
      appendLine(
        held,
        encodeEvent({ event: 'revoked', at: new Date().toISOString(), attempt, claim: oldClaim, reason, by: ours }),
      );
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
  move(held, layout.file(to, id), false, true);
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
