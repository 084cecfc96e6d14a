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
import { limitsDir, listTypeDir, readLimit, reapSlot, reconcileRateTokens } from '../store/limits.js';
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
    for (const slot of listing.slots) {
      const path = `${dir}/${slot.name}`;
      const holder = readHeartbeat(path); // the holder's heartbeat under another name
      if (holder === undefined || isSelf(holder.identity, self)) continue;
      const dead = holder.identity !== undefined && isDeadHere(holder.identity);
      if (!dead && now - holder.mtimeMs <= staleAfter) continue;
      if (reapSlot(dir, slot.name, holder.ino, owner)) report.freed++;
    }
    for (const reap of listing.reaps) {
      // a reaper that died between its rename and its unlink: what it moved aside is held by no one
      const reaper = parseReapName(reap)!;
      const stat = lstatQuietly(`${dir}/${reap}`);
      const gone = reaper !== owner && isWriterGone(layout, reaper);
      if (stat !== undefined && (gone || now - stat.ctimeMs > staleAfter)) removeQuietly(`${dir}/${reap}`);
    }
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

function isSelf(identity: OwnerIdentity | undefined, self: OwnerIdentity): boolean {
  return (
    identity !== undefined &&
    identity.pid === self.pid &&
    identity.host === self.host &&
    identity.bootId === self.bootId &&
    identity.startTime === self.startTime
  );
}
