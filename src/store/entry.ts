/**
 * One directory entry, looked at or deleted without following a link. Each
 * comes in two strengths: the plain one treats only ENOENT as "nothing
 * there" and throws on anything else (a caller that must not act on a
 * guess); the quiet one treats every error as "nothing there" or "nothing to
 * do" (a best-effort probe or a leftover that the next sweep or fsck meets
 * again).
 */
import fs from 'node:fs';
import { errnoOf, fsError } from './errors.js';

/** The entry at `path` (a link itself, not what it names), or undefined when there is none. */
export function lstatOrGone(path: string): fs.Stats | undefined {
  try {
    // throwIfNoEntry: an absent entry is the common answer (a job's deps/ID at every ending), and the
    // ENOENT error Node would build for it costs four times the lstat itself (bench/core.js drain)
    return fs.lstatSync(path, { throwIfNoEntry: false });
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return undefined;
    throw fsError(`checking ${path}`, error);
  }
}

/** The entry at `path`, or undefined when it cannot be looked at, for whatever reason. */
export function lstatQuietly(path: string): fs.Stats | undefined {
  try {
    return fs.lstatSync(path, { throwIfNoEntry: false });
  } catch {
    return undefined;
  }
}

/** Delete the file at `path` (an empty directory with `directory`); false when it was gone already. */
export function unlinkOrGone(path: string, directory = false): boolean {
  try {
    if (directory) fs.rmdirSync(path);
    else fs.unlinkSync(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`deleting ${path}`, error);
  }
}

/** Delete the file at `path` if it can be; any failure is left to whoever looks next. */
export function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // gone already, or not ours to delete: the caller's next look finds it
  }
}
