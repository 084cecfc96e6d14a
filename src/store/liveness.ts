/**
 * Who holds a claim, and whether it is still alive. A claim's owner keeps a
 * heartbeat file in workers/, one per Queue handle, not one per job:
 * bench/lease.js measured here one heartbeat (rewrite + fstat) at 6.3 us per
 * beat whatever the process holds, against futimes of each held job's file
 * at 1.5-2.4 us per job per beat (77 us at 50 held jobs, 1.8 ms at 1,000),
 * which moreover would stamp the local clock, not the filesystem's.
 *
 * Staleness is judged in the filesystem's clock: the heartbeat is refreshed
 * by writing to it (the filesystem stamps the mtime, on NFS the server), and
 * a judge reads "now" the same way, from a file it has just written. So a
 * host whose clock is off neither steals live claims nor keeps dead ones.
 *
 * On the same host and boot, a dead pid is known at once, without waiting
 * for staleAfter; the process start time guards against pid reuse, and EPERM
 * from kill(pid, 0) means alive (the process exists, it is just not ours).
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import type { Layout } from './layout.js';
import { closeQuietly, removeQuietly, writeAll } from './files.js';
import { scratchClockName } from './names.js';
import { createExclusive, openRegular } from './open.js';
import { badFile } from './safe-file.js';

export interface OwnerIdentity {
  host: string;
  bootId: string;
  pid: number;
  /** Start time of the process in clock ticks since boot (/proc/PID/stat field 22). */
  startTime: string;
  started: string;
}

let bootIdCache: string | undefined;

export function bootId(): string {
  bootIdCache ??= readOr('/proc/sys/kernel/random/boot_id', 'unknown-boot').trim();
  return bootIdCache;
}

/** The start time of `pid`, or undefined when there is no such process (or no /proc). */
export function processStartTime(pid: number): string | undefined {
  const stat = readOr(`/proc/${pid}/stat`, '');
  // the command name (field 2) is in parentheses and may hold spaces: count fields after the last ')'
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return fields[19]; // field 22 overall
}

export function myIdentity(): OwnerIdentity {
  return {
    host: hostname(),
    bootId: bootId(),
    pid: process.pid,
    startTime: processStartTime(process.pid) ?? '',
    started: new Date().toISOString(),
  };
}

/** Whether the process described by `owner`, which ran on this host and boot, is gone. */
export function isDeadHere(owner: OwnerIdentity): boolean {
  if (owner.host !== hostname() || owner.bootId !== bootId()) return false; // not ours to judge by pid
  try {
    process.kill(owner.pid, 0);
  } catch (error) {
    if (errnoOf(error) === 'ESRCH') return true;
    if (errnoOf(error) !== 'EPERM') return false; // EPERM: it exists, owned by someone else
  }
  const start = processStartTime(owner.pid);
  return start !== undefined && owner.startTime !== '' && start !== owner.startTime; // the pid was reused
}

/**
 * Whether the writer of a file in tmp/ is known to be gone, so the file will
 * never be renamed into place: only a writer with a heartbeat (workers/OWNER,
 * a process that has claimed or enqueued with a unique key) can be, judged by
 * its full identity (isDeadHere). The host token in a tmp/ name is no
 * identity (hosts may share a short name, containers a pid), so a writer
 * without a heartbeat, one that only enqueues without keys, is never judged
 * gone: its files go by age.
 */
export function isWriterGone(layout: Layout, owner: string): boolean {
  const heartbeat = readHeartbeat(layout.file('workers', owner));
  return heartbeat?.identity !== undefined && isDeadHere(heartbeat.identity);
}

/**
 * This Queue handle's heartbeat: workers/OWNER, holding its identity.
 * beat() rewrites it so the filesystem stamps a fresh mtime, and returns that
 * mtime: the filesystem's "now".
 */
export class Heartbeat {
  readonly path: string;
  /** Our open heartbeat, or -1 while it is gone and could not be made again (the next beat tries). */
  #fd: number;
  #mode: number | undefined;
  #content: Buffer;
  #ino: number | undefined;

  /** `mode`: a group-shared queue's file mode, set exactly whatever the umask. */
  constructor(path: string, mode?: number) {
    this.path = path;
    this.#mode = mode;
    this.#content = Buffer.from(`${JSON.stringify(myIdentity())}\n`);
    this.#fd = this.#create();
    try {
      this.beat();
    } catch (error) {
      // not made after all: a half-made heartbeat at our name would make every later try fail with EEXIST
      closeQuietly(this.#fd);
      removeQuietly(this.path); // or left for the sweeps, which delete a heartbeat whose process is gone
      throw error;
    }
  }

  /**
   * A sweep deletes the heartbeat of a process silent for long (SILENT_HEARTBEAT_MS)
   * that holds nothing, and a process stopped that long (SIGSTOP, a suspended VM)
   * may yet resume: then it makes its heartbeat again, so that its next claims
   * are judged by it.
   */
  beat(): number {
    if (this.#fd === -1 || this.#nameGone()) {
      if (this.#fd !== -1) closeQuietly(this.#fd); // of a file no longer there: nothing of it to keep
      // never keep a closed descriptor's number: once reused by another file, a later beat would
      // write to it and close it (the making below fails when workers/ is gone or full)
      this.#fd = -1;
      this.#ino = undefined;
      this.#fd = this.#create();
    }
    return stampNow(this.#fd, this.#content, this.path);
  }

  /**
   * The heartbeat's path and inode, for the running slots this handle takes (hard links to it,
   * store/limits.ts). `fresh`: beat first, which makes the file again if its name is gone.
   */
  current(fresh = false): { path: string; ino: number } {
    if (fresh || this.#ino === undefined || this.#fd === -1) {
      if (fresh || this.#fd === -1) this.beat();
      this.#ino = fstatOf(this.#fd, this.path).ino;
    }
    return { path: this.path, ino: this.#ino };
  }

  /**
   * Whether our file lost its name in workers/. Its link count alone cannot say: running slots
   * (limits/TYPE/K) are other names of it, so the name is looked up (one lstat per beat).
   */
  #nameGone(): boolean {
    const { nlink, ino } = fstatOf(this.#fd, this.path);
    if (nlink === 0) return true;
    try {
      return fs.lstatSync(this.path).ino !== ino;
    } catch (error) {
      if (errnoOf(error) === 'ENOENT') return true;
      throw fsError(`checking the heartbeat ${this.path}`, error);
    }
  }

  close(): void {
    if (this.#fd !== -1) closeQuietly(this.#fd); // each beat's stamp was checked by its fstat: a late write error changes nothing
    this.#fd = -1;
    try {
      fs.unlinkSync(this.path);
    } catch {
      // gone already (a sweep judged it stale), or replaced by something that is not ours to delete
    }
  }

  /** Our own new file, exclusively: the owner's name is unique, so nothing else may be at it. */
  #create(): number {
    let fd: number;
    const open = (): number => createExclusive(this.path, fs.constants.O_RDWR, 0o666);
    try {
      try {
        fd = open();
      } catch (error) {
        if (errnoOf(error) !== 'EEXIST') throw error;
        // only this process makes files at its owner name: this is its own, left by a try that failed half-way
        fs.unlinkSync(this.path);
        fd = open();
      }
    } catch (error) {
      throw fsError(`creating the heartbeat ${this.path}`, error);
    }
    try {
      if (this.#mode !== undefined) fs.fchmodSync(fd, this.#mode); // our own new file: cannot fail for lack of rights
    } catch (error) {
      closeQuietly(fd);
      removeQuietly(this.path);
      throw fsError(`creating the heartbeat ${this.path}`, error);
    }
    return fd;
  }
}

/** "Now" in the filesystem's clock, and why it had to be read elsewhere than the shared file, if it had to. */
export interface FilesystemNow {
  now: number;
  warning?: DirQueueError;
}

/**
 * Read "now" in the filesystem's clock by writing to `path`, a file shared by
 * every process of the queue (created world-writable if missing). A process
 * that may not write it (another user's queue) uses a scratch file in
 * `scratchDir`; so does one that finds a symbolic link, a directory, a FIFO
 * or a file with other names (a hard link to a file elsewhere) there, never
 * followed, never blocking, never written, with a warning naming it, so that
 * sweeps go on recovering claims until someone removes it (dirq fsck --repair).
 * Only a clock this call has just created is chmodded: an existing one may be
 * anyone's file under another name (defects issue, S3). On a disk with no
 * inode left to create it, this host's clock, with a warning.
 */
export function filesystemNow(path: string, scratchDir: string): FilesystemNow {
  try {
    return sharedNow(path, scratchDir);
  } catch (error) {
    const code = (error as DirQueueError).code;
    if (code !== 'ENOSPC' && code !== 'EDQUOT') throw error;
    // no inode left for a clock file (a queue never swept before its disk filled): this sweep still takes back
    // dead claims and prunes, which frees space, judging ages by this host's clock
    const warning = new DirQueueError(
      code,
      `${(error as Error).message}; this sweep judged ages by this host's clock instead of the filesystem's`,
      { cause: error },
    );
    return { now: Date.now(), warning };
  }
}

function sharedNow(path: string, scratchDir: string): FilesystemNow {
  let opened: ReturnType<typeof openRegular>;
  try {
    opened = openRegular(path, fs.constants.O_RDWR) ?? createClock(path) ?? openRegular(path, fs.constants.O_RDWR); // a racing creator's
  } catch (error) {
    const code = (error as DirQueueError).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw fsError(`reading the filesystem clock at ${path}`, error);
    return { now: scratchNow(scratchDir) };
  }
  if (opened === undefined)
    throw fsError(`reading the filesystem clock at ${path}`, Object.assign(new Error('ENOENT'), { code: 'ENOENT' }));
  if (typeof opened !== 'number') {
    const todo = `sweeps read the filesystem's clock from a scratch file in ${scratchDir} meanwhile; remove it (dirq fsck --repair does)`;
    return { now: scratchNow(scratchDir), warning: badFile(path, opened.kind, todo) };
  }
  try {
    return { now: stampNow(opened, Buffer.from('\n'), path) };
  } finally {
    closeQuietly(opened); // the stamp was read back by fstat: a late write error changes nothing
  }
}

/** A new clock file, world-writable whatever the umask, or undefined when another process made one first. */
function createClock(path: string): number | undefined {
  let fd: number;
  try {
    fd = createExclusive(path, fs.constants.O_RDWR, 0o666);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return undefined;
    throw fsError(`creating the filesystem clock ${path}`, error);
  }
  try {
    fs.fchmodSync(fd, 0o666); // our own new file
  } catch (error) {
    closeQuietly(fd);
    throw fsError(`creating the filesystem clock ${path}`, error);
  }
  return fd;
}

function scratchNow(dir: string): number {
  const path = `${dir}/${scratchClockName()}`;
  let fd: number;
  try {
    fd = createExclusive(path, fs.constants.O_RDWR, 0o600);
  } catch (error) {
    throw fsError(`reading the filesystem clock in ${dir}`, error);
  }
  try {
    return stampNow(fd, Buffer.from('\n'), path);
  } finally {
    closeQuietly(fd);
    removeQuietly(path); // or left for the sweeps: clean.ts removes scratch clocks by age
  }
}

function stampNow(fd: number, content: Buffer, path: string): number {
  try {
    try {
      writeAll(fd, content, 0); // a rewrite in place: the same bytes at the start, so the filesystem stamps the mtime
    } catch (error) {
      // a full disk cannot take even a rewrite of a new file: stamp it by hand (local clock) instead
      if (errnoOf(error) !== 'ENOSPC' && errnoOf(error) !== 'EDQUOT') throw error;
      const now = new Date();
      fs.futimesSync(fd, now, now);
    }
    return fs.fstatSync(fd).mtimeMs;
  } catch (error) {
    throw fsError(`writing ${path}`, error);
  }
}

function fstatOf(fd: number, path: string): fs.Stats {
  try {
    return fs.fstatSync(fd);
  } catch (error) {
    throw fsError(`checking ${path}`, error);
  }
}

/** What a heartbeat says: its owner's identity (when its content is one) and the filesystem time of its last beat. */
export interface HeartbeatReading {
  identity: OwnerIdentity | undefined;
  mtimeMs: number;
  /** Its inode: a running slot (store/limits.ts) is a hard link to it. */
  ino: number;
}

/**
 * A heartbeat file's identity and age, or undefined when it is missing, not
 * a regular file, too large, not ours to read, or an I/O error keeps it from
 * being read. For callers to whom a missing heartbeat proves nothing (a
 * writer or lock holder is gone only when its heartbeat says so); a judge
 * that would act on the absence uses heartbeatAt.
 */
export function readHeartbeat(path: string): HeartbeatReading | undefined {
  try {
    return heartbeatAt(path);
  } catch {
    return undefined;
  }
}

/**
 * The same, but an I/O error at the open or the fstat (EIO, ...) throws the
 * typed error instead of looking like a missing heartbeat: the rescue judges
 * a claim without a heartbeat by the claim's age, and a live worker whose
 * heartbeat the disk failed to read would lose its long-running job. It is
 * opened and fstat'ed rather than lstat'ed: on NFS an open revalidates the
 * file's attributes (close-to-open), so its mtime is fresh.
 */
export function heartbeatAt(path: string): HeartbeatReading | undefined {
  let fd: ReturnType<typeof openRegular>;
  try {
    fd = openRegular(path, fs.constants.O_RDONLY);
  } catch (error) {
    const code = (error as DirQueueError).code;
    if (code === 'EACCES' || code === 'EPERM') return undefined; // another user's, not readable: its claims' age judges them
    const failed = fsError(`reading the heartbeat ${path}`, error);
    throw new DirQueueError(failed.code, `${failed.message}; its owner's claims are left alone until it can be read`, {
      cause: error,
    });
  }
  if (typeof fd !== 'number') return undefined; // missing, or a link, directory or special file: never followed
  try {
    const stat = fstatOf(fd, `the heartbeat ${path}`);
    if (stat.size > 4096) return undefined;
    let identity: unknown;
    try {
      identity = JSON.parse(fs.readFileSync(fd, 'utf8'));
    } catch {
      identity = undefined; // judged by its mtime alone, which fstat gave
    }
    return { identity: isIdentity(identity) ? identity : undefined, mtimeMs: stat.mtimeMs, ino: stat.ino };
  } finally {
    closeQuietly(fd); // read only
  }
}

/**
 * Whether a heartbeat's content is an identity a judge may act on. Its pid is
 * given to kill(2) and read in /proc: anything but a positive integer (0 or a
 * negative pid names a process group, "../x" a path) would make a live
 * worker look dead, or read a file outside /proc.
 */
function isIdentity(value: unknown): value is OwnerIdentity {
  if (typeof value !== 'object' || value === null) return false;
  const { host, bootId, pid, startTime } = value as Partial<Record<keyof OwnerIdentity, unknown>>;
  return (
    typeof host === 'string' &&
    typeof bootId === 'string' &&
    typeof startTime === 'string' &&
    Number.isSafeInteger(pid) &&
    (pid as number) > 0
  );
}

function readOr(path: string, fallback: string): string {
  try {
    return fs.readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}
