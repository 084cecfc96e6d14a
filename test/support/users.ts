/**
 * Running processes as other Unix users, for group-shared queues (`--mode`):
 * a web app's user enqueues, a worker user runs the jobs, each with its own
 * primary group and the queue's group as a supplementary one. setpriv needs
 * root, as CI runs.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { closed, type Run } from './cli.js';
import { exited, tempDir, track } from './temp.js';

export const GROUP = 65534; // nogroup: the queue's group
export const WEB = 12346; // the web app's user, primary group 12346
export const WORKER = 12345; // the worker's user, primary group 12345

/** Run `command args` as `uid` (primary group `uid`, supplementary group GROUP) under `umask` (022, a common default, unless told). */
export async function runAs(uid: number, command: string, args: string[], umask = 0o022): Promise<Run> {
  // setpriv cannot set a umask: a shell sets it and execs the command.
  const shell = ['sh', '-c', `umask ${umask.toString(8).padStart(3, '0')} && exec "$@"`, 'sh', command, ...args];
  const child = track(
    spawn('setpriv', ['--reuid', String(uid), '--regid', String(uid), '--groups', String(GROUP), ...shell], {
      stdio: ['ignore', 'pipe', 'pipe'],
    }),
  );
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await exited(child);
  await Promise.all([closed(child.stdout!), closed(child.stderr!)]);
  return { code, stdout, stderr };
}

export function requireRoot(): void {
  if (process.getuid?.() !== 0)
    throw new Error('this test runs processes as other users and needs root (CI runs as root)');
}

/** A directory others may traverse, to hold the queue. */
export function sharedBase(): string {
  const base = tempDir();
  fs.chmodSync(base, 0o755);
  return base;
}

/** chgrp -R GROUP of a queue made by `dirq init --mode`: its directories are setgid, so every file made later gets the group. */
export function chgrpQueue(dir: string): void {
  for (const entry of [dir, ...fs.readdirSync(dir).map((name) => `${dir}/${name}`)]) fs.chownSync(entry, 0, GROUP);
}

export const modeOf = (file: string): number => fs.statSync(file).mode & 0o7777;
