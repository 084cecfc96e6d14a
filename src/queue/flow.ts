/**
 * Flow control, first part: pausing types (or the whole queue) and cancelling
 * jobs, for every process on every host that shares the directory. The state
 * is files (store/pauses.ts, store/cancels.ts); the Queue's claim path reads
 * pauses through PauseWatch (pause-watch.ts), and its heartbeat looks for
 * cancel requests of its claims.
 */
import { unmarkChild } from '../store/deps.js';
import { encodeEvent, parseJobFile, type Envelope, type JobRecord } from '../store/envelope.js';
import { DirQueueError } from '../store/errors.js';
import { appendLine, move, readJobFile } from '../store/files.js';
import { releaseKeyOf } from '../store/keys.js';
import { parentsOf, type Ending } from '../store/release.js';
import type { Layout } from '../store/layout.js';
import { filesystemNow } from '../store/liveness.js';
import { lexists, locate } from '../store/locate.js';
import {
  activeName,
  CLOCK_FILE,
  checkId,
  describe,
  parseActiveName,
  parseId,
  pauseName,
  type NameMaker,
} from '../store/names.js';
import { pauseContent, readPauses, removePause, writePause } from '../store/pauses.js';
import { removeCancel, requestCancel } from '../store/cancels.js';
import { notFound } from './inspect.js';
import type { Job } from './job.js';
import { checkMs } from './options.js';

/** One pause in effect. */
export interface PauseInfo {
  /** The paused type; undefined: the whole queue. */
  type: string | undefined;
  /** When the pause ends by itself (in the filesystem's clock); undefined: when resumed. */
  until: Date | undefined;
  /** When it was made, and by which host and process, when its file says. */
  at: string | undefined;
  by: string | undefined;
  /** Its file, relative to the queue directory: `paused/NAME`. */
  file: string;
}

export interface PauseOptions {
  /** End the pause by itself after this many ms; without it the pause lasts until resume. */
  for?: number;
}

/** What cancel did. */
export interface CancelResult {
  id: string;
  /**
   * 'failed': the job was waiting (queue/ or delayed/) and is now in failed/
   * with ECANCELLED. 'active': it is running; its holder, wherever it runs,
   * aborts its signal within staleAfter/4, and the job ends in failed/ with
   * ECANCELLED when its processor returns, unless it completed first.
   */
  state: 'failed' | 'active';
  /** For a running job: the claim asked to stop. */
  claim?: string;
}

/** "Now" in the filesystem's clock, or this host's when the queue's clock file cannot be written (a reader). */
export function fsNowOrLocal(layout: Layout): number {
  try {
    return filesystemNow(layout.file('workers', CLOCK_FILE), layout.paths.tmp).now;
  } catch {
    return Date.now();
  }
}

/** Pause `type` (the whole queue when undefined); pausing again replaces the pause (a new `for`, or none). */
export async function pause(
  layout: Layout,
  owner: string,
  type: string | undefined,
  options: PauseOptions,
): Promise<PauseInfo> {
  if (options !== null && typeof options !== 'object') {
    throw new DirQueueError('EBADOPTION', `pause options must be an object like { for: 60000 }`);
  }
  const forMs = options?.for === undefined ? undefined : checkMs(options.for, 'for', 1);
  const until = forMs === undefined ? undefined : fsNowOrLocal(layout) + forMs;
  checkPauseType(type);
  await writePause(layout, type, pauseContent(until, owner), owner);
  return info(type, until, owner);
}

/** Lift the pause of `type` (of the whole queue when undefined). Resolves false when it was not paused. */
export function resume(layout: Layout, type: string | undefined): boolean {
  checkPauseType(type);
  return removePause(layout, type);
}

/**
 * The pauses in effect (ended ones left out, judged by this host's clock:
 * looking writes nothing, so a reader of the queue may list them). Hand-broken
 * pause files are not pauses: fsck reports them.
 */
export async function paused(layout: Layout): Promise<PauseInfo[]> {
  const { pauses } = readPauses(layout);
  const now = Date.now();
  return pauses
    .filter((p) => p.until === undefined || p.until > now)
    .map((p) => ({
      type: p.type,
      until: p.until === undefined ? undefined : new Date(p.until),
      at: p.at,
      by: p.by,
      file: `paused/${p.name}`,
    }));
}

function info(type: string | undefined, until: number | undefined, by: string): PauseInfo {
  return {
    type,
    until: until === undefined ? undefined : new Date(until),
    at: new Date().toISOString(),
    by,
    file: `paused/${pauseName(type)}`,
  };
}

function checkPauseType(type: unknown): void {
  if (type !== undefined && (typeof type !== 'string' || type.length === 0)) {
    throw new DirQueueError(
      'EBADTYPE',
      `the type to pause or resume must be a non-empty string (or nothing, for the whole queue), got ${describe(type)}`,
    );
  }
}

/** What cancel needs from the Queue that runs it. */
export interface CancelHost {
  layout: Layout;
  names: NameMaker;
  maxJobBytes: number;
  /** The Job this handle holds under `claim`, if any: it is told at once. */
  held(claim: string): Job | undefined;
  /** The job left queue/ or delayed/ (for the claim index). */
  departed(id: string): void;
  /** Count a job that ended in failed/. */
  counted(type: string): void;
  /** The job ended in failed/: mark its batch, release what waits for it (store/release.ts). */
  ended(ending: Ending): void;
  /** A claim of this handle that could not be put back: the Queue moves it to queue/ later (as its strays). */
  strand(id: string, path: string, to?: 'queue' | 'failed'): boolean;
}

/**
 * Cancel job `id`: a waiting one is ended in failed/ now, a running one's
 * holder is asked to stop it. Throws ENOTFOUND for an unknown id and
 * EBADSTATE for a job that already ended.
 */
export function cancel(host: CancelHost, id: string): CancelResult {
  checkId(id);
  const { layout } = host;
  for (let tries = 0; tries < 100; tries++) {
    const where = locate(layout, id);
    if (where === undefined) throw notFound(id);
    if (where.state === 'done' || where.state === 'failed') {
      throw new DirQueueError(
        'EBADSTATE',
        `job ${id} already ended (it is in ${where.state}/): there is nothing to cancel${where.state === 'failed' ? '; dirq retry sends it back to run' : ''}`,
      );
    }
    if (where.state === 'active') {
      const claim = parseActiveName(where.name)!.claim.claim;
      requestCancel(layout, id, claim, host.names.owner);
      if (!lexists(layout.file('active', where.name))) {
        // it ended (or was taken back) meanwhile: by this request, if its holder saw it in between
        removeCancel(layout, id, claim);
        if (endedByCancelOf(host, id, claim)) return { id, state: 'failed' };
        continue;
      }
      host.held(claim)?.cancelRequested(host.names.owner);
      return { id, state: 'active', claim };
    }
    if (where.state === 'waiting' && where.name !== id) continue; // being released this instant: look again
    if (cancelWaiting(host, id, where.state, where.name)) return { id, state: 'failed' };
  }
  throw new DirQueueError('ECONTENTION', `job ${id} kept changing state while it was being cancelled: try again`);
}

/**
 * End a waiting job in failed/ with ECANCELLED: take it by a claim of this
 * handle (one rename: a worker racing for it gets ENOENT), append the error,
 * rename it to failed/. The cancel request for that claim is made first, so
 * that if this process dies between the two renames the sweep that takes the
 * claim back ends the job in failed/ as well (rescue.ts). Returns false when
 * the job moved before it could be taken (a worker claimed it): look again.
 */
function cancelWaiting(host: CancelHost, id: string, state: 'waiting' | 'queue' | 'delayed', name: string): boolean {
  const { layout, names } = host;
  const claim = names.claim();
  const from = layout.file(state, name);
  const held = layout.file('active', activeName(id, claim));
  requestCancel(layout, id, claim, names.owner);
  let won: boolean;
  try {
    won = move(from, held, true, true);
  } catch (error) {
    removeCancel(layout, id, claim);
    throw error;
  }
  if (!won) {
    removeCancel(layout, id, claim);
    return false;
  }
  host.departed(id);
  let envelope: Envelope | undefined;
  try {
    const read = readJobFile(held, host.maxJobBytes);
    const record = read.ok ? parsedOrUndefined(read.text) : undefined;
    if (record !== undefined) {
      envelope = record.envelope;
      const message = `job ${id} was cancelled by ${names.owner} before it ran`;
      appendLine(
        held,
        encodeEvent({
          event: 'error',
          at: new Date().toISOString(),
          attempt: record.attemptsMade + 1,
          claim,
          message,
          code: 'ECANCELLED',
        }),
        layout.fileMode,
      );
    } else if (!read.ok && !read.gone && read.ioError !== undefined) {
      throw read.ioError;
    }
  } catch (error) {
    // not cancelled after all: back where it was, as it was; if even that fails, the Queue moves it at its
    // next claim, sweep or close (a sweep would, once this process is gone)
    removeCancel(layout, id, claim);
    try {
      move(held, from, false, true);
    } catch {
      host.strand(id, held); // moved at once, or kept as a stray; the error to report is the first
    }
    throw error;
  }
  try {
    move(held, layout.file('failed', id), false, true);
  } catch (error) {
    // its error is written: it only needs the rename, which the Queue tries again at once and later
    if (!host.strand(id, held, 'failed')) throw error;
  }
  const type = parseId(id)?.type;
  if (type !== undefined) host.counted(type);
  releaseKeyOf(layout, envelope?.key, id);
  removeCancel(layout, id, claim);
  if (state === 'waiting' && envelope !== undefined) {
    for (const parent of parentsOf(envelope)) unmarkChild(layout, parent, id); // it waits for nothing now
  }
  host.ended({ id, state: 'failed', envelope });
  return true;
}

/** The job file's record, or undefined when it is not one (it goes to failed/ as it is: it could never run). */
function parsedOrUndefined(text: string): JobRecord | undefined {
  try {
    return parseJobFile(text);
  } catch {
    return undefined;
  }
}

/** Whether job `id` is in failed/ because the claim `claim` was cancelled (its holder, or the sweep that took it back, ended it so). */
function endedByCancelOf(host: CancelHost, id: string, claim: string): boolean {
  const read = readJobFile(host.layout.file('failed', id), host.maxJobBytes);
  const record = read.ok ? parsedOrUndefined(read.text) : undefined;
  if (record === undefined) return false;
  const ofClaim = record.events.some((e) => (e.event === 'error' || e.event === 'revoked') && e.claim === claim);
  return ofClaim && record.events.some((e) => e.event === 'error' && e.code === 'ECANCELLED');
}
