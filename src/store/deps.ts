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
import { locate } from './locate.js';
import { createExclusive } from './open.js';
import { makeDirNoFollow } from './safe-file.js';

/** The most jobs one job may wait for (enqueue's `after`); a batch's callback waits for any number. */
export const MAX_PARENTS = 100;

/** How often a marker is made again when its parent's directory was removed between mkdir and create. */
const MARK_TRIES = 10;

const childrenDir = (layout: Layout, parent: string): string => layout.file('deps', parent);

/** Write deps/PARENT/CHILD (and deps/PARENT/): an existing one is fine. */
export function markChild(layout: Layout, parent: string, child: string): void {
  const dir = childrenDir(layout, parent);
  for (let tries = 0; tries < MARK_TRIES; tries++) {
    try {
      if (layout.fileMode === undefined) fs.mkdirSync(dir);
      else makeDirNoFollow(dir, modeOfDirs(layout.fileMode), `move it away: deps/ holds only directories`);
    } catch (error) {
      const code = errnoOf(error) ?? (error as DirQueueError).code;
      if (code === 'ENOENT') continue; // removed again between the mkdir and the chmod
      if (code !== 'EEXIST') throw fsError(`making ${dir}`, error);
    }
    try {
      const fd = createExclusive(`${dir}/${child}`, fs.constants.O_WRONLY, 0o666);
      try {
        if (layout.fileMode !== undefined) fs.fchmodSync(fd, layout.fileMode);
      } finally {
        fs.closeSync(fd);
      }
      return;
    } catch (error) {
      const code = errnoOf(error);
      if (code === 'EEXIST') return;
      if (code !== 'ENOENT') throw fsError(`writing ${dir}/${child}`, error); // ENOENT: a release emptied and removed the directory
    }
  }
  throw new DirQueueError('ECONTENTION', `${dir} kept being removed while a marker was written in it: try again`);
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
  try {
    return listDir(childrenDir(layout, parent)).filter((name) => !name.startsWith('.'));
  } catch (error) {
    if ((error as DirQueueError).code === 'ENOTDIR') return [];
    throw error;
  }
}

/** The parents that have children waiting: the names in deps/. */
export function parentsWithChildren(layout: Layout): string[] {
  return listDir(layout.paths.deps).filter((name) => !name.startsWith('.'));
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
