/**
 * The content of a job file (FORMAT.md, "File content"): line 1 is the
 * envelope, a JSON object written once when the job is enqueued; every later
 * line is one event appended by whoever holds the job (a result, an error, a
 * revoked claim, an admin retry). A job costs one file creation in its whole
 * life: claims, results and retries move or append to the same file.
 *
 * Fencing lives here too: events carry the claim token that wrote them, and a
 * `revoked` event voids every event of the claim it names, so a worker whose
 * claim was recovered cannot leave a result or an error that counts.
 */
import { DirQueueError, type DirQueueErrorCode, type RecordedError } from './errors.js';

export type BackoffSpec =
  { type: 'fixed'; delay: number } | { type: 'exponential'; delay: number; max?: number; jitter?: number };

export interface Envelope {
  type?: string;
  /** JSON payload; absent when the job has `bytes` or no data. */
  data?: unknown;
  /** A raw payload, base64. */
  bytes?: string;
  created?: string;
  attempts?: number;
  backoff?: BackoffSpec;
  timeout?: number;
  /** The unique key the job holds while it is live (keys/). */
  key?: string;
  /** A job made by a schedule: the schedule's name and the slot (ISO 8601) it runs for. */
  schedule?: ScheduleRef;
  /** The group the job takes turns with (round robin between the groups of one type and priority). */
  group?: string;
  /** The coalesce key: claimMany({ coalesce: true }) claims the ready jobs of one type and key together. */
  coalesce?: string;
  /** The jobs this one waits for in waiting/ (enqueue's `after`): it is released once all have ended. */
  after?: string[];
  /** 'run': released to run even when a parent failed (or was removed); absent: failed with EPARENTFAILED. */
  afterFailed?: 'run';
  /** The batch this job is a member of (enqueueBatch): its ending is marked in batches/ID/. */
  batch?: string;
  /** A batch's callback (enqueueBatch's onComplete or onSuccess): it waits in waiting/ until the batch has ended. */
  onBatch?: BatchCallbackRef;
}

/** Which batch a callback job is for, and when it runs: once every member ended, or only if all succeeded. */
export interface BatchCallbackRef {
  id: string;
  when: 'complete' | 'success';
}

/** How a job this one waited for ended, as its release recorded it (Job.parents). */
export interface ParentOutcome {
  id: string;
  /** removed: the parent was deleted (dirq rm, purge, pruned) before it was seen to end. */
  state: 'done' | 'failed' | 'removed';
  /** done: its result (absent when it completed with none, or with `truncated`). */
  result?: unknown;
  /** failed: its last error. */
  error?: RecordedError;
}

/** Parents' outcomes without their results (a release whose results would make the file too large). */
export function withoutResults(parents: readonly ParentOutcome[]): ParentOutcome[] {
  return parents.map((p) => {
    const slim = { ...p };
    delete slim.result;
    return slim;
  });
}

/** How a batch ended, as the release of its callback recorded it (Job.batch). */
export interface BatchOutcome {
  id: string;
  total: number;
  done: number;
  /** Members that failed for good, were cancelled or were removed. */
  failed: number;
  /** The ids of the failed members (the first 1,000). */
  failedIds: string[];
}

/** Which schedule made a job, and for which slot. */
export interface ScheduleRef {
  name: string;
  /** The slot, ISO 8601. */
  at: string;
}

/** The envelope's `schedule`, when it has the right shape (a hand-written one may not: then it is ignored). */
export function scheduleOf(envelope: Envelope): ScheduleRef | undefined {
  const s = envelope.schedule as unknown;
  if (s === null || typeof s !== 'object') return undefined;
  const { name, at } = s as Record<string, unknown>;
  return typeof name === 'string' && typeof at === 'string' ? { name, at } : undefined;
}

/** The envelope's `group`, when it is a string (a hand-written one of another kind is ignored). */
export function groupOf(envelope: Envelope): string | undefined {
  return typeof envelope.group === 'string' ? envelope.group : undefined;
}

/** The envelope's `coalesce`, when it is a string (a hand-written one of another kind is ignored). */
export function coalesceOf(envelope: Envelope): string | undefined {
  return typeof envelope.coalesce === 'string' ? envelope.coalesce : undefined;
}

export type RevokeReason = 'crashed' | 'timeout' | 'stalled';

export type JobEvent =
  | { event: 'result'; at: string; attempt: number; claim: string; value?: unknown }
  | ({ event: 'error'; at: string; attempt: number; claim: string; retryAt?: string } & RecordedError)
  | { event: 'revoked'; at: string; attempt: number; claim: string; reason: RevokeReason; by: string }
  | { event: 'invalid'; at: string; reason: string }
  | { event: 'retry'; at: string }
  | { event: 'torn'; at: string; reason: string }
  | { event: 'progress'; at: string; attempt: number; claim: string; value: unknown }
  | { event: 'log'; at: string; attempt: number; claim: string; line: string }
  | {
      event: 'released';
      at: string;
      claim: string;
      parents?: ParentOutcome[];
      batch?: BatchOutcome;
      /** Results left out: with them the file would pass maxJobBytes. */
      truncated?: boolean;
    };

/** What a job file says once its events are replayed. */
export interface JobRecord {
  envelope: Envelope;
  events: JobEvent[];
  /** Attempts that ended (errors and revoked claims, voided ones excluded). */
  attemptsMade: number;
  /** Attempts that ended since the last admin retry: what counts against `attempts`. */
  attemptsSinceRetry: number;
  result: { value: unknown } | undefined;
  errors: RecordedError[];
  /** Why the file was set aside, if a reader found it invalid. */
  invalid: string | undefined;
  /**
   * The last event that ends a run, leaving out those a revoke voids: a
   * `result`, an `error`, a `revoked` claim, or a `torn` put-back. A job in
   * done/ is proven complete only when this is 'result' (see tornReason).
   */
  lastOutcome: 'result' | 'error' | 'revoked' | 'torn' | undefined;
  /** The first `released` event: how the jobs it waited for (or its batch) ended. */
  released: Extract<JobEvent, { event: 'released' }> | undefined;
}

export function encodeEnvelope(envelope: Envelope): string {
  return `${JSON.stringify(envelope)}\n`;
}

export function encodeEvent(event: JobEvent): string {
  return `${JSON.stringify(event)}\n`;
}

/**
 * A crash tears at most the one line being appended, so a job file's
 * history holds a few torn lines at most. Each costs a thrown SyntaxError
 * (about 3 us): a 16 MB file of junk lines that start like JSON would hold
 * the event loop for tens of seconds, close to staleAfter. Past this many,
 * the file is not a job's history and parseJobFile refuses it.
 */
export const MAX_TORN_LINES = 1000;

/**
 * Parse a job file. Throws EBADDATA with the reason when line 1 is not an
 * envelope, or when more than MAX_TORN_LINES later lines are torn. A later
 * line that does not parse (a write torn by a crash) is skipped; so is a
 * line that does not start with `{` (after blanks), without parsing it: it
 * cannot be an event, and junk costs a scan, not an exception per line.
 */
export function parseJobFile(text: string): JobRecord {
  const newline = text.indexOf('\n');
  const first = newline === -1 ? text : text.slice(0, newline);
  const envelope = parseEnvelope(first);
  const events: JobEvent[] = [];
  let torn = 0;
  for (let start = newline === -1 ? text.length : newline + 1; start < text.length;) {
    let end = text.indexOf('\n', start);
    if (end === -1) end = text.length;
    let at = start;
    while (at < end && isBlank(text.charCodeAt(at))) at++;
    if (text.charCodeAt(at) === OPEN_BRACE && at < end) {
      const event = parseLine(text.slice(at, end));
      if (event === undefined) {
        if (++torn > MAX_TORN_LINES)
          throw bad(
            `more than ${MAX_TORN_LINES} lines after line 1 are not JSON (a crash tears at most one line): this is not a job's history`,
          );
      } else if (isEvent(event)) {
        events.push(event); // a line of an unknown shape is skipped like a torn one
      }
    }
    start = end + 1;
  }
  return replay(envelope, events);
}

const OPEN_BRACE = 0x7b;

function isBlank(code: number): boolean {
  return code === 0x20 || code === 0x09 || code === 0x0d;
}

/** A line's JSON value, or undefined when it does not parse (a torn append). */
function parseLine(line: string): unknown {
  try {
    return JSON.parse(line);
  } catch {
    return undefined;
  }
}

const REVOKE_REASONS: readonly string[] = ['crashed', 'timeout', 'stalled'];

function isEvent(value: unknown): value is JobEvent {
  if (value === null || typeof value !== 'object') return false;
  const e = value as Record<string, unknown>;
  const claimed = typeof e.claim === 'string' && typeof e.attempt === 'number';
  switch (e.event) {
    case 'result':
      return claimed;
    case 'error':
      return claimed && typeof e.message === 'string';
    case 'revoked':
      return claimed && typeof e.reason === 'string' && REVOKE_REASONS.includes(e.reason);
    case 'invalid':
      return typeof e.reason === 'string';
    case 'retry':
      return true;
    case 'torn':
      return typeof e.reason === 'string';
    case 'progress':
      return claimed;
    case 'log':
      return claimed && typeof e.line === 'string';
    case 'released':
      return typeof e.claim === 'string' && (e.parents === undefined || Array.isArray(e.parents));
    default:
      return false;
  }
}

function replay(envelope: Envelope, events: JobEvent[]): JobRecord {
  const voided = new Set<string>();
  for (const e of events) if (e.event === 'revoked') voided.add(e.claim);
  let attemptsMade = 0;
  let attemptsSinceRetry = 0;
  let result: JobRecord['result'];
  let invalid: string | undefined;
  let lastOutcome: JobRecord['lastOutcome'];
  let released: JobRecord['released'];
  const errors: RecordedError[] = [];
  for (const e of events) {
    switch (e.event) {
      case 'result':
        if (voided.has(e.claim)) break;
        result = 'value' in e ? { value: e.value } : { value: undefined };
        lastOutcome = 'result';
        break;
      case 'error':
        if (voided.has(e.claim)) break;
        attemptsMade++;
        attemptsSinceRetry++;
        errors.push(recordedError(e));
        lastOutcome = 'error';
        break;
      case 'revoked':
        attemptsMade++;
        attemptsSinceRetry++;
        errors.push({ message: revokedMessage(e.reason), code: REVOKE_CODES[e.reason] });
        lastOutcome = 'revoked';
        break;
      case 'torn':
        // The run whose result was lost counts as a run (the next one's attempt number shows it), not
        // against `attempts`: it did not fail. Two in a row are one put-back interrupted and redone.
        if (lastOutcome !== 'torn') {
          attemptsMade++;
          errors.push({
            message: `the result of attempt ${attemptsMade} was lost (${e.reason}); the job ran again`,
            code: 'ETORN',
          });
        }
        result = undefined;
        lastOutcome = 'torn';
        break;
      case 'invalid':
        invalid = e.reason;
        break;
      case 'retry':
        attemptsSinceRetry = 0;
        invalid = undefined;
        break;
      case 'released':
        released ??= e; // a release finished by a sweep over a slow releaser may write a second, the same
        break;
    }
  }
  return { envelope, events, attemptsMade, attemptsSinceRetry, result, errors, invalid, lastOutcome, released };
}

/**
 * Why a file in done/ does not prove that its job completed, or undefined
 * when it does. This is what "torn" means.
 *
 * complete() appends a `result` event, then renames the file into done/.
 * Unless results are synced, a power cut can keep the rename and lose the
 * append: ext4 reads the line back as NUL bytes (the length reached the
 * disk, the data did not), xfs keeps the old length (no line at all), btrfs
 * can keep part of it (a line that does not parse). So a done/ file is
 * complete only when its last outcome (JobRecord.lastOutcome: the last
 * result, error, revoked or torn event that no revoke voids) is a result.
 * A result without a value (complete() with nothing) counts: its event is
 * written all the same. Anything else is torn: the job did not provably
 * complete, readers say so, and a sweep after a reboot or fsck --repair puts
 * it back in queue/ to run again (torn.ts).
 */
export function tornReason(text: string, record: JobRecord): string | undefined {
  if (record.lastOutcome === 'result') return undefined;
  if (text.includes('\0')) return 'its last write reads back as NUL bytes: the result never reached the disk';
  if (!text.endsWith('\n')) return 'its last line is cut short: the result was torn';
  return 'it has no result event: the result never reached the disk, or the file was moved to done/ without one';
}

/** The recorded error code of a revoked claim: a timeout is the same EJOBTIMEOUT the pool records. */
const REVOKE_CODES: Readonly<Record<RevokeReason, DirQueueErrorCode>> = {
  crashed: 'ECRASHED',
  timeout: 'EJOBTIMEOUT',
  stalled: 'ESTALLED',
};

function revokedMessage(reason: RevokeReason): string {
  switch (reason) {
    case 'crashed':
      return 'the worker holding the job died';
    case 'timeout':
      return 'the job ran longer than its timeout';
    case 'stalled':
      return 'the worker holding the job showed no sign of life for staleAfter';
  }
}

function recordedError(e: RecordedError): RecordedError {
  const out: RecordedError = { message: String(e.message) };
  if (e.code !== undefined) out.code = String(e.code);
  if (e.stack !== undefined) out.stack = String(e.stack);
  return out;
}

function parseEnvelope(line: string): Envelope {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch (error) {
    throw bad(`line 1 is not JSON (${(error as Error).message})`);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw bad('line 1 is not a JSON object');
  const e = value as Record<string, unknown>;
  if (e.type !== undefined && typeof e.type !== 'string') throw bad('"type" is not a string');
  if (e.bytes !== undefined && (typeof e.bytes !== 'string' || 'data' in e)) {
    throw bad('"bytes" must be a base64 string and excludes "data"');
  }
  if (e.created !== undefined && typeof e.created !== 'string') throw bad('"created" is not a string');
  if (e.attempts !== undefined && !(Number.isInteger(e.attempts) && (e.attempts as number) >= 1)) {
    throw bad('"attempts" is not an integer >= 1');
  }
  if (e.timeout !== undefined && !(typeof e.timeout === 'number' && e.timeout > 0)) {
    throw bad('"timeout" is not a positive number of milliseconds');
  }
  if (e.key !== undefined && typeof e.key !== 'string') throw bad('"key" is not a string');
  if (e.backoff !== undefined && !isBackoff(e.backoff)) throw bad('"backoff" is not a backoff object');
  if (e.after !== undefined && !(Array.isArray(e.after) && e.after.every((id) => typeof id === 'string'))) {
    throw bad('"after" is not an array of job ids');
  }
  return e;
}

export function isBackoff(value: unknown): value is BackoffSpec {
  if (value === null || typeof value !== 'object') return false;
  const b = value as Record<string, unknown>;
  const delayOk = typeof b.delay === 'number' && b.delay >= 0 && Number.isFinite(b.delay);
  if (b.type === 'fixed') return delayOk;
  if (b.type !== 'exponential' || !delayOk) return false;
  if (b.max !== undefined && !(typeof b.max === 'number' && b.max >= 0)) return false;
  return b.jitter === undefined || (typeof b.jitter === 'number' && b.jitter >= 0 && b.jitter <= 1);
}

function bad(reason: string): DirQueueError {
  return new DirQueueError('EBADDATA', `unparsable job file: ${reason}`);
}

/** The payload an envelope carries: JSON data, raw bytes, or nothing. */
export function payloadOf(envelope: Envelope): unknown {
  return envelope.bytes !== undefined ? Buffer.from(envelope.bytes, 'base64') : envelope.data;
}
