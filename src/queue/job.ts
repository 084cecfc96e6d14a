/**
 * A claimed job: what a worker holds between claim and complete/fail/release.
 * Each ending is one rename out of active/ (I1). If the rename finds the
 * active file gone, another process recovered the claim: the call fails with
 * ECOMPROMISED and anything this claim appended is void (see envelope.ts).
 *
 * An ending that fails (a full disk: ENOSPC on the append or the rename)
 * leaves the job as it was: still held, its file without the line, so the
 * holder can end it another way (fail, release) and close() releases it.
 * The claim is over only once its rename landed, or once it is known lost.
 */
import { backoffDelay } from './backoff.js';
import {
  encodeEvent,
  parseJobFile,
  payloadOf,
  groupOf,
  coalesceOf,
  scheduleOf,
  type BackoffSpec,
  type BatchOutcome,
  type Envelope,
  type JobRecord,
  type ParentOutcome,
  type ScheduleRef,
} from '../store/envelope.js';
import fs from 'node:fs';
import { dirname } from 'node:path';
import { CompromisedError, DirQueueError, errnoOf, fsError, recordError, type RecordedError } from '../store/errors.js';
import {
  appendAll,
  appendLine,
  closeFile,
  closeQuietly,
  move,
  readJobFile,
  tailOf,
  truncateFile,
  type Tail,
} from '../store/files.js';
import { releaseKeyOf } from '../store/keys.js';
import { removeCancel } from '../store/cancels.js';
import { checkJson } from '../store/json-check.js';
import type { Layout } from '../store/layout.js';
import { delayedName, type ParsedId } from '../store/names.js';
import { queueDefaults, type BackoffFunction } from './options.js';
import { LazyAbort } from './lazy-abort.js';

/** What a Job needs from the Queue that claimed it. */
export interface JobHost {
  readonly layout: Layout;
  readonly defaultAttempts: number;
  readonly defaultBackoff: BackoffSpec | BackoffFunction;
  readonly defaultTimeout: number | undefined;
  /** The queue's staleAfter: a claim held longer may have been taken back by a sweep elsewhere. */
  readonly staleAfter: number;
  /** The job went back to queue/ (or to delayed/ under `delayed`). */
  requeued(id: string, delayed?: string): void;
  /** The claim ended (completed, failed, released or found lost). */
  settled(job: Job): void;
  /** Count an ending for the lifetime totals. */
  counted(type: string, counter: 'completed' | 'retried' | 'failed'): void;
  /** Report a problem that did not stop the job (the Queue's 'warning' event). */
  warn(error: Error): void;
  /** durable 'all': endings fdatasync their line, rename, and fsync the new name's directory before they resolve. */
  readonly durableEndings: boolean;
  /** fsync these directories (group commit with the queue's other syncs). */
  syncDirs(dirs: readonly string[]): Promise<void>;
  /** The job ended in done/ or failed/: mark its batch, release what waits for it (store/release.ts). */
  ended(id: string, envelope: Envelope, state: 'done' | 'failed'): void;
}

export type JobOutcome = 'completed' | 'retrying' | 'failed' | 'released';

export class Job<Data = unknown> {
  readonly id: string;
  readonly type: string;
  readonly data: Data;
  /** 1 on the first run; counts every earlier attempt that ended in an error, timeout or crash. */
  readonly attempt: number;
  /** The most attempts this job gets before it goes to failed/. */
  readonly attempts: number;
  readonly priority: number;
  /** The run limit in ms, if any. */
  readonly timeout: number | undefined;
  /** The claim token: HOST.PID.NONCE.SEQ. */
  readonly claim: string;
  readonly createdAt: Date | undefined;
  /** A job made by a schedule: its name and the slot (ISO 8601) it runs for. */
  readonly schedule: ScheduleRef | undefined;
  /** The group the job was enqueued with (enqueue's `group`), if any. */
  readonly group: string | undefined;
  /** A job enqueued with `after`: how each job it waited for ended (id, state, result or error). */
  readonly parents: ParentOutcome[] | undefined;
  /** A batch's callback (enqueueBatch's onComplete, onSuccess): how its batch ended. */
  readonly batch: BatchOutcome | undefined;
  /** The coalesce key the job was enqueued with (enqueue's `coalesce`), if any. */
  readonly coalesce: string | undefined;
  #host: JobHost;
  #record: JobRecord;
  #activePath: string;
  /** held until an ending's rename lands (ended) or the claim is known gone (lost, with why). */
  #state: 'held' | 'ended' | 'lost' = 'held';
  #lostWhy = '';
  /** When this process claimed the job, on its monotonic clock (performance.now()). */
  #claimedAt = performance.now();
  /** The claimed file, open for appending (undefined when we may only read it). */
  #fd: number | undefined;
  /** Where the file ends as this claim wrote it: an append or an ending that fails is cut back to it. */
  #tail: Tail;
  /** Aborted (reason: an ECANCELLED DirQueueError) once the job is cancelled (q.cancel, from any process or host). */
  #cancel = new LazyAbort();
  /** A durable ending (durable 'all') until it is on disk: the claim takes no other call meanwhile. */
  #ending: Promise<void> | undefined;

  /** @internal Made by Queue.claim. */
  constructor(
    host: JobHost,
    parsed: ParsedId,
    record: JobRecord,
    claim: string,
    activePath: string,
    file: { fd: number | undefined; tail: Tail },
  ) {
    const { envelope } = record;
    this.#host = host;
    this.#record = record;
    this.#activePath = activePath;
    this.#fd = file.fd;
    this.#tail = file.tail;
    this.id = parsed.id;
    this.type = parsed.type;
    this.data = payloadOf(envelope) as Data;
    this.attempt = record.attemptsMade + 1;
    this.attempts = envelope.attempts ?? host.defaultAttempts;
    this.priority = parsed.priority;
    this.timeout = envelope.timeout ?? host.defaultTimeout;
    this.claim = claim;
    this.createdAt = envelope.created === undefined ? undefined : new Date(envelope.created);
    this.schedule = scheduleOf(envelope);
    this.group = groupOf(envelope);
    this.parents = record.released?.parents;
    this.batch = record.released?.batch;
    this.coalesce = coalesceOf(envelope);
  }

  /**
   * Aborts when the job is cancelled (q.cancel, dirq cancel) from any process
   * or host; its reason is a DirQueueError with code ECANCELLED. Once it has
   * aborted, every ending (complete, fail, release) ends the job in failed/
   * with that error: a cancelled job is never retried.
   */
  get signal(): AbortSignal {
    return this.#cancel.signal;
  }

  /** True once the job was cancelled: see `signal`. */
  get cancelled(): boolean {
    return this.#cancel.aborted;
  }

  /**
   * @internal
   * Call `listener` once when the job is cancelled (at once if it was), without making its signal:
   * the pool's way to pass a cancel on to the processor's own signal.
   */
  onCancel(listener: (reason: DirQueueError) => void): void {
    this.#cancel.onAbort(() => listener(this.#cancel.reason as DirQueueError));
  }

  /**
   * @internal
   * A cancel request for this claim was seen (Queue, at a heartbeat or at once
   * in the cancelling process): abort the signal.
   */
  cancelRequested(by: string | undefined): void {
    if (this.#state !== 'held' || this.cancelled) return;
    this.#cancel.abort(
      new DirQueueError('ECANCELLED', `job ${this.id} was cancelled${by === undefined ? '' : ` by ${by}`}`),
    );
  }

  /** The path of the job's file while this claim holds it. */
  get path(): string {
    return this.#activePath;
  }

  /** Record `result` and move the job to done/. */
  async complete(result?: unknown): Promise<void> {
    this.#assertHeld('complete');
    if (this.cancelled) {
      await this.#endCancelled(undefined);
      return;
    }
    if (result !== undefined) checkJson(result, 'result'); // a bad result leaves the claim held, to fail or release
    const event = { event: 'result' as const, at: new Date().toISOString(), attempt: this.attempt, claim: this.claim };
    await this.#end(
      encodeEvent(result === undefined ? event : { ...event, value: result }),
      this.#host.layout.file('done', this.id),
    );
    this.#host.counted(this.type, 'completed');
    releaseKeyOf(this.#host.layout, this.#record.envelope.key, this.id);
    this.#host.ended(this.id, this.#record.envelope, 'done');
  }

  /**
   * Record `error` as this attempt's failure. The job goes to delayed/ (after
   * its backoff) or queue/ for another attempt, or to failed/ when its
   * attempts are used up. Resolves with where it went.
   */
  async fail(error?: unknown): Promise<JobOutcome> {
    this.#assertHeld('fail');
    if (this.cancelled) return this.#endCancelled(error);
    const recorded = recordError(error);
    const exhausted = this.#record.attemptsSinceRetry + 1 >= this.attempts;
    const layout = this.#host.layout;
    const at = new Date();
    if (exhausted) {
      await this.#end(
        encodeEvent({ event: 'error', at: at.toISOString(), attempt: this.attempt, claim: this.claim, ...recorded }),
        layout.file('failed', this.id),
      );
      this.#host.counted(this.type, 'failed');
      releaseKeyOf(layout, this.#record.envelope.key, this.id);
      this.#host.ended(this.id, this.#record.envelope, 'failed');
      return 'failed';
    }
    const retry = this.#retryAt(at.getTime(), recorded); // computed before the claim ends, so nothing it throws strands the job
    const line = encodeEvent({
      event: 'error',
      at: at.toISOString(),
      attempt: this.attempt,
      claim: this.claim,
      ...recorded,
      retryAt: retry.iso,
    });
    if (retry.delayedName !== undefined) {
      await this.#end(line, layout.file('delayed', retry.delayedName));
      this.#host.requeued(this.id, retry.delayedName);
    } else {
      await this.#end(line, layout.file('queue', this.id));
      this.#host.requeued(this.id);
    }
    this.#host.counted(this.type, 'retried');
    return 'retrying';
  }

  /**
   * End a cancelled job in failed/ with ECANCELLED, whatever its processor
   * did (the processor's own error, if any, is kept in the message), then
   * remove the cancel request.
   */
  async #endCancelled(error: unknown): Promise<'failed'> {
    const reason = this.#cancel.reason as DirQueueError;
    const said = error === undefined ? undefined : recordError(error).message;
    const message = said === undefined || said === reason.message ? reason.message : `${reason.message} (${said})`;
    const layout = this.#host.layout;
    await this.#end(
      encodeEvent({
        event: 'error',
        at: new Date().toISOString(),
        attempt: this.attempt,
        claim: this.claim,
        message,
        code: 'ECANCELLED',
      }),
      layout.file('failed', this.id),
    );
    this.#host.counted(this.type, 'failed');
    releaseKeyOf(layout, this.#record.envelope.key, this.id);
    removeCancel(layout, this.id, this.claim);
    this.#host.ended(this.id, this.#record.envelope, 'failed');
    return 'failed';
  }

  /** Record how far the job has come (any JSON value), kept in its file. */
  async progress(value: unknown): Promise<void> {
    this.#assertHeld('progress');
    checkJson(value, 'progress');
    this.#append(
      encodeEvent({ event: 'progress', at: new Date().toISOString(), attempt: this.attempt, claim: this.claim, value }),
    );
  }

  /** Keep a line of text with the job (its history shows it). */
  async log(line: string): Promise<void> {
    this.#assertHeld('log');
    this.#append(
      encodeEvent({
        event: 'log',
        at: new Date().toISOString(),
        attempt: this.attempt,
        claim: this.claim,
        line: String(line),
      }),
    );
  }

  /**
   * @internal
   * Whether the claim holds its file open for writing: the open(2) with O_RDWR that made the claim
   * succeeded, so this process may record the job's outcome (a file it may only read is held by path).
   */
  get writable(): boolean {
    return this.#fd !== undefined;
  }

  /** True once the claim ended: complete, fail or release succeeded, or the claim was lost (taken back, or the queue closed). */
  get settled(): boolean {
    return this.#state !== 'held';
  }

  /** Put the job back in queue/ unchanged; the attempt does not count. */
  async release(): Promise<void> {
    this.#assertHeld('release');
    if (this.cancelled) {
      await this.#endCancelled(undefined);
      return;
    }
    await this.#end(undefined, this.#host.layout.file('queue', this.id));
    this.#host.requeued(this.id);
  }

  /**
   * @internal
   * The queue is closing: put the job back in queue/ as release does. From
   * now on the holder's complete, fail, release, progress and log throw
   * ECOMPROMISED, since the job may already run elsewhere. If the rename
   * fails, the file stays in active/ without a heartbeat, for a sweep.
   */
  async releaseOnClose(): Promise<void> {
    if (this.#ending !== undefined) await this.#ending.catch(() => undefined); // a durable ending in flight: let it land
    if (this.#state !== 'held') return;
    try {
      await this.release();
    } finally {
      this.#state = 'lost';
      this.#lostWhy = 'the queue was closed while the job was held (close() puts held jobs back in queue/)';
      this.#host.settled(this);
      this.#closeFile();
    }
  }

  /**
   * @internal
   * True when the job has run `grace` ms past its timeout: its owner then takes
   * the claim back (Queue), since a worker that ignores its timeout holds the job forever.
   * Asked only of jobs the Queue still holds (a take-back that failed is asked again).
   */
  overdue(now: number, grace: number): boolean {
    return this.timeout !== undefined && now - this.#claimedAt > this.timeout + grace;
  }

  /**
   * @internal
   * The claim was taken back while this object still holds it: close the file.
   * The job's file has moved on, so complete, fail, release, progress and log
   * now throw ECOMPROMISED.
   */
  revoked(): void {
    this.#state = 'lost';
    this.#lostWhy = `it ran past its timeout of ${this.timeout!} ms and staleAfter more, so this process took the claim back`;
    this.#closeFile();
  }

  #assertHeld(what: string): void {
    if (this.#state === 'lost') throw this.#compromised();
    if (this.#ending !== undefined) {
      throw new DirQueueError(
        'EBADSTATE',
        `job ${this.id}: ${what}() while the claim's ending is being made durable; call one of complete, fail, release once`,
      );
    }
    if (this.#state === 'ended') {
      throw new DirQueueError(
        'EBADSTATE',
        `job ${this.id}: ${what}() after the claim already ended; call one of complete, fail, release once`,
      );
    }
  }

  /**
   * Append through the descriptor held since the claim. A claim held for
   * longer than staleAfter/2 (its process may have been frozen past
   * staleAfter) first checks that its file is still at its active path, so a
   * worker resumed after its claim was taken back writes nothing. In the race
   * that remains, the line lands in the recovered file, where the
   * recoverer's revoked event voids it (envelope.ts), and the rename that
   * follows fails.
   */
  #append(line: string): void {
    if (this.#fd === undefined) {
      const tail = appendLine(this.#activePath, line, this.#host.layout.fileMode);
      if (tail === undefined) throw this.#lose();
      this.#tail = tail;
      return;
    }
    if (performance.now() - this.#claimedAt > this.#host.staleAfter / 2 && !this.#stillHere()) throw this.#lose();
    try {
      this.#tail = appendAll(this.#fd, line, this.#tail, this.#activePath);
    } catch (error) {
      try {
        this.#tail = tailOf(this.#fd); // cut back as it was, unless the cut failed: then the next line starts a new one
      } catch {
        // the append's error is the one to report
      }
      throw error;
    }
  }

  /** Whether the file at our active path is still the one we hold open (not taken back and moved on). */
  #stillHere(): boolean {
    try {
      return fs.statSync(this.#activePath).ino === fs.fstatSync(this.#fd!).ino;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return false;
      throw fsError(`checking the claim ${this.#activePath}`, error);
    }
  }

  /** Whether the held file has other names than its active one (a hard link: see move's mayHaveOtherNames); one fstat. */
  #hasOtherNames(): boolean {
    if (this.#fd === undefined) return true; // not held open: assume it may
    try {
      return fs.fstatSync(this.#fd).nlink > 1;
    } catch {
      return true;
    }
  }

  /** Close the claimed file when this claim will write no more through it (lost, or closing): a failure changes nothing. */
  #closeFile(): void {
    if (this.#fd === undefined) return;
    closeQuietly(this.#fd);
    this.#fd = undefined;
  }

  /**
   * Append `line` (if any) and rename to `target`: the one rename that ends
   * the claim. The file is closed before the rename, so on NFS its data
   * reaches the server (close-to-open) before the name does. If the append
   * or the rename fails, the line is cut off again and the job stays held.
   * With durable 'all' (#endDurably) it resolves once the ending is on disk;
   * otherwise it is done when it returns.
   */
  #end(line: string | undefined, target: string): Promise<void> | undefined {
    const before = this.#tail;
    if (line !== undefined) this.#append(line);
    if (this.#host.durableEndings) {
      const ending = this.#endDurably(line, target, before).finally(() => (this.#ending = undefined));
      this.#ending = ending;
      return ending;
    }
    this.#rename(line, target, before);
    return undefined;
  }

  /**
   * The appended line's fdatasync, the rename, then an fsync of the new
   * name's directory (shared with the other endings in flight: group
   * commit). The file is synced before the rename, so no reader on any host
   * sees the new name without the line, and a cut leaves the job in active/
   * (a sweep puts it back to run again: its outcome was never acknowledged)
   * or at its new name with the line. active/ is not synced: where the old
   * name's removal is not on disk with the new name (btrfs kept it even with
   * active/ fsynced too: README, "Power cuts"), the cut leaves one file at
   * both names, and the sweep removes the claim's (maintenance/rescue.ts).
   * On ext4 and xfs one journal transaction holds both; a second directory
   * fsync made a durable drain at concurrency 1 on ext4 here 1.28k/s against
   * 1.62k/s without (median of 5).
   */
  async #endDurably(line: string | undefined, target: string, before: Tail): Promise<void> {
    if (line !== undefined) {
      try {
        await this.#syncFile();
      } catch (error) {
        if (this.#state === 'held') this.#cutBack(before); // not when lost: the file has moved on
        throw error;
      }
    }
    this.#rename(line, target, before);
    await this.#host.syncDirs([dirname(target)]);
  }

  /** fdatasync the job file: through the claim's descriptor, or one opened for it (a file held read-only). */
  async #syncFile(): Promise<void> {
    const held = this.#fd;
    let fd = held;
    try {
      fd ??= fs.openSync(this.#activePath, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
      const opened = fd;
      await new Promise<void>((resolve, reject) =>
        fs.fdatasync(opened, (error) => (error ? reject(error) : resolve())),
      );
    } catch (error) {
      if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ELOOP') throw this.#lose(); // taken back meanwhile
      throw fsError(`syncing the job file ${this.#activePath}`, error);
    } finally {
      if (held === undefined && fd !== undefined) closeQuietly(fd);
    }
  }

  #rename(line: string | undefined, target: string, before: Tail): void {
    const linked = this.#hasOtherNames();
    let moved: boolean;
    try {
      // the claim writes no more through its descriptor, whatever happens: a later ending appends by path
      const fd = this.#fd;
      this.#fd = undefined;
      if (fd !== undefined) closeFile(fd, `closing the job file ${this.#activePath}`);
      moved = move(this.#activePath, target, false, linked);
    } catch (error) {
      if (line !== undefined) this.#cutBack(before);
      throw error;
    }
    if (!moved && !(line !== undefined && this.#landed(target))) throw this.#lose();
    this.#state = 'ended';
    this.#host.settled(this);
  }

  /**
   * After a failed rename: take the ending's line out of the file again, so
   * a later fail or release does not leave a result or an error that never
   * happened. If even that fails the line stays; a later ending's own line
   * comes after it, and the last outcome is what counts (envelope.ts).
   */
  #cutBack(before: Tail): void {
    try {
      truncateFile(this.#activePath, before.size);
      this.#tail = before;
    } catch (error) {
      this.#host.warn(error as Error);
    }
  }

  /** The claim is gone (taken back by a sweep): no call on it can count any more. */
  #lose(): CompromisedError {
    if (this.#state === 'held') {
      this.#state = 'lost';
      this.#lostWhy = `the claim ${this.claim} was taken back (its worker went silent, or the job ran past its timeout)`;
      this.#host.settled(this);
    }
    this.#closeFile();
    return this.#compromised();
  }

  /**
   * After a rename reported lost: did it in fact land? On NFS a lost reply
   * makes the retransmitted rename find its source gone (RFC 1813 4.5). It
   * landed if `target` holds this claim's result or error and no revoke of it.
   */
  #landed(target: string): boolean {
    const read = readJobFile(target, Number.MAX_SAFE_INTEGER);
    if (!read.ok) return false;
    try {
      const { events } = parseJobFile(read.text);
      const ours = events.some((e) => (e.event === 'result' || e.event === 'error') && e.claim === this.claim);
      return ours && !events.some((e) => e.event === 'revoked' && e.claim === this.claim);
    } catch {
      return false;
    }
  }

  /**
   * When the next attempt may run, `failedAt` + the backoff: its time, and its
   * delayed/ name unless it may run at once. A backoff function that throws,
   * or a wait too long to write down (past the year 2286), must not strand
   * the job in active/: the built-in default backoff stands in, and the Queue
   * reports why as a warning.
   */
  #retryAt(failedAt: number, recorded: RecordedError): { iso: string; delayedName: string | undefined } {
    const at = (delay: number): { iso: string; delayedName: string | undefined } => {
      const retryAt = failedAt + delay;
      return {
        iso: new Date(retryAt).toISOString(),
        delayedName: delay > 0 ? delayedName(Math.round(retryAt * 1000), this.id) : undefined,
      };
    };
    const spec = this.#record.envelope.backoff ?? this.#host.defaultBackoff;
    try {
      return at(backoffDelay(spec, this.attempt, recorded));
    } catch (error) {
      const why =
        typeof spec === 'function'
          ? 'the backoff function threw or gave a wait out of range'
          : 'the backoff gave a wait out of range';
      this.#host.warn(
        new DirQueueError(
          'EBADOPTION',
          `job ${this.id}: ${why} (${(error as Error)?.message ?? String(error)}); the default backoff was used; give a number of ms`,
          { cause: error },
        ),
      );
      return at(backoffDelay(queueDefaults.backoff, this.attempt, recorded));
    }
  }

  #compromised(): CompromisedError {
    return new CompromisedError(`job ${this.id}: ${this.#lostWhy}; this run's outcome is not recorded`);
  }
}
