/**
 * Torn results (FORMAT.md, "Torn results"): a job in done/ whose result
 * event is missing or torn did not provably complete (envelope.ts,
 * tornReason). It goes back to queue/ to run again, with a `torn` event in
 * its history saying why. Delivery is at least once: the run whose result
 * was lost most likely did its work, and the job runs a second time.
 *
 * Only a crash of the machine (a power cut, a kernel panic) tears a result:
 * when a process dies, what it wrote stays in the page cache and reaches the
 * disk. So sweeps look for torn files once per boot of the host, in the
 * first sweep after it, not in every sweep: the check reads every file in
 * done/, which can hold 100,000 jobs or more, while sweeps run every few
 * seconds. Measured here (ext4, 100,000 done/ files of 200 bytes): the pass
 * took 1.9 s, the step of a later sweep 0.3 ms. The boot a host checked is recorded as
 * workers/.done-checked.HOST.BOOTID, created only after the whole pass, so a
 * pass cut short by another crash runs again; before that, one lstat per
 * sweep is the whole cost. `dirq fsck` reads every done/ file whenever it
 * runs, and with `--repair` puts torn ones back as well.
 */
import fs from 'node:fs';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { encodeEvent, parseJobFile, tornReason } from './envelope.js';
import { errnoOf, fsError } from './errors.js';
import { appendLine, listDir, move, readJobFile, writeNew } from './files.js';
import type { Layout } from './layout.js';
import { bootId } from './liveness.js';
import { takeKey } from './keys.js';
import { encodeKey, hostToken, isId } from './names.js';

/** What the torn-result step of a sweep did. */
export interface TornReport {
  /** Ids of done/ jobs without a proven result that went back to queue/. */
  requeued: string[];
  /** What failed (a file this process may not write, say); fsck names those jobs still. */
  problems: Error[];
}

const MARK = '.done-checked.';
/** Files read between two yields to the event loop: a pass over a large done/ must not starve the heartbeat. */
const YIELD_EVERY = 256;

/** The sweep's step: the first sweep after this host booted puts every torn job in done/ back in queue/. */
export async function requeueTornAfterBoot(layout: Layout, maxJobBytes: number): Promise<TornReport> {
  const report: TornReport = { requeued: [], problems: [] };
  const mine = `${MARK}${hostToken()}.`;
  const marker = layout.file('workers', `${mine}${bootId()}`);
  if (lexists(marker)) return report;
  for (const [i, name] of listDir(layout.paths.done).entries()) {
    if (i % YIELD_EVERY === YIELD_EVERY - 1) await yieldToLoop();
    if (!isId(name)) continue;
    try {
      const torn = tornIn(layout, name, maxJobBytes);
      if (torn !== undefined && putBack(layout, name, torn.reason, torn.key)) report.requeued.push(name);
    } catch (error) {
      report.problems.push(error as Error);
    }
  }
  try {
    await writeNew(marker, `${new Date().toISOString()}\n`, false, layout.fileMode);
  } catch (error) {
    if (errnoOf(error) !== 'EEXIST') report.problems.push(error as Error); // EEXIST: another sweep checked too
  }
  for (const name of listDir(layout.paths.workers)) {
    if (name.startsWith(mine) && layout.file('workers', name) !== marker) unlinkQuietly(layout.file('workers', name)); // this host's earlier boots
  }
  return report;
}

/**
 * Why the job `id` in done/ is torn, with its unique key if it has one; undefined
 * when it completed (or its file is for fsck to judge: gone, not a job).
 */
export function tornIn(layout: Layout, id: string, maxJobBytes: number): { reason: string; key: string | undefined } | undefined {
  const read = readJobFile(layout.file('done', id), maxJobBytes);
  if (!read.ok) return undefined;
  let record;
  try {
    record = parseJobFile(read.text);
  } catch {
    return undefined; // unparsable: fsck sets it aside in failed/
  }
  const reason = tornReason(read.text, record);
  return reason === undefined ? undefined : { reason, key: record.envelope.key };
}

/**
 * Put the torn job `id` back from done/ in queue/: append a `torn` event
 * with the reason, then one rename. A crash between the two leaves it in
 * done/ with the event last, which is torn still, so the next check puts it
 * back (two `torn` events in a row count as one run). A job with a unique
 * key takes it again first, as a live job holds it (its completion released
 * it); if a job enqueued since holds it, both run. False when it was gone.
 */
export function putBack(layout: Layout, id: string, reason: string, key: string | undefined): boolean {
  const from = layout.file('done', id);
  if (key !== undefined) retakeKey(layout, key, id);
  if (appendLine(from, encodeEvent({ event: 'torn', at: new Date().toISOString(), reason })) === undefined) return false;
  return move(from, layout.file('queue', id));
}

/** Take the key back for the job about to run again; a key it cannot take does not keep it from running. */
function retakeKey(layout: Layout, key: string, id: string): void {
  try {
    takeKey(layout, encodeKey(key), id);
  } catch {
    // a key the library could not have written, or contention: the job runs without holding it
  }
}

function lexists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`checking ${path}`, error);
  }
}

function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // another sweep removed it, or it is not a file: it is only a record of a past check
  }
}
