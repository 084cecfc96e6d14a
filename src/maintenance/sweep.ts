/**
 * One maintenance sweep (I4, I6): run the services of this folder in order,
 * rescue (rescue.ts), promote (promote.ts), the torn-result put-back
 * (torn.ts), prune (prune.ts), clean (clean.ts), schedules' due slots
 * (schedules.ts) and the totals fold
 * (store/totals.ts), under the lock (sweep-lock.ts). Any process with
 * the queue open may sweep; a lock keeps it to one at a time normally, and
 * every step is a single-winner rename or an idempotent delete, so two
 * overlapping sweeps never move a job twice. The lock is the library's own
 * (sweep-lock.ts says why it is not proper-lockfile's). On a full disk, where
 * the lock's file cannot be written, a sweep runs without it, since it needs
 * no space itself and is what takes back dead claims and prunes done/.
 */
import { DirQueueError, errnoOf, fsError } from '../store/errors.js';
import { DEFAULT_MAX_JOB_BYTES } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { filesystemNow, myIdentity } from '../store/liveness.js';
import { CLOCK_FILE, type NameMaker } from '../store/names.js';
import { foldTotals } from '../store/totals.js';
import { removeAbandoned, removeGoneHeartbeats, SILENT_HEARTBEAT_MS, TMP_MAX_AGE_MS } from './clean.js';
import { promoteDueJobs } from './promote.js';
import { pruneDone } from './prune.js';
import { pendingMakers, sweepSchedules, type SchedulesReport } from './schedules.js';
import { recoverStale, type RescueSettings, type Recovered, type Stranded, type Unrecovered } from './rescue.js';
import { lockSweeps } from './sweep-lock.js';
import { requeueTornAfterBoot, type TornReport } from './torn.js';
import { cleanFlow, type FlowCleanReport } from './flow-clean.js';
import { sweepSlots } from './slots.js';
import { sweepReleases } from './releases.js';
import type { Released } from '../store/release.js';

export interface SweepSettings extends RescueSettings {
  keepDone: number;
  tmpMaxAge: number;
  /** Run the schedules (schedules.ts) too: false when the caller runs them itself (a Queue's Scheduler). @default true */
  schedules?: boolean;
  /** fsync what a schedule's job makes. @default true */
  durable?: boolean;
}

/**
 * The limits a sweep judges files by, defined once: the Queue's defaults
 * (queue/options.ts) and fsck's take them from here, so that a check by hand
 * agrees with what a running queue does.
 */
export const sweepDefaults = Object.freeze({
  /** Abandoned files in tmp/ (a writer died mid-enqueue) are deleted after this long, ms. */
  tmpMaxAge: TMP_MAX_AGE_MS,
  /** Job files larger than this are set aside in failed/, bytes. */
  maxJobBytes: DEFAULT_MAX_JOB_BYTES,
} as const) satisfies Partial<SweepSettings>;

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
  /** Cancel requests of ended claims and ended pauses removed (flow-clean.ts); absent when none. */
  flow?: FlowCleanReport;
  /** Running slots of gone holders freed (slots.ts); absent when none. */
  slotsFreed?: number;
  /** done/ jobs whose result was torn, put back in queue/ (only in the first sweep after a boot: torn.ts). */
  torn?: TornReport;
  /** Jobs this sweep made for schedules' due slots (schedules.ts); absent when a Queue's Scheduler runs them instead. */
  scheduled?: number;
  /** Waiting jobs this sweep released (releases.ts); absent when none. */
  released?: Released[];
}

/**
 * The lock is held for a sweep (milliseconds, usually). A holder that died
 * leaves it, and others take it over once it is this old in the filesystem's
 * clock: staleAfter/2, kept within 2..10 s, so a dead sweeper never stretches
 * the recovery bound past staleAfter (NFS.md quotes these bounds).
 */
const lockStaleMs = (staleAfter: number): number => Math.min(10_000, Math.max(2000, staleAfter / 2));

const notSwept = (): SweepReport => ({
  swept: false,
  recovered: [],
  unrecovered: [],
  promoted: 0,
  pruned: 0,
  tmpRemoved: 0,
  heartbeatsRemoved: 0,
  warnings: [],
});

/**
 * Run one sweep under the maintenance lock. `wait`: wait for the lock (an
 * explicit recover()) instead of skipping the sweep (a timer's). `stranded`
 * receives the jobs a failed take-back left under this process's claim, even
 * when a later step throws: the caller moves them on (rescue.ts Stranded).
 */
export async function sweep(
  layout: Layout,
  names: NameMaker,
  settings: SweepSettings,
  wait: boolean,
  stranded: Stranded[],
): Promise<SweepReport> {
  const replaced = layout.checkIdentities(); // before the lock, whose temp file is made in tmp/
  if (replaced !== undefined) return { ...notSwept(), warnings: [replaced] };
  const stale = lockStaleMs(settings.staleAfter);
  let lock: Awaited<ReturnType<typeof lockSweeps>>;
  try {
    lock = await lockSweeps(layout, names.owner, stale, wait ? stale + 1000 : 0);
  } catch (error) {
    if (!isFull(error)) throw error;
    // a full disk has no room for the lock's file, while the sweep itself needs none: it takes back dead
    // claims and promotes by rename, and prune frees space. The lock only saves work (see above): sweep without it.
    const report = await sweepUnlocked(layout, names, settings, stranded);
    const { code, message } = fsError('taking the maintenance lock', error);
    const why = new DirQueueError(code, `the maintenance lock could not be taken (${message}): swept without it`, {
      cause: error,
    });
    return { ...report, warnings: [why, ...report.warnings] };
  }
  if (lock === undefined) return notSwept();
  try {
    return await sweepUnlocked(layout, names, settings, stranded);
  } finally {
    try {
      lock.release();
    } catch {
      // a lock left behind is taken over once stale
    }
  }
}

/**
 * The sweep itself; safe to run concurrently with other sweeps. Exported for
 * the tests that prove that (test/fixtures/child.mjs 'sweep-unlocked': several
 * processes sweeping at once with no lock), which no public path can do.
 */
export async function sweepUnlocked(
  layout: Layout,
  names: NameMaker,
  settings: SweepSettings,
  stranded: Stranded[],
): Promise<SweepReport> {
  // A directory of the layout swapped for a link (or another directory) since the queue was opened would
  // make this sweep delete or rename files outside the queue: do nothing at all then (S3).
  const replaced = layout.checkIdentities();
  if (replaced !== undefined) return { ...notSwept(), warnings: [replaced] };
  const { now, warning } = filesystemNow(layout.file('workers', CLOCK_FILE), layout.paths.tmp);
  const rescue = recoverStale(layout, names, settings, now, stranded);
  const warnings = warning === undefined ? rescue.warnings : [warning, ...rescue.warnings];
  let slotsFreed = 0;
  try {
    slotsFreed = sweepSlots(layout, myIdentity(), names.owner, settings.staleAfter, now).freed; // after the rescue: a dead holder's jobs first
  } catch (error) {
    if (!(error instanceof DirQueueError)) throw error;
    warnings.push(error); // limits/ unreadable: the jobs' part of the sweep goes on
  }
  const promoted = promoteDueJobs(layout);
  // before pruning: after a power cut a torn job's mtime may be old, and it must run again, not be pruned
  const torn = await requeueTornAfterBoot(layout, settings.maxJobBytes);
  // before pruning: a parent pruned from done/ before its children were released would count as removed
  const releases = sweepReleases(layout, names, settings, now);
  warnings.push(...releases.warnings);
  const pruned = pruneDone(layout, settings.keepDone, now);
  const tmp = removeAbandoned(layout, settings.tmpMaxAge, now);
  // a maker's heartbeat outlives it while it holds a schedule's cursor pending: it tells a completer it is gone
  for (const owner of pendingMakers(layout)) tmp.writers.add(owner);
  const flow = cleanFlow(layout, now, names.owner); // after the rescue, which reads the cancel requests of the claims it takes back
  const heartbeatsRemoved = removeGoneHeartbeats(
    layout,
    names.owner,
    tmp.writers,
    Math.max(SILENT_HEARTBEAT_MS, settings.staleAfter),
    now,
  );
  let scheduled: SchedulesReport | undefined;
  if (settings.schedules !== false) {
    scheduled = await sweepSchedules(
      { layout, owner: names.owner, durable: settings.durable ?? true, staleAfter: settings.staleAfter },
      now,
    );
    warnings.push(...scheduled.warnings, ...scheduled.invalid.map((i) => i.error));
  }
  try {
    await foldTotals(layout, names.claim(), now);
  } catch (error) {
    if (!(error instanceof DirQueueError) && errnoOf(error) === undefined) throw error; // a bug, not the filesystem
    // the counters only feed dirq metrics: a fold that failed (a full disk) is folded by a later sweep, and must
    // not hide what this sweep did to the jobs (the recovered claims its Queue reports and counts)
    warnings.push(fsError('folding the lifetime counters in workers/', error));
  }
  return {
    swept: true,
    recovered: rescue.recovered,
    unrecovered: rescue.unrecovered,
    promoted,
    pruned,
    tmpRemoved: tmp.removed,
    heartbeatsRemoved,
    ...(flow.cancelsRemoved + flow.pausesEnded > 0 ? { flow } : {}),
    ...(slotsFreed > 0 ? { slotsFreed } : {}),
    warnings,
    torn,
    ...(scheduled === undefined ? {} : { scheduled: scheduled.made }),
    ...(releases.released.length > 0 ? { released: releases.released } : {}),
  };
}

/** A full disk: no space (or no inodes) left, or the quota used up. */
function isFull(error: unknown): boolean {
  const code = errnoOf(error); // a DirQueueError keeps the errno as its code
  return code === 'ENOSPC' || code === 'EDQUOT';
}
