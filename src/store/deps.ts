/**
 * Who waits for whom (FORMAT.md, "Dependencies and batches"): deps/PARENT/CHILD
 * is an empty file that says job CHILD waits in waiting/ for job PARENT to
 * end. A child writes its markers before it enters waiting/, and a parent
 * looks for deps/PARENT after its own ending's rename, so whichever of the
 * two comes second sees the other (release.ts). A marker costs the parent
 * one lstat at its ending when it has no children.
 */
import fs from 'node:fs';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { lstatQuietly, unlinkOrGone } from './entry.js';
import { listDir } from './files.js';
import { modeOfDirs, type Layout } from './layout.js';
import { isId } from './names.js';
import { locate } from './locate.js';
import { createExclusive } from './open.js';
import { makeDirNoFollow } from './safe-file.js';

/** The most jobs one job may wait for (enqueue's `after`); a batch's callback waits for any number. */
export const MAX_PARENTS = 100;

/** deps/.marker: the empty file every marker in deps/ is a hard link of (linkMarker). */
export const MARKER_FILE = '.marker';

/** How often a marker is made again when its parent's directory was removed between mkdir and create. */
const MARK_TRIES = 10;

const childrenDir = (layout: Layout, parent: string): string => layout.file('deps', parent);

/** Write deps/PARENT/CHILD (and deps/PARENT/): an existing one is fine. */
export function markChild(layout: Layout, parent: string, child: string): void {
  const dir = childrenDir(layout, parent);
  for (let tries = 0; tries < MARK_TRIES; tries++) {
    try {
      // a link at deps/PARENT (EBADFILE) is never written through
      makeDirNoFollow(
        dir,
        layout.fileMode === undefined ? undefined : modeOfDirs(layout.fileMode),
        `move it away: deps/ holds only directories`,
      );
    } catch (error) {
      const code = errnoOf(error) ?? (error as DirQueueError).code;
      if (code === 'ENOENT') continue; // removed again between the mkdir and the chmod
      if (code !== 'EEXIST') throw fsError(`making ${dir}`, error);
    }
    try {
      if (linkMarker(layout, layout.file('deps', MARKER_FILE), `${dir}/${child}`)) return;
    } catch (error) {
      throw fsError(`writing ${dir}/${child}`, error);
    }
  }
  throw new DirQueueError('ECONTENTION', `${dir} kept being removed while a marker was written in it: try again`);
}

/**
 * Make the empty marker `target` (EEXIST: there already, fine) as a hard link
 * of the empty file `placeholder` (made if missing): link(2) adds a name and
 * no inode, 10 to 30 times cheaper than creating a file (bench/dependencies.js).
 * A placeholder at the filesystem's link limit (EMLINK: 65,000 on ext4) gives
 * way to a file of its own. Returns false when `target`'s directory is gone
 * (a release emptied and removed it: make it again); throws the system's other errors.
 */
export function linkMarker(layout: Layout, placeholder: string, target: string): boolean {
  for (let tries = 0; tries < MARK_TRIES; tries++) {
    try {
      fs.linkSync(placeholder, target);
      return true;
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'EEXIST') return true;
      if (code === 'EMLINK') return createMarker(layout, target);
      if (code !== 'ENOENT') throw error;
      if (lstatQuietly(placeholder) !== undefined) return false; // the target's directory is gone
      createMarker(layout, placeholder); // the first marker of all
    }
  }
  return createMarker(layout, target);
}

/** Create the empty file `path` with the queue's mode; an existing one is fine. False when its directory is gone. */
function createMarker(layout: Layout, path: string): boolean {
  try {
    const fd = createExclusive(path, fs.constants.O_WRONLY, 0o666);
    try {
      if (layout.fileMode !== undefined) fs.fchmodSync(fd, layout.fileMode);
    } finally {
      fs.closeSync(fd);
    }
    return true;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'EEXIST') return true;
    if (code === 'ENOENT') return false;
    throw error;
  }
}

/** Remove deps/PARENT/CHILD, then deps/PARENT/ if that was its last child. */
export function unmarkChild(layout: Layout, parent: string, child: string): void {
  unlinkOrGone(`${childrenDir(layout, parent)}/${child}`);
  dropIfEmpty(layout, parent);
}

/** Remove deps/PARENT/ if no marker is in it (a crash can leave it empty). */
export function dropIfEmpty(layout: Layout, parent: string): void {
  const dir = childrenDir(layout, parent);
  try {
    fs.rmdirSync(dir);
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'ENOENT' && code !== 'ENOTEMPTY' && code !== 'EEXIST') throw fsError(`removing ${dir}`, error);
  }
}

/** Whether some job waits for `parent`: one lstat, the cost a job without children pays at its ending. */
export function hasChildren(layout: Layout, parent: string): boolean {
  return lstatQuietly(childrenDir(layout, parent)) !== undefined;
}

/** The jobs that wait for `parent` (their markers), in no order. */
export function childrenOf(layout: Layout, parent: string): string[] {
  const dir = childrenDir(layout, parent);
  // never through a link: in a shared queue a member of the group could put one at deps/PARENT, and the
  // markers listed are unlinked (a sweep running as root would delete in the directory it names)
  if (!realDir(dir)) return [];
  return listDir(dir).filter(isId);
}

/** The parents that have children waiting: the names in deps/. */
export function parentsWithChildren(layout: Layout): string[] {
  return listDir(layout.paths.deps).filter(isId);
}

/** Whether `path` is a directory itself, not a link to one (nor gone, nor a file). */
export function realDir(path: string): boolean {
  return lstatQuietly(path)?.isDirectory() === true;
}

/**
 * Where a parent is as far as its children care: 'done' or 'failed' (ended),
 * 'removed' (in no state: deleted, or pruned from done/), or 'pending'
 * (waiting, queued, delayed or running). Ended parents cost one or two
 * lstats; only a parent that is not in done/ or failed/ is looked for
 * everywhere (locate lists delayed/ and active/).
 */
export function parentState(layout: Layout, id: string): 'done' | 'failed' | 'removed' | 'pending' {
  if (lstatQuietly(layout.file('done', id)) !== undefined) return 'done';
  if (lstatQuietly(layout.file('failed', id)) !== undefined) return 'failed';
  const where = locate(layout, id);
  if (where === undefined) return 'removed';
  return where.state === 'done' || where.state === 'failed' ? where.state : 'pending';
}
