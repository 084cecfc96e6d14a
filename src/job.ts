/**
 * A claimed job: what a worker holds between claim and complete/fail/release.
 * Each ending is one rename out of active/ (I1). If the rename finds the
 * active file gone, another process recovered the claim: the call fails with
 * ECOMPROMISED and anything this claim appended is void (see envelope.ts).
 */
import { backoffDelay } from './backoff.js';
import { encodeEvent, parseJobFile, payloadOf, type BackoffSpec, type JobRecord } from './envelope.js';
import fs from 'node:fs';
import { CompromisedError, DirQueueError, errnoOf, fsError, recordError, type RecordedError } from './errors.js';
import { appendLine, move, readJobFile } from './files.js';
import { releaseKeyOf } from './keys.js';
import { checkJson } from './json-check.js';
import type { Layout } from './layout.js';
import { delayedName, type ParsedId } from './names.js';
import { queueDefaults, type BackoffFunction } from './options.js';

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
  #host: JobHost;
  #record: JobRecord;
  #activePath: string;
  #settled = false;
  /** When this process claimed the job, on its monotonic clock (performance.now()). */
  #claimedAt = performance.now();
  /** The claimed file, open for appending (undefined when we may only read it). */
  #fd: number | undefined;
  #endsWithNewline: boolean;

  /** @internal Made by Queue.claim. */
  constructor(
    host: JobHost,
    parsed: ParsedId,
    record: JobRecord,
    claim: string,
    activePath: string,
    file: { fd: number | undefined; endsWithNewline: boolean },
  ) {
    const { envelope } = record;
    this.#host = host;
    this.#record = record;
    this.#activePath = activePath;
    this.#fd = file.fd;
    this.#endsWithNewline = file.endsWithNewline;
    this.id = parsed.id;
    this.type = parsed.type;
    this.data = payloadOf(envelope) as Data;
    this.attempt = record.attemptsMade + 1;
    this.attempts = envelope.attempts ?? host.defaultAttempts;
    this.priority = parsed.priority;
    this.timeout = envelope.timeout ?? host.defaultTimeout;
    this.claim = claim;
    this.createdAt = envelope.created === undefined ? undefined : new Date(envelope.created);
  }

  /** The path of the job's file while this claim holds it. */
  get path(): string {
    return this.#activePath;
  }

  /** Record `result` and move the job to done/. */
  async complete(result?: unknown): Promise<void> {
    this.#assertHeld('complete');
    if (result !== undefined) checkJson(result, 'result'); // a bad result leaves the claim held, to fail or release
    this.#begin('complete');
    const event = { event: 'result' as const, at: new Date().toISOString(), attempt: this.attempt, claim: this.claim };
    this.#end(encodeEvent(result === undefined ? event : { ...event, value: result }), this.#host.layout.file('done', this.id));
    this.#host.counted(this.type, 'completed');
    releaseKeyOf(this.#host.layout, this.#record.envelope.key, this.id);
  }

  /**
   * Record `error` as this attempt's failure. The job goes to delayed/ (after
   * its backoff) or queue/ for another attempt, or to failed/ when its
   * attempts are used up. Resolves with where it went.
   */
  async fail(error?: unknown): Promise<JobOutcome> {
    this.#assertHeld('fail');
    const recorded = recordError(error);
    const exhausted = this.#record.attemptsSinceRetry + 1 >= this.attempts;
    const layout = this.#host.layout;
    const at = new Date();
    if (exhausted) {
      this.#begin('fail');
      this.#end(encodeEvent({ event: 'error', at: at.toISOString(), attempt: this.attempt, claim: this.claim, ...recorded }), layout.file('failed', this.id));
      this.#host.counted(this.type, 'failed');
      releaseKeyOf(layout, this.#record.envelope.key, this.id);
      return 'failed';
    }
    const retry = this.#retryAt(at.getTime(), recorded); // computed before the claim ends, so nothing it throws strands the job
    const line = encodeEvent({ event: 'error', at: at.toISOString(), attempt: this.attempt, claim: this.claim, ...recorded, retryAt: retry.iso });
    this.#begin('fail');
    if (retry.delayedName !== undefined) {
      this.#end(line, layout.file('delayed', retry.delayedName));
      this.#host.requeued(this.id, retry.delayedName);
    } else {
      this.#end(line, layout.file('queue', this.id));
      this.#host.requeued(this.id);
    }
    this.#host.counted(this.type, 'retried');
    return 'retrying';
  }

  /** Record how far the job has come (any JSON value), kept in its file. */
  async progress(value: unknown): Promise<void> {
    this.#assertHeld('progress');
    checkJson(value, 'progress');
    this.#append(encodeEvent({ event: 'progress', at: new Date().toISOString(), attempt: this.attempt, claim: this.claim, value }));
  }

  /** Keep a line of text with the job (its history shows it). */
  async log(line: string): Promise<void> {
    this.#assertHeld('log');
    this.#append(encodeEvent({ event: 'log', at: new Date().toISOString(), attempt: this.attempt, claim: this.claim, line: String(line) }));
  }

  /** True once complete, fail or release was called. */
  get settled(): boolean {
    return this.#settled;
  }

  /** Put the job back in queue/ unchanged; the attempt does not count. */
  async release(): Promise<void> {
    this.#begin('release');
    this.#end(undefined, this.#host.layout.file('queue', this.id));
    this.#host.requeued(this.id);
  }

  /**
   * @internal
   * True when the job has run `grace` ms past its timeout: its owner then takes
   * the claim back (Queue), since a worker that ignores its timeout holds the job forever.
   */
  overdue(now: number, grace: number): boolean {
    return !this.#settled && this.timeout !== undefined && now - this.#claimedAt > this.timeout + grace;
  }

  /**
   * @internal
   * The claim was taken back while this object still holds it: close the file.
   * The job's file has moved on, so complete, fail, release, progress and log
   * now throw ECOMPROMISED.
   */
  revoked(): void {
    this.#closeFile();
  }

  #assertHeld(what: string): void {
    if (this.#settled) {
      throw new DirQueueError('EBADSTATE', `job ${this.id}: ${what}() after the claim already ended; call one of complete, fail, release once`);
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
      if (!appendLine(this.#activePath, line)) throw this.#lost();
      return;
    }
    if (performance.now() - this.#claimedAt > this.#host.staleAfter / 2 && !this.#stillHere()) throw this.#lost();
    try {
      fs.writeSync(this.#fd, this.#endsWithNewline ? line : `\n${line}`);
      this.#endsWithNewline = true;
    } catch (error) {
      throw fsError(`appending to ${this.#activePath}`, error);
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

  #closeFile(): void {
    if (this.#fd === undefined) return;
    fs.closeSync(this.#fd);
    this.#fd = undefined;
  }

  #begin(what: string): void {
    this.#assertHeld(what);
    this.#settled = true;
    this.#host.settled(this);
  }

  /** Append `line` (if any) and rename to `target`: the one rename that ends the claim. */
  #end(line: string | undefined, target: string): void {
    try {
      if (line !== undefined) this.#append(line);
    } finally {
      this.#closeFile();
    }
    if (!move(this.#activePath, target) && !(line !== undefined && this.#landed(target))) throw this.#lost();
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
      return { iso: new Date(retryAt).toISOString(), delayedName: delay > 0 ? delayedName(Math.round(retryAt * 1000), this.id) : undefined };
    };
    const spec = this.#record.envelope.backoff ?? this.#host.defaultBackoff;
    try {
      return at(backoffDelay(spec, this.attempt, recorded));
    } catch (error) {
      const why = typeof spec === 'function' ? 'the backoff function threw or gave a wait out of range' : 'the backoff gave a wait out of range';
      this.#host.warn(
        new DirQueueError('EBADOPTION', `job ${this.id}: ${why} (${(error as Error)?.message ?? String(error)}); the default backoff was used; give a number of ms`, { cause: error }),
      );
      return at(backoffDelay(queueDefaults.backoff, this.attempt, recorded));
    }
  }

  #lost(): CompromisedError {
    return new CompromisedError(
      `job ${this.id}: the claim ${this.claim} was taken back (its worker went silent, or the job ran past its timeout); this run's outcome is not recorded`,
    );
  }
}
