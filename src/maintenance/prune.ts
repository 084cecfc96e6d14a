/**
 * Prune (I6): delete done/ jobs older than the queue's keepDone, so done/
 * does not grow without end. Failed jobs are never pruned: they wait for a
 * person (dirq retry, rm or purge).
 */
import { listDir } from '../store/files.js';
import type { Layout } from '../store/layout.js';
import { parseId } from '../store/names.js';
import { unlinkIfOlder } from './clean.js';

/** Delete done/ jobs that ended more than `keepDone` ms ago (by mtime: the result append). */
export function pruneDone(layout: Layout, keepDone: number, now: number): number {
  if (keepDone === Infinity) return 0;
  const cutoff = now - keepDone;
  let pruned = 0;
  for (const name of listDir(layout.paths.done)) {
    const parsed = parseId(name);
    // an id's time is when the job became ready, so it ended later: younger ids need no stat
    if (parsed === undefined || parsed.enqueuedUs / 1000 > cutoff) continue;
    if (unlinkIfOlder(layout.file('done', name), cutoff)) pruned++;
  }
  return pruned;
}
