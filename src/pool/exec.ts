/**
 * Any executable as a processor, one process per job (`dirq work --exec`):
 * the job's data goes in on stdin, its result comes out on stdout, a
 * non-zero exit fails the attempt with the end of stderr as the message.
 * Each job's process leads its own process group, so that a timeout, a
 * cancel or the pool's close stops whatever it started too.
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DirQueueError } from '../store/errors.js';
import { withoutResults } from '../store/envelope.js';
import { describe } from '../store/names.js';
import { ended, StderrTail, stopGroup } from './child-process.js';
import type { Processor, ProcessorJob } from './processor.js';

/** Lines of a job's stderr kept: the last few are its error's message, all of them its stack (a traceback). */
const STDERR_LINES = 30;
const MESSAGE_LINES = 3;

/** A job's stdout beyond this is not a result any job file should hold: the job fails instead. */
const MAX_STDOUT_BYTES = 16 * 1024 * 1024;

/** Words a shell runs itself, or that make the first word not a program's name: not looked up. */
const SHELL_WORDS = new Set(
  '! . : [ { ( case cd command eval exec export for if set source test time true false ulimit umask unset until while'.split(
    ' ',
  ),
);

/**
 * Throws EBADOPTION, naming what was looked for, when the program of
 * `command` is not there or cannot be run: checked once before the pool
 * takes a job, so a typo fails at once and touches nothing. For a shell
 * command line (['/bin/sh', '-c', LINE]) the program is LINE's first word,
 * unless that word is the shell's own or holds shell syntax, which only the
 * shell can tell.
 */
export function checkCommand(command: readonly string[]): void {
  const program = command[0] === '/bin/sh' && command[1] === '-c' ? firstWord(command[2] ?? '') : command[0];
  if (program === undefined) return;
  const found = program.includes('/') ? [path.resolve(program)] : searchPath(program);
  for (const file of found) {
    try {
      if (!fs.statSync(file).isFile()) continue;
      fs.accessSync(file, fs.constants.X_OK);
      return;
    } catch (error) {
      if (program.includes('/') && (error as NodeJS.ErrnoException).code === 'EACCES')
        throw new DirQueueError('EBADOPTION', `the exec program ${file} is not executable: chmod +x ${file}`);
    }
  }
  throw new DirQueueError(
    'EBADOPTION',
    program.includes('/')
      ? `no exec program at ${path.resolve(program)} (from ${describe(command.join(' '))})`
      : `no exec program ${describe(program)} in PATH (${process.env.PATH ?? ''}): give its path, e.g. ./${program}`,
  );
}

/** The program a shell command line starts, or undefined when only the shell can tell. */
function firstWord(line: string): string | undefined {
  const word = line.trim().split(/\s+/)[0] ?? '';
  if (word === '' || SHELL_WORDS.has(word)) return undefined;
  if (/[$`'"\\|&;<>(){}*?[\]=~]/.test(word)) return undefined; // quoting, expansion, redirection, an assignment
  return word;
}

function searchPath(program: string): string[] {
  return (process.env.PATH ?? '')
    .split(':')
    .filter((dir) => dir !== '')
    .map((dir) => path.join(dir, program));
}

/**
 * A processor that runs `command` for each job. Its environment adds
 * DIRQ_JOB_ID, DIRQ_JOB_TYPE, DIRQ_JOB_ATTEMPT, DIRQ_JOB_ATTEMPTS and
 * DIRQ_QUEUE (the queue's directory), and for a job that waited (`after`,
 * a batch's callback) DIRQ_PARENTS or DIRQ_BATCH, as JSON (results left out
 * past ENV_JSON_MAX bytes). Its stdin is the job's data as JSON,
 * or the raw bytes of a payload enqueued as bytes (`dirq enqueue --file`),
 * or nothing for a job without data. Exit 0: the result is stdout, parsed as
 * JSON when it is JSON, else its text (one final newline dropped); nothing
 * on stdout is no result. When the job's signal aborts (timeout, cancel, the
 * pool closing) the process group gets SIGTERM, then SIGKILL, and the
 * processor settles only once every process of the group has gone.
 */
export function execProcessor(command: readonly string[], options: { queueDir: string }): Processor {
  const [program, ...args] = command;
  if (program === undefined) throw new DirQueueError('EBADOPTION', 'an exec processor needs a command');
  const queueDir = path.resolve(options.queueDir);
  return (job) => runCommand(program, args, queueDir, job);
}

/** The most bytes of JSON put in DIRQ_PARENTS: Linux takes at most 128 KiB in one environment string. */
const ENV_JSON_MAX = 64 * 1024;

/** DIRQ_PARENTS and DIRQ_BATCH of a job that waited for others. */
function waitedFor(job: ProcessorJob): Record<string, string> {
  const env: Record<string, string> = {};
  if (job.parents !== undefined) {
    const full = JSON.stringify(job.parents);
    env.DIRQ_PARENTS = full.length <= ENV_JSON_MAX ? full : JSON.stringify(withoutResults(job.parents));
  }
  if (job.batch !== undefined) env.DIRQ_BATCH = JSON.stringify(job.batch);
  return env;
}

function runCommand(program: string, args: string[], queueDir: string, job: ProcessorJob): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const child = spawn(program, args, {
      detached: true, // its own process group, stopped as one
      stdio: ['pipe', 'pipe', 'pipe'],
      env: {
        ...process.env,
        DIRQ_JOB_ID: job.id,
        DIRQ_JOB_TYPE: job.type,
        DIRQ_JOB_ATTEMPT: String(job.attempt),
        DIRQ_JOB_ATTEMPTS: String(job.attempts),
        DIRQ_QUEUE: queueDir,
        ...waitedFor(job),
      },
    });
    const stderr = new StderrTail(child.stderr, STDERR_LINES);
    const stdout: Buffer[] = [];
    let stdoutBytes = 0;
    let stopped: Promise<void> | undefined;
    let why: DirQueueError | undefined;
    const stop = (reason: DirQueueError): void => {
      why ??= reason;
      if (child.pid !== undefined) stopped ??= stopGroup(child.pid);
    };
    const onAbort = (): void => stop(job.signal.reason as DirQueueError);
    if (job.signal.aborted) onAbort();
    else job.signal.addEventListener('abort', onAbort, { once: true });

    child.stdout.on('data', (chunk: Buffer) => {
      stdoutBytes += chunk.length;
      if (stdoutBytes > MAX_STDOUT_BYTES) {
        stop(
          new DirQueueError(
            'EEXEC',
            `the command wrote more than ${MAX_STDOUT_BYTES} bytes on stdout: too big a result`,
          ),
        );
        return;
      }
      stdout.push(chunk);
    });
    // a command that does not read its stdin may exit before taking it all: EPIPE is no error of the job
    child.stdin.on('error', () => undefined);
    child.stdin.end(stdinOf(job.data));

    let settled = false;
    const settle = (outcome: () => void): void => {
      if (settled) return;
      settled = true;
      job.signal.removeEventListener('abort', onAbort);
      child.stdout.destroy(); // a grandchild may still hold the pipes: let them go
      child.stderr.destroy();
      outcome();
    };
    // spawn's own failure (no such program, not executable) comes as 'error', with no process to wait for
    child.on('error', (error) => {
      if (child.pid === undefined)
        settle(() => reject(new DirQueueError('EEXEC', `could not start ${program}: ${error.message}`)));
    });
    child.once('exit', (code, signal) => {
      void Promise.all([ended(child.stdout), stderr.drained(), stopped]).then(() =>
        settle(() => {
          if (why !== undefined) reject(why);
          else if (code === 0) resolve(resultOf(Buffer.concat(stdout)));
          else reject(commandFailed(code, signal, stderr));
        }),
      );
    });
  });
}

/** What a job's command reads on stdin. */
function stdinOf(data: unknown): Buffer | string {
  if (data === undefined) return '';
  if (data instanceof Uint8Array) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return JSON.stringify(data);
}

/** A finished command's result: its stdout as JSON when it is JSON, else as text. */
function resultOf(stdout: Buffer): unknown {
  const text = stdout.toString('utf8');
  if (text.trim() === '') return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text.endsWith('\n') ? text.slice(0, -1) : text;
  }
}

/** The attempt's error when the command failed: the end of its stderr, and how it ended. */
function commandFailed(code: number | null, signal: NodeJS.Signals | null, stderr: StderrTail): DirQueueError {
  const how = signal !== null ? `killed by ${signal}` : `exit code ${code ?? '?'}`;
  const last = stderr.lines.slice(-MESSAGE_LINES).join('\n');
  const error = new DirQueueError(
    'EEXEC',
    last === '' ? `the command ended with ${how} (nothing on stderr)` : `${last} (${how})`,
  );
  // a traceback is what the stack of a command's failure is; the stack of this function would only mislead
  error.stack = stderr.lines.length === 0 ? error.message : stderr.lines.join('\n');
  return error;
}
