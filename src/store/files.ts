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
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { createExclusive, openRegularStat } from './open.js';
import { syncFilesystem, SYNCFS_MIN_FILES } from './syncfs.js';

const { O_RDONLY, O_WRONLY, O_RDWR, O_APPEND, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/**
 * Create `path` exclusively (O_EXCL: never reuse or follow what is there),
 * write `content`, fsync it when `durable`. On failure nothing is left behind.
 * `mode` (a group-shared queue's) is set exactly, whatever the umask.
 */
export async function writeNew(path: string, content: string, durable: boolean, mode?: number): Promise<void> {
  if (!durable) {
    writeNewNow(path, content, mode);
    return;
  }
  const fd = createWritten(path, content, mode);
  try {
    await new Promise<void>((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
  } catch (error) {
    closeQuietly(fd);
    removeQuietly(path);
    throw fsError(`writing ${path}`, error);
  }
  closeWritten(fd, path);
}

/**
 * writeNew without the fsync, done when it returns: a hot path (every
 * enqueue that is not durable) need not pay for a promise and its await.
 */
export function writeNewNow(path: string, content: string, mode?: number): void {
  closeWritten(createWritten(path, content, mode), path);
}

/** Close a file just written at `path`; if even that fails (NFS reports a failed write at close), remove it. */
function closeWritten(fd: number, path: string): void {
  try {
    closeFile(fd, `closing ${path}`);
  } catch (error) {
    removeQuietly(path);
    throw error;
  }
}

/**
 * close(2) that reports its failure as a DirQueueError saying `what`. On NFS
 * close is where written data reaches the server, so its EIO is a failed
 * write. The descriptor is freed either way (Linux frees it before it flushes).
 */
export function closeFile(fd: number, what: string): void {
  try {
    fs.closeSync(fd);
  } catch (error) {
    throw fsError(what, error);
  }
}

/** close(2) when a failure was already reported, or what was read is read: the descriptor is freed either way. */
export function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // the error that matters is the caller's, or none: nothing was left to write
  }
}

/**
 * Remove a file this process made and no longer wants (a tmp/ file of a
 * failed write), when it can. When it cannot (the filesystem failed or went
 * read-only meanwhile), the file stays for the sweeps, which remove a tmp/
 * file once its writer is gone or it is old (maintenance/clean.ts), and the
 * caller's own error is what it reports.
 */
export function removeQuietly(path: string): void {
  try {
    fs.rmSync(path, { force: true });
  } catch {
    // left for the sweeps, as above
  }
}

/**
 * Create `path` exclusively, set `mode` when given, and write `content`;
 * returns the descriptor, still open for the caller's fdatasync. A failed
 * write closes it and removes the file.
 */
function createWritten(path: string, content: string, mode: number | undefined): number {
  let fd: number;
  try {
    fd = createExclusive(path, O_WRONLY, 0o666);
  } catch (error) {
    throw fsError(`creating ${path}`, error);
  }
  try {
    if (mode !== undefined) fs.fchmodSync(fd, mode);
    writeAll(fd, Buffer.from(content));
  } catch (error) {
    closeQuietly(fd);
    removeQuietly(path);
    throw fsError(`writing ${path}`, error);
  }
  return fd;
}

/**
 * Write all of `bytes` at `position`, or at the descriptor's offset (the end,
 * with O_APPEND) when it is omitted. write(2) may write less than asked, and
 * on a nearly full disk it does: the rest is written by further calls, and
 * the one that finds no space at all throws ENOSPC. Returns nothing; throws
 * with `written` (bytes that did reach the file) on the error, so the caller
 * can undo them.
 */
export function writeAll(fd: number, bytes: Buffer, position?: number): void {
  let written = 0;
  try {
    while (written < bytes.length) {
      const n = fs.writeSync(
        fd,
        bytes,
        written,
        bytes.length - written,
        position === undefined ? null : position + written,
      );
      // a regular file never writes 0 of a non-empty request unless it cannot: treat it as full, not as a loop
      if (n <= 0) throw Object.assign(new Error('write(2) wrote nothing'), { code: 'ENOSPC' });
      written += n;
    }
  } catch (error) {
    throw Object.assign(error as Error, { written });
  }
}

/** Where a file ends: its size, and whether its last byte is a newline (an empty file counts as ending in one). */
export interface Tail {
  size: number;
  endsWithNewline: boolean;
}

export function tailOf(fd: number): Tail {
  const { size } = fs.fstatSync(fd);
  const last = Buffer.alloc(1);
  return { size, endsWithNewline: size === 0 || (fs.readSync(fd, last, 0, 1, size - 1) === 1 && last[0] === 0x0a) };
}

/**
 * Append `line` to the file open as `fd` (O_APPEND), which ends as `tail`
 * says, starting a new line first if it does not end with one. All or
 * nothing: when the disk fills mid-line, the bytes that did land are cut off
 * again (ftruncate back to `tail.size`, unless someone else appended
 * meanwhile), so the file is as it was and the caller may end the job
 * another way. Returns the new tail; throws a DirQueueError naming `path`.
 */
export function appendAll(fd: number, line: string, tail: Tail, path: string): Tail {
  const bytes = Buffer.from(tail.endsWithNewline ? line : `\n${line}`);
  try {
    writeAll(fd, bytes);
  } catch (error) {
    const written = (error as { written?: number }).written ?? 0;
    if (written > 0) cutBack(fd, tail.size, written);
    throw fsError(`appending to ${path}`, error);
  }
  return { size: tail.size + bytes.length, endsWithNewline: bytes.at(-1) === 0x0a };
}

/** Undo `written` bytes appended to a file that was `size` long, if they are still its tail. */
function cutBack(fd: number, size: number, written: number): void {
  try {
    if (fs.fstatSync(fd).size === size + written) fs.ftruncateSync(fd, size);
  } catch {
    // the append already failed with the error that matters; a torn tail is skipped by readers (envelope.ts)
  }
}

/**
 * Cut the file at `path` back to `size`, never through a symbolic link: an
 * ending whose rename failed takes back the line it appended (its claim
 * still holds the file, so nobody else appends to it).
 */
export function truncateFile(path: string, size: number): void {
  const opened = openRegularStat(path, O_WRONLY, { hardLinks: 'allow' });
  if (opened === undefined)
    throw new DirQueueError('ENOENT', `restoring ${path} failed: it is gone (its claim was taken back)`);
  if ('kind' in opened)
    throw new DirQueueError(
      'EBADFILE',
      `restoring ${path} failed: it is ${opened.kind}, not the job file this process holds`,
    );
  const { fd } = opened;
  try {
    fs.ftruncateSync(fd, size);
  } catch (error) {
    throw fsError(`restoring ${path}`, error);
  } finally {
    closeQuietly(fd);
  }
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
        if (durable && !whole)
          await syncs.waitFor(SYNC_CHUNK); // the chunk before the previous one is done
        else await new Promise((resolve) => setImmediate(resolve)); // nothing waits: let the event loop breathe
      }
      const fd = createWritten(path, content, mode);
      written.push(path);
      if (!durable || whole) closeFile(fd, `closing ${path}`);
      else if (syncs.add(fd, path) === SYNC_CHUNK) syncs.start();
    }
    if (whole && !(await syncFilesystem(dirname(files[0]!.path)))) await syncEach(written, syncs);
    syncs.start();
    await syncs.waitFor(0);
  } catch (error) {
    await syncs.abandon();
    for (const path of written) removeQuietly(path);
    throw error;
  }
}

/** fdatasync files already written and closed, in bursts: when one syncfs could not make them durable. */
async function syncEach(paths: readonly string[], syncs: SyncBursts): Promise<void> {
  for (const path of paths) {
    let fd: number;
    try {
      fd = fs.openSync(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK); // a FIFO swapped in meanwhile must not block the batch
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
export function move(from: string, to: string, toIsOurs = false, mayHaveOtherNames = false): boolean {
  try {
    fs.renameSync(from, to);
  } catch (error) {
    const code = errnoOf(error);
    if (toIsOurs && (code === 'ENOENT' || code === 'EIO') && fs.existsSync(to)) return true;
    if (code !== 'ENOENT') throw fsError(`moving ${from} to ${to}`, error);
    return false;
  }
  if (mayHaveOtherNames) {
    try {
      dropSameFileSource(from, to);
    } catch {
      // the rename is done; a name left at `from` (an I/O error looking) is what fsck reports as a duplicate
    }
  }
  return true;
}

/**
 * When `from` and `to` were two names of one file, rename(2) does nothing and
 * reports success: the file stays at both names. In a shared queue a member
 * of the group can make that happen by hard-linking a job file at the name
 * its next state will give it (done/ID for a claimed job), and the job would
 * then be in two states, its claim never ending (a drain waits for it
 * forever). So after a rename of a file that may have other names, a `from`
 * still there as the same file as `to` is unlinked: the file stays at `to`,
 * where the rename meant to put it. Costs an lstat or two, so only a caller
 * that knows the file has other names (or a sweep, off the hot path) asks.
 */
function dropSameFileSource(from: string, to: string): void {
  const left = fs.lstatSync(from, { throwIfNoEntry: false });
  if (left !== undefined && sameFile(left, to)) fs.unlinkSync(from);
}

/** Whether `path` names the file `stat` is of (same device and inode); false when nothing is there. */
export function sameFile(stat: fs.Stats, path: string): boolean {
  const other = fs.lstatSync(path, { throwIfNoEntry: false });
  return other !== undefined && other.ino === stat.ino && other.dev === stat.dev;
}

/**
 * Set a job file's atime and mtime to `seconds` (since the epoch), through a
 * descriptor from store/open.ts, never by name: utimes(2) follows a symbolic
 * link, and in a shared queue a member of the group may put one at a job's
 * name in delayed/, so that a root sweep's promotion would stamp the time of
 * any file on the host it names. A file with other names (a hard link to a
 * file elsewhere, which fs.protected_hardlinks lets the member make of a file
 * it may write, yet not re-date: only an owner sets a time other than now) is
 * left as it is too. Returns false when nothing was set: gone, not a regular
 * file, or a file with other names; other failures (EPERM when this process
 * does not own the file) throw, keeping their code.
 */
export function setJobFileTimes(path: string, seconds: number): boolean {
  const opened = openRegularStat(path, O_RDONLY);
  if (opened === undefined || 'kind' in opened) return false;
  try {
    if (opened.stat.nlink > 1) return false;
    fs.futimesSync(opened.fd, seconds, seconds);
    return true;
  } finally {
    fs.closeSync(opened.fd);
  }
}

/** The default largest job file a reader takes (Queue's maxJobBytes, fsck's): a bigger one is set aside. */
export const DEFAULT_MAX_JOB_BYTES = 16 * 1024 * 1024;

export type ReadOutcome =
  | { ok: true; text: string; mtimeMs: number; fd?: number; tail: Tail }
  | { ok: false; gone: true }
  /** `ioError`: the read itself failed (EIO, ...), which says nothing of the file: a claim puts it back rather than aside. */
  | { ok: false; gone: false; reason: string; canAppend: boolean; ioError?: DirQueueError };

/**
 * Read a job file without trusting it: never follows a symlink (O_NOFOLLOW),
 * never blocks on a FIFO (O_NONBLOCK), and refuses anything that is not a
 * regular file or is larger than `maxBytes`. With `keepForAppend` (a fresh
 * claim), the file is opened for appending too and its descriptor is kept
 * open in the result, so ending the claim costs one write and one rename.
 */
export function readJobFile(path: string, maxBytes: number, keepForAppend = false): ReadOutcome {
  let opened: ReturnType<typeof openRegularStat>;
  try {
    opened = openRegularStat(path, keepForAppend ? O_RDWR | O_APPEND : O_RDONLY, { hardLinks: 'allow' });
  } catch (error) {
    const code = (error as DirQueueError).code;
    if (keepForAppend && (code === 'EACCES' || code === 'EPERM' || code === 'EROFS')) {
      return readJobFile(path, maxBytes, false); // readable but not writable by us: appends will say why they fail
    }
    if (code === 'EACCES' || code === 'EPERM') {
      return { ok: false, gone: false, reason: `unreadable (${code}): check its owner and mode`, canAppend: false };
    }
    throw error;
  }
  if (opened === undefined) return { ok: false, gone: true };
  if ('kind' in opened) {
    const reason =
      opened.kind === 'a symbolic link' ? 'a symbolic link, not a job file' : `${opened.kind}, not a regular file`;
    return { ok: false, gone: false, reason, canAppend: false };
  }
  const { fd, stat } = opened;
  let keep = false;
  try {
    if (stat.size > maxBytes) {
      return {
        ok: false,
        gone: false,
        reason: `${stat.size} bytes, over the limit of ${maxBytes} (maxJobBytes)`,
        canAppend: true,
      };
    }
    const buffer = Buffer.allocUnsafe(stat.size);
    let offset = 0;
    while (offset < stat.size) {
      const n = fs.readSync(fd, buffer, offset, stat.size - offset, offset);
      if (n === 0) break;
      offset += n;
    }
    const text = buffer.toString('utf8', 0, offset);
    const tail = { size: offset, endsWithNewline: offset === 0 || buffer[offset - 1] === 0x0a };
    keep = keepForAppend;
    return keep ? { ok: true, text, mtimeMs: stat.mtimeMs, fd, tail } : { ok: true, text, mtimeMs: stat.mtimeMs, tail };
  } catch (error) {
    return {
      ok: false,
      gone: false,
      reason: `unreadable (${errnoOf(error) ?? String(error)})`,
      canAppend: false,
      ioError: fsError(`reading ${path}`, error),
    };
  } finally {
    if (!keep) closeQuietly(fd);
  }
}

/**
 * Append one line to an existing regular file, starting a new line first if
 * the file does not end with one (a torn write, or an outsider's envelope
 * without its newline). All or nothing, as appendAll. Returns where the file
 * ends now, or undefined when it is gone (its claim was recovered by another process).
 * `queueMode`: the queue's file mode, which an error names as the fix when
 * this process may not write the file (jobFileDenied).
 */
export function appendLine(path: string, line: string, queueMode?: number): Tail | undefined {
  let opened: ReturnType<typeof openRegularStat>;
  try {
    opened = openRegularStat(path, O_RDWR | O_APPEND, { hardLinks: 'allow' });
  } catch (error) {
    throw jobFileDenied(`appending to ${path}`, path, error, queueMode) ?? error;
  }
  if (opened === undefined) return undefined;
  if ('kind' in opened)
    throw new DirQueueError(
      'EBADFILE',
      `appending to ${path} failed: it is ${opened.kind}, not a job file; move it out of the queue`,
    );
  const { fd } = opened;
  let tail: Tail;
  try {
    try {
      tail = tailOf(fd);
    } catch (error) {
      throw fsError(`appending to ${path}`, error);
    }
    tail = appendAll(fd, line, tail, path);
  } catch (error) {
    closeQuietly(fd);
    throw error;
  }
  closeFile(fd, `appending to ${path}`);
  return tail;
}

/**
 * When this process may not write the job file `path` (EACCES, EPERM): an
 * error that names the file, its mode and owner, and the fix. What is wrong
 * is the file, not the queue's directories (fsError's advice): most often a
 * producer made it without the queue's mode (FORMAT.md), so another user's
 * worker can rename it but not append to it. Undefined for other errors.
 */
export function jobFileDenied(
  what: string,
  path: string,
  cause: unknown,
  queueMode: number | undefined,
): DirQueueError | undefined {
  const code = errnoOf(cause);
  if (code !== 'EACCES' && code !== 'EPERM') return undefined;
  let stat: fs.Stats;
  try {
    stat = fs.statSync(path);
  } catch {
    return undefined; // gone meanwhile: fsError's advice is all there is to say
  }
  const { problem, fix } = unwritableJobFile(path, stat, queueMode);
  return new DirQueueError(code, `${what} failed: ${problem}: ${fix}`, { cause });
}

/**
 * Who may not write the job file `path`, with its mode and owner (`stat`),
 * and the fix: chmod it to the queue's mode. Also said by a pool that finds
 * a claimed job's file unwritable before running it (pool.ts).
 */
export function unwritableJobFile(
  path: string,
  stat: fs.Stats,
  queueMode: number | undefined,
): { problem: string; fix: string } {
  const who =
    process.getuid === undefined ? 'this process' : `this process (uid ${process.getuid()}, gid ${process.getgid!()})`;
  const octal = (mode: number): string => `0${mode.toString(8).padStart(3, '0')}`;
  const problem = `${who} may not write the job file ${path} (mode ${octal(stat.mode & 0o7777)}, owner uid ${stat.uid}, gid ${stat.gid})`;
  const fix =
    queueMode === undefined
      ? `make it writable to the workers: chmod it to the queue's mode (its "mode" in dirqueue.json, e.g. chmod 0660 ${path}, as its owner or root), or run the workers as its owner`
      : `chmod it to the queue's mode (chmod ${octal(queueMode)} ${path}, as its owner or root); producers must create job files with that mode (FORMAT.md)`;
  return { problem, fix };
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

/**
 * Each name in a directory, streamed (opendir, read in batches) rather than
 * held: a million names in one array cost about 60 MiB. A missing directory
 * reads as empty.
 */
export function eachName(dir: string, visit: (name: string) => void): void {
  const handle = openListing(dir);
  if (handle === undefined) return;
  try {
    for (let entry = handle.readSync(); entry !== null; entry = handle.readSync()) visit(entry.name);
  } catch (error) {
    throw fsError(`listing ${dir}`, error);
  } finally {
    handle.closeSync();
  }
}

/**
 * eachName, `slice` names at a time with the event loop's other work in
 * between: listing a million names at once holds the loop for about half a
 * second, a slice of 4,096 for a few milliseconds. Stops early when
 * `going()` turns false (checked between slices).
 */
export async function eachNameInSlices(
  dir: string,
  visit: (name: string) => void,
  going: () => boolean,
  slice = 4096,
): Promise<void> {
  const handle = openListing(dir);
  if (handle === undefined) return;
  try {
    for (let entry = handle.readSync(), n = 1; entry !== null; entry = handle.readSync(), n++) {
      visit(entry.name);
      if (n % slice !== 0) continue;
      await new Promise((resolve) => setImmediate(resolve));
      if (!going()) return;
    }
  } catch (error) {
    throw fsError(`listing ${dir}`, error);
  } finally {
    handle.closeSync();
  }
}

/** An opendir handle on `dir`, undefined when it is missing. */
function openListing(dir: string): fs.Dir | undefined {
  try {
    return fs.opendirSync(dir, { bufferSize: 1024 });
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw fsError(`listing ${dir}`, error);
  }
}

/**
 * listDir without blocking the event loop while the directory is read: a
 * done/ of 100,000 jobs takes about 60 ms to list, which readdir(3) spends in
 * the thread pool here; only building the array of names runs on the loop.
 */
export async function listDirAsync(dir: string): Promise<string[]> {
  try {
    return await fs.promises.readdir(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    throw fsError(`listing ${dir}`, error);
  }
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
    for (const fd of this.#fds.values()) closeQuietly(fd);
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
