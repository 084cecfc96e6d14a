/**
 * fsck: check a queue directory against FORMAT.md and, with `repair`, fix
 * what can be fixed safely while workers run. It never opens a Queue (that
 * would sweep, and a damaged queue may not open): it reads the directory.
 *
 * What it finds, and what repair does:
 * - settings: dirqueue.json missing or unreadable beside a queue layout -> write a fresh one
 * - missing: a directory of the layout missing -> create it
 * - orphan-tmp: a file in tmp/ not written for `tmpMaxAge` (its writer died) -> delete it
 * - duplicate: one job id in two places (a `cp`, a hard link) -> keep the copy
 *   that proves the furthest progress and delete the others: a done/ copy
 *   with its result, a failed/ copy with the error or reason that ended it,
 *   then a claim in active/, then a waiting copy (delayed/, queue/), the one
 *   with the longest history first; a done/ or failed/ copy that records no
 *   end never ran there and goes last
 * - unparsable: a job file in queue/, delayed/ or done/ that cannot run
 *   (line 1 not an envelope, not a regular file, too big, wrong type) -> set
 *   it aside in failed/ with the reason, as a claimer would
 * - torn: a job in done/ without a proven result (its result event lost in a
 *   power cut; envelope.ts tornReason) -> put it back in queue/ to run again,
 *   with a `torn` event saying why (torn.ts)
 * - stale-helper: a heartbeat of a worker that is gone, a key whose job
 *   ended, a leftover lock (workers/.lock, or an earlier version's
 *   dirqueue.json.lock) or settings temp file, and anything but a regular
 *   file at workers/.clock or workers/.lock (a link, FIFO, directory) -> delete it
 * - stray: a name that is not a job name in a state directory, or a file in
 *   keys/ that is no key, or in schedules/ neither a schedule, a cursor nor a
 *   last-run link -> rename it to NAME~ in place (it may be someone's file:
 *   nothing is deleted, nothing leaves its directory)
 * - pauses and cancels (store/pauses.ts, store/cancels.ts): a file in paused/
 *   that is no pause (a bad name, not a regular file, content that does not
 *   parse) or in cancel/ that is no request -> stray (set aside as NAME~; a
 *   pause never obeyed until then: the queue runs on); a pause that ended,
 *   or a request whose claim is no longer in active/ -> stale-helper (delete)
 * - schedule: a schedule file that cannot be used (broken by hand; reported,
 *   never changed: fix it, schedule it again, or unschedule it); a cursor left
 *   pending by a maker that died -> complete its slot as a sweep would; a
 *   second cursor of one schedule -> delete the lower; the cursor or last-run
 *   link of a schedule whose file is gone (an unschedule cut short) -> delete it
 * - limits (fsck-limits.ts): a name in limits/ that is no type's directory,
 *   and what no reader takes for a slot or a token -> stray; a limit.json
 *   that cannot be used -> limit (reported, never changed); rate tokens that
 *   do not match the limit -> limit (deleted or made, as a sweep does); the
 *   slot of a holder that is gone, a reaper's leftover -> stale-helper (freed
 *   with reapSlot, deleted)
 * - releases (fsck-releases.ts): a job in waiting/ whose parents (or batch)
 *   all ended, a release cut short (waiting/ID@CLAIM), a batch member that
 *   ended still counted as pending -> waiting (released, finished or marked,
 *   as a sweep does); a marker in deps/ of a job no longer waiting -> stale-helper (deleted)
 * Dot files and names ending in `~` are skipped, as readers skip them: a
 * stray set aside is reported once, when it is renamed.
 *
 * A job moving while fsck looks is not a duplicate: a copy is a different
 * inode, or the same inode under two names (nlink > 1); the same file seen
 * in two listings is neither.
 */
import fs from 'node:fs';
import path from 'node:path';
import { encodeEvent, parseJobFile, tornReason } from '../store/envelope.js';
import { DirQueueError, fsError } from '../store/errors.js';
import { appendLine, listDir, move, readJobFile } from '../store/files.js';
import { describeKind } from '../store/open.js';
import { lstatOrGone, unlinkOrGone } from '../store/entry.js';
import { idOfName } from '../store/locate.js';
import { formatAge } from '../store/duration.js';
import {
  checkVersion,
  DIRS,
  FORMAT_MAJOR,
  FORMAT_MINOR,
  Layout,
  parseMode,
  readSettings,
  SETTINGS_FILE,
  STATES,
  type State,
} from '../store/layout.js';
import { isLive, keyTarget, removeStaleKey } from '../store/keys.js';
import { isDeadHere, readHeartbeat } from '../store/liveness.js';
import {
  CLOCK_FILE,
  describe,
  isKeyScratchName,
  isLibraryTmpName,
  isLockAsideName,
  isOwnerName,
  isSetAsideName,
  LOCK_FILE,
  lastRunName,
  NameMaker,
  parseActiveName,
  parseCancelName,
  scheduleFileName,
  parseId,
  setAsideName,
} from '../store/names.js';
import { checkBoolean, checkInteger, checkKnown, checkMs, dropUndefined } from '../store/option-checks.js';
import { SILENT_HEARTBEAT_MS } from './clean.js';
import { sweepDefaults } from './sweep.js';
import { putBack } from './torn.js';
import { pausedDir, readPause, removeExpiredPause } from '../store/pauses.js';
import { CANCEL_GRACE_MS, cancelDir } from '../store/cancels.js';
import { completeIfGone, pendingMakers } from './schedules.js';
import { listSchedules, readSchedule } from '../store/schedule-files.js';
import { checkLimits } from './fsck-limits.js';
import { checkReleases } from './fsck-releases.js';

export interface FsckOptions {
  /** Fix what can be fixed (see the module comment); false only reports. @default false */
  repair?: boolean;
  /** A file in tmp/ not written for this long is orphaned, ms (as maintenance judges). @default 3600000 */
  tmpMaxAge?: number;
  /** A heartbeat of a gone worker, a lock or a temp file this old is stale, ms. @default 3600000 */
  helperMaxAge?: number;
  /** Job files larger than this cannot run, bytes. @default 16777216 */
  maxJobBytes?: number;
}

/** The limits are the running queue's (sweepDefaults, which Queue's defaults use too), so fsck judges as a sweep does. */
export const fsckDefaults = Object.freeze({
  repair: false,
  tmpMaxAge: sweepDefaults.tmpMaxAge,
  helperMaxAge: SILENT_HEARTBEAT_MS,
  maxJobBytes: sweepDefaults.maxJobBytes,
} as const) satisfies Required<FsckOptions>;

/** fsck's options with its defaults, checked as Queue checks its own: unknown names and bad values are refused. */
function resolveFsckOptions(options: FsckOptions = {}): Required<FsckOptions> {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `fsck options must be an object, got ${describe(options)}`);
  }
  checkKnown(options, Object.keys(fsckDefaults), 'fsck option');
  const o: Required<FsckOptions> = { ...fsckDefaults, ...dropUndefined(options) };
  checkBoolean(o.repair, 'repair');
  checkMs(o.tmpMaxAge, 'tmpMaxAge', 0);
  checkMs(o.helperMaxAge, 'helperMaxAge', 0);
  checkInteger(o.maxJobBytes, 'maxJobBytes', 64);
  return o;
}

export type FindingKind =
  | 'settings'
  | 'missing'
  | 'orphan-tmp'
  | 'duplicate'
  | 'unparsable'
  | 'torn'
  | 'stale-helper'
  | 'stray'
  | 'schedule'
  | 'limit'
  | 'waiting';

export interface Finding {
  kind: FindingKind;
  /** The path, relative to the queue directory. */
  path: string;
  /** What is wrong. */
  problem: string;
  /** What repair did, or what to do about it. */
  action: string;
  repaired: boolean;
}

export interface FsckReport {
  dir: string;
  /** Job files looked at. */
  checked: number;
  findings: Finding[];
  /** Findings left unrepaired: the queue is clean when 0. */
  unrepaired: number;
}

/** Among copies that prove the same progress, the state preferred: the furthest along a job's life. */
const KEEP_ORDER: readonly State[] = ['done', 'failed', 'active', 'delayed', 'queue', 'waiting'];

export async function fsck(dir: string, options: FsckOptions = {}): Promise<FsckReport> {
  const o = resolveFsckOptions(options);
  const layout = new Layout(dir);
  const ctx: Context = { layout, o, findings: [], now: Date.now(), checked: 0 };
  await checkSettings(ctx);
  checkDirs(ctx);
  checkTmp(ctx);
  const places = census(ctx);
  checkDuplicates(ctx, places);
  checkContents(ctx, places);
  // before the heartbeats: a dead sweeper's reap leftover is judged by its heartbeat (slots.ts leftoverReaps), as in a sweep
  checkLimits({
    layout,
    now: ctx.now,
    helperMaxAge: o.helperMaxAge,
    found: (kind, file, problem, todo, fix) => found(ctx, kind, file, problem, todo, fix),
    stray: (file, problem, todo) => stray(ctx, file, problem, todo),
    ago: (ms) => ago(ctx, ms),
  });
  checkHelpers(ctx);
  checkFlow(ctx);
  checkSchedules(ctx);
  checkReleases({
    layout,
    now: ctx.now,
    maxJobBytes: o.maxJobBytes,
    tmpMaxAge: o.tmpMaxAge,
    found: (kind, file, problem, todo, fix) => found(ctx, kind, file, problem, todo, fix),
    ago: (ms) => ago(ctx, ms),
  });
  const findings = ctx.findings.sort((a, b) => a.kind.localeCompare(b.kind) || a.path.localeCompare(b.path));
  return { dir: layout.root, checked: ctx.checked, findings, unrepaired: findings.filter((f) => !f.repaired).length };
}

interface Context {
  layout: Layout;
  o: Required<FsckOptions>;
  findings: Finding[];
  now: number;
  checked: number;
}

/** Report a problem; with repair, `fix` runs and says what it did (or returns undefined when it could not). */
function found(
  ctx: Context,
  kind: FindingKind,
  file: string,
  problem: string,
  todo: string,
  fix?: () => string | undefined,
): void {
  let action = todo;
  let repaired = false;
  if (ctx.o.repair && fix !== undefined) {
    const did = fix();
    if (did !== undefined) [action, repaired] = [did, true];
  }
  ctx.findings.push({ kind, path: path.relative(ctx.layout.root, file) || '.', problem, action, repaired });
}

async function checkSettings(ctx: Context): Promise<void> {
  const { layout } = ctx;
  const file = path.join(layout.root, SETTINGS_FILE);
  if (!fs.existsSync(layout.root))
    throw new DirQueueError('ENOQUEUE', `${layout.root} does not exist: create a queue with dirq init ${layout.root}`);
  let problem: string;
  try {
    const settings = readSettings(file);
    if (settings !== undefined) {
      checkVersion(settings, file);
      if (settings.mode !== undefined) layout.fileMode = parseMode(settings.mode, `"mode" in ${file}`);
      return;
    }
    problem = `${SETTINGS_FILE} is missing`;
  } catch (error) {
    if (!(error instanceof DirQueueError) || error.code !== 'ENOTQUEUE') throw error;
    problem = error.message;
  }
  if (!STATES.some((s) => fs.existsSync(layout.paths[s]))) {
    throw new DirQueueError(
      'ENOTQUEUE',
      `${layout.root} is not a queue (no ${SETTINGS_FILE}, no state directories): check the path`,
    );
  }
  const settings = {
    format: 'dirqueue' as const,
    version: `${FORMAT_MAJOR}.${FORMAT_MINOR}`,
    created: new Date().toISOString(),
  };
  let did: string | undefined;
  if (ctx.o.repair) {
    try {
      await layout.writeSettings(settings);
    } catch (error) {
      throw fsError(`writing ${file}`, error);
    }
    did = `wrote a fresh ${SETTINGS_FILE} (format ${settings.version}; a group-shared queue needs dirq init --mode again)`;
  }
  found(ctx, 'settings', file, problem, `run dirq fsck ${layout.root} --repair to write a fresh one`, () => did);
}

function checkDirs(ctx: Context): void {
  for (const dir of DIRS) {
    const p = ctx.layout.paths[dir];
    const stat = lstatOrGone(p);
    if (stat === undefined) {
      found(ctx, 'missing', p, `${dir}/ is missing`, 'run with --repair to create it', () => {
        ctx.layout.makeDir(dir);
        return `created ${dir}/`;
      });
    } else if (!stat.isDirectory()) {
      found(
        ctx,
        'missing',
        p,
        `${dir} is not a directory`,
        `move it away, then run dirq fsck ${ctx.layout.root} --repair`,
      );
    }
  }
}

function checkTmp(ctx: Context): void {
  for (const name of listDir(ctx.layout.paths.tmp)) {
    const file = ctx.layout.file('tmp', name);
    const stat = lstatOrGone(file);
    if (stat === undefined || stat.isDirectory() || ctx.now - stat.mtimeMs <= ctx.o.tmpMaxAge) continue;
    // sweeps delete only the library's own names here (isLibraryTmpName): anything else waits for this check
    const problem = isLibraryTmpName(name)
      ? 'abandoned by its writer'
      : 'not a name dirqueue makes, so sweeps leave it';
    found(
      ctx,
      'orphan-tmp',
      file,
      `${problem} (last written ${ago(ctx, stat.mtimeMs)})`,
      'run with --repair to delete it',
      () => (unlink(file) ? 'deleted' : undefined),
    );
  }
}

type Places = Map<string, { state: State; name: string }[]>;

/** Every job name in the state directories, by id; strays are reported here. */
function census(ctx: Context): Places {
  const places: Places = new Map();
  for (const state of STATES) {
    for (const name of listDir(ctx.layout.paths[state])) {
      if (name.startsWith('.') || isSetAsideName(name)) continue;
      const id = idOfName(state, name);
      if (id === undefined) {
        const problem = `not a job name in ${state}/ (FORMAT.md, "File names"): readers skip it`;
        stray(ctx, ctx.layout.file(state, name), problem, `rename it or move it out of ${state}/`);
        continue;
      }
      const list = places.get(id) ?? [];
      list.push({ state, name });
      places.set(id, list);
    }
  }
  return places;
}

function checkDuplicates(ctx: Context, places: Places): void {
  for (const [id, list] of places) {
    if (list.length < 2) continue;
    const present = list
      .map((p) => ({ ...p, stat: lstatOrGone(ctx.layout.file(p.state, p.name)) }))
      .filter((p): p is typeof p & { stat: fs.Stats } => p.stat !== undefined);
    const copies =
      new Set(present.map((p) => `${p.stat.dev}:${p.stat.ino}`)).size > 1 || present.some((p) => p.stat.nlink > 1);
    if (present.length < 2 || !copies) {
      places.set(id, present.slice(0, 1)); // a job that moved while we listed
      continue;
    }
    const ranked = present.map((p) => ({ ...p, ...progressOf(ctx, p.state, ctx.layout.file(p.state, p.name)) }));
    ranked.sort(
      (a, b) =>
        b.rank - a.rank ||
        b.events - a.events ||
        KEEP_ORDER.indexOf(a.state) - KEEP_ORDER.indexOf(b.state) ||
        b.stat.mtimeMs - a.stat.mtimeMs,
    );
    const [keep, ...extra] = ranked;
    places.set(id, [keep!]);
    const where = present.map((p) => `${p.state}/`).join(', ');
    for (const copy of extra) {
      const file = ctx.layout.file(copy.state, copy.name);
      found(
        ctx,
        'duplicate',
        file,
        `job ${id} is in ${where}`,
        `run with --repair to delete this copy and keep ${keep!.state}/${keep!.name}`,
        () => (unlink(file) ? `deleted this copy, kept ${keep!.state}/${keep!.name}` : undefined),
      );
    }
  }
}

/**
 * How far a copy of a job provably got. A copy made with `cp` or a link
 * before the job ran can sit in done/ or failed/ without having run: only
 * the events in the file prove an end. 3: it ended where it is (a result in
 * done/; an error, a revocation or an invalid reason in failed/); 2: a claim
 * in active/ (a worker may be running it); 1: waiting, or in done/ or failed/
 * with no end recorded; 0: unreadable. `events` breaks ties: more history
 * is further along.
 */
function progressOf(ctx: Context, state: State, file: string): { rank: number; events: number } {
  const read = readJobFile(file, ctx.o.maxJobBytes);
  if (!read.ok) return { rank: 0, events: 0 };
  let record;
  try {
    record = parseJobFile(read.text);
  } catch {
    return { rank: 0, events: 0 };
  }
  const events = record.events.length;
  if (state === 'done' && record.result !== undefined) return { rank: 3, events };
  if (state === 'failed' && (record.attemptsSinceRetry > 0 || record.invalid !== undefined)) return { rank: 3, events };
  return { rank: state === 'active' ? 2 : 1, events: state === 'done' || state === 'failed' ? -1 : events };
}

/** Read every job in queue/, delayed/ and done/; files that cannot run go to failed/, torn done/ jobs back to queue/. */
function checkContents(ctx: Context, places: Places): void {
  for (const [id, list] of places) {
    for (const { state, name } of list) {
      if (state === 'active' || state === 'failed') continue; // a holder ends its claim; failed/ is where bad files rest
      ctx.checked++;
      const file = ctx.layout.file(state, name);
      const problem = whyUnrunnable(ctx, file, id, state);
      if (problem === undefined) continue;
      if (problem.torn) {
        found(
          ctx,
          'torn',
          file,
          `not provably completed: ${problem.reason}`,
          'run with --repair to put it back in queue/ to run again',
          () =>
            putBack(ctx.layout, id, problem.reason, problem.key) ? `moved back to queue/${id} to run again` : undefined,
        );
        continue;
      }
      found(ctx, 'unparsable', file, problem.reason, 'run with --repair to set it aside in failed/', () =>
        setAside(ctx, file, id, problem),
      );
    }
  }
}

interface Unrunnable {
  reason: string;
  canAppend: boolean;
  /** A done/ job without a proven result, and its unique key: it can run again. */
  torn?: true;
  key?: string | undefined;
}

function whyUnrunnable(ctx: Context, file: string, id: string, state: State): Unrunnable | undefined {
  const read = readJobFile(file, ctx.o.maxJobBytes);
  if (!read.ok) return read.gone ? undefined : { reason: read.reason, canAppend: read.canAppend };
  try {
    const record = parseJobFile(read.text);
    const type = parseId(id)!.type;
    if (record.envelope.type !== undefined && record.envelope.type !== type) {
      return {
        reason: `its type ${JSON.stringify(record.envelope.type)} differs from the type in its name ${JSON.stringify(type)}`,
        canAppend: true,
      };
    }
    const torn = state === 'done' ? tornReason(read.text, record) : undefined;
    return torn === undefined ? undefined : { reason: torn, canAppend: true, torn: true, key: record.envelope.key };
  } catch (error) {
    return { reason: (error as Error).message, canAppend: true };
  }
}

function setAside(
  ctx: Context,
  file: string,
  id: string,
  problem: { reason: string; canAppend: boolean },
): string | undefined {
  const target = ctx.layout.file('failed', id);
  if (lstatOrGone(target) !== undefined) return undefined; // never replace a job in failed/
  if (problem.canAppend)
    appendLine(file, encodeEvent({ event: 'invalid', at: new Date().toISOString(), reason: problem.reason }));
  return move(file, target) ? `moved to failed/${id}` : undefined;
}

function checkHelpers(ctx: Context): void {
  const { layout } = ctx;
  const owners = new Set<string>();
  for (const name of listDir(layout.paths.active)) {
    const claim = parseActiveName(name)?.claim;
    if (claim !== undefined) owners.add(claim.owner);
  }
  for (const maker of pendingMakers(layout)) owners.add(maker); // a half-made slot's completer judges its maker by it
  for (const name of listDir(layout.paths.workers)) {
    if (!isOwnerName(name) || owners.has(name)) continue; // its claims need it (dirq recover)
    const file = layout.file('workers', name);
    const beat = readHeartbeat(file);
    if (beat === undefined) continue;
    const dead = beat.identity !== undefined && isDeadHere(beat.identity);
    if (!dead && ctx.now - beat.mtimeMs <= ctx.o.helperMaxAge) continue;
    const why = dead ? 'its process is gone' : `silent since ${ago(ctx, beat.mtimeMs)}`;
    found(
      ctx,
      'stale-helper',
      file,
      `the heartbeat of a worker that is gone (${why})`,
      'run with --repair to delete it',
      () => (unlink(file) ? 'deleted' : undefined),
    );
  }
  checkSweepFiles(ctx);
  for (const name of listDir(layout.paths.keys)) {
    const file = layout.file('keys', name);
    if (isSetAsideName(name)) continue; // a stray set aside
    if (isKeyScratchName(name)) {
      if (olderThan(ctx, file, ctx.o.helperMaxAge)) {
        found(ctx, 'stale-helper', file, 'left by an interrupted key takeover', 'run with --repair to delete it', () =>
          unlink(file) ? 'deleted' : undefined,
        );
      }
      continue;
    }
    const holder = keyTarget(layout, name);
    if (holder === undefined) {
      // a key released since the listing, and perhaps taken again since the read (a link once more),
      // is no stray: setting that link aside would let a second live job take the key
      const stat = lstatOrGone(file);
      if (stat === undefined || stat.isSymbolicLink()) continue;
      stray(ctx, file, 'not a symbolic link: not a unique key', 'move it out of keys/');
    } else if (!isLive(layout, holder)) {
      found(
        ctx,
        'stale-helper',
        file,
        `a unique key held by ${holder}, which is no longer waiting or running`,
        'run with --repair to delete it',
        () => (removeStaleKey(layout, name) ? 'deleted' : undefined),
      );
    }
  }
  for (const name of listDir(layout.root)) {
    if (!name.startsWith(`${SETTINGS_FILE}.`)) continue;
    const file = path.join(layout.root, name);
    if (!olderThan(ctx, file, ctx.o.helperMaxAge)) continue;
    const lock = name === `${SETTINGS_FILE}.lock`;
    found(
      ctx,
      'stale-helper',
      file,
      lock ? 'a maintenance lock left by a process that died' : `a temporary file left by a write of ${SETTINGS_FILE}`,
      'run with --repair to delete it',
      () => (unlink(file) ? 'deleted' : undefined),
    );
  }
}

/**
 * The sweeps' own files in workers/ (dot files, which the loop over
 * heartbeats skips): the filesystem clock and the maintenance lock must be
 * regular files (sweeps work around anything else, with a warning, but never
 * use it), a lock left by a sweeper that died goes stale, and so does what a
 * lock takeover moved aside (.lock~TOKEN).
 */
function checkSweepFiles(ctx: Context): void {
  const { layout } = ctx;
  for (const name of listDir(layout.paths.workers)) {
    if (name !== CLOCK_FILE && name !== LOCK_FILE && !isLockAsideName(name)) continue;
    const file = layout.file('workers', name);
    const stat = lstatOrGone(file);
    if (stat === undefined) continue;
    const what = name === CLOCK_FILE ? 'the filesystem clock' : 'the maintenance lock';
    let problem: string;
    if (!stat.isFile() && name !== CLOCK_FILE && name !== LOCK_FILE) {
      if (ctx.now - stat.mtimeMs <= ctx.o.helperMaxAge) continue;
      problem = 'left by a takeover of the maintenance lock';
    } else if (!stat.isFile()) {
      problem = `${describeKind(stat)} where ${what} belongs: sweeps never follow or open it (they work around it with a warning)`;
    } else if (name === CLOCK_FILE && stat.nlink > 1) {
      problem = `a file with ${stat.nlink} names (a hard link, maybe to a file outside the queue) where ${what} belongs: sweeps never write it (they work around it with a warning); removing this name leaves the other names as they are`;
    } else if (name === CLOCK_FILE || ctx.now - stat.mtimeMs <= ctx.o.helperMaxAge) {
      continue;
    } else {
      problem =
        name === LOCK_FILE
          ? 'a maintenance lock left by a process that died'
          : 'left by a takeover of the maintenance lock';
    }
    const todo = stat.isDirectory()
      ? 'run with --repair to delete it if it is empty, else move it away'
      : 'run with --repair to delete it';
    found(ctx, 'stale-helper', file, problem, todo, () => (removeEntry(file) ? 'deleted' : undefined));
  }
}

/** Delete a file, a link or an empty directory; false when it is gone, or a directory that is not empty. */
/** paused/ and cancel/: what is there that no reader obeys, and what has ended (flow-clean.ts does the latter in sweeps). */
function checkFlow(ctx: Context): void {
  const { layout } = ctx;
  for (const dir of [pausedDir(layout), cancelDir(layout)]) {
    const stat = lstatOrGone(dir);
    if (stat === undefined) continue;
    if (!stat.isDirectory()) {
      stray(
        ctx,
        dir,
        `${path.basename(dir)}/ is ${describeKind(stat)}, not a directory: pauses or cancels there are not seen`,
        'move it away',
      );
      continue;
    }
    const isPauses = dir === pausedDir(layout);
    for (const name of listDir(dir)) {
      if (name.startsWith('.') || isSetAsideName(name)) continue;
      const file = path.join(dir, name);
      if (isPauses) {
        const read = readPause(layout, name);
        if (read === undefined) continue;
        if ('reason' in read) {
          stray(ctx, file, `not a pause, so not obeyed: ${read.reason}`, 'fix or remove it');
        } else if (read.until !== undefined && read.until <= ctx.now) {
          found(
            ctx,
            'stale-helper',
            file,
            `a pause that ended ${ago(ctx, read.until)}`,
            'remove it, or run with --repair',
            () => (removeExpiredPause(layout, read, new NameMaker().owner) ? 'removed' : undefined),
          );
        }
        continue;
      }
      const request = parseCancelName(name);
      const entry = lstatOrGone(file);
      if (entry === undefined) continue;
      if (request === undefined || !entry.isFile()) {
        stray(
          ctx,
          file,
          request === undefined
            ? 'not a cancel request (cancel/ID@CLAIM)'
            : `a cancel request that is ${describeKind(entry)}, not a file`,
          'remove it',
        );
      } else if (!lstatOrGone(layout.file('active', name)) && ctx.now - entry.mtimeMs > CANCEL_GRACE_MS) {
        found(
          ctx,
          'stale-helper',
          file,
          'a cancel request whose claim is no longer in active/ (the job ended)',
          'remove it, or run with --repair',
          () => (unlink(file) ? 'removed' : undefined),
        );
      }
    }
  }
}

function removeEntry(file: string): boolean {
  try {
    return unlink(file);
  } catch (error) {
    if ((error as DirQueueError).code === 'ENOTEMPTY' || (error as DirQueueError).code === 'EEXIST') return false;
    throw error;
  }
}

/** A pending cursor's maker with a heartbeat is gone once silent this long: the Queue's default staleAfter. */
const queueStaleAfter = 30_000;

/** schedules/: every file a schedule is made of (see the module comment). */
function checkSchedules(ctx: Context): void {
  const { layout } = ctx;
  if (lstatOrGone(layout.paths.schedules)?.isDirectory() !== true) return; // reported as missing
  const listing = listSchedules(layout);
  const specs = new Set(listing.specs);
  for (const name of listing.specs) {
    try {
      readSchedule(layout, name);
    } catch (error) {
      if (!(error instanceof DirQueueError)) throw error;
      found(
        ctx,
        'schedule',
        layout.file('schedules', scheduleFileName(name)),
        `the schedule ${name} cannot be used, so it makes no jobs: ${error.message}`,
        `fix the file, or replace it (dirq schedule ${layout.root} ${name} ...), or remove it (dirq unschedule ${layout.root} ${name})`,
      );
    }
  }
  const owner = new NameMaker().owner;
  const sctx = { layout, owner, durable: true, staleAfter: queueStaleAfter };
  for (const [name, cursors] of listing.cursors) {
    const orphan = !specs.has(name);
    for (const [i, cursor] of cursors.entries()) {
      const file = layout.file('schedules', cursor.file);
      if (orphan) {
        found(
          ctx,
          'schedule',
          file,
          `the cursor of ${name}, whose schedule file is gone`,
          'run with --repair to delete it',
          () => (unlink(file) ? 'deleted' : undefined),
        );
      } else if (cursor.owner !== undefined) {
        const gone = completeIfGone(sctx, cursor, ctx.now, false);
        if (gone === 'busy') continue; // its maker is at work
        found(
          ctx,
          'schedule',
          file,
          `the slot ${new Date(cursor.slotUs / 1000).toISOString()} of ${name} was left half-made by ${cursor.owner}, which is gone`,
          'run with --repair to complete it (a sweep does too)',
          () => {
            const did = completeIfGone(sctx, cursor, ctx.now, true);
            return did === 'completed'
              ? 'completed: its job is in queue/ (if its maker had not placed it) and the cursor moved on'
              : undefined;
          },
        );
      } else if (i > 0) {
        found(
          ctx,
          'schedule',
          file,
          `a second cursor of ${name} (the highest, ${cursors[0]!.file}, counts)`,
          'run with --repair to delete it',
          () => (unlink(file) ? 'deleted' : undefined),
        );
      }
    }
  }
  for (const name of listing.lasts) {
    const file = layout.file('schedules', lastRunName(name));
    if (!specs.has(name)) {
      found(
        ctx,
        'schedule',
        file,
        `the last-run link of ${name}, whose schedule file is gone`,
        'run with --repair to delete it',
        () => (unlink(file) ? 'deleted' : undefined),
      );
    } else if (lstatOrGone(file)?.isSymbolicLink() === false) {
      stray(ctx, file, 'not a symbolic link, as a last-run link is', 'remove it');
    }
  }
  for (const name of listing.foreign) {
    if (isSetAsideName(name)) continue;
    stray(
      ctx,
      layout.file('schedules', name),
      'not a schedule file (NAME.json), a cursor or a last-run link',
      'move it out of schedules/',
    );
  }
}

/**
 * A name that is not ours where ours belong: readers skip it, but it is
 * damage until it is set aside. Repair renames it to NAME~ (NAME.2~, ... if
 * taken), which no reader and no later check looks at, in the same
 * directory: one rename, and the owner finds it beside where it was.
 */
function stray(ctx: Context, file: string, problem: string, todo: string): void {
  found(ctx, 'stray', file, problem, `${todo}, or run with --repair to rename it to ${path.basename(file)}~`, () => {
    let target = setAsideName(file, 1);
    for (let n = 2; lstatOrGone(target) !== undefined; n++) target = setAsideName(file, n);
    return move(file, target)
      ? `renamed to ${path.basename(target)} (set aside: readers and fsck skip names ending in ~)`
      : undefined;
  });
}

function olderThan(ctx: Context, file: string, ms: number): boolean {
  const stat = lstatOrGone(file);
  return stat !== undefined && ctx.now - stat.mtimeMs > ms;
}

/** Delete a file (or an empty directory: the lock); false when it was gone already. */
function unlink(file: string): boolean {
  return unlinkOrGone(file, lstatOrGone(file)?.isDirectory() === true);
}

function ago(ctx: Context, ms: number): string {
  return `${formatAge(ctx.now - ms)} ago`;
}
