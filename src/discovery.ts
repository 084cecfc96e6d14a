/**
 * Keeps a process's ReadyIndex in step with queue/ and promotes due jobs
 * from delayed/ (I7: watching is an optimisation, rescanning the floor).
 *
 * Why fs.watch and not chokidar: chokidar 5 sets one inotify watch per file
 * and rescans on events; DESIGN.md measured 200 ms p50 rename-to-event with
 * 10,000 files queued (10,001 watches) against 0.06 ms for fs.watch on the
 * directory. We need one watch per directory and the file name of each event.
 *
 * A claim that finds nothing must not answer "nothing" while a job sits in
 * queue/. While watching, every rename into queue/ that happened before the
 * claim has already queued its inotify event (the kernel queues it inside the
 * rename), so letting the event loop read pending events is enough: no scan.
 * Without events, change detection is cheap: stat queue/ and rescan only when
 * its mtime moved since the last scan, or is too close to that scan to rule
 * out a change in the same timestamp tick.
 */
import fs from 'node:fs';
import { errnoOf } from './errors.js';
import { listDir, move } from './files.js';
import type { Layout } from './layout.js';
import { isId, nowUs, parseDelayedName } from './names.js';
import type { ReadyIndex } from './ready-index.js';

/** A change within this long of a scan may share the directory's mtime tick. */
const MTIME_DOUBT_MS = 1000;

export interface DiscoveryOptions {
  watch: boolean;
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
  #promoteAt = Infinity;
  /** delayed/ names by due time, ascending. */
  #delayed: string[] = [];
  #delayedKnown = new Set<string>();
  #scannedMtimeMs = -1;
  #scannedAtMs = 0;
  #listeners = new Set<() => void>();
  /** Ids this process claimed from queue/ whose departure event has not arrived yet. */
  #departed = new Set<string>();
  #watching = false;
  #closed = false;

  constructor(layout: Layout, index: ReadyIndex, options: DiscoveryOptions) {
    this.#layout = layout;
    this.#index = index;
    this.#options = options;
  }

  /** True when inotify events are arriving (false on poll-only or when fs.watch failed). */
  get watching(): boolean {
    return this.#watching;
  }

  start(): void {
    if (this.#options.watch) this.#startWatching();
    this.rescan();
    this.#scanDelayed();
    const rescanEvery = this.#watching ? this.#options.rescanInterval : this.#options.pollInterval;
    this.#timers.push(
      setInterval(() => {
        if (this.#watching ? this.rescan() : this.refresh()) this.#notify();
      }, rescanEvery).unref(),
      setInterval(() => this.#scanDelayed(), this.#options.rescanInterval).unref(),
    );
  }

  close(): void {
    this.#closed = true;
    for (const w of this.#watchers) w.close();
    for (const t of this.#timers) clearInterval(t);
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
    this.#scannedAtMs = Date.now();
    this.#scannedMtimeMs = mtimeOf(this.#layout.paths.queue);
    const ids = listDir(this.#layout.paths.queue).filter(isId);
    this.#index.reset(ids);
    return ids.length > 0;
  }

  /**
   * Bring the index up to date with queue/ as of now: while watching, by
   * reading the inotify events already queued; otherwise by a rescan if queue/
   * may have changed since the last one.
   */
  async catchUp(): Promise<void> {
    if (this.#watching) await new Promise<void>((resolve) => setImmediate(() => setImmediate(resolve))); // one poll phase in between
    else this.refresh();
  }

  /** Rescan queue/ if it may have changed since the last scan. Returns true if it found ids. */
  refresh(): boolean {
    this.#promoteDue();
    const mtime = mtimeOf(this.#layout.paths.queue);
    const unchanged = mtime === this.#scannedMtimeMs && this.#scannedAtMs - mtime > MTIME_DOUBT_MS;
    return unchanged ? false : this.rescan();
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
          if (this.rescan()) this.#notify();
        } else if (isId(name) && !this.#departed.delete(name)) {
          // a rename event says a name came or went: look which, so claims never chase gone names
          if (!fs.existsSync(this.#layout.file('queue', name))) this.#index.delete(name);
          else if (this.#index.add(name)) this.#notify();
        }
      });
      const delayed = fs.watch(this.#layout.paths.delayed, { persistent: false }, (_event, name) => {
        if (name === null) this.#scanDelayed();
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
      this.#timers.push(setInterval(() => this.refresh() && this.#notify(), this.#options.pollInterval).unref());
    }
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

  #schedulePromotion(): void {
    if (this.#closed) return;
    const first = this.#delayed[0];
    const at = first === undefined ? Infinity : parseDelayedName(first)!.dueUs / 1000;
    if (at >= this.#promoteAt && this.#promoteTimer !== undefined) return;
    clearTimeout(this.#promoteTimer);
    this.#promoteTimer = undefined;
    this.#promoteAt = at;
    if (at === Infinity) return;
    this.#promoteTimer = setTimeout(() => {
      this.#promoteTimer = undefined;
      this.#promoteAt = Infinity;
      this.#promoteDue();
    }, Math.max(0, Math.min(at - Date.now(), 2 ** 31 - 1))).unref();
  }

  /** Move every due job from delayed/ to queue/. Each move is one rename; losers of a race skip. */
  #promoteDue(): void {
    const now = nowUs();
    let promoted = false;
    let due = 0;
    for (; due < this.#delayed.length; due++) {
      const name = this.#delayed[due]!;
      const parsed = parseDelayedName(name)!;
      if (parsed.dueUs > now) break;
      this.#delayedKnown.delete(name);
      if (move(this.#layout.file('delayed', name), this.#layout.file('queue', parsed.id))) {
        this.#index.add(parsed.id);
        promoted = true;
      }
    }
    this.#delayed.splice(0, due);
    this.#schedulePromotion();
    if (promoted) this.#notify();
  }
}

/** Promote every due job in delayed/ without an index (maintenance, I6). Returns how many moved. */
export function promoteDueJobs(layout: Layout, now = nowUs()): number {
  let moved = 0;
  for (const name of listDir(layout.paths.delayed)) {
    const parsed = parseDelayedName(name);
    if (parsed === undefined || parsed.dueUs > now) continue;
    if (move(layout.file('delayed', name), layout.file('queue', parsed.id))) moved++;
  }
  return moved;
}

function mtimeOf(dir: string): number {
  try {
    return fs.statSync(dir).mtimeMs;
  } catch {
    return -1;
  }
}
