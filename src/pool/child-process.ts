/**
 * What the pool's three kinds of child process share (a worker process, a
 * per-job exec, a persistent exec worker): their stderr goes on to ours with
 * its last lines kept to say why one died, a death is told by its signal or
 * exit code, and a process group is stopped SIGTERM first, SIGKILL later.
 */
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import { setTimeout as sleep } from 'node:timers/promises';

/** A child that has not ended within this long of SIGTERM gets SIGKILL. */
export const KILL_AFTER_MS = 2000;

/** How long a child's pipes may stay open after it exited (a grandchild may hold them) before they are let go. */
const DRAIN_MS = 200;

/** What V8 prints when a process runs out of heap. */
const OUT_OF_MEMORY = /Reached heap limit|JavaScript heap out of memory/;

/** The last lines a child wrote on stderr, passed on to this process's stderr as they come. */
export class StderrTail {
  #outOfMemory = false;
  readonly #stream: Readable;
  readonly #keep: number;
  /** The last complete lines, at most `keep`. */
  readonly #complete: string[] = [];
  /** The line being written: a chunk of the pipe may end anywhere, mid-line or mid-character. */
  #partial = '';
  readonly #decoder = new StringDecoder('utf8');

  constructor(stream: Readable, keep: number) {
    this.#stream = stream;
    this.#keep = keep;
    stream.on('data', (chunk: Buffer) => {
      process.stderr.write(chunk);
      const parts = (this.#partial + this.#decoder.write(chunk)).split('\n');
      this.#partial = parts.pop()!;
      const lines = parts.filter((line) => line.trim().length > 0);
      if (lines.some((line) => OUT_OF_MEMORY.test(line))) this.#outOfMemory = true;
      this.#complete.push(...lines);
      this.#complete.splice(0, Math.max(0, this.#complete.length - keep));
    });
  }

  /** V8 said it ran out of heap: its report is a dozen lines, so the tail alone would lose the line that says so. */
  get outOfMemory(): boolean {
    return this.#outOfMemory || OUT_OF_MEMORY.test(this.#partial);
  }

  /** The last lines written (at most `keep`), the one being written included; blank lines left out. */
  get lines(): string[] {
    const all = this.#partial.trim().length > 0 ? [...this.#complete, this.#partial] : this.#complete;
    return all.slice(-this.#keep);
  }

  /** Resolves once the stream has ended, or after a moment: what a child wrote just before it died may still be in the pipe. */
  drained(): Promise<void> {
    return ended(this.#stream);
  }
}

/** Resolves when `stream` ends, or DRAIN_MS from now, whichever is first. */
export function ended(stream: Readable): Promise<void> {
  return new Promise((resolve) => {
    if (stream.readableEnded || stream.destroyed) {
      resolve();
      return;
    }
    const timer = setTimeout(resolve, DRAIN_MS);
    stream.once('end', () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Why a child process ended, for the error its jobs record. */
export function deathOf(death: {
  code: number | null;
  signal: NodeJS.Signals | null;
  stderr: StderrTail;
  heap?: number | undefined;
  startError?: Error | undefined;
}): string {
  const { code, signal, heap, stderr, startError } = death;
  if (startError !== undefined) return `could not start: ${startError.message}`;
  const last = stderr.lines.length === 0 ? '' : `; its stderr ended: ${stderr.lines.slice(-3).join(' | ')}`;
  if (stderr.outOfMemory) return `ran out of memory${heap === undefined ? '' : ` (its limit: ${heap} MB)`}`;
  if (signal === 'SIGKILL') return `was killed by SIGKILL (the OOM killer, or someone's kill -9)${last}`;
  if (signal !== null) return `was killed by ${signal}${last}`;
  return `exited with code ${code ?? '?'}${last}`;
}

/** True while any process of the group `pgid` is alive. */
function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // ESRCH: the group has gone already
  }
}

/**
 * Stop every process of the group `pgid` (a child started with `detached`,
 * and whatever it started): SIGTERM, then SIGKILL to what is left after
 * KILL_AFTER_MS. Resolves once no process of the group is left.
 */
export async function stopGroup(pgid: number): Promise<void> {
  signalGroup(pgid, 'SIGTERM');
  const deadline = Date.now() + KILL_AFTER_MS;
  while (groupAlive(pgid)) {
    if (Date.now() >= deadline) {
      signalGroup(pgid, 'SIGKILL');
      // a process killed by SIGKILL that its parent has not reaped yet still counts: give it a moment
      for (let i = 0; i < 40 && groupAlive(pgid); i++) await sleep(25);
      return;
    }
    await sleep(25);
  }
}
