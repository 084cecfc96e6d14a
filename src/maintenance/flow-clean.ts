/**
 * The sweep's service for pauses and cancels (store/pauses.ts,
 * store/cancels.ts): remove cancel requests whose claim is no longer in
 * active/ (the job ended, or was taken back) once CANCEL_GRACE_MS old, and
 * pause files whose `until` has passed, so that `ls paused/ cancel/` shows
 * only what is in effect. Claims never need this to be right: an ended pause
 * is not obeyed, and a request names one claim, which never comes back.
 * Safe with overlapping sweeps: each step is an idempotent delete, or a
 * single-winner rename aside that gives back a pause made since it was read.
 */
import fs from 'node:fs';
import { CANCEL_GRACE_MS, cancelDir, listCancels } from '../store/cancels.js';
import type { Layout } from '../store/layout.js';
import { lexists } from '../store/locate.js';
import { activeName } from '../store/names.js';
import { checkFlowDir, readPauses, removeExpiredPause } from '../store/pauses.js';

export interface FlowCleanReport {
  cancelsRemoved: number;
  pausesEnded: number;
}

/** One pass; `now` is the filesystem's clock (ms), `owner` the sweeper's (its temp names carry it). */
export function cleanFlow(layout: Layout, now: number, owner: string): FlowCleanReport {
  const report: FlowCleanReport = { cancelsRemoved: 0, pausesEnded: 0 };
  for (const pause of readPauses(layout).pauses) {
    if (pause.until !== undefined && pause.until <= now && removeExpiredPause(layout, pause, owner))
      report.pausesEnded++;
  }
  const requests = listCancels(layout);
  if (requests.length === 0) return report;
  checkFlowDir(layout, cancelDir(layout)); // never delete through a link
  for (const { name, request } of requests) {
    if (request === undefined) continue; // not a request: dirq fsck reports it
    if (lexists(layout.file('active', activeName(request.id, request.claim.claim)))) continue;
    const path = `${cancelDir(layout)}/${name}`;
    try {
      const stat = fs.lstatSync(path);
      if (!stat.isFile() || now - stat.mtimeMs < CANCEL_GRACE_MS) continue;
      fs.unlinkSync(path);
      report.cancelsRemoved++;
    } catch {
      // gone meanwhile, or for the next sweep
    }
  }
  return report;
}
