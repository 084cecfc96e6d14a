/**
 * Every error dirqueue raises is a DirQueueError with a stable string `code`.
 * Callers branch on `code`; the message says what was wrong and what to do.
 */

/** The codes dirqueue itself defines (README lists each with its meaning). */
export type DirQueueErrorCode =
  | 'EBADOPTION' // an option or argument has the wrong type or range
  | 'EBADTYPE' // a job type is empty, too long or not a string
  | 'EBADID' // a string is not a job id
  | 'EBADDATA' // job data or a result JSON cannot hold faithfully
  | 'EBADSTATE' // an operation the job's state forbids (removing a running job, ending a claim twice)
  | 'ENOTFOUND' // no job with that id in any state
  | 'ENOQUEUE' // the queue directory does not exist and `create` is false
  | 'ENOTQUEUE' // the directory exists but is not a dirqueue queue
  | 'EVERSION' // the queue was written by a newer major format version
  | 'ECLOSED' // the Queue was closed
  | 'ECOMPROMISED' // the claim on a job was lost (taken back from a silent worker, or past its timeout)
  | 'ETOOBIG' // a job file is larger than `maxJobBytes`
  | 'EJOBFAILED' // waitFor: the job ended in failed/
  | 'ETORN' // waitFor: the job is in done/ but its result was lost (a power cut); it will run again
  | 'ETIMEOUT' // a waiting call gave up (waitFor, dirq wait)
  | 'EJOBTIMEOUT' // a job ran past its timeout: its recorded error, and its signal's abort reason
  | 'ECRASHED' // a recorded error: the worker holding the job died and a sweep took it back
  | 'ESTALLED' // a recorded error: the worker holding the job showed no sign of life for staleAfter
  | 'ECANCELLED' // a recorded error, and a job's signal's abort reason: the job was cancelled (q.cancel, dirq cancel); never retried
  | 'ESTUCK' // a pool's worker (thread or process) did not end a job within stuckAfter of its timeout (stuck, or ignoring its signal) and was replaced
  | 'ESTARTED' // start() on a Pool that was started before: a Pool starts once
  | 'ENOTSTARTED' // a Pool call that needs start() first
  | 'ECONTENTION' // a unique key kept changing hands while enqueueing: try again
  | 'EVANISHED' // a job file written in tmp/ was removed by something else before it could be enqueued
  | 'EPROCESSOR' // a pool's processor module failed to load, or its threads keep dying
  | 'ETHREAD' // a pool's worker thread died (an uncaught error, its memory limit)
  | 'EEXEC' // a recorded error: an --exec job's command exited non-zero or was killed (the message is the end of its stderr), or could not be started
  | 'EPARENTFAILED' // a recorded error: a job enqueued with `after` did not run because a job it waited for failed, was cancelled or was removed
  | 'EBATCHLOST' // a recorded error: a batch's callback did not run because its batch's directory (batches/ID) was removed
  | 'EWORKER' // a pool's worker process died (a crash, process.exit, a signal, its memory limit), or a persistent --exec worker broke its line protocol
  | 'EBADFILE' // a file or directory the library keeps (settings, workers/, keys/, a layout directory) is a link, FIFO or other wrong kind: never followed or opened
  | 'EBADMODE' // a notice ('warning' event): a group-shared queue's directory is writable by its group or by anyone (dirq init DIR --mode fixes it)
  | 'EBADSCHEDULE' // a schedule's spec or name is wrong (ScheduleError says which field, and where in a cron expression)
  | 'EPOLLING' // a notice ('warning' event): queue/ is on a network or FUSE filesystem, so the queue polls instead of watching
  | 'EFS'; // a filesystem call failed; `cause` holds the system error

/** Filesystem failures keep their errno code (ENOSPC, EACCES, EROFS, ...). */
export type ErrorCode = DirQueueErrorCode | `E${Uppercase<string>}`;

export class DirQueueError extends Error {
  readonly code: ErrorCode;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'DirQueueError';
    this.code = code;
  }
}

/** complete/fail/release on a job whose claim another process recovered. */
export class CompromisedError extends DirQueueError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('ECOMPROMISED', message, options);
    this.name = 'CompromisedError';
  }
}

/** A schedule that cannot be: `field` names what is wrong; `position` is where, in a cron expression. */
export class ScheduleError extends DirQueueError {
  readonly field: string;
  /** For a cron expression that does not parse: the field (1-based) and the character offset (0-based) it starts at. */
  readonly position: { field: number; offset: number } | undefined;

  constructor(field: string, message: string, position?: { field: number; offset: number }) {
    super('EBADSCHEDULE', message);
    this.name = 'ScheduleError';
    this.field = field;
    this.position = position;
  }
}

/** waitFor on a job that ended in failed/: carries the job's last recorded error. */
export class JobFailedError extends DirQueueError {
  readonly jobId: string;
  readonly jobError: RecordedError | undefined;

  constructor(jobId: string, jobError: RecordedError | undefined) {
    super('EJOBFAILED', `job ${jobId} failed: ${jobError?.message ?? 'no error recorded'}`);
    this.name = 'JobFailedError';
    this.jobId = jobId;
    this.jobError = jobError;
  }
}

/** An error as it is kept in a job file. */
export interface RecordedError {
  message: string;
  code?: string;
  stack?: string;
}

const fsAdvice: Record<string, string> = {
  ENOSPC: 'the filesystem is full: free space, or purge done/ (dirq purge DIR done --older-than 7d)',
  EDQUOT: 'the disk quota is exhausted: free space or raise the quota',
  EACCES: 'permission denied: check the owner and mode of the queue directory',
  EPERM: 'operation not permitted: check the owner and mode of the queue directory',
  EROFS: 'the filesystem is read-only: remount it read-write',
  ENOENT: 'a path is missing: is this the right queue directory?',
  ENOTDIR: 'a path component is not a directory: is this the right queue directory?',
  EMFILE: 'too many open files: raise the process limit (ulimit -n)',
  ENFILE: 'too many open files on the system',
  EIO: 'an I/O error: check the disk or the network filesystem',
};

/** Wrap a failed system call in a DirQueueError that keeps its errno code. */
export function fsError(what: string, cause: unknown): DirQueueError {
  if (cause instanceof DirQueueError) return cause;
  const code = (cause as NodeJS.ErrnoException | undefined)?.code;
  const errno = typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? (code as ErrorCode) : 'EFS';
  const advice = (code && fsAdvice[code]) ?? String((cause as Error | undefined)?.message ?? cause);
  return new DirQueueError(errno, `${what} failed: ${advice}`, { cause });
}

/** The errno code of a system error, if it has one. */
export function errnoOf(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** Turn whatever a processor threw into what the job file keeps. */
export function recordError(error: unknown): RecordedError {
  if (error instanceof Error) {
    const out: RecordedError = { message: error.message || error.name };
    const code = (error as { code?: unknown }).code;
    if (typeof code === 'string' || typeof code === 'number') out.code = String(code);
    if (error.stack !== undefined) out.stack = error.stack;
    return out;
  }
  if (typeof error === 'string') return { message: error };
  if (error === undefined) return { message: 'failed' };
  try {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- the last resort for a thrown non-Error that JSON cannot show
    return { message: JSON.stringify(error) ?? String(error) };
  } catch {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- likewise, for a value JSON.stringify throws on (a cycle, a BigInt)
    return { message: String(error) };
  }
}
