/**
 * Releasing waiting jobs (FORMAT.md, "Dependencies and batches"). A job in
 * waiting/ waits for the jobs of its `after` (deps.ts) or, as a batch's
 * callback, for every member of its batch (batches.ts). Whoever ends a job
 * (its worker, a cancel, a removal, a sweep that takes back a dead claim, a
 * release that fails a child) calls afterEnding, which marks the job's
 * batch and releases the children that were waiting for it.
 *
 * A release is two renames: waiting/ID (a batch's callback:
 * batches/BATCH/onComplete) to waiting/ID@CLAIM (the single winner: of
 * several processes ending the last parents at once, one releases), then,
 * once the `released` event (how the parents or the batch ended) is
 * appended, to queue/ID, or to failed/ID with EPARENTFAILED. An onSuccess
 * callback of a batch with a failure is deleted instead: it never runs. A
 * releaser that dies between the two renames leaves waiting/ID@CLAIM, which
 * a sweep finishes (maintenance/releases.ts).
 */
import {
  encodeEvent,
  parseJobFile,
  type BatchOutcome,
  type Envelope,
  type JobEvent,
  type JobRecord,
  type ParentOutcome,
  withoutResults,
} from './envelope.js';
import type { RecordedError } from './errors.js';
import { unlinkOrGone } from './entry.js';
import { appendLine, move, readJobFile } from './files.js';
import {
  batchEnded,
  CALLBACK_FILES,
  callbackPath,
  countMembers,
  markMember,
  readBatchFile,
  type CallbackName,
} from './batches.js';
import { childrenOf, hasChildren, parentState, unmarkChild } from './deps.js';
import { releaseKeyOf } from './keys.js';
import type { Layout } from './layout.js';
import { isBatchId, isId, parseId, releasingName } from './names.js';

/** What a release needs from whoever releases. */
export interface ReleaseContext {
  layout: Layout;
  /** A fresh claim token of the releasing process (NameMaker.claim). */
  claim(): string;
  maxJobBytes: number;
}

/** A job that just ended, as afterEnding is told of it. */
export interface Ending {
  id: string;
  /** removed: deleted from the queue (rm, purge) before it ended. */
  state: 'done' | 'failed' | 'removed';
  /** Its envelope, when the ender read it (a batch member's names its batch); undefined when unknown. */
  envelope: Envelope | undefined;
}

/** What releases did: jobs moved on from waiting/. */
export interface Released {
  id: string;
  type: string;
  to: 'queue' | 'failed' | 'skipped';
  envelope: Envelope;
}

type ClaimedEvent = Extract<JobEvent, { claim: string }>;

/** The decision a release acts on: where the job goes, with which events (their claim is the releaser's). */
interface Verdict {
  to: 'queue' | 'failed' | 'skipped';
  events: ClaimedEvent[];
  envelope: Envelope;
}

/** A file in waiting/ that is no job (unparsable, too large, not a regular file) could never run: to failed/ as it is. */
const NOT_A_JOB: Verdict = Object.freeze({ to: 'failed', events: [], envelope: {} });

/**
 * After job `ending` ended: mark it in its batch and release what waited for
 * it, then the same for each job a release ended in failed/ (a chain of
 * children of a failed parent), as a loop, not a recursion. Never throws
 * for one child: a child whose release failed is left for a sweep (a
 * release is retried whenever anything looks again), and the error is
 * passed to `warn`.
 */
export function afterEnding(ctx: ReleaseContext, ending: Ending, warn: (error: Error) => void): Released[] {
  const out: Released[] = [];
  const work: Ending[] = [ending];
  for (let next = work.pop(); next !== undefined; next = work.pop()) {
    const released: (Released | undefined)[] = [];
    let candidates: string[] = [];
    try {
      const batch = next.envelope?.batch;
      if (isBatchId(batch)) {
        markMember(ctx.layout, batch, next.id, next.state === 'done' ? 'done' : 'failed');
        if (batchEnded(ctx.layout, batch)) released.push(...releaseCallbacks(ctx, batch, warn));
      }
      if (hasChildren(ctx.layout, next.id)) candidates = childrenOf(ctx.layout, next.id);
    } catch (error) {
      warn(error as Error);
    }
    for (const id of candidates) {
      try {
        released.push(releaseIfReady(ctx, id));
      } catch (error) {
        warn(error as Error);
      }
    }
    for (const r of released) {
      if (r === undefined) continue;
      out.push(r);
      if (r.to !== 'queue') work.push(endingOf(r));
    }
  }
  return out;
}

/** A release that did not send the job to queue/ ended it (failed/, or deleted): its own ending, for afterEnding. */
export function endingOf(released: Released): Ending {
  return { id: released.id, state: released.to === 'failed' ? 'failed' : 'removed', envelope: released.envelope };
}

/**
 * Release the callbacks of batch `id` whose job files still wait in its
 * directory, once every member has ended: each by one rename into
 * waiting/ID@CLAIM, then as any release. Of several processes that see the
 * batch end at once, one moves each callback; the others find it gone.
 */
export function releaseCallbacks(ctx: ReleaseContext, id: string, warn: (error: Error) => void): Released[] {
  const out: Released[] = [];
  for (const name of CALLBACK_FILES) {
    try {
      const released = releaseCallback(ctx, id, name);
      if (released !== undefined) out.push(released);
    } catch (error) {
      warn(error as Error);
    }
  }
  return out;
}

/** Release callback `name` of batch `id` (see releaseCallbacks); undefined when it is not there to release. */
export function releaseCallback(ctx: ReleaseContext, id: string, name: CallbackName): Released | undefined {
  const cb = readBatchFile(ctx.layout, id)?.[name];
  if (typeof cb !== 'string' || !isId(cb)) return undefined;
  const claim = ctx.claim();
  const held = ctx.layout.file('waiting', releasingName(cb, claim));
  if (!move(callbackPath(ctx.layout, id, name), held, true)) return undefined; // made already, by us or another
  return finish(ctx, cb, held, claim);
}

/**
 * Release job `id` from waiting/ if everything it waits for has ended.
 * Returns what happened, or undefined when it is not ready, not waiting
 * (never was, or released already), or another process is releasing it.
 */
export function releaseIfReady(ctx: ReleaseContext, id: string): Released | undefined {
  const from = ctx.layout.file('waiting', id);
  const read = readJobFile(from, ctx.maxJobBytes);
  if (!read.ok) {
    if (read.gone) return undefined;
    if (read.ioError !== undefined) throw read.ioError;
  }
  const verdict = read.ok ? judge(ctx, id, read.text) : NOT_A_JOB;
  if (verdict === undefined) return undefined;
  const claim = ctx.claim();
  const held = ctx.layout.file('waiting', releasingName(id, claim));
  if (!move(from, held, true)) return undefined; // another process is releasing it, or has
  return finish(ctx, id, held, claim, verdict);
}

/** Whether waiting/ID may go now (everything it waits for has ended): what fsck reports of a release cut short. */
export function readyToRelease(ctx: ReleaseContext, id: string): boolean {
  const read = readJobFile(ctx.layout.file('waiting', id), ctx.maxJobBytes);
  if (!read.ok) return !read.gone;
  return judge(ctx, id, read.text) !== undefined;
}

/**
 * Finish the release of a job a releaser holds at `held` (waiting/ID@CLAIM,
 * ours): append the verdict's event unless one is there, and move it on.
 * `verdict` undefined: judge it again (a sweep finishing a dead releaser's
 * release); if it is not ready after all (a parent was retried meanwhile),
 * it goes back to waiting/ID.
 */
export function finish(
  ctx: ReleaseContext,
  id: string,
  held: string,
  claim: string,
  verdict?: Verdict,
): Released | undefined {
  const { layout } = ctx;
  const read = readJobFile(held, ctx.maxJobBytes);
  if (!read.ok && read.gone) return undefined;
  if (!read.ok && read.ioError !== undefined) throw read.ioError;
  const text = read.ok ? read.text : undefined;
  const record = text === undefined ? undefined : parsed(text);
  verdict ??= text === undefined ? NOT_A_JOB : judge(ctx, id, text);
  if (verdict === undefined) {
    move(held, layout.file('waiting', id));
    return undefined;
  }
  if (verdict.to !== 'skipped' && verdict.events.length > 0 && record?.released === undefined) {
    appendLine(held, verdict.events.map((e) => encodeEvent({ ...e, claim })).join(''), layout.fileMode); // one write
  }
  const { envelope } = verdict;
  if (verdict.to === 'skipped') {
    unlinkOrGone(held);
  } else if (!move(held, layout.file(verdict.to, id))) {
    return undefined; // taken over by a sweep that judged us dead: it finishes
  }
  if (verdict.to !== 'queue') releaseKeyOf(layout, envelope.key, id);
  for (const parent of parentsOf(envelope)) unmarkChild(layout, parent, id);
  return { id, type: parseId(id)?.type ?? '', to: verdict.to, envelope };
}

/** The distinct ids of an envelope's `after`. */
export function parentsOf(envelope: Envelope): string[] {
  return Array.isArray(envelope.after) ? [...new Set(envelope.after.filter((p) => typeof p === 'string'))] : [];
}

function parsed(text: string): JobRecord | undefined {
  try {
    return parseJobFile(text);
  } catch {
    return undefined;
  }
}

/**
 * Whether the waiting job (its file's `text`) may go, and where: undefined
 * while a parent is pending or its batch has members pending.
 */
function judge(ctx: ReleaseContext, id: string, text: string): Verdict | undefined {
  const record = parsed(text);
  if (record === undefined) return NOT_A_JOB;
  const { envelope } = record;
  const at = new Date().toISOString();
  const attempt = record.attemptsMade + 1;
  const callback = envelope.onBatch;
  if (callback !== undefined && isBatchId(callback.id)) {
    const file = readBatchFile(ctx.layout, callback.id);
    if (file !== undefined && !batchEnded(ctx.layout, callback.id)) return undefined;
    const counts = file === undefined ? undefined : countMembers(ctx.layout, callback.id);
    const batch: BatchOutcome = {
      id: callback.id,
      total: file?.total ?? 0,
      done: counts?.done ?? 0,
      failed: counts?.failed ?? 0,
      failedIds: counts?.failedIds ?? [],
    };
    const released: ClaimedEvent = { event: 'released', at, claim: '', batch };
    if (file === undefined) {
      const error = {
        message: `batch ${callback.id} is gone (its directory in batches/ was removed)`,
        code: 'EBATCHLOST',
      };
      return { to: 'failed', events: [released, errorEvent(at, attempt, error)], envelope };
    }
    return { to: callback.when === 'success' && batch.failed > 0 ? 'skipped' : 'queue', events: [released], envelope };
  }
  const outcomes: ParentOutcome[] = [];
  for (const parent of parentsOf(envelope)) {
    const outcome = parentOutcome(ctx, parent);
    if (outcome === undefined) return undefined;
    outcomes.push(outcome);
  }
  let released: ClaimedEvent = { event: 'released', at, claim: '', parents: outcomes };
  // room for the results, and for the run's own events after them: a file past maxJobBytes is set aside unread
  if (Buffer.byteLength(text) + Buffer.byteLength(encodeEvent(released)) > ctx.maxJobBytes / 2) {
    released = { event: 'released', at, claim: '', parents: withoutResults(outcomes), truncated: true };
  }
  const bad = outcomes.find((o) => o.state !== 'done');
  if (bad === undefined || envelope.afterFailed === 'run') return { to: 'queue', events: [released], envelope };
  const why =
    bad.state === 'removed' ? 'was removed before it ended' : `failed: ${bad.error?.message ?? 'no error recorded'}`;
  const error = {
    message: `job ${id} waits for job ${bad.id}, which ${why} (enqueue with afterFailed: 'run' to run it anyway)`,
    code: 'EPARENTFAILED',
  };
  return { to: 'failed', events: [released, errorEvent(at, attempt, error)], envelope };
}

function errorEvent(at: string, attempt: number, error: RecordedError): ClaimedEvent {
  return { event: 'error', at, attempt, claim: '', ...error };
}

/** How parent `id` ended, or undefined while it has not. */
function parentOutcome(ctx: ReleaseContext, id: string): ParentOutcome | undefined {
  const state = parentState(ctx.layout, id);
  if (state === 'pending') return undefined;
  if (state === 'removed') return { id, state };
  const read = readJobFile(ctx.layout.file(state, id), ctx.maxJobBytes);
  if (!read.ok) {
    if (read.gone) return { id, state: 'removed' };
    return state === 'done' ? { id, state } : { id, state, error: { message: `its file is ${read.reason}` } };
  }
  const record = parsed(read.text);
  if (state === 'done') {
    const value = record?.result?.value;
    return value === undefined ? { id, state } : { id, state, result: value };
  }
  const last = record?.errors.at(-1);
  const error: RecordedError = last === undefined ? { message: 'no error recorded' } : { message: last.message };
  if (last?.code !== undefined) error.code = last.code;
  return { id, state, error };
}
