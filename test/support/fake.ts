/** Files a crashed worker leaves behind, made by hand (no process has to die). */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bootId } from '../../dist/store/liveness.js';
import { hostToken } from '../../dist/store/names.js';

/**
 * Move the ready job `id` to active/ under the claim of a worker on this
 * host that is dead: its heartbeat names this test's pid with another start
 * time (a reused pid). Returns the owner token.
 */
export function claimByDeadWorker(dir: string, id: string): string {
  const owner = deadHeartbeat(dir);
  fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
  return owner;
}

/** A heartbeat in workers/ of a worker on this host that is gone (a reused pid). Returns its owner token. */
export function deadHeartbeat(dir: string, nonce = 'fake'): string {
  const owner = `${hostToken()}.${process.pid}.${nonce}`;
  const identity = {
    host: os.hostname(),
    bootId: bootId(),
    pid: process.pid,
    startTime: 'not-the-start-time',
    started: '',
  };
  fs.writeFileSync(path.join(dir, 'workers', owner), JSON.stringify(identity));
  return owner;
}

/** Set a file's mtime `ms` into the past. */
export function backdate(file: string, ms: number): void {
  const then = new Date(Date.now() - ms);
  fs.utimesSync(file, then, then);
}

/** A result event, as complete() appends it: a job file in done/ without one is torn (FORMAT.md, "Torn results"). */
export function resultLine(claim = 'elsewhere.1.done.0'): string {
  return `${JSON.stringify({ event: 'result', at: new Date().toISOString(), attempt: 1, claim })}\n`;
}
