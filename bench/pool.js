// bench/pool.js: the worker pool, end to end.
//
// Goal (ARCHITECTURE.md, "Performance targets"): enqueue-to-start latency p50 <= 1 ms and p99 <= 5 ms with an
// idle pool, unchanged with 100,000 jobs of another type waiting; drain at or above
// BullMQ-on-Redis's 8.7k jobs/s (concurrency 50) on this machine.
//
// Cases:
//   latency, idle pool (inotify)           one job at a time: enqueue, wait for it to start
//   latency, 100,000 other jobs waiting    the same with a backlog of another type (types filter)
//   latency, poll-only (100 ms)            watch: false, pollInterval 100 ms (NFS mode)
//   drain 10,000 no-op jobs                1 and 2 threads (concurrency 16 each),
//                                          in-process function at concurrency 1 and 50
//   floor: rename loop                     the raw cost of moving a file, for scale
//   runners side by side                   threads, processes, --exec per job (/bin/true) and
//                                          --persistent (a Python line worker): drain rate,
//                                          enqueue-to-done latency, and memory per idle worker
//                                          (PSS from /proc/PID/smaps_rollup: shared pages split
//                                          between the processes that map them; a thread's is
//                                          the growth of this process's PSS per added thread)
//   autoscaling                            min 1, max 4 processes: time from a backlog of
//                                          slow jobs to 4 workers, and from idle to 1 again
// Settings: durable: false (compared with Redis without persistence); queue in a temp dir on
// the project's filesystem (BENCH_DIR to override, e.g. /dev/shm). Latency is measured from
// just before enqueue() to the first line of the processor, on one clock
// (performance.timeOrigin + performance.now(), shared by threads of one process); each
// job is enqueued 1-3 ms after the pool went idle, so it is found by an event or a poll.
//
// Run: npm run build && node bench/pool.js     (BENCH_QUICK=1 for a smaller run)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool, Queue } from '../dist/index.js';

const quick = process.env.BENCH_QUICK === '1';
const base = process.env.BENCH_DIR ?? os.tmpdir();
const LATENCY_SAMPLES = quick ? 200 : 1000;
const BACKLOG = quick ? 20_000 : 100_000;
const DRAIN = quick ? 3_000 : 10_000;
const processorUrl = new URL('./processors/stamp.js', import.meta.url).pathname;
const now = () => performance.timeOrigin + performance.now();

/** @param {string} name */
function tempQueueDir(name) {
  return fs.mkdtempSync(path.join(base, `dirq-bench-${name}-`));
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
 * @param {string} name
 * @param {{ backlog?: number, poll?: number }} [options]
 */
async function latency(name, { backlog = 0, poll } = {}) {
  const dir = tempQueueDir('lat');
  const q = await Queue.open(dir, { durable: false });
  for (let done = 0; done < backlog; done += 10_000) {
    await q.enqueueMany(Array.from({ length: Math.min(10_000, backlog - done) }, () => ({ type: 'other' })));
  }
  /** @type {Map<string, (startedAt: number) => void>} */
  const started = new Map();
  const pool = new Pool(dir, {
    processor: processorUrl,
    types: ['ping'],
    durable: false,
    ...(poll === undefined ? {} : { watch: false, pollInterval: poll }),
  });
  pool.on('completed', (job, result) => started.get(job.id)?.(/** @type {number} */ (result)));
  await pool.start();
  await pool.onIdle();
  /** @type {number[]} */
  const samples = [];
  const wanted = poll === undefined ? LATENCY_SAMPLES : 100; // each poll-only sample takes about a poll interval
  for (let i = 0; i < wanted + 20; i++) {
    await pool.onIdle(); // the pool has found nothing and waits: the job arrives at an idle pool
    await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 2));
    const t0 = now();
    const { id } = await q.enqueue('ping', null);
    const startedAt = await new Promise(
      /** @param {(startedAt: number) => void} resolve */ (resolve) => started.set(id, resolve),
    );
    started.delete(id);
    if (i >= 20) samples.push(startedAt - t0); // the first 20 warm up
  }
  await pool.close();
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  samples.sort((a, b) => a - b);
  return {
    name,
    p50: percentile(samples, 50),
    p99: percentile(samples, 99),
    max: /** @type {number} */ (samples.at(-1)),
  };
}

/**
 * @param {string} name
 * @param {Omit<import('../dist/index.js').PoolOptions, 'durable'>} poolOptions
 * @param {number} [jobs]
 */
async function drain(name, poolOptions, jobs = DRAIN) {
  const dir = tempQueueDir('drain');
  const q = await Queue.open(dir, { durable: false });
  await q.enqueueMany(Array.from({ length: jobs }, (_, i) => ({ type: 'noop', data: i })));
  const pool = new Pool(dir, { durable: false, ...poolOptions });
  await pool.start();
  const t0 = now();
  await pool.onIdle();
  const seconds = (now() - t0) / 1000;
  const completed = pool.counts.completed;
  await pool.close();
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (completed !== jobs) throw new Error(`${name}: completed ${completed} of ${jobs}`);
  return { name, rate: jobs / seconds };
}

function renameFloor() {
  const dir = tempQueueDir('floor');
  fs.mkdirSync(path.join(dir, 'a'));
  fs.mkdirSync(path.join(dir, 'b'));
  const n = 5000;
  for (let i = 0; i < n; i++) fs.writeFileSync(path.join(dir, 'a', String(i)), '{}\n');
  const t0 = now();
  for (let i = 0; i < n; i++) fs.renameSync(path.join(dir, 'a', String(i)), path.join(dir, 'b', String(i)));
  const us = ((now() - t0) * 1000) / n;
  fs.rmSync(dir, { recursive: true, force: true });
  return us;
}

/** @type {(xs: number[]) => number} */
const median = (xs) => /** @type {number} */ ([...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]);

const persistentWorker = new URL('./processors/persistent.py', import.meta.url).pathname;
const RUNNER_DRAIN = quick ? 1_000 : 3_000;
/** @type {[string, Omit<import('../dist/index.js').PoolOptions, 'durable'>, number][]} */
const runnerCases = [
  ['threads, 2 x 16', { processor: processorUrl, threads: 2, concurrency: 16 }, DRAIN],
  ['processes, 2 x 16', { processor: processorUrl, isolation: 'process', processes: 2, concurrency: 16 }, DRAIN],
  ['--exec /bin/true per job, concurrency 8', { processor: { exec: ['/bin/true'] }, concurrency: 8 }, RUNNER_DRAIN],
  [
    '--persistent python, 2 x 16',
    { processor: { exec: [persistentWorker], persistent: true }, processes: 2, concurrency: 16 },
    DRAIN,
  ],
];

/**
 * The proportional set size of a process, in bytes.
 * @param {number} pid
 */
function pss(pid) {
  const rollup = fs.readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const kb = /^Pss:\s+(\d+) kB/m.exec(rollup);
  return kb === null ? 0 : Number(kb[1]) * 1024;
}

/** The processes whose parent is this one. */
function children() {
  return fs
    .readdirSync('/proc')
    .filter((name) => /^\d+$/.test(name))
    .filter((pid) => {
      try {
        // the command may hold spaces and parentheses: the fields after the last ')' are plain
        const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid;
      } catch {
        return false; // it ended while we looked
      }
    })
    .map(Number);
}

/**
 * Memory per idle worker: for processes the mean PSS of the children; for
 * threads, the growth of this process's PSS from 1 to 5 idle threads, per thread.
 * @param {Omit<import('../dist/index.js').PoolOptions, 'durable'>} options
 */
async function idleWorkerBytes(options) {
  const dir = tempQueueDir('mem');
  const measure = async (/** @type {number} */ n) => {
    const isThreads = options.isolation === undefined && typeof options.processor === 'string';
    const pool = new Pool(dir, { ...options, ...(isThreads ? { threads: n } : { processes: n }), durable: false });
    await pool.start();
    await pool.onIdle();
    await new Promise((resolve) => setTimeout(resolve, 500)); // let the workers finish starting up
    const bytes = isThreads ? pss(process.pid) : children().reduce((sum, pid) => sum + pss(pid), 0) / n;
    await pool.close();
    return bytes;
  };
  try {
    if (options.isolation === undefined && typeof options.processor === 'string') {
      const one = await measure(1);
      const five = await measure(5);
      return (five - one) / 4;
    }
    return await measure(2);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Enqueue-to-done latency, one job at a time into an idle pool: the one
 * measure every runner shares (an exec'd program has no clock of ours).
 * @param {Omit<import('../dist/index.js').PoolOptions, 'durable'>} options
 */
async function doneLatency(options) {
  const dir = tempQueueDir('lat');
  const q = await Queue.open(dir, { durable: false });
  const pool = new Pool(dir, { ...options, durable: false });
  /** @type {Map<string, () => void>} */
  const done = new Map();
  pool.on('completed', (job) => done.get(job.id)?.());
  await pool.start();
  /** @type {number[]} */
  const samples = [];
  const wanted = quick ? 100 : 300;
  for (let i = 0; i < wanted + 10; i++) {
    await pool.onIdle();
    await new Promise((resolve) => setTimeout(resolve, 1 + Math.random() * 2));
    const t0 = now();
    const { id } = await q.enqueue('ping', null);
    await new Promise(/** @param {(v?: unknown) => void} resolve */ (resolve) => done.set(id, resolve));
    done.delete(id);
    if (i >= 10) samples.push(now() - t0);
  }
  await pool.close();
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  samples.sort((a, b) => a - b);
  return { p50: percentile(samples, 50), p99: percentile(samples, 99) };
}

/** From a backlog of slow jobs to max workers, and from idle back to min. */
async function autoscale() {
  const dir = tempQueueDir('scale');
  const q = await Queue.open(dir, { durable: false });
  const slow = new URL('./processors/sleep.js', import.meta.url).pathname;
  const pool = new Pool(dir, {
    processor: slow,
    isolation: 'process',
    processes: { min: 1, max: 4 },
    idleTimeout: 1000,
    durable: false,
  });
  await pool.start();
  await pool.onIdle();
  const grown = new Promise((resolve) => pool.on('grew', (n) => n === 4 && resolve(undefined)));
  const t0 = now();
  await q.enqueueMany(Array.from({ length: 200 }, () => ({ type: 'slow', data: 20 })));
  await grown;
  const growMs = now() - t0;
  await pool.onIdle();
  const shrunk = new Promise((resolve) => pool.on('shrank', (n) => n === 1 && resolve(undefined)));
  const t1 = now();
  await shrunk;
  const shrinkMs = now() - t1;
  await pool.close();
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { growMs, shrinkMs };
}

async function main() {
  console.log(`# bench/pool.js on ${base} (${quick ? 'quick' : 'full'} run), Node ${process.version}`);
  console.log(`floor: rename ${renameFloor().toFixed(1)} us/op (one claim is one rename plus a read)\n`);

  console.log('enqueue-to-start latency (ms)              p50     p99     max   target p50 <= 1, p99 <= 5');
  /** @type {[string, { backlog?: number, poll?: number }][]} */
  const latencyCases = [
    ['idle pool (inotify)', {}],
    [`idle pool, ${BACKLOG.toLocaleString('en')} other jobs waiting`, { backlog: BACKLOG }],
    ['idle pool, poll-only every 100 ms', { poll: 100 }],
  ];
  for (const [name, options] of latencyCases) {
    const r = await latency(name, options);
    console.log(
      `  ${r.name.padEnd(41)}${r.p50.toFixed(3).padStart(6)}  ${r.p99.toFixed(3).padStart(6)}  ${r.max.toFixed(1).padStart(6)}`,
    );
  }

  console.log(
    `\ndrain of ${DRAIN.toLocaleString('en')} no-op jobs (jobs/s, median of 3)   BullMQ here: 4.1k/s at concurrency 1, 8.7k/s at 50`,
  );
  const noop = async () => null;
  /** @type {[string, Parameters<typeof drain>[1]][]} */
  const drainCases = [
    ['1 thread x 16', { processor: processorUrl, threads: 1, concurrency: 16 }],
    ['2 threads x 16', { processor: processorUrl, threads: 2, concurrency: 16 }],
    ['in-process, concurrency 1', { processor: noop, concurrency: 1 }],
    ['in-process, concurrency 50', { processor: noop, concurrency: 50 }],
  ];
  for (const [name, options] of drainCases) {
    const rates = [];
    for (let i = 0; i < 3; i++) rates.push((await drain(name, options)).rate);
    console.log(`  ${name.padEnd(41)}${Math.round(median(rates)).toLocaleString('en').padStart(8)}`);
  }

  console.log('\nrunners side by side            drain jobs/s   done p50 ms   p99 ms   idle worker MB (PSS)');
  for (const [name, options, jobs] of runnerCases) {
    const rates = [];
    for (let i = 0; i < 3; i++) rates.push((await drain(name, options, jobs)).rate);
    const lat = await doneLatency(options);
    const idle = name.startsWith('--exec') ? 'none (a process per job)' : (await idleWorkerBytes(options)) / 2 ** 20;
    console.log(
      `  ${name.padEnd(38)}${Math.round(median(rates)).toLocaleString('en').padStart(7)}` +
        `${lat.p50.toFixed(2).padStart(12)}${lat.p99.toFixed(2).padStart(9)}   ${typeof idle === 'number' ? idle.toFixed(1) : idle}`,
    );
  }

  const scale = await autoscale();
  console.log(
    `\nautoscaling, processes { min: 1, max: 4 }, idleTimeout 1000 ms: ` +
      `1 -> 4 workers ${Math.round(scale.growMs)} ms after a backlog arrives; 4 -> 1 ${Math.round(scale.shrinkMs)} ms after it drains`,
  );
}

await main();
