/**
 * What waitFor waits on: a change in done/ or failed/. inotify on both
 * directories where it sees every change (not on network or FUSE
 * filesystems), and in any case a timeout, so polling alone also finds a job
 * finished by another host.
 */
import fs from 'node:fs';
import { filesystemKind } from '../store/fs-kind.js';

export class FinishWatch {
  #watchers: fs.FSWatcher[] = [];
  #listeners = new Set<() => void>();

  constructor(dirs: readonly string[], watch: boolean | 'auto') {
    for (const dir of dirs) {
      if (watch === false || (watch === 'auto' && filesystemKind(dir).shared)) continue;
      try {
        const watcher = fs.watch(dir, { persistent: false }, () => this.#wakeAll());
        watcher.on('error', () => watcher.close());
        this.#watchers.push(watcher);
      } catch {
        // polling alone still sees the job finish
      }
    }
  }

  /** Resolves at the next change in the watched directories, or after `ms`. */
  next(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.#listeners.delete(done);
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.#listeners.add(done);
    });
  }

  /** Stop watching; whoever waits resolves now. */
  close(): void {
    for (const watcher of this.#watchers) watcher.close();
    this.#watchers = [];
    this.#wakeAll();
  }

  #wakeAll(): void {
    for (const listener of [...this.#listeners]) listener();
  }
}
