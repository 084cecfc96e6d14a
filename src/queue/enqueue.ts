/**
 * From enqueue's arguments to a job in queue/ (or delayed/): build and check
 * the envelope, name the file (the codec's id), then, once the file is
 * written in tmp/, take its unique key and place it with one rename. Queue
 * runs these for enqueue and enqueueMany, around the writes and fsyncs.
 */
import { markChild, parentState, unmarkChild } from '../store/deps.js';
import { encodeEnvelope, type Envelope } from '../store/envelope.js';
import { DirQueueError } from '../store/errors.js';
import { move, removeQuietly } from '../store/files.js';
import { checkJson } from '../store/json-check.js';
import { releaseKey, takeKey } from '../store/keys.js';
import { lexists } from '../store/locate.js';
import type { Layout } from '../store/layout.js';
import { delayedName, encodeKey, encodeType, groupTag, coalesceTag, parseId, type NameMaker } from '../store/names.js';
import { resolveEnqueueOptions, type EnqueueOptions } from './options.js';

/** A job ready to be written to `tmp` and placed. */
export interface Prepared {
  id: string;
  type: string;
  content: string;
  /** The delayed/ name when the job waits for a time. */
  delayed: string | undefined;
  /** The encoded unique key, if any. */
  key: string | undefined;
  /** The running job that may hand the key over (EnqueueOptions.keyFrom). */
  keyFrom: string | undefined;
  /** The jobs it waits for in waiting/ (EnqueueOptions.after). */
  after: string[] | undefined;
  /** Where place() puts it. */
  state: 'queue' | 'delayed' | 'waiting';
  tmp: string;
}

/** What enqueueBatch adds to its jobs' envelopes. */
export type BatchFields = Pick<Envelope, 'batch' | 'onBatch'>;

/** What an enqueue without options resolves to (it does not depend on the time): made once, not per job. */
const NO_OPTIONS = Object.freeze(resolveEnqueueOptions({}));

/** Check the arguments and build the job's file content and names; throws a DirQueueError on bad input. */
export function prepare(
  layout: Layout,
  names: NameMaker,
  maxJobBytes: number,
  type: string,
  data: unknown,
  options: EnqueueOptions | undefined,
  batchFields: BatchFields = {},
): Prepared {
  const encodedType = encodeType(type);
  const o = options === undefined ? NO_OPTIONS : resolveEnqueueOptions(options);
  const envelope: Envelope = { type };
  if (data instanceof Uint8Array) {
    envelope.bytes = Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64');
  } else if (data !== undefined) {
    checkJson(data, 'data');
    envelope.data = data;
  }
  envelope.created = new Date().toISOString();
  if (o.attempts !== undefined) envelope.attempts = o.attempts;
  if (o.backoff !== undefined) envelope.backoff = o.backoff;
  if (o.timeout !== undefined) envelope.timeout = o.timeout;
  if (o.key !== undefined) envelope.key = o.key;
  if (o.group !== undefined) envelope.group = o.group;
  if (o.after !== undefined) envelope.after = o.after;
  if (o.after !== undefined && o.afterFailed === 'run') envelope.afterFailed = 'run';
  Object.assign(envelope, batchFields);
  if (o.coalesce !== undefined) envelope.coalesce = o.coalesce;
  const content = encodeEnvelope(envelope);
  const bytes = Buffer.byteLength(content);
  if (bytes > maxJobBytes) {
    throw new DirQueueError(
      'ETOOBIG',
      `job is ${bytes} bytes, over maxJobBytes (${maxJobBytes}): store large payloads elsewhere and enqueue a reference`,
    );
  }
  // A delayed job's id carries its due time, so once promoted it queues by when it became ready.
  const tag = {
    group: o.group === undefined ? undefined : groupTag(o.group),
    coalesce: o.coalesce === undefined ? undefined : coalesceTag(o.coalesce),
  };
  const id = names.id(o.priority, encodedType, o.runAt === undefined ? undefined : o.runAt * 1000, tag);
  const delayed = o.runAt === undefined ? undefined : delayedName(parseId(id)!.enqueuedUs, id);
  const key = o.key === undefined ? undefined : encodeKey(o.key);
  const state =
    o.after !== undefined || batchFields.onBatch !== undefined
      ? 'waiting'
      : delayed === undefined
        ? 'queue'
        : 'delayed';
  return {
    id,
    type,
    content,
    delayed,
    key,
    keyFrom: o.keyFrom,
    after: o.after,
    state,
    tmp: layout.file('tmp', names.tmpName(id)),
  };
}

/**
 * The jobs of `after` must exist (a job can only wait for jobs enqueued
 * before it, so no cycle can be made): throws ENOTFOUND naming the first that
 * is in no state. One that ended counts at once, when the job is placed.
 */
export function checkParents(layout: Layout, job: Prepared): void {
  for (const parent of job.after ?? []) {
    if (parentState(layout, parent) === 'removed') {
      throw new DirQueueError(
        'ENOTFOUND',
        `job ${parent} in after is in no state of ${layout.root}: a job can wait only for jobs that exist (enqueued before it, not yet removed or pruned)`,
      );
    }
  }
}

/** Write the markers that make the ending of each of a job's parents look for it (deps/PARENT/ID), before it is placed. */
export function markParents(layout: Layout, job: Prepared): void {
  for (const parent of job.after ?? []) markChild(layout, parent, job.id);
}

/** Take the job's unique key, if it has one. Returns the id of the live job holding it instead (ours removed). */
export function takeKeyOf(layout: Layout, job: Prepared): string | undefined {
  if (job.key === undefined) return undefined;
  let holder: string | undefined;
  try {
    holder = takeKey(layout, job.key, job.id, job.keyFrom);
  } catch (error) {
    removeQuietly(job.tmp);
    throw error;
  }
  if (holder !== undefined) removeQuietly(job.tmp);
  return holder;
}

/** Move the written job from tmp/ into queue/ or delayed/: the one rename that enqueues it. */
export function place(layout: Layout, job: Prepared): void {
  const target = targetOf(layout, job);
  if (!move(job.tmp, target)) {
    throw new DirQueueError(
      'EVANISHED',
      `${job.tmp} vanished before it could be enqueued: is something cleaning tmp/?`,
    );
  }
}

/**
 * After a failure between writing the job in tmp/ and placing it (the rename
 * failed: EIO, a read-only filesystem): remove its tmp/ file and free the key
 * it took, so that neither outlives the error that says it was not enqueued
 * (a tmp/ file of a live writer holds its key for an hour, clean.ts). Unless
 * the rename did land after all (a lost reply on NFS): then both are the job's.
 */
export function abandon(layout: Layout, job: Prepared): void {
  if (lexists(targetOf(layout, job))) return;
  removeQuietly(job.tmp);
  for (const parent of job.after ?? []) {
    try {
      unmarkChild(layout, parent, job.id);
    } catch {
      // a marker of a job that is in no state: the sweep removes it once the parent has ended
    }
  }
  if (job.key === undefined) return;
  try {
    releaseKey(layout, job.key, job.id);
  } catch {
    // a key this process may not remove now names a job that is in no state: the next enqueuer of the key takes it over
  }
}

function targetOf(layout: Layout, job: Prepared): string {
  return job.delayed === undefined ? layout.file(job.state, job.id) : layout.file('delayed', job.delayed);
}

/** The directories to fsync after placing `jobs`: their states', keys/, and the deps/ of their markers. */
export function dirsToSync(layout: Layout, jobs: readonly Prepared[]): string[] {
  const dirs = new Set(jobs.map((j) => layout.paths[j.state]));
  if (jobs.some((j) => j.key !== undefined)) dirs.add(layout.paths.keys);
  for (const parent of jobs.flatMap((j) => j.after ?? [])) dirs.add(layout.file('deps', parent));
  if (jobs.some((j) => j.after !== undefined)) dirs.add(layout.paths.deps);
  return [...dirs];
}
