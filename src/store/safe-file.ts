/**
 * Reading and replacing the library's own non-job files (dirqueue.json,
 * workers/.clock, heartbeats, counters, the sweep lock, `dirq metrics
 * --output`) without trusting what is at their names: they are opened by
 * open.ts (never following a link, never blocking on a FIFO), and a file is
 * replaced by renaming a fresh file over its name, which
 * replaces a symbolic link itself, never its target. The directories a queue
 * is made of are opened the same way (O_DIRECTORY | O_NOFOLLOW) to chmod
 * them, so a link put in place of one is never followed either.
 */
import fs from 'node:fs';
import { basename, dirname } from 'node:path';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { writeNew } from './files.js';
import { describeKind, openRegular } from './open.js';
import { replacementName } from './names.js';

const { O_RDONLY, O_NOFOLLOW, O_NONBLOCK, O_DIRECTORY } = fs.constants;

/** The kind of what is at `path` when it is not a regular file, or undefined when it is one (or nothing is there). */
export function notRegular(path: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(path);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw fsError(`checking ${path}`, error);
  }
  return stat.isFile() ? undefined : describeKind(stat);
}

/** A typed refusal to use `path`, which is a `kind`, where a regular file belongs. `todo` says what to do. */
export function badFile(path: string, kind: string, todo: string): DirQueueError {
  return new DirQueueError(
    'EBADFILE',
    `${path} is ${kind}, not a regular file of its own: dirqueue never follows symbolic links, opens special files or writes into a file with other names that it did not make; ${todo}`,
  );
}

/**
 * The text of a small regular file, or undefined when it is missing. Throws
 * EBADFILE (saying `todo`) when something else is at `path`, or when it is
 * larger than `maxBytes` (a settings file is never megabytes).
 */
export function readSmallFile(path: string, maxBytes: number, todo: string): string | undefined {
  const opened = openRegular(path, O_RDONLY);
  if (opened === undefined) return undefined;
  if (typeof opened !== 'number') throw badFile(path, opened.kind, todo);
  try {
    const { size } = fs.fstatSync(opened);
    if (size > maxBytes)
      throw new DirQueueError(
        'EBADFILE',
        `${path} is ${size} bytes, more than the ${maxBytes} such a file can hold: ${todo}`,
      );
    return fs.readFileSync(opened, 'utf8');
  } catch (error) {
    throw fsError(`reading ${path}`, error);
  } finally {
    fs.closeSync(opened);
  }
}

/**
 * Replace `target` with a file holding `content`, atomically: a reader sees
 * the old file or the new one, never part of one. The new file is created
 * exclusively in `tmpDir` (on the target's filesystem) under a name no other
 * writer uses (`.NAME.PID.RANDOM`: a dot file, which readers of tmp/ skip and
 * sweeps delete by age if a crash leaves it), written, fsynced, renamed over
 * `target`, and the target's directory is fsynced. rename(2) replaces a
 * symbolic link at `target` itself, never the file it points to.
 * `mode` is set exactly, whatever the umask.
 */
export async function replaceFile(
  target: string,
  content: string,
  options: { tmpDir: string; mode?: number | undefined },
): Promise<void> {
  const tmp = `${options.tmpDir}/${replacementName(basename(target))}`;
  await writeNew(tmp, content, true, options.mode);
  try {
    fs.renameSync(tmp, target);
  } catch (error) {
    fs.rmSync(tmp, { force: true });
    throw fsError(`replacing ${target}`, error);
  }
  await syncDir(dirname(target));
}

/** fsync a directory, so a rename in it survives a power cut. */
async function syncDir(dir: string): Promise<void> {
  let fd: number;
  try {
    fd = fs.openSync(dir, O_RDONLY | O_DIRECTORY);
  } catch (error) {
    throw fsError(`syncing directory ${dir}`, error);
  }
  try {
    await new Promise<void>((resolve, reject) => fs.fsync(fd, (error) => (error ? reject(error) : resolve())));
  } catch (error) {
    throw fsError(`syncing directory ${dir}`, error);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Create the directory `path` if it is missing and, with `mode`, chmod it,
 * never through a symbolic link: a link (or a file) at `path` is refused with
 * EBADFILE, saying `todo`.
 */
export function makeDirNoFollow(path: string, mode: number | undefined, todo: string): void {
  try {
    fs.mkdirSync(path);
  } catch (error) {
    if (errnoOf(error) !== 'EEXIST') throw fsError(`creating ${path}`, error);
  }
  if (mode !== undefined) chmodDirNoFollow(path, mode, todo);
  else checkDir(path, todo);
}

/** chmod the directory `path` through a descriptor opened without following a link. */
export function chmodDirNoFollow(path: string, mode: number, todo: string): void {
  const fd = openDir(path, todo);
  try {
    fs.fchmodSync(fd, mode);
  } catch (error) {
    throw fsError(`setting the mode of ${path}`, error);
  } finally {
    fs.closeSync(fd);
  }
}

/** Throws EBADFILE when `path` is not a directory (a symbolic link to one is not). */
export function checkDir(path: string, todo: string): void {
  fs.closeSync(openDir(path, todo));
}

function openDir(path: string, todo: string): number {
  try {
    return fs.openSync(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_NONBLOCK);
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ELOOP' || code === 'ENOTDIR') {
      const kind = code === 'ELOOP' ? 'a symbolic link' : describeKind(fs.lstatSync(path));
      throw new DirQueueError(
        'EBADFILE',
        `${path} is ${kind}, not a directory: dirqueue never follows symbolic links inside a queue; ${todo}`,
      );
    }
    throw fsError(`opening ${path}`, error);
  }
}
