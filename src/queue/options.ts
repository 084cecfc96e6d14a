/**
 * Every option of Queue and of enqueue, with its default and its validation,
 * and the checks the Pool's options (pool/options.ts) share.
 */
import { DirQueueError, type RecordedError } from '../store/errors.js';
import type { BackoffSpec } from '../store/envelope.js';
import { MAX_PARENTS } from '../store/deps.js';
import { parseMode } from '../store/layout.js';
import {
  checkCoalesce,
  checkGroup,
  describe,
  encodeKey,
  isId,
  PRIORITY_DEFAULT,
  PRIORITY_MAX,
  PRIORITY_MIN,
} from '../store/names.js';
import { checkBoolean, checkInteger, checkKnown, checkMs, dropUndefined } from '../store/option-checks.js';
import { sweepDefaults } from '../maintenance/sweep.js';

// The Queue's methods (claim's wait, waitFor's timeout, ...) and the Pool check their arguments with these too.
export { checkInteger, checkKnown, checkMs };

/** Milliseconds to wait before attempt `attempt + 1`, after `error` ended attempt `attempt`. */
export type BackoffFunction = (attempt: number, error: RecordedError) => number;

export interface QueueOptions {
  /** Create the queue layout when the directory is missing or empty. @default true */
  create?: boolean;
  /**
   * fsync each job file and its directory before enqueue resolves, so a job
   * survives power loss. false trades that for speed (README has the numbers).
   * `'all'` also makes every outcome durable before it resolves: complete(),
   * fail() (a retry or the final failure) and a cancelled job's ending
   * fdatasync the appended line, rename, then fsync the directory of the new
   * name (concurrent endings share it). Without it an outcome
   * is a rename that a power cut can undo: the job then runs again.
   * @default true
   */
  durable?: boolean | 'all';
  /**
   * How a durable enqueueMany of 256 jobs or more reaches stable storage.
   * `'auto'`: write them all, then one syncfs(2) of the filesystem, where it
   * is sound (Linux 5.8+, a local filesystem, `sync -f` on PATH), else as
   * `'fdatasync'`: an fdatasync per file, in bursts. syncfs is 2-3x faster
   * here but also waits for other programs' unwritten data on that
   * filesystem; `'fdatasync'` never does (README has the numbers).
   * @default 'auto'
   */
  batchSync?: 'auto' | 'fdatasync';
  /**
   * Notice new jobs through inotify (fs.watch). `'auto'` watches unless
   * queue/ is on a network or FUSE filesystem (NFS, SMB, Ceph, 9p, sshfs,
   * ...), where other hosts' renames raise no event: there it polls, and says
   * so once with a 'warning' event (code EPOLLING). `false` always polls,
   * `true` always watches (and still rescans). See NFS.md.
   * @default 'auto'
   */
  watch?: boolean | 'auto';
  /**
   * How often queue/ is polled when not watching (jittered by +-20%), and how
   * often a waiting claim checks it when events may be missed, ms. A poll
   * stats queue/ and rescans it only when its mtime moved, plus a full rescan
   * every 5 polls (or rescanInterval, if sooner) as the floor.
   * @default 1000
   */
  pollInterval?: number;
  /** A full rescan of queue/ at least this often, the floor under watching (I7), ms. @default 30000 */
  rescanInterval?: number;
  /**
   * Ageing against starvation (I8): each agingStep ms of waiting counts as one
   * priority level, up to 0, so once a job of priority p has waited
   * p x agingStep no job enqueued after it runs first. Infinity gives strict priority.
   * @default 10000
   */
  agingStep?: number;
  /**
   * A claim whose owner showed no sign of life for this long is stale, ms.
   * Owners beat every staleAfter/4; on a shared filesystem keep it above
   * 4/3 x (the attribute cache time + a few seconds), see NFS.md.
   * @default 30000
   */
  staleAfter?: number;
  /**
   * Run maintenance (recover stale claims, promote due delayed jobs, prune
   * done/, clean tmp/) once at open and then every `sweepInterval` (I6).
   * @default true
   */
  maintenance?: boolean;
  /** Time between maintenance sweeps, ms, jittered by +-25%. @default 5000 */
  sweepInterval?: number;
  /** Completed jobs are deleted from done/ this long after they ended, ms; Infinity keeps them. @default 604800000 (7 days) */
  keepDone?: number;
  /** Job files larger than this are set aside in failed/, bytes. @default 16777216 */
  maxJobBytes?: number;
  /** Attempts for jobs that do not set their own. @default 3 */
  attempts?: number;
  /**
   * Backoff for jobs that do not set their own; a number is a fixed delay in
   * ms, as in enqueue's `backoff`. @default { type: 'exponential', delay: 1000, jitter: 0.2 }
   */
  backoff?: BackoffSpec | BackoffFunction | number;
  /** Timeout for jobs that do not set their own, ms; undefined for none. @default undefined */
  timeout?: number;
  /**
   * Make (or turn) the queue group-shared: the permission bits of every file
   * the library creates in it, e.g. 0o660 or "0660", kept in dirqueue.json
   * for every process that opens it; its directories become setgid and
   * group-writable. @default undefined (the queue's own, else 0666 less the umask)
   */
  mode?: number | string;
}

export interface ResolvedQueueOptions extends Required<Omit<QueueOptions, 'timeout' | 'mode' | 'backoff'>> {
  backoff: BackoffSpec | BackoffFunction;
  timeout: number | undefined;
  mode: number | undefined;
}

export const queueDefaults = Object.freeze({
  create: true,
  durable: true,
  batchSync: 'auto',
  watch: 'auto',
  pollInterval: 1000,
  rescanInterval: 30_000,
  agingStep: 10_000,
  staleAfter: 30_000,
  maintenance: true,
  sweepInterval: 5000,
  keepDone: 7 * 24 * 3600 * 1000,
  maxJobBytes: sweepDefaults.maxJobBytes,
  attempts: 3,
  backoff: Object.freeze({ type: 'exponential', delay: 1000, jitter: 0.2 }),
  timeout: undefined,
  mode: undefined,
} as const) satisfies Readonly<ResolvedQueueOptions>;

export function resolveQueueOptions(options: QueueOptions = {}): ResolvedQueueOptions {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `Queue options must be an object, got ${describe(options)}`);
  }
  checkKnown(options, Object.keys(queueDefaults), 'Queue option');
  const o = { ...queueDefaults, ...dropUndefined(options) } as ResolvedQueueOptions;
  checkBoolean(o.create, 'create');
  if (typeof o.durable !== 'boolean' && o.durable !== 'all') {
    throw new DirQueueError('EBADOPTION', `durable must be true, false or 'all', got ${describe(o.durable)}`);
  }
  if (o.batchSync !== 'auto' && o.batchSync !== 'fdatasync') {
    throw new DirQueueError('EBADOPTION', `batchSync must be 'auto' or 'fdatasync', got ${describe(o.batchSync)}`);
  }
  if (o.watch !== 'auto' && typeof o.watch !== 'boolean') {
    throw new DirQueueError('EBADOPTION', `watch must be true, false or 'auto', got ${describe(o.watch)}`);
  }
  checkMs(o.pollInterval, 'pollInterval', 1);
  checkMs(o.rescanInterval, 'rescanInterval', 1);
  if (o.agingStep !== Infinity) checkMs(o.agingStep, 'agingStep', 1);
  checkMs(o.staleAfter, 'staleAfter', 1);
  checkBoolean(o.maintenance, 'maintenance');
  checkMs(o.sweepInterval, 'sweepInterval', 1);
  if (o.keepDone !== Infinity) checkMs(o.keepDone, 'keepDone', 0);
  checkInteger(o.maxJobBytes, 'maxJobBytes', 64);
  checkInteger(o.attempts, 'attempts', 1);
  if (typeof o.backoff !== 'function') o.backoff = resolveBackoff(o.backoff);
  if (o.timeout !== undefined) checkMs(o.timeout, 'timeout', 1);
  if (o.mode !== undefined) o.mode = parseMode(o.mode);
  return o;
}

export interface EnqueueOptions {
  /** 0..99, lower runs first. @default 50 */
  priority?: number;
  /** Run no sooner than this many ms from now (the job waits in delayed/). @default 0 */
  delay?: number;
  /** Run no sooner than this time (a Date or ms since the epoch). Excludes `delay`. */
  runAt?: Date | number;
  /** How many times to try before the job goes to failed/. @default the queue's `attempts` */
  attempts?: number;
  /** Wait between attempts. A number is a fixed delay in ms. @default the queue's `backoff` */
  backoff?: BackoffSpec | number;
  /** A run longer than this many ms counts as a failed attempt. @default the queue's `timeout` */
  timeout?: number;
  /**
   * A unique key: while a job with this key is waiting or running, enqueueing
   * another with the same key returns the first one's id instead (with
   * `duplicate: true`). The key is free again once that job ends.
   */
  key?: string;
  /**
   * The id of the running job (in active/) that holds `key` and hands it to
   * the job being enqueued: a job enqueueing its own next run under its own
   * key (`{ key, keyFrom: job.id }`). The new job takes the key in one rename; the
   * running job no longer holds it, so its ending leaves the key to the new job.
   * When `keyFrom` is not running or does not hold the key, `key` acts as usual.
   */
  keyFrom?: string;
  /**
   * The group the job belongs to (a tenant, a user): among the ready jobs of
   * one type and priority, groups take turns (round robin), so one group's
   * backlog does not hold back another's jobs. 1 to 256 characters.
   * @default undefined (no group: the jobs of no group take turns as one group)
   */
  group?: string;
  /**
   * Ids of jobs this one waits for (at most 100): it waits in waiting/ until
   * every one of them has ended (done, failed for good, cancelled or
   * removed), then moves to queue/. Each must exist when this job is
   * enqueued (so a cycle cannot be made); one that already ended counts at once.
   */
  after?: readonly string[];
  /**
   * What a job enqueued with `after` does when one of them failed (or was
   * cancelled or removed): 'fail' ends it in failed/ with EPARENTFAILED,
   * naming that job; 'run' runs it anyway. Either way `job.parents` says how each ended.
   * @default 'fail'
   */
  afterFailed?: 'fail' | 'run';
  /**
   * The coalesce key (a user, a document): `claimMany({ coalesce: true })` and
   * `Pool({ batchSize })` claim the ready jobs of one type and one key
   * together. 1 to 256 characters.
   * @default undefined (no key: such jobs coalesce with the other jobs of no key)
   */
  coalesce?: string;
}

export interface ResolvedEnqueueOptions {
  priority: number;
  /** Due time in ms since the epoch, when the job must wait in delayed/. */
  runAt: number | undefined;
  attempts: number | undefined;
  backoff: BackoffSpec | undefined;
  timeout: number | undefined;
  key: string | undefined;
  keyFrom: string | undefined;
  group: string | undefined;
  /** The distinct ids of `after`; undefined without it. */
  after: string[] | undefined;
  afterFailed: 'fail' | 'run';
  coalesce: string | undefined;
}

const ENQUEUE_OPTIONS = Object.freeze([
  'priority',
  'delay',
  'runAt',
  'attempts',
  'backoff',
  'timeout',
  'key',
  'keyFrom',
  'group',
  'after',
  'afterFailed',
  'coalesce',
] as const) satisfies readonly (keyof EnqueueOptions)[];

export function resolveEnqueueOptions(options: EnqueueOptions = {}, now = Date.now()): ResolvedEnqueueOptions {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `enqueue options must be an object, got ${describe(options)}`);
  }
  checkKnown(options, ENQUEUE_OPTIONS, 'enqueue option');
  const priority = options.priority === undefined ? PRIORITY_DEFAULT : checkPriority(options.priority);
  if (options.delay !== undefined && options.runAt !== undefined) {
    throw new DirQueueError('EBADOPTION', 'give either delay or runAt, not both');
  }
  let runAt: number | undefined;
  if (options.delay !== undefined) {
    checkMs(options.delay, 'delay', 0);
    runAt = options.delay > 0 ? now + options.delay : undefined;
  } else if (options.runAt !== undefined) {
    const at = options.runAt instanceof Date ? options.runAt.getTime() : options.runAt;
    if (typeof at !== 'number' || !Number.isFinite(at)) {
      throw new DirQueueError(
        'EBADOPTION',
        `runAt must be a valid Date or ms since the epoch, got ${describe(options.runAt)}`,
      );
    }
    runAt = at > now ? Math.round(at) : undefined;
  }
  if (options.attempts !== undefined) checkInteger(options.attempts, 'attempts', 1);
  const backoff = options.backoff === undefined ? undefined : resolveBackoff(options.backoff);
  if (options.timeout !== undefined) checkMs(options.timeout, 'timeout', 1);
  if (options.key !== undefined) encodeKey(options.key);
  if (options.keyFrom !== undefined) {
    if (options.key === undefined)
      throw new DirQueueError(
        'EBADOPTION',
        'keyFrom hands over a unique key: give the key too ({ key, keyFrom: job.id })',
      );
    if (typeof options.keyFrom !== 'string' || !isId(options.keyFrom)) {
      throw new DirQueueError(
        'EBADOPTION',
        `keyFrom must be the id of the running job that holds the key (job.id), got ${describe(options.keyFrom)}`,
      );
    }
  }
  const after = options.after === undefined ? undefined : checkAfter(options.after);
  if (after !== undefined && runAt !== undefined) {
    throw new DirQueueError(
      'EBADOPTION',
      'a job with after runs when the jobs it waits for have ended: give it no delay or runAt (enqueue the delay in a job it waits for)',
    );
  }
  const afterFailed = options.afterFailed ?? 'fail';
  if (afterFailed !== 'fail' && afterFailed !== 'run') {
    throw new DirQueueError('EBADOPTION', `afterFailed must be 'fail' or 'run', got ${describe(afterFailed)}`);
  }
  return {
    priority,
    runAt,
    attempts: options.attempts,
    backoff,
    timeout: options.timeout,
    key: options.key,
    keyFrom: options.keyFrom,
    group: options.group === undefined ? undefined : checkGroup(options.group),
    after,
    afterFailed,
    coalesce: options.coalesce === undefined ? undefined : checkCoalesce(options.coalesce),
  };
}

/** enqueue's `after`: 1 to MAX_PARENTS job ids, duplicates dropped. */
function checkAfter(after: unknown): string[] {
  if (!Array.isArray(after) || after.length === 0) {
    throw new DirQueueError(
      'EBADOPTION',
      `after must be a non-empty array of the ids of the jobs to wait for, got ${describe(after)}`,
    );
  }
  const ids = [...new Set(after as unknown[])];
  if (ids.length > MAX_PARENTS) {
    throw new DirQueueError(
      'EBADOPTION',
      `after lists ${ids.length} jobs, more than ${MAX_PARENTS}: to wait for more, put them in a batch (enqueueBatch) and use its onComplete`,
    );
  }
  for (const id of ids) {
    if (typeof id !== 'string' || !isId(id)) {
      throw new DirQueueError('EBADOPTION', `after must hold job ids (as enqueue returns them), got ${describe(id)}`);
    }
  }
  return ids as string[];
}

/** A backoff as Queue.open and enqueue both take it: a spec, or a number of ms for a fixed delay. */
function resolveBackoff(value: BackoffSpec | number): BackoffSpec {
  if (typeof value === 'number') return { type: 'fixed', delay: checkMs(value, 'backoff', 0) };
  return checkBackoff(value, 'backoff');
}

/**
 * A backoff spec given as an option. It is written into the job file as JSON,
 * so every number must be finite (JSON would turn Infinity into null, and the
 * file would no longer parse) and nothing else may ride along: the envelope's
 * reader (isBackoff) would refuse what this lets through.
 */
function checkBackoff(value: unknown, name: string): BackoffSpec {
  if (!isBackoffOption(value)) {
    throw new DirQueueError(
      'EBADOPTION',
      `${name} must be ms, { type: 'fixed', delay } or { type: 'exponential', delay, max?, jitter? (0..1) }, got ${describe(value)}`,
    );
  }
  return value;
}

const BACKOFF_FIELDS: Readonly<Record<BackoffSpec['type'], readonly string[]>> = Object.freeze({
  fixed: Object.freeze(['type', 'delay']),
  exponential: Object.freeze(['type', 'delay', 'max', 'jitter']),
});

function isBackoffOption(value: unknown): value is BackoffSpec {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const b = value as Record<string, unknown>;
  if (b.type !== 'fixed' && b.type !== 'exponential') return false;
  const fields = BACKOFF_FIELDS[b.type];
  if (Object.keys(b).some((field) => !fields.includes(field))) return false;
  const ms = (v: unknown): boolean => typeof v === 'number' && Number.isFinite(v) && v >= 0;
  if (!ms(b.delay)) return false;
  if (b.max !== undefined && !ms(b.max)) return false;
  return b.jitter === undefined || (typeof b.jitter === 'number' && b.jitter >= 0 && b.jitter <= 1);
}

/** The priority of enqueue's options: the name codec has room for PRIORITY_MIN..PRIORITY_MAX. */
function checkPriority(priority: unknown): number {
  if (!Number.isInteger(priority) || (priority as number) < PRIORITY_MIN || (priority as number) > PRIORITY_MAX) {
    throw new DirQueueError(
      'EBADOPTION',
      `priority must be an integer ${PRIORITY_MIN}..${PRIORITY_MAX} (lower runs first), got ${describe(priority)}`,
    );
  }
  return priority as number;
}
