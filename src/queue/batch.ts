/**
 * Batches as the Queue offers them (enqueueBatch, batch): the options'
 * checks, and what a batch's files say (store/batches.ts holds the files).
 */
import { callbackPath, countMembers, readBatchFile } from '../store/batches.js';
import { lstatQuietly } from '../store/entry.js';
import { DirQueueError } from '../store/errors.js';
import type { Layout, State } from '../store/layout.js';
import { locate } from '../store/locate.js';
import { describe, isBatchId } from '../store/names.js';
import type { EnqueueOptions } from './options.js';

/** The most jobs one batch may hold. */
export const BATCH_MAX = 100_000;

/** A job of a batch, or one of its callbacks: as enqueueMany takes them. */
export interface BatchItem extends EnqueueOptions {
  type: string;
  data?: unknown;
}

export interface BatchOptions {
  /** A job made to run once every job of the batch has ended (done, failed for good, cancelled or removed). */
  onComplete?: BatchItem;
  /** A job made to run once every job of the batch has ended, only if all of them are done. */
  onSuccess?: BatchItem;
}

/** Where a batch's callback is: a state, 'skipped' (an onSuccess of a batch with a failure, deleted), or 'removed'. */
export type CallbackState = State | 'skipped' | 'removed';

export interface BatchInfo {
  id: string;
  total: number;
  pending: number;
  done: number;
  /** Jobs that failed for good, were cancelled or were removed. */
  failed: number;
  /** The ids of the failed jobs (the first 1,000). */
  failedIds: string[];
  createdAt: Date;
  /** Every job of the batch has ended. */
  ended: boolean;
  /**
   * Each callback's id and where it is: 'waiting' in the batch's directory until the batch ends, then made
   * (queue/, on to done/...), or 'skipped'.
   */
  onComplete?: { id: string; state: CallbackState };
  onSuccess?: { id: string; state: CallbackState };
}

/** The fields of an item that make no sense for a batch's job, and why. */
const NOT_IN_BATCH: Readonly<Record<string, string>> = {
  key: 'a unique key could turn a job of the batch into a duplicate that never runs nor ends',
  keyFrom: 'a unique key could turn a job of the batch into a duplicate that never runs nor ends',
};
const NOT_IN_CALLBACK: Readonly<Record<string, string>> = {
  ...NOT_IN_BATCH,
  after: 'a callback already waits: for its batch',
  delay: 'a callback runs when its batch ends',
  runAt: 'a callback runs when its batch ends',
};

/** Throws EBADOPTION unless `items` and `options` make a batch; returns the callbacks. */
export function checkBatch(items: unknown, options: unknown): BatchOptions {
  if (!Array.isArray(items) || items.length === 0) {
    throw new DirQueueError(
      'EBADOPTION',
      `enqueueBatch takes a non-empty array of jobs ({ type, data, ...options }), got ${Array.isArray(items) ? 'an empty array' : describe(items)}: a batch with no jobs would never end`,
    );
  }
  if (items.length > BATCH_MAX) {
    throw new DirQueueError('EBADOPTION', `a batch holds at most ${BATCH_MAX} jobs, got ${items.length}: split it`);
  }
  for (const [i, item] of items.entries()) checkItem(item, `enqueueBatch: item ${i}`, NOT_IN_BATCH);
  if (options === undefined) return {};
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError(
      'EBADOPTION',
      `enqueueBatch options must be { onComplete?, onSuccess? }, got ${describe(options)}`,
    );
  }
  const { onComplete, onSuccess, ...rest } = options as BatchOptions;
  const unknown = Object.keys(rest)[0];
  if (unknown !== undefined) {
    throw new DirQueueError(
      'EBADOPTION',
      `unknown enqueueBatch option ${JSON.stringify(unknown)}: use onComplete or onSuccess`,
    );
  }
  if (onComplete !== undefined) checkItem(onComplete, 'enqueueBatch: onComplete', NOT_IN_CALLBACK);
  if (onSuccess !== undefined) checkItem(onSuccess, 'enqueueBatch: onSuccess', NOT_IN_CALLBACK);
  const out: BatchOptions = {};
  if (onComplete !== undefined) out.onComplete = onComplete;
  if (onSuccess !== undefined) out.onSuccess = onSuccess;
  return out;
}

function checkItem(item: unknown, what: string, refused: Readonly<Record<string, string>>): void {
  if (item === null || typeof item !== 'object' || Array.isArray(item)) {
    throw new DirQueueError('EBADOPTION', `${what} must be { type, data, ...options }, got ${describe(item)}`);
  }
  for (const [field, why] of Object.entries(refused)) {
    if ((item as Record<string, unknown>)[field] !== undefined) {
      throw new DirQueueError('EBADOPTION', `${what} has ${field}, which a batch does not take: ${why}`);
    }
  }
}

/** What batch `id`'s files say; ENOTFOUND when there is no such batch. */
export function batchInfo(layout: Layout, id: string): BatchInfo {
  const file = isBatchId(id) ? readBatchFile(layout, id) : undefined;
  if (file === undefined) {
    throw new DirQueueError(
      'ENOTFOUND',
      `no batch ${describe(id)} in ${layout.root}: batch ids are what enqueueBatch returned (b and 24 characters); an ended batch is kept 7 days`,
    );
  }
  const counts = countMembers(layout, id);
  const ended = counts.pending === 0;
  const info: BatchInfo = {
    id,
    total: file.total,
    pending: counts.pending,
    done: counts.done,
    failed: counts.failed,
    failedIds: counts.failedIds,
    createdAt: new Date(file.created),
    ended,
  };
  const where = (cb: string, when: 'complete' | 'success'): CallbackState => {
    if (lstatQuietly(callbackPath(layout, id, when === 'complete' ? 'onComplete' : 'onSuccess')) !== undefined) {
      return 'waiting'; // still in the batch's directory
    }
    const state = locate(layout, cb)?.state;
    if (state !== undefined) return state;
    return when === 'success' && ended && counts.failed > 0 ? 'skipped' : 'removed';
  };
  if (file.onComplete !== undefined)
    info.onComplete = { id: file.onComplete, state: where(file.onComplete, 'complete') };
  if (file.onSuccess !== undefined) info.onSuccess = { id: file.onSuccess, state: where(file.onSuccess, 'success') };
  return info;
}
