/**
 * Keeps a process's ReadyIndex in step with queue/ and promotes due jobs
 * from delayed/ (I7: watching is an optimisation, rescanning the floor).
 *
 * Why fs.watch and not chokidar: chokidar 5 sets one inotify watch per file
 * and rescans on events; measured when we chose, it took 200 ms p50 from
 * rename to event with 10,000 files queued (10,001 watches), against 0.06 ms
 * for fs.watch on the directory. We need one watch per directory and the file name of each event.
 *
 * A claim that finds nothing must not answer "nothing" while a job sits in
 * queue/. While watching, every rename into queue/ that happened before the
 * claim has already queued its inotify event (the kernel queues it inside the
 * rename), so letting the event loop read pending events is enough: no scan.
 *
 * Without events (`watch: false`, or 'auto' on a network or FUSE filesystem,
 * where other hosts' renames raise none), a poll every pollInterval (jittered,
 * so many hosts do not hit a file server in step) is cheap: stat queue/ and
 * rescan only when its mtime moved since the last scan. Two things can hide a
 * change from that stat, so a poll rescans anyway when:
 * - the mtime is in doubt: a change in the same timestamp tick as a scan
 *   leaves the mtime as it was, so one more scan is made once a tick
 *   (MTIME_DOUBT_MS, the coarsest granularity of NFS servers) has passed
 *   since this mtime was first seen. The wait is measured on the local
 *   monotonic clock, never by comparing it with the filesystem's timestamps,
 *   so a skewed host clock neither skips that scan nor rescans forever;
 * - the floor is due: NFS clients cache a directory's attributes (acdirmin,
 *   acdirmax) and FUSE ones for attr_timeout, so the mtime can lag for
 *   seconds; a full rescan every FLOOR_POLLS polls bounds that lag.
 * A listing can be stale too (NFS readdir and lookup caches): a claim of a
 * name that is gone, or not there yet, fails with ENOENT and moves on (I3);
 * the next rescan brings the name back if it is really there.
 *
 * Due times are Date.now() readings (options.ts), so a job is due when
 * Date.now() reaches its time. Timers count on the monotonic clock, which a
 * step of the wall clock (suspend, NTP) does not move, so the promotion timer
 * looks at the wall clock at least every pollInterval: a forward step is seen
 * within one, and a timer that fires before the due time re-arms for the time
 * left (at least a millisecond), never in a loop.
 *
 * Nothing here runs in a timer or a watch callback without a catch: a failed
 * background step (a listing, a promotion) reaches `warn` (the Queue's
 * 'warning' event) and is tried again at the next poll or rescan.
 */
import fs from 'node:fs';
import { performance } from 'node:perf_hooks';
import { DirQueueError, errnoOf } from '../store/errors.js';
import { eachNameInSlices, listDir } from '../store/files.js';
import { filesystemKind } from '../store/fs-kind.js';
import type { Layout } from '../store/layout.js';
import { idTester, isId, parseDelayedName } from '../store/names.js';
import type { ReadyIndex } from './ready-index.js';
import { promote } from '../maintenance/promote.js';
import { inBackground, Poll } from './poll.js';

/** A change within this long of a scan may share the directory's mtime tick. */
const MTIME_DOUBT_MS = 1000;
/** Without events, a full rescan at least every this many polls (or rescanInterval, if sooner). */
const FLOOR_POLLS = 5;

export interface DiscoveryOptions {
  /** 'auto': watch unless queue/ is on a network or FUSE filesystem. */
  watch: boolean | 'auto';
  pollInterval: number;
  rescanInterval: number;
}

export class Discovery {
  #layout: Layout;
  #index: ReadyIndex;
  #options: DiscoveryOptions;
  #watchers: fs.FSWatcher[] = [];
  #timers: NodeJS.Timeout[] = [];
  #promoteTimer: NodeJS.Timeout | undefined;
  /** The due time (Date.now() ms) the promotion timer is armed for; -Infinity while it waits out a failed promotion. */
  #promoteAt = Infinity;
  /** delayed/ names by due time, ascending. */
  #delayed: string[] = [];
  #delayedKnown = new Set<string>();
  /** queue/'s mtime at the last scan, and when (local monotonic ms) that scan began. */
  #scannedMtimeMs = -1;
  #scannedAt = -Infinity;
  /** The last mtime a stat returned, and when (local monotonic ms) it was first seen. */
  #seenMtimeMs = -1;
  #seenAt = -Infinity;
  readonly #poll: Poll;
  #warn: (error: Error) => void;
  #listeners = new Set<() => void>();
  /** Ids this process claimed from queue/ whose departure event has not arrived yet. */
  #departed = new Set<string>();
  #watching = false;
  #closed = false;
  /** The quiet rescan running, if one is (one at a time). */
  #quietScan: Promise<void> | undefined;

  /** `warn` hears of background steps that failed, and, once, that 'auto' chose polling (code EPOLLING). */
  constructor(
    layout: Layout,
    index: ReadyIndex,
    options: DiscoveryOptions,
    warn: (error: Error) => void = () => undefined,
  ) {
    this.#layout = layout;
    this.#index = index;
    this.#options = options;
    this.#warn = warn;
    this.#poll = new Poll(options.pollInterval, () => this.#background(() => this.refresh() && this.#notify()));
  }

  /** Start finding jobs. The first scans throw to the caller (a claim); the timers, armed first, try again later. */
  start(): void {
    if (this.#shouldWatch()) this.#startWatching();
    if (this.#watching) {
      this.#timers.push(setInterval(() => this.#rescanQuietly(), this.#options.rescanInterval).unref());
    } else {
      this.#poll.start();
    }
    this.#timers.push(
      setInterval(() => this.#background(() => this.#scanDelayed()), this.#options.rescanInterval).unref(),
    );
    this.rescan();
    this.#scanDelayed();
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    for (const t of this.#timers) clearInterval(t);
    this.#poll.stop();
    clearTimeout(this.#promoteTimer);
    this.#watchers = [];
    this.#timers = [];
    this.#notify();
    this.#listeners.clear();
  }

  /** Called whenever the index may have gained ids. Returns a remover. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Read queue/ and replace the index with what is there. Returns true if it found ids. */
  rescan(): boolean {
    this.#departed.clear();
    this.#scannedMtimeMs = this.#statQueue(); // before the listing: a change after it shows as a newer mtime
    this.#scannedAt = performance.now();
    let ids: string[];
    try {
      ids = listDir(this.#layout.paths.queue).filter(idTester());
    } catch (error) {
      this.#scannedMtimeMs = Number.NaN; // this scan saw nothing: the next look must list again, whatever the mtime
      throw error;
    }
    this.#index.reset(ids);
    return ids.length > 0;
  }

  /**
   * rescan() for the floor under watching and for an overflow of events, in
   * the background: the listing runs in slices (eachNameInSlices), so that a
   * million names never hold the event loop, and the index is brought in step
   * rather than rebuilt. Names it lacks are added; names it holds that the
   * listing did not show are dropped, unless they came into queue/ meanwhile
   * (a name added during a listing may or may not be listed): the index
   * stamps each id with the round that last found it, listed or added. A
   * name that left during the listing can be added back: a claim of it then
   * fails with ENOENT and moves on (I3), as with any stale listing.
   *
   * Measured at 1,000,000 waiting on tmpfs (a queue rescanning every 500 ms,
   * 8 s, two runs): rescan() held the loop 3.6 s each time; this one at most
   * 10-15 ms (p99 7-9 ms), and ran five times, about 1.6 s each.
   */
  #rescanQuietly(): void {
    if (this.#quietScan !== undefined || this.#closed) return;
    this.#quietScan = this.#reconcile()
      .catch((error: unknown) => this.#warn(error as Error))
      .finally(() => (this.#quietScan = undefined));
  }

  async #reconcile(): Promise<void> {
    const round = this.#index.beginRound();
    const going = (): boolean => !this.#closed;
    const isJob = idTester();
    let found = false;
    await eachNameInSlices(
      this.#layout.paths.queue,
      (name) => {
        // held already (the usual case: one lookup), one this process has just claimed, or not a job
        if (this.#index.found(name) || this.#departed.has(name) || !isJob(name)) return;
        if (this.#index.add(name)) found = true;
      },
      going,
    );
    let looked = 0;
    for (const [id, foundIn] of this.#index.rounds()) {
      if (!going()) return;
      if (foundIn < round) this.#index.delete(id); // neither listed nor added since the round began: gone
      if (++looked % 4096 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    if (found) this.#notify();
  }

  /**
   * Bring the index up to date with queue/ as of now: while watching, by
   * reading the inotify events already queued; otherwise by a rescan if queue/
   * may have changed since the last one.
   */
  async catchUp(): Promise<void> {
    if (this.#watching)
      await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))); // one poll phase in between
    else this.refresh();
  }

  /** Rescan queue/ if it may have changed since the last scan (see the top of this file). Returns true if it found ids. */
  refresh(): boolean {
    this.#promoteDue();
    const mtime = this.#statQueue();
    const now = performance.now();
    const changed = mtime !== this.#scannedMtimeMs || mtime === -1;
    const settled = this.#scannedAt - this.#seenAt >= MTIME_DOUBT_MS; // the last scan began a tick after this mtime appeared
    const inDoubtStill = now - this.#seenAt < MTIME_DOUBT_MS; // too early for the settling scan
    const floorDue =
      now - this.#scannedAt >= Math.min(this.#options.rescanInterval, FLOOR_POLLS * this.#options.pollInterval);
    if (changed || floorDue || (!settled && !inDoubtStill)) return this.rescan();
    return false;
  }

  /** This process moved `id` out of queue/ (a claim): its event needs no look. */
  departed(id: string): void {
    if (this.#watching) this.#departed.add(id);
  }

  /** Learn of a job this process put into queue/ or delayed/ itself. */
  added(id: string, delayed?: string): void {
    if (delayed === undefined) {
      if (this.#index.add(id)) this.#notify();
    } else {
      this.#learnDelayed(delayed);
    }
  }

  #startWatching(): void {
    try {
      const queue = fs.watch(this.#layout.paths.queue, { persistent: false }, (_event, name) => {
        if (name === null) {
          this.#rescanQuietly(); // the events overflowed
        } else if (!this.#departed.delete(name) && isId(name)) {
          // a rename event says a name came or went: look which, so claims never chase gone names
          if (!fs.existsSync(this.#layout.file('queue', name))) {
            this.#index.delete(name);
          } else {
            if (this.#index.add(name)) this.#notify();
          }
        }
      });
      const delayed = fs.watch(this.#layout.paths.delayed, { persistent: false }, (_event, name) => {
        if (name === null) this.#background(() => this.#scanDelayed());
        else this.#learnDelayed(name);
      });
      for (const w of [queue, delayed]) w.on('error', () => this.#stopWatching());
      this.#watchers.push(queue, delayed);
      this.#watching = true;
    } catch (error) {
      // inotify limits (ENOSPC) or a filesystem without it: polling still finds everything
      if (errnoOf(error) === undefined) throw error;
      this.#stopWatching();
    }
  }

  #stopWatching(): void {
    for (const w of this.#watchers) w.close();
    this.#watchers = [];
    if (this.#watching && !this.#closed) {
      this.#watching = false;
      this.#poll.start();
    }
  }

  /** Decide 'auto': watch only where inotify sees every change (not on network or FUSE filesystems). */
  #shouldWatch(): boolean {
    if (this.#options.watch !== 'auto') return this.#options.watch;
    const kind = filesystemKind(this.#layout.paths.queue);
    if (!kind.shared) return true;
    this.#warn(
      new DirQueueError(
        'EPOLLING',
        `${this.#layout.paths.queue} is on a ${kind.name} filesystem (statfs type 0x${kind.type!.toString(16)}), where renames made by other hosts raise no inotify event: ` +
          `polling every ${this.#options.pollInterval} ms instead of watching (set watch: false to poll without this notice, watch: true to watch anyway; see NFS.md)`,
      ),
    );
    return false;
  }

  /** Run a step of a timer or watch callback: what it throws is a warning, never an uncaught exception. */
  #background(step: () => unknown): void {
    inBackground(step, this.#warn);
  }

  /** stat queue/ (-1 when it cannot be read), noting when a new mtime is first seen. */
  #statQueue(): number {
    const mtime = mtimeOf(this.#layout.paths.queue);
    if (mtime !== this.#seenMtimeMs) {
      this.#seenMtimeMs = mtime;
      this.#seenAt = performance.now();
    }
    return mtime;
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #scanDelayed(): void {
    this.#delayed = [];
    this.#delayedKnown.clear();
    for (const name of listDir(this.#layout.paths.delayed)) this.#learnDelayed(name, false);
    this.#delayed.sort();
    this.#schedulePromotion();
  }

  #learnDelayed(name: string, keepSorted = true): void {
    if (this.#delayedKnown.has(name) || parseDelayedName(name) === undefined) return;
    this.#delayedKnown.add(name);
    if (keepSorted) {
      let lo = 0;
      let hi = this.#delayed.length;
      while (lo < hi) {
        const mid = (lo + hi) >>> 1;
        if (this.#delayed[mid]! < name) lo = mid + 1;
        else hi = mid;
      }
      this.#delayed.splice(lo, 0, name);
      this.#schedulePromotion();
    } else {
      this.#delayed.push(name);
    }
  }

  /** Arm the promotion timer for the first due time, unless it is armed for no later (or waits out a failure). */
  #schedulePromotion(): void {
    if (this.#closed) return;
    const first = this.#delayed[0];
    const at = first === undefined ? Infinity : Math.ceil(parseDelayedName(first)!.dueUs / 1000);
    if (at >= this.#promoteAt && this.#promoteTimer !== undefined) return;
    clearTimeout(this.#promoteTimer);
    this.#promoteTimer = undefined;
    this.#promoteAt = at;
    if (at === Infinity) return;
    this.#armPromotion(Math.max(0, Math.min(at - Date.now(), this.#options.pollInterval, 2 ** 31 - 1)));
  }

  #armPromotion(ms: number): void {
    this.#promoteTimer = setTimeout(() => {
      this.#promoteTimer = undefined;
      this.#promoteAt = Infinity;
      this.#promoteDue();
    }, ms).unref();
  }

  /**
   * Move every due job from delayed/ to queue/. Each move is one rename;
   * losers of a race skip. A move that fails (EACCES, EIO...) is a warning,
   * and no promotion is tried again for a pollInterval.
   */
  #promoteDue(): void {
    if (this.#promoteAt === -Infinity) return; // waiting out a failure
    const nowUs = Date.now() * 1000;
    let promoted = false;
    let due = 0;
    try {
      for (; due < this.#delayed.length; due++) {
        const name = this.#delayed[due]!;
        const parsed = parseDelayedName(name)!;
        if (parsed.dueUs > nowUs) break;
        if (promote(this.#layout, name, parsed)) {
          this.#index.add(parsed.id);
          promoted = true;
        }
        this.#delayedKnown.delete(name);
      }
    } catch (error) {
      this.#warn(error as Error);
      clearTimeout(this.#promoteTimer);
      this.#promoteAt = -Infinity;
      this.#armPromotion(this.#options.pollInterval);
    } finally {
      this.#delayed.splice(0, due); // the failed one and those after it stay
    }
    this.#schedulePromotion();
    if (promoted) this.#notify();
  }
}

function mtimeOf(dir: string): number {
  try {
    return fs.statSync(dir).mtimeMs;
  } catch {
    return -1;
  }
}
