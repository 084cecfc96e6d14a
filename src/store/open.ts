/**
 * Opening a name that someone else may have put something at. In a
 * group-shared queue every member of the group may put anything in its
 * directories: a symbolic link to a file outside the queue, a directory, a
 * FIFO (whose open(2) would block a process forever, deaf to signals while it
 * sits in the kernel), a hard link to a file elsewhere. So every file the
 * library reads or writes by name, job files included, is opened here: with
 * O_NOFOLLOW | O_NONBLOCK, then fstat'ed, and refused unless it is a regular
 * file; and what it is instead is named for the message.
 */
import fs from 'node:fs';
import { errnoOf, fsError } from './errors.js';

const { O_WRONLY, O_RDWR, O_CREAT, O_EXCL, O_NOFOLLOW, O_NONBLOCK } = fs.constants;

/** What a non-regular file is, for messages: "directory", "FIFO", ... */
export function kindOf(stat: fs.Stats): string {
  if (stat.isDirectory()) return 'directory';
  if (stat.isFIFO()) return 'FIFO';
  if (stat.isSocket()) return 'socket';
  if (stat.isCharacterDevice() || stat.isBlockDevice()) return 'device';
  return 'special file';
}

/** The same with its article, symbolic links included (from lstat): "a symbolic link", "a FIFO", ... */
export function describeKind(stat: fs.Stats): string {
  return stat.isSymbolicLink() ? 'a symbolic link' : `a ${kindOf(stat)}`;
}

export interface OpenOptions {
  /**
   * Open a file with other names for writing too. Only job files allow it:
   * outsiders enqueue with ln(1) as well as mv(1), and a job file is the
   * queue's to append to; the library's own files never have other names.
   */
  hardLinks?: 'allow';
}

/** An open regular file and what fstat said of it. */
export interface Opened {
  fd: number;
  stat: fs.Stats;
}

/**
 * Open `path` with `flags` plus O_NOFOLLOW | O_NONBLOCK and check it is a
 * regular file, and, when `flags` open it for writing, one with no other
 * name (unless `options.hardLinks` allows it): in a directory others may
 * write, a hard link at a name of ours can be any file they may write,
 * elsewhere (fs.protected_hardlinks lets a user link a file they may read
 * and write, root's included), which O_NOFOLLOW does not see. Returns the
 * descriptor and its stat, undefined when nothing is there, or the kind of
 * what is there instead ("a symbolic link", "a FIFO", ...). It never
 * creates: a file the library makes is made with O_EXCL, so that it is known
 * to be its own. Other failures (EACCES, EIO, ...) throw, keeping their code.
 */
export function openRegularStat(
  path: string,
  flags: number,
  options: OpenOptions = {},
): Opened | undefined | { kind: string } {
  let fd: number;
  try {
    fd = fs.openSync(path, flags | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT') return undefined;
    if (code === 'ELOOP') return { kind: 'a symbolic link' };
    if (code === 'EISDIR') return { kind: 'a directory' };
    // open(2) of a FIFO for writing without a reader, or of a socket, is ENXIO; of a device without a driver ENXIO or ENODEV
    const kind = code === 'EACCES' || code === 'EPERM' ? undefined : kindAt(path);
    if (kind !== undefined) return { kind };
    throw fsError(`opening ${path}`, error);
  }
  let stat: fs.Stats;
  try {
    stat = fs.fstatSync(fd);
  } catch (error) {
    closeQuietly(fd);
    throw fsError(`opening ${path}`, error);
  }
  const writing = (flags & (O_WRONLY | O_RDWR)) !== 0;
  if (stat.isFile() && (!writing || stat.nlink <= 1 || options.hardLinks === 'allow')) return { fd, stat };
  closeQuietly(fd);
  return { kind: stat.isFile() ? `a file with ${stat.nlink} names (a hard link)` : describeKind(stat) };
}

/**
 * Create `path` as a file of this process's own, for `access` (O_RDWR or
 * O_WRONLY): O_EXCL, so nothing already there is reused and no link is
 * followed. `mode` is filtered by the umask; callers that need it exact
 * fchmod the descriptor. Throws the system's error as it is (EEXIST tells a
 * racing creator), for the caller to word.
 */
export function createExclusive(path: string, access: number, mode: number): number {
  return fs.openSync(path, access | O_CREAT | O_EXCL | O_NOFOLLOW, mode);
}

/** openRegularStat, for callers that need only the descriptor. */
export function openRegular(path: string, flags: number): number | undefined | { kind: string } {
  const opened = openRegularStat(path, flags);
  return opened === undefined || 'kind' in opened ? opened : opened.fd;
}

/** close(2) of a descriptor opened only to look: it is freed even when close fails, and the caller's answer stands. */
function closeQuietly(fd: number): void {
  try {
    fs.closeSync(fd);
  } catch {
    // nothing was written through it
  }
}

/** What is at `path` when it is there but not a regular file (by lstat, which never opens it). */
function kindAt(path: string): string | undefined {
  try {
    const stat = fs.lstatSync(path);
    return stat.isFile() ? undefined : describeKind(stat);
  } catch {
    return undefined;
  }
}
