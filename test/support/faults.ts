/**
 * Fault injection at the filesystem calls of the library, by spying on
 * node:fs (the library's one way to the disk): count them, make the Nth one
 * "crash" (it and every later call throw, as if the process were gone), or
 * make it fail with a system error as Node raises it (code, errno, syscall,
 * path), once (a transient fault) or from then on (a persistent one: the
 * filesystem went read-only, the disk is gone). Shared by the crash-point
 * test and the I/O-error matrix.
 */
import fs from 'node:fs';
import os from 'node:os';
import { vi } from 'vitest';

/** The simulated crash: nothing after it runs. */
export class Crash extends Error {}

/** Every synchronous fs call of src/, and the callback and promise ones, by name. */
const SYNC = [
  'openSync',
  'writeSync',
  'closeSync',
  'renameSync',
  'readSync',
  'fstatSync',
  'rmSync',
  'unlinkSync',
  'lstatSync',
  'existsSync',
  'readdirSync',
  'statSync',
  'futimesSync',
  'utimesSync',
  'fchmodSync',
  'chmodSync',
  'mkdirSync',
  'rmdirSync',
  'readFileSync',
  'linkSync',
  'symlinkSync',
  'readlinkSync',
  'ftruncateSync',
  'accessSync',
  'statfsSync',
] as const;
const CALLBACK = ['fdatasync', 'fsync', 'open', 'close'] as const;
const PROMISE = ['readdir'] as const;

export type Errno = 'EIO' | 'ENOSPC' | 'EDQUOT' | 'EROFS';

const DESCRIPTION: Record<Errno, string> = {
  EIO: 'i/o error',
  ENOSPC: 'no space left on device',
  EDQUOT: 'disk quota exceeded',
  EROFS: 'read-only file system',
};

/** What happens at the faulty call. */
export type Fault = { kind: 'crash' } | { kind: 'errno'; code: Errno; persistent: boolean };

/** The error Node would throw for `name`(`args`) failing with `code`. */
export function systemError(code: Errno, name: string, args: readonly unknown[]): NodeJS.ErrnoException {
  const syscall =
    { readFileSync: 'open', existsSync: 'access', rmSync: 'rm', readdir: 'scandir', readdirSync: 'scandir' }[name] ??
    name.replace(/Sync$/, '');
  const path = typeof args[0] === 'string' ? args[0] : undefined;
  const error: NodeJS.ErrnoException = new Error(
    `${code}: ${DESCRIPTION[code]}, ${syscall}${path === undefined ? '' : ` '${path}'`}`,
  );
  return Object.assign(error, { errno: -os.constants.errno[code], code, syscall }, path === undefined ? {} : { path });
}

export interface Injection {
  /** Put node:fs back as it was: a persistent fault ends here. */
  restore(): void;
  /** Whether the faulty call was reached. */
  fired(): boolean;
  /** The names of the calls made since the injection, in order (the faulty one included). */
  readonly calls: string[];
}

/**
 * Make the `n`th filesystem call from now fail as `fault` says (n = Infinity
 * only counts). A callback or promise call fails the way Node reports it
 * there: through its callback or a rejected promise, on a later tick;
 * existsSync, which never throws, answers false, as it does on a real EIO.
 */
export function injectAt(n: number, fault: Fault): Injection {
  const calls: string[] = [];
  let fired = false;
  const failing = (name: string): boolean => {
    calls.push(name);
    if (fired && (fault.kind === 'crash' || fault.persistent)) return true;
    if (calls.length !== n) return false;
    fired = true;
    return true;
  };
  const failure = (name: string, args: unknown[]): Error =>
    fault.kind === 'crash' ? new Crash(`crashed before call ${n}`) : systemError(fault.code, name, args);
  const spies = [
    ...SYNC.map((name) => {
      const original = fs[name] as (...args: unknown[]) => unknown;
      return vi.spyOn(fs, name).mockImplementation((...args: unknown[]) => {
        if (!failing(name)) return original.apply(fs, args);
        if (name === 'existsSync' && fault.kind === 'errno') return false;
        throw failure(name, args);
      });
    }),
    ...CALLBACK.map((name) => {
      const original = fs[name] as (...args: unknown[]) => unknown;
      return vi.spyOn(fs, name).mockImplementation((...args: unknown[]) => {
        if (!failing(name)) return original.apply(fs, args);
        if (fault.kind === 'crash') throw failure(name, args);
        const callback = args.at(-1) as (error: Error) => void;
        process.nextTick(() => callback(failure(name, args)));
        return undefined;
      });
    }),
    ...PROMISE.map((name) => {
      const original = fs.promises[name] as (...args: unknown[]) => unknown;
      return vi.spyOn(fs.promises, name).mockImplementation(((...args: unknown[]) => {
        if (!failing(name)) return original.apply(fs.promises, args);
        if (fault.kind === 'crash') throw failure(name, args);
        return Promise.reject(failure(name, args));
      }) as never);
    }),
  ];
  return { restore: () => spies.forEach((s) => s.mockRestore()), fired: () => fired, calls };
}

/** Make the `n`th filesystem call from now, and every one after it, throw Crash. */
export function crashAt(n: number): { restore(): void; crashed(): boolean } {
  const injection = injectAt(n, { kind: 'crash' });
  return { restore: () => injection.restore(), crashed: () => injection.fired() };
}
