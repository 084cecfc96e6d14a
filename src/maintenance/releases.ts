/**
 * Releases, the backstop (FORMAT.md, "Dependencies and batches"): whatever
 * a crash or an I/O error left undone between a job's ending and the
 * release of what waited for it, a sweep does.
 *
 * - waiting/ID@CLAIM whose releaser is gone (or silent past staleAfter):
 *   taken over by one rename and finished.
 * - deps/PARENT/ of a parent that ended: each child still waiting is
 *   released; markers of children in no waiting state are removed.
 * - batches/ID/: members that ended with their marker still in pending/
 *   are moved on; once pending/ is empty, the callbacks still in the
 *   batch's directory are released. A batch directory a crash left without batch.json, and a
 *   batch ended long ago, are removed.
 *
 * Every step is a single-winner rename or an idempotent delete, so two
 * sweeps at once do each thing once.
 */
import fs from 'node:fs';
import {
  batchDir,
  batchEnded,
  batchIds,
  CALLBACK_FILES,
  callbackPath,
  markMember,
  pendingMembers,
  readBatchFile,
} from '../store/batches.js';
import { childrenOf, dropIfEmpty, parentState, parentsWithChildren, unmarkChild } from '../store/deps.js';
import { lstatQuietly } from '../store/entry.js';
import { DirQueueError } from '../store/errors.js';
import { listDir, move } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { isWriterGone } from '../store/liveness.js';
import { locate } from '../store/locate.js';
import {
  parseActiveName,
  parseDelayedName,
  parseTmpName,
  parseWaitingName,
  releasingName,
  type NameMaker,
} from '../store/names.js';
import {
  afterEnding,
  endingOf,
  finish,
  releaseCallbacks,
  releaseIfReady,
  type Released,
  type ReleaseContext,
} from '../store/release.js';

/** A batch whose members and callbacks all ended is kept this long (for q.batch and dirq batch), then removed. */
export const BATCH_KEEP_MS = 7 * 24 * 3600_000;

export interface ReleasesSettings {
  staleAfter: number;
  maxJobBytes: number;
  tmpMaxAge: number;
}

export interface ReleasesReport {
  /** Jobs moved on from waiting/: to queue/, to failed/, or (an onSuccess of a failed batch) deleted. */
  released: Released[];
  /** Markers and batch directories removed. */
  removed: number;
  /** Problems met; the rest went on. */
  warnings: DirQueueError[];
}

export function sweepReleases(
  layout: Layout,
  names: NameMaker,
  settings: ReleasesSettings,
  now: number,
): ReleasesReport {
  const ctx: ReleaseContext = { layout, claim: () => names.claim(), maxJobBytes: settings.maxJobBytes };
  const report: ReleasesReport = { released: [], removed: 0, warnings: [] };
  const warn = (error: unknown): void => {
    if (!(error instanceof DirQueueError)) throw error; // a bug, not the filesystem
    report.warnings.push(error);
  };
  const went = (released: Released | undefined): void => {
    if (released === undefined) return;
    report.released.push(released);
    if (released.to !== 'queue') report.released.push(...afterEnding(ctx, endingOf(released), warn));
  };
  for (const step of [finishDeadReleases, releaseChildren, settleBatches]) {
    try {
      step(ctx, names.owner, settings, now, went, report, warn);
    } catch (error) {
      warn(error);
    }
  }
  return report;
}

type Step = (
  ctx: ReleaseContext,
  owner: string,
  settings: ReleasesSettings,
  now: number,
  went: (released: Released | undefined) => void,
  report: ReleasesReport,
  warn: (error: unknown) => void,
) => void;

/** waiting/ID@CLAIM of a releaser that died or went silent: take it over (one rename) and finish it. */
const finishDeadReleases: Step = (ctx, owner, settings, now, went) => {
  const { layout } = ctx;
  for (const name of listDir(layout.paths.waiting)) {
    const parsed = parseWaitingName(name);
    if (parsed?.claim === undefined || parsed.claim.owner === owner) continue;
    const stat = lstatQuietly(layout.file('waiting', name));
    if (stat === undefined) continue;
    // the rename to this name set its ctime: a release takes milliseconds
    if (now - stat.ctimeMs <= settings.staleAfter && !isWriterGone(layout, parsed.claim.owner)) continue;
    const claim = ctx.claim();
    const held = layout.file('waiting', releasingName(parsed.id, claim));
    if (!move(layout.file('waiting', name), held, true)) continue;
    went(finish(ctx, parsed.id, held, claim));
  }
};

/**
 * deps/PARENT of a parent that ended: release its children; drop markers of children no longer waiting.
 * A parent still pending is passed by without listing its children: its ending looks at them.
 */
const releaseChildren: Step = (ctx, _owner, _settings, _now, went) => {
  const { layout } = ctx;
  const pending = pendingLookup(layout);
  for (const parent of parentsWithChildren(layout)) {
    if (pending(parent)) continue;
    const children = childrenOf(layout, parent);
    if (children.length === 0) dropIfEmpty(layout, parent); // made, and the crash came before its marker
    // listed after the markers: a child's tmp/ file is written before its marker, and leaves tmp/ only when it
    // is placed or given up, so one not in this listing nor in any state will never be placed
    let writing: Set<string | undefined> | undefined;
    for (const child of children) {
      if (lstatQuietly(layout.file('waiting', child)) !== undefined) {
        went(releaseIfReady(ctx, child));
        continue;
      }
      writing ??= new Set(listDir(layout.paths.tmp).map((name) => parseTmpName(name)?.id));
      if (writing.has(child)) continue; // being enqueued, or its writer died: clean.ts removes that, then this marker goes
      const where = locate(layout, child);
      if (where?.state === 'waiting') continue; // being released this instant
      unmarkChild(layout, parent, child);
    }
  }
};

/**
 * Whether a job has not ended, for many jobs at once: one or two lstats for
 * most, and one listing of delayed/ and active/ for the sweep, not one per
 * job (locate's). A job found nowhere is looked for again with locate, which
 * catches one that moved meanwhile.
 */
function pendingLookup(layout: Layout): (id: string) => boolean {
  let listed: Set<string | undefined> | undefined;
  return (id) => {
    if (lstatQuietly(layout.file('done', id)) !== undefined) return false;
    if (lstatQuietly(layout.file('failed', id)) !== undefined) return false;
    if (lstatQuietly(layout.file('queue', id)) !== undefined) return true;
    if (lstatQuietly(layout.file('waiting', id)) !== undefined) return true;
    listed ??= new Set([
      ...listDir(layout.paths.delayed).map((name) => parseDelayedName(name)?.id),
      ...listDir(layout.paths.active).map((name) => parseActiveName(name)?.id),
    ]);
    if (listed.has(id)) return true;
    return parentState(layout, id) === 'pending';
  };
}

/** Mark batch members that ended unmarked, release callbacks of ended batches, remove what is over. */
const settleBatches: Step = (ctx, _owner, settings, now, went, report, warn) => {
  const { layout } = ctx;
  const ids = batchIds(layout);
  if (ids.length === 0) return;
  const pending = pendingLookup(layout);
  for (const id of ids) {
    const dir = batchDir(layout, id);
    const file = readBatchFile(layout, id);
    if (file === undefined) {
      const made = lstatQuietly(dir);
      if (made !== undefined && now - made.mtimeMs > settings.tmpMaxAge) {
        fs.rmSync(dir, { recursive: true, force: true }); // made by a crashed enqueueBatch: no job names it
        report.removed++;
      }
      continue;
    }
    // tmp/ listed after the markers, as in releaseChildren: a job of a batch is written before its marker
    let writing: Set<string | undefined> | undefined;
    for (const member of pendingMembers(layout, id)) {
      if (pending(member)) continue;
      const state = parentState(layout, member);
      writing ??= new Set(listDir(layout.paths.tmp).map((name) => parseTmpName(name)?.id));
      if (state === 'pending' || (state === 'removed' && writing.has(member))) continue;
      markMember(layout, id, member, state === 'done' ? 'done' : 'failed');
    }
    if (!batchEnded(layout, id)) continue;
    for (const released of releaseCallbacks(ctx, id, warn)) went(released);
    const waiting = CALLBACK_FILES.some((name) => lstatQuietly(callbackPath(layout, id, name)) !== undefined);
    const ended = lstatQuietly(`${dir}/pending`);
    if (!waiting && ended !== undefined && now - ended.mtimeMs > BATCH_KEEP_MS) {
      fs.rmSync(dir, { recursive: true, force: true });
      report.removed++;
    }
  }
};
