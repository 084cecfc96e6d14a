/**
 * Reading a queue without changing it: one job's story (get), a state's jobs
 * in run order (list), counts and stats. Nothing here claims or moves a file.
 */
import fs from 'node:fs';
import path from 'node:path';
import {
  groupOf,
  parseJobFile,
  payloadOf,
  scheduleOf,
  tornReason,
  type BatchCallbackRef,
  type BatchOutcome,
  type JobEvent,
  type JobRecord,
  type ParentOutcome,
  type ScheduleRef,
} from '../store/envelope.js';
import { DirQueueError, type RecordedError } from '../store/errors.js';
import { eachName, listDir, readJobFile } from '../store/files.js';
import { endedState, readSettings, SETTINGS_FILE, STATES, type Layout, type State } from '../store/layout.js';
import { idEncodedType, idEnqueuedUs, nowUs, parseActiveName, parseDelayedName, parseId } from '../store/names.js';
import { idOfName, jobNameReader, locate } from '../store/locate.js';
import { parentsOf } from '../store/release.js';
import { byteOrder, Smallest } from './smallest.js';
import { recent, RECENT_WINDOW_MS, type Recent } from './throughput.js';

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
  /** active/ only: when it was claimed (see claimTime). */
  claimedAt?: Date;
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
  /** A job made by a schedule: its name and the slot (ISO 8601) it ran for. */
  schedule?: ScheduleRef;
  /** The group the job was enqueued with (enqueue's `group`). */
  group?: string;
  /** The jobs it waits for, or waited for (enqueue's `after`). */
  after?: string[];
  /** 'run' when it runs even if one of `after` failed (enqueue's `afterFailed`). */
  afterFailed?: 'fail' | 'run';
  /** waiting/ only: where each job of `after` is now ('removed': in no state). */
  waitingFor?: { id: string; state: State | 'removed' }[];
  /** Once released from waiting/: how each job of `after` ended. */
  parents?: ParentOutcome[];
  /** The batch it is a member of (enqueueBatch). */
  batch?: string;
  /** A batch's callback: which batch, and when it runs. */
  onBatch?: BatchCallbackRef;
  /** A callback once released: how its batch ended. */
  batchOutcome?: BatchOutcome;
  /** Everything appended to the job file after its envelope. */
  history: JobEvent[];
  /** The file's path when it was read. */
  path: string;
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
  const schedule = scheduleOf(record.envelope);
  if (schedule !== undefined) info.schedule = schedule;
  const group = groupOf(record.envelope);
  if (group !== undefined) info.group = group;
  addDependencies(layout, info, record);
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
  if (state === 'active') {
    const claimed = claimTime(layout, name, defaults.maxJobBytes, record.events);
    if (claimed !== undefined) info.claimedAt = new Date(claimed);
  }
  return info;
}

/** What a job waits for, or waited for, from its envelope and its `released` event. */
function addDependencies(layout: Layout, info: JobInfo, record: JobRecord): void {
  const { envelope } = record;
  const after = parentsOf(envelope);
  if (after.length > 0) {
    info.after = after;
    info.afterFailed = envelope.afterFailed === 'run' ? 'run' : 'fail';
    if (info.state === 'waiting') {
      info.waitingFor = after.map((id) => ({ id, state: locate(layout, id)?.state ?? 'removed' }));
    }
  }
  if (typeof envelope.batch === 'string') info.batch = envelope.batch;
  if (envelope.onBatch !== undefined) info.onBatch = envelope.onBatch;
  if (record.released?.parents !== undefined) info.parents = record.released.parents;
  if (record.released?.batch !== undefined) info.batchOutcome = record.released.batch;
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

/** Names of the jobs in `state`, in run order (byte order of their names). */
export function jobNames(layout: Layout, state: State): string[] {
  const { isJob } = jobNameReader(state);
  return listDir(layout.paths[state]).filter(isJob).sort();
}

/**
 * The first `limit` jobs of `state` in run order, read, and how many jobs the
 * state holds: one streamed listing that keeps `limit` names (Smallest), not
 * a sort of every name, and only the files shown are read. A job that leaves
 * meanwhile is skipped and the next ones are picked, as a full sort would.
 */
export function firstJobs(
  layout: Layout,
  state: State,
  limit: number,
  defaults: ReadDefaults,
): { jobs: JobInfo[]; total: number } {
  const jobs: JobInfo[] = [];
  let total = 0;
  let after: string | undefined; // the names up to this one were read already
  const { isJob } = jobNameReader(state);
  for (let round = 0; jobs.length < limit; round++) {
    const want = limit - jobs.length;
    const best = new Smallest<string>(want, byteOrder);
    eachName(layout.paths[state], (name) => {
      if (round === 0) {
        if (!isJob(name)) return;
        total++;
      } else if (!(name > after! && best.wants(name) && isJob(name))) return;
      best.offer(name);
    });
    const names = best.sorted();
    for (const name of names) {
      const info = readInfo(layout, state, name, defaults);
      if (info !== undefined) jobs.push(info);
    }
    if (names.length < want) break;
    after = names.at(-1);
  }
  return { jobs, total };
}

export type Counts = Record<State, number>;

/**
 * The order a snapshot lists the state directories in: the way jobs flow
 * (waiting/ and delayed/ to queue/ to active/ to done/ or failed/). A job that moves on
 * while the listing runs is seen twice, in its old directory and, later, in
 * its new one, and is counted once, where it was seen last; listing against
 * the flow would miss it instead. Only a job moving back (a release, a
 * recovery or a retry: active/ to queue/ or delayed/, failed/ to queue/)
 * can be missed, never counted twice. So the counts of a snapshot never sum
 * to more than the jobs there are.
 */
const FLOW: readonly State[] = ['waiting', 'delayed', 'queue', 'active', 'done', 'failed'];

/**
 * The job names of every state, in no order, each job in one state only (see
 * FLOW). The ids of every state but the largest go into a map, and the
 * largest state's names are looked up in it: a million waiting jobs cost one
 * pass over their names, not a map of a million (at a million that map was
 * a third of `dirq stats`'s time and about 100 MiB).
 */
export function snapshot(layout: Layout): Record<State, string[]> {
  const names = {} as Record<State, string[]>;
  for (const state of FLOW) {
    const { isJob } = jobNameReader(state);
    names[state] = listDir(layout.paths[state]).filter(isJob);
  }
  const largest = FLOW.reduce((a, b) => (names[b].length > names[a].length ? b : a));
  const rank = (state: State): number => FLOW.indexOf(state);
  /** Each id seen in a state other than the largest: the states it was seen in. */
  const where = new Map<string, State[]>();
  for (const state of FLOW) {
    if (state === largest) continue;
    const { idOf } = jobNameReader(state);
    for (const name of names[state]) {
      const id = idOf(name);
      const states = where.get(id);
      if (states === undefined) where.set(id, [state]);
      else states.push(state);
    }
  }
  // a job seen twice moved on while the listing ran: it counts where it was seen last (ended states keep theirs)
  const movedOn = new Map<State, Set<string>>();
  const drop = (state: State, id: string): void => {
    if (!endedState(state)) (movedOn.get(state) ?? movedOn.set(state, new Set()).get(state)!).add(id);
  };
  const { idOf: idInLargest } = jobNameReader(largest);
  for (const name of names[largest]) where.get(idInLargest(name))?.push(largest);
  for (const [id, states] of where) {
    if (states.length < 2) continue;
    const last = states.reduce((a, b) => (rank(b) > rank(a) ? b : a));
    for (const state of states) if (state !== last) drop(state, id);
  }
  for (const [state, ids] of movedOn) {
    const { idOf } = jobNameReader(state);
    names[state] = names[state].filter((name) => !ids.has(idOf(name)));
  }
  return names;
}

export function counts(layout: Layout): Counts {
  const names = snapshot(layout);
  const out = {} as Counts;
  for (const state of STATES) out[state] = names[state].length;
  return out;
}

export interface Stats {
  /** Jobs per state: a snapshot, each job counted once (see FLOW). */
  counts: Counts;
  /**
   * Per state, the age of its oldest job, ms (null when empty): since it
   * became ready (its id's time), except in delayed/, since it entered
   * delayed/ (the file's ctime), and in active/, since it was claimed (claimTime).
   */
  oldest: Record<State, number | null>;
  /** delayed/ only: ms until the earliest delayed job is due (negative when overdue), null when none. */
  nextDue: number | null;
  /**
   * The longest any job that may run has waited to start, ms: a job in
   * queue/ since it entered queue/ (its ctime), a delayed job whose time has
   * come since its due time (nothing has promoted it yet). Null when none.
   * In queue/ only the WAIT_CANDIDATES jobs with the oldest ids, and those
   * whose id's time is still to come (a delayed job retried early), are
   * looked at: a job enters queue/ at or after its id's time (enqueue,
   * promotion, release, recovery and retry all move it there later), so
   * another one can have waited longer only if every candidate re-entered
   * queue/ after it did (more than WAIT_CANDIDATES jobs put back at once,
   * as by `dirq retry --all`, while it waited): then this is the longest
   * wait among the candidates, a lower bound.
   */
  waiting: number | null;
  /** The id of that job. */
  waitingId: string | null;
  /** Where that job waits: queue, or delayed when it is overdue there. */
  waitingState: 'queue' | 'delayed' | null;
  /** Per job type, counts by state. */
  types: Record<string, Counts>;
  /** Jobs that ended in the last minute (or since the queue was made, if later): throughput and latency (see throughput.ts). */
  recent: Recent;
}

/**
 * How many jobs of queue/ stats looks at for the longest wait (the file's
 * ctime, when it entered queue/): those with the oldest ids. An lstat is
 * about 3 us; every one at a million waiting took 5.8 s (issue 17).
 */
export const WAIT_CANDIDATES = 1000;

export function stats(layout: Layout, maxJobBytes: number): Stats {
  const now = nowUs();
  const names = snapshot(layout);
  const result: Stats = {
    counts: {} as Counts,
    oldest: {} as Stats['oldest'],
    nextDue: null,
    waiting: null,
    waitingId: null,
    waitingState: null,
    types: {},
    recent: recent(layout, RECENT_WINDOW_MS, now / 1000, createdMs(layout)),
  };
  const waited = (state: 'queue' | 'delayed', id: string, ms: number): void => {
    if (result.waiting !== null && ms <= result.waiting) return;
    result.waiting = ms;
    result.waitingId = id;
    result.waitingState = state;
  };
  const typeOf = typeDecoder();
  const byIdTime = (a: string, b: string): number => idEnqueuedUs(a) - idEnqueuedUs(b) || byteOrder(a, b);
  const candidates = new Smallest<string>(WAIT_CANDIDATES, byIdTime);
  const early: string[] = [];
  let firstDelayed: string | undefined; // delayed/ names sort by due time: the first is due soonest
  for (const state of STATES) {
    result.counts[state] = names[state].length;
    let oldestUs = Infinity;
    const { idOf } = jobNameReader(state);
    for (const name of names[state]) {
      const id = idOf(name);
      const idUs = idEnqueuedUs(id);
      const sinceUs =
        state === 'delayed'
          ? usOf(ctimeMs(layout.file(state, name)))
          : state === 'active'
            ? usOf(claimTime(layout, name, maxJobBytes))
            : idUs;
      if (sinceUs < oldestUs) oldestUs = sinceUs;
      const perType = (result.types[typeOf(id)] ??= {
        queue: 0,
        delayed: 0,
        active: 0,
        done: 0,
        failed: 0,
        waiting: 0,
      });
      perType[state]++;
      if (state === 'queue') {
        if (idUs > now) {
          early.push(name);
        } else {
          // a job whose id time is past the last candidate's cannot get in: skip the comparator's two parses
          const last = candidates.threshold();
          if (last === undefined || idUs <= idEnqueuedUs(last)) candidates.offer(name);
        }
      } else if (state === 'delayed' && (firstDelayed === undefined || name < firstDelayed)) {
        firstDelayed = name;
      }
    }
    result.oldest[state] = oldestUs === Infinity ? null : Math.max(0, Math.round((now - oldestUs) / 1000));
  }
  for (const name of [...candidates.sorted(), ...early]) {
    const entered = ctimeMs(layout.file('queue', name));
    if (entered !== undefined) waited('queue', name, Math.max(0, now / 1000 - entered));
  }
  if (firstDelayed !== undefined) {
    const { dueUs, id } = parseDelayedName(firstDelayed)!;
    result.nextDue = Math.round((dueUs - now) / 1000);
    if (dueUs < now) waited('delayed', id, (now - dueUs) / 1000);
  }
  if (result.waiting !== null) result.waiting = Math.round(result.waiting);
  return result;
}

/** A time in ms as us, Infinity when there is none (the file has gone). */
const usOf = (ms: number | undefined): number => (ms === undefined ? Infinity : ms * 1000);

/** The type of a job id, decoded once per distinct type rather than once per job. */
function typeDecoder(): (id: string) => string {
  const types = new Map<string, string>();
  return (id) => {
    const encoded = idEncodedType(id);
    let type = types.get(encoded);
    if (type === undefined) types.set(encoded, (type = parseId(id)!.type));
    return type;
  };
}

/**
 * When the claim `name` in active/ was made, ms since the epoch; undefined
 * when it is gone. No file records it, but the rename into active/ stamps
 * the file's ctime, and while the holder has appended nothing since, its
 * ctime is later than its mtime (the last write, before the claim) and is
 * the claim's time. An append by the holder (progress, log) moves both:
 * then the first event of this claim, a moment after it, is the closest
 * record there is.
 */
export function claimTime(
  layout: Layout,
  name: string,
  maxJobBytes: number,
  events?: readonly JobEvent[],
): number | undefined {
  const claim = parseActiveName(name)?.claim.claim;
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(layout.file('active', name));
  } catch {
    return undefined;
  }
  if (claim === undefined || stat.ctimeMs > stat.mtimeMs) return stat.ctimeMs;
  if (events === undefined) {
    const read = readJobFile(layout.file('active', name), maxJobBytes);
    if (!read.ok) return stat.ctimeMs;
    try {
      events = parseJobFile(read.text).events;
    } catch {
      return stat.ctimeMs;
    }
  }
  const mine = events.find((e) => 'claim' in e && e.claim === claim);
  const at = mine === undefined ? NaN : Date.parse(mine.at);
  return Number.isFinite(at) ? Math.min(at, stat.ctimeMs) : stat.ctimeMs;
}

/** When the queue was made (dirqueue.json's `created`), ms since the epoch; undefined when unknown. */
function createdMs(layout: Layout): number | undefined {
  try {
    const created = Date.parse(readSettings(path.join(layout.root, SETTINGS_FILE))?.created ?? '');
    return Number.isFinite(created) ? created : undefined;
  } catch {
    return undefined;
  }
}

export function notFound(id: string): DirQueueError {
  return new DirQueueError('ENOTFOUND', `no job ${id} in any state (it may have been removed or purged)`);
}

function ctimeMs(path: string): number | undefined {
  try {
    return fs.lstatSync(path).ctimeMs;
  } catch {
    return undefined;
  }
}
