/**
 * The files of schedules (FORMAT.md, "Schedules"), as functions over a queue
 * directory. Nothing here decides when: maintenance/schedules.ts does.
 *
 *   schedules/NAME.json          the spec, replaced whole (a fresh file renamed over it)
 *   schedules/.NAME@SLOT         the cursor: every slot up to SLOT (µs) is handled
 *   schedules/.NAME@SLOT@OWNER   the cursor while OWNER makes SLOT's job
 *   schedules/.NAME.last         a symbolic link to the id of the latest run
 *   tmp/.slot.OWNER.ID           a slot's job, written before its maker takes the cursor
 *
 * The cursor is the single winner: it exists once per schedule and moves
 * forward only by rename(2) of its exact current name, so of the processes
 * that try to take a slot, one rename succeeds and the rest find the name
 * gone. Nothing per slot accumulates, so nothing needs pruning.
 */
import fs from 'node:fs';
import { errnoOf, fsError, ScheduleError } from './errors.js';
import { lstatOrGone, unlinkOrGone, unlinkQuietly } from './entry.js';
import { closeFile, closeQuietly, listDir, move, removeQuietly, writeNew } from './files.js';
import type { Layout } from './layout.js';
import {
  cursorName,
  isId,
  lastRunName,
  lastRunTmpName,
  parseCursorName,
  parseLastRunName,
  parseScheduleFileName,
  scheduleFileName,
  scheduleTmpName,
} from './names.js';
import { createExclusive } from './open.js';
import { readSmallFile } from './safe-file.js';
import { checkScheduleSpec, type StoredSchedule } from './schedule-spec.js';

/** A schedule file is a few hundred bytes plus its data: anything larger is refused. */
export const SCHEDULE_MAX_BYTES = 1024 * 1024;

export interface Cursor {
  name: string;
  slotUs: number;
  /** Set while that Queue handle makes the job of slot `slotUs`. */
  owner: string | undefined;
  file: string;
}

/** What one listing of schedules/ found. */
export interface ScheduleListing {
  /** Names that have a NAME.json. */
  specs: string[];
  /** Each schedule's cursors (normally one), highest slot first. */
  cursors: Map<string, Cursor[]>;
  /** Names that have a .NAME.last. */
  lasts: Set<string>;
  /** Names in schedules/ that are none of these (reported by fsck). */
  foreign: string[];
}

export function listSchedules(layout: Layout): ScheduleListing {
  const out: ScheduleListing = { specs: [], cursors: new Map(), lasts: new Set(), foreign: [] };
  for (const file of listDir(layout.paths.schedules)) {
    const spec = parseScheduleFileName(file);
    if (spec !== undefined) {
      out.specs.push(spec);
      continue;
    }
    const cursor = parseCursorName(file);
    if (cursor !== undefined) {
      const list = out.cursors.get(cursor.name) ?? [];
      list.push({ ...cursor, file });
      out.cursors.set(cursor.name, list);
      continue;
    }
    const last = parseLastRunName(file);
    if (last !== undefined) out.lasts.add(last);
    else out.foreign.push(file);
  }
  for (const list of out.cursors.values()) list.sort((a, b) => b.slotUs - a.slotUs);
  out.specs.sort();
  return out;
}

/** Read and check schedules/NAME.json; throws EBADSCHEDULE (or EBADFILE) saying what is wrong, undefined when missing. */
export function readSchedule(layout: Layout, name: string): { spec: StoredSchedule; mtimeMs: number } | undefined {
  const path = layout.file('schedules', scheduleFileName(name));
  const where = `${path}: `;
  let text: string | undefined;
  try {
    text = readSmallFile(path, SCHEDULE_MAX_BYTES, `fix it or remove it (dirq unschedule ${layout.root} ${name})`);
  } catch (error) {
    throw fsError(`reading the schedule ${path}`, error); // readSmallFile's close(2) can fail raw (EIO)
  }
  if (text === undefined) return undefined;
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new ScheduleError(
      'file',
      `${where}not JSON (${(error as Error).message}): fix it by hand or schedule it again`,
    );
  }
  const spec = checkScheduleSpec(json, where, true);
  let mtimeMs = 0;
  try {
    mtimeMs = fs.lstatSync(path).mtimeMs;
  } catch {
    // replaced meanwhile: the next poll reads it again
  }
  return { spec, mtimeMs };
}

/** Replace schedules/NAME.json with `spec`, atomically (a fresh file from tmp/ renamed over it). */
export function writeSchedule(layout: Layout, name: string, spec: StoredSchedule, durable: boolean): Promise<void> {
  const write = writing.then(() => writeScheduleNow(layout, name, spec, durable));
  writing = write.catch(() => undefined);
  return write;
}

/** This process's schedule writes, one at a time: they share one temp name (names.ts scheduleTmpName). */
let writing: Promise<void> = Promise.resolve();

async function writeScheduleNow(layout: Layout, name: string, spec: StoredSchedule, durable: boolean): Promise<void> {
  const tmp = layout.file('tmp', scheduleTmpName());
  removeQuietly(tmp); // ours, left by a write that failed half-way
  await writeNew(tmp, `${JSON.stringify(spec, null, 2)}\n`, durable, layout.fileMode);
  const target = layout.file('schedules', scheduleFileName(name));
  try {
    fs.renameSync(tmp, target);
  } catch (error) {
    removeQuietly(tmp);
    throw fsError(`writing the schedule ${target}`, error);
  }
  if (durable) await syncDir(layout.paths.schedules);
}

/** fsync a directory, so that the renames in it survive a power cut. */
export async function syncDir(dir: string): Promise<void> {
  let fd: number | undefined;
  try {
    fd = fs.openSync(dir, fs.constants.O_RDONLY | fs.constants.O_DIRECTORY | fs.constants.O_NOFOLLOW);
    const opened = fd;
    await new Promise<void>((resolve, reject) => fs.fsync(opened, (e) => (e ? reject(e) : resolve())));
  } catch (error) {
    throw fsError(`syncing the directory ${dir}`, error);
  } finally {
    if (fd !== undefined) closeQuietly(fd); // nothing was written through it
  }
}

/** Remove schedule `name`: its file, then its cursors and last-run link. True when its file was there. */
export function removeSchedule(layout: Layout, name: string): boolean {
  const path = layout.file('schedules', scheduleFileName(name));
  let had = true;
  try {
    fs.unlinkSync(path);
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw fsError(`removing the schedule ${path}`, error);
    had = false;
  }
  removeScheduleState(layout, name, listSchedules(layout));
  return had;
}

/** Remove the cursors and the last-run link of schedule `name` (whose file is gone). */
export function removeScheduleState(layout: Layout, name: string, listing: ScheduleListing): void {
  for (const cursor of listing.cursors.get(name) ?? []) unlinkOrGone(layout.file('schedules', cursor.file));
  if (listing.lasts.has(name)) unlinkOrGone(layout.file('schedules', lastRunName(name)));
}

/**
 * Make the first cursor of schedule `name`, .NAME@0000000000000000, whose
 * mtime (the filesystem's clock) is when the schedule began: slots after it
 * run. Exclusive, so two processes that find a schedule without a cursor make
 * one. Returns it, or undefined when one was there already.
 */
export function createCursor(layout: Layout, name: string): Cursor | undefined {
  const file = cursorName(name, 0);
  const path = layout.file('schedules', file);
  let fd: number;
  try {
    fd = createExclusive(path, fs.constants.O_WRONLY, 0o666);
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return undefined;
    throw fsError(`making the cursor ${path}`, error);
  }
  try {
    if (layout.fileMode !== undefined) fs.fchmodSync(fd, layout.fileMode);
  } catch (error) {
    closeQuietly(fd);
    throw fsError(`making the cursor ${path}`, error);
  }
  closeFile(fd, `making the cursor ${path}`);
  return { name, slotUs: 0, owner: undefined, file };
}

/**
 * The slot (ms) up to which `cursor` has handled its schedule: its slot, or
 * for a first cursor the time it was made. Undefined when it is gone.
 */
export function cursorFloorMs(layout: Layout, cursor: Cursor): number | undefined {
  if (cursor.slotUs !== 0) return cursor.slotUs / 1000;
  const stat = lstatOrGone(layout.file('schedules', cursor.file));
  return stat === undefined ? undefined : Math.round(stat.mtimeMs); // utimes(2) by hand may land a hair below the ms it meant
}

/** When `cursor` was last moved, in the filesystem's clock (its ctime), or undefined when it is gone. */
export function cursorMovedMs(layout: Layout, cursor: Cursor): number | undefined {
  return lstatOrGone(layout.file('schedules', cursor.file))?.ctimeMs;
}

/**
 * Move `cursor` to slot `slotUs` (pending on `owner` when given): the single-winner step. Returns the
 * new cursor, or undefined when another process moved it first.
 */
export function moveCursor(layout: Layout, cursor: Cursor, slotUs: number, owner?: string): Cursor | undefined {
  const file = cursorName(cursor.name, slotUs, owner);
  const moved = move(layout.file('schedules', cursor.file), layout.file('schedules', file), owner !== undefined);
  return moved ? { name: cursor.name, slotUs, owner, file } : undefined;
}

/** The id of the latest run of schedule `name`, from .NAME.last, or undefined. */
export function readLastRun(layout: Layout, name: string): string | undefined {
  const path = layout.file('schedules', lastRunName(name));
  try {
    const id = fs.readlinkSync(path);
    return isId(id) ? id : undefined;
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'EINVAL') return undefined; // none yet, or not a link (fsck reports it)
    throw fsError(`reading the latest run of schedule ${name} at ${path}`, error);
  }
}

/** Point .NAME.last at job `id`, in one rename of a fresh link over it. */
export function writeLastRun(layout: Layout, name: string, id: string): void {
  const tmp = layout.file('tmp', lastRunTmpName());
  const target = layout.file('schedules', lastRunName(name));
  unlinkQuietly(tmp); // ours, left by a try that failed half-way
  try {
    fs.symlinkSync(id, tmp);
    fs.renameSync(tmp, target);
  } catch (error) {
    unlinkQuietly(tmp);
    throw fsError(`recording the latest run of schedule ${name} in ${target}`, error);
  }
}
