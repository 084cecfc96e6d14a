/**
 * The worker pool: the main thread claims jobs (through the Queue's index,
 * never scanning) and dispatches them to workers (threads or child processes
 * that run the processor module, or long-running executables), or runs them
 * here (a function, or an executable started per job). It enforces job
 * timeouts (a worker that does not end a timed-out job is stopped and
 * replaced), recycles workers after maxJobsPerWorker or a failure, grows and
 * shrinks between min and max workers with the backlog, and on close lets
 * running jobs finish within closeTimeout, then releases the rest back to
 * queue/.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import { checkCanWrite } from './can-write.js';
import { unwritableJobFile } from '../store/files.js';
import { DirQueueError, errnoOf, fsError, recordError, type RecordedError } from '../store/errors.js';
import type { Job } from '../queue/job.js';
import { pending, splitRetries, typeFilter, type DelayedJob } from './drain.js';
import { Layout, parseMode, readSettings } from '../store/layout.js';
import { checkMs, type EnqueueOptions } from '../queue/options.js';
import { resolvePoolOptions, type PoolOptions, type ResolvedPoolOptions } from './options.js';
import { execProcessor, checkCommand } from './exec.js';
import type { BatchProcessor } from './batch.js';
import { jobFields, runBatchInProcess, runInProcess, withKeyFrom } from './in-process.js';
import { importMiddleware, wrap } from './middleware.js';
import { PersistentHost } from './persistent-host.js';
import type { Processor } from './processor.js';
import { LazyAbort } from '../queue/lazy-abort.js';
import { Queue, type QueueEvents } from '../queue/queue.js';
import { WorkerHost, type Host } from './worker-host.js';
import type { RunOutcome } from './worker-messages.js';

/** A job as pool events report it. */
export interface PoolJob {
  id: string;
  type: string;
  attempt: number;
}

export interface PoolEvents {
  completed: [job: PoolJob, result: unknown];
  /** The attempt failed and the job will run again (after its backoff). */
  retrying: [job: PoolJob, error: RecordedError];
  /** The attempt failed and the job's attempts are used up: it is in failed/. */
  failed: [job: PoolJob, error: RecordedError];
  /** The claim was taken back by another process's recovery; this run's outcome was not recorded. */
  lost: [job: PoolJob, error: Error];
  /** This pool's maintenance took back a dead or silent worker's claim. */
  recovered: QueueEvents['recovered'];
  /** A problem of the pool itself: a worker died or was stuck, maintenance failed, the processor cannot load. */
  error: [error: Error];
  /** An autoscaled pool started a worker for jobs that waited while every worker was busy: how many it has now. */
  grew: [workers: number];
  /** An autoscaled pool stopped a worker idle for idleTimeout: how many it has now. */
  shrank: [workers: number];
  /** A notice from the pool's queue that needs no action from the pool (EPOLLING, EBADMODE, EBADFILE a sweep worked around). */
  warning: QueueEvents['warning'];
  /** The pool has stopped: closed, or given up (`error` says why: its processor cannot run). */
  closed: [error: Error | undefined];
}

export interface PoolCounts {
  completed: number;
  retried: number;
  failed: number;
  lost: number;
  released: number;
  running: number;
}

interface Run {
  id: number;
  job: Job;
  host: Host | undefined;
  /** Resolves when the worker has answered for the run, even after its outcome was settled (a timeout). */
  answered: Promise<void>;
  /** The processor's signal, for a run in this process (made when the processor first reads it). */
  controller: LazyAbort | undefined;
  timer: NodeJS.Timeout | undefined;
  settled: boolean;
}

/** What a drain did not wait for: delayed jobs of the pool's types due later than its bound. */
export interface Leftovers {
  /** Jobs that failed an attempt and wait for their retry. */
  retries: DelayedJob[];
  /** Jobs scheduled to run later that have not run yet. */
  scheduled: DelayedJob[];
}

/**
 * onDrained waits this long for delayed jobs: the default backoff (1 s,
 * doubling) keeps each retry of up to 6 attempts within it, and a drain run
 * from cron every few minutes still ends.
 */
export const DRAIN_WITHIN_MS = 60_000;

/** Worker deaths within this window that make the pool give up. */
const CRASH_WINDOW_MS = 10_000;

export class Pool extends EventEmitter<PoolEvents> {
  readonly dir: string;
  readonly options: Readonly<ResolvedPoolOptions>;
  #queue: Queue | undefined;
  #layout: Layout | undefined;
  #hosts: Host[] = [];
  /** What runs the jobs here (a function processor with its middleware, a per-job exec), once started. */
  #local: Processor | undefined;
  /** A worker being started because jobs wait while every worker is busy (one at a time), until it has its job. */
  #growing: Promise<void> | undefined;
  #shrinkTimer: NodeJS.Timeout | undefined;
  #runs = new Map<number, Run>();
  #nextRun = 0;
  /**
   * In-process functions still running, including ones whose job already
   * failed at its timeout: a function cannot be stopped, only asked to (its
   * signal), so its slot stays taken until it returns and `concurrency` holds.
   */
  #inProcess = 0;
  /** Per-job exec runs not yet ended: their process groups are stopped before close() resolves. */
  readonly #execRuns = new Set<Promise<void>>();
  #counts = { completed: 0, retried: 0, failed: 0, lost: 0, released: 0 };
  #wake: (() => void) | undefined;
  #stop = new AbortController();
  #pumping: Promise<void> | undefined;
  #nothingReady = false;
  #idleWaiters: (() => void)[] = [];
  #crashes: number[] = [];
  /** Workers being checked after a job's timeout, with the verdict to come: true when they were replaced. */
  #checks = new Map<Host, Promise<boolean>>();
  #state: 'new' | 'running' | 'closing' | 'closed' = 'new';
  /** The shutdown under way, which every close() call waits for. */
  #closing: Promise<void> | undefined;
  /** Resolves the shutdown's wait for running jobs once none is left. */
  #drained: (() => void) | undefined;
  #fatal: Error | undefined;

  constructor(dir: string, options: PoolOptions) {
    super();
    this.dir = dir;
    this.options = Object.freeze(resolvePoolOptions(options));
  }

  get counts(): PoolCounts {
    return { ...this.#counts, running: this.#runs.size };
  }

  /**
   * Open the queue, start the workers (their processor loaded), and start
   * taking jobs. Rejects with EPROCESSOR when the processor or a middleware
   * cannot load, EBADOPTION when an exec processor's program is not there, and
   * with the errno code (EACCES, EROFS, ...) when this process cannot write
   * the queue.
   */
  async start(): Promise<void> {
    if (this.#state !== 'new')
      throw new DirQueueError('ESTARTED', 'a Pool starts once; make a new Pool to start again');
    this.#state = 'running';
    try {
      this.#local = await this.#localProcessor();
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    try {
      this.#queue = await Queue.open(this.dir, this.options.queue);
    } catch (error) {
      this.#state = 'closed';
      throw error;
    }
    try {
      // before any listener: a queue we may not write has already failed its opening sweep, which
      // would be reported too, and a pool that went on would fail every claim, every second
      this.#layout = new Layout(this.#queue.dir);
      checkCanWrite(this.#layout);
    } catch (error) {
      this.#state = 'closed';
      await this.#queue.close();
      throw error;
    }
    this.#queue.on('recovered', (info) => this.emit('recovered', info));
    this.#queue.on('warning', (error) => this.#warn(error));
    if (this.#local === undefined) {
      try {
        this.#hosts = Array.from({ length: this.options.workers.min }, () => this.#spawn());
        await Promise.all(this.#hosts.map((h) => h.ready));
      } catch (error) {
        this.#state = 'closed';
        await Promise.all(this.#hosts.map((h) => h.terminate()));
        await this.#queue.close();
        throw error;
      }
      const { min, max } = this.options.workers;
      if (max > min) {
        const every = Math.min(1000, Math.max(10, this.options.idleTimeout / 4));
        this.#shrinkTimer = setInterval(() => this.#shrinkIdle(), every);
      }
    }
    this.#pumping = this.#pump();
  }

  /** The number of workers running or starting (0 for a pool that runs its jobs in-process). */
  get workers(): number {
    return this.#hosts.filter((h) => !h.retiring).length;
  }

  /** The function that runs jobs in this process, wrapped in its middleware; undefined when workers run them. Checks an exec command's program first. */
  async #localProcessor(): Promise<Processor | undefined> {
    const { runner, middleware } = this.options;
    let processor: Processor;
    if (runner.kind === 'exec' || runner.kind === 'persistent') checkCommand(runner.command);
    if (runner.kind === 'in-process') processor = runner.processor;
    else if (runner.kind === 'exec') processor = execProcessor(runner.command, { queueDir: this.dir });
    else return undefined;
    return wrap(processor, await importMiddleware(middleware));
  }

  /** Resolves when no job of the pool's types is ready and none is running. */
  onIdle(): Promise<void> {
    if (this.#isIdle()) return Promise.resolve();
    return new Promise((resolve) => this.#idleWaiters.push(resolve));
  }

  /**
   * Resolves once nothing is left that this pool would run soon: no job of
   * its types is ready or running, and none waits in delayed/ to be due
   * within `within` ms (a retry's backoff, a short delay), looking at the
   * directory, so jobs other processes add count too. Delayed jobs due later
   * are not waited for (a job scheduled for tomorrow must not hold a drain
   * until tomorrow): it resolves with them, split into retries (they failed
   * an attempt: their outcome is still open) and scheduled jobs (never run).
   * Also resolves, with what is left then, if the pool closes.
   */
  async onDrained(options: { within?: number } = {}): Promise<Leftovers> {
    const within = options.within === undefined ? DRAIN_WITHIN_MS : checkMs(options.within, 'within', 0);
    const layout = this.#layout;
    if (layout === undefined || this.#queue === undefined)
      throw new DirQueueError('ENOTSTARTED', 'onDrained() needs a started pool: call start() first');
    const types = typeFilter(this.options.types);
    const pollInterval = this.#queue.options.pollInterval;
    for (;;) {
      await this.onIdle();
      const look = pending(layout, this.#queue.owner, types);
      const now = Date.now();
      const due = look.delayed.find((job) => job.runAt <= now + within);
      if (this.#state !== 'running' || (!look.busy && this.#runs.size === 0 && due === undefined)) {
        return splitRetries(layout, look.delayed, this.#queue.options);
      }
      // the pool's sweeps and promotion timer move due jobs; look again then, or a poll later
      const wait = due === undefined || look.busy ? pollInterval : Math.min(pollInterval, Math.max(1, due.runAt - now));
      await new Promise((resolve) => setTimeout(resolve, wait));
    }
  }

  /**
   * Stop taking jobs; let running jobs finish for up to `timeout` ms
   * (closeTimeout by default), then abort them and release them back to
   * queue/ (attempt not counted); stop the workers (and the process groups
   * of exec jobs) and close the queue.
   */
  async close(options: { timeout?: number } = {}): Promise<void> {
    if (this.#state === 'closed' || this.#state === 'new') {
      this.#state = 'closed';
      return;
    }
    const timeout = options.timeout ?? this.options.closeTimeout;
    if (this.#closing !== undefined) {
      if (timeout === 0) this.#releaseAll('the pool is closing now');
      return this.#closing;
    }
    this.#closing = this.#shutdown(timeout);
    return this.#closing;
  }

  async #shutdown(timeout: number): Promise<void> {
    this.#state = 'closing';
    this.#stop.abort();
    this.#wake?.();
    await this.#pumping;
    await this.#growing; // its jobs go back to queue/, or run and are waited for below
    if (this.#runs.size > 0) {
      const deadline = setTimeout(() => this.#releaseAll(`the pool closed and ${timeout} ms passed`), timeout);
      await new Promise<void>((resolve) => (this.#drained = resolve));
      clearTimeout(deadline);
    }
    clearInterval(this.#shrinkTimer);
    await Promise.all(this.#hosts.map((h) => h.terminate()));
    this.#hosts = [];
    // an aborted exec job ends once its process group has gone (at most KILL_AFTER_MS): leave nothing running
    await Promise.all(this.#execRuns);
    await this.#queue?.close();
    this.#state = 'closed';
    for (const resolve of this.#idleWaiters.splice(0)) resolve();
    this.emit('closed', this.#fatal);
  }

  async #pump(): Promise<void> {
    while (!this.#stop.signal.aborted) {
      try {
        await this.#pumpOnce();
      } catch (error) {
        // a claim that failed (permissions, a full table of open files...): say so, breathe, go on
        this.#report(error as Error);
        await new Promise((resolve) => setTimeout(resolve, this.#queue!.options.pollInterval));
      }
    }
  }

  /** Wait for a free slot, claim the next job (or batch), dispatch it. */
  async #pumpOnce(): Promise<void> {
    if (!this.#hasSlot()) {
      if (this.#mayGrow()) return this.#growForWaitingJob();
      await new Promise<void>((resolve) => (this.#wake = resolve));
      this.#wake = undefined;
      return;
    }
    let jobs = await this.#claim(0);
    if (jobs.length === 0) {
      this.#nothingReady = true;
      this.#checkIdle();
      jobs = await this.#claim(60_000, this.#stop.signal);
      if (jobs.length === 0) return;
    }
    this.#nothingReady = false;
    // closing, or the slot went while the claim waited (its thread died, or is being checked after a timeout)
    const waiting = this.#dispatchOrRelease(jobs);
    if (waiting !== undefined) await waiting;
  }

  /** The next job, or with batchSize the next batch (claimMany, coalesced); [] when none came within `wait` ms. */
  async #claim(wait: number, signal?: AbortSignal): Promise<Job[]> {
    const { types, batchSize } = this.options;
    const options = { ...(types && { types }), wait, ...(signal && { signal }) };
    if (batchSize > 1) return this.#queue!.claimMany({ ...options, max: batchSize, coalesce: true });
    const job = await this.#queue!.claim(options);
    return job === undefined ? [] : [job];
  }

  /** #mayWrite of each job of a claim; when one fails (the pool stops), the others go back to queue/ too. */
  async #mayWriteAll(jobs: readonly Job[]): Promise<boolean> {
    for (const job of jobs) {
      if (await this.#mayWrite(job)) continue;
      for (const other of jobs) if (!other.settled) await other.release().catch(() => undefined); // close() tries again
      return false;
    }
    return true;
  }

  /**
   * A job whose file this process may not write could run but never record
   * its outcome (in a group-shared queue, a file a producer made without the
   * queue's mode): put it back unrun and stop the pool, which would otherwise
   * claim it again at once (it is still the next job) and spin. One access(2)
   * per job, and only for a job whose claim could not open its file for
   * writing (a claim that did open it may write it).
   */
  async #mayWrite(job: Job): Promise<boolean> {
    if (job.writable) return true;
    let denied: unknown;
    let stat: fs.Stats;
    try {
      fs.accessSync(job.path, fs.constants.W_OK);
      return true;
    } catch (error) {
      const code = errnoOf(error);
      if (code !== 'EACCES' && code !== 'EPERM' && code !== 'EROFS') return true; // gone (taken back), or for the ending to report
      denied = error;
    }
    try {
      stat = fs.statSync(job.path);
    } catch {
      return true; // gone meanwhile: the ending will say so
    }
    let where: string;
    let file = job.path; // where it is now, for the chmod the error names
    try {
      await job.release();
      this.#counts.released++;
      where = 'it was put back in queue/ without running';
      file = this.#layout!.file('queue', job.id);
    } catch (releaseError) {
      where = `putting it back failed (${(releaseError as Error).message}): a sweep takes it back once this pool has stopped`;
    }
    const { problem, fix } = unwritableJobFile(file, stat, queueMode(this.#layout!));
    const { code } = fsError(job.path, denied);
    this.#giveUp(
      new DirQueueError(
        code,
        `job ${job.id}: ${problem}, so it could not record an outcome; ${where}, and the pool stopped. Fix: ${fix}; then start the pool again`,
        {
          cause: denied,
        },
      ),
    );
    return false;
  }

  /**
   * Every worker is busy and the pool may grow: wait for a job (or a free
   * slot), and when a job comes first, start a worker for it. The job is
   * claimed before the worker starts, so a worker is added only for a job that
   * is really there, and it is the new worker's first job.
   */
  async #growForWaitingJob(): Promise<void> {
    const freed = new AbortController();
    this.#wake = () => freed.abort();
    const signal = AbortSignal.any([this.#stop.signal, freed.signal]);
    let jobs: Job[];
    try {
      jobs = await this.#claim(60_000, signal);
    } finally {
      this.#wake = undefined;
    }
    if (jobs.length === 0) return;
    if (!this.#hasSlot() && this.#mayGrow()) {
      this.#growing = this.#grow(jobs)
        .catch((error: unknown) => this.#report(error as Error))
        .finally(() => {
          this.#growing = undefined;
          this.#wake?.(); // every worker may be busy again: the pump sees whether to grow once more
        });
      return;
    }
    await this.#dispatchOrRelease(jobs);
  }

  /**
   * Start a worker and hand it `jobs` (claimed already) once it is ready. The
   * pump goes on meanwhile: a worker that frees up while a loaded machine
   * starts the new one takes the next job, rather than idling until it is
   * stopped as idle and the pool thrashes between sizes.
   */
  async #grow(jobs: readonly Job[]): Promise<void> {
    const host = this.#spawn();
    this.#hosts.push(host);
    try {
      await host.ready;
      this.emit('grew', this.workers);
    } catch (error) {
      if (this.#state === 'running') this.#giveUp(error as Error);
    }
    await this.#dispatchOrRelease(jobs);
  }

  /**
   * Run `jobs` when a slot is free and the pool is not closing; else put them back in queue/. Returns
   * a promise only when it has to wait (a release, or a job whose file it may not write): the usual
   * case dispatches at once, and the pump does not await.
   */
  #dispatchOrRelease(jobs: readonly Job[]): Promise<void> | undefined {
    if (this.#stop.signal.aborted || !this.#hasSlot()) return this.#releaseAllOf(jobs);
    if (jobs.every((job) => job.writable)) {
      this.#dispatch(jobs); // each claim holds its file open for writing: it may record the outcome
      return undefined;
    }
    return this.#mayWriteAll(jobs).then((may) => {
      if (may) this.#dispatch(jobs);
    });
  }

  async #releaseAllOf(jobs: readonly Job[]): Promise<void> {
    for (const job of jobs) await job.release();
  }

  #mayGrow(): boolean {
    return (
      this.#local === undefined &&
      this.#state === 'running' &&
      this.#growing === undefined &&
      this.workers < this.options.workers.max
    );
  }

  /** Stop the workers idle for idleTimeout, the longest idle first, down to min. */
  #shrinkIdle(): void {
    if (this.#state !== 'running') return;
    const now = Date.now();
    const idle = this.#hosts
      .filter((h) => h.isReady && !h.retiring && h.runs.size === 0 && !this.#checks.has(h))
      .filter((h) => now - h.idleSince >= this.options.idleTimeout)
      .sort((a, b) => a.idleSince - b.idleSince);
    for (const host of idle) {
      if (this.workers <= this.options.workers.min) break;
      this.#hosts.splice(this.#hosts.indexOf(host), 1);
      void host.terminate();
      this.emit('shrank', this.workers);
    }
  }

  #hasSlot(): boolean {
    if (this.#local !== undefined) return this.#inProcess < this.options.concurrency;
    return this.#pickHost() !== undefined;
  }

  /**
   * The worker with the fewest jobs; between idle ones the one that worked
   * last, so that a pool with more workers than work keeps the others idle and
   * an autoscaled pool can stop them.
   */
  #pickHost(): Host | undefined {
    let best: Host | undefined;
    for (const host of this.#hosts) {
      if (!host.isReady || host.retiring || this.#checks.has(host) || host.calls >= this.options.concurrency) continue;
      if (
        best === undefined ||
        host.runs.size < best.runs.size ||
        (host.runs.size === best.runs.size && host.idleSince > best.idleSince)
      )
        best = host;
    }
    return best;
  }

  /**
   * Run a claim: one job, or with batchSize a batch, in one processor call. Each job has its own run (its
   * outcome, its cancel); a batch's runs share the shortest timeout of its jobs, so they time out together.
   */
  #dispatch(jobs: readonly Job[]): void {
    const batch = this.options.batchSize > 1;
    const timeouts = jobs.map((job) => job.timeout ?? this.options.jobTimeout).filter((t) => t !== undefined);
    const timeout = timeouts.length === 0 ? undefined : Math.min(...timeouts);
    const runs = jobs.map((job) => this.#open(job, timeout));
    if (this.#local !== undefined) {
      for (const run of runs) run.controller = new LazyAbort();
      this.#inProcess++;
      const signals = runs.map((run) => run.controller!);
      const outcomes = batch
        ? runBatchInProcess(this.#local as unknown as BatchProcessor, jobs, this.#queue!, signals)
        : runInProcess(this.#local, jobs[0]!, this.#queue!, signals[0]!).then((outcome) => [outcome]);
      const ran = outcomes.then(async (each) => {
        this.#inProcess--;
        await Promise.all(runs.map((run, i) => this.#settle(run, each[i]!)));
      });
      if (this.options.runner.kind === 'exec') {
        this.#execRuns.add(ran);
        void ran.finally(() => this.#execRuns.delete(ran));
      }
    } else {
      const host = this.#pickHost()!;
      for (const run of runs) run.host = host;
      if (host.served + jobs.length >= this.options.maxJobsPerWorker) host.retiring = true;
      const answers = batch
        ? host.runBatch!(
            runs.map((run) => run.id),
            jobs.map(jobFields),
          )
        : [host.run(runs[0]!.id, jobFields(jobs[0]!))];
      runs.forEach((run, i) => {
        run.answered = answers[i]!.then(() => undefined);
        void answers[i]!.then((outcome) => this.#settle(run, outcome));
      });
    }
    for (const run of runs) this.#watchCancel(run);
  }

  /** A run for `job`, counted among the pool's runs, with its timer started. */
  #open(job: Job, timeout: number | undefined): Run {
    const run: Run = {
      id: this.#nextRun++,
      job,
      host: undefined,
      answered: Promise.resolve(),
      controller: undefined,
      timer: undefined,
      settled: false,
    };
    this.#runs.set(run.id, run);
    if (timeout !== undefined) run.timer = setTimeout(() => void this.#timedOut(run, timeout), timeout);
    return run;
  }

  /** A cancel (q.cancel, from any process or host) aborts the processor's signal of the job, in its worker or here. */
  #watchCancel(run: Run): void {
    const { job } = run;
    job.onCancel((reason) => {
      run.controller?.abort(reason);
      if (!run.settled) run.host?.abort(run.id, 'ECANCELLED', reason.message);
    });
  }

  /** End a run: record its outcome in the job file (first outcome wins), free its slot. */
  async #settle(run: Run, outcome: RunOutcome | 'release'): Promise<void> {
    if (run.settled) {
      this.#afterRun(run.host); // a late answer (after a timeout): its worker's slot is free now
      return;
    }
    run.settled = true;
    clearTimeout(run.timer);
    const { job } = run;
    const info: PoolJob = { id: job.id, type: job.type, attempt: job.attempt };
    try {
      if (job.cancelled) {
        // ends in failed/ with ECANCELLED whatever the processor did (job.ts), never retried
        const reason = job.signal.reason as DirQueueError;
        await this.#fail(job, info, { message: reason.message, code: 'ECANCELLED' });
      } else if (outcome === 'release') {
        await job.release();
        this.#counts.released++;
      } else if (outcome.ok) {
        try {
          await job.complete(outcome.result);
          this.#counts.completed++;
          this.emit('completed', info, outcome.result);
        } catch (error) {
          if ((error as DirQueueError).code !== 'EBADDATA') throw error;
          await this.#fail(job, info, recordError(error)); // a result JSON cannot hold is the job's error
        }
      } else {
        // recycleAfterError: a worker that failed a job may have been left in a bad state (AnyEvent::Task)
        if (this.options.recycleAfterError && run.host !== undefined) run.host.retiring = true;
        await this.#fail(job, info, outcome.error);
      }
    } catch (error) {
      if ((error as DirQueueError).code === 'ECOMPROMISED') {
        this.#counts.lost++;
        this.emit('lost', info, error as Error);
      } else {
        await this.#unrecorded(job, error as Error);
      }
    } finally {
      this.#runs.delete(run.id);
      this.#afterRun(run.host);
    }
  }

  /**
   * Ending a job failed for a reason of the filesystem (a full disk, a file
   * this process may not write): its outcome is not recorded. Never leave it
   * stranded in active/: put it back in queue/ (a rename, nothing appended),
   * and stop the pool, since a pool that cannot record outcomes would take
   * the job again at once and redo its work, forever. If even the rename
   * fails, the job stays held: close() tries again, and once this process has
   * gone a sweep takes it back.
   */
  async #unrecorded(job: Job, error: Error): Promise<void> {
    let where: string;
    try {
      await job.release();
      this.#counts.released++;
      where = 'it was put back in queue/ (attempt not counted) and will run again';
    } catch (releaseError) {
      where = `putting it back failed too (${(releaseError as Error).message}): it stays in active/ until a sweep takes it back after this pool has stopped`;
    }
    const code = (error as Partial<Pick<DirQueueError, 'code'>>).code ?? 'EFS';
    this.#giveUp(
      new DirQueueError(
        code,
        `job ${job.id}: its outcome could not be recorded: ${error.message}; ${where}. The pool stopped: fix the cause and start it again`,
        { cause: error },
      ),
    );
  }

  async #fail(job: Job, info: PoolJob, error: RecordedError): Promise<void> {
    const where = await job.fail(Object.assign(new Error(error.message), error));
    if (where === 'failed') {
      this.#counts.failed++;
      this.emit('failed', info, error);
    } else {
      this.#counts.retried++;
      this.emit('retrying', info, error);
    }
  }

  /**
   * A job ran past its timeout: abort it and fail its attempt (EJOBTIMEOUT),
   * then check its worker. While another job's timeout is checking the same
   * worker, this one waits for the verdict first: a worker stuck in
   * synchronous code also holds up its other jobs past their timeouts, and
   * they were not at fault, so they go back to queue/ with the worker instead
   * of failing. The pool cannot tell which of a worker's jobs is spinning; it
   * charges the one whose timeout fired first.
   */
  async #timedOut(run: Run, timeout: number): Promise<void> {
    const host = run.host;
    const verdict = host === undefined ? undefined : this.#checks.get(host);
    if (verdict !== undefined && (await verdict)) return; // replaced: released with its worker
    if (run.settled) return;
    const message = `the job ran longer than its timeout of ${timeout} ms`;
    run.controller?.abort(new DirQueueError('EJOBTIMEOUT', message));
    if (host === undefined) return this.#settle(run, { ok: false, error: { message, code: 'EJOBTIMEOUT' } });
    host.abort(run.id, 'EJOBTIMEOUT', message);
    const replaced = this.#checkHost(host, run);
    await this.#settle(run, { ok: false, error: { message, code: 'EJOBTIMEOUT' } });
    await replaced;
  }

  /**
   * Give the worker of a timed-out run stuckAfter ms to end it (one check at a
   * time per worker). A worker that has not by then is stuck in synchronous
   * code (it does not answer a ping either) or runs a job that ignores its
   * signal: its other jobs are released and it is stopped (a process gets
   * SIGTERM, then SIGKILL) and replaced. Resolves true when it was.
   */
  #checkHost(host: Host, run: Run): Promise<boolean> {
    let check = this.#checks.get(host);
    if (check === undefined) {
      const { stuckAfter } = this.options;
      const pinged = host.ping(stuckAfter);
      check = endsWithin(run.answered, stuckAfter).then(async (ended) => {
        const answered = ended || (await pinged);
        this.#checks.delete(host);
        if (ended) {
          this.#wake?.(); // it takes jobs again
          return false;
        }
        for (const other of this.#runs.values())
          if (other.host === host && !other.settled) void this.#settle(other, 'release');
        const why = answered
          ? `a job it ran ignored its signal for ${stuckAfter} ms after its timeout`
          : `it was stuck in synchronous code past a job's timeout (no answer within ${stuckAfter} ms)`;
        this.#report(new DirQueueError('ESTUCK', `a worker was stopped and replaced: ${why}`));
        this.#retire(host);
        return true;
      });
      this.#checks.set(host, check);
    }
    return check;
  }

  #afterRun(host: Host | undefined): void {
    if (host?.retiring && host.runs.size === 0) this.#retire(host);
    if (this.#runs.size === 0) this.#drained?.();
    this.#wake?.();
    this.#checkIdle();
  }

  /** Take `host` out of service and start a replacement (unless closing). */
  #retire(host: Host): void {
    const index = this.#hosts.indexOf(host);
    if (index === -1) return;
    this.#hosts.splice(index, 1);
    void host.terminate();
    if (this.#state === 'running') this.#replace();
  }

  #replace(): void {
    const fresh = this.#spawn();
    this.#hosts.push(fresh);
    fresh.ready.then(
      () => this.#wake?.(),
      (error: unknown) => {
        if (this.#state === 'running') this.#giveUp(error as Error); // else stopped while loading: the pool closes
      },
    );
  }

  #spawn(): Host {
    const { runner, middleware, resourceLimits } = this.options;
    let host: Host;
    if (runner.kind === 'thread' || runner.kind === 'process')
      host = new WorkerHost(runner.kind, { processor: runner.processor, middleware }, resourceLimits);
    else if (runner.kind === 'persistent') host = new PersistentHost(runner.command, { queueDir: this.dir });
    else throw new Error(`a ${runner.kind} pool has no workers to start`);
    host.on('call', (message) => void this.#answer(host, message));
    host.on('exit', (error) => {
      if (error === undefined || !this.#hosts.includes(host)) return;
      this.#hosts.splice(this.#hosts.indexOf(host), 1);
      this.#report(error);
      const now = Date.now();
      this.#crashes = this.#crashes.filter((t) => now - t < CRASH_WINDOW_MS).concat(now);
      if (this.#crashes.length > 3 * this.options.workers.max) {
        this.#giveUp(
          new DirQueueError(
            'EPROCESSOR',
            `workers died ${this.#crashes.length} times in ${CRASH_WINDOW_MS / 1000} s; the last: ${error.message}`,
          ),
        );
      } else if (this.#state === 'running') {
        this.#replace();
      }
    });
    return host;
  }

  /** Progress, log and child enqueues asked for by a job running in a thread. */
  async #answer(
    host: Host,
    message: { req: number; run: number; method: 'progress' | 'log' | 'enqueue'; args: unknown[] },
  ): Promise<void> {
    const run = this.#runs.get(message.run);
    try {
      if (run === undefined) throw new DirQueueError('EBADSTATE', 'the job has already ended');
      const [a, b, c] = message.args;
      let value: unknown;
      if (message.method === 'progress') await run.job.progress(a);
      else if (message.method === 'log') await run.job.log(a as string);
      else value = await this.#queue!.enqueue(a as string, b, withKeyFrom(c as EnqueueOptions | undefined, run.job.id));
      host.reply({ t: 'reply', req: message.req, ok: true, value });
    } catch (error) {
      const { message: text, code } = error as DirQueueError;
      host.reply({
        t: 'reply',
        req: message.req,
        ok: false,
        error: code === undefined ? { message: text } : { message: text, code },
      });
    }
  }

  #releaseAll(reason: string): void {
    for (const run of this.#runs.values()) {
      run.controller?.abort(new DirQueueError('ECLOSED', reason));
      run.host?.abort(run.id, 'ECLOSED', reason);
      void this.#settle(run, 'release');
    }
  }

  /** The processor cannot run: stop the pool with that error instead of respawning forever. */
  #giveUp(error: Error): void {
    if (this.#fatal !== undefined) return;
    this.#fatal = error;
    this.#report(error);
    void this.close({ timeout: 0 });
  }

  /** A notice, not an error (EPOLLING, EBADMODE, a bad file a sweep worked around): the 'warning' event. */
  #warn(warning: Error): void {
    if (this.listenerCount('warning') > 0) this.emit('warning', warning);
    else
      process.emitWarning(warning.message, {
        code: (warning as Partial<Pick<DirQueueError, 'code'>>).code ?? 'DIRQUEUE',
      });
  }

  #report(error: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', error);
    else
      process.emitWarning(error.message, { code: (error as Partial<Pick<DirQueueError, 'code'>>).code ?? 'DIRQUEUE' });
  }

  #isIdle(): boolean {
    return this.#state === 'closed' || (this.#nothingReady && this.#runs.size === 0);
  }

  #checkIdle(): void {
    if (this.#isIdle()) for (const resolve of this.#idleWaiters.splice(0)) resolve();
  }
}

/** Resolves true if `answered` settles within `ms`, false otherwise. */
function endsWithin(answered: Promise<void>, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    void answered.then(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

/** The queue's file mode from its settings, for the fix an error names; undefined when it has none or they cannot be read. */
function queueMode(layout: Layout): number | undefined {
  try {
    const mode = readSettings(layout.settingsPath)?.mode;
    return mode === undefined ? undefined : parseMode(mode);
  } catch {
    return undefined;
  }
}
