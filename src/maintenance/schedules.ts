/**
 * Making the jobs of schedules' slots (FORMAT.md, "Schedules"): exactly one
 * job per slot, however many processes on however many hosts do this at once,
 * with no leader. A Queue runs it on a timer at each slot (queue/scheduler.ts)
 * and every sweep runs it for all schedules (the floor, and what `dirq
 * recover` does).
 *
 * The single winner is the cursor's rename (schedule-files.ts). A slot's job
 * is made in this order, by its maker M:
 *   1. write the job to tmp/.slot.M.ID (fsynced when durable);
 *   2. rename the cursor .NAME@PREV to .NAME@SLOT@M: one process wins; the
 *      others delete their tmp/ file and stop;
 *   3. point .NAME.last at ID;
 *   4. rename tmp/.slot.M.ID to queue/ID: the job is enqueued;
 *   5. rename .NAME@SLOT@M to .NAME@SLOT: the next slot may be taken.
 * Steps 2 to 5 run without an await, so only a crash (or a stop of the
 * process) leaves a cursor pending. A crash before 2 leaves nothing but a tmp/
 * file (deleted by age); after 2, the pending cursor names M, and once M is
 * known dead (or silent for staleAfter) another process completes it: it takes
 * the pending cursor by rename (one completer wins), and if M's tmp/ file is
 * still there (M died before step 4) points .last at it and renames it into
 * queue/, then releases the cursor. A completer never makes a job of its own:
 * it only moves the one M wrote, so a slot gets that job or, if M already
 * moved it, nothing more. No crash at any instruction gives a slot two jobs,
 * and none loses a slot while another process is up.
 *
 * Slots are judged in the filesystem's clock (liveness.ts filesystemNow), the
 * one clock every host shares: a host whose clock runs ahead would otherwise
 * make a slot's job early, and one behind would make it late.
 */
import { encodeEnvelope, type Envelope } from '../store/envelope.js';
import { DirQueueError } from '../store/errors.js';
import { listDir, move, removeQuietly, writeNew } from '../store/files.js';
import { isLive } from '../store/keys.js';
import type { Layout } from '../store/layout.js';
import { isDeadHere, readHeartbeat } from '../store/liveness.js';
import {
  cursorName,
  encodeType,
  groupTag,
  parseId,
  parseSlotTmpName,
  PRIORITY_DEFAULT,
  scheduledJobId,
  scheduleUnique,
  slotTmpName,
  untaggedUnique,
} from '../store/names.js';
import { lexists } from '../store/locate.js';
import {
  createCursor,
  cursorFloorMs,
  cursorMovedMs,
  listSchedules,
  moveCursor,
  readLastRun,
  readSchedule,
  removeScheduleState,
  writeLastRun,
  type Cursor,
  type ScheduleListing,
} from '../store/schedule-files.js';
import { CATCH_UP_MAX, ON_TIME_MS, Slots } from '../store/schedule-spec.js';
import { scheduleFileName } from '../store/names.js';

/**
 * A pending cursor whose maker has no heartbeat is completed by another
 * process only once it is this old (by its ctime, the filesystem's clock):
 * steps 2 to 5 take microseconds. A Queue starts its heartbeat before it takes
 * a cursor, so this applies to sweeps run without one (sweep.ts callers) and
 * to makers whose heartbeat was deleted after they died.
 */
export const PENDING_GRACE_MS = 2000;

export interface ScheduleContext {
  layout: Layout;
  /** This Queue handle: HOST.PID.NONCE (its heartbeat is workers/OWNER, if it has one). */
  owner: string;
  durable: boolean;
  staleAfter: number;
  /** Called before the first cursor this process takes: a Queue starts its heartbeat there. */
  beforeTake?: () => void;
  /** Whether the caller closed meanwhile (checked after the only await, before taking the cursor). */
  closed?: () => boolean;
}

export interface ScheduleRun {
  /** Jobs this call made (ids), oldest slot first. */
  made: string[];
  /** Slots passed without a job: paused, catchUp, overlap 'skip'. */
  skipped: number;
  /** The next slot (ms) after what is handled now, or undefined when the schedule has no more. */
  next: number | undefined;
  /** Another process moved the cursor first, or holds it: look again shortly. */
  busy: boolean;
  /** The cursor is pending on another maker that is not known gone: it finishes in microseconds if alive, else after staleAfter. */
  waiting: boolean;
  /** Pending cursors of dead makers this call completed. */
  completed: number;
  warnings: DirQueueError[];
}

/** The cursor of `name` in `listing` (the highest, if a crash or a copy left more than one), making the first one if none. */
export function cursorOf(layout: Layout, name: string, listing: ScheduleListing): Cursor | undefined {
  const cursors = listing.cursors.get(name);
  if (cursors !== undefined && cursors.length > 0) return cursors[0];
  return createCursor(layout, name);
}

/**
 * Handle schedule `name` up to `now` (ms, the filesystem's clock): complete a
 * dead maker's pending cursor, then make or skip every due slot.
 */
export async function runSchedule(
  ctx: ScheduleContext,
  name: string,
  slots: Slots,
  start: Cursor | undefined,
  now: number,
): Promise<ScheduleRun> {
  const out: ScheduleRun = {
    made: [],
    skipped: 0,
    next: undefined,
    busy: false,
    waiting: false,
    completed: 0,
    warnings: [],
  };
  // Every early return below is a race lost to another process (busy: look again shortly, from a fresh listing).
  const lost = (): ScheduleRun => ({ ...out, busy: true });
  let cursor = start;
  if (cursor === undefined) return lost(); // made by someone else meanwhile: the next listing finds it
  if (cursor.owner !== undefined) {
    if (cursor.owner !== ctx.owner && !makerGone(ctx, cursor, now)) {
      out.busy = true;
      out.waiting = true;
      return out;
    }
    const done = complete(ctx, cursor);
    if (done === undefined) return lost(); // another completer won
    out.completed++;
    cursor = done;
  }
  let floor = cursorFloorMs(ctx.layout, cursor);
  if (floor === undefined) return lost();
  const spec = slots.spec;
  const catchUp = spec.catchUp ?? 'last';
  const due = slots.due(floor, now, catchUp === 'all' ? CATCH_UP_MAX : 1);
  if (due.slots.length > 0) {
    const latest = due.slots.at(-1)!;
    let targets: number[];
    if (spec.paused === true) targets = [];
    else if (catchUp === 'all') targets = due.slots;
    else if (catchUp === 'last') targets = [latest];
    else targets = now - latest <= ON_TIME_MS ? [latest] : [];
    if (catchUp === 'all' && due.more) {
      out.warnings.push(
        new DirQueueError(
          'EBADSCHEDULE',
          `schedule ${name}: more than ${CATCH_UP_MAX} runs were missed while no process had the queue open; catchUp 'all' makes the latest ${CATCH_UP_MAX} and skips the older ones`,
        ),
      );
    }
    for (const slot of targets) {
      if (spec.overlap !== 'allow' && previousRunLive(ctx.layout, name)) continue; // skipped: the cursor jumps past it below
      const made = await makeSlot(ctx, name, slots, cursor, slot);
      if (made === undefined) return lost(); // another process took the cursor: it handles the rest
      cursor = made.cursor;
      out.made.push(made.id);
      floor = slot;
    }
    out.skipped = due.slots.length - out.made.length;
    if (latest > floor) {
      if (moveCursor(ctx.layout, cursor, latest * 1000) === undefined) return lost();
      floor = latest;
    }
  }
  out.next = slots.next(floor);
  return out;
}

/** Whether the latest run of `name` is still waiting or running (overlap 'skip'). */
function previousRunLive(layout: Layout, name: string): boolean {
  const id = readLastRun(layout, name);
  return id !== undefined && isLive(layout, id);
}

/** Steps 1 to 5 of the header for one slot. Undefined when another process took the cursor first. */
async function makeSlot(
  ctx: ScheduleContext,
  name: string,
  slots: Slots,
  cursor: Cursor,
  slotMs: number,
): Promise<{ cursor: Cursor; id: string } | undefined> {
  const { layout } = ctx;
  const spec = slots.spec;
  const slotUs = slotMs * 1000;
  const tag = spec.group === undefined ? undefined : groupTag(spec.group);
  const id = scheduledJobId(name, spec.priority ?? PRIORITY_DEFAULT, encodeType(spec.type), slotUs, tag);
  const envelope: Envelope = { type: spec.type };
  if (spec.data !== undefined) envelope.data = spec.data;
  envelope.created = new Date().toISOString();
  if (spec.attempts !== undefined) envelope.attempts = spec.attempts;
  if (spec.backoff !== undefined) envelope.backoff = spec.backoff;
  if (spec.timeout !== undefined) envelope.timeout = spec.timeout;
  if (spec.group !== undefined) envelope.group = spec.group;
  envelope.schedule = { name, at: new Date(slotMs).toISOString() };
  const tmp = layout.file('tmp', slotTmpName(ctx.owner, id));
  ctx.beforeTake?.();
  removeQuietly(tmp); // ours, left by a try that failed half-way
  await writeNew(tmp, encodeEnvelope(envelope), ctx.durable, layout.fileMode);
  if (ctx.closed?.() === true) {
    removeQuietly(tmp);
    return undefined;
  }
  // from here to the end: no await (see the header)
  let pending: Cursor | undefined;
  try {
    pending = moveCursor(layout, cursor, slotUs, ctx.owner);
  } catch (error) {
    if (!lexists(layout.file('schedules', cursorName(name, slotUs, ctx.owner)))) removeQuietly(tmp); // not taken
    throw error;
  }
  if (pending === undefined) {
    removeQuietly(tmp);
    return undefined;
  }
  let done: Cursor | undefined;
  try {
    done = finish(ctx, pending, id);
  } catch (error) {
    // once more at once: a transient fault (EIO once) then leaves nothing half-made; if it fails again, the
    // cursor stays pending on us, and our next run of this schedule (or a completer, once we are gone) finishes it
    try {
      done = finish(ctx, pending, id);
    } catch {
      throw error;
    }
  }
  return done === undefined ? undefined : { cursor: done, id };
}

/**
 * Steps 3 to 5 for the pending cursor `pending` (ours): place the job tmp/
 * holds for its slot, if any, and release the cursor. `id`: the job's id when
 * known (the maker); a completer finds it from the dead maker's tmp/ name.
 */
function finish(ctx: ScheduleContext, pending: Cursor, id: string | undefined, maker = ctx.owner): Cursor | undefined {
  const { layout } = ctx;
  let tmpName: string | undefined;
  if (id !== undefined) tmpName = slotTmpName(maker, id);
  else {
    const unique = scheduleUnique(pending.name);
    tmpName = listDir(layout.paths.tmp).find((file) => {
      const slot = parseSlotTmpName(file);
      if (slot?.owner !== maker) return false;
      const parsed = parseId(slot.id);
      return parsed !== undefined && untaggedUnique(parsed.unique) === unique && parsed.enqueuedUs === pending.slotUs;
    });
    id = tmpName === undefined ? undefined : parseSlotTmpName(tmpName)!.id;
  }
  if (tmpName !== undefined && id !== undefined) {
    const tmp = layout.file('tmp', tmpName);
    writeLastRun(layout, pending.name, id);
    // false: the maker (stopped, not dead) or another completer moved it first: one job all the same
    move(tmp, layout.file('queue', id));
  }
  return moveCursor(layout, pending, pending.slotUs);
}

/** Take over a dead maker's pending cursor and finish its slot. Undefined when another completer won. */
function complete(ctx: ScheduleContext, cursor: Cursor): Cursor | undefined {
  const maker = cursor.owner!;
  if (maker === ctx.owner) return finish(ctx, cursor, undefined, maker);
  ctx.beforeTake?.();
  const ours = moveCursor(ctx.layout, cursor, cursor.slotUs, ctx.owner);
  if (ours === undefined) return undefined;
  return finish(ctx, ours, undefined, maker);
}

/**
 * fsck's check of a pending cursor: whether its maker is gone (so the cursor
 * is left by a crash), and with `repair`, complete it as a sweep would.
 * Returns 'busy' while its maker may still be at work.
 */
export function completeIfGone(
  ctx: ScheduleContext,
  cursor: Cursor,
  now: number,
  repair: boolean,
): 'busy' | 'left' | 'completed' | 'lost' {
  if (!makerGone(ctx, cursor, now)) return 'busy';
  if (!repair) return 'left';
  return complete(ctx, cursor) === undefined ? 'lost' : 'completed';
}

/**
 * Whether the maker named by a pending cursor is gone: dead on this host, or
 * its heartbeat silent for staleAfter, or without a heartbeat and the cursor
 * older than PENDING_GRACE_MS (a maker without one, a sweep called without a
 * Queue, is given that long for its microseconds of work).
 */
function makerGone(ctx: ScheduleContext, cursor: Cursor, now: number): boolean {
  const heartbeat = readHeartbeat(ctx.layout.file('workers', cursor.owner!));
  if (heartbeat === undefined) {
    const moved = cursorMovedMs(ctx.layout, cursor);
    return moved !== undefined && now - moved >= PENDING_GRACE_MS;
  }
  if (heartbeat.identity !== undefined && isDeadHere(heartbeat.identity)) return true;
  return now - heartbeat.mtimeMs > ctx.staleAfter;
}
export interface SchedulesReport {
  /** Jobs made, by schedule. */
  made: number;
  completed: number;
  /** Schedule files that cannot be read or are wrong, and what is wrong with each. */
  invalid: { name: string; error: DirQueueError }[];
  warnings: DirQueueError[];
}

/**
 * A sweep's pass over every schedule (the floor under the timers): make what
 * is due, complete dead makers' slots, give hand-made schedule files their
 * first cursor, and remove the cursors and last-run links of schedules whose
 * file is gone (an unschedule cut short). A broken schedule file is reported
 * and skipped; the others go on.
 */
export async function sweepSchedules(ctx: ScheduleContext, now: number): Promise<SchedulesReport> {
  const report: SchedulesReport = { made: 0, completed: 0, invalid: [], warnings: [] };
  const listing = listSchedules(ctx.layout);
  for (const name of listing.specs) {
    let slots: Slots;
    try {
      const read = readSchedule(ctx.layout, name);
      if (read === undefined) continue; // removed meanwhile
      slots = new Slots(read.spec);
    } catch (error) {
      if (!(error instanceof DirQueueError)) throw error;
      report.invalid.push({ name, error });
      continue;
    }
    try {
      const run = await runSchedule(ctx, name, slots, cursorOf(ctx.layout, name, listing), now);
      report.made += run.made.length;
      report.completed += run.completed;
      report.warnings.push(...run.warnings);
    } catch (error) {
      report.warnings.push(error instanceof DirQueueError ? error : new DirQueueError('EFS', String(error)));
    }
  }
  tidySchedules(ctx.layout, listing);
  return report;
}

/**
 * What a crash or a hand can leave in schedules/ besides schedules: the
 * cursors and last-run link of a schedule whose file is gone (an unschedule
 * cut short) are deleted, and so is a second cursor of one schedule (all but
 * the highest, unless pending). A sweep's pass, after the schedules ran.
 */
export function tidySchedules(layout: Layout, listing: ScheduleListing): void {
  const specs = new Set(listing.specs);
  for (const name of listing.specs) dropLowerCursors(layout, listing.cursors.get(name));
  for (const name of new Set([...listing.cursors.keys(), ...listing.lasts])) {
    if (specs.has(name) || lexists(layout.file('schedules', scheduleFileName(name)))) continue;
    removeScheduleState(layout, name, listing);
  }
}

/** A second cursor of one schedule (a copy, or a first cursor made twice in a race): all but the highest go, unless pending. */
function dropLowerCursors(layout: Layout, cursors: Cursor[] | undefined): void {
  for (const cursor of cursors?.slice(1) ?? []) {
    if (cursor.owner === undefined) removeQuietly(layout.file('schedules', cursor.file));
  }
}

/** The makers (HOST.PID.NONCE) named by pending cursors: their heartbeats must stay until their slots are completed. */
export function pendingMakers(layout: Layout): Set<string> {
  const out = new Set<string>();
  for (const cursors of listSchedules(layout).cursors.values())
    for (const cursor of cursors) if (cursor.owner !== undefined) out.add(cursor.owner);
  return out;
}
