/**
 * Simulated hosts on one machine, for the NFS tests (NFS.md, "How it is tested").
 *
 * - A host's view of the shared directory is its own bindfs (FUSE) mount with
 *   entry and attribute caching: like an NFS client, it sees no inotify event
 *   for renames made through another mount, and its lookups and stat results
 *   stay stale for up to the cache times.
 * - A host's processes run under `unshare --uts --pid --fork --mount-proc`:
 *   their own hostname and a pid namespace, so pids collide across hosts
 *   (each host's first process is pid 1). The boot id is the machine's.
 * - `faketime` skews a host's clock.
 *
 * Every mount is unmounted when the test ends, passed or failed. Tests call
 * requireHosts() first: a machine without FUSE, bindfs, unshare (or faketime)
 * fails them with what to install, never passes them silently.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { onTestFinished } from 'vitest';
import { exited, track } from './temp.js';

export const HOST_FIXTURE = new URL('../fixtures/host.mjs', import.meta.url).pathname;

/** Throw, saying what is missing, unless this machine can simulate hosts. */
export function requireHosts(options: { faketime?: boolean } = {}): void {
  const missing: string[] = [];
  if (process.getuid?.() !== 0)
    missing.push('root (FUSE mounts with allow_other and unshare need it; CI runs as root)');
  if (!fs.existsSync('/dev/fuse'))
    missing.push('/dev/fuse (a FUSE-capable kernel; in a container: --device /dev/fuse --cap-add SYS_ADMIN)');
  for (const tool of ['bindfs', 'unshare']) if (!has(tool)) missing.push(tool);
  if (fusermount() === undefined) missing.push('fusermount (the fuse package)');
  if (options.faketime && libfaketime() === undefined) missing.push('libfaketime (the faketime package)');
  if (missing.length === 0) {
    const probe = spawnSync('unshare', ['--uts', '--pid', '--fork', '--mount-proc', 'true'], { encoding: 'utf8' });
    if (probe.status !== 0)
      missing.push(`a working unshare --uts --pid (${probe.stderr.trim() || `exit ${probe.status}`})`);
  }
  if (missing.length > 0) {
    throw new Error(
      `simulated hosts need ${missing.join(', ')}: apt-get install bindfs fuse faketime util-linux (.ci/run does)`,
    );
  }
}

export interface MountOptions {
  /** Seconds a looked-up name is trusted (FUSE entry_timeout). @default 2 */
  entryTimeout?: number;
  /** Seconds attributes (mtime, size) are trusted (FUSE attr_timeout). @default 2 */
  attrTimeout?: number;
  /** Seconds a failed lookup is trusted (FUSE negative_timeout; NFS lookupcache=all). @default 0 */
  negativeTimeout?: number;
}

const mounted = new Set<string>();

/** Mount `source` through bindfs with caching; unmounted when the test ends. Returns the mount point. */
export function mountCached(source: string, options: MountOptions = {}): string {
  const { entryTimeout = 2, attrTimeout = 2, negativeTimeout = 0 } = options;
  const point = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-mnt-'));
  execFileSync(
    'bindfs',
    [
      '-o',
      `attr_timeout=${attrTimeout},entry_timeout=${entryTimeout},negative_timeout=${negativeTimeout}`,
      source,
      point,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  mounted.add(point);
  onTestFinished(() => unmount(point));
  return point;
}

function unmount(point: string): void {
  if (!mounted.delete(point)) return;
  // a process of the test may still hold a file open there: then detach lazily
  if (spawnSync(fusermount()!, ['-u', point]).status !== 0) spawnSync(fusermount()!, ['-u', '-z', point]);
  try {
    fs.rmdirSync(point);
  } catch {
    // already gone
  }
}

process.once('exit', () => {
  for (const point of mounted)
    spawnSync(fusermount() ?? 'umount', fusermount() === undefined ? ['-l', point] : ['-u', '-z', point]);
});

function has(tool: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

let fusermountCache: string | null | undefined;

/** fusermount (FUSE 2, what Debian's bindfs pulls in) or fusermount3. */
function fusermount(): string | undefined {
  fusermountCache ??= ['fusermount', 'fusermount3'].find(has) ?? null;
  return fusermountCache ?? undefined;
}

export interface HostOptions {
  /** faketime offset, e.g. '+60s'. */
  skew?: string;
  env?: Record<string, string>;
}

/** A process (and its pid namespace) on a simulated host. */
export class Host {
  readonly name: string;
  readonly child: ChildProcess;
  /** Every line it printed on stdout so far. */
  readonly lines: string[] = [];
  #waiters = new Set<() => void>();

  constructor(name: string, child: ChildProcess) {
    this.name = name;
    this.child = child;
    let buffer = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      buffer += chunk;
      const parts = buffer.split('\n');
      buffer = parts.pop()!;
      this.lines.push(...parts);
      for (const wake of [...this.#waiters]) wake();
    });
    child.once('exit', () => {
      for (const wake of [...this.#waiters]) wake();
    });
  }

  /** Resolves with the first line (printed so far or later) that `match` accepts; rejects if the host exits first. */
  line(match: string | RegExp | ((line: string) => boolean), timeoutMs = 30_000): Promise<string> {
    const test =
      typeof match === 'function'
        ? match
        : typeof match === 'string'
          ? (l: string) => l.startsWith(match)
          : (l: string) => match.test(l);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => finish(new Error(`${this.name}: timed out waiting for a line matching ${String(match)}`)),
        timeoutMs,
      );
      const check = (): void => {
        const found = this.lines.find(test);
        if (found !== undefined) finish(undefined, found);
        else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          finish(
            new Error(
              `${this.name} exited (${this.child.exitCode ?? this.child.signalCode}) before a line matching ${String(match)}:\n${this.lines.join('\n')}`,
            ),
          );
        }
      };
      const finish = (error: Error | undefined, found?: string): void => {
        clearTimeout(timer);
        this.#waiters.delete(check);
        if (error) reject(error);
        else resolve(found!);
      };
      this.#waiters.add(check);
      check();
    });
  }

  /** The outside pids of every process of this host (the unshare child and its descendants). */
  processes(): number[] {
    const out: number[] = [];
    const walk = (pid: number): void => {
      for (const task of safeList(`/proc/${pid}/task`)) {
        for (const child of (safeRead(`/proc/${pid}/task/${task}/children`) ?? '').split(' ').filter(Boolean)) {
          out.push(Number(child));
          walk(Number(child));
        }
      }
    };
    if (this.child.pid !== undefined) walk(this.child.pid);
    return out;
  }

  /** SIGKILL every process of the host at once: killing its pid namespace's init takes the rest with it. */
  async kill(): Promise<void> {
    const [init] = this.processes();
    if (init !== undefined) process.kill(init, 'SIGKILL');
    await exited(this.child);
  }

  /** SIGSTOP every process of the host; resolves once all are stopped. */
  async freeze(): Promise<void> {
    const pids = this.processes();
    for (const pid of pids) process.kill(pid, 'SIGSTOP');
    for (const pid of pids) {
      while (!/^\d+ \(.*\) [Tt]/.test(safeRead(`/proc/${pid}/stat`) ?? '0 () T'))
        await new Promise((resolve) => setTimeout(resolve, 5));
    }
  }

  thaw(): void {
    for (const pid of this.processes()) process.kill(pid, 'SIGCONT');
  }

  /** Write a line to its stdin (e.g. "stop", "go"). */
  send(line: string): void {
    this.child.stdin!.write(`${line}\n`);
  }

  /** Resolves with its exit code (or signal). */
  exited(): Promise<number | NodeJS.Signals> {
    return exited(this.child);
  }

  /** Tell a pool host to stop, and wait for it to exit. */
  async stop(): Promise<number | NodeJS.Signals> {
    this.send('stop');
    return exited(this.child);
  }
}

/**
 * Start `node HOST_FIXTURE MODE MOUNT` as host `name`: its own hostname and
 * pid namespace (node is pid 1 there), its clock skewed by `skew`.
 */
export function startHost(name: string, mode: string, mount: string, options: HostOptions = {}): Host {
  // libfaketime preloaded, not the faketime command: that one forks (node would not be pid 1) and names a
  // semaphore after its pid, which collides between pid namespaces
  const skew =
    options.skew === undefined
      ? {}
      : { LD_PRELOAD: libfaketime()!, FAKETIME: options.skew, FAKETIME_DONT_FAKE_MONOTONIC: '1' };
  const child = track(
    spawn(
      'unshare',
      [
        '--uts',
        '--pid',
        '--fork',
        '--mount-proc',
        '--kill-child',
        'sh',
        '-c',
        'hostname "$0" && exec "$@"',
        name,
        process.execPath,
        HOST_FIXTURE,
        mode,
        mount,
      ],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
        env: { ...process.env, ...options.env, ...skew },
      },
    ),
  );
  // unshare re-raises its child's signal on itself, and SIGKILL cannot be unblocked: it says so; that is no error
  let pending = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n');
    pending = lines.pop()!;
    for (const line of lines)
      if (line !== 'unshare: sigprocmask unblock failed: Invalid argument') process.stderr.write(`[${name}] ${line}\n`);
  });
  return new Host(name, child);
}

/** The path of libfaketime.so.1 (Debian: /usr/lib/<triplet>/faketime/), if installed. */
export function libfaketime(): string | undefined {
  for (const base of ['/usr/lib', '/usr/local/lib', ...safeList('/usr/lib').map((d) => `/usr/lib/${d}`)]) {
    const file = `${base}/faketime/libfaketime.so.1`;
    if (fs.existsSync(file)) return file;
  }
  return undefined;
}

function safeList(dir: string): string[] {
  try {
    return fs.readdirSync(dir);
  } catch {
    return [];
  }
}

function safeRead(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

/** The lines of kind `kind` ("start", "completed", ...) the host fixture's processors appended to `log`, split on spaces. */
export function logLines(log: string, kind: string): string[][] {
  if (!fs.existsSync(log)) return [];
  return fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .filter((l) => l.startsWith(`${kind} `))
    .map((l) => l.split(' '));
}
