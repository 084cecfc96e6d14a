/**
 * The schedules seen from the API and the CLI: create or replace one
 * (q.schedule), remove one (q.unschedule), and list them with their next slot,
 * latest run, latest success and lateness against their `sla` (q.schedules,
 * `dirq schedules`, `dirq stats --sla`, `dirq metrics`). Read-only apart from
 * the two writes; making the jobs is maintenance/schedules.ts.
 */
import fs from 'node:fs';
import { DirQueueError } from '../store/errors.js';
import { listDir } from '../store/files.js';
import type { Layout, State } from '../store/layout.js';
import { locate } from '../store/locate.js';
import { parseId, scheduleUnique, untaggedUnique } from '../store/names.js';
import {
  createCursor,
  cursorFloorMs,
  listSchedules,
  readLastRun,
  readSchedule,
  removeSchedule,
  writeSchedule,
} from '../store/schedule-files.js';
import {
  checkScheduleName,
  checkScheduleSpec,
  Slots,
  type ScheduleSpec,
  type StoredSchedule,
} from '../store/schedule-spec.js';

export type { ScheduleSpec, StoredSchedule };

/** One schedule as q.schedules() and `dirq schedules` show it. */
export interface ScheduleInfo {
  name: string;
  /** The spec as its file holds it; undefined when the file is invalid. */
  spec: StoredSchedule | undefined;
  /** Why the file cannot be used (it is skipped until fixed), when it cannot. */
  invalid?: string;
  type: string | undefined;
  cron?: string;
  tz?: string;
  every?: number;
  paused: boolean;
  /** The next slot after the ones already handled; undefined when there is none (past endAt) or the file is invalid. */
  next: Date | undefined;
  /** The latest run: its slot, job id and the state the job is in now (undefined once pruned). */
  last: { slot: Date; id: string; state: State | undefined } | undefined;
  /** When the latest run that completed ended (its file's mtime in done/), if one is still in done/. */
  lastSuccess: Date | undefined;
  sla?: number;
  /** With an sla: no run has completed for longer than it (counted from the schedule's creation before the first). */
  late: boolean;
  /** With an sla: how long past it, ms (0 when not late). */
  lateBy?: number;
}

/** Check and write schedule `name` (creating or replacing it), and give it a cursor if it has none. */
export async function putSchedule(
  layout: Layout,
  name: string,
  spec: ScheduleSpec,
  durable: boolean,
): Promise<StoredSchedule> {
  checkScheduleName(name);
  const stored = checkScheduleSpec(spec);
  let created: string | undefined;
  try {
    created = readSchedule(layout, name)?.spec.created;
  } catch (error) {
    // a broken file is replaced: that is how to fix it; a failing read (EIO) is not a broken file
    if (!(error instanceof DirQueueError) || (error.code !== 'EBADSCHEDULE' && error.code !== 'EBADFILE')) throw error;
  }
  stored.created = created ?? new Date().toISOString();
  await writeSchedule(layout, name, stored, durable);
  if ((listSchedules(layout).cursors.get(name) ?? []).length === 0) createCursor(layout, name);
  return stored;
}

/** Remove schedule `name`; false when there was none. */
export function deleteSchedule(layout: Layout, name: string): boolean {
  checkScheduleName(name);
  return removeSchedule(layout, name);
}

/** Every schedule of the queue (or only the one named `only`), by name, with what it did and will do; `now` in ms. */
export function scheduleInfos(layout: Layout, now = Date.now(), only?: string): ScheduleInfo[] {
  const listing = listSchedules(layout);
  if (only !== undefined) listing.specs = listing.specs.filter((name) => name === only);
  const byUnique = new Map(listing.specs.map((name) => [scheduleUnique(name), name]));
  const success = lastSuccesses(layout, byUnique);
  return listing.specs.map((name) => {
    const info: ScheduleInfo = {
      name,
      spec: undefined,
      type: undefined,
      paused: false,
      next: undefined,
      last: undefined,
      lastSuccess: success.get(name),
      late: false,
    };
    let spec: StoredSchedule;
    let created: number;
    try {
      const read = readSchedule(layout, name);
      if (read === undefined) {
        info.invalid = 'removed while being read';
        return info;
      }
      spec = read.spec;
      created = spec.created === undefined ? read.mtimeMs : Date.parse(spec.created);
    } catch (error) {
      info.invalid = (error as Error).message;
      return info;
    }
    info.spec = spec;
    info.type = spec.type;
    if (spec.cron !== undefined) {
      info.cron = spec.cron;
      info.tz = spec.tz ?? 'UTC';
    } else info.every = spec.every!;
    info.paused = spec.paused === true;
    const cursor = listing.cursors.get(name)?.[0];
    const floor = cursor === undefined ? now : (cursorFloorMs(layout, cursor) ?? now);
    const next = new Slots(spec).next(floor);
    info.next = next === undefined ? undefined : new Date(next);
    const lastId = readLastRun(layout, name);
    const parsed = lastId === undefined ? undefined : parseId(lastId);
    if (lastId !== undefined && parsed !== undefined) {
      info.last = { slot: new Date(parsed.enqueuedUs / 1000), id: lastId, state: locate(layout, lastId)?.state };
    }
    if (spec.sla !== undefined) {
      info.sla = spec.sla;
      const since = info.lastSuccess?.getTime() ?? created;
      info.lateBy = Math.max(0, now - since - spec.sla);
      info.late = info.lateBy > 0;
    }
    return info;
  });
}

/** The latest success of each schedule: the done/ job of its latest slot, ended at its file's mtime. */
function lastSuccesses(layout: Layout, byUnique: Map<string, string>): Map<string, Date> {
  const latest = new Map<string, { slotUs: number; id: string }>();
  if (byUnique.size === 0) return new Map();
  for (const id of listDir(layout.paths.done)) {
    const dash = id.indexOf('-s', 19); // the unique part of a scheduled job's id starts with "s"
    if (dash !== 19) continue;
    const parsed = parseId(id);
    const name = parsed === undefined ? undefined : byUnique.get(untaggedUnique(parsed.unique));
    if (parsed === undefined || name === undefined) continue;
    const was = latest.get(name);
    if (was === undefined || parsed.enqueuedUs > was.slotUs) latest.set(name, { slotUs: parsed.enqueuedUs, id });
  }
  const out = new Map<string, Date>();
  for (const [name, { id }] of latest) {
    try {
      out.set(name, new Date(fs.lstatSync(layout.file('done', id)).mtimeMs));
    } catch {
      // pruned meanwhile
    }
  }
  return out;
}
