/**
 * The schedules of one open Queue: keep the schedule files in memory, arm one
 * timer for the earliest next slot of them all, and at that slot make its job
 * (maintenance/schedules.ts runSchedule), so a slot's job is ready within
 * milliseconds of its time rather than at the next 5 s sweep. Every process
 * with the queue open does this; the cursor's rename lets one of them win each
 * slot.
 *
 * Time: slots are judged in the filesystem's clock (liveness.ts
 * filesystemNow). The timer runs on this host's clock, corrected by the offset
 * between the two measured at each tick; at the tick the filesystem's clock is
 * read again, and a slot it says has not come yet is waited for.
 *
 * Edits: schedules/ is watched (fs.watch, one watch for the directory) where
 * inotify works, and polled every pollInterval anyway (each file's mtime), the
 * only signal on NFS, where other hosts' writes raise no event (I7). A change
 * takes effect at the next slot after the cursor, so editing a schedule never
 * runs a slot twice.
 */
import fs from 'node:fs';
import { DirQueueError } from '../store/errors.js';
import { lstatOrGone } from '../store/entry.js';
import { filesystemKind } from '../store/fs-kind.js';
import type { Layout } from '../store/layout.js';
import { filesystemNow } from '../store/liveness.js';
import { CLOCK_FILE, scheduleFileName } from '../store/names.js';
import { cursorFloorMs, listSchedules, readSchedule, type ScheduleListing } from '../store/schedule-files.js';
import { Slots } from '../store/schedule-spec.js';
import { cursorOf, runSchedule, tidySchedules, type ScheduleContext } from '../maintenance/schedules.js';

/** How soon to look again at a schedule whose cursor another live process holds. */
const BUSY_RETRY_MS = 20;
/** The longest a timer is armed for: the clock offset and the files are looked at again at least this often. */
const MAX_ARM_MS = 60_000;

export interface SchedulerHost {
  layout: Layout;
  owner: string;
  durable: boolean;
  staleAfter: number;
  watch: boolean | 'auto';
  pollInterval: number;
  /** Before this process takes its first cursor: the Queue starts its heartbeat. */
  beforeTake(): void;
  /** Jobs this process made, now in queue/. */
  made(ids: readonly string[]): void;
  warn(error: Error): void;
}

interface Known {
  mtimeMs: number;
  slots: Slots | undefined;
  error: DirQueueError | undefined;
  /** The next slot to look at (ms, filesystem clock), undefined when none is left. */
  next: number | undefined;
}

export class Scheduler {
  #host: SchedulerHost;
  #known = new Map<string, Known>();
  /** The filesystem's clock minus this host's (ms), as last measured. */
  #offset = 0;
  #timer: NodeJS.Timeout | undefined;
  #armedFor = Infinity;
  #pollTimer: NodeJS.Timeout | undefined;
  #watcher: fs.FSWatcher | undefined;
  #refreshQueued = false;
  /** Ticks and refreshes run one at a time. */
  #chain: Promise<void> = Promise.resolve();
  #closed = false;
  /** Timers and watching only once started (a Queue with maintenance); before, only sweep() and refresh() run. */
  #started = false;
  #ctx: ScheduleContext;
  #reported = new Map<string, string>();
  /** Schedules whose cursor is pending on another maker, and how often in a row this process found it so. */
  #waits = new Map<string, number>();

  constructor(host: SchedulerHost) {
    this.#host = host;
    this.#ctx = {
      layout: host.layout,
      owner: host.owner,
      durable: host.durable,
      staleAfter: host.staleAfter,
      beforeTake: () => host.beforeTake(),
      closed: () => this.#closed,
    };
  }

  /** Read the schedules, arm the timer, and watch or poll for edits. */
  start(): void {
    this.#started = true;
    this.#watch();
    this.#schedulePoll();
    void this.#run(() => this.#refresh());
  }

  /**
   * A sweep's pass (the floor under the timer): re-read every schedule file,
   * and run each schedule, which also completes the slots of makers that died.
   */
  sweep(): Promise<void> {
    return this.#run(async () => {
      await this.#refresh();
      await this.#tick(true);
      tidySchedules(this.#host.layout, listSchedules(this.#host.layout));
    });
  }

  /** Re-read the schedule files now (after q.schedule or q.unschedule in this process). */
  refresh(): Promise<void> {
    return this.#run(() => this.#refresh());
  }

  /** Re-read the files, then make what is due of schedule `name` now (after q.schedule): its edit takes effect at once here. */
  runNow(name: string): Promise<void> {
    return this.#run(async () => {
      await this.#refresh();
      await this.#tick(false, name);
    });
  }

  /** The next slot of each valid schedule this process knows, ms. */
  nextOf(name: string): number | undefined {
    return this.#known.get(name)?.next;
  }

  /** Stop the timers and the watch; resolves once the step running now (if any) has ended. */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#pollTimer !== undefined) clearTimeout(this.#pollTimer);
    this.#watcher?.close();
    await this.#chain;
  }

  #run(step: () => Promise<void>): Promise<void> {
    const next = this.#chain.then(async () => {
      if (this.#closed) return;
      try {
        await step();
      } catch (error) {
        this.#host.warn(error as Error);
      }
      this.#arm();
    });
    this.#chain = next;
    return next;
  }

  /** Re-read the files whose mtime changed, forget removed ones, and recompute next slots. */
  async #refresh(): Promise<void> {
    const { layout } = this.#host;
    const listing = listSchedules(layout);
    const present = new Set(listing.specs);
    for (const name of [...this.#known.keys()]) if (!present.has(name)) this.#known.delete(name);
    for (const name of listing.specs) {
      const stat = lstatOrGone(layout.file('schedules', scheduleFileName(name)));
      if (stat === undefined) continue; // removed meanwhile
      const { mtimeMs } = stat;
      const known = this.#known.get(name);
      if (known !== undefined && known.mtimeMs === mtimeMs) continue;
      const entry: Known = { mtimeMs, slots: undefined, error: undefined, next: undefined };
      try {
        const read = readSchedule(layout, name);
        if (read === undefined) continue;
        entry.slots = new Slots(read.spec);
        this.#reported.delete(name);
      } catch (error) {
        if (!(error instanceof DirQueueError)) throw error;
        entry.error = error;
        if (this.#reported.get(name) !== error.message) {
          this.#reported.set(name, error.message);
          this.#host.warn(error); // once per broken version of the file; the other schedules go on
        }
      }
      entry.next = this.#nextFrom(entry, name, listing);
      this.#known.set(name, entry);
    }
  }

  #nextFrom(entry: Known, name: string, listing: ScheduleListing): number | undefined {
    if (entry.slots === undefined) return undefined;
    const cursor = listing.cursors.get(name)?.[0];
    if (cursor === undefined) return -Infinity; // no cursor yet: the next tick makes one
    if (cursor.owner !== undefined) return -Infinity; // pending: the next tick looks at its maker
    const floor = cursorFloorMs(this.#host.layout, cursor);
    return floor === undefined ? -Infinity : entry.slots.next(floor);
  }

  /** Run every schedule whose next slot has come (all of them for a sweep). */
  async #tick(all: boolean, only?: string): Promise<void> {
    const { layout } = this.#host;
    // a bad workers/.clock (read from a scratch file instead) is the sweeps' to report, not every tick's
    const { now } = filesystemNow(layout.file('workers', CLOCK_FILE), layout.paths.tmp);
    this.#offset = now - Date.now();
    const due = [...this.#known].filter(
      ([name, k]) =>
        (only === undefined || name === only) &&
        k.slots !== undefined &&
        (all || only !== undefined || (k.next !== undefined && k.next <= now)), // `only`: whatever its retry time
    );
    if (due.length === 0) return;
    const listing = listSchedules(layout);
    for (const [name, known] of due) {
      if (this.#closed) return;
      try {
        const run = await runSchedule(this.#ctx, name, known.slots!, cursorOf(layout, name, listing), now);
        if (run.made.length > 0) this.#host.made(run.made);
        for (const warning of run.warnings) this.#host.warn(warning);
        // a maker at work for more than a moment is stopped or dead: look again at the poll, not 50 times a second
        known.next = run.waiting ? now + this.#waitRetry(name) : run.busy ? now + BUSY_RETRY_MS : run.next;
        if (!run.waiting) this.#waits.delete(name);
      } catch (error) {
        known.next = now + this.#host.pollInterval; // try again later; the warning says why
        this.#host.warn(error as Error);
      }
    }
  }

  /** BUSY_RETRY_MS the first time a schedule's cursor is found pending on another maker, pollInterval after. */
  #waitRetry(name: string): number {
    const times = (this.#waits.get(name) ?? 0) + 1;
    this.#waits.set(name, times);
    return times === 1 ? BUSY_RETRY_MS : Math.max(BUSY_RETRY_MS, this.#host.pollInterval);
  }

  /** One timer, for the earliest next slot of all schedules, on this host's clock corrected by the offset. */
  #arm(): void {
    if (this.#closed || !this.#started) return;
    let earliest = Infinity;
    for (const known of this.#known.values())
      if (known.next !== undefined && known.next < earliest) earliest = known.next;
    if (earliest === Infinity) {
      if (this.#timer !== undefined) clearTimeout(this.#timer);
      this.#timer = undefined;
      this.#armedFor = Infinity;
      return;
    }
    if (this.#timer !== undefined && this.#armedFor === earliest) return;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#armedFor = earliest;
    const delay = Math.min(MAX_ARM_MS, Math.max(0, earliest - (Date.now() + this.#offset)));
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#armedFor = Infinity;
      void this.#run(() => this.#tick(false));
    }, delay).unref();
  }

  #watch(): void {
    const { layout, watch } = this.#host;
    const should = watch === 'auto' ? !filesystemKind(layout.paths.schedules).shared : watch;
    if (!should) return;
    try {
      this.#watcher = fs.watch(layout.paths.schedules, { persistent: false }, (_event, name) => {
        if (name !== null && name.startsWith('.')) return; // cursors and last-run links: the schedule's own moves
        this.#queueRefresh();
      });
      this.#watcher.on('error', (error) => {
        this.#host.warn(error);
        this.#watcher?.close();
        this.#watcher = undefined;
      });
    } catch (error) {
      this.#host.warn(error as Error); // polling still sees the edits
    }
  }

  #queueRefresh(): void {
    if (this.#refreshQueued || this.#closed) return;
    this.#refreshQueued = true;
    setImmediate(() => {
      this.#refreshQueued = false;
      void this.#run(() => this.#refresh());
    });
  }

  #schedulePoll(): void {
    if (this.#closed) return;
    const delay = this.#host.pollInterval * (0.8 + 0.4 * Math.random());
    this.#pollTimer = setTimeout(() => {
      this.#pollTimer = undefined;
      void this.#run(() => this.#refresh()).finally(() => this.#schedulePoll());
    }, delay).unref();
  }
}
