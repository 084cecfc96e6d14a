/**
 * fsck's part in waiting/, deps/ and batches/ (store/release.ts, FORMAT.md
 * "Dependencies and batches"), beside fsck.ts, which calls it with its own
 * way to report. Unlike a sweep (releases.ts), which looks only where an
 * ending left a trace (deps/PARENT/, batches/), fsck reads every waiting job,
 * so a job whose markers a power cut lost is found too. What it finds, and
 * what repair does:
 * - waiting: a batch member that ended with its marker still in pending/ ->
 *   move it on; a job in waiting/ everything it waits for has ended (its
 *   parents, or its batch) -> release it; a release cut short
 *   (waiting/ID@CLAIM older than RELEASE_CUT_MS) -> take it over and finish it
 * - stale-helper: a marker deps/PARENT/CHILD of a job in another state, or in
 *   none for tmpMaxAge -> delete it
 */
import {
  batchDir,
  batchIds,
  CALLBACK_FILES,
  callbackPath,
  markMember,
  pendingMembers,
  readBatchFile,
} from '../store/batches.js';
import { childrenOf, parentState, parentsWithChildren, unmarkChild } from '../store/deps.js';
import { lstatQuietly } from '../store/entry.js';
import { listDir, move } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { locate } from '../store/locate.js';
import { NameMaker, parseTmpName, parseWaitingName, releasingName } from '../store/names.js';
import {
  afterEnding,
  endingOf,
  finish,
  readyToRelease,
  releaseCallback,
  releaseIfReady,
  type Released,
  type ReleaseContext,
} from '../store/release.js';

/** A release takes milliseconds: one this old was cut short (its releaser died or froze). */
export const RELEASE_CUT_MS = 60_000;

/** How fsck.ts lets this module report: its `found`, and its judgement of age. */
export interface ReleasesCheck {
  layout: Layout;
  now: number;
  maxJobBytes: number;
  tmpMaxAge: number;
  found(
    kind: 'waiting' | 'stale-helper',
    file: string,
    problem: string,
    todo: string,
    fix?: () => string | undefined,
  ): void;
  ago(ms: number): string;
}

export function checkReleases(check: ReleasesCheck): void {
  const { layout } = check;
  const names = new NameMaker();
  const ctx: ReleaseContext = { layout, claim: () => names.claim(), maxJobBytes: check.maxJobBytes };
  /** What a repair's release did, said; and what it released in turn (a failed parent's children). */
  const said = (released: Released | undefined): string | undefined => {
    if (released === undefined) return undefined;
    if (released.to !== 'queue') afterEnding(ctx, endingOf(released), () => undefined);
    return released.to === 'skipped'
      ? 'deleted (an onSuccess of a batch with failures)'
      : `released to ${released.to}/`;
  };
  for (const id of batchIds(layout)) {
    if (readBatchFile(layout, id) === undefined) continue;
    let pending = false;
    const members = pendingMembers(layout, id);
    // listed after the markers: a job of a batch is written in tmp/ before its marker (releases.ts)
    const writing = new Set(
      members.length === 0 ? [] : listDir(layout.paths.tmp).map((name) => parseTmpName(name)?.id),
    );
    for (const member of members) {
      const state = parentState(layout, member);
      if (state === 'pending' || (state === 'removed' && writing.has(member))) {
        pending = true;
        continue;
      }
      const outcome = state === 'done' ? 'done' : 'failed';
      check.found(
        'waiting',
        `${batchDir(layout, id)}/pending/${member}`,
        `the job ${state === 'removed' ? 'is in no state' : `ended in ${state}/`}, yet its batch counts it as pending`,
        'run with --repair to count it as ended',
        () => (markMember(layout, id, member, outcome) ? `moved to ${outcome}/` : undefined),
      );
    }
    for (const name of CALLBACK_FILES) {
      const file = callbackPath(layout, id, name);
      if (pending || lstatQuietly(file) === undefined) continue;
      check.found(
        'waiting',
        file,
        'every job of its batch has ended, yet the callback was not made (cut short)',
        'run with --repair to make it',
        () => said(releaseCallback(ctx, id, name)),
      );
    }
  }
  for (const name of listDir(layout.paths.waiting)) {
    const parsed = parseWaitingName(name);
    if (parsed === undefined) continue; // a stray: fsck.ts's census reports it
    const file = layout.file('waiting', name);
    if (parsed.claim !== undefined) {
      const stat = lstatQuietly(file);
      if (stat === undefined || check.now - stat.ctimeMs <= RELEASE_CUT_MS) continue;
      check.found(
        'waiting',
        file,
        `a release by ${parsed.claim.owner} was cut short (${check.ago(stat.ctimeMs)})`,
        'run with --repair to finish it',
        () => {
          const claim = ctx.claim();
          const held = layout.file('waiting', releasingName(parsed.id, claim));
          if (!move(file, held, true)) return undefined;
          return said(finish(ctx, parsed.id, held, claim)) ?? 'put back in waiting/: not ready after all';
        },
      );
    } else if (readyToRelease(ctx, parsed.id)) {
      check.found(
        'waiting',
        file,
        'everything it waits for has ended, yet it waits (its release was cut short)',
        'run with --repair to release it',
        () => said(releaseIfReady(ctx, parsed.id)),
      );
    }
  }
  for (const parent of parentsWithChildren(layout)) {
    for (const child of childrenOf(layout, parent)) {
      if (lstatQuietly(layout.file('waiting', child)) !== undefined) continue;
      const where = locate(layout, child);
      const marker = `${layout.file('deps', parent)}/${child}`;
      const stat = lstatQuietly(marker);
      if (where?.state === 'waiting' || stat === undefined) continue;
      if (where === undefined && check.now - stat.mtimeMs <= check.tmpMaxAge) continue; // being enqueued
      check.found(
        'stale-helper',
        marker,
        where === undefined
          ? `a marker of a job in no state (${check.ago(stat.mtimeMs)})`
          : `a marker of a job that is in ${where.state}/, no longer waiting`,
        'run with --repair to delete it',
        () => (unmarkChild(layout, parent, child), 'deleted'),
      );
    }
  }
}
