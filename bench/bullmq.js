/**
 * bench/bullmq.js: dirqueue and BullMQ on a local Redis, side by side in one
 * run, at equal durability.
 *
 * Goal (ARCHITECTURE.md, "Performance targets"): dirqueue at or above BullMQ-on-Redis, measured
 * on the same machine in the same run, for enqueue one by one, enqueue in
 * bulk and drain (concurrency 50), and an enqueue-to-start latency of p50
 * <= 1 ms, p99 <= 5 ms with an idle worker. Earlier measurement here (no
 * persistence): BullMQ add 6.5k/s, addBulk 14k/s, processing 4.1k/s at
 * concurrency 1 and 8.7k/s at 50, enqueue-to-start 1.05 ms p50 / 3.8 ms p99.
 *
 * Durability levels (each its own redis-server, started and killed here):
 *   no fsync   dirqueue `durable: false`  vs  redis-server --save '' --appendonly no
 *   fsync      dirqueue `durable: 'all'`  vs  redis-server --save '' --appendonly yes
 *                                              --appendfsync always
 * At the fsync level both sides are durable in every row: dirqueue's
 * `durable: 'all'` fsyncs a new job's file and directory before an enqueue
 * resolves (as `durable: true` does) and a completion's line and directories
 * before complete() resolves, grouped across concurrent completions; Redis's
 * appendfsync always fsyncs every write of BullMQ's, its moveToCompleted
 * included. A claim is not fsynced on either side that matters: dirqueue's
 * claim is a rename that a power cut may undo (the job runs again), and
 * BullMQ's moveToActive is fsynced but a lost worker's job is stalled and
 * retried all the same.
 *
 * Cases, each for both systems (10,000 jobs; medians of --reps, default 3):
 *   enqueue one by one   await q.enqueue(...)        vs  await queue.add(...)
 *   enqueue, 10 callers  10 async loops on one handle (one Queue / one BullMQ Queue, so one
 *   enqueue, 50 callers  Redis connection), each awaiting its enqueue(...) / add(...) before
 *                        the next, taking job numbers from one shared counter: 10 (50) calls
 *                        in flight, 10,000 in all. At the fsync level dirqueue still
 *                        fdatasyncs each job's file, and the enqueues in flight share the
 *                        directory fsyncs (group commit); Redis groups too: with appendfsync
 *                        always it writes and fsyncs its AOF once per event-loop turn, for
 *                        every command it read in that turn, before it replies
 *   enqueue in bulk      q.enqueueMany(10,000)       vs  queue.addBulk(10,000)
 *   drain, concurrency 1 Pool, in-process async no-op vs  Worker, inline async no-op,
 *                        the jobs of "one by one"        concurrency 1
 *   drain, concurrency 50 the same on the jobs of "in bulk", concurrency 50
 *   drain in threads     the processor a module run in worker threads (bench/processors/
 *                        noop.js, the same file both sides: returns null), 50 jobs in flight
 *                        on each side, on a queue of its own holding 200 + 10,000 jobs
 *                        (enqueueMany / addBulk, untimed). dirqueue: a Pool with threads: 2
 *                        (this machine's cores), concurrency 25 per thread; BullMQ: a Worker
 *                        with the processor's path, useWorkerThreads: true, concurrency 50.
 *                        What differs: BullMQ's sandbox runs one job per thread at a time, so
 *                        its concurrency 50 means 50 threads (each started with the first job
 *                        it takes and kept until close()), and it has no setting for fewer
 *                        threads at that concurrency; dirqueue runs 25 jobs at once in each of
 *                        2 threads. On both, claims and completions stay on the main thread.
 *                        Starting 50 threads that each load BullMQ takes seconds on 2 cores,
 *                        so the clock starts at the 200th ending (every thread started and has
 *                        run jobs) and stops at the 10,200th: the rate is of the 10,000 after
 *                        warm-up, pool.start() / worker.run() and the first 200 untimed
 *   enqueue-to-start     one job at a time to an idle worker (concurrency 1):
 *                        pool.onIdle() / the Worker's 'drained' event, then a
 *                        1-3 ms gap, then enqueue; from just before enqueue/add
 *                        to the processor's first line, on one clock
 *                        (performance.timeOrigin + performance.now()); 500
 *                        samples after 20 unrecorded ones
 * Baseline: each case's baseline is the other system in the same run. The
 * enqueue rows also have their raw floor, measured after each repetition on
 * the same filesystem (the floor column: a tmp/ file written and renamed into
 * queue/ by hand, with an fdatasync of it and an fsync of queue/ at the fsync
 * level, 10 and 50 callers sharing the directory fsyncs; on tmpfs, where a
 * queue makes no fsync (fsync does nothing there: store/fs-kind.ts), the
 * fsync level's floor is the same work without them); the other floors are
 * in bench/core.js. Warm-up: per level, each system runs
 * every case once on 500 jobs (and 20 latency samples) before the timed runs.
 * Each repetition runs both systems, in alternating order, on fresh state: new
 * queue directories for dirqueue; a new queue name and, after it, FLUSHDB for
 * BullMQ. The in-process drains are timed from pool.start() (which opens the
 * queue and builds its index of the 10,000 waiting jobs) / worker.run()
 * (connected beforehand) to the last completion; the drain in threads from its
 * 200th ending to its last (above). Jobs: type/name "bench", data { n, to, subject }.
 * Both keep their defaults otherwise: dirqueue keeps finished jobs in done/,
 * BullMQ in its completed set (removeOnComplete unset); Redis's AOF rewrite
 * settings are Redis's defaults (a rewrite during the run is reported).
 * Everything runs on the project's filesystem (os.tmpdir(), ext4 here;
 * DIRQUEUE_BENCH_DIR overrides, e.g. /dev/shm for tmpfs): dirqueue's queues and
 * Redis's --dir (its AOF). The first line names the filesystem (bench/lib.js
 * describeFs), and so does --json (fs: type, journal (null but on ext4), label, dir), so that a
 * README table for ext4 and one for tmpfs come from two runs.
 * Nothing is deleted before the end (a journal-less ext4 creates files slowly
 * for minutes after mass deletions; see bench/lib.js describeFs).
 *
 * Needs redis-server on PATH (REDIS_SERVER=/path overrides; Debian:
 * apt-get install redis-server) and bullmq (npm install --no-save bullmq@5:
 * not a devDependency, because its optional native parts keep npm 11's lock
 * file from installing with npm ci); without them it says how and exits 0.
 *
 * Run:   cd /work/main && npx tsc -p tsconfig.json && node bench/bullmq.js
 * Flags: --reps=N  --level=nofsync|fsync (one level only)  --quick (1,000 jobs,
 *        100 latency samples; also BENCH_QUICK=1)  --trash-list=FILE (append the
 *        run's directory to FILE instead of deleting it: bench/run.js deletes
 *        it after its last script)  --json=FILE (write the medians as JSON, with the
 *        date, versions, filesystem and number of CPUs)
 * Took about 2 minutes before the concurrent and threaded rows, which add several minutes
 * (BullMQ's 50 threads start afresh for each run of the threaded drain). Never asserts: it
 * prints numbers for the README, whose table bench/bullmq-table.js makes from the --json files.
 */
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Pool, Queue } from '../dist/index.js';
import { filesystemKind } from '../dist/store/fs-kind.js';
import {
  describeFs,
  fix,
  floorCreate,
  floorCreateConcurrentDurable,
  int,
  makeRoot,
  median,
  payload,
  percentile,
  rate,
  rawLayout,
} from './lib.js';

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, ...v] = a.replace(/^--/, '').split('=');
    return /** @type {const} */ ([/** @type {string} */ (k), v.length > 0 ? v.join('=') : true]);
  }),
);
const QUICK = args.quick === true || process.env.BENCH_QUICK === '1';
const REPS = Number(args.reps ?? 3);
const N = QUICK ? 1_000 : 10_000;
const WARMUP = QUICK ? 200 : 500;
const SAMPLES = QUICK ? 100 : 500;
const WARMUP_SAMPLES = 20;
/** Concurrent producers: how many callers keep an enqueue in flight, one row each. */
const CALLERS = /** @type {const} */ ([10, 50]);
/** The drain in worker threads: dirqueue's threads (each at THREAD_CONCURRENCY / THREADS), jobs in flight on each side. */
const THREADS = 2;
const THREAD_CONCURRENCY = 50;
/** Jobs ended before that drain's clock starts (every thread started and warm). */
const THREAD_WARMUP = 4 * THREAD_CONCURRENCY;
const NOOP_MODULE = new URL('./processors/noop.js', import.meta.url);
const TYPE = 'bench';
const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';
const base = process.env.DIRQUEUE_BENCH_DIR ?? os.tmpdir();
const now = () => performance.timeOrigin + performance.now();

const LEVELS = [
  {
    key: 'nofsync',
    label: "no fsync: dirqueue durable: false | Redis --save '' --appendonly no",
    durable: false,
    redis: ['--appendonly', 'no'],
  },
  {
    key: 'fsync',
    label: "fsync: dirqueue durable: 'all' | Redis --save '' --appendonly yes --appendfsync always",
    durable: /** @type {const} */ ('all'),
    redis: ['--appendonly', 'yes', '--appendfsync', 'always'],
  },
].filter((l) => args.level === undefined || args.level === l.key);

// ---------------------------------------------------------------- prerequisites

/**
 * The part of bullmq (and of the ioredis client its queues hold) that this script uses. bullmq
 * is not a devDependency (see the header), so its own types are usually not installed: the
 * import below names the module through a variable, which TypeScript leaves unresolved (any),
 * and the result is given this shape.
 * @typedef {{ host: string, port: number, maxRetriesPerRequest: null }} Connection
 * @typedef {{ flushdb(): Promise<unknown>, info(): Promise<string> }} RedisClient
 * @typedef {{
 *   readonly name: string,
 *   readonly client: Promise<RedisClient>,
 *   waitUntilReady(): Promise<unknown>,
 *   add(name: string, data: unknown): Promise<unknown>,
 *   addBulk(jobs: { name: string, data: unknown }[]): Promise<unknown>,
 *   close(): Promise<void>,
 * }} BullQueue
 * @typedef {{
 *   waitUntilReady(): Promise<unknown>,
 *   on(event: 'completed' | 'failed' | 'drained', listener: () => void): unknown,
 *   run(): Promise<void>,
 *   close(): Promise<void>,
 * }} BullWorker
 * @typedef {{
 *   Queue: new (name: string, options: { connection: Connection }) => BullQueue,
 *   Worker: new (
 *     name: string,
 *     processor: (() => Promise<unknown>) | URL,
 *     options: { connection: Connection, concurrency: number, autorun: boolean, useWorkerThreads?: boolean },
 *   ) => BullWorker,
 * }} BullMQ
 */

const redisVersion = spawnSync(REDIS_SERVER, ['--version'], { encoding: 'utf8' });
/** @type {string} */
const bullmqName = 'bullmq';
/** @type {BullMQ | undefined} */
let loaded;
try {
  // eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- ESLint does not see JSDoc casts (typescript-eslint#4824): the cast to BullMQ types this any
  loaded = /** @type {BullMQ} */ (await import(bullmqName));
} catch {
  // reported below, with redis-server
}
if (redisVersion.error !== undefined || redisVersion.status !== 0 || loaded === undefined) {
  console.log('bench/bullmq.js skipped: it needs redis-server and the bullmq package.');
  if (redisVersion.error !== undefined || redisVersion.status !== 0) {
    console.log(
      `  redis-server: not found as "${REDIS_SERVER}". Debian/Ubuntu: sudo apt-get install -y redis-server (or set REDIS_SERVER=/path/to/redis-server)`,
    );
  }
  if (loaded === undefined)
    console.log('  bullmq: not installed. cd to the project and run: npm install --no-save bullmq@5');
  process.exit(0);
}
const bullmq = loaded;

// ---------------------------------------------------------------- redis-server

/** Every redis-server this process started and has not stopped yet. */
/** @type {Set<import('node:child_process').ChildProcess>} */
const servers = new Set();
process.on('exit', () => {
  for (const s of servers) s.kill('SIGKILL');
});
/** @type {string | undefined} */
let runDir; // the run's directory, reported when a signal cuts the run short
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    for (const s of servers) s.kill('SIGKILL');
    if (runDir !== undefined) console.log(`bench/bullmq.js: ${signal}; left ${runDir}`);
    process.exit(130);
  });
}

/**
 * A loopback port nobody listens on right now.
 * @returns {Promise<number>}
 */
function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      // listening on a TCP port, the address is an AddressInfo (a string only for a pipe)
      const { port } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(port));
    });
  });
}

/**
 * Resolves true when a PING on `port` answers +PONG.
 * @param {number} port
 * @returns {Promise<boolean>}
 */
function ping(port) {
  return new Promise((resolve) => {
    const sock = net.connect({ host: '127.0.0.1', port });
    let got = '';
    const done = (/** @type {boolean} */ ok) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(500, () => done(false));
    sock.once('error', () => done(false));
    sock.once('connect', () => sock.write('PING\r\n'));
    sock.on('data', (d) => {
      got += d.toString();
      if (got.includes('\r\n')) done(got.startsWith('+PONG'));
    });
  });
}

/**
 * Start redis-server on a free loopback port with `dir` as its --dir; resolves once it answers PING.
 * @param {string} dir
 * @param {string[]} extra
 */
async function startRedis(dir, extra) {
  fs.mkdirSync(dir, { recursive: true });
  const logfile = path.join(dir, 'redis.log');
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const argv = [
      '--port',
      String(port),
      '--bind',
      '127.0.0.1',
      '--dir',
      dir,
      '--logfile',
      logfile,
      '--daemonize',
      'no',
      '--save',
      '',
      ...extra,
    ];
    const proc = spawn(REDIS_SERVER, argv, { stdio: 'ignore' });
    servers.add(proc);
    let exited = false;
    proc.once('exit', () => {
      exited = true;
      servers.delete(proc);
    });
    const deadline = performance.now() + 10_000;
    while (!exited && performance.now() < deadline && !(await ping(port))) await sleep(20);
    if (!exited && performance.now() < deadline) return { proc, port, argv };
    proc.kill('SIGKILL');
    const log = fs.existsSync(logfile) ? fs.readFileSync(logfile, 'utf8').trim().split('\n').slice(-3).join('\n') : '';
    if (attempt >= 3) throw new Error(`redis-server ${argv.join(' ')} did not answer PING:\n${log}`);
  }
}

/** @param {Awaited<ReturnType<typeof startRedis>>} server */
async function stopRedis(server) {
  if (server.proc.exitCode !== null || server.proc.signalCode !== null) return;
  const exited = new Promise((resolve) => server.proc.once('exit', resolve));
  server.proc.kill('SIGTERM');
  const timer = setTimeout(() => server.proc.kill('SIGKILL'), 5_000);
  await exited;
  clearTimeout(timer);
}

// ---------------------------------------------------------------- the two systems

/**
 * One system under test, run through the same cases.
 * @typedef {{
 *   name: 'dirqueue' | 'BullMQ',
 *   enqueueOne(n: number): Promise<{ ms: number, at: string }>,
 *   enqueueConcurrent(n: number, callers: number): Promise<{ ms: number }>,
 *   enqueueBulk(n: number): Promise<{ ms: number, at: string }>,
 *   drain(at: string, n: number, concurrency: number): Promise<{ ms: number }>,
 *   drainThreads(n: number): Promise<{ ms: number }>,
 *   latency(samples: number): Promise<number[]>,
 *   afterRep(): Promise<void>,
 * }} System
 */
/**
 * ms per case: one by one, 10 and 50 concurrent callers, bulk, drains at concurrency 1 and 50, and the
 * drain in worker threads.
 * @typedef {{ one: number, par10: number, par50: number, bulk: number, drain1: number, drain50: number, threads: number }} Throughput
 */

const items = (/** @type {number} */ n) => Array.from({ length: n }, (_, i) => ({ type: TYPE, data: payload(i) }));
const noop = async () => null;

/**
 * `callers` async loops that between them call `add(i)` once for each i in 0..n-1, each loop
 * awaiting its call before it takes the next i: `callers` calls in flight at any time.
 * @param {number} n
 * @param {number} callers
 * @param {(i: number) => Promise<unknown>} add
 */
async function concurrently(n, callers, add) {
  let next = 0;
  const loop = async () => {
    while (next < n) await add(next++);
  };
  await Promise.all(Array.from({ length: callers }, loop));
}

/**
 * A stopwatch over a stream of job endings: started at the `skip`-th ending, read at the
 * `skip + n`-th. `end(ok)` is called once per ending (ok: completed, not failed).
 * @param {number} skip
 * @param {number} n
 */
function endings(skip, n) {
  let ended = 0;
  let failed = 0;
  let t0 = performance.now();
  /** @type {(ms: number) => void} */
  let finish;
  const done = /** @type {Promise<number>} */ (new Promise((resolve) => (finish = resolve)));
  return {
    /** @param {boolean} ok */
    end(ok) {
      if (!ok) failed++;
      if (++ended === skip) t0 = performance.now();
      if (ended === skip + n) finish(performance.now() - t0);
    },
    done,
    get failed() {
      return failed;
    },
  };
}

/**
 * dirqueue: a queue is a directory under the run's root.
 * @param {ReturnType<typeof makeRoot>} ctx
 * @param {boolean | 'all'} durable
 * @returns {System}
 */
function dirqueueSystem(ctx, durable) {
  return {
    name: 'dirqueue',
    async enqueueOne(n) {
      const dir = ctx.sub('one');
      const q = await Queue.open(dir, { durable });
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await q.enqueue(TYPE, payload(i));
      const ms = performance.now() - t0;
      await q.close();
      return { ms, at: dir };
    },
    async enqueueConcurrent(n, callers) {
      const q = await Queue.open(ctx.sub(`par${callers}`), { durable });
      const t0 = performance.now();
      await concurrently(n, callers, (i) => q.enqueue(TYPE, payload(i)));
      const ms = performance.now() - t0;
      await q.close();
      return { ms };
    },
    async enqueueBulk(n) {
      const dir = ctx.sub('bulk');
      const q = await Queue.open(dir, { durable });
      const batch = items(n);
      const t0 = performance.now();
      await q.enqueueMany(batch);
      const ms = performance.now() - t0;
      await q.close();
      return { ms, at: dir };
    },
    async drain(dir, n, concurrency) {
      const pool = new Pool(dir, { processor: noop, concurrency, durable });
      const t0 = performance.now();
      await pool.start();
      await pool.onIdle();
      const ms = performance.now() - t0;
      const { completed } = pool.counts;
      await pool.close();
      if (completed !== n) throw new Error(`dirqueue drain: ${completed} of ${n} jobs completed`);
      return { ms };
    },
    async drainThreads(n) {
      const dir = ctx.sub('threads');
      const q = await Queue.open(dir, { durable });
      await q.enqueueMany(items(THREAD_WARMUP + n));
      await q.close();
      const pool = new Pool(dir, {
        processor: NOOP_MODULE,
        threads: THREADS,
        concurrency: THREAD_CONCURRENCY / THREADS, // per thread
        durable,
      });
      const clock = endings(THREAD_WARMUP, n);
      pool.on('completed', () => clock.end(true));
      pool.on('failed', () => clock.end(false));
      await pool.start();
      const ms = await clock.done;
      const { completed } = pool.counts;
      await pool.close();
      if (completed !== THREAD_WARMUP + n)
        throw new Error(`dirqueue drain in threads: ${completed} of ${THREAD_WARMUP + n} jobs completed`);
      return { ms };
    },
    async latency(samples) {
      const dir = ctx.sub('latency');
      const q = await Queue.open(dir, { durable });
      /** @type {((at: number) => void) | undefined} */
      let onStart;
      const pool = new Pool(dir, {
        processor: async () => {
          onStart?.(now());
          return null;
        },
        concurrency: 1,
        durable,
      });
      await pool.start();
      /** @type {number[]} */
      const out = [];
      for (let i = 0; i < samples + WARMUP_SAMPLES; i++) {
        await pool.onIdle(); // nothing ready, nothing running: the job arrives at an idle pool
        await sleep(1 + Math.random() * 2);
        const started = /** @type {Promise<number>} */ (new Promise((resolve) => (onStart = resolve)));
        const t0 = now();
        await q.enqueue(TYPE, payload(i));
        const t1 = await started;
        if (i >= WARMUP_SAMPLES) out.push(t1 - t0);
      }
      await pool.close();
      await q.close();
      return out;
    },
    async afterRep() {},
  };
}

/**
 * BullMQ: a queue is a queue name on the level's redis-server.
 * @param {number} port
 * @returns {System}
 */
function bullmqSystem(port) {
  const { Queue: BQueue, Worker } = bullmq;
  /** @type {Connection} */
  const connection = { host: '127.0.0.1', port, maxRetriesPerRequest: null };
  let seq = 0;
  const fresh = async (/** @type {string} */ label) => {
    const queue = new BQueue(`${label}-${++seq}`, { connection });
    await queue.waitUntilReady();
    return queue;
  };
  return {
    name: 'BullMQ',
    async enqueueOne(n) {
      const queue = await fresh('one');
      const t0 = performance.now();
      for (let i = 0; i < n; i++) await queue.add(TYPE, payload(i));
      const ms = performance.now() - t0;
      await queue.close();
      return { ms, at: queue.name };
    },
    async enqueueConcurrent(n, callers) {
      const queue = await fresh(`par${callers}`);
      const t0 = performance.now();
      await concurrently(n, callers, (i) => queue.add(TYPE, payload(i)));
      const ms = performance.now() - t0;
      await queue.close();
      return { ms };
    },
    async enqueueBulk(n) {
      const queue = await fresh('bulk');
      const batch = Array.from({ length: n }, (_, i) => ({ name: TYPE, data: payload(i) }));
      const t0 = performance.now();
      await queue.addBulk(batch);
      const ms = performance.now() - t0;
      await queue.close();
      return { ms, at: queue.name };
    },
    async drain(name, n, concurrency) {
      const worker = new Worker(name, noop, { connection, concurrency, autorun: false });
      await worker.waitUntilReady();
      let completed = 0;
      let failed = 0;
      /** @type {() => void} */
      let finish;
      const all = /** @type {Promise<void>} */ (new Promise((resolve) => (finish = resolve)));
      worker.on('completed', () => ++completed + failed === n && finish());
      worker.on('failed', () => completed + ++failed === n && finish());
      const t0 = performance.now();
      const running = worker.run();
      await all;
      const ms = performance.now() - t0;
      await worker.close();
      await running;
      if (completed !== n) throw new Error(`BullMQ drain: ${completed} of ${n} jobs completed, ${failed} failed`);
      return { ms };
    },
    async drainThreads(n) {
      const queue = await fresh('threads');
      await queue.addBulk(Array.from({ length: THREAD_WARMUP + n }, (_, i) => ({ name: TYPE, data: payload(i) })));
      // a sandboxed processor: each job in flight runs in a worker thread of its own, so up to
      // THREAD_CONCURRENCY threads, started as the first jobs are taken and kept until close()
      const worker = new Worker(queue.name, NOOP_MODULE, {
        connection,
        concurrency: THREAD_CONCURRENCY,
        autorun: false,
        useWorkerThreads: true,
      });
      await worker.waitUntilReady();
      const clock = endings(THREAD_WARMUP, n);
      worker.on('completed', () => clock.end(true));
      worker.on('failed', () => clock.end(false));
      const running = worker.run();
      const ms = await clock.done;
      await worker.close();
      await running;
      await queue.close();
      if (clock.failed > 0) throw new Error(`BullMQ drain in threads: ${clock.failed} jobs failed`);
      return { ms };
    },
    async latency(samples) {
      const queue = await fresh('latency');
      /** @type {((at: number) => void) | undefined} */
      let onStart;
      const worker = new Worker(
        queue.name,
        async () => {
          onStart?.(now());
          return null;
        },
        { connection, concurrency: 1, autorun: false },
      );
      await worker.waitUntilReady();
      // 'drained' fires when the worker fetched and found nothing (then it blocks on Redis);
      // it fires once per busy -> idle transition
      /** @type {() => void} */
      let setIdle;
      const expectIdle = () => /** @type {Promise<void>} */ (new Promise((resolve) => (setIdle = resolve)));
      let idle = expectIdle();
      worker.on('drained', () => setIdle());
      const running = worker.run();
      /** @type {number[]} */
      const out = [];
      for (let i = 0; i < samples + WARMUP_SAMPLES; i++) {
        await idle;
        await sleep(1 + Math.random() * 2);
        idle = expectIdle();
        const started = /** @type {Promise<number>} */ (new Promise((resolve) => (onStart = resolve)));
        const t0 = now();
        await queue.add(TYPE, payload(i));
        const t1 = await started;
        if (i >= WARMUP_SAMPLES) out.push(t1 - t0);
      }
      await worker.close();
      await running;
      await queue.close();
      return out;
    },
    /** Fresh state for the next repetition (untimed). */
    async afterRep() {
      const queue = await fresh('flush');
      await (await queue.client).flushdb();
      await queue.close();
    },
  };
}

// ---------------------------------------------------------------- one level

/**
 * The four throughput cases of one system, on `n` jobs: { one, bulk, drain1, drain50 } in ms.
 * @param {System} sys
 * @param {number} n
 * @returns {Promise<Throughput>}
 */
async function throughput(sys, n) {
  const one = await sys.enqueueOne(n);
  const [par10, par50] = [await sys.enqueueConcurrent(n, CALLERS[0]), await sys.enqueueConcurrent(n, CALLERS[1])];
  const bulk = await sys.enqueueBulk(n);
  const drain1 = await sys.drain(one.at, n, 1);
  const drain50 = await sys.drain(bulk.at, n, 50);
  const threads = await sys.drainThreads(n);
  await sys.afterRep();
  return {
    one: one.ms,
    par10: par10.ms,
    par50: par50.ms,
    bulk: bulk.ms,
    drain1: drain1.ms,
    drain50: drain50.ms,
    threads: threads.ms,
  };
}

/**
 * @param {(typeof LEVELS)[number]} level
 * @param {ReturnType<typeof makeRoot>} ctx
 * @param {Record<string, unknown>} results
 */
async function benchLevel(level, ctx, results) {
  const t0 = performance.now();
  const server = await startRedis(path.join(ctx.root, `redis-${level.key}`), level.redis);
  try {
    const systems = [dirqueueSystem(ctx, level.durable), bullmqSystem(server.port)];
    for (const sys of systems) {
      await throughput(sys, WARMUP);
      await sys.latency(WARMUP_SAMPLES);
    }
    /** @type {Record<System['name'], Throughput[]>} */
    const runs = { dirqueue: [], BullMQ: [] };
    /** @type {Floors[]} */
    const floorRuns = [];
    for (let r = 0; r < REPS; r++) {
      for (const sys of r % 2 ? [...systems].reverse() : systems) runs[sys.name].push(await throughput(sys, N));
      floorRuns.push(await floors(ctx, `${level.key}-${r}`, level.durable !== false));
    }
    const lat = /** @type {Record<System['name'], number[]>} */ ({});
    for (const sys of systems) lat[sys.name] = await sys.latency(SAMPLES);
    const info = await redisInfo(server.port);

    /** @type {(name: System['name'], k: keyof Throughput) => number} */
    const med = (name, k) => median(runs[name].map((x) => rate(N, x[k])));
    /** @type {[keyof Throughput, string][]} */
    const cases = [
      ['one', `enqueue ${int(N)} one by one (jobs/s)`],
      ['par10', `enqueue ${int(N)}, ${CALLERS[0]} callers (jobs/s)`],
      ['par50', `enqueue ${int(N)}, ${CALLERS[1]} callers (jobs/s)`],
      ['bulk', `enqueue ${int(N)} in bulk (jobs/s)`],
      ['drain1', `drain ${int(N)}, concurrency 1 (jobs/s)`],
      ['drain50', `drain ${int(N)}, concurrency 50 (jobs/s)`],
      ['threads', `drain ${int(N)} in threads, concurrency ${THREAD_CONCURRENCY} (jobs/s)`],
    ];
    /** @type {TableRow[]} */
    const rows = [
      ...cases.map(([k, name]) => {
        const d = med('dirqueue', k);
        const b = med('BullMQ', k);
        const f =
          k === 'one' || k === 'par10' || k === 'par50' ? median(floorRuns.map((x) => rate(N, x[k]))) : undefined;
        return {
          name,
          dirqueue: int(d),
          bullmq: int(b),
          ratio: d / b,
          floor: f === undefined ? '' : int(f),
          raw: { dirqueue: d, bullmq: b, ...(f !== undefined && { floor: f }) },
        };
      }),
      ...[50, 99].map((p) => {
        const d = percentile(lat.dirqueue, p);
        const b = percentile(lat.BullMQ, p);
        return {
          name: `enqueue-to-start p${p} (ms)`,
          dirqueue: fix(d, 3),
          bullmq: fix(b, 3),
          ratio: b / d,
          floor: '',
          raw: { dirqueue: d, bullmq: b },
        };
      }),
    ];
    console.log(`\n${level.label}`);
    printTable(rows);
    /** @type {(name: System['name'], k: keyof Throughput) => string} */
    const spread = (name, k) => runs[name].map((x) => int(rate(N, x[k]))).join(' ');
    /** @type {(keyof Throughput)[]} */
    const keys = ['one', 'par10', 'par50', 'bulk', 'drain1', 'drain50', 'threads'];
    console.log(
      `  per repetition, dirqueue | BullMQ: ${keys.map((k) => `${k} ${spread('dirqueue', k)} | ${spread('BullMQ', k)}`).join('; ')}`,
    );
    console.log(
      `  redis ${info.redis_version ?? '?'}: used_memory ${info.used_memory_human ?? '?'}, aof_enabled ${info.aof_enabled ?? '?'}, ` +
        `aof_rewrites ${info.aof_rewrites ?? '?'}, rdb_saves ${info.rdb_saves ?? '?'}; ${fix((performance.now() - t0) / 1000)} s`,
    );
    results[level.key] = Object.fromEntries(rows.map((r) => [r.name, r.raw]));
  } finally {
    await stopRedis(server);
  }
}

/** @typedef {{ one: number, par10: number, par50: number }} Floors */

/**
 * The raw floor of the enqueue rows, in ms for N jobs, on the bench's filesystem: tmp/ file, write, rename
 * into queue/ by hand (bench/lib.js), at this level's durability: with `durable`, an fdatasync of the file
 * and an fsync of queue/ for each, the concurrent callers sharing the directory fsyncs (group commit) as
 * dirqueue's do. Without it there is nothing to wait for, so the callers' floor is the loop's. On a
 * filesystem in memory a durable queue syncs nothing, and so does its floor.
 * @param {ReturnType<typeof makeRoot>} ctx
 * @param {string} name
 * @param {boolean} durable
 * @returns {Promise<Floors>}
 */
async function floors(ctx, name, durable) {
  const layout = (/** @type {string} */ which) => rawLayout(path.join(ctx.root, `floor-${name}-${which}`));
  if (filesystemKind(ctx.root).memory) durable = false; // the floors' queues are under ctx.root
  const one = floorCreate(layout('one'), N, { durable }).ms;
  if (!durable) return { one, par10: one, par50: one };
  const par10 = (await floorCreateConcurrentDurable(layout('par10'), N, CALLERS[0])).ms;
  const par50 = (await floorCreateConcurrentDurable(layout('par50'), N, CALLERS[1])).ms;
  return { one, par10, par50 };
}

/**
 * INFO of the redis-server on `port`, as an object (through a BullMQ queue's client).
 * @param {number} port
 * @returns {Promise<Record<string, string>>}
 */
async function redisInfo(port) {
  const queue = new bullmq.Queue('info', { connection: { host: '127.0.0.1', port, maxRetriesPerRequest: null } });
  const text = await (await queue.client).info();
  await queue.close();
  return Object.fromEntries(
    text
      .split('\r\n')
      .filter((l) => l.includes(':'))
      .map((l) => [l.slice(0, l.indexOf(':')), l.slice(l.indexOf(':') + 1)]),
  );
}

/**
 * @typedef {{
 *   name: string, dirqueue: string, bullmq: string, ratio: number, floor: string,
 *   raw: { dirqueue: number, bullmq: number, floor?: number },
 * }} TableRow
 */

/** @param {TableRow[]} rows */
function printTable(rows) {
  const head = ['case', 'dirqueue', 'BullMQ', 'ratio', 'floor'];
  const body = rows.map((r) => [r.name, r.dirqueue, r.bullmq, `${fix(r.ratio, 2)}x`, r.floor]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => /** @type {string} */ (b[i]).length)));
  const width = (/** @type {number} */ i) => /** @type {number} */ (w[i]);
  const fmt = (/** @type {string[]} */ cells) =>
    cells.map((c, i) => (i === 0 ? c.padEnd(width(i)) : c.padStart(width(i)))).join('  ');
  console.log(fmt(head));
  console.log(w.map((x) => '-'.repeat(x)).join('  '));
  for (const b of body) console.log(fmt(b));
}

// ---------------------------------------------------------------- main

const started = performance.now();
const bullmqVersion = (() => {
  try {
    const file = fs.readFileSync(new URL('../node_modules/bullmq/package.json', import.meta.url), 'utf8');
    // eslint-disable-next-line @typescript-eslint/no-unsafe-member-access -- ESLint does not see JSDoc casts (typescript-eslint#4824): JSON.parse's any is cast to { version }
    return /** @type {{ version: string }} */ (JSON.parse(file)).version;
  } catch {
    return '?';
  }
})();
const redisName = redisVersion.stdout.trim().split(' ').slice(0, 3).join(' ');
const benchFs = describeFs(base);
console.log(
  `dirqueue vs BullMQ ${bullmqVersion} on ${redisName}  node ${process.version}  ` +
    `reps=${REPS}  ${int(N)} jobs${QUICK ? '  QUICK' : ''}  on ${benchFs.label} (${base})`,
);
console.log(
  'ratio = dirqueue ahead by: dirqueue/BullMQ for jobs/s, BullMQ/dirqueue for latency (> 1: dirqueue better)',
);
console.log(
  `throughput: median of ${REPS}; latency: ${SAMPLES} samples, idle worker at concurrency 1, enqueued 1-3 ms after it went idle`,
);
// BullMQ pipes each of its sandbox threads' stdout and stderr into this process's (up to
// THREAD_CONCURRENCY of them): more listeners than Node's default warning threshold of 10
process.stdout.setMaxListeners(THREAD_CONCURRENCY + 10);
process.stderr.setMaxListeners(THREAD_CONCURRENCY + 10);
const ctx = makeRoot(base, { prefix: 'dirqueue-bench-bullmq-' });
runDir = ctx.root;
/** @type {Record<string, unknown>} */
const results = {};
try {
  for (const level of LEVELS) await benchLevel(level, ctx, results);
} finally {
  for (const s of servers) s.kill('SIGKILL');
  if (typeof args['trash-list'] === 'string') fs.appendFileSync(args['trash-list'], `${ctx.root}\n`);
  else ctx.rm();
}
console.log(`\nbullmq.js took ${fix((performance.now() - started) / 1000)} s`);
if (typeof args.json === 'string') {
  fs.writeFileSync(
    args.json,
    `${JSON.stringify(
      {
        date: new Date().toISOString(),
        node: process.version,
        bullmq: bullmqVersion,
        redis: redisName,
        fs: { ...benchFs, journal: benchFs.journal ?? null, dir: base },
        cpus: os.cpus().length,
        reps: REPS,
        n: N,
        results,
      },
      null,
      2,
    )}\n`,
  );
}
