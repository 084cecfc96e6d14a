/**
 * Promote (I6): move delayed/ jobs whose time has come into queue/, one
 * rename each. A Queue promotes its own delayed jobs on a timer (discovery);
 * this pass, from the sweep, is for jobs no open Queue is timing, such as
 * those enqueued by another process that has since exited.
 */
import { listDir, move, setJobFileTimes } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { idEnqueuedUs, parseDelayedName } from '../store/names.js';

/** Promote every due job in delayed/ without an index (the sweep's pass). Returns how many moved. */
export function promoteDueJobs(layout: Layout, now = Date.now() * 1000): number {
  let moved = 0;
  for (const name of listDir(layout.paths.delayed)) {
    const parsed = parseDelayedName(name);
    if (parsed === undefined || parsed.dueUs > now) continue;
    if (promote(layout, name, parsed)) moved++;
  }
  return moved;
}

/**
 * The rename of one due job to queue/. A job whose id's time is later than
 * its due time (retried early, then it failed with a shorter backoff) is
 * ranked by its file's mtime (ready-index.ts), which is when it failed: set
 * to the due time first, so it does not pass the jobs enqueued during its
 * backoff. If that cannot be set (not our file, or not a plain job file:
 * setJobFileTimes never stamps through a link), the job still moves, a little ahead.
 */
export function promote(layout: Layout, name: string, parsed: { dueUs: number; id: string }): boolean {
  const from = layout.file('delayed', name);
  if (idEnqueuedUs(parsed.id) > parsed.dueUs) {
    try {
      setJobFileTimes(from, parsed.dueUs / 1e6);
    } catch {
      // gone (promoted elsewhere: move says so) or not ours to touch
    }
  }
  return move(from, layout.file('queue', parsed.id), false, true);
}
