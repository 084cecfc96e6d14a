/**
 * A progress bar on stderr for long bulk commands (enqueue --jsonl, purge),
 * drawn only when stderr is a terminal: a pipe or a log file gets nothing,
 * so scripts see the same output whatever the size of the job.
 */

export interface Progress {
  /** `done` of `total` so far. */
  update(done: number, total: number): void;
  /** Erase the bar (the command prints its own summary). */
  finish(): void;
}

const WIDTH = 30;
const REDRAW_MS = 100;

/** A bar labelled `label`; a no-op unless stderr is a TTY. */
export function progressBar(label: string, stream: NodeJS.WriteStream = process.stderr): Progress {
  if (!stream.isTTY) return { update() {}, finish() {} };
  let drawnAt = 0;
  let drawn = false;
  return {
    update(done, total) {
      const now = Date.now();
      if (done < total && now - drawnAt < REDRAW_MS) return;
      drawnAt = now;
      drawn = true;
      const share = total === 0 ? 1 : Math.min(1, done / total);
      const filled = Math.round(share * WIDTH);
      const bar = `${'#'.repeat(filled)}${'.'.repeat(WIDTH - filled)}`;
      stream.write(`\r\x1b[2K${label} [${bar}] ${Math.floor(share * 100)}% ${done}/${total}`);
    },
    finish() {
      if (drawn) stream.write('\r\x1b[2K');
    },
  };
}
