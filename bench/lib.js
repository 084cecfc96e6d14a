/**
 * Helpers shared by the benchmarks in bench/: temp directories on a chosen
 * filesystem, the raw filesystem floors (what a minimal hand-written program
 * does with the same syscalls, no library), statistics and the result table.
 *
 * Not a benchmark itself; imported by bench/core.js. Plain ESM JavaScript so
 * that the scripts run with `node bench/x.js` after `npx tsc -p tsconfig.json`;
 * typed with JSDoc, which `npm run typecheck` checks (checkJs), as it does every
 * bench/ script.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const { O_CREAT, O_EXCL, O_WRONLY, O_RDONLY, O_APPEND } = fs.constants;

// ---------------------------------------------------------------- filesystems

const FS_MAGIC = new Map([
  [0xef53, 'ext2/3/4'],
  [0x01021994, 'tmpfs'],
  [0x6969, 'nfs'],
  [0x58465342, 'xfs'],
  [0x9123683e, 'btrfs'],
  [0x794c7630, 'overlayfs'],
]);

/**
 * The filesystem type of `dir`, as statfs(2) reports it.
 * @param {string} dir
 * @returns {string}
 */
export function fsTypeOf(dir) {
  try {
    const type = fs.statfsSync(dir).type;
    return FS_MAGIC.get(type) ?? `0x${type.toString(16)}`;
  } catch {
    return 'unknown';
  }
}

/** @typedef {{ mountPoint: string, fstype: string | undefined, source: string | undefined }} Mount */

/**
 * The mount that holds `dir`, from /proc/self/mountinfo: { mountPoint, fstype, source }.
 * @param {string} dir
 * @returns {Mount | undefined}
 */
export function mountOf(dir) {
  /** @type {Mount | undefined} */
  let best;
  try {
    const real = fs.realpathSync(dir);
    for (const line of fs.readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
      const f = line.split(' ');
      const sep = f.indexOf('-');
      if (sep < 0) continue;
      const mountPoint = /** @type {string} */ (f[4]).replace(/\\040/g, ' ');
      const inside = real === mountPoint || real.startsWith(mountPoint === '/' ? '/' : `${mountPoint}/`);
      if (inside && (best === undefined || mountPoint.length >= best.mountPoint.length)) {
        best = { mountPoint, fstype: f[sep + 1], source: f[sep + 2] };
      }
    }
  } catch {
    // not Linux, or no /proc: statfs alone names the filesystem
  }
  return best;
}

/**
 * How `dir`'s filesystem is set up, as far as it matters here: its type, and
 * for ext4 whether it has a journal. Without one, ext4 skips inodes freed in
 * the last vm.dirtytime_expire_seconds (12 h) when it allocates (fs/ext4/
 * ialloc.c, recently_deleted), so each create scans past every recently
 * deleted inode: creation slows as files are deleted, run after run.
 * @param {string} dir
 * @returns {{ type: string, journal: boolean | undefined, label: string }}
 */
export function describeFs(dir) {
  const m = mountOf(dir);
  const type = m?.fstype ?? fsTypeOf(dir);
  const source = m?.source;
  /** @type {boolean | undefined} */
  let journal;
  if (type === 'ext4' && source?.startsWith('/dev/') === true && fs.existsSync('/proc/fs/jbd2')) {
    journal = fs.readdirSync('/proc/fs/jbd2').some((d) => d.startsWith(`${path.basename(source)}-`));
  }
  return { type, journal, label: `${type}${journal === false ? ' without a journal' : ''}` };
}

/** @typedef {{ key: 'disk' | 'tmpfs', base: string, label: string, noJournal: boolean }} BenchFs */

/**
 * The filesystems to measure: the project's own (os.tmpdir(), on the same
 * ext4 device as /work here; DIRQUEUE_BENCH_DIR overrides) and tmpfs
 * (/dev/shm), where only CPU counts.
 * @returns {BenchFs[]}
 */
export function benchFilesystems() {
  const disk = process.env.DIRQUEUE_BENCH_DIR ?? os.tmpdir();
  const d = describeFs(disk);
  /** @type {BenchFs[]} */
  const out = [{ key: 'disk', base: disk, label: `${d.label} (${disk})`, noJournal: d.journal === false }];
  if (fs.existsSync('/dev/shm') && fsTypeOf('/dev/shm') === 'tmpfs') {
    out.push({ key: 'tmpfs', base: '/dev/shm', label: 'tmpfs (/dev/shm)', noJournal: false });
  }
  return out;
}

/**
 * A fresh directory under `base` for one benchmark run. `rm(dir)` clears a
 * case's directory; with `deferDelete` it only renames it into trash/ (one
 * cheap rename) and the files are deleted by the final `rm()`: on ext4
 * without a journal, deleting between cases would slow the creations of the
 * next cases (see describeFs), and the run would measure its own debris.
 * @param {string} base
 * @param {{ prefix?: string, deferDelete?: boolean }} [options]
 */
export function makeRoot(base, { prefix = 'dirqueue-bench-', deferDelete = false } = {}) {
  const root = fs.mkdtempSync(path.join(base, prefix));
  const trash = path.join(root, 'trash');
  fs.mkdirSync(trash);
  let trashed = 0;
  return {
    root,
    /**
     * A fresh sub-directory for one case or repetition.
     * @param {string} name
     */
    sub(name) {
      return fs.mkdtempSync(path.join(root, `${name}-`));
    },
    /**
     * Clear one case's directory, or, without an argument, the whole run's.
     * @param {string} [dir]
     */
    rm(dir) {
      if (dir === undefined) fs.rmSync(root, { recursive: true, force: true });
      else if (deferDelete) fs.renameSync(dir, path.join(trash, String(trashed++)));
      else fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------- job-shaped data

/** The payload every case enqueues: a small object, like a mail job. */
export const payload = (/** @type {number} */ n) => ({
  n,
  to: 'someone@example.com',
  subject: 'Your order has shipped',
});

/** The envelope line a job file holds (FORMAT.md): same size as the library writes. */
export const envelopeLine = (/** @type {string} */ type, /** @type {number} */ n) =>
  `${JSON.stringify({ type, data: payload(n), created: new Date().toISOString() })}\n`;

const RAW_NONCE = 'r4wfl0';
let rawClock = Math.floor(Date.now() * 1000);
/** A job id shaped like the library's: PP-TTTTTTTTTTTTTTTT-UNIQUE.TYPE. */
export const rawId = (/** @type {string} */ type) => `50-${String(++rawClock).padStart(16, '0')}-${RAW_NONCE}.${type}`;
const RAW_OWNER = `benchhost.${process.pid}.${RAW_NONCE}`;

/** @typedef {{ tmp: string, queue: string, active: string, done: string }} RawLayout */

/**
 * queue/, tmp/, active/, done/ under `dir`, like a queue's layout.
 * @param {string} dir
 * @returns {RawLayout}
 */
export function rawLayout(dir) {
  const p = { tmp: `${dir}/tmp`, queue: `${dir}/queue`, active: `${dir}/active`, done: `${dir}/done` };
  for (const d of Object.values(p)) fs.mkdirSync(d, { recursive: true });
  return p;
}

// ---------------------------------------------------------------- raw floors

/**
 * Create tmp/ID.OWNER.tmp exclusively and write job `k`'s envelope line; returns its id, path and open descriptor.
 * @param {RawLayout} layout
 * @param {string} type
 * @param {number} k
 */
function createRaw(layout, type, k) {
  const id = rawId(type);
  const tmp = `${layout.tmp}/${id}.${RAW_OWNER}.tmp`;
  const fd = fs.openSync(tmp, O_CREAT | O_EXCL | O_WRONLY, 0o666);
  fs.writeSync(fd, envelopeLine(type, k));
  return { id, tmp, fd };
}

/**
 * fsync a directory: open, fsync, close.
 * @param {string} dir
 */
function fsyncDir(dir) {
  const dfd = fs.openSync(dir, O_RDONLY);
  fs.fsyncSync(dfd);
  fs.closeSync(dfd);
}

/**
 * Floor A: a plain loop of open(O_CREAT|O_EXCL|O_WRONLY) + write + close +
 * rename of one envelope line from tmp/ to queue/. With `durable`, also
 * fdatasync the file before the rename and fsync queue/ after it (FORMAT.md,
 * "Enqueueing without the library"), all synchronous.
 * Returns { ms, lat (per-op ms), ids }.
 * @param {RawLayout} layout
 * @param {number} n
 * @param {{ durable?: boolean, type?: string }} [options]
 */
export function floorCreate(layout, n, { durable = false, type = 'bench' } = {}) {
  const lat = new Float64Array(n);
  /** @type {string[]} */
  const ids = new Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const { id, tmp, fd } = createRaw(layout, type, i);
    if (durable) fs.fdatasyncSync(fd);
    fs.closeSync(fd);
    fs.renameSync(tmp, `${layout.queue}/${id}`);
    if (durable) fsyncDir(layout.queue);
    ids[i] = id;
    lat[i] = performance.now() - t0;
  }
  return { ms: performance.now() - start, lat, ids };
}

/** @type {(fd: number) => Promise<void>} */
const fdatasync = (fd) => new Promise((resolve, reject) => fs.fdatasync(fd, (e) => (e ? reject(e) : resolve())));
/** @type {(fd: number) => Promise<void>} */
const fsyncAsync = (fd) => new Promise((resolve, reject) => fs.fsync(fd, (e) => (e ? reject(e) : resolve())));

/**
 * Floor A, bulk and durable: create and write every file (sync); every 128
 * files start their fdatasyncs together (fs.fdatasync, libuv's pool) and the
 * next 128 are written meanwhile (at most two chunks syncing); then rename them
 * all and fsync queue/ once. The best a hand-written bulk enqueuer does here:
 * concurrent fdatasyncs merge in the block layer, best when started in
 * bursts (src/store/files.ts, SYNC_CHUNK, has the measurements).
 * @param {RawLayout} layout
 * @param {number} n
 * @param {{ type?: string, chunk?: number, syncfs?: boolean }} [options]
 * @returns {Promise<{ ms: number }>}
 */
export async function floorCreateBulkDurable(layout, n, { type = 'bench', chunk = 128, syncfs = false } = {}) {
  if (syncfs) return floorCreateBulkSyncfs(layout, n, type);
  const start = performance.now();
  /** @type {{ id: string, tmp: string }[]} */
  const files = [];
  /** @type {Promise<void[]>[]} */
  const syncing = []; // per chunk, its fdatasyncs
  for (let i = 0; i < n; i += chunk) {
    if (syncing.length === 2) await syncing.shift(); // the chunk before the previous one has synced
    /** @type {number[]} */
    const fds = [];
    for (let k = i; k < Math.min(n, i + chunk); k++) {
      const { id, tmp, fd } = createRaw(layout, type, k);
      fds.push(fd);
      files.push({ id, tmp });
    }
    syncing.push(Promise.all(fds.map((fd) => fdatasync(fd).then(() => fs.closeSync(fd)))));
  }
  await Promise.all(syncing);
  for (const { id, tmp } of files) fs.renameSync(tmp, `${layout.queue}/${id}`);
  fsyncDir(layout.queue);
  return { ms: performance.now() - start };
}

/**
 * Floor A, bulk and durable by one syncfs: create, write and close every
 * file, `sync -f tmp/` (syncfs of the filesystem), rename them all, fsync
 * queue/ once. The floor of enqueueMany with batchSync 'auto' (src/store/syncfs.ts).
 * @param {RawLayout} layout
 * @param {number} n
 * @param {string} type
 * @returns {Promise<{ ms: number }>}
 */
async function floorCreateBulkSyncfs(layout, n, type) {
  const start = performance.now();
  /** @type {{ id: string, tmp: string }[]} */
  const files = [];
  for (let k = 0; k < n; k++) {
    const { id, tmp, fd } = createRaw(layout, type, k);
    fs.closeSync(fd);
    files.push({ id, tmp });
  }
  await /** @type {Promise<void>} */ (
    new Promise((resolve, reject) =>
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors -- execFile's error is an Error; its type, ExecFileException, is an Omit<> the rule does not recognise as one
      execFile('sync', ['-f', '--', layout.tmp], (e) => (e ? reject(e) : resolve())),
    )
  );
  for (const { id, tmp } of files) fs.renameSync(tmp, `${layout.queue}/${id}`);
  fsyncDir(layout.queue);
  return { ms: performance.now() - start };
}

/**
 * Floor A+fsync with `callers` concurrent writers, for durable enqueues by
 * many callers: each loops create+write, fdatasync, close, rename, then
 * waits for an fsync of queue/ that started after its rename; waiting
 * callers share one (group commit: one running, the next one joined by all
 * who arrive meanwhile). Per caller an fsync of its own measured slower here.
 * @param {RawLayout} layout
 * @param {number} n
 * @param {number} callers
 * @param {{ type?: string }} [options]
 */
export async function floorCreateConcurrentDurable(layout, n, callers, { type = 'bench' } = {}) {
  const dfd = fs.openSync(layout.queue, O_RDONLY);
  let running = Promise.resolve();
  /** @type {Promise<void> | undefined} */
  let next; // the fsync that starts when `running` ends, shared by whoever asks before then
  const dirSync = () => {
    if (next === undefined) {
      next = running.then(() => {
        next = undefined;
        return fsyncAsync(dfd);
      });
      running = next;
    }
    return next;
  };
  const lat = new Float64Array(n);
  let taken = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let i = taken++; i < n; i = taken++) {
        const t0 = performance.now();
        const { id, tmp, fd } = createRaw(layout, type, i);
        await fdatasync(fd);
        fs.closeSync(fd);
        fs.renameSync(tmp, `${layout.queue}/${id}`);
        await dirSync();
        lat[i] = performance.now() - t0;
      }
    }),
  );
  const ms = performance.now() - start;
  fs.closeSync(dfd);
  return { ms, lat };
}

/**
 * Floor B: a renameSync loop of existing files, queue/ID -> active/ID@CLAIM.
 * @param {Pick<RawLayout, 'queue' | 'active'>} layout
 * @param {string[]} ids
 */
export function floorRename(layout, ids) {
  const n = ids.length;
  const lat = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const id = /** @type {string} */ (ids[i]);
    fs.renameSync(`${layout.queue}/${id}`, `${layout.active}/${id}@${RAW_OWNER}.${i.toString(36)}`);
    lat[i] = performance.now() - t0;
  }
  return { ms: performance.now() - start, lat };
}

/**
 * Floor C, the drain floor: per job the syscalls a claim and a completion
 * cannot avoid: rename queue/ -> active/, open + fstat + read + close, open
 * (O_APPEND) + write of a result line + close, rename active/ -> done/.
 * @param {RawLayout} layout
 * @param {string[]} ids
 */
export function floorDrain(layout, ids) {
  const n = ids.length;
  const lat = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    const id = /** @type {string} */ (ids[i]);
    const active = `${layout.active}/${id}@${RAW_OWNER}.${i.toString(36)}`;
    fs.renameSync(`${layout.queue}/${id}`, active);
    const fd = fs.openSync(active, O_RDONLY);
    const size = fs.fstatSync(fd).size;
    const buf = Buffer.allocUnsafe(size);
    fs.readSync(fd, buf, 0, size, 0);
    fs.closeSync(fd);
    JSON.parse(buf.toString('utf8', 0, buf.indexOf(10)));
    const afd = fs.openSync(active, O_WRONLY | O_APPEND);
    fs.writeSync(
      afd,
      `${JSON.stringify({ event: 'result', at: new Date().toISOString(), attempt: 1, claim: RAW_OWNER })}\n`,
    );
    fs.closeSync(afd);
    fs.renameSync(active, `${layout.done}/${id}`);
    lat[i] = performance.now() - t0;
  }
  return { ms: performance.now() - start, lat };
}

// ---------------------------------------------------------------- statistics

/**
 * The median of `values`, NaN when there are none.
 * @param {Iterable<number>} values
 * @returns {number}
 */
export function median(values) {
  const s = [...values].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const mid = s.length >> 1;
  const at = (/** @type {number} */ i) => /** @type {number} */ (s[i]);
  return s.length % 2 ? at(mid) : (at(mid - 1) + at(mid)) / 2;
}

/**
 * Nearest-rank percentile of `values` (ms), p in 0..100; NaN when there are none.
 * @param {Iterable<number>} values
 * @param {number} p
 * @returns {number}
 */
export function percentile(values, p) {
  const s = Float64Array.from(values).sort();
  if (s.length === 0) return NaN;
  return /** @type {number} */ (s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]);
}

/**
 * Concatenate per-repetition latency arrays.
 * @param {Iterable<Iterable<number>>} latArrays
 */
export function pool(latArrays) {
  /** @type {number[]} */
  const out = [];
  for (const a of latArrays) for (const v of a) out.push(v);
  return out;
}

export const rate = (/** @type {number} */ n, /** @type {number} */ ms) => (n * 1000) / ms;

// ---------------------------------------------------------------- output

export const int = (/** @type {number} */ x) => (Number.isFinite(x) ? Math.round(x).toLocaleString('en-US') : '-');
export const fix = (/** @type {number} */ x, d = 1) => (Number.isFinite(x) ? x.toFixed(d) : '-');

/** @typedef {{ name: string, rate: number }} Floor */
/** @typedef {{ name: string, rate: number, p50: number, p99: number, floor: Floor | undefined, note: string }} Row */

/**
 * A result row: `rate` jobs/s (median of repetitions), `lat` per-op ms for
 * p50/p99 (optional), `floor` { name, rate } for the ratio (optional).
 * @param {string} name
 * @param {{ rate: number, lat?: Iterable<number>, floor?: Floor, note?: string }} measured
 * @returns {Row}
 */
export function row(name, { rate: r, lat, floor, note = '' }) {
  return {
    name,
    rate: r,
    p50: lat ? percentile(lat, 50) * 1000 : NaN,
    p99: lat ? percentile(lat, 99) * 1000 : NaN,
    floor,
    note,
  };
}

/** @param {Row[]} rows */
export function printTable(rows) {
  const head = ['case', 'jobs/s', 'us/job', 'p50 us', 'p99 us', 'floor', 'floor/s', 'ratio', ''];
  const body = rows.map((r) => [
    r.name,
    int(r.rate),
    fix(1e6 / r.rate),
    fix(r.p50),
    fix(r.p99),
    r.floor?.name ?? '',
    r.floor ? int(r.floor.rate) : '',
    r.floor ? fix(r.rate / r.floor.rate, 2) : '',
    r.note,
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => /** @type {string} */ (b[i]).length)));
  const left = new Set([0, 5, 8]);
  const width = (/** @type {number} */ i) => /** @type {number} */ (widths[i]);
  const fmt = (/** @type {string[]} */ cells) =>
    cells
      .map((c, i) => (left.has(i) ? c.padEnd(width(i)) : c.padStart(width(i))))
      .join('  ')
      .trimEnd();
  console.log(fmt(head));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const b of body) console.log(fmt(b));
}

/**
 * Run `fn` and report its wall time in ms.
 * @template T
 * @param {() => T | Promise<T>} fn
 * @returns {Promise<{ ms: number, value: T }>}
 */
export async function timed(fn) {
  const t0 = performance.now();
  const value = await fn();
  return { ms: performance.now() - t0, value };
}

/** Force a full collection (needs node --expose-gc) and read heapUsed. */
export function heapUsedAfterGc() {
  const gc = globalThis.gc;
  if (gc === undefined) throw new Error('heapUsedAfterGc needs node --expose-gc');
  for (let i = 0; i < 3; i++) gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Count renameSync calls that fail with ENOENT while `fn` runs: a claim
 * that lost the file (another claimer, or a stale index entry). Wraps the
 * shared `fs` object, which the library calls through.
 * @template T
 * @param {() => Promise<T>} fn
 * @returns {Promise<{ failed: number, value: T }>}
 */
export async function countFailedRenames(fn) {
  const original = fs.renameSync;
  let failed = 0;
  fs.renameSync = function renameSync(from, to) {
    try {
      original(from, to);
    } catch (error) {
      if (/** @type {NodeJS.ErrnoException} */ (error).code === 'ENOENT') failed++;
      throw error;
    }
  };
  try {
    const value = await fn();
    return { failed, value };
  } finally {
    fs.renameSync = original;
  }
}
