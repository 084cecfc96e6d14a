/**
 * Running a process as another Unix user (setpriv), as a web app and a worker
 * of a shared queue are. Needs root, as CI runs.
 */
import { spawn } from 'node:child_process';
import { closed, type Run } from './cli.js';
import { exited, track } from './temp.js';

/** nogroup: the group of the shared queues in tests. */
export const GROUP = 65534;
/** A web app's user, primary group 12346. */
export const WEB = 12346;
/** A worker's user, primary group 12345. */
export const WORKER = 12345;

/** Run node `args` as `uid` (primary group `uid`, supplementary group GROUP). */
export async function runAs(uid: number, args: string[]): Promise<Run> {
  const child = track(spawn('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--groups', String(GROUP), process.execPath, ...args], { stdio: ['ignore', 'pipe', 'pipe'] }));
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await exited(child);
  await Promise.all([closed(child.stdout!), closed(child.stderr!)]);
  return { code, stdout, stderr };
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0) throw new Error('this test runs processes as other users and needs root (CI runs as root)');
}
