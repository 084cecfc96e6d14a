/**
 * The queue directory: its state directories and dirqueue.json (FORMAT.md).
 * dirqueue.json is written with write-file-atomic: a settings file is the
 * case it fits (its temp file sits beside the target, which is fine here and
 * would not be in queue/).
 */
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
import { listDir } from './files.js';
import { DirQueueError, errnoOf, fsError } from './errors.js';

export const STATES = ['queue', 'delayed', 'active', 'done', 'failed'] as const;
export type State = (typeof STATES)[number];

/** State directories plus tmp/ (writers), workers/ (heartbeats) and keys/ (unique keys). */
export const DIRS = ['tmp', ...STATES, 'workers', 'keys'] as const;
export type Dir = (typeof DIRS)[number];

export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 0;
export const SETTINGS_FILE = 'dirqueue.json';

export interface Settings {
  format: 'dirqueue';
  version: string;
  created: string;
  /**
   * A group-shared queue: the permission bits (octal, e.g. "0660") of every
   * file the library creates; its directories are then setgid and
   * group-writable (see modeOfDirs). Absent: files get 0666 less the umask.
   */
  mode?: string;
}

/**
 * Parse a file mode given as octal text ("0660", "660") or a number (0o660).
 * The owner must keep read and write (the library appends to its own files),
 * and only permission bits are allowed.
 */
export function parseMode(value: unknown, name = 'mode'): number {
  const mode = typeof value === 'string' && /^0?[0-7]{3}$/.test(value) ? parseInt(value, 8) : value;
  if (typeof mode !== 'number' || !Number.isInteger(mode) || mode < 0 || mode > 0o777 || (mode & 0o600) !== 0o600) {
    throw new DirQueueError(
      'EBADOPTION',
      `${name} must be file permissions in octal with owner read and write, like 0660 (group-shared) or 0644, got ${typeof value === 'number' ? `0o${value.toString(8)}` : JSON.stringify(value)}`,
    );
  }
  return mode;
}

/** The mode text kept in dirqueue.json: four octal digits. */
export function formatMode(mode: number): string {
  return `0${mode.toString(8).padStart(3, '0')}`;
}

/**
 * Directories of a queue whose files have `fileMode`: searchable wherever
 * readable, and setgid, so files made in them by any user belong to the
 * queue's group (0660 -> 02770, 0644 -> 02755).
 */
export function modeOfDirs(fileMode: number): number {
  return fileMode | ((fileMode & 0o444) >> 2) | 0o700 | 0o2000;
}

export function isState(value: unknown): value is State {
  return typeof value === 'string' && (STATES as readonly string[]).includes(value);
}

export function checkState(value: unknown): State {
  if (!isState(value)) {
    throw new DirQueueError('EBADSTATE', `unknown state ${JSON.stringify(value)}: use one of ${STATES.join(', ')}`);
  }
  return value;
}

/** Paths of one queue directory. */
export class Layout {
  readonly root: string;
  readonly paths: Readonly<Record<Dir, string>>;
  /** The queue's file mode from dirqueue.json, once prepare() read it; undefined: 0666 less the umask. */
  fileMode: number | undefined;

  constructor(root: string) {
    this.root = path.resolve(root);
    this.paths = Object.fromEntries(DIRS.map((d) => [d, path.join(this.root, d)])) as Record<Dir, string>;
  }

  file(dir: Dir, name: string): string {
    return `${this.paths[dir]}/${name}`;
  }

  /**
   * Check the directory is a queue of a format this code reads, creating the
   * layout when `create` is true and it is missing or empty. `mode` makes (or
   * turns) it a queue whose files get that mode (a group-shared queue).
   */
  async prepare(create: boolean, mode?: number): Promise<Settings> {
    const settingsPath = path.join(this.root, SETTINGS_FILE);
    let settings = readSettings(settingsPath);
    if (settings === undefined) {
      if (!create) {
        const exists = fs.existsSync(this.root);
        throw new DirQueueError(
          exists ? 'ENOTQUEUE' : 'ENOQUEUE',
          exists
            ? `${this.root} is not a queue (no ${SETTINGS_FILE}): run dirq init ${this.root}`
            : `${this.root} does not exist: create it with dirq init ${this.root} or open with create: true`,
        );
      }
      const entries = safeList(this.root);
      if (entries.length > 0 && !entries.every((e) => (DIRS as readonly string[]).includes(e))) {
        throw new DirQueueError(
          'ENOTQUEUE',
          `${this.root} is not empty and not a queue (no ${SETTINGS_FILE}): choose an empty or new directory`,
        );
      }
      settings = { format: 'dirqueue', version: `${FORMAT_MAJOR}.${FORMAT_MINOR}`, created: new Date().toISOString() };
      if (mode !== undefined) settings.mode = formatMode(mode);
      this.fileMode = mode;
      try {
        fs.mkdirSync(this.root, { recursive: true });
        if (mode !== undefined) fs.chmodSync(this.root, modeOfDirs(mode));
        for (const dir of DIRS) this.makeDir(dir);
        await writeSettings(settingsPath, settings);
      } catch (error) {
        throw fsError(`creating the queue in ${this.root}`, error);
      }
      return settings;
    }
    checkVersion(settings, settingsPath);
    this.fileMode = settings.mode === undefined ? undefined : parseMode(settings.mode, `"mode" in ${settingsPath}`);
    if (mode !== undefined && mode !== this.fileMode) {
      settings = { ...settings, mode: formatMode(mode) };
      this.fileMode = mode;
      try {
        await writeSettings(settingsPath, settings);
        for (const dir of [this.root, ...DIRS.map((d) => this.paths[d])]) if (fs.existsSync(dir)) fs.chmodSync(dir, modeOfDirs(mode));
      } catch (error) {
        throw fsError(`setting the mode of the queue ${this.root} (only its owner or root can)`, error);
      }
    }
    for (const dir of DIRS) {
      if (!fs.existsSync(this.paths[dir])) {
        if (!create && dir !== 'workers' && dir !== 'keys') {
          throw new DirQueueError('ENOTQUEUE', `${this.paths[dir]} is missing: run dirq fsck ${this.root} --repair`);
        }
        try {
          this.makeDir(dir);
        } catch (error) {
          throw fsError(`creating ${this.paths[dir]}`, error);
        }
      }
    }
    return settings;
  }

  /** Create one of the queue's directories (if missing), with the queue's mode. */
  makeDir(dir: Dir): void {
    fs.mkdirSync(this.paths[dir], { recursive: true });
    if (this.fileMode !== undefined) fs.chmodSync(this.paths[dir], modeOfDirs(this.fileMode));
  }
}

/** Write dirqueue.json (atomically, fsynced), readable by whoever may use the queue. */
export async function writeSettings(file: string, settings: Settings): Promise<void> {
  const mode = settings.mode === undefined ? undefined : parseMode(settings.mode) & 0o666;
  await writeFileAtomic(file, `${JSON.stringify(settings, null, 2)}\n`, mode === undefined ? { fsync: true } : { fsync: true, mode });
}

/** dirqueue.json, or undefined when it does not exist; throws ENOTQUEUE when it is not a settings file. */
export function readSettings(file: string): Settings | undefined {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    if (errnoOf(error) === 'ENOENT' || errnoOf(error) === 'ENOTDIR') return undefined;
    throw fsError(`reading ${file}`, error);
  }
  try {
    const settings = JSON.parse(text) as Settings;
    if (settings?.format !== 'dirqueue' || typeof settings.version !== 'string') throw new Error('not a dirqueue settings file');
    return settings;
  } catch (error) {
    throw new DirQueueError('ENOTQUEUE', `${file} is not a dirqueue settings file (${(error as Error).message})`);
  }
}

/** Throws EVERSION when the queue's format is a newer major version than this code reads. */
export function checkVersion(settings: Settings, file: string): void {
  const major = Number(settings.version.split('.')[0]);
  if (!Number.isInteger(major) || major > FORMAT_MAJOR) {
    throw new DirQueueError(
      'EVERSION',
      `${file} says format version ${settings.version}, newer than this dirqueue reads (${FORMAT_MAJOR}.x): upgrade dirqueue`,
    );
  }
}

function safeList(dir: string): string[] {
  try {
    return listDir(dir);
  } catch (error) {
    if ((error as DirQueueError).code === 'ENOTDIR') throw new DirQueueError('ENOTQUEUE', `${dir} is a file, not a directory`);
    throw error;
  }
}
