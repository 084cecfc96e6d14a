/**
 * The queue directory: its state directories and dirqueue.json (FORMAT.md).
 * dirqueue.json is replaced by a rename of a fresh file from tmp/
 * (safe-file.ts), which replaces a symbolic link at its name rather than
 * writing through it; write-file-atomic, the design card's choice, resolves
 * links first and installs signal-exit, which takes over the host process's
 * SIGTERM and SIGINT (defects issue, S2 and D12).
 */
import fs from 'node:fs';
import path from 'node:path';
import { listDir } from './files.js';
import { DirQueueError, errnoOf, fsError } from './errors.js';
import { filesystemKind } from './fs-kind.js';
import { checkDir, chmodDirNoFollow, makeDirNoFollow, readSmallFile, replaceFile } from './safe-file.js';

// waiting (format 1.3) comes last, so that what lists the states in this order reads as it did before it
export const STATES = ['queue', 'delayed', 'active', 'done', 'failed', 'waiting'] as const;
export type State = (typeof STATES)[number];

/** done/ and failed/: a job there has ended, and its ending was acted on. */
export function endedState(state: State): boolean {
  return state === 'done' || state === 'failed';
}

/**
 * State directories plus tmp/ (writers), workers/ (heartbeats), keys/ (unique keys), schedules/ (schedules),
 * deps/ (who waits for whom) and batches/ (batches).
 */
export const DIRS = ['tmp', ...STATES, 'workers', 'keys', 'schedules', 'deps', 'batches'] as const;
/** Directories an open makes when they are missing: each came after the first layout. */
const ADDED_LATER: readonly Dir[] = ['workers', 'keys', 'schedules', 'waiting', 'deps', 'batches'];
/**
 * Of those, the ones a queue may go on without when this user may not make them: a queue made before
 * schedules (format 1.2) or dependencies and batches (1.3) reads as one without any (a missing directory lists as empty).
 */
const OPTIONAL: readonly Dir[] = ['schedules', 'waiting', 'deps', 'batches'];
export type Dir = (typeof DIRS)[number];

export const FORMAT_MAJOR = 1;
export const FORMAT_MINOR = 3;
export const SETTINGS_FILE = 'dirqueue.json';
/** A settings file is a few hundred bytes: anything much larger is not one. */
const SETTINGS_MAX_BYTES = 64 * 1024;

export interface Settings {
  format: 'dirqueue';
  version: string;
  created: string;
  /**
   * A group-shared queue: the permission bits (octal, e.g. "0660") of every
   * file the library creates; its directories are then setgid and
   * group-writable (see modeOfDirs), the queue directory itself only setgid
   * (modeOfRoot). Absent: files get 0666 less the umask.
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

/**
 * The queue directory itself: as its state directories, but writable by its
 * owner only (0660 -> 02750). Workers and enqueuers never create or rename
 * anything in it (they write in tmp/, the state directories and workers/;
 * only the owner's `dirq init` and `fsck --repair` replace dirqueue.json), so
 * a group member has no need to, and must not be able to, rename one of the
 * queue's directories away and put a link to a directory outside the queue
 * in its place, which would make a worker (often root) write or delete there
 * (defects issue, S3).
 */
export function modeOfRoot(fileMode: number): number {
  return modeOfDirs(fileMode) & ~0o022;
}

export function isState(value: unknown): value is State {
  return typeof value === 'string' && (STATES as readonly string[]).includes(value);
}

export function checkState(value: unknown): State {
  if (!isState(value)) {
    throw new DirQueueError('EBADOPTION', `unknown state ${JSON.stringify(value)}: use one of ${STATES.join(', ')}`);
  }
  return value;
}

/** Paths of one queue directory. */
export class Layout {
  readonly root: string;
  readonly paths: Readonly<Record<Dir, string>>;
  /** The queue's file mode from dirqueue.json, once prepare() read it; undefined: 0666 less the umask. */
  fileMode: number | undefined;
  /** What prepare() found amiss but could work with (a shared queue whose root others may write): Queue emits each as a 'warning'. */
  readonly warnings: DirQueueError[] = [];
  /** Each directory of the layout as prepare() found it (dev and inode), so that sweeps notice one replaced since. */
  #identities = new Map<Dir, { dev: number; ino: number }>();

  constructor(root: string) {
    this.root = path.resolve(root);
    this.paths = Object.fromEntries(DIRS.map((d) => [d, path.join(this.root, d)])) as Record<Dir, string>;
  }

  file(dir: Dir, name: string): string {
    return `${this.paths[dir]}/${name}`;
  }

  /**
   * Whether every directory of the queue is on a filesystem in memory (tmpfs, ramfs; fs-kind.ts),
   * where fsync does nothing. One in doubt (statfs failed, or it is missing) counts as on a disk.
   */
  inMemory(): boolean {
    return DIRS.every((dir) => filesystemKind(this.paths[dir]).memory);
  }

  /**
   * Check the directory is a queue of a format this code reads, creating the
   * layout when `create` is true and it is missing or empty. `mode` makes (or
   * turns) it a queue whose files get that mode (a group-shared queue).
   */
  async prepare(create: boolean, mode?: number): Promise<Settings> {
    let settings = readSettings(this.settingsPath);
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
        if (mode !== undefined) fs.chmodSync(this.root, modeOfRoot(mode)); // the root is the caller's own path: links in it are theirs
        for (const dir of DIRS) this.makeDir(dir);
        await this.writeSettings(settings);
      } catch (error) {
        throw fsError(`creating the queue in ${this.root}`, error);
      }
      this.#noteIdentities();
      return settings;
    }
    checkVersion(settings, this.settingsPath);
    this.fileMode =
      settings.mode === undefined ? undefined : parseMode(settings.mode, `"mode" in ${this.settingsPath}`);
    // Every directory of the layout must be one, not a link to one elsewhere: the library creates,
    // chmods, renames and deletes inside them, and must never do so outside the queue (S3).
    const missing = DIRS.filter((dir) => !this.#checkDir(dir));
    for (const dir of missing) {
      if (!create && !ADDED_LATER.includes(dir)) {
        throw new DirQueueError('ENOTQUEUE', `${this.paths[dir]} is missing: run dirq fsck ${this.root} --repair`);
      }
      try {
        this.makeDir(dir);
      } catch (error) {
        const code = (error as DirQueueError).code; // makeDirNoFollow throws only DirQueueErrors
        if ((code === 'EACCES' || code === 'EPERM') && OPTIONAL.includes(dir)) continue;
        if (code === 'EACCES' || code === 'EPERM') {
          throw new DirQueueError(
            code,
            `${this.paths[dir]} is missing and this user may not create it in ${this.root}: run dirq fsck ${this.root} --repair as the queue's owner`,
          );
        }
        throw fsError(`creating ${this.paths[dir]}`, error);
      }
    }
    if (mode !== undefined && mode !== this.fileMode) {
      settings = { ...settings, mode: formatMode(mode) };
      this.fileMode = mode;
      try {
        await this.writeSettings(settings);
        fs.chmodSync(this.root, modeOfRoot(mode));
        for (const dir of DIRS) chmodDirNoFollow(this.paths[dir], modeOfDirs(mode), this.#replaceTodo(dir));
      } catch (error) {
        if (error instanceof DirQueueError && error.code === 'EBADFILE') throw error;
        throw fsError(`setting the mode of the queue ${this.root} (only its owner or root can)`, error);
      }
    } else if (mode !== undefined && ((rootModeOf(this.root) ?? 0) & 0o022) !== 0) {
      // The mode is the queue's already, but its root is writable by others, as an older dirqueue made
      // every shared queue's (S3): its owner fixes that by opening with the mode; anyone else may not,
      // and is warned below like any process that opens it.
      try {
        fs.chmodSync(this.root, modeOfRoot(mode));
      } catch (error) {
        if (errnoOf(error) !== 'EPERM') throw fsError(`setting the mode of the queue ${this.root}`, error);
      }
    }
    this.#checkRootMode();
    this.#noteIdentities();
    return settings;
  }

  /**
   * A shared queue whose root its group (or anyone) may write lets a member
   * swap one of its directories for a link elsewhere. Sweeps notice such a
   * swap (checkIdentities) but a worker's own renames between sweeps would
   * not, so say how to close it. A warning, not a refusal: queues made by an
   * older dirqueue are all like this, and refusing would stop their workers
   * on upgrade, while only the owner can fix the mode.
   */
  #checkRootMode(): void {
    if (this.fileMode === undefined) return;
    const mode = rootModeOf(this.root);
    if (mode === undefined || (mode & 0o022) === 0) return;
    this.warnings.push(
      new DirQueueError(
        'EBADMODE',
        `${this.root} is writable by ${mode & 0o002 ? 'every user' : 'its group'} (mode 0${(mode & 0o7777).toString(8)}), so another user could replace one of the queue's directories with a link to a directory outside it: run dirq init ${this.root} --mode ${formatMode(this.fileMode)} as the queue's owner`,
      ),
    );
  }

  #noteIdentities(): void {
    for (const dir of DIRS) {
      try {
        const { dev, ino } = fs.lstatSync(this.paths[dir]);
        this.#identities.set(dir, { dev, ino });
      } catch {
        // missing (a read-only open of a damaged queue): nothing to compare with later
      }
    }
  }

  /**
   * The first directory of the layout that is no longer the one prepare()
   * found (renamed away, replaced by a link or another directory), as an
   * EBADFILE error to report; undefined when all are as they were. One lstat
   * per directory: a sweep checks this before touching anything. An I/O
   * error (not ENOENT) looking at one throws: it is no sign of a swap.
   */
  checkIdentities(): DirQueueError | undefined {
    for (const [dir, was] of this.#identities) {
      let stat: fs.Stats | undefined;
      try {
        stat = fs.lstatSync(this.paths[dir]);
      } catch (error) {
        // only a missing directory was replaced; an I/O error says nothing about it, and stops the sweep as such
        if (errnoOf(error) !== 'ENOENT') throw fsError(`checking the directory ${this.paths[dir]}`, error);
        stat = undefined;
      }
      if (stat !== undefined && stat.isDirectory() && stat.dev === was.dev && stat.ino === was.ino) continue;
      const now =
        stat === undefined
          ? 'gone'
          : stat.isSymbolicLink()
            ? 'a symbolic link'
            : stat.isDirectory()
              ? 'another directory'
              : 'no longer a directory';
      return new DirQueueError(
        'EBADFILE',
        `${this.paths[dir]} was replaced since this process opened the queue (it is ${now} now): sweeps are skipped until it is the queue's own directory again, so that nothing outside the queue is touched; find who replaced it, put the original back, and restart the queue's processes (dirq fsck ${this.root} says what is wrong)`,
      );
    }
    return undefined;
  }

  get settingsPath(): string {
    return path.join(this.root, SETTINGS_FILE);
  }

  /** Create one of the queue's directories (if missing), with the queue's mode; never through a link. */
  makeDir(dir: Dir): void {
    makeDirNoFollow(
      this.paths[dir],
      this.fileMode === undefined ? undefined : modeOfDirs(this.fileMode),
      this.#replaceTodo(dir),
    );
  }

  /**
   * Replace dirqueue.json (atomically, fsynced), readable by whoever may use
   * the queue: a fresh file made in tmp/ (created if missing) is renamed over it.
   */
  async writeSettings(settings: Settings): Promise<void> {
    const mode = settings.mode === undefined ? undefined : parseMode(settings.mode) & 0o666;
    makeDirNoFollow(this.paths.tmp, mode === undefined ? undefined : modeOfDirs(mode), this.#replaceTodo('tmp'));
    await replaceFile(this.settingsPath, `${JSON.stringify(settings, null, 2)}\n`, { tmpDir: this.paths.tmp, mode });
  }

  /** Whether `dir` exists; throws EBADFILE when it is something other than a directory. */
  #checkDir(dir: Dir): boolean {
    if (notThere(this.paths[dir])) return false;
    checkDir(this.paths[dir], this.#replaceTodo(dir));
    return true;
  }

  #replaceTodo(dir: Dir): string {
    return `move it away and run dirq fsck ${this.root} --repair to make ${dir}/ again`;
  }
}

/** The mode bits of the queue directory, or undefined when it cannot be read. */
function rootModeOf(root: string): number | undefined {
  try {
    return fs.statSync(root).mode & 0o7777;
  } catch {
    return undefined;
  }
}

/** True when nothing at all (not even a dangling link) is at `p`. */
function notThere(p: string): boolean {
  try {
    fs.lstatSync(p);
    return false;
  } catch {
    return true;
  }
}

/**
 * dirqueue.json, or undefined when it does not exist; throws ENOTQUEUE when
 * it is not a settings file, a symbolic link or a FIFO included (never
 * followed, never blocking: a link to a file outside the queue is not read).
 */
export function readSettings(file: string): Settings | undefined {
  let text: string | undefined;
  try {
    text = readSmallFile(
      file,
      SETTINGS_MAX_BYTES,
      `put the queue's settings file there, or run dirq fsck ${path.dirname(file)} --repair to write a fresh one`,
    );
  } catch (error) {
    const code = (error as DirQueueError).code;
    if (code === 'ENOTDIR') return undefined;
    if (code === 'EBADFILE') throw new DirQueueError('ENOTQUEUE', (error as DirQueueError).message);
    throw error;
  }
  if (text === undefined) return undefined;
  try {
    const settings = JSON.parse(text) as Settings;
    if (settings?.format !== 'dirqueue' || typeof settings.version !== 'string')
      throw new Error('not a dirqueue settings file');
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
    if ((error as DirQueueError).code === 'ENOTDIR')
      throw new DirQueueError('ENOTQUEUE', `${dir} is a file, not a directory`);
    throw error;
  }
}
