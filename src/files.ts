/**
 * The filesystem primitives every state change is made of.
 *
 * Why synchronous calls: each of these is one small metadata syscall on a
 * local filesystem. Measured here (Node 20, ext4, 5,000 ops each), the
 * libuv-threadpool round trip dominates: rename 27 us sync vs 72 us async;
 * create+write+rename 69 us vs 274 us; open+fstat+read of a job 11 us vs
 * 207 us. The async forms would cap a drain at a few thousand jobs/s, below
 * BullMQ. fsync is the exception: it can take milliseconds, so it runs
 * asynchronously, concurrent callers share one directory fsync (group commit),
 * a large durable batch is made durable by one syncfs (syncfs.ts), and a
 * smaller one runs its fdatasyncs concurrently, which the disk merges (SYNC_CHUNK).
 */
import fs from 'node:fs';
import { dirname } from 'node:path';
import { errnoOf, fsError } from './errors.js';
import { syncFilesystem, SYNCFS_MIN_FILES } from './syncfs.js';

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
 * Files whose fdatasyncs writeBatch starts together. Measured here (ext4 on
 * virtio, fresh 134-byte files): fdatasyncSync one after another runs
 * 5.8-6.5k/s; fs.fdatasync with many in flight 8-12k/s on libuv's default 4
 * threads and 18-26k/s with UV_THREADPOOL_SIZE=64, because the block layer
 * merges concurrent flushes. They merge best when started in bursts: with 64
 * threads, starting each file's fdatasync as soon as it was written was 0.6-0.75x
 * as fast as bursts. Writing the next chunk while the previous one syncs (at
 * most two chunks open, 256 descriptors) made create+write+fdatasync 1.3x
 * faster than write-then-sync chunks of 256 with 4 threads, 1.05-1.1x with 16 or 64.
 */
export const SYNC_CHUNK = 128;

/**
 * Create and write many files, each like writeNew; the call resolves once
 * every file is on stable storage when `durable` (only then may the caller
 * rename them). A batch of SYNCFS_MIN_FILES or more whose `syncfs` the
 * caller allows is written whole and made durable by one syncfs (syncfs.ts);
 * otherwise every SYNC_CHUNK written files start their fdatasyncs together
 * and the next chunk is written meanwhile. If any file fails, every file of
 * the batch is removed and the error thrown: all or nothing.
 */
export async function writeBatch(
  files: readonly { path: string; content: string }[],
  durable: boolean,
  options: { mode?: number | undefined; syncfs?: boolean } = {},
): Promise<void> {
  const { mode } = options;
  const whole = durable && options.syncfs === true && files.length >= SYNCFS_MIN_FILES;
  const written: string[] = [];
  const syncs = new SyncBursts();
  try {
    for (const [i, { path, content }] of files.entries()) {
      if (i % SYNC_CHUNK === 0 && i > 0) {
        if (durable && !whole) await syncs.waitFor(SYNC_CHUNK); // the chunk before the previous one is done
        else await new Promise((resolve) => setImmediate(resolve)); // nothing waits: let the event loop breathe
      }
      let fd: number;
      try {
        fd = fs.openSync(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW, 0o666);
      } catch (error) {
        throw fsError(`creating ${path}`, error);
      }
      written.push(path);
      try {
        if (mode !== undefined) fs.fchmodSync(fd, mode);
        fs.writeSync(fd, content);
      } catch (error) {
        fs.closeSync(fd);
        throw fsError(`writing ${path}`, error);
      }
      if (!durable || whole) fs.closeSync(fd);
      else if (syncs.add(fd, path) === SYNC_CHUNK) syncs.start();
    }
    if (whole && !(await syncFilesystem(dirname(files[0]!.path)))) await syncEach(written, syncs);
    syncs.start();
    await syncs.waitFor(0);
  } catch (error) {
    await syncs.abandon();
    for (const path of written) fs.rmSync(path, { force: true });
    throw error;
  }
}

/** fdatasync files already written and closed, in bursts: when one syncfs could not make them durable. */
async function syncEach(paths: readonly string[], syncs: SyncBursts): Promise<void> {
  for (const path of paths) {
    let fd: number;
    try {
      fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW);
    } catch (error) {
      throw fsError(`opening ${path} to sync it`, error);
    }
    if (syncs.add(fd, path) === SYNC_CHUNK) {
      syncs.start();
      await syncs.waitFor(SYNC_CHUNK);
    }
  }
}

/**
 * Written descriptors, fdatasynced in bursts on libuv's thread pool and then
 * closed. Keeps the first failure; a descriptor is closed only after its own
 * fdatasync returned.
 */
class SyncBursts {
  #added: { fd: number; path: string }[] = [];
  #inFlight = 0;
  #failure: Error | undefined;
  #wake: (() => void) | undefined;

  /** Add a written descriptor; returns how many wait for start(). */
  add(fd: number, path: string): number {
    return this.#added.push({ fd, path });
  }

  /** Start the fdatasyncs of every added descriptor at once. */
  start(): void {
    for (const { fd, path } of this.#added.splice(0)) {
      this.#inFlight++;
      const done = (error: unknown): void => {
        if (error) this.#failure ??= fsError(`syncing ${path}`, error);
        try {
          fs.closeSync(fd);
        } catch (closeError) {
          this.#failure ??= fsError(`closing ${path}`, closeError);
        }
        this.#inFlight--;
        this.#wake?.();
      };
      try {
        fs.fdatasync(fd, done);
      } catch (error) {
        done(error);
      }
    }
  }

  /** Resolves once at most `n` are in flight, then throws the first failure, if any. */
  async waitFor(n: number): Promise<void> {
    while (this.#inFlight > n) await new Promise<void>((resolve) => (this.#wake = resolve));
    this.#wake = undefined;
    if (this.#failure) throw this.#failure;
  }

  /** After a failure: close what was never started, and wait out what is in flight. */
  async abandon(): Promise<void> {
    for (const { fd } of this.#added.splice(0)) {
      try {
        fs.closeSync(fd);
      } catch {
        // the batch already failed with the error that matters
      }
    }
    await this.waitFor(0).catch(() => undefined);
  }
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

/** What a non-regular file is, for messages. */
export function kindOf(stat: fs.Stats): string {
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
