/**
 * Temp queues for tests: removed when the test passes, kept (path printed)
 * when it fails. Queues and child processes a test leaves open fail the test.
 */
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, onTestFinished } from 'vitest';
import { Queue, type QueueOptions } from '../../dist/index.js';

/** Tests run with inotify unless the project says poll-only. */
export const WATCH = process.env.DIRQ_TEST_WATCH !== '0';

const openQueues = new Set<Queue>();
const children = new Set<ChildProcess>();

/** A fresh directory under the OS temp dir (or `base`), cleaned up as above. */
export function tempDir(base = os.tmpdir()): string {
  const dir = fs.mkdtempSync(path.join(base, 'dirq-test-'));
  onTestFinished((ctx) => {
    if (ctx.task.result?.state === 'fail') console.error(`kept the queue of the failed test: ${dir}`);
    else fs.rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

/** Let every user into a queue directory and its subdirectories (tests that run a process as another user). */
export function openToAll(dir: string): void {
  for (const p of [dir, ...fs.readdirSync(dir).map((name) => path.join(dir, name))]) fs.chmodSync(p, 0o777);
}

/** Open a queue that the test must close; durable off by default (tests of durability turn it on). */
export async function openQueue(dir: string, options: QueueOptions = {}): Promise<Queue> {
  const q = await Queue.open(dir, { durable: false, watch: WATCH, pollInterval: 50, ...options });
  openQueues.add(q);
  const close = q.close.bind(q);
  q.close = async () => {
    openQueues.delete(q);
    await close();
  };
  return q;
}

/** A queue in a fresh temp dir. */
export async function tempQueue(options: QueueOptions = {}): Promise<{ dir: string; q: Queue }> {
  const dir = tempDir();
  return { dir, q: await openQueue(dir, options) };
}

/** Spawn a child the test must see exit; killed and reported if it outlives the test. */
export function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

export function spawnNode(args: string[], options: SpawnOptions = {}): ChildProcess {
  return track(spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], ...options }));
}

/** A pid of this host that no process has now: that of a child that has exited. */
export async function deadPid(): Promise<number> {
  const child = spawnNode(['-e', '0']);
  await exited(child);
  try {
    process.kill(child.pid!, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ESRCH') return child.pid!;
  }
  return deadPid(); // reused already: take another
}

/** Resolves with the exit code (or signal) of a child. */
export function exited(child: ChildProcess): Promise<number | NodeJS.Signals> {
  if (child.exitCode !== null) return Promise.resolve(child.exitCode);
  if (child.signalCode !== null) return Promise.resolve(child.signalCode);
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve(code ?? signal!)));
}

afterEach(async () => {
  const leaks: string[] = [];
  for (const q of [...openQueues]) {
    leaks.push(`queue ${q.dir} left open`);
    await q.close();
  }
  for (const child of [...children]) {
    leaks.push(`child process ${child.pid} left running`);
    child.kill('SIGKILL');
    await exited(child);
  }
  if (leaks.length > 0) throw new Error(`the test leaked: ${leaks.join('; ')}`);
});
