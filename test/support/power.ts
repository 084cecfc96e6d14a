/**
 * Power cuts on real filesystems: ext4, xfs and btrfs images on loop
 * devices, a workload of real processes, a cut at a random moment, and the
 * check of what the queue on the cut filesystem still holds (power-check.ts).
 *
 * How a cut is made. There is no device-mapper here (no dm-log-writes, no
 * dm-flakey), so a cut is a copy of the device taken while the filesystem is
 * mounted and its writers are frozen:
 * - writeback is held back for the run: vm.dirty_expire_centisecs and
 *   vm.dirty_writeback_centisecs (and xfs's fs.xfs.xfssyncd_centisecs, its
 *   periodic log force) are raised, and ext4 and btrfs are mounted with a
 *   commit interval of an hour, so what a writer did not sync stays in the
 *   page cache and never reaches the loop device;
 * - the writers run in their own process groups (with the `sync -f` a syncfs
 *   batch starts) and are all stopped by SIGSTOP; the cut waits until every
 *   thread of theirs is stopped, which a thread inside fsync(2) is only once
 *   the fsync returned, and until the loop device has no request in flight;
 * - the backing file is copied (sparse), and the copy counts only if the loop
 *   device completed no write while it was read (else it is taken again), so
 *   the copy is the device at one instant;
 * - the writers are killed (SIGKILL) and the original is unmounted and
 *   dropped; the copy is what the disk held when the power went.
 * What this models: a power cut after which the device holds exactly the
 * writes it completed, in the order it completed them. What it does not: a
 * device that reorders or loses writes it acknowledged without a flush, or
 * tears a sector (that needs dm-log-writes or LazyFS, neither available
 * here). Writes that the kernel completed on its own before the cut (a
 * journal commit another process's fsync forced) are on the copy, as they
 * would be on a real disk.
 *
 * Then the copy is brought up as a boot would: mounted (the kernel replays
 * the journal or log), unmounted, checked read-only by the filesystem's own
 * checker, repaired only if that finds damage (counted), mounted again, and
 * the queue on it is checked against the writers' ledgers (power-check.ts).
 *
 * Anything global is restored: the sysctls (their original values are kept
 * in STATE_DIR, so a run that was killed is undone by the next one), mounts
 * and loop devices (only this run's own: every one is under its own
 * directories), and writer processes. No vitest here: the full matrix
 * (test/power/matrix.mjs) runs this outside the test runner.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from '../../dist/index.js';
import { checkQueue, PATHS, readLedgers, type QueueVerdict } from './power-check.js';
import { until } from './wait.js';

export const FILESYSTEMS = ['ext4', 'xfs', 'btrfs'] as const;
export type FsName = (typeof FILESYSTEMS)[number];

interface FsSpec {
  /** Commands this filesystem needs, and the Debian package that has them. */
  tools: string[];
  debian: string;
  /** Image size, MiB: small, and sparse, so only what is written costs. */
  mib: number;
  mkfs: (image: string) => [string, string[]];
  /** Mount options that hold back what they can; `nouuid`: every copy of one image shares its UUID. */
  options: string;
  /** Read-only check of an unmounted device: exit 0 when clean. */
  check: (dev: string) => [string, string[]];
  /** Repair, when the check found damage: exit 0 (or 1 for e2fsck: errors corrected) when repaired. */
  repair: (dev: string) => [string, string[]];
  /** What lets a copy mount that will not (a log the kernel cannot replay): it drops the log. */
  unjam: (dev: string) => [string, string[]];
}

const SPECS: Record<FsName, FsSpec> = {
  ext4: {
    tools: ['mkfs.ext4', 'e2fsck'],
    debian: 'e2fsprogs',
    mib: 128,
    // inodes for every job file (the default ratio gives 8,192); no lazy init, which writes in the background
    mkfs: (image) => ['mkfs.ext4', ['-q', '-F', '-N', '65536', '-E', 'lazy_itable_init=0,lazy_journal_init=0', image]],
    options: 'commit=3600',
    check: (dev) => ['e2fsck', ['-fn', dev]],
    repair: (dev) => ['e2fsck', ['-fy', dev]],
    unjam: (dev) => ['e2fsck', ['-fy', dev]],
  },
  xfs: {
    tools: ['mkfs.xfs', 'xfs_repair'],
    debian: 'xfsprogs',
    mib: 320, // mkfs.xfs refuses less than 300 MB
    mkfs: (image) => ['mkfs.xfs', ['-q', '-f', image]],
    // xfs has no commit interval: its log is forced by fsync, by a full log buffer, and by the
    // xfssyncd timer (the sysctl below); the largest buffers make the second rarer
    options: 'nouuid,logbufs=8,logbsize=256k',
    check: (dev) => ['xfs_repair', ['-n', dev]],
    repair: (dev) => ['xfs_repair', [dev]],
    unjam: (dev) => ['xfs_repair', ['-L', dev]],
  },
  btrfs: {
    tools: ['mkfs.btrfs', 'btrfs'],
    debian: 'btrfs-progs',
    mib: 256, // room for metadata (DUP) and data chunks of a few thousand jobs
    mkfs: (image) => ['mkfs.btrfs', ['-q', '-f', image]],
    options: 'commit=3600',
    check: (dev) => ['btrfs', ['check', '--readonly', dev]],
    repair: (dev) => ['btrfs', ['check', '--repair', dev]],
    unjam: (dev) => ['btrfs', ['rescue', 'zero-log', dev]],
  },
};

/** Commands every filesystem needs, and their Debian packages. */
const COMMON_TOOLS: [string, string][] = [
  ['losetup', 'mount'],
  ['mount', 'mount'],
  ['umount', 'mount'],
  ['cp', 'coreutils'],
  ['sync', 'coreutils'],
  ['truncate', 'coreutils'],
];

/** The writeback sysctls held back for a run (centiseconds; xfssyncd's maximum is 720000). */
const HELD: Record<string, string> = {
  '/proc/sys/vm/dirty_expire_centisecs': '360000',
  '/proc/sys/vm/dirty_writeback_centisecs': '360000',
  '/proc/sys/fs/xfs/xfssyncd_centisecs': '720000',
};

/** Where runs record themselves and the sysctls' original values (root only). */
const STATE_DIR = '/run/dirq-power';
const SAVED = path.join(STATE_DIR, 'sysctls.json');
const RUNS = path.join(STATE_DIR, 'runs');

const WRITER = fileURLToPath(new URL('../fixtures/power-writer.mjs', import.meta.url));
/**
 * Two claimers: claims by two owners, and enough completions in flight at a cut; one of them
 * durable: 'all'. On btrfs a cut after an acknowledged durable completion (the line's fdatasync, the
 * rename, the new name's directory fsync) can leave the job as one file at its active/ and done/ name;
 * the first sweep must leave it in done/ (rescue.ts), and the check holds it to that (power-check.ts).
 */
const ROLES: readonly string[] = ['single', 'group', 'batch', 'work', 'work-all'];

export interface CutResult {
  fs: FsName;
  /** ms between every kind of operation having been acknowledged once and the freeze. */
  moment: number;
  /** Copies taken until one saw the device still (a write completing during the copy spoils it). */
  copies: number;
  /** What the filesystem's checker said of the copy after its journal replay: 'clean', or what was repaired. */
  fsck: string;
  verdict: QueueVerdict;
  /** Where the copy and the ledgers were kept, when the cut broke a promise. */
  kept?: string;
}

/**
 * What keeps a power-cut run from starting here (not root, a missing command), one line each.
 * A kernel without one of the filesystems is told by the first mount (mount loads its module).
 */
export function missingRequirements(filesystems: readonly FsName[]): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0)
    out.push(`power cuts need root (loop devices, mount, sysctls); running as uid ${process.getuid?.()}`);
  if (process.platform !== 'linux') out.push(`power cuts need Linux, not ${process.platform}`);
  const tools = [
    ...COMMON_TOOLS,
    ...filesystems.flatMap((f) => SPECS[f].tools.map((t): [string, string] => [t, SPECS[f].debian])),
  ];
  for (const [tool, debian] of tools) if (!onPath(tool)) out.push(`${tool} is missing (Debian package ${debian})`);
  return out;
}

function onPath(command: string): boolean {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/sbin', '/sbin'];
  return dirs.some((d) => d !== '' && fs.existsSync(path.join(d, command)));
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command to its end; never rejects (the exit code tells). sbin is on PATH: CI's may lack it. */
function run(command: string, args: readonly string[]): Promise<Run> {
  const env = { ...process.env, PATH: `${process.env.PATH ?? ''}:/usr/sbin:/sbin` };
  return new Promise((resolve) => {
    execFile(command, args, { env, maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 127;
      resolve({ code, stdout, stderr });
    });
  });
}

async function must(command: string, args: readonly string[]): Promise<string> {
  const r = await run(command, args);
  if (r.code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${r.code}: ${(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** A process's start time (/proc/PID/stat field 22): with the pid, it names one process for good. */
function startTime(pid: number): string | undefined {
  try {
    const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

interface RunRecord {
  pid: number;
  start: string;
  /** Every directory this run puts images, mounts and ledgers in. */
  dirs: string[];
}

function liveRuns(): RunRecord[] {
  if (!fs.existsSync(RUNS)) return [];
  const live: RunRecord[] = [];
  for (const name of fs.readdirSync(RUNS)) {
    const record = JSON.parse(fs.readFileSync(path.join(RUNS, name), 'utf8')) as RunRecord;
    if (startTime(record.pid) === record.start) live.push(record);
  }
  return live;
}

/**
 * Undo what runs that died left: their writers, mounts, loop devices and
 * directories; then, when no run is live, the sysctls' original values.
 */
async function undoDeadRuns(): Promise<void> {
  if (fs.existsSync(RUNS)) {
    for (const name of fs.readdirSync(RUNS)) {
      const file = path.join(RUNS, name);
      const record = JSON.parse(fs.readFileSync(file, 'utf8')) as RunRecord;
      if (startTime(record.pid) === record.start) continue;
      await dismantle(record.dirs);
      fs.rmSync(file, { force: true });
    }
  }
  if (liveRuns().length === 0) restoreWriteback();
}

/** Kill writers working under `dirs`, unmount and detach what is under them, and delete them. */
async function dismantle(dirs: readonly string[]): Promise<void> {
  const under = (p: string): boolean => dirs.some((d) => p.startsWith(`${d}/`));
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    if (argv.includes(WRITER) && argv.some(under)) killQuietly(Number(pid));
  }
  const mounts = fs
    .readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((line) => line.split(' ')[4])
    .filter((p): p is string => p !== undefined && under(p))
    .sort((a, b) => b.length - a.length);
  for (const mount of mounts) {
    const r = await run('umount', [mount]);
    if (r.code !== 0) await run('umount', ['-l', mount]); // a writer that would not die holds it: detach it lazily
  }
  for (const dev of loopDevicesUnder(under)) await detach(dev);
  for (const dir of dirs) fs.rmSync(dir, { recursive: true, force: true });
}

function killQuietly(pid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(pid, signal);
  } catch {
    // gone already
  }
}

function loopDevicesUnder(under: (p: string) => boolean): string[] {
  const out: string[] = [];
  for (const name of fs.readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    let backing: string;
    try {
      backing = fs.readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8').trim();
    } catch {
      continue; // not attached
    }
    if (under(backing)) out.push(`/dev/${name}`);
  }
  return out;
}

function holdWriteback(): void {
  const present = Object.keys(HELD).filter((file) => fs.existsSync(file));
  if (!fs.existsSync(SAVED)) {
    const saved = Object.fromEntries(present.map((file) => [file, fs.readFileSync(file, 'utf8').trim()]));
    try {
      fs.writeFileSync(SAVED, `${JSON.stringify(saved)}\n`, { flag: 'wx' });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error; // another run saved them first
    }
  }
  for (const file of present) fs.writeFileSync(file, HELD[file]!);
}

function restoreWriteback(): void {
  if (!fs.existsSync(SAVED)) return;
  const saved = JSON.parse(fs.readFileSync(SAVED, 'utf8')) as Record<string, string>;
  for (const [file, value] of Object.entries(saved)) if (fs.existsSync(file)) fs.writeFileSync(file, value);
  fs.rmSync(SAVED);
}

async function attach(image: string): Promise<string> {
  return (await must('losetup', ['-f', '--show', image])).trim();
}

async function detach(dev: string): Promise<void> {
  // btrfs remembers every device it scanned by its filesystem id, which all copies of an image share
  if (onPath('btrfs')) await run('btrfs', ['device', 'scan', '--forget', dev]);
  await run('losetup', ['-d', dev]);
}

async function mount(fsName: FsName, dev: string, at: string): Promise<Run> {
  return run('mount', ['-t', fsName, '-o', SPECS[fsName].options, dev, at]);
}

/** The loop device's counters that move when it completes a write or a flush, and its requests in flight. */
function deviceState(dev: string): { moved: string; inFlight: number } {
  const fields = fs
    .readFileSync(`/sys/block/${path.basename(dev)}/stat`, 'utf8')
    .trim()
    .split(/\s+/)
    .map(Number);
  // 4: writes completed, 6: sectors written, 11: discards, 15: flushes (stat.rst in the kernel's block docs)
  return { moved: [4, 6, 11, 15].map((i) => fields[i] ?? 0).join(' '), inFlight: fields[8] ?? 0 };
}

/** Every thread of every process in these process groups is stopped (or dead). */
function allStopped(groups: ReadonlySet<number>): boolean {
  for (const pid of fs.readdirSync('/proc').filter((n) => /^\d+$/.test(n))) {
    let stat: string;
    try {
      stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
    } catch {
      continue;
    }
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (!groups.has(Number(fields[2]))) continue;
    let tasks: string[];
    try {
      tasks = fs.readdirSync(`/proc/${pid}/task`);
    } catch {
      continue;
    }
    for (const task of tasks) {
      let state: string;
      try {
        const t = fs.readFileSync(`/proc/${pid}/task/${task}/stat`, 'utf8');
        state = t.slice(t.lastIndexOf(')') + 2, t.lastIndexOf(')') + 3);
      } catch {
        continue;
      }
      if (!'TtZX'.includes(state)) return false;
    }
  }
  return true;
}

interface Writer {
  role: string;
  child: ChildProcess;
  ledger: string;
  ready: boolean;
  stderr: string;
  exit: Promise<void>;
}

function startWriter(role: string, dir: string, ledger: string): Writer {
  const child = spawn(process.execPath, [WRITER, role, dir, ledger], {
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const writer: Writer = {
    role,
    child,
    ledger,
    ready: false,
    stderr: '',
    exit: new Promise((resolve) => child.once('exit', () => resolve())),
  };
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (writer.ready ||= chunk.includes('ready\n')));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (writer.stderr += chunk));
  return writer;
}

/** What every cut must find acknowledged before its random moment: each enqueue path, a completion and a fail. */
const KINDS: readonly string[] = [
  ...PATHS.map((p) => `"path":"${p}"`),
  '"op":"complete"',
  '"durable":"all"',
  '"op":"fail"',
];

/**
 * Whether the writers' ledgers hold every kind yet; reads only what was appended since the last
 * look (`seen`: kinds found, and how far each ledger was read), as a batch ledger grows by megabytes.
 */
function everyKindAcknowledged(
  kinds: readonly string[],
  ledgers: readonly string[],
  seen: { kinds: Set<string>; read: Map<string, number> },
): boolean {
  for (const file of ledgers) {
    const size = fs.statSync(file, { throwIfNoEntry: false })?.size ?? 0;
    const from = seen.read.get(file) ?? 0;
    if (size <= from) continue;
    const buffer = Buffer.alloc(size - from);
    const fd = fs.openSync(file, 'r');
    try {
      fs.readSync(fd, buffer, 0, buffer.length, from);
    } finally {
      fs.closeSync(fd);
    }
    const text = buffer.toString('utf8');
    const end = text.lastIndexOf('\n') + 1; // whole lines only: a kind is never split across two looks
    for (const kind of kinds) if (text.slice(0, end).includes(kind)) seen.kinds.add(kind);
    seen.read.set(file, from + Buffer.byteLength(text.slice(0, end)));
  }
  return seen.kinds.size === kinds.length;
}

function signalGroup(writer: Writer, signal: NodeJS.Signals): void {
  if (writer.child.pid !== undefined) killQuietly(-writer.child.pid, signal);
}

export interface CutOptions {
  /** The freeze comes at a random moment up to this many ms after every kind of operation was acknowledged once. */
  spreadMs?: number;
  /** Keep the copy and the ledgers of a cut that broke a promise, under this directory. */
  keepFailedIn?: string;
}

/**
 * One run of power cuts: holds writeback back from start() to close(),
 * makes one template image per filesystem and copies it for each cut.
 */
export class PowerRig {
  readonly images: string;
  readonly ledgers: string;
  #record: RunRecord;
  #templates = new Map<FsName, string>();
  #cuts = 0;
  #writers = new Set<Writer>();

  private constructor(images: string, ledgers: string) {
    this.images = images;
    this.ledgers = ledgers;
    this.#record = { pid: process.pid, start: startTime(process.pid) ?? '', dirs: [images, ledgers] };
  }

  /**
   * Start a run: undo what an earlier run that died left, record this one,
   * hold writeback back. Throws, saying what is missing, when cuts cannot be made here.
   */
  static async start(filesystems: readonly FsName[]): Promise<PowerRig> {
    const missing = missingRequirements(filesystems);
    if (missing.length > 0) throw new Error(`power cuts cannot run here: ${missing.join('; ')}`);
    fs.mkdirSync(RUNS, { recursive: true });
    await undoDeadRuns();
    const rig = new PowerRig(
      fs.mkdtempSync(path.join(imageRoot(), 'dirq-power-')),
      fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-power-ledgers-')),
    );
    fs.writeFileSync(path.join(RUNS, String(process.pid)), `${JSON.stringify(rig.#record)}\n`);
    try {
      holdWriteback();
    } catch (error) {
      await rig.close();
      throw error;
    }
    return rig;
  }

  /** Undo everything this run did: writers, mounts, loop devices, images, and (if no other run is live) the sysctls. */
  async close(): Promise<void> {
    for (const writer of this.#writers) signalGroup(writer, 'SIGKILL');
    await Promise.all([...this.#writers].map((w) => w.exit));
    await dismantle(this.#record.dirs);
    fs.rmSync(path.join(RUNS, String(process.pid)), { force: true });
    if (liveRuns().length === 0) restoreWriteback();
  }

  /** Cut the power once on `fsName` and check the queue on what the disk held. */
  async cut(fsName: FsName, options: CutOptions = {}): Promise<CutResult> {
    const template = await this.#template(fsName);
    const k = ++this.#cuts;
    const image = path.join(this.images, `${fsName}-${k}.img`);
    const copy = `${image}.cut`;
    const mnt = path.join(this.images, `mnt-${k}`);
    const ledgerDir = path.join(this.ledgers, `${fsName}-${k}`);
    fs.mkdirSync(mnt);
    fs.mkdirSync(ledgerDir);
    await must('cp', ['--sparse=always', template, image]);
    const dev = await attach(image);
    const writers: Writer[] = [];
    let moment: number;
    let copies: number;
    try {
      const mounted = await mount(fsName, dev, mnt);
      if (mounted.code !== 0) throw new Error(`mounting ${image}: ${mounted.stderr.trim()}`);
      for (const [i, role] of ROLES.entries()) {
        const writer = startWriter(role, path.join(mnt, 'q'), path.join(ledgerDir, `${role}-${i}.jsonl`));
        writers.push(writer);
        this.#writers.add(writer);
      }
      const early = (): Writer | undefined =>
        writers.find((w) => w.child.exitCode !== null || w.child.signalCode !== null);
      const seen = { kinds: new Set<string>(), read: new Map<string, number>() };
      await until(
        () => {
          const dead = early();
          if (dead !== undefined)
            throw new Error(`the ${dead.role} writer exited before the cut: ${dead.stderr.trim()}`);
          return (
            writers.every((w) => w.ready) &&
            everyKindAcknowledged(
              KINDS,
              writers.map((w) => w.ledger),
              seen,
            )
          );
        },
        'every kind of operation to be acknowledged once',
        60_000,
      );
      moment = Math.round(Math.random() * (options.spreadMs ?? 1500));
      await sleep(moment); // the random moment of the cut: time is what this waits for
      const dead = early();
      if (dead !== undefined) throw new Error(`the ${dead.role} writer exited before the cut: ${dead.stderr.trim()}`);
      for (const writer of writers) signalGroup(writer, 'SIGSTOP');
      const groups = new Set(writers.map((w) => w.child.pid!));
      await until(() => allStopped(groups), 'every writer thread to stop', 30_000);
      copies = await copyStill(dev, image, copy);
    } finally {
      for (const writer of writers) signalGroup(writer, 'SIGKILL');
      await Promise.all(writers.map((w) => w.exit));
      for (const writer of writers) this.#writers.delete(writer);
      await run('umount', [mnt]);
      await detach(dev);
      fs.rmSync(image, { force: true });
    }
    const result = await this.#boot(fsName, copy, mnt, async (dir) =>
      checkQueue(dir, readLedgers(writers.map((w) => w.ledger))),
    );
    const cut: CutResult = { fs: fsName, moment, copies, ...result };
    const broken = cut.verdict.lost.length + cut.verdict.twoStates.length + cut.verdict.problems.length > 0;
    if (broken && options.keepFailedIn !== undefined) {
      const kept = fs.mkdtempSync(path.join(options.keepFailedIn, `dirq-power-${fsName}-`));
      fs.cpSync(ledgerDir, kept, { recursive: true });
      await must('cp', ['--sparse=always', copy, path.join(kept, 'cut.img')]);
      fs.writeFileSync(path.join(kept, 'verdict.json'), `${JSON.stringify(cut, null, 2)}\n`);
      cut.kept = kept;
    }
    fs.rmSync(copy, { force: true });
    fs.rmSync(ledgerDir, { recursive: true, force: true });
    fs.rmdirSync(mnt);
    return cut;
  }

  /**
   * Bring the copy up as a boot would, run `check` on its queue, and take it
   * down again: mount (journal or log replay), unmount, the filesystem's own
   * read-only check, its repair only when that found damage, mount, check.
   */
  async #boot(
    fsName: FsName,
    copy: string,
    mnt: string,
    check: (dir: string) => Promise<QueueVerdict>,
  ): Promise<{ fsck: string; verdict: QueueVerdict }> {
    const spec = SPECS[fsName];
    const dev = await attach(copy);
    try {
      const notes: string[] = [];
      let replay = await mount(fsName, dev, mnt);
      if (replay.code !== 0) {
        const [cmd, args] = spec.unjam(dev);
        notes.push(
          `would not mount (${replay.stderr.trim()}); ${cmd} ${args.join(' ')} exited ${(await run(cmd, args)).code}`,
        );
        replay = await mount(fsName, dev, mnt);
        if (replay.code !== 0)
          throw new Error(`the cut ${fsName} copy ${copy} does not mount even after ${cmd}: ${replay.stderr.trim()}`);
      }
      await must('umount', [mnt]);
      const [cmd, args] = spec.check(dev);
      const checked = await run(cmd, args);
      if (checked.code !== 0) {
        const [rcmd, rargs] = spec.repair(dev);
        const repaired = await run(rcmd, rargs);
        notes.push(
          `${cmd} ${args[0]} found damage (exit ${checked.code}); ${rcmd} ${rargs.slice(0, -1).join(' ')} exited ${repaired.code}`,
        );
      }
      const up = await mount(fsName, dev, mnt);
      if (up.code !== 0) throw new Error(`mounting the checked ${fsName} copy ${copy}: ${up.stderr.trim()}`);
      try {
        return { fsck: notes.length === 0 ? 'clean' : notes.join('; '), verdict: await check(path.join(mnt, 'q')) };
      } finally {
        await must('umount', [mnt]);
      }
    } finally {
      await detach(dev);
    }
  }

  /** The image every cut of `fsName` starts from: a fresh filesystem holding an empty queue. */
  async #template(fsName: FsName): Promise<string> {
    const made = this.#templates.get(fsName);
    if (made !== undefined) return made;
    const spec = SPECS[fsName];
    const image = path.join(this.images, `template-${fsName}.img`);
    await must('truncate', ['-s', `${spec.mib}M`, image]);
    const [cmd, args] = spec.mkfs(image);
    await must(cmd, args);
    const mnt = path.join(this.images, `mnt-template-${fsName}`);
    fs.mkdirSync(mnt);
    const dev = await attach(image);
    try {
      const mounted = await mount(fsName, dev, mnt);
      if (mounted.code !== 0)
        throw new Error(`mounting a fresh ${fsName} image (is ${fsName} in this kernel?): ${mounted.stderr.trim()}`);
      try {
        await (await Queue.open(path.join(mnt, 'q'), { maintenance: false, watch: false })).close();
      } finally {
        await must('umount', [mnt]);
      }
    } finally {
      await detach(dev);
      fs.rmdirSync(mnt);
    }
    this.#templates.set(fsName, image);
    return image;
  }
}

/**
 * Copy the loop device's backing file while its writers are stopped, until
 * a copy is taken during which the device completed nothing: returns how many
 * copies that took.
 */
async function copyStill(dev: string, image: string, copy: string): Promise<number> {
  for (let copies = 1; copies <= 50; copies++) {
    await until(() => deviceState(dev).inFlight === 0, `${dev} to finish its requests in flight`, 30_000);
    const before = deviceState(dev).moved;
    await must('cp', ['--sparse=always', image, copy]);
    const after = deviceState(dev);
    if (after.moved === before && after.inFlight === 0) return copies;
  }
  throw new Error(`${dev} kept completing writes with every writer stopped: 50 copies, none of one instant`);
}

/**
 * Images live in memory when there is room: loop I/O on a tmpfs file costs
 * no disk, so a cut's fsyncs are as fast as the filesystem under test lets
 * them be. The copy of what the loop device holds is exact either way.
 */
function imageRoot(): string {
  try {
    const s = fs.statfsSync('/dev/shm');
    if (s.bavail * s.bsize >= 4 * 1024 ** 3) return '/dev/shm';
  } catch {
    // no /dev/shm
  }
  return os.tmpdir();
}
