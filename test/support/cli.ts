/**
 * Running the built dirq CLI as users run it: `node dist/cli/main.js ...`.
 * `npm test` builds first; run `npm run build` before vitest alone.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { beforeAll, expect } from 'vitest';
import { STATES } from '../../dist/index.js';
import { exited, openQueue, spawnNode, tempDir, track } from './temp.js';

export const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const ID = /^\d{2}-\d{16}-[A-Za-z0-9]{1,32}\.[A-Za-z0-9_.%-]+$/;

export interface Run {
  code: number | NodeJS.Signals;
  stdout: string;
  stderr: string;
}

beforeAll(() => {
  if (!fs.existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build before the CLI tests`);
});

/** Run dirq with `args`, feeding `input` on stdin when given. */
export async function dirq(args: string[], input?: string | Buffer, options: SpawnOptions = {}): Promise<Run> {
  const child = spawnNode([CLI, ...args], {
    stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    ...options,
  });
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  if (input !== undefined) child.stdin!.end(input);
  const code = await exited(child);
  // 'exit' can precede the last 'data' events: wait for the pipes to close too.
  await Promise.all([closed(child.stdout!), closed(child.stderr!)]);
  return { code, stdout, stderr };
}

export function closed(stream: NodeJS.ReadableStream & { closed?: boolean }): Promise<void> {
  if (stream.closed === true) return Promise.resolve();
  return new Promise((resolve) => stream.once('close', () => resolve()));
}

/**
 * Run `dirq ARGS [> REDIRECT]` on a terminal: script(1) gives it a pty, and the child's stdout is
 * what the terminal shows. The shell is pinned and `exec`s dirq so that dirq is the terminal's
 * foreground process: dash (CI's /bin/sh) would otherwise stay as its parent and also take a
 * Ctrl-C, and script would report the shell's death by SIGINT (130) instead of dirq's exit code.
 */
export function onTerminal(args: string[], redirect?: string): ChildProcess {
  const command = `exec ${[process.execPath, CLI, ...args].join(' ')}${redirect === undefined ? '' : ` > ${redirect}`}`;
  return track(
    spawn('script', ['-qfec', command, '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, SHELL: '/bin/sh' },
    }),
  );
}

/** Run dirq, expect exit 0 and a silent stderr, and return stdout. */
export async function ok(args: string[], input?: string | Buffer): Promise<string> {
  const run = await dirq(args, input);
  expect(run, `dirq ${args.join(' ')}`).toMatchObject({ code: 0, stderr: '' });
  return run.stdout;
}

/** Run dirq and parse its --json output (exit 0 expected). */
export async function okJson<T = unknown>(args: string[], input?: string): Promise<T> {
  return JSON.parse(await ok([...args, '--json'], input)) as T;
}

/** A fresh queue made by `dirq init`. */
export async function newQueue(): Promise<string> {
  const dir = path.join(tempDir(), 'q');
  await ok(['init', dir]);
  return dir;
}

/** A fresh queue made by the library: half the process spawns where init is not under test. */
export async function libraryQueue(): Promise<string> {
  const dir = path.join(tempDir(), 'q');
  await (await openQueue(dir)).close();
  return dir;
}

/** Enqueue with the CLI and return the id. */
export async function enqueued(dir: string, ...args: string[]): Promise<string> {
  return (await ok(['enqueue', dir, ...args])).trimEnd();
}

/** Every file under the queue's state directories and tmp/. */
export function jobFiles(dir: string): string[] {
  return ['tmp', ...STATES].flatMap((d) => fs.readdirSync(path.join(dir, d)).map((name) => `${d}/${name}`));
}

export function envelope(file: string): Record<string, unknown> {
  return JSON.parse(fs.readFileSync(file, 'utf8').split('\n')[0]!) as Record<string, unknown>;
}

/** Claim every ready job of the queue and end it: complete, or fail for good when `fail` says so. */
export async function runAll(
  dir: string,
  fail: (data: unknown) => string | undefined = () => undefined,
): Promise<void> {
  const q = await openQueue(dir);
  try {
    for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
      const message = fail(job.data);
      if (message === undefined) await job.complete({ ok: job.data });
      else await job.fail(Object.assign(new Error(message), { code: 'EPROCESS' }));
    }
  } finally {
    await q.close();
  }
}

/** The expectations every bad call meets: exit `code`, stdout empty, one line on stderr. */
export function expectOneLineError(run: Run, code: number, message: RegExp): void {
  expect(run.code, run.stderr).toBe(code);
  expect(run.stdout).toBe('');
  expect(run.stderr.split('\n')).toEqual([expect.stringMatching(message), '']);
  expect(run.stderr).toMatch(/^dirq: \S/);
}
