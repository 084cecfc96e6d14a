/**
 * The Queue: enqueue, claim, inspect and administer one queue directory.
 * See ARCHITECTURE.md for the invariants and FORMAT.md for the files.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { basename } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { Discovery } from './discovery.js';
import { FinishWatch } from './finish-watch.js';
import {
  abandon,
  checkParents,
  dirsToSync,
  markParents,
  place,
  prepare,
  takeKeyOf,
  type BatchFields,
  type Prepared,
} from './enqueue.js';
import { batchInfo, checkBatch, type BatchInfo, type BatchItem, type BatchOptions } from './batch.js';
import { batchDir, createBatch } from '../store/batches.js';
import { afterEnding, parentsOf, releaseIfReady, type Ending, type ReleaseContext } from '../store/release.js';
import { encodeEvent, parseJobFile, tornReason, type Envelope } from '../store/envelope.js';
import { DirQueueError, errnoOf, fsError, JobFailedError } from '../store/errors.js';
import {
  appendLine,
  closeQuietly,
  DirSyncer,
  move,
  readJobFile,
  setJobFileTimes,
  writeBatch,
  writeNew,
  writeNewNow,
} from '../store/files.js';
import {
  counts,
  firstJobs,
  jobNames,
  notFound,
  readInfo,
  stats,
  type Counts,
  type JobInfo,
  type Stats,
} from './inspect.js';
import { idOfName, lexists, locate } from '../store/locate.js';
import { unmarkChild } from '../store/deps.js';
import { Job, type JobHost } from './job.js';
import { checkState, endedState, Layout, type State } from '../store/layout.js';
import {
  activeName,
  batchId,
  checkId,
  describe,
  encodeType,
  idEncodedType,
  idGroupTag,
  idCoalesceTag,
  coalesceTagAgrees,
  NameMaker,
  nowUs,
  parseId,
} from '../store/names.js';
import {
  checkInteger,
  checkMs,
  resolveQueueOptions,
  type EnqueueOptions,
  type QueueOptions,
  type ResolvedQueueOptions,
} from './options.js';
import { ReadyIndex } from './ready-index.js';
import { checkClaimMany } from './claim-many.js';
import { Scheduler } from './scheduler.js';
import { deleteSchedule, putSchedule, scheduleInfos, type ScheduleInfo, type ScheduleSpec } from './schedules.js';
import { notRegular } from '../store/safe-file.js';
import { syncfsSuits } from '../store/syncfs.js';
import { Heartbeat } from '../store/liveness.js';
import { FLUSH_MS, readTotals, Tally, type Totals } from '../store/totals.js';
import { revoke, unrecoveredError, type Recovered, type Stranded } from '../maintenance/rescue.js';
import { sweep, sweepDefaults, type SweepReport, type SweepSettings } from '../maintenance/sweep.js';
import { cancel, pause, paused, resume, type CancelResult, type PauseInfo, type PauseOptions } from './flow.js';
import { PauseWatch } from './pause-watch.js';
import { listCancels } from '../store/cancels.js';
import { LimitGate, type Pass } from './limit-gate.js';
import { limitInfos, setLimit, type LimitInfo, type LimitProblemInfo } from './limits.js';
import type { LimitSpec } from '../store/limit-spec.js';

export interface JobRef {
  id: string;
  /** True when the job's unique key was taken: `id` is the live job that holds it, and nothing was added. */
  duplicate: boolean;
}

/** What enqueueBatch made: the batch's id (q.batch, dirq batch) and its jobs. */
export interface BatchRef {
  id: string;
  jobs: JobRef[];
}

export interface EnqueueItem extends EnqueueOptions {
  type: string;
  data?: unknown;
}

export interface ClaimOptions {
  /** Only jobs of these types; all types when omitted. */
  types?: readonly string[];
  /** Wait up to this many ms for a job to be ready. @default 0 */
  wait?: number;
  /** Stop waiting (resolve undefined) when this signal aborts. */
  signal?: AbortSignal;
}

/** claimMany's options: claim's, and how many jobs (claim-many.ts checks them). */
export interface ClaimManyOptions extends ClaimOptions {
  /** At most this many jobs, an integer of at least 1. */
  max: number;
  /**
   * Only jobs with the first job's coalesce key (enqueue's `coalesce`); a first job of no key comes with
   * the jobs of no key that follow it. @default false (any jobs of the first job's type)
   */
  coalesce?: boolean;
}

/** Events a Queue emits. */
export interface QueueEvents {
  /** A file in queue/ could not be run and was set aside in failed/. */
  invalid: [info: { id: string; reason: string }];
  /** A maintenance sweep took a claim back from a dead, silent or timed-out worker. */
  recovered: [info: Recovered];
  /**
   * A background step (a timed sweep, the heartbeat, promoting a due job,
   * a rescan) failed; the queue keeps going and tries it again later. Also, once, code EPOLLING: `watch: 'auto'` found queue/ on a
   * network or FUSE filesystem and polls instead of watching (NFS.md).
   */
  warning: [error: Error];
}

/**
 * enqueue and claim finish without I/O waits (their syscalls are synchronous),
 * so a tight loop of them would starve timers (the heartbeat!) and watch
 * events; every this many calls they yield to the event loop once.
 */
const YIELD_EVERY = 64;

export class Queue extends EventEmitter<QueueEvents> {
  readonly dir: string;
  readonly options: Readonly<ResolvedQueueOptions>;
  #layout: Layout;
  #names = new NameMaker();
  #index: ReadyIndex;
  #discovery: Discovery | undefined;
  #syncer = new DirSyncer();
  #jobHost: JobHost;
  /**
   * New jobs (enqueues, schedules' jobs) are fsynced before they are acknowledged: durable true or
   * 'all', unless the whole queue is on a filesystem in memory (tmpfs), whose fsync does nothing.
   */
  readonly #durable: boolean;
  #release: ReleaseContext;
  /** Whether durable batches may use one syncfs (options.batchSync, syncfs.ts); known at the first batch. */
  #batchSyncfs: boolean | undefined;
  #held = new Set<Job>();
  /**
   * Claims this handle made but could neither hand out nor put back (the read
   * after the claim's rename failed, then the rename back too: EIO, EROFS),
   * and jobs a failed take-back left under its claim (rescue.ts Stranded):
   * active path -> the job and where it goes. No sweep takes them back while
   * this process lives, so each claim and sweep of this handle and close() try again.
   */
  #strays = new Map<string, { id: string; to: 'queue' | 'failed' }>();
  #heartbeat: Heartbeat | undefined;
  /** The filesystem's clock minus Date.now(), as the last heartbeat measured it (ms). */
  #fsOffset = 0;
  #pauses: PauseWatch | undefined;
  /** The limits of types, as claims apply them (limit-gate.ts): made with the first claim. */
  #gate: LimitGate | undefined;
  /** What each held job of a limited type took (its slots), given back when it ends. */
  #passes = new Map<Job, Pass>();
  /** Whether a group at its groupConcurrency is parked in the index (unparked when the gate sees a change). */
  #parked = false;
  /** The paused types and the types at a limit, as one set for ReadyIndex.take, kept while both stay. */
  #skip:
    { paused: ReadonlySet<string> | undefined; limited: ReadonlySet<string>; both: ReadonlySet<string> } | undefined;
  #tally: Tally;
  #timers = new Set<NodeJS.Timeout>();
  #finishWatch: FinishWatch | undefined;
  /** Makes the jobs of schedules' slots: on time with maintenance (start()), else only at recover(). */
  #scheduler: Scheduler;
  /** The Scheduler's warnings while Queue.open runs, emitted once its caller can listen; undefined after. */
  #early: Error[] | undefined = [];
  #closed = false;
  #callsSinceYield = 0;
  #typeSets = new WeakMap<readonly string[], { key: string; set: ReadonlySet<string> }>();

  private constructor(layout: Layout, options: ResolvedQueueOptions) {
    super();
    this.#layout = layout;
    this.dir = layout.root;
    this.options = Object.freeze(options);
    this.#index = new ReadyIndex(options.agingStep, nowUs, (id) => readyUsOf(layout, id));
    this.#tally = new Tally(layout, this.#names.owner);
    const syncs = !layout.inMemory(); // on tmpfs an fsync is a no-op that costs a thread-pool round trip
    this.#durable = options.durable !== false && syncs;
    this.#jobHost = {
      layout,
      durableEndings: options.durable === 'all' && syncs,
      syncDirs: (dirs) => Promise.all(dirs.map((d) => this.#syncer.sync(d))).then(() => undefined),
      defaultAttempts: options.attempts,
      defaultBackoff: options.backoff,
      defaultTimeout: options.timeout,
      staleAfter: options.staleAfter,
      requeued: (id, delayed) => this.#discovery?.added(id, delayed),
      settled: (job) => {
        this.#held.delete(job);
        this.#givePassBack(job);
      },
      counted: (type, counter) => this.#tally.add(type, counter),
      warn: (error) => this.emit('warning', error),
      ended: (id, envelope, state) => this.#ended({ id, envelope, state }),
    };
    this.#release = { layout, claim: () => this.#names.claim(), maxJobBytes: options.maxJobBytes };
    this.#scheduler = this.#makeScheduler();
  }

  /** Open (and unless `create: false`, create) the queue in `dir`. */
  static async open(dir: string, options?: QueueOptions): Promise<Queue> {
    if (typeof dir !== 'string' || dir.length === 0) {
      throw new DirQueueError('EBADOPTION', `the queue directory must be a non-empty path, got ${describe(dir)}`);
    }
    const resolved = resolveQueueOptions(options);
    const layout = new Layout(dir);
    await layout.prepare(resolved.create, resolved.mode);
    const queue = new Queue(layout, resolved);
    for (const warning of layout.warnings) setImmediate(() => queue.emit('warning', warning)); // on the next turn: the caller listens after open
    queue.#startTallyFlush();
    if (resolved.maintenance) {
      // the next process to open the queue catches up first (I6); a queue this process may
      // only read still opens (its sweeps fail, reported as warnings)
      queue.#scheduler.start();
      await queue.#sweep(false).catch((error: unknown) => setImmediate(() => queue.emit('warning', error as Error)));
      queue.#scheduleSweep();
    }
    const early = queue.#early!;
    queue.#early = undefined;
    for (const warning of early) setImmediate(() => queue.emit('warning', warning)); // on the next turn, as above
    return queue;
  }

  /** This process's claims carry this owner: HOST.PID.NONCE. */
  get owner(): string {
    return this.#names.owner;
  }

  /** Add one job. Resolves once it is in queue/ (or delayed/), on stable storage unless `durable: false`. */
  async enqueue(type: string, data?: unknown, options?: EnqueueOptions): Promise<JobRef> {
    this.#assertOpen();
    const turn = this.#fairness();
    if (turn !== undefined) await turn;
    const job = prepare(this.#layout, this.#names, this.options.maxJobBytes, type, data, options);
    checkParents(this.#layout, job);
    if (job.key !== undefined) this.#signOfLifeForKeys();
    if (this.#durable) await writeNew(job.tmp, job.content, true, this.#layout.fileMode);
    else writeNewNow(job.tmp, job.content, this.#layout.fileMode);
    const holder = takeKeyOf(this.#layout, job);
    if (holder !== undefined) return { id: holder, duplicate: true };
    try {
      markParents(this.#layout, job);
      place(this.#layout, job);
    } catch (error) {
      abandon(this.#layout, job);
      throw error;
    }
    if (this.#durable) await Promise.all(dirsToSync(this.#layout, [job]).map((d) => this.#syncer.sync(d)));
    this.#announce(job);
    if (job.after !== undefined) this.#releaseIfReady([job]);
    return { id: job.id, duplicate: false };
  }

  /**
   * Add many jobs at once, much faster per job than a loop of enqueue: files
   * are written first and fsynced together, then renamed, then each
   * directory is fsynced once. If any file cannot be written, nothing is enqueued.
   */
  async enqueueMany(items: readonly EnqueueItem[]): Promise<JobRef[]> {
    this.#assertOpen();
    if (!Array.isArray(items))
      throw new DirQueueError('EBADOPTION', `enqueueMany takes an array of jobs, got ${describe(items)}`);
    // the item type again: Array.isArray narrowed `items` to any[]
    const jobs = items.map((item: EnqueueItem, i) => {
      if (item === null || typeof item !== 'object') {
        throw new DirQueueError(
          'EBADOPTION',
          `enqueueMany: item ${i} must be { type, data, ...options }, got ${describe(item)}`,
        );
      }
      const { type, data, ...options } = item;
      try {
        const job = prepare(this.#layout, this.#names, this.options.maxJobBytes, type, data, options);
        checkParents(this.#layout, job);
        return job;
      } catch (error) {
        if (error instanceof DirQueueError) error.message = `enqueueMany: item ${i}: ${error.message}`;
        throw error;
      }
    });
    if (jobs.some((job) => job.key !== undefined)) this.#signOfLifeForKeys();
    this.#batchSyncfs ??= this.options.batchSync === 'auto' && syncfsSuits(this.#layout.paths.tmp);
    await writeBatch(
      jobs.map((job) => ({ path: job.tmp, content: job.content })),
      this.#durable,
      { mode: this.#layout.fileMode, syncfs: this.#batchSyncfs },
    );
    const refs = new Map<Prepared, JobRef>();
    let placed = 0;
    try {
      for (const job of jobs) {
        const holder = takeKeyOf(this.#layout, job);
        refs.set(job, holder === undefined ? { id: job.id, duplicate: false } : { id: holder, duplicate: true });
        if (holder === undefined) {
          markParents(this.#layout, job);
          place(this.#layout, job);
        }
        placed++;
      }
    } catch (error) {
      for (const job of jobs.slice(placed)) abandon(this.#layout, job);
      if (error instanceof DirQueueError)
        error.message = `enqueueMany: ${placed} of ${jobs.length} jobs were enqueued, then ${error.message}`;
      throw error;
    }
    const added = jobs.filter((j) => !refs.get(j)!.duplicate);
    if (this.#durable) await Promise.all(dirsToSync(this.#layout, added).map((d) => this.#syncer.sync(d)));
    for (const job of added) this.#announce(job);
    this.#releaseIfReady(added);
    return jobs.map((j) => refs.get(j)!);
  }

  /**
   * Add `items` as one batch: the jobs are enqueued as enqueueMany would,
   * and each callback is a job (`{ type, data, ...options }`) that waits in
   * the batch's directory and runs once: onComplete when every job of the batch has
   * ended (done, failed for good, cancelled or removed), onSuccess only if
   * all of them are done (with a failure it is deleted, never run). A
   * callback's `job.batch` says how the batch ended. Exactly one callback
   * job runs however many processes end the last jobs at once.
   */
  async enqueueBatch(items: readonly BatchItem[], options?: BatchOptions): Promise<BatchRef> {
    this.#assertOpen();
    const callbacks = checkBatch(items, options);
    const id = batchId();
    const prepareOne = (item: BatchItem, what: string, fields: BatchFields): Prepared => {
      const { type, data, ...rest } = item;
      try {
        const job = prepare(this.#layout, this.#names, this.options.maxJobBytes, type, data, rest, fields);
        checkParents(this.#layout, job);
        return job;
      } catch (error) {
        if (error instanceof DirQueueError) error.message = `enqueueBatch: ${what}: ${error.message}`;
        throw error;
      }
    };
    const jobs = items.map((item, i) => prepareOne(item, `item ${i}`, { batch: id }));
    const onComplete =
      callbacks.onComplete && prepareOne(callbacks.onComplete, 'onComplete', { onBatch: { id, when: 'complete' } });
    const onSuccess =
      callbacks.onSuccess && prepareOne(callbacks.onSuccess, 'onSuccess', { onBatch: { id, when: 'success' } });
    this.#batchSyncfs ??= this.options.batchSync === 'auto' && syncfsSuits(this.#layout.paths.tmp);
    await writeBatch(
      jobs.map((job) => ({ path: job.tmp, content: job.content })),
      this.#durable,
      { mode: this.#layout.fileMode, syncfs: this.#batchSyncfs },
    );
    let placed = 0;
    try {
      // the batch, its callbacks within, is whole on disk before any of its jobs can run and end
      const dirs = await createBatch(
        this.#layout,
        this.#names.owner,
        id,
        jobs.map((j) => j.id),
        {
          ...(onComplete === undefined ? {} : { onComplete }),
          ...(onSuccess === undefined ? {} : { onSuccess }),
        },
        this.#durable,
      );
      if (this.#durable) await Promise.all(dirs.map((d) => this.#syncer.sync(d)));
      for (const job of jobs) {
        markParents(this.#layout, job);
        place(this.#layout, job);
        placed++;
      }
    } catch (error) {
      for (const job of jobs.slice(placed)) abandon(this.#layout, job);
      if (placed === 0) this.#unmakeBatch(id);
      if (error instanceof DirQueueError)
        error.message = `enqueueBatch: ${placed} of ${jobs.length} jobs were enqueued, then ${error.message}`;
      throw error;
    }
    if (this.#durable) await Promise.all(dirsToSync(this.#layout, jobs).map((d) => this.#syncer.sync(d)));
    for (const job of [onComplete, onSuccess, ...jobs]) if (job !== undefined) this.#announce(job);
    this.#releaseIfReady(jobs);
    return { id, jobs: jobs.map((job) => ({ id: job.id, duplicate: false })) };
  }

  /** An enqueueBatch that placed none of its jobs leaves nothing: its directory (callbacks and all) goes. */
  #unmakeBatch(id: string): void {
    try {
      fs.rmSync(batchDir(this.#layout, id), { recursive: true, force: true });
    } catch {
      // what is left is what a crash would leave: a sweep removes it (maintenance/releases.ts)
    }
  }

  /** How batch `id` stands: its jobs by outcome and its callbacks. Throws ENOTFOUND for an unknown batch. */
  async batch(id: string): Promise<BatchInfo> {
    return batchInfo(this.#layout, id);
  }

  /**
   * Claim the next ready job (priority, then FIFO, with ageing), by one rename
   * into active/. Resolves undefined when none is ready within `wait` ms.
   */
  async claim<Data = unknown>(options: ClaimOptions = {}): Promise<Job<Data> | undefined> {
    this.#assertOpen();
    const { types, wait = 0, signal } = options ?? {};
    checkMs(wait, 'wait', 0);
    if (types !== undefined && !Array.isArray(types)) {
      throw new DirQueueError('EBADOPTION', `types must be an array of job types, got ${describe(types)}`);
    }
    const wanted = types === undefined ? undefined : this.#encodedTypes(types);
    this.#putBackStrays();
    const discovery = this.#startDiscovery();
    this.#startHeartbeat();
    this.#startPauseWatch();
    this.#startLimitGate();
    const turn = this.#fairness();
    if (turn !== undefined) await turn;
    if (this.#closed) return undefined;
    const deadline = Date.now() + wait;
    let caughtUp = false;
    for (;;) {
      const job = this.#claimFromIndex(wanted);
      if (job !== undefined) return job as Job<Data>;
      if (!caughtUp) {
        caughtUp = true;
        await discovery.catchUp();
        if (this.#closed) return undefined;
        continue;
      }
      const left = deadline - Date.now();
      if (left <= 0 || this.#closed || signal?.aborted) return undefined;
      await this.#changeOrTimeout(discovery, Math.min(left, this.options.pollInterval), signal);
      if (this.#closed || signal?.aborted) return undefined;
      caughtUp = false;
    }
  }

  /**
   * Claim up to `max` ready jobs of one type: the job claim() would give first, then the next ready jobs
   * of its type. With `coalesce`, only those of the first job's coalesce key (in priority, then FIFO
   * order), or with a first job of no key, the next jobs of no key in run order (the batch ends at a job
   * with a key). Each is its own claim, ending on its own. Waits like claim() for the first job only;
   * resolves [] when none is ready. An error after the first claim ends the batch early (the next claim
   * meets it again). O(1) per job in the backlog (ready-index.ts).
   */
  async claimMany<Data = unknown>(options: ClaimManyOptions): Promise<Job<Data>[]> {
    this.#assertOpen();
    const { max, coalesce } = checkClaimMany(options);
    const { types, wait, signal } = options;
    const first = await this.claim<Data>({
      ...(types === undefined ? {} : { types }),
      ...(wait === undefined ? {} : { wait }),
      ...(signal === undefined ? {} : { signal }),
    });
    if (first === undefined) return [];
    const jobs: Job<Data>[] = [first];
    // a file written by hand whose id's tag and envelope's key disagree runs, alone (FORMAT.md, "Coalescing")
    if (coalesce && !coalesceTagAgrees(first.id, first.coalesce)) return jobs;
    const type = idEncodedType(first.id);
    const tag = idCoalesceTag(first.id);
    const only = new Set([type]);
    const take = !coalesce
      ? undefined
      : tag === ''
        ? (skip: ReadonlySet<string> | undefined) => this.#index.take(only, skip, true)
        : (skip: ReadonlySet<string> | undefined) => this.#index.takeCoalesced(type, tag, skip);
    const strays: Job[] = [];
    try {
      while (jobs.length < max && strays.length < max && !this.#closed) {
        const job = this.#claimFromIndex(only, take);
        if (job === undefined) break;
        // another key with the same tag, or a hand-written file whose tag and key disagree: not this batch's
        if (coalesce && job.coalesce !== first.coalesce) strays.push(job);
        else jobs.push(job as Job<Data>);
      }
    } catch {
      // the jobs claimed so far are held and run; the cause shows again at the next claim
    }
    for (const stray of strays) await stray.release().catch((error: unknown) => this.emit('warning', error as Error));
    return jobs;
  }

  /** Everything known about one job. Throws ENOTFOUND when it is in no state. */
  async get(id: string): Promise<JobInfo> {
    checkId(id);
    for (let tries = 0; tries < 3; tries++) {
      const where = locate(this.#layout, id);
      if (where === undefined) break;
      const info = readInfo(this.#layout, where.state, where.name, this.options);
      if (info !== undefined) return info;
    }
    throw notFound(id);
  }

  /** The jobs in `state`, in run order. */
  async list(state: State, options: { limit?: number } = {}): Promise<JobInfo[]> {
    checkState(state);
    const limit = options.limit ?? Infinity;
    if (limit !== Infinity) checkInteger(limit, 'limit', 0);
    if (limit !== Infinity) return firstJobs(this.#layout, state, limit, this.options).jobs; // keeps `limit` names, not every one
    const out: JobInfo[] = [];
    for (const name of jobNames(this.#layout, state)) {
      if (out.length >= limit) break;
      const info = readInfo(this.#layout, state, name, this.options);
      if (info !== undefined) out.push(info);
    }
    return out;
  }

  async counts(): Promise<Counts> {
    return counts(this.#layout);
  }

  async stats(): Promise<Stats> {
    return stats(this.#layout, this.options.maxJobBytes);
  }

  /**
   * Move a failed (or delayed) job back to queue/ to run now; a failed job gets a fresh set of attempts.
   * The id stays, so get, waitFor and the job's unique key still find it. A delayed job's id carries a
   * time still to come: its file's mtime, set to now here, is when it became ready, and claims rank it
   * by that (ready-index.ts), after the jobs ready before the retry and before those enqueued after it.
   */
  async retry(id: string): Promise<void> {
    checkId(id);
    const where = locate(this.#layout, id);
    if (where === undefined) throw notFound(id);
    const from = this.#layout.file(where.state, where.name);
    const kind = notRegular(from);
    if (kind !== undefined) {
      throw new DirQueueError(
        'EBADDATA',
        `${where.state}/${where.name} is ${kind}, not a job file: it can never run, so it stays; look at it, then remove it (dirq rm)`,
      );
    }
    if (where.state === 'failed') {
      appendLine(from, encodeEvent({ event: 'retry', at: new Date().toISOString() }), this.#layout.fileMode);
    } else if (where.state === 'delayed') {
      const readySeconds = nowUs() / 1e6;
      try {
        setJobFileTimes(from, readySeconds); // through its descriptor: a link swapped in since the check above is not followed
      } catch (error) {
        if (errnoOf(error) === 'ENOENT') throw notFound(id);
        throw fsError(`marking job ${id} ready now`, error);
      }
    } else {
      throw new DirQueueError(
        'EBADSTATE',
        `job ${id} is in ${where.state}/; only failed and delayed jobs can be retried`,
      );
    }
    if (!move(from, this.#layout.file('queue', id), false, true)) throw notFound(id);
    this.#discovery?.added(id);
  }

  /** Delete a job that is not running. Resolves with the state it was removed from. */
  async remove(id: string): Promise<State> {
    checkId(id);
    const where = locate(this.#layout, id);
    if (where === undefined) throw notFound(id);
    if (where.state === 'active') {
      throw new DirQueueError('EBADSTATE', `job ${id} is running (active/); wait for it to end, then remove it`);
    }
    if (where.state === 'waiting' && where.name !== id) {
      throw new DirQueueError('EBADSTATE', `job ${id} is being released from waiting/ this instant: look again`);
    }
    const file = this.#layout.file(where.state, where.name);
    const envelope = endedState(where.state) ? undefined : this.#envelopeOf(file);
    try {
      fs.unlinkSync(file);
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') throw notFound(id);
      throw fsError(`removing job ${id}`, error);
    }
    if (!endedState(where.state)) this.#removed(id, where.state, envelope);
    return where.state;
  }

  /** The envelope of the job file at `file`, if it reads as one. */
  #envelopeOf(file: string): Envelope | undefined {
    const read = readJobFile(file, this.options.maxJobBytes);
    if (!read.ok) return undefined;
    try {
      return parseJobFile(read.text).envelope;
    } catch {
      return undefined;
    }
  }

  /** A job that had not ended was deleted: it waits for nothing now, and what waited for it goes on. */
  #removed(id: string, state: State, envelope: Envelope | undefined): void {
    try {
      if (state === 'waiting' && envelope !== undefined) {
        for (const parent of parentsOf(envelope)) unmarkChild(this.#layout, parent, id);
      }
    } catch (error) {
      this.emit('warning', error as Error); // a marker left of a job in no state: the sweep removes it
    }
    this.#ended({ id, state: 'removed', envelope });
  }

  /**
   * Delete the jobs in `state` whose file was last changed more than
   * `olderThan` ms ago (all when omitted). In done/ and failed/ that is when
   * the job ended. Resolves with how many were deleted. `progress` is called
   * with (files looked at, files in the state) every 1,000 files and at the end.
   */
  async purge(
    state: State,
    options: { olderThan?: number; progress?: (done: number, total: number) => void } = {},
  ): Promise<number> {
    checkState(state);
    if (state === 'active') throw new DirQueueError('EBADSTATE', 'active jobs cannot be purged: they are running');
    const cutoff = options.olderThan === undefined ? Infinity : Date.now() - checkMs(options.olderThan, 'olderThan', 0);
    let removed = 0;
    const names = jobNames(this.#layout, state);
    for (const [i, name] of names.entries()) {
      if (i % 1000 === 0) options.progress?.(i, names.length);
      const file = this.#layout.file(state, name);
      try {
        if (cutoff !== Infinity && fs.lstatSync(file).mtimeMs > cutoff) continue;
        const envelope = endedState(state) ? undefined : this.#envelopeOf(file);
        fs.unlinkSync(file);
        removed++;
        if (!endedState(state)) this.#removed(idOfName(state, name)!, state, envelope);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw fsError(`purging ${file}`, error);
      }
    }
    options.progress?.(names.length, names.length);
    return removed;
  }

  /**
   * Lifetime counts per job type: jobs enqueued, completed, retried (failed
   * attempts that will run again), failed (ended in failed/) and recovered
   * (claims taken back), by every process that had the queue open, this one
   * included. Monotonic, unlike the counts of done/ that retention prunes.
   */
  async totals(): Promise<Totals> {
    this.#assertOpen();
    return readTotals(this.#layout, this.#tally.pending);
  }

  /**
   * One maintenance sweep now (waiting for another process's sweep to end):
   * recover stale claims, promote due delayed jobs, prune done/, clean tmp/.
   */
  async recover(): Promise<SweepReport> {
    this.#assertOpen();
    return this.#sweep(true);
  }

  /**
   * Pause `type` (the whole queue when omitted) for every process on every
   * host: within one pollInterval (at once on this host where inotify
   * serves) no claim starts a job of it; running jobs finish; enqueue still
   * works. `for`: the pause ends by itself after that many ms. Pausing again
   * replaces the pause (idempotent). The pause is the file paused/TYPE
   * (paused/@all for the whole queue): `rm` of it resumes.
   */
  async pause(type?: string, options: PauseOptions = {}): Promise<PauseInfo> {
    this.#assertOpen();
    const made = await pause(this.#layout, this.#names.owner, type, options);
    this.#pauses?.refresh();
    return made;
  }

  /** Lift the pause of `type` (of the whole queue when omitted; pauses of single types stay). Resolves false when there was none. */
  async resume(type?: string): Promise<boolean> {
    this.#assertOpen();
    const lifted = resume(this.#layout, type);
    this.#pauses?.refresh();
    return lifted;
  }

  /** The pauses in effect, the whole queue's first (its type is undefined). */
  async paused(): Promise<PauseInfo[]> {
    return paused(this.#layout);
  }

  /**
   * Cancel a job. A waiting one (queue/, delayed/) goes to failed/ now with
   * the error code ECANCELLED; a running one's signal aborts in whatever
   * process and host holds it, within staleAfter/4 (its holder's heartbeat),
   * and it ends in failed/ with ECANCELLED once its processor returns or
   * throws (if its holder died, the sweep that takes it back does that). A
   * cancelled job is never retried (an operator's retry still can). A job that
   * completes before its holder sees the request stays completed. Throws
   * ENOTFOUND for an unknown id, EBADSTATE for a job that already ended.
   */
  async cancel(id: string): Promise<CancelResult> {
    this.#assertOpen();
    return cancel(
      {
        layout: this.#layout,
        names: this.#names,
        maxJobBytes: this.options.maxJobBytes,
        held: (claim) => this.#heldBy(claim),
        departed: (gone) => this.#index.delete(gone),
        counted: (type) => this.#tally.add(type, 'failed'),
        ended: (ending) => this.#ended(ending),
        strand: (gone, path, to = 'queue') => {
          this.#putBack(gone, path, to); // tries at once; a stray until it lands
          return !this.#strays.has(path);
        },
      },
      id,
    );
  }

  /**
   * Limit `type` for every process on every host: `concurrency` jobs running
   * at once at most, `rate` at most `max` starts in any `per` ms,
   * `groupConcurrency` jobs of one group running at once. Setting it again
   * replaces it; null clears it (resolves false when there was none). The
   * limit is limits/TYPE/limit.json; claims obey a change within one
   * pollInterval (at once on this host where inotify serves).
   */
  async limit(type: string, spec: LimitSpec | null): Promise<boolean> {
    this.#assertOpen();
    const set = await setLimit(this.#layout, this.#names.owner, type, spec);
    this.#gate?.refresh();
    return set;
  }

  /** Every limit, by type, with how much of it is in use; a broken limit file as { file, invalid }. */
  async limits(): Promise<(LimitInfo | LimitProblemInfo)[]> {
    return limitInfos(this.#layout, Date.now() + this.#fsOffset);
  }

  /**
   * Wait for a job to finish. Resolves with its result when it is in done/;
   * rejects with EJOBFAILED (JobFailedError) when it is in failed/, ETIMEOUT
   * after `timeout` ms, ENOTFOUND when there is no such job or it is removed
   * while waited for, ETORN when it is in done/ without a proven result (lost
   * in a power cut, envelope.ts tornReason): rather than wait for a re-run
   * that needs a sweep after the reboot or fsck --repair, it says so; call it
   * again once the job is back.
   */
  async waitFor(id: string, options: { timeout?: number } = {}): Promise<unknown> {
    this.#assertOpen();
    checkId(id);
    const timeout = options.timeout === undefined ? Infinity : checkMs(options.timeout, 'timeout', 0);
    const deadline = Date.now() + timeout;
    // Where the job's file was last seen: while it is still there, one lstat
    // says the job exists; only once it moved does a full locate run.
    let seenAt: string | undefined;
    for (;;) {
      const done = readJobFile(this.#layout.file('done', id), this.options.maxJobBytes);
      if (done.ok) {
        const record = parseJobFile(done.text);
        const torn = tornReason(done.text, record);
        if (torn !== undefined) throw tornError(id, torn, this.dir);
        return record.result!.value;
      }
      // in done/ for good but unreadable: waiting longer would not change it (a result can take a job past maxJobBytes)
      if (!done.gone) throw unreadableResult(id, this.#layout.file('done', id), done.reason, this.options.maxJobBytes);
      if (fs.existsSync(this.#layout.file('failed', id))) {
        const info = readInfo(this.#layout, 'failed', id, this.options);
        throw new JobFailedError(
          id,
          info?.error ?? (info?.invalid === undefined ? undefined : { message: info.invalid }),
        );
      }
      if (seenAt === undefined || !lexists(seenAt)) {
        const where = locate(this.#layout, id);
        if (where === undefined) throw notFound(id);
        seenAt = this.#layout.file(where.state, where.name);
        if (where.state === 'done' || where.state === 'failed') continue; // it ended meanwhile
      }
      const left = deadline - Date.now();
      if (left <= 0) throw new DirQueueError('ETIMEOUT', `job ${id} did not finish within ${timeout} ms`);
      if (this.#closed) throw this.#closedError();
      this.#finishWatch ??= new FinishWatch([this.#layout.paths.done, this.#layout.paths.failed], this.options.watch);
      await this.#finishWatch.next(Math.min(left, this.options.pollInterval));
    }
  }

  /**
   * Create or replace the schedule `name` (its file is schedules/NAME.json): a job of `spec.type`
   * at every slot of `spec.cron` or `spec.every`, made by whichever process has the queue open, one
   * job per slot. Replacing keeps the schedule's cursor: the new spec applies from the next slot
   * after the ones already handled, so an edit never runs a slot twice. Throws EBADSCHEDULE
   * (ScheduleError, with the field, and for cron the position) on a bad name or spec.
   */
  async schedule(name: string, spec: ScheduleSpec): Promise<ScheduleInfo> {
    this.#assertOpen();
    await putSchedule(this.#layout, name, spec, this.#durable);
    await this.#scheduler.runNow(name); // a slot already due (say, of a schedule no longer paused) is made now
    return scheduleInfos(this.#layout, Date.now(), name)[0]!;
  }

  /** Remove the schedule `name` (jobs it made stay). Resolves false when there was none. */
  async unschedule(name: string): Promise<boolean> {
    this.#assertOpen();
    const had = deleteSchedule(this.#layout, name);
    await this.#scheduler.refresh();
    return had;
  }

  /** Every schedule, by name: its spec, next slot, latest run and success, lateness; broken files as `invalid`. */
  async schedules(): Promise<ScheduleInfo[]> {
    return scheduleInfos(this.#layout);
  }

  /**
   * Stop watching, sweeping and the heartbeat. Claims waiting resolve
   * undefined; jobs still held go back to queue/ (attempt not counted), and
   * their holders get ECOMPROMISED if they try to end them later.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#scheduler.close(); // after the step it is in (a tick between its write and the cursor stops there)
    for (const timer of this.#timers) clearTimeout(timer);
    for (const job of [...this.#held])
      await job.releaseOnClose().catch((error: unknown) => this.emit('warning', error as Error));
    this.#putBackStrays();
    await this.#tally.flush().catch((error: unknown) => this.emit('warning', error as Error));
    this.#heartbeat?.close();
    this.#discovery?.close();
    this.#pauses?.close();
    this.#gate?.close();
    await this.#syncer.close();
    this.#finishWatch?.close();
  }

  #announce(job: Prepared): void {
    this.#tally.add(job.type, 'enqueued');
    if (job.state !== 'waiting') this.#discovery?.added(job.id, job.delayed);
  }

  /**
   * Jobs just placed in waiting/ whose parents all ended before their
   * markers were there to be seen go on now. A release that fails here is
   * left waiting for the sweep (the enqueue itself succeeded).
   */
  #releaseIfReady(jobs: readonly Prepared[]): void {
    for (const job of jobs) {
      if (job.after === undefined) continue;
      try {
        const released = releaseIfReady(this.#release, job.id);
        if (released !== undefined) this.#releasedOne(released);
      } catch (error) {
        this.emit('warning', error as Error);
      }
    }
  }

  /**
   * Job `ending` ended (here, or a cancel or removal by this handle): mark
   * its batch and release what waited for it (store/release.ts).
   */
  #ended(ending: Ending): void {
    for (const released of afterEnding(this.#release, ending, (error) => this.emit('warning', error))) {
      this.#releasedOne(released);
    }
  }

  #releasedOne(released: { id: string; type: string; to: 'queue' | 'failed' | 'skipped' }): void {
    if (released.to === 'queue') this.#discovery?.added(released.id);
    else if (released.to === 'failed') this.#tally.add(released.type, 'failed');
  }

  /** `take`: how to take the next id (claimMany's coalescing); the index's take among `wanted` by default. */
  #claimFromIndex(
    wanted: ReadonlySet<string> | undefined,
    take?: (skip: ReadonlySet<string> | undefined) => string | undefined,
  ): Job | undefined {
    const paused = this.#pauses?.blocked(); // cached: no scan, no read (pause-watch.ts)
    if (paused === 'all') return undefined;
    for (;;) {
      const skip = this.#skipped(paused);
      const id = take === undefined ? this.#index.take(wanted, skip) : take(skip);
      if (id === undefined) return undefined;
      let pass: Pass | 'type' | 'group' | undefined;
      try {
        pass = this.#gate?.limited === true ? this.#gate.enter(idEncodedType(id), idGroupTag(id)) : undefined;
      } catch (error) {
        this.#index.add(id); // a slot or token could not be taken (EIO, EACCES, ...): the job is still ready
        throw error;
      }
      if (pass === 'type' || pass === 'group') {
        this.#index.add(id); // its type is at a limit now: skipped by the next take (limit-gate.ts)
        if (pass === 'group') {
          this.#index.park(idEncodedType(id), idGroupTag(id)); // until one of its slots is seen free
          this.#parked = true;
        }
        continue;
      }
      const claim = this.#names.claim();
      const activePath = this.#layout.file('active', activeName(id, claim));
      let won: boolean;
      try {
        won = move(this.#layout.file('queue', id), activePath, true);
      } catch (error) {
        pass?.unuse();
        this.#index.add(id); // the claim failed (EIO, EACCES, ...): the job is still ready, and a later claim may take it
        throw error;
      }
      if (!won) {
        pass?.unuse();
        continue; // lost the race (I3); on NFS also a name the listing showed but a lookup does not (yet)
      }
      this.#discovery?.departed(id);
      let job: Job | undefined;
      try {
        job = this.#load(id, claim, activePath);
      } catch (error) {
        pass?.unuse();
        this.#putBack(id, activePath); // an I/O error reading it says nothing of the job: it stays ready
        throw error;
      }
      if (job !== undefined) {
        this.#held.add(job);
        if (pass !== undefined && pass.type !== '') this.#passes.set(job, pass);
        return job;
      }
      pass?.unuse(); // set aside in failed/: it never started
    }
  }

  /** The types a take skips: the paused ones and those at a limit (one set, made again only when either changes). */
  #skipped(paused: ReadonlySet<string> | undefined): ReadonlySet<string> | undefined {
    const limited = this.#gate?.blocked();
    if (limited === undefined || limited.size === 0) return paused;
    if (paused === undefined) return limited;
    if (this.#skip?.paused !== paused || this.#skip.limited !== limited) {
      this.#skip = { paused, limited, both: new Set([...paused, ...limited]) };
    }
    return this.#skip.both;
  }

  /** A held job ended (or was taken back): give back the slots its start took. */
  #givePassBack(job: Job): void {
    const pass = this.#passes.get(job);
    if (pass === undefined) return;
    this.#passes.delete(job);
    pass.release(); // a failure is kept and tried again by the gate (limit-gate.ts)
  }

  /**
   * Move a claim of ours that no Job holds on to `to`: one never handed out
   * back to queue/ (attempt not counted), or one a failed take-back left
   * (rescue.ts Stranded); kept in #strays when that fails too.
   */
  #putBack(id: string, activePath: string, to: 'queue' | 'failed' = 'queue'): void {
    try {
      if (move(activePath, this.#layout.file(to, id), false, true) && to === 'queue') {
        this.#index.add(id);
      }
      this.#strays.delete(activePath);
    } catch (error) {
      this.#strays.set(activePath, { id, to });
      setImmediate(() => this.emit('warning', error as Error));
    }
  }

  /** Take on what a failed take-back left under our claim, and try to move it on at once (a fault that passed). */
  #strand(stranded: readonly Stranded[]): void {
    for (const { id, path, to } of stranded) this.#putBack(id, path, to);
  }

  #putBackStrays(): void {
    for (const [activePath, { id, to }] of this.#strays) this.#putBack(id, activePath, to);
  }

  /** Read a freshly claimed file; set it aside in failed/ if it cannot run (I9). */
  #load(id: string, claim: string, activePath: string): Job | undefined {
    const parsed = parseId(id)!;
    const read = readJobFile(activePath, this.options.maxJobBytes, true);
    if (!read.ok) {
      if (!read.gone && read.ioError !== undefined) throw read.ioError; // the claim puts it back (#putBack)
      if (!read.gone) this.#setAside(id, activePath, read.reason, read.canAppend);
      return undefined;
    }
    try {
      const record = parseJobFile(read.text);
      if (record.envelope.type !== undefined && record.envelope.type !== parsed.type) {
        throw new DirQueueError(
          'EBADDATA',
          `its type ${JSON.stringify(record.envelope.type)} differs from the type in its name ${JSON.stringify(parsed.type)}`,
        );
      }
      return new Job(this.#jobHost, parsed, record, claim, activePath, { fd: read.fd, tail: read.tail });
    } catch (error) {
      if (read.fd !== undefined) closeQuietly(read.fd);
      if (!(error instanceof DirQueueError)) throw error;
      this.#setAside(id, activePath, error.message, true);
      return undefined;
    }
  }

  #setAside(id: string, activePath: string, reason: string, canAppend: boolean): void {
    if (canAppend)
      appendLine(
        activePath,
        encodeEvent({ event: 'invalid', at: new Date().toISOString(), reason }),
        this.#layout.fileMode,
      );
    move(activePath, this.#layout.file('failed', id), false, true);
    const type = parseId(id)?.type;
    if (type !== undefined) this.#tally.add(type, 'failed');
    this.emit('invalid', { id, reason });
  }

  async #sweep(wait: boolean): Promise<SweepReport> {
    this.#putBackStrays();
    // schedules: this handle's Scheduler runs them after the sweep (one at a time with its timer, and with a
    // heartbeat, by which others judge a slot it left half-made), not the sweep itself
    const settings: SweepSettings = {
      ...this.options,
      durable: this.#durable,
      tmpMaxAge: sweepDefaults.tmpMaxAge,
      schedules: false,
    };
    const stranded: Stranded[] = [];
    let report: SweepReport;
    try {
      report = await sweep(this.#layout, this.#names, settings, wait, stranded);
    } finally {
      this.#strand(stranded);
    }
    await this.#scheduler.sweep();
    for (const r of report.recovered) this.#recovered(r);
    // on the next turn: the sweep of Queue.open runs before its caller can listen
    for (const warning of report.warnings) setImmediate(() => this.emit('warning', warning));
    for (const id of report.torn?.requeued ?? []) this.#discovery?.added(id);
    for (const problem of report.torn?.problems ?? []) setImmediate(() => this.emit('warning', problem));
    for (const released of report.released ?? []) this.#releasedOne(released);
    if (report.promoted > 0) this.#discovery?.refresh();
    if (report.unrecovered.length > 0) throw unrecoveredError(report.unrecovered);
    return report;
  }

  #scheduleSweep(): void {
    const delay = this.options.sweepInterval * (0.75 + Math.random() / 2);
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      if (this.#closed) return;
      this.#sweep(false)
        .catch((error: unknown) => this.emit('warning', error as Error))
        .finally(() => this.#closed || this.#scheduleSweep());
    }, delay).unref();
    this.#timers.add(timer);
  }

  /**
   * A keyed job's file in tmp/ holds its key while it is written (keys.ts
   * isLive): with a heartbeat its writer can be judged gone when it dies
   * there (SIGKILL between the write and the rename), and the key is free at
   * once rather than after tmpMaxAge. Made at the first keyed enqueue; an
   * enqueuer that may not write workers/ goes on without it, as before.
   */
  #signOfLifeForKeys(): void {
    try {
      this.#startHeartbeat();
    } catch (error) {
      setImmediate(() => this.emit('warning', error as Error));
    }
  }

  #makeScheduler(): Scheduler {
    return new Scheduler({
      layout: this.#layout,
      owner: this.#names.owner,
      durable: this.#durable,
      staleAfter: this.options.staleAfter,
      watch: this.options.watch,
      pollInterval: this.options.pollInterval,
      beforeTake: () => this.#startHeartbeat(),
      made: (ids) => {
        for (const id of ids) {
          const type = parseId(id)?.type;
          if (type !== undefined) this.#tally.add(type, 'enqueued');
          this.#discovery?.added(id);
        }
      },
      // the first reading of the files runs in Queue.open, before its caller can listen: kept until then
      warn: (error) => (this.#early === undefined ? this.emit('warning', error) : this.#early.push(error)),
    });
  }

  /** The heartbeat exists before the first claim, so a claim is never without an owner's sign of life. */
  #startHeartbeat(): void {
    if (this.#heartbeat !== undefined) return;
    this.#heartbeat = new Heartbeat(this.#layout.file('workers', this.#names.owner), this.#layout.fileMode);
    this.#fsOffset = this.#heartbeat.beat() - Date.now();
    const every = Math.max(10, this.options.staleAfter / 4);
    const timer = setInterval(() => {
      try {
        const stamped = this.#heartbeat?.beat();
        if (stamped !== undefined) this.#fsOffset = stamped - Date.now();
        this.#takeBackOverdue();
        this.#seeCancels();
      } catch (error) {
        this.emit('warning', error as Error);
      }
    }, every).unref();
    this.#timers.add(timer);
  }

  /**
   * Cancel requests for claims of this handle (store/cancels.ts), looked for
   * at every heartbeat while it holds jobs: one readdir of cancel/, so a
   * running job's signal aborts within staleAfter/4 of the request, whichever
   * process or host made it.
   */
  #seeCancels(): void {
    if (this.#held.size === 0) return;
    for (const { request } of listCancels(this.#layout)) {
      if (request?.claim.owner !== this.#names.owner) continue;
      this.#heldBy(request.claim.claim)?.cancelRequested(undefined);
    }
  }

  #heldBy(claim: string): Job | undefined {
    for (const job of this.#held) if (job.claim === claim) return job;
    return undefined;
  }

  #startLimitGate(): void {
    if (this.#gate !== undefined) {
      this.#gate.catchUp();
      return;
    }
    this.#gate = new LimitGate({
      layout: this.#layout,
      watch: this.options.watch,
      pollInterval: this.options.pollInterval,
      offset: () => this.#fsOffset,
      heartbeat: (fresh) => {
        this.#startHeartbeat();
        return this.#heartbeat!.current(fresh);
      },
      warn: (error) => this.emit('warning', error),
    });
    this.#gate.onChange(() => {
      if (!this.#parked) return;
      this.#parked = false;
      for (const type of this.#gate?.groupLimited() ?? []) this.#index.unpark(type); // the next claim parks the still full again
    });
    this.#gate.start();
  }

  #startPauseWatch(): void {
    if (this.#pauses !== undefined) return;
    this.#pauses = new PauseWatch(
      this.#layout,
      this.options,
      () => this.#fsOffset,
      (error) => this.emit('warning', error),
    );
    this.#pauses.start();
  }

  /**
   * Take back our own claims that ran staleAfter past their timeout, as a
   * sweep takes back a dead worker's: the attempt counts (error EJOBTIMEOUT), and
   * the holder's later complete or fail is refused (ECOMPROMISED). The pool
   * fails such jobs at their timeout itself; this is the backstop for code
   * that claims by hand and never ends a job.
   */
  #takeBackOverdue(): void {
    const now = performance.now();
    for (const job of this.#held) {
      if (!job.overdue(now, this.options.staleAfter)) continue;
      this.#held.delete(job);
      job.revoked();
      this.#givePassBack(job);
      let to: 'queue' | 'failed' | undefined;
      try {
        const stranded: Stranded[] = [];
        try {
          to = revoke(
            this.#layout,
            this.#names,
            this.options,
            basename(job.path),
            job.id,
            job.claim,
            'timeout',
            stranded,
          );
        } finally {
          this.#strand(stranded);
        }
      } catch (error) {
        this.#held.add(job); // still ours (revoke put it back): try again at the next beat
        this.emit('warning', error as Error);
        continue;
      }
      if (to !== undefined) this.#recovered({ id: job.id, claim: job.claim, reason: 'timeout', to }); // else ended meanwhile, or taken back elsewhere
    }
  }

  #recovered(r: Recovered): void {
    const type = parseId(r.id)?.type;
    if (type !== undefined) {
      this.#tally.add(type, 'recovered');
      if (r.to === 'failed') this.#tally.add(type, 'failed');
    }
    if (r.to === 'queue') this.#discovery?.added(r.id);
    this.emit('recovered', r);
  }

  /** Lifetime counters reach disk every FLUSH_MS while this queue counts (totals.ts). */
  #startTallyFlush(): void {
    const timer = setInterval(() => {
      this.#tally.flush().catch((error: unknown) => this.emit('warning', error as Error));
    }, FLUSH_MS).unref();
    this.#timers.add(timer);
  }

  #startDiscovery(): Discovery {
    if (this.#discovery === undefined) {
      this.#discovery = new Discovery(this.#layout, this.#index, this.options, (notice) =>
        this.emit('warning', notice),
      );
      this.#discovery.start();
    }
    return this.#discovery;
  }

  #changeOrTimeout(discovery: Discovery, ms: number, signal: AbortSignal | undefined): Promise<void> {
    const pauses = this.#pauses;
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const off = discovery.onChange(done);
      const offPauses = pauses?.onChange(done);
      const offLimits = this.#gate?.onChange(done);
      signal?.addEventListener('abort', done, { once: true });
      function done(): void {
        clearTimeout(timer);
        off();
        offPauses?.();
        offLimits?.();
        signal?.removeEventListener('abort', done);
        resolve();
      }
    });
  }

  /** The encoded set of `types`, kept per array (a pool claims with the same one every time) while its contents stay. */
  #encodedTypes(types: readonly string[]): ReadonlySet<string> {
    const key = types.join('\0');
    let cached = this.#typeSets.get(types);
    if (cached?.key !== key) {
      cached = { key, set: new Set(types.map(encodeType)) };
      this.#typeSets.set(types, cached);
    }
    return cached.set;
  }

  /**
   * Every YIELD_EVERY calls, a promise of a turn of the event loop; otherwise undefined, and the caller
   * does not await at all (an async function here cost every claim and enqueue a promise and two
   * microtask hops for nothing).
   */
  #fairness(): Promise<void> | undefined {
    if (++this.#callsSinceYield < YIELD_EVERY) return undefined;
    this.#callsSinceYield = 0;
    return yieldToLoop();
  }

  #assertOpen(): void {
    if (this.#closed) throw this.#closedError();
  }

  #closedError(): DirQueueError {
    return new DirQueueError('ECLOSED', `the queue ${this.dir} was closed: open it again with Queue.open`);
  }
}

/** When a job in queue/ became ready, by its file's mtime (µs; rounded up, as it may only be later than the time set); undefined when it is gone. */
function readyUsOf(layout: Layout, id: string): number | undefined {
  try {
    return Number((fs.lstatSync(layout.file('queue', id), { bigint: true }).mtimeNs + 999n) / 1000n);
  } catch {
    return undefined;
  }
}

function tornError(id: string, reason: string, dir: string): DirQueueError {
  return new DirQueueError(
    'ETORN',
    `job ${id} is in done/ without a proven result (${reason}; a power cut does this): it runs again once the first sweep after a reboot, or dirq fsck ${dir} --repair, puts it back in queue/; then wait for it again`,
  );
}

/**
 * waitFor's answer for a job in done/ whose file cannot be read: most often a
 * result that took the file past maxJobBytes (enqueue checks only the
 * envelope), else something not a job file at its name.
 */
function unreadableResult(id: string, file: string, reason: string, maxJobBytes: number): DirQueueError {
  const tooBig = (fs.lstatSync(file, { throwIfNoEntry: false })?.size ?? 0) > maxJobBytes;
  return tooBig
    ? new DirQueueError(
        'ETOOBIG',
        `job ${id} completed, but its file in done/ is ${reason}: open the queue with a larger maxJobBytes to read its result, and keep results small (store large ones elsewhere and return a reference)`,
      )
    : new DirQueueError(
        'EBADFILE',
        `job ${id} is in done/, but ${file} is ${reason}: its result cannot be read; look at it (dirq show), then remove it (dirq rm)`,
      );
}
