/**
 * What the queue's readers of directories share (discovery.ts for queue/,
 * pause-watch.ts for paused/, limit-gate.ts for limits/): a poll every
 * pollInterval, spread by +-20% so that many hosts polling one server drift
 * apart instead of hitting it in step, and an inotify watch where inotify
 * sees every change. The poll is the floor, and the only signal on NFS.
 */
import fs from 'node:fs';
import { errnoOf } from '../store/errors.js';
import { filesystemKind } from '../store/fs-kind.js';

/** Polls are spread by +-this fraction of pollInterval. */
const POLL_JITTER = 0.2;

/** Runs `tick` every `interval` ms (jittered) from start() until stop(); its timer never keeps the process alive. */
export class Poll {
  readonly #interval: number;
  readonly #tick: () => void;
  #timer: NodeJS.Timeout | undefined;
  #running = false;

  constructor(interval: number, tick: () => void) {
    this.#interval = interval;
    this.#tick = tick;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#schedule();
  }

  stop(): void {
    this.#running = false;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const delay = this.#interval * (1 - POLL_JITTER + 2 * POLL_JITTER * Math.random());
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#running) return;
      this.#tick();
      if (this.#running) this.#schedule();
    }, delay).unref();
  }
}

/**
 * Watch `dir` with inotify, calling `onEvent` with the changed name, unless
 * `watch` is false, or 'auto' on a network or FUSE filesystem (where other
 * hosts' renames raise no event). Undefined when not watching, or when the
 * directory is not there yet or inotify refuses (the polls find it then); a
 * watch that fails later closes itself and `onError` is told.
 */
export function watchDir(
  dir: string,
  watch: boolean | 'auto',
  onEvent: (file: string | null) => void,
  onError: () => void = () => undefined,
): fs.FSWatcher | undefined {
  if (watch === false) return undefined;
  try {
    if (watch === 'auto' && filesystemKind(dir).shared) return undefined;
    const watcher = fs.watch(dir, { persistent: false }, (_event, file) => onEvent(file));
    watcher.on('error', () => {
      watcher.close();
      onError();
    });
    return watcher;
  } catch (error) {
    if (errnoOf(error) === undefined) throw error;
    return undefined;
  }
}

/** Run a step of a timer or watch callback: what it throws goes to `warn`, never an uncaught exception. */
export function inBackground(step: () => unknown, warn: (error: Error) => void): void {
  try {
    step();
  } catch (error) {
    warn(error instanceof Error ? error : new Error(String(error)));
  }
}
