/**
 * The filesystem primitives every state change is made of.
 *
 * Why synchronous calls: each of these is one small metadata syscall on a
 * local filesystem. Measured here (Node 20, ext4, 5,000 ops each), the
 * libuv-threadpool round trip dominates: rename 27 us sync vs 72 us async;
 * create+write+rename 69 us vs 274 us; open+fstat+read of a job 11 us vs
 * 207 us. The async forms would cap a drain at a few thousand jobs/s, below
 * BullMQ. fsync is the exception: it can take milliseconds, so it runs
 * asynchronously and concurrent callers share one directory fsync (group commit).
 */
import fs from 'node:fs';
import { errnoOf, fsError } from './errors.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * Create `path` exclusively (O_EXCL: never reuse or follow what is there),
 * write `content`, fsync it when `durable`. On failure nothing is left behind.
 * `mode` (a group-shared queue's) is set exactly, whatever the umask.
 */
export async function writeNew(path: string, content: string, durable: boolean, mode?: number): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
  } catch (error) {
    throw fsError(`creating ${path}`, error);
  }
  try {
    if (mode !== undefined) fs.fchmodSync(fd, mode);
    fs.writeSync(fd, content);
    if (durable) await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
  } catch (error) {
    fs.closeSync(fd);
    fs.rmSync(path, { force: true });
    throw fsError(`writing ${path}`, error);
  }
  fs.closeSync(fd);
}

/**
 * Create and write many files, each like writeNew. Written in chunks, each
 * chunk's files fdatasynced together on the descriptors still open (the
 * kernel commits them at once), then closed. If any file fails, every file
 * of the batch is removed and the error thrown: all or nothing.
 */
export async function writeBatch(files: readonly { path: string; content: string }[], durable: boolean, mode?: number): Promise<void> {
  const CHUNK = 256; // open descriptors at a time, well under the usual limit of 1,024
  const written: string[] = [];
  try {
    for (let start = 0; start < files.length; start += CHUNK) {
      const fds: number[] = [];
      try {
        for (const { path, content } of files.slice(start, start + CHUNK)) {
          let fd: number;
          try {
            fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
          } catch (error) {
            throw fsError(`creating ${path}`, error);
          }
          fds.push(fd);
          written.push(path);
          try {
            if (mode !== undefined) fs.fchmodSync(fd, mode);
            fs.writeSync(fd, content);
          } catch (error) {
            throw fsError(`writing ${path}`, error);
          }
        }
        if (durable) await Promise.all(fds.map((fd, i) => datasync(fd, written[start + i]!)));
      } finally {
        for (const fd of fds) fs.closeSync(fd);
      }
      if (!durable) await new Promise((resolve) => setImmediate(resolve)); // let the event loop breathe between chunks
    }
  } catch (error) {
    for (const path of written) fs.rmSync(path, { force: true });
    throw error;
  }
}

function datasync(fd: number, path: string): Promise<void> {
  return new Promise((resolve, reject) => fs.fdatasync(fd, (error) => (error ? reject(fsError(`syncing ${path}`, error)) : resolve())));
}

/**
 * rename(2) `from` to `to`. Returns false when `from` is gone (another
 * process moved it first: a lost race, invariant I3); throws on anything else.
 * When `to` is a name only this caller uses (a claim), an ENOENT or EIO after
 * which `to` exists is a rename that succeeded but whose reply was lost: on
 * NFS a retransmitted RENAME finds its source gone (RFC 1813 4.5; Postfix's
 * sane_rename does the same check), and a lost reply can surface as EIO.
 */
export function move(from: string, to: string, toIsOurs = false): boolean {
  try {
    fs.renameSync(from, to);
    return true;
  } catch (error) {
    const code = errnoOf(error);
    if (toIsOurs && (code === 'ENOENT' || code === 'EIO') && fs.existsSync(to)) return true;
    if (code !== 'ENOENT') throw fsError(`moving ${from} to ${to}`, error);
    return false;
  }
}

export type ReadOutcome =
  | { ok: true; text: string; mtimeMs: number; fd?: number }
  | { ok: false; gone: true }
  | { ok: false; gone: false; reason: string; canAppend: boolean };

/**
 * Read a job file without trusting it: never follows a symlink (O_NOFOLLOW),
 * never blocks on a FIFO (O_NONBLOCK), and refuses anything that is not a
 * regular file or is larger than `maxBytes`. With `keepForAppend` (a fresh
 * claim), the file is opened for appending too and its descriptor is kept
 * open in the result, so ending the claim costs one write and one rename.
 */
export function readJobFile(path: string, maxBytes: number, keepForAppend = false): ReadOutcome {
  let fd: number;
  try {
    fd = fs.openSync(path, (keepForAppend ? O_RDWR | O_APPEND : O_RDONLY) | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = errnoOf(error);
    if (keepForAppend && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) {
      return readJobFile(path, maxBytes, false); // readable but not writable by us: appends will say why they fail
    }
    if (code === 'ENOENT') return { ok: false, gone: true };
    if (code === 'ELOOP') return { ok: false, gone: false, reason: 'a symbolic link, not a job file', canAppend: false };
    if (code === 'EISDIR') return { ok: false, gone: false, reason: 'a directory, not a regular file', canAppend: false };
    if (code === 'EACCES' || code === 'EPERM') {
      return { ok: false, gone: false, reason: `unreadable (${code}): check its owner and mode`, canAppend: false };
    }
    throw fsError(`opening ${path}`, error);
  }
  let keep = false;
  try {
    const stat = fs.fstatSync(fd);
    if (!stat.isFile()) return { ok: false, gone: false, reason: `a ${kindOf(stat)}, not a regular file`, canAppend: false };
    if (stat.size > maxBytes) {
      return { ok: false, gone: false, reason: `${stat.size} bytes, over the limit of ${maxBytes} (maxJobBytes)`, canAppend: true };
    }
    const buffer = Buffer.allocUnsafe(stat.size);
    let offset = 0;
    while (offset < stat.size) {
      const n = fs.readSync(fd, buffer, offset, stat.size - offset, offset);
      if (n === 0) break;
      offset += n;
    }
    const text = buffer.toString('utf8', 0, offset);
    keep = keepForAppend;
    return keep ? { ok: true, text, mtimeMs: stat.mtimeMs, fd } : { ok: true, text, mtimeMs: stat.mtimeMs };
  } catch (error) {
    return { ok: false, gone: false, reason: `unreadable (${errnoOf(error) ?? String(error)})`, canAppend: false };
  } finally {
    if (!keep) fs.closeSync(fd);
  }
}

/**
 * Append one line to an existing regular file, starting a new line first if
 * the file does not end with one (a torn write, or an outsider's envelope
 * without its newline). Returns false when the file is gone (its claim was
 * recovered by another process).
 */
export function appendLine(path: string, line: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(path, O_RDWR | O_APPEND | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`appending to ${path}`, error);
  }
  try {
    const { size } = fs.fstatSync(fd);
    const last = Buffer.alloc(1);
    if (size > 0 && fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] !== 0x0a) line = `\n${line}`;
    fs.writeSync(fd, line);
  } catch (error) {
    throw fsError(`appending to ${path}`, error);
  } finally {
    fs.closeSync(fd);
  }
  return true;
}

/** Names in a directory; a missing directory reads as empty. */
export function listDir(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw fsError(`listing ${dir}`, error);
  }
}

function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'directory';
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isSocket()) return 'socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'device';
  return 'special file';
}

/**
 * fsync of directories with group commit: a caller's promise resolves after
 * an fsync that started after its call, and callers waiting together share
 * one. Each directory stays open, so a sync is one fsync, not open+fsync+close.
 */
export class DirSyncer {
  #pending = new Map<string, { promise: Promise<void>; started: boolean }>();
  #fds = new Map<string, number>();

  sync(dir: string): Promise<void> {
    const queued = this.#pending.get(dir);
    if (queued && !queued.started) return queued.promise;
    const previous = queued?.promise.catch(() => undefined) ?? Promise.resolve();
    const entry = { promise: Promise.resolve(), started: false };
    entry.promise = previous.then(() => {
      entry.started = true;
      return this.#fsync(dir).finally(() => {
        if (this.#pending.get(dir) === entry) this.#pending.delete(dir);
      });
    });
    this.#pending.set(dir, entry);
    return entry.promise;
  }

  /** Close the directories, once no sync is pending. */
  async close(): Promise<void> {
    await Promise.all([...this.#pending.values()].map((p) => p.promise.catch(() => undefined)));
    for (const fd of this.#fds.values()) fs.closeSync(fd);
    this.#fds.clear();
  }

  #fsync(dir: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const fail = (error: unknown): void => reject(fsError(`syncing directory ${dir}`, error));
      let fd = this.#fds.get(dir);
      try {
        if (fd === undefined) {
          fd = fs.openSync(dir, O_RDONLY);
          this.#fds.set(dir, fd);
        }
        fs.fsync(fd, (error) => (error ? fail(error) : resolve()));
      } catch (error) {
        fail(error);
      }
    });
  }
}
