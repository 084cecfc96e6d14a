/**
 * Reading a queue without changing it: one job's story (get), a state's jobs
 * in run order (list), counts and stats. Nothing here claims or moves a file.
 */
import fs from 'node:fs';
import { parseJobFile, payloadOf, tornReason, type JobEvent } from './envelope.js';
import { DirQueueError, type RecordedError } from './errors.js';
import { listDir, readJobFile } from './files.js';
import { STATES, type Layout, type State } from './layout.js';
import { isId, nowUs, parseActiveName, parseDelayedName, parseId } from './names.js';
import { recent, type Recent } from './throughput.js';

export interface JobInfo {
  id: string;
  state: State;
  type: string;
  /** The payload: JSON data, a Buffer for raw bytes, undefined when none or unreadable. */
  data: unknown;
  priority: number;
  /** Attempts that have ended so far (errors, timeouts, crashes), over every round. */
  attemptsMade: number;
  /**
   * Attempts that have ended in this round, since an operator's last retry:
   * what counts against `attempts`. Equals attemptsMade until a retry.
   */
  attemptsSinceRetry: number;
  /** The most attempts the job gets in a round (its own, or the queue's default). */
  attempts: number;
  /** Runs that have ended over the job's whole life: every failed attempt, and the one that succeeded. */
  runs: number;
  /** How many times an operator sent the job back from failed/ (dirq retry): each starts a round. */
  retries: number;
  createdAt: Date | undefined;
  /** When the job became (or becomes) ready: from its id. */
  readyAt: Date;
  /** delayed/ only: when it will move to queue/. */
  runAt?: Date;
  /** active/ only: the claim token of the holder. */
  claim?: string;
  /** done/ only: what the processor returned. */
  result?: unknown;
  /**
   * done/ only: why the job did not provably complete (its result event is
   * missing or torn, as after a power cut; envelope.ts tornReason). It has
   * no result then, and runs again once a sweep after a reboot or
   * `fsck --repair` puts it back in queue/.
   */
  torn?: string;
  /** The last error, if any attempt failed. */
  error?: RecordedError;
  /** Every error, oldest first. */
  errors: RecordedError[];
  /** Why the file was set aside as invalid (failed/ only). */
  invalid?: string;
  /** Everything appended to the job file after its envelope. */
  history: JobEvent[];
  /** The file's path when it was read. */
  path: string;
}

/** Where a job's file is, by state; undefined when it is nowhere. */
export function locate(layout: Layout, id: string): { state: State; name: string } | undefined {
  // Probe in lifecycle order, twice: a job moving while we look is found on the second pass.
  for (let pass = 0; pass < 2; pass++) {
    if (lexists(layout.file('queue', id))) return { state: 'queue', name: id };
    const delayed = listDir(layout.paths.delayed).find((n) => n.endsWith(`~${id}`) && parseDelayedName(n)?.id === id);
    if (delayed !== undefined) return { state: 'delayed', name: delayed };
    const active = listDir(layout.paths.active).find((n) => n.startsWith(`${id}@`) && parseActiveName(n)?.id === id);
    if (active !== undefined) return { state: 'active', name: active };
    if (lexists(layout.file('done', id))) return { state: 'done', name: id };
    if (lexists(layout.file('failed', id))) return { state: 'failed', name: id };
  }
  return undefined;
}

/** What a reader assumes where a job file is silent. */
export interface ReadDefaults {
  maxJobBytes: number;
  attempts: number;
}

/** Read one job file into a JobInfo; undefined when it vanished meanwhile. */
export function readInfo(layout: Layout, state: State, name: string, defaults: ReadDefaults): JobInfo | undefined {
  const id = idOfName(state, name);
  const parsed = id === undefined ? undefined : parseId(id);
  if (parsed === undefined) return undefined;
  const path = layout.file(state, name);
  const info: JobInfo = {
    id: parsed.id,
    state,
    type: parsed.type,
    data: undefined,
    priority: parsed.priority,
    attemptsMade: 0,
    attemptsSinceRetry: 0,
    attempts: defaults.attempts,
    runs: 0,
    retries: 0,
    createdAt: undefined,
    readyAt: new Date(parsed.enqueuedUs / 1000),
    errors: [],
    history: [],
    path,
  };
  if (state === 'delayed') info.runAt = new Date(parseDelayedName(name)!.dueUs / 1000);
  if (state === 'active') info.claim = parseActiveName(name)!.claim.claim;
  const read = readJobFile(path, defaults.maxJobBytes);
  if (!read.ok) {
    if (read.gone) return undefined;
    info.invalid = read.reason;
    return info;
  }
  let record;
  try {
    record = parseJobFile(read.text);
  } catch (error) {
    info.invalid = lastInvalidReason(read.text) ?? (error as Error).message;
    return info;
  }
  info.data = payloadOf(record.envelope);
  info.attemptsMade = record.attemptsMade;
  info.attemptsSinceRetry = record.attemptsSinceRetry;
  info.attempts = record.envelope.attempts ?? defaults.attempts;
  info.runs = record.attemptsMade + (record.result === undefined ? 0 : 1);
  info.retries = record.events.filter((e) => e.event === 'retry').length;
  if (record.envelope.created !== undefined) info.createdAt = new Date(record.envelope.created);
  if (state === 'done') {
    const torn = tornReason(read.text, record);
    if (torn !== undefined) info.torn = torn;
    else info.result = record.result!.value;
  }
  info.errors = record.errors;
  const last = record.errors.at(-1);
  if (last !== undefined) info.error = last;
  if (record.invalid !== undefined) info.invalid = record.invalid;
  info.history = record.events;
  return info;
}

/** An unparsable file set aside by a reader still carries its reason on its last line. */
function lastInvalidReason(text: string): string | undefined {
  const trimmed = text.trimEnd();
  try {
    const event = JSON.parse(trimmed.slice(trimmed.lastIndexOf('\n') + 1)) as { event?: unknown; reason?: unknown }; // the last line only: no split of a huge file
    return event.event === 'invalid' && typeof event.reason === 'string' ? event.reason : undefined;
  } catch {
    return undefined;
  }
}

/** The job id inside a file name of `state`, or undefined if the name is not a job of that state. */
export function idOfName(state: State, name: string): string | undefined {
  switch (state) {
    case 'delayed':
      return parseDelayedName(name)?.id;
    case 'active':
      return parseActiveName(name)?.id;
    default:
      return isId(name) ? name : undefined;
  }
}

/** Names of the jobs in `state`, in run order (byte order of their names). */
export function jobNames(layout: Layout, state: State): string[] {
  return listDir(layout.paths[state])
    .filter((name) => idOfName(state, name) !== undefined)
    .sort();
}

export type Counts = Record<State, number>;

export function counts(layout: Layout): Counts {
  const out = {} as Counts;
  for (const state of STATES) out[state] = jobNames(layout, state).length;
  return out;
}

export interface Stats {
  counts: Counts;
  /**
   * Per state, the age of its oldest job, ms (null when empty): since it
   * became ready (its id's time), except in delayed/, where it is since it
   * entered delayed/ (the file's ctime).
   */
  oldest: Record<State, number | null>;
  /** delayed/ only: ms until the earliest delayed job is due (negative when overdue), null when none. */
  nextDue: number | null;
  /** queue/ only: the longest any ready job has waited in queue/, ms, from the time it entered (ctime). */
  waiting: number | null;
  /** The id of that job. */
  waitingId: string | null;
  /** Per job type, counts by state. */
  types: Record<string, Counts>;
  /** Jobs that ended in the last minute: throughput and latency (see throughput.ts). */
  recent: Recent;
}

export function stats(layout: Layout): Stats {
  const now = nowUs();
  const result: Stats = {
    counts: {} as Counts,
    oldest: {} as Stats['oldest'],
    nextDue: null,
    waiting: null,
    waitingId: null,
    types: {},
    recent: recent(layout),
  };
  for (const state of STATES) {
    const names = jobNames(layout, state);
    result.counts[state] = names.length;
    let oldestUs = Infinity;
    for (const name of names) {
      const parsed = parseId(idOfName(state, name)!)!;
      if (state === 'delayed') {
        const entered = ctimeMs(layout.file('delayed', name));
        if (entered !== undefined) oldestUs = Math.min(oldestUs, entered * 1000);
      } else {
        oldestUs = Math.min(oldestUs, parsed.enqueuedUs);
      }
      const perType = (result.types[parsed.type] ??= { queue: 0, delayed: 0, active: 0, done: 0, failed: 0 });
      perType[state]++;
      if (state === 'queue') {
        const entered = ctimeMs(layout.file('queue', name));
        const waited = entered === undefined ? undefined : Math.max(0, now / 1000 - entered);
        if (waited !== undefined && (result.waiting === null || waited > result.waiting)) {
          result.waiting = waited;
          result.waitingId = name;
        }
      }
    }
    result.oldest[state] = oldestUs === Infinity ? null : Math.max(0, Math.round((now - oldestUs) / 1000));
    if (state === 'delayed' && names.length > 0) result.nextDue = Math.round((parseDelayedName(names[0]!)!.dueUs - now) / 1000);
  }
  if (result.waiting !== null) result.waiting = Math.round(result.waiting);
  return result;
}

export function notFound(id: string): DirQueueError {
  return new DirQueueError('ENOTFOUND', `no job ${id} in any state (it may have been removed or purged)`);
}

/** Whether anything is at `path` (a symlink counts: it is not followed). */
export function lexists(path: string): boolean {
  try {
    fs.lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function ctimeMs(path: string): number | undefined {
  try {
    return fs.lstatSync(path).ctimeMs;
  } catch {
    return undefined;
  }
}
