/**
 * Pause files (FORMAT.md, "Pause and cancel"): paused/TYPE pauses one type,
 * paused/@all the whole queue. A pause is the file itself, so `ls paused/`
 * lists them and `rm` (or `touch`) undoes (or makes) one by hand. Its content
 * is optional JSON, `{"until": ISO, "at": ISO, "by": HOST.PID}`; an empty
 * file pauses until it is removed. `until` is a time in the filesystem's
 * clock (liveness.ts), so hosts whose clocks are off still agree when a pause
 * ends.
 *
 * A pause is written in tmp/ (exclusive create) and renamed into paused/, so
 * a reader sees the old pause or the new one, never part of one, and pausing
 * again (a new `until`) is one rename over the old file.
 *
 * paused/ is made at the first pause, so queues made before pauses existed
 * need nothing; a missing paused/ reads as "nothing paused". Like every
 * directory of the queue it must be a directory, not a link to one: nothing
 * is written or deleted through a link.
 */
import fs from 'node:fs';
import { errnoOf, fsError } from './errors.js';
import { removeQuietly, writeNew } from './files.js';
import { modeOfDirs, type Layout } from './layout.js';
import { isSetAsideName, pauseName, pauseTmpName, parsePauseName, PAUSED_DIR } from './names.js';
import { openRegularStat } from './open.js';
import { checkDir, makeDirNoFollow } from './safe-file.js';

/** A pause file is a few dozen bytes; one larger than this is not one. */
const PAUSE_MAX_BYTES = 4096;

/** One pause as read from paused/. */
export interface PauseEntry {
  /** Its file name in paused/. */
  name: string;
  /** The paused type; undefined: the whole queue. */
  type: string | undefined;
  /** When it ends, ms since the epoch in the filesystem's clock; undefined: until resumed. */
  until: number | undefined;
  /** When it was made and by whom, when its file says. */
  at: string | undefined;
  by: string | undefined;
  /** The file's inode and mtime: a later look tells whether it was replaced. */
  ino: number;
  mtimeMs: number;
}

/** A file in paused/ that is no pause: reported (fsck, a 'warning'), never obeyed, never followed. */
export interface PauseProblem {
  name: string;
  reason: string;
}

export function pausedDir(layout: Layout): string {
  return `${layout.root}/${PAUSED_DIR}`;
}

/** The pause file of `type` (the whole queue when undefined). */
export function pausePath(layout: Layout, type: string | undefined): string {
  return `${pausedDir(layout)}/${pauseName(type)}`;
}

/** Make paused/ (or cancel/) with the queue's mode if it is missing; throws EBADFILE for a link or file there. */
export function ensureFlowDir(layout: Layout, path: string): void {
  const mode = layout.fileMode === undefined ? undefined : modeOfDirs(layout.fileMode);
  try {
    makeDirNoFollow(path, mode, `move it away, and run dirq fsck ${layout.root} --repair`);
  } catch (error) {
    throw fsError(`creating ${path}`, error); // its close(2) throws the system's error as it is
  }
}

/** Throws EBADFILE unless `dir` is a directory (not a link to one); the system's errors as DirQueueErrors. */
export function checkFlowDir(layout: Layout, dir: string): void {
  try {
    checkDir(dir, `move it away, and run dirq fsck ${layout.root} --repair`);
  } catch (error) {
    throw fsError(`checking ${dir}`, error);
  }
}

/** The JSON a pause file holds. */
export function pauseContent(until: number | undefined, by: string): string {
  const content: Record<string, string> = { at: new Date().toISOString(), by };
  if (until !== undefined) content.until = new Date(until).toISOString();
  return `${JSON.stringify(content)}\n`;
}

/** Write the pause of `type`: a fresh file in tmp/ renamed over paused/NAME (one rename; an existing pause is replaced). */
export async function writePause(
  layout: Layout,
  type: string | undefined,
  content: string,
  owner: string,
): Promise<void> {
  const target = pausePath(layout, type); // throws EBADTYPE before anything is written
  ensureFlowDir(layout, pausedDir(layout));
  const tmp = layout.file('tmp', pauseTmpName(owner));
  await writeNew(tmp, content, true, layout.fileMode);
  try {
    fs.renameSync(tmp, target);
  } catch (error) {
    removeQuietly(tmp); // or left for the sweeps: its name carries its writer
    throw fsError(`pausing: renaming ${tmp} to ${target}`, error);
  }
}

/** Remove the pause of `type`. Resolves false when there was none. */
export function removePause(layout: Layout, type: string | undefined): boolean {
  const target = pausePath(layout, type);
  if (!flowDirThere(layout, pausedDir(layout))) return false;
  try {
    fs.unlinkSync(target);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`resuming: removing ${target}`, error);
  }
}

/** Whether paused/ exists (and is a directory: EBADFILE otherwise, never followed). */
/**
 * True when the flow directory `dir` (paused/, limits/ or one of its types)
 * is there; false when it is missing (nothing paused or limited). Throws
 * EBADFILE when something else stands at its name, and the system's other
 * errors as DirQueueErrors.
 */
export function flowDirThere(layout: Layout, dir: string): boolean {
  try {
    fs.lstatSync(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`looking at ${dir}`, error);
  }
  checkFlowDir(layout, dir);
  return true;
}

/**
 * Every pause in paused/, and what is there that is no pause. One readdir and
 * one small read per pause; paused/ missing reads as empty.
 */
export function readPauses(layout: Layout): { pauses: PauseEntry[]; problems: PauseProblem[] } {
  const pauses: PauseEntry[] = [];
  const problems: PauseProblem[] = [];
  if (!flowDirThere(layout, pausedDir(layout))) return { pauses, problems };
  let names: string[];
  try {
    names = fs.readdirSync(pausedDir(layout));
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return { pauses, problems };
    throw fsError(`listing ${pausedDir(layout)}`, error);
  }
  for (const name of names.sort()) {
    if (name.startsWith('.') || isSetAsideName(name)) continue; // dot files and NAME~ (set aside by fsck) are no pauses (FORMAT.md)
    const read = readPause(layout, name);
    if (read === undefined) continue; // gone meanwhile
    if ('reason' in read) problems.push(read);
    else pauses.push(read);
  }
  return { pauses, problems };
}

/** One file of paused/: the pause it is, a problem, or undefined when it is gone. */
export function readPause(layout: Layout, name: string): PauseEntry | PauseProblem | undefined {
  const parsed = parsePauseName(name);
  if (parsed === undefined) return { name, reason: 'its name is no type encoded as in job names, nor @all' };
  const path = `${pausedDir(layout)}/${name}`;
  const opened = openRegularStat(path, fs.constants.O_RDONLY);
  if (opened === undefined) return undefined;
  if ('kind' in opened) return { name, reason: `it is ${opened.kind}, not a file` };
  let text: string;
  try {
    if (opened.stat.size > PAUSE_MAX_BYTES) return { name, reason: `it is ${opened.stat.size} bytes, too large` };
    text = fs.readFileSync(opened.fd, 'utf8');
  } finally {
    fs.closeSync(opened.fd);
  }
  const base = { name, type: parsed.type, ino: opened.stat.ino, mtimeMs: opened.stat.mtimeMs };
  if (text.trim() === '') return { ...base, until: undefined, at: undefined, by: undefined };
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    return { name, reason: 'its content is not JSON (an empty file, or {"until": ISO time}, is a pause)' };
  }
  if (typeof content !== 'object' || content === null || Array.isArray(content)) {
    return { name, reason: 'its content is not a JSON object' };
  }
  const { until, at, by } = content as Record<string, unknown>;
  let untilMs: number | undefined;
  if (until !== undefined) {
    untilMs = typeof until === 'string' ? Date.parse(until) : Number.NaN;
    if (!Number.isFinite(untilMs))
      return { name, reason: `its "until" is not an ISO 8601 time: ${JSON.stringify(until)}` };
  }
  return {
    ...base,
    until: untilMs,
    at: typeof at === 'string' ? at : undefined,
    by: typeof by === 'string' ? by : undefined,
  };
}

/**
 * Remove an expired pause, unless it was replaced since it was read (paused
 * again): it is renamed aside into tmp/ (one winner among sweepers), and if
 * what moved is not the file judged (a fresh pause), it is linked back, where
 * a pause made meanwhile wins. Returns whether the judged file was removed.
 */
export function removeExpiredPause(layout: Layout, judged: PauseEntry, owner: string): boolean {
  const path = `${pausedDir(layout)}/${judged.name}`;
  const aside = layout.file('tmp', pauseTmpName(owner));
  try {
    fs.renameSync(path, aside);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`removing the expired pause ${path}`, error);
  }
  let same: boolean;
  try {
    same = fs.lstatSync(aside).ino === judged.ino;
  } catch {
    same = false;
  }
  if (!same) {
    try {
      fs.linkSync(aside, path); // never over a pause made since
    } catch {
      // EEXIST: a newer pause is there; anything else: the pause is lost, as if it ended (fsck never needs it)
    }
  }
  removeQuietly(aside);
  return same;
}
