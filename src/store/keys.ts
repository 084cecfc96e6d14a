/**
 * Unique keys: at most one live job (in queue/, delayed/ or active/, or being
 * written in tmp/) per key. keys/KEY is a symbolic link whose target is the
 * id of the job holding the key: creating a symlink is atomic and fails with
 * EEXIST, so two enqueuers of one key cannot both win. The job releases its
 * key when it ends (done/ or failed/); a key left behind by a crash points to
 * a job that is no longer live (ended, or never renamed out of tmp/ by a
 * writer known to have died; a writer that only enqueued is not known, and
 * its tmp/ file holds the key until sweeps delete it by age) and is taken
 * over by the next enqueuer.
 */
import fs from 'node:fs';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { lstatQuietly, unlinkQuietly } from './entry.js';
import { listDir } from './files.js';
import { describeKind } from './open.js';
import { locate } from './locate.js';
import type { Layout } from './layout.js';
import { isWriterGone } from './liveness.js';
import { encodeKey, isId, keyScratchName, parseTmpName } from './names.js';

/**
 * Try to take `key` (encoded) for job `id`. Returns undefined when taken, else
 * the id of the live job holding it. When that holder is `from` and running
 * (in active/), it hands the key to `id` instead (see handOver).
 */
export function takeKey(layout: Layout, key: string, id: string, from?: string): string | undefined {
  const path = layout.file('keys', key);
  for (let tries = 0; tries < 5; tries++) {
    try {
      fs.symlinkSync(id, path);
      return undefined;
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw fsError(`taking the key ${path}`, error);
    }
    const holder = readKey(path);
    if (holder === undefined) {
      const kind = notALink(path);
      if (kind === undefined) continue; // released meanwhile
      throw new DirQueueError(
        'EBADFILE',
        `${path} is ${kind}, not a unique key (a symbolic link naming a job): dirqueue does not delete what it did not make; ` +
          `move it out of ${layout.paths.keys} (dirq fsck ${layout.root} lists such entries), then enqueue again`,
      );
    }
    if (holder === from && locate(layout, from)?.state === 'active') {
      handOver(layout, path, id);
      return undefined;
    }
    if (isLive(layout, holder)) return holder;
    grabStale(layout, path, holder, 'taking over the stale key'); // then try again to make ours
  }
  throw new DirQueueError('ECONTENTION', `could not take the key ${path}: too much contention, try again`);
}

/**
 * Point the key at `path` to job `id` in one rename over it: at no instant is
 * the key free, so no third enqueuer can slip in between the running holder
 * and its successor. The new link is made under the .stale. prefix, which
 * fsck deletes when a crash leaves one behind. The holder was read just
 * before; only a sweep elsewhere revoking it to failed/ (and so releasing the
 * key) and another enqueuer taking the key, both within that instant, would
 * see their key replaced. The holder's own ending then finds the key naming
 * another job and leaves it (releaseKey).
 */
function handOver(layout: Layout, path: string, id: string): void {
  const link = layout.file('keys', keyScratchName());
  try {
    fs.symlinkSync(id, link);
    fs.renameSync(link, path);
  } catch (error) {
    unlinkQuietly(link);
    throw fsError(`handing the key ${path} over to job ${id}`, error);
  }
}

/**
 * Remove keys/NAME when the job it names is no longer live (a key left by a
 * crash), the way takeKey takes one over: grab it by rename, and put it back
 * if it turns out to be someone's fresh key. Returns true when it was removed.
 */
export function removeStaleKey(layout: Layout, name: string): boolean {
  const path = layout.file('keys', name);
  const holder = readKey(path);
  if (holder === undefined || isLive(layout, holder)) return false;
  return grabStale(layout, path, holder, 'removing the stale key');
}

/**
 * Delete the key at `path`, read as naming the dead `holder`. Deleting it by
 * name could delete a fresh key made since it was read, so it is renamed
 * aside first (one winner among those who judged it stale) and deleted only
 * if it still names `holder`; someone's fresh key is put back, unless a third
 * enqueuer took the key meanwhile. True when the stale key was deleted;
 * false when it was gone already or fresh.
 */
function grabStale(layout: Layout, path: string, holder: string, doing: string): boolean {
  const grabbed = layout.file('keys', keyScratchName());
  try {
    fs.renameSync(path, grabbed);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`${doing} ${path}`, error);
  }
  const stale = readKey(grabbed) === holder;
  if (!stale) {
    try {
      fs.linkSync(grabbed, path);
    } catch {
      // EEXIST: a third enqueuer took the key meanwhile and keeps it
    }
  }
  unlinkQuietly(grabbed); // a directory put in place meanwhile stays: fsck reports the .stale. entry
  return stale;
}

/** The id keys/NAME names, or undefined when it is not a symbolic link. */
export function keyTarget(layout: Layout, name: string): string | undefined {
  return readKey(layout.file('keys', name));
}

/** Release `key` (encoded) if job `id` holds it. */
export function releaseKey(layout: Layout, key: string, id: string): void {
  const path = layout.file('keys', key);
  if (readKey(path) !== id) return;
  try {
    fs.unlinkSync(path);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw fsError(`releasing the key ${path}`, error);
  }
}

/** What is at keys/NAME when it is not a symbolic link ("a directory", ...), or undefined when nothing is. */
function notALink(path: string): string | undefined {
  const stat = lstatQuietly(path);
  if (stat === undefined || stat.isSymbolicLink()) return undefined; // gone, or a link again: made meanwhile
  return stat.isFile() ? 'a regular file' : describeKind(stat);
}

function readKey(path: string): string | undefined {
  try {
    return fs.readlinkSync(path);
  } catch {
    return undefined;
  }
}

/** Whether job `id` is waiting, running, or still being written. */
export function isLive(layout: Layout, id: string): boolean {
  if (!isId(id)) return false; // not a job id at all: a broken key
  // tmp/ first: a job only moves on from tmp/ (to queue/, delayed/ or waiting/, later done/), so looking in
  // that order never misses one that moves between the two looks
  const writing = listDir(layout.paths.tmp).some((name) => {
    const tmp = parseTmpName(name);
    return tmp?.id === id && !isWriterGone(layout, tmp.owner); // still being written, unless its writer died
  });
  if (writing) return true;
  const where = locate(layout, id);
  return where !== undefined && where.state !== 'done' && where.state !== 'failed';
}

/** Release the key a job file's envelope names, if any (a job that ended). */
export function releaseKeyOf(layout: Layout, key: unknown, id: string): void {
  if (typeof key !== 'string') return;
  try {
    releaseKey(layout, encodeKey(key), id);
  } catch {
    // a key the library could not have written: nothing to release
  }
}
