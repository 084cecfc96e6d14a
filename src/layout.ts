/**
 * The queue directory: its state directories and dirqueue.json (FORMAT.md).
 * dirqueue.json is written with write-file-atomic: a settings file is the
 * case it fits (its temp file sits beside the target, which is fine here and
 * would not be in queue/).
 */
import fs from 'node:fs';
import path from 'node:path';
import writeFileAtomic from 'write-file-atomic';
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

  constructor(root: string) {
    this.root = path.resolve(root);
    this.paths = Object.fromEntries(DIRS.map((d) => [d, path.join(this.root, d)])) as Record<Dir, string>;
  }

  file(dir: Dir, name: string): string {
    return `${this.paths[dir]}/${name}`;
  }

  /**
   * Check the directory is a queue of a format this code reads, creating the
   * layout when `create` is true and it is missing or empty.
   */
  async prepare(create: boolean): Promise<Settings> {
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
      try {
        for (const dir of DIRS) fs.mkdirSync(this.paths[dir], { recursive: true });
        await writeFileAtomic(settingsPath, `${JSON.stringify(settings, null, 2)}\n`, { fsync: true });
      } catch (error) {
        throw fsError(`creating the queue in ${this.root}`, error);
      }
      return settings;
    }
    checkVersion(settings, settingsPath);
    for (const dir of DIRS) {
      if (!fs.existsSync(this.paths[dir])) {
        if (!create && dir !== 'workers' && dir !== 'keys') {
          throw new DirQueueError('ENOTQUEUE', `${this.paths[dir]} is missing: run dirq fsck ${this.root} --repair`);
        }
        try {
          fs.mkdirSync(this.paths[dir], { recursive: true });
        } catch (error) {
          throw fsError(`creating ${this.paths[dir]}`, error);
        }
      }
    }
    return settings;
  }
}

function readSettings(file: string): Settings | undefined {
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

function checkVersion(settings: Settings, file: string): void {
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
    return fs.readdirSync(dir);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return [];
    if (errnoOf(error) === 'ENOTDIR') throw new DirQueueError('ENOTQUEUE', `${dir} is a file, not a directory`);
    throw fsError(`listing ${dir}`, error);
  }
}
