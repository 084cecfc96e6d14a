/**
 * Batches (FORMAT.md, "Dependencies and batches"): batches/ID/ holds
 * batch.json (what the batch is: its size and its callbacks' ids) and one
 * empty file per member, in pending/ until the member ends, then moved to
 * done/ or failed/ by one rename (so a member is counted once however many
 * processes see it end). The callbacks' job files wait in the batch's
 * directory (onComplete, onSuccess) until pending/ is empty; whoever sees it
 * empty releases them (release.ts) by renaming each into waiting/ under its
 * claim, a single-winner step, so exactly one of each runs whoever ends the
 * last members.
 */
import fs from 'node:fs';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { listDir, move, writeNew } from './files.js';
import type { Layout } from './layout.js';
import { BATCH_FILE, BATCH_MEMBER_DIRS, batchTmpName, isBatchId, isId } from './names.js';
import { linkMarker, MARKER_FILE, realDir } from './deps.js';
import { readSmallFile } from './safe-file.js';

/** batch.json. */
export interface BatchFile {
  total: number;
  created: string;
  /** The callback jobs' ids. */
  onComplete?: string;
  onSuccess?: string;
}

/** A batch's members by where their markers are. */
export interface BatchCounts {
  pending: number;
  done: number;
  failed: number;
  failedIds: string[];
}

/** How many failed members' ids a callback is told. */
export const FAILED_IDS_MAX = 1000;

export const batchDir = (layout: Layout, id: string): string => layout.file('batches', id);

/** A callback's job file in its batch's directory: batches/ID/onComplete or batches/ID/onSuccess. */
export type CallbackName = (typeof CALLBACK_FILES)[number];
export const CALLBACK_FILES = ['onComplete', 'onSuccess'] as const;

/** Where callback `name` of batch `id` waits until the batch has ended. */
export const callbackPath = (layout: Layout, id: string, name: CallbackName): string =>
  `${batchDir(layout, id)}/${name}`;

/**
 * Make batches/ID/ for `members`: its directories, members' markers and
 * callbacks' job files first, batch.json last (a rename from tmp/), so a
 * batch is there, callbacks and all, exactly when its batch.json is; a
 * directory a crash left without one is removed by a sweep (releases.ts).
 * Returns the directories to fsync before the members are placed (when the
 * queue is durable).
 */
export async function createBatch(
  layout: Layout,
  owner: string,
  id: string,
  members: readonly string[],
  callbacks: Readonly<Partial<Record<CallbackName, { id: string; content: string }>>>,
  durable: boolean,
): Promise<string[]> {
  const dir = batchDir(layout, id);
  const dirMode = layout.fileMode === undefined ? 0o777 : dirModeOf(layout.fileMode);
  try {
    fs.mkdirSync(dir, dirMode);
    for (const sub of BATCH_MEMBER_DIRS) fs.mkdirSync(`${dir}/${sub}`, dirMode);
    if (layout.fileMode !== undefined) {
      for (const d of [dir, ...BATCH_MEMBER_DIRS.map((sub) => `${dir}/${sub}`)]) fs.chmodSync(d, dirMode);
    }
    for (const member of members) {
      if (!linkMarker(layout, `${dir}/${MARKER_FILE}`, `${dir}/pending/${member}`)) {
        throw new DirQueueError('EVANISHED', `${dir} was removed while the batch was being made`);
      }
    }
  } catch (error) {
    throw fsError(`making the batch ${dir}`, error);
  }
  const file: BatchFile = { total: members.length, created: new Date().toISOString() };
  for (const name of CALLBACK_FILES) {
    const callback = callbacks[name];
    if (callback === undefined) continue;
    await writeNew(`${dir}/${name}`, callback.content, durable, layout.fileMode);
    file[name] = callback.id;
  }
  const tmp = layout.file('tmp', batchTmpName(owner));
  await writeNew(tmp, `${JSON.stringify(file)}\n`, durable, layout.fileMode);
  if (!move(tmp, `${dir}/${BATCH_FILE}`)) {
    throw new DirQueueError(
      'EVANISHED',
      `${tmp} vanished before it could be put in place: is something cleaning tmp/?`,
    );
  }
  return [`${dir}/pending`, dir, layout.paths.batches];
}

function dirModeOf(fileMode: number): number {
  return (fileMode | ((fileMode & 0o444) >> 2) | 0o700 | 0o2000) & 0o7777;
}

/** batch.json of batch `id`, or undefined when there is none (no such batch, or one a crash left unmade). */
export function readBatchFile(layout: Layout, id: string): BatchFile | undefined {
  if (!isBatchId(id)) return undefined;
  const path = `${batchDir(layout, id)}/${BATCH_FILE}`;
  let text: string | undefined;
  try {
    text = readSmallFile(path, 64 * 1024, `move it away: it should be the batch's ${BATCH_FILE}`);
  } catch (error) {
    if ((error as DirQueueError).code === 'ENOTDIR') return undefined;
    throw error;
  }
  if (text === undefined) return undefined;
  try {
    const parsed = JSON.parse(text) as BatchFile;
    if (!Number.isInteger(parsed.total)) throw new Error('no total');
    return parsed;
  } catch (error) {
    throw new DirQueueError('EBADFILE', `${path} is not a batch file (${(error as Error).message}): move it away`);
  }
}

/**
 * Member `member` of batch `id` ended: move its marker from pending/ to
 * done/ or failed/. Returns true when this call moved it (false: it was
 * moved before, or the batch is gone).
 */
export function markMember(layout: Layout, id: string, member: string, outcome: 'done' | 'failed'): boolean {
  if (!isBatchId(id)) return false;
  const dir = batchDir(layout, id);
  return move(`${dir}/pending/${member}`, `${dir}/${outcome}/${member}`);
}

/** The members still pending in batch `id`. */
export function pendingMembers(layout: Layout, id: string): string[] {
  return members(layout, id, 'pending');
}

/**
 * The members of batch `id` whose markers are in `sub`, never through a link
 * (in a shared queue a member of the group could put one at batches/ID or
 * its pending/, and the markers listed are renamed): none then.
 */
function members(layout: Layout, id: string, sub: (typeof BATCH_MEMBER_DIRS)[number]): string[] {
  const dir = batchDir(layout, id);
  if (!realDir(dir) || !realDir(`${dir}/${sub}`)) return [];
  return listDir(`${dir}/${sub}`).filter(isId);
}

/** Whether every member of batch `id` has ended: pending/ is empty (one opendir and one read, whatever its size). */
export function batchEnded(layout: Layout, id: string): boolean {
  let dir: fs.Dir;
  try {
    dir = fs.opendirSync(`${batchDir(layout, id)}/pending`);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`listing ${batchDir(layout, id)}/pending`, error);
  }
  try {
    return dir.readSync() === null;
  } finally {
    dir.closeSync();
  }
}

/** Count batch `id`'s members by outcome. */
export function countMembers(layout: Layout, id: string): BatchCounts {
  const failed = members(layout, id, 'failed');
  return {
    pending: members(layout, id, 'pending').length,
    done: members(layout, id, 'done').length,
    failed: failed.length,
    failedIds: failed.sort().slice(0, FAILED_IDS_MAX),
  };
}

/** The batches in batches/ (their ids). */
export function batchIds(layout: Layout): string[] {
  return listDir(layout.paths.batches).filter(isBatchId);
}
