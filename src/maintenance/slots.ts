/**
 * The sweep's part in limits (store/limits.ts): free the running slots of
 * holders that are gone, judged as their claims are (rescue.ts: a dead pid
 * on this host at once, else a heartbeat silent for staleAfter; a slot is a
 * hard link to its holder's heartbeat, so it carries both), make a type's
 * rate tokens match its limit, delete what a reaper or a cleared limit left.
 * Our own slots are never judged: this process gives them back itself.
 */
import fs from 'node:fs';
import type { Layout } from '../store/layout.js';
import { isDeadHere, isWriterGone, readHeartbeat, type OwnerIdentity } from '../store/liveness.js';
import {
  limitsDir,
  listTypeDir,
  readLimit,
  reapSlot,
  reconcileRateTokens,
  type TypeDirListing,
} from '../store/limits.js';
import { listDir, removeQuietly } from '../store/files.js';
import { lstatQuietly } from '../store/entry.js';
import { parseLimitDirName, parseReapName } from '../store/names.js';

export interface SlotsReport {
  /** Slots of gone holders freed. */
  freed: number;
  /** Rate tokens made or deleted to match the limits. */
  tokensFixed: number;
}

/**
 * One pass over limits/. `self`: this process's identity (its slots are its own to give back);
 * `owner`: the sweeping Queue handle's (HOST.PID.NONCE), named in what it moves aside.
 * `now`: the filesystem's clock, ms.
 */
export function sweepSlots(
  layout: Layout,
  self: OwnerIdentity,
  owner: string,
  staleAfter: number,
  now: number,
): SlotsReport {
  const report: SlotsReport = { freed: 0, tokensFixed: 0 };
  const root = limitsDir(layout);
  if (lstatQuietly(root)?.isDirectory() !== true) return report;
  for (const name of listDir(root)) {
    const type = parseLimitDirName(name);
    const dir = `${root}/${name}`;
    if (type === undefined || lstatQuietly(dir)?.isDirectory() !== true) continue; // fsck names it
    const listing = listTypeDir(dir);
    for (const slot of goneSlots(dir, listing, self, staleAfter, now)) {
      if (reapSlot(dir, slot.name, slot.ino, owner)) report.freed++;
    }
    for (const reap of leftoverReaps(layout, dir, listing, owner, staleAfter, now)) removeQuietly(`${dir}/${reap}`);
    const limit = readLimit(dir, type);
    const max = limit === undefined || 'reason' in limit ? 0 : (limit.limit.rate?.max ?? 0);
    if (limit !== undefined && 'reason' in limit) continue; // a broken file: its tokens wait until it is fixed
    const fixed = reconcileRateTokens(layout, dir, max);
    report.tokensFixed += fixed.made + fixed.deleted;
    if (limit === undefined && listing.slots.length === 0) {
      try {
        fs.rmdirSync(dir); // a cleared limit's directory once its last slot is given back
      } catch {
        // a slot taken or a limit set meanwhile
      }
    }
  }
  return report;
}

/** A held slot whose holder is gone: its name, the inode judged (for reapSlot), and why. */
export interface GoneSlot {
  name: string;
  ino: number;
  /** True: its process is dead on this host; false: its heartbeat has been silent for longer than the limit given. */
  dead: boolean;
  mtimeMs: number;
}

/**
 * The slots of `listing` (in `dir`) whose holders are gone, judged as their claims are: a dead pid on this
 * host, or a heartbeat silent for more than `staleAfter` by `now`. Slots of `self` and slots that cannot be
 * read as a heartbeat are never judged. Shared by the sweep (which frees them) and fsck (which reports them).
 */
export function goneSlots(
  dir: string,
  listing: TypeDirListing,
  self: OwnerIdentity,
  staleAfter: number,
  now: number,
): GoneSlot[] {
  const gone: GoneSlot[] = [];
  for (const slot of listing.slots) {
    const holder = readHeartbeat(`${dir}/${slot.name}`); // the holder's heartbeat under another name
    if (holder === undefined || isSelf(holder.identity, self)) continue;
    const dead = holder.identity !== undefined && isDeadHere(holder.identity);
    if (!dead && now - holder.mtimeMs <= staleAfter) continue;
    gone.push({ name: slot.name, ino: holder.ino, dead, mtimeMs: holder.mtimeMs });
  }
  return gone;
}

/**
 * What reapers that died between their rename and their unlink left in `dir`: held by no one, deleted
 * once their sweeper is gone (a dead pid here, named in the name) or they are older (ctime: when moved
 * aside) than `maxAge`. A younger one of a live sweeper may be a reaper at work, about to link it back.
 * `self`: the looking Queue handle's owner, whose own are never judged gone.
 */
export function leftoverReaps(
  layout: Layout,
  dir: string,
  listing: TypeDirListing,
  self: string,
  maxAge: number,
  now: number,
): string[] {
  return listing.reaps.filter((reap) => {
    const reaper = parseReapName(reap);
    const stat = lstatQuietly(`${dir}/${reap}`);
    if (stat === undefined) return false;
    return now - stat.ctimeMs > maxAge || (reaper !== undefined && reaper !== self && isWriterGone(layout, reaper));
  });
}

function isSelf(identity: OwnerIdentity | undefined, self: OwnerIdentity): boolean {
  return (
    identity !== undefined &&
    identity.pid === self.pid &&
    identity.host === self.host &&
    identity.bootId === self.bootId &&
    identity.startTime === self.startTime
  );
}
