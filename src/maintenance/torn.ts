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
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { encodeEvent, parseJobFile, tornReason } from '../store/envelope.js';
import { DirQueueError, errnoOf, fsError } from '../store/errors.js';
import { appendLine, listDir, listDirAsync, move, readJobFile, writeNew } from '../store/files.js';
import { lstatOrGone, unlinkQuietly } from '../store/entry.js';
import type { Layout } from '../store/layout.js';
import { bootId } from '../store/liveness.js';
import { takeKey } from '../store/keys.js';
import { doneCheckedName, encodeKey, hostToken, isDoneCheckedNameOf, isId } from '../store/names.js';

/** What the torn-result step of a sweep did. */
export interface TornReport {
  /** Ids of done/ jobs without a proven result that went back to queue/. */
  requeued: string[];
  /** What failed (a file this process may not write, say); fsck names those jobs still. */
  problems: Error[];
}

/**
 * A pass over a large done/ must not starve this process's heartbeat (and
 * its other timers) while it holds the sweep lock: it yields to the event
 * loop after this many files, or this many bytes read, whichever comes
 * first. Results can be up to maxJobBytes each, so files alone do not bound
 * it: measured here (done/ of 200 results of 4 MiB and 100,000 small jobs,
 * in the page cache), yielding every 256 files held the loop for 1.6 s at
 * once; by bytes too, and listing done/ in the thread pool, 45 to 75 ms.
 * A turn reads at most YIELD_BYTES and the one file that passes it.
 *
 * Each file is read whole: whether it is torn depends on its last outcome
 * that no revoke voids (envelope.ts tornReason), and a `revoked` event
 * anywhere in the file can void a result at its end, so its tail alone
 * cannot tell; nor is a result line proven without parsing all of it.
 */
const YIELD_EVERY = 256;
export const YIELD_BYTES = 4 << 20;

/**
 * Markers this process could not create (keyed by path): it checked that boot
 * once and does not again. Without this, a workers/ it may not write would
 * make every sweep redo the whole pass, and warn each time.
 */
const checkedUnmarked = new Set<string>();

/** The sweep's step: the first sweep after this host booted puts every torn job in done/ back in queue/. */
export async function requeueTornAfterBoot(layout: Layout, maxJobBytes: number): Promise<TornReport> {
  const report: TornReport = { requeued: [], problems: [] };
  const marker = layout.file('workers', doneCheckedName(hostToken(), bootId()));
  if (checkedUnmarked.has(marker) || lstatOrGone(marker) !== undefined) return report;
  let files = 0;
  let bytes = 0;
  for (const name of await listDirAsync(layout.paths.done)) {
    if (files >= YIELD_EVERY || bytes >= YIELD_BYTES) {
      await yieldToLoop();
      files = 0;
      bytes = 0;
    }
    if (!isId(name)) continue;
    files++;
    try {
      const checked = check(layout, name, maxJobBytes);
      bytes += checked.bytes;
      const torn = checked.torn;
      if (torn !== undefined && putBack(layout, name, torn.reason, torn.key)) report.requeued.push(name);
    } catch (error) {
      report.problems.push(error as Error);
    }
  }
  try {
    await writeNew(marker, `${new Date().toISOString()}\n`, false, layout.fileMode);
  } catch (error) {
    const code = errnoOf((error as Error).cause); // writeNew wraps the system's error
    if (code === undefined) report.problems.push(error as Error);
    else if (code !== 'EEXIST') {
      // EEXIST: another sweep checked too
      checkedUnmarked.add(marker); // the filesystem refused it (EACCES, EROFS, ENOSPC): asking again each sweep would not help
      report.problems.push(unmarked(marker, error));
    }
  }
  for (const name of listDir(layout.paths.workers)) {
    if (isDoneCheckedNameOf(name, hostToken()) && layout.file('workers', name) !== marker)
      unlinkQuietly(layout.file('workers', name)); // this host's earlier boots (only records of past checks)
  }
  return report;
}

/**
 * Why the job `id` in done/ is torn, with its unique key if it has one; undefined
 * when it completed (or its file is for fsck to judge: gone, not a job).
 */
export function tornIn(layout: Layout, id: string, maxJobBytes: number): Torn | undefined {
  return check(layout, id, maxJobBytes).torn;
}

interface Torn {
  reason: string;
  key: string | undefined;
}

/** tornIn, with the bytes it read. */
function check(layout: Layout, id: string, maxJobBytes: number): { torn: Torn | undefined; bytes: number } {
  const read = readJobFile(layout.file('done', id), maxJobBytes);
  if (!read.ok) return { torn: undefined, bytes: 0 };
  const bytes = read.tail.size;
  let record;
  try {
    record = parseJobFile(read.text);
  } catch {
    return { torn: undefined, bytes }; // unparsable: fsck sets it aside in failed/
  }
  const reason = tornReason(read.text, record);
  return { torn: reason === undefined ? undefined : { reason, key: record.envelope.key }, bytes };
}

/** The warning for a marker this process could not create, said once per process and boot. */
function unmarked(marker: string, error: unknown): DirQueueError {
  const cause = fsError(`creating ${marker}`, error);
  return new DirQueueError(
    cause.code,
    `done/ was checked for torn results after this boot, but ${cause.message}; this process will not check again, ` +
      'but every process that opens the queue will read all of done/ once more until the file can be created (make workers/ writable to the workers)',
    { cause },
  );
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
  if (
    appendLine(from, encodeEvent({ event: 'torn', at: new Date().toISOString(), reason }), layout.fileMode) ===
    undefined
  )
    return false;
  return move(from, layout.file('queue', id), false, true);
}

/** Take the key back for the job about to run again; a key it cannot take does not keep it from running. */
function retakeKey(layout: Layout, key: string, id: string): void {
  try {
    takeKey(layout, encodeKey(key), id);
  } catch {
    // a key the library could not have written, or contention: the job runs without holding it
  }
}
