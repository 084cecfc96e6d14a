// bench/nfs.js: many hosts, one directory, simulated (NFS.md quotes these numbers).
//
// Goal (issue 6): what polling costs in latency and throughput when hosts share the queue
// through a network-like filesystem, at pollInterval 100 ms, 500 ms and 2 s.
//
// Setup: one queue directory on the project's filesystem (BENCH_DIR to override), seen
// through two bindfs (FUSE) mounts, as two NFS clients would see it: no inotify across
// mounts; lookups and attributes cached for 2 s (-o attr_timeout=2,entry_timeout=2, the
// tests' setting, like NFS's default actimeo range) or not at all (=0, like actimeo=0).
// One process plays both hosts (the mounts are what differs); durable: false.
//
// Cases:
//   latency, mount A -> pool on mount B     one job at a time into an idle pool (poll-only,
//                                            the 'auto' default there), enqueued at a random
//                                            moment; enqueue-to-start, p50 / p90 / max
//   drain, two pools (one per mount)        5,000 no-op jobs enqueued through mount A, then
//                                            a pool on each mount (1 thread x 16) drains them
//   floors                                  a local drain (one pool, inotify) and the raw
//                                            rename through a mount, for scale
//
// Needs root, /dev/fuse and bindfs (apt-get install bindfs); prints why and exits 0 without.
// Run: npm run build && node bench/nfs.js     (BENCH_QUICK=1 for fewer samples)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool, Queue } from '../dist/index.js';

const quick = process.env.BENCH_QUICK === '1';
const base = process.env.BENCH_DIR ?? os.tmpdir();
const POLLS = [100, 500, 2000];
const DRAIN = quick ? 2000 : 5000;
const processorUrl = new URL('./processors/stamp.js', import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();
/** @type {(ms: number) => Promise<void>} */
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
/** @type {string[]} */
const mounts = [];
const fusermount = ['fusermount', 'fusermount3'].find(has);

function missing() {
  if (process.getuid?.() !== 0) return 'root';
  if (!fs.existsSync('/dev/fuse')) return '/dev/fuse';
  if (!has('bindfs')) return 'bindfs';
  if (fusermount === undefined) return 'fusermount';
  return undefined;
}

/** @param {string} tool */
function has(tool) {
  return spawnSync('sh', ['-c', `command -v ${tool}`]).status === 0;
}

/**
 * Mount `source` through bindfs on a fresh temp directory, with lookups and attributes cached `cache` s.
 * @param {string} source
 * @param {number} cache
 */
function mount(source, cache) {
  const point = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-bench-mnt-'));
  const r = spawnSync('bindfs', ['-o', `attr_timeout=${cache},entry_timeout=${cache}`, source, point]);
  if (r.status !== 0) throw new Error(`bindfs failed: ${r.stderr.toString()}`);
  mounts.push(point);
  return point;
}

function unmountAll() {
  // main() runs only with fusermount found (missing() checks it), and only main() mounts
  const unmount = /** @type {string} */ (fusermount);
  for (const point of mounts.splice(0)) {
    if (spawnSync(unmount, ['-u', point]).status !== 0) spawnSync(unmount, ['-u', '-z', point]);
    fs.rmSync(point, { recursive: true, force: true });
  }
}

async function sharedQueue() {
  const dir = fs.mkdtempSync(path.join(base, 'dirq-bench-nfs-'));
  await (await Queue.open(dir, { durable: false, maintenance: false })).close();
  return dir;
}

/**
 * Nearest-rank percentile of ascending `sorted`, p in 0..100.
 * @param {number[]} sorted
 * @param {number} p
 */
function percentile(sorted, p) {
  return /** @type {number} */ (sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]);
}

/**
 * @param {number} poll
 * @param {number} cache
 */
async function latency(poll, cache) {
  const dir = await sharedQueue();
  const [a, b] = [mount(dir, cache), mount(dir, cache)];
  const producer = await Queue.open(a, { durable: false, maintenance: false, watch: false });
  /** @type {Map<string, (startedAt: number) => void>} */
  const started = new Map();
  const pool = new Pool(b, { processor: processorUrl, durable: false, watch: false, pollInterval: poll });
  pool.on('completed', (job, result) => started.get(job.id)?.(/** @type {number} */ (result)));
  await pool.start();
  await pool.onIdle();
  /** @type {number[]} */
  const samples = [];
  const count = Math.round((quick ? 0.5 : 1) * (poll <= 100 ? 40 : poll <= 500 ? 24 : 16));
  for (let i = 0; i < count + 2; i++) {
    await pool.onIdle();
    await sleep(Math.random() * Math.max(poll, 2000)); // a random moment against the poll and the caches
    const t0 = now();
    const { id } = await producer.enqueue('ping', null);
    const startedAt = await new Promise(
      /** @param {(startedAt: number) => void} resolve */ (resolve) => started.set(id, resolve),
    );
    started.delete(id);
    if (i >= 2) samples.push(startedAt - t0);
  }
  await pool.close();
  await producer.close();
  unmountAll();
  fs.rmSync(dir, { recursive: true, force: true });
  samples.sort((x, y) => x - y);
  return {
    p50: percentile(samples, 50),
    p90: percentile(samples, 90),
    max: /** @type {number} */ (samples.at(-1)),
    n: samples.length,
  };
}

/**
 * @param {number} poll
 * @param {number} cache
 */
async function drain(poll, cache) {
  const dir = await sharedQueue();
  const [a, b] = [mount(dir, cache), mount(dir, cache)];
  const producer = await Queue.open(a, { durable: false, maintenance: false, watch: false });
  for (let i = 0; i < DRAIN; i += 1000)
    await producer.enqueueMany(Array.from({ length: 1000 }, (_, j) => ({ type: 'noop', data: i + j })));
  await producer.close();
  const pools = [a, b].map(
    (m) =>
      new Pool(m, {
        processor: processorUrl,
        threads: 1,
        concurrency: 16,
        durable: false,
        watch: false,
        pollInterval: poll,
      }),
  );
  const t0 = now();
  await Promise.all(pools.map((p) => p.start()));
  while (fs.readdirSync(path.join(dir, 'done')).length < DRAIN) await sleep(5);
  const seconds = (now() - t0) / 1000;
  const split = pools.map((p) => p.counts.completed);
  await Promise.all(pools.map((p) => p.close()));
  unmountAll();
  fs.rmSync(dir, { recursive: true, force: true });
  return { rate: DRAIN / seconds, split };
}

async function localDrain() {
  const dir = await sharedQueue();
  const q = await Queue.open(dir, { durable: false, maintenance: false });
  await q.enqueueMany(Array.from({ length: DRAIN }, (_, i) => ({ type: 'noop', data: i })));
  await q.close();
  const pool = new Pool(dir, { processor: processorUrl, threads: 1, concurrency: 16, durable: false, watch: true });
  const t0 = now();
  await pool.start();
  await pool.onIdle();
  const rate = DRAIN / ((now() - t0) / 1000);
  await pool.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return rate;
}

/** @param {number} cache */
async function renameFloor(cache) {
  const dir = await sharedQueue();
  const m = mount(dir, cache);
  const n = 3000;
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, 'tmp', String(i)), '{}\n');
  const t0 = now();
  for (let i = 0; i < n; i++) fs.renameSync(path.join(m, 'tmp', String(i)), path.join(m, 'done', String(i)));
  const us = ((now() - t0) * 1000) / n;
  unmountAll();
  fs.rmSync(dir, { recursive: true, force: true });
  return us;
}

async function main() {
  const lack = missing();
  if (lack !== undefined) {
    console.log(`# bench/nfs.js skipped: needs ${lack} (root, /dev/fuse, apt-get install bindfs)`);
    return;
  }
  const nodeLine = `Node ${process.version}, ${os.cpus().length} CPUs`;
  console.log(
    `# bench/nfs.js on ${base} through bindfs ${spawnSync('bindfs', ['--version'], { encoding: 'utf8' }).stdout.trim()} (${quick ? 'quick' : 'full'} run), ${nodeLine}`,
  );
  console.log(
    `floor: rename through a mount ${(await renameFloor(2)).toFixed(1)} us/op (cached), ${(await renameFloor(0)).toFixed(1)} us/op (uncached)`,
  );
  console.log(
    `floor: local drain, one pool with inotify: ${Math.round(await localDrain()).toLocaleString('en')} jobs/s\n`,
  );

  console.log('enqueue on mount A -> start on mount B (ms)     poll    p50     p90     max   samples');
  for (const cache of [2, 0]) {
    for (const poll of POLLS) {
      const r = await latency(poll, cache);
      const label = `  caches ${cache === 2 ? '2 s (attr/entry_timeout=2)' : 'off (=0)'}`.padEnd(45);
      console.log(
        `${label}${String(poll).padStart(6)}  ${r.p50.toFixed(0).padStart(6)}  ${r.p90.toFixed(0).padStart(6)}  ${r.max.toFixed(0).padStart(6)}  ${String(r.n).padStart(7)}`,
      );
    }
  }

  console.log(
    `\n${`drain of ${DRAIN.toLocaleString('en')} no-op jobs by two pools, one per mount`.padEnd(71)}poll  jobs/s   jobs run by pool A / B`,
  );
  for (const poll of POLLS) {
    const r = await drain(poll, 2);
    console.log(
      `  caches 2 s${''.padEnd(57)}${String(poll).padStart(6)}  ${Math.round(r.rate).toLocaleString('en').padStart(6)}   ${r.split.join(' / ')}`,
    );
  }
}

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    unmountAll();
    process.exit(130);
  });
}
try {
  await main();
} finally {
  unmountAll();
}
