/**
 * What is paused, as a claim needs to know it: cheaply, with no directory
 * scan and no file read per claim. paused/ is read once when the first claim
 * starts, then again on every inotify event in it (at once, on one host) and
 * at every poll (pollInterval, jittered: the floor, and the only signal on
 * NFS), as discovery.ts keeps queue/. A claim asks `blocked()`: a cached
 * answer, recomputed only when paused/ changed or a pause's `until` passed.
 *
 * `until` is a time in the filesystem's clock (store/pauses.ts); this
 * process's view of that clock is its own clock plus the offset its
 * heartbeat last measured (each beat stamps a file and reads the mtime back),
 * so a host whose clock is off ends a pause when the others do.
 */
import type fs from 'node:fs';
import { DirQueueError } from '../store/errors.js';
import type { Layout } from '../store/layout.js';
import { encodeType } from '../store/names.js';
import { pausedDir, readPauses, type PauseEntry } from '../store/pauses.js';
import { inBackground, Poll, watchDir } from './poll.js';

export interface PauseWatchOptions {
  watch: boolean | 'auto';
  pollInterval: number;
}

/** What a claim may not take: nothing, everything, or these encoded types. */
export type Blocked = undefined | 'all' | ReadonlySet<string>;

export class PauseWatch {
  #layout: Layout;
  #options: PauseWatchOptions;
  #warn: (error: Error) => void;
  /** ms to add to Date.now() for the filesystem's clock. */
  #offset: () => number;
  #pauses: PauseEntry[] = [];
  /** A fingerprint of #pauses: a refresh that reads the same notifies nobody. */
  #seen = '';
  #blocked: Blocked;
  /** Date.now() at which #blocked must be computed again (the next `until` to pass). */
  #validUntil = Infinity;
  #watcher: fs.FSWatcher | undefined;
  readonly #poll: Poll;
  #expiryTimer: NodeJS.Timeout | undefined;
  #listeners = new Set<() => void>();
  #warned = new Set<string>();
  #closed = false;

  constructor(layout: Layout, options: PauseWatchOptions, offset: () => number, warn: (error: Error) => void) {
    this.#layout = layout;
    this.#options = options;
    this.#offset = offset;
    this.#warn = warn;
    this.#poll = new Poll(options.pollInterval, () => this.#background());
  }

  /** Read paused/ now (errors throw to the starting claim), then keep watching and polling. */
  start(): void {
    this.#poll.start();
    this.refresh();
  }

  close(): void {
    this.#closed = true;
    this.#watcher?.close();
    this.#watcher = undefined;
    this.#poll.stop();
    clearTimeout(this.#expiryTimer);
    this.#notify();
    this.#listeners.clear();
  }

  /** Called whenever a pause ended or changed (a waiting claim looks again). Returns a remover. */
  onChange(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** What a claim may not take now: one comparison unless a pause's end has just passed. */
  blocked(): Blocked {
    if (Date.now() >= this.#validUntil) this.#compute();
    return this.#blocked;
  }

  /** Read paused/ again; notifies the listeners when what is paused changed. */
  refresh(): void {
    const { pauses, problems } = readPauses(this.#layout);
    for (const problem of problems) {
      const key = `${problem.name}\0${problem.reason}`;
      if (this.#warned.has(key)) continue;
      this.#warned.add(key);
      this.#warn(
        new DirQueueError(
          'EBADFILE',
          `${pausedDir(this.#layout)}/${problem.name} is not obeyed as a pause: ${problem.reason}; remove it (dirq fsck ${this.#layout.root} --repair sets it aside)`,
        ),
      );
    }
    if (this.#watcher === undefined && !this.#closed) this.#startWatching();
    const seen = pauses.map((p) => `${p.name}\0${p.ino}\0${p.mtimeMs}\0${p.until ?? ''}`).join('\n');
    if (seen === this.#seen) return;
    this.#seen = seen;
    this.#pauses = pauses;
    this.#compute();
    this.#notify();
  }

  #compute(): void {
    const now = Date.now();
    const fsNow = now + this.#offset();
    let all = false;
    const types = new Set<string>();
    let next = Infinity;
    for (const pause of this.#pauses) {
      if (pause.until !== undefined && pause.until <= fsNow) continue;
      if (pause.until !== undefined) next = Math.min(next, pause.until - fsNow + now);
      if (pause.type === undefined) all = true;
      else types.add(encodeType(pause.type));
    }
    this.#blocked = all ? 'all' : types.size > 0 ? types : undefined;
    this.#validUntil = next;
    clearTimeout(this.#expiryTimer);
    if (Number.isFinite(next) && !this.#closed) {
      // wake waiting claims when the next pause ends (a few ms late rather than early: blocked() recomputes then)
      this.#expiryTimer = setTimeout(
        () => {
          this.#compute();
          this.#notify();
        },
        Math.max(1, next - now + 1),
      ).unref();
    }
  }

  #startWatching(): void {
    // no paused/ yet (the first pause makes it), a shared filesystem, inotify limits: the polls find it
    this.#watcher = watchDir(
      pausedDir(this.#layout),
      this.#options.watch,
      () => this.#background(),
      () => (this.#watcher = undefined), // polling goes on, and the next refresh watches again
    );
  }

  #background(): void {
    if (!this.#closed) inBackground(() => this.refresh(), this.#warn);
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
