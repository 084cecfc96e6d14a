/**
 * Cancel requests (FORMAT.md, "Pause and cancel"): cancel/ID@CLAIM asks the
 * holder of that one claim of job ID (its active/ name) to stop the job and
 * end it in failed/ with the error code ECANCELLED. A request names a claim,
 * not a job, so a later run of the job (an operator's retry) is never touched
 * by an old request. It is created exclusively; its content (who asked, when)
 * is for people. The holder looks for requests of its claims at every
 * heartbeat (one readdir of cancel/ per Queue handle); a sweep that takes a
 * dead holder's claim back ends a requested job in failed/ instead of
 * queue/; the request is removed once the job ended, and a request whose
 * claim is gone is removed by sweeps after CANCEL_GRACE_MS.
 */
import fs from 'node:fs';
import { errnoOf, fsError, type DirQueueError } from './errors.js';
import { closeQuietly } from './files.js';
import type { Layout } from './layout.js';
import { CANCEL_DIR, cancelName, parseCancelName, type ParsedClaim } from './names.js';
import { createExclusive } from './open.js';
import { ensureFlowDir } from './pauses.js';
import { lstatOrGone } from './entry.js';

/**
 * A request whose claim is not in active/ is removed once this old: a
 * canceller makes the request for its own claim of a waiting job just before
 * it takes the claim, and a sweep between the two must not remove it.
 */
export const CANCEL_GRACE_MS = 60_000;

export function cancelDir(layout: Layout): string {
  return `${layout.root}/${CANCEL_DIR}`;
}

export function cancelPath(layout: Layout, id: string, claim: string): string {
  return `${cancelDir(layout)}/${cancelName(id, claim)}`;
}

/** Ask the holder of `claim` to cancel job `id`. Returns false when that request was made already. */
export function requestCancel(layout: Layout, id: string, claim: string, by: string): boolean {
  ensureFlowDir(layout, cancelDir(layout));
  const path = cancelPath(layout, id, claim);
  let fd: number;
  try {
    fd = createExclusive(path, fs.constants.O_WRONLY, layout.fileMode ?? 0o666);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw fsError(`requesting the cancel of job ${id} (${path})`, error);
  }
  try {
    if (layout.fileMode !== undefined) fs.fchmodSync(fd, layout.fileMode);
    fs.writeSync(fd, `${JSON.stringify({ at: new Date().toISOString(), by })}\n`);
  } catch {
    // the request is its name: a content the disk refused changes nothing
  } finally {
    closeQuietly(fd);
  }
  return true;
}

/**
 * Whether the holder of `claim` was asked to cancel job `id` (one lstat; a
 * missing cancel/ reads as no). An I/O error throws: it is no sign of "no".
 */
export function isCancelRequested(layout: Layout, id: string, claim: string): boolean {
  const path = cancelPath(layout, id, claim);
  try {
    return lstatOrGone(path) !== undefined;
  } catch (error) {
    if (errnoOf((error as DirQueueError).cause) === 'ENOTDIR') return false; // cancel/ is a file: fsck reports it
    throw error;
  }
}

/** Remove the request for `claim` of job `id`, if any; a failure is left to the sweeps. */
export function removeCancel(layout: Layout, id: string, claim: string): void {
  try {
    fs.unlinkSync(cancelPath(layout, id, claim));
  } catch {
    // gone already, or for a sweep to remove later
  }
}

/** The names in cancel/ (one readdir; missing reads as empty), each with the job and claim it names, if it is a request. */
export function listCancels(
  layout: Layout,
): { name: string; request: { id: string; claim: ParsedClaim } | undefined }[] {
  let names: string[];
  try {
    names = fs.readdirSync(cancelDir(layout));
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return [];
    throw fsError(`listing ${cancelDir(layout)}`, error);
  }
  return names.map((name) => ({ name, request: parseCancelName(name) }));
}
