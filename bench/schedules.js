// bench/schedules.js: what schedules cost, and how close to its slot a slot's job is ready.
//
// Goal (issue 12): a slot's job ready within 50 ms of its slot while a queue is open somewhere
// (not at the 5 s sweep), with 1 and with 3 processes racing for every slot; and the cost of 1,000
// schedules in one queue: a sweep's pass over them, the memory they take in a process, listing
// them, and 1,000 schedules firing every second.
// Cases:
//   latency N=1, N=3   N child processes have the queue open (Queue.open, maintenance on, durable);
//                      one schedule every 100 ms; this process watches queue/ (fs.watch) and takes,
//                      for each job, the time its rename into queue/ was seen minus its slot (the
//                      id's time). p50, p99, max over SLOTS slots. The watch event adds its own
//                      ~0.1 ms; the filesystem's clock (coarse mtimes, a jiffy) can add a few ms.
//   1,000 schedules    every 1 h (none due): Queue.open; q.recover() (a sweep plus the Scheduler's
//                      pass over all of them: re-read changed files, look at each cursor); the
//                      Scheduler's memory (heap after gc, queue with 1,000 minus with 0);
//                      q.schedules() (what `dirq schedules` reads).
//   1,000 firing       1,000 schedules every 1 s, one process: jobs made per second and slot-to-ready.
// Settings: a queue in a temp dir on the project's filesystem (BENCH_DIR to override); BENCH_QUICK=1
// halves the slots.
// Run: npm run build && node --expose-gc bench/schedules.js
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue } from '../dist/index.js';
import { fix, percentile } from './lib.js';

const QUICK = process.env.BENCH_QUICK === '1';
const SLOTS = QUICK ? 30 : 60;
const EVERY = 100;
const self = fileURLToPath(import.meta.url);

/** @param {string} prefix */
function tempQueueDir(prefix) {
  return fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), `dirq-bench-${prefix}-`));
}

/**
 * Start `n` child processes with the queue in `dir` open; resolves once each is ready.
 * @param {string} dir
 * @param {number} n
 * @param {boolean} [durable] fsync each job (the default) or not
 */
async function children(dir, n, durable = true) {
  const list = Array.from({ length: n }, () =>
    spawn(process.execPath, [self, '--child', dir, durable ? 'durable' : 'fast'], {
      stdio: ['ignore', 'pipe', 'inherit'],
    }),
  );
  await Promise.all(
    list.map(
      (child) =>
        new Promise((resolve) => {
          child.stdout.on('data', (chunk) => String(chunk).includes('ready') && resolve(undefined));
        }),
    ),
  );
  return list;
}

/** @param {import('node:child_process').ChildProcess[]} list */
async function stop(list) {
  await Promise.all(
    list.map((child) => {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      return exited;
    }),
  );
}

/**
 * Watch queue/ of `dir` until `count` scheduled jobs were seen; the slot-to-ready latency of each, ms.
 * @param {string} dir
 * @param {number} count
 * @returns {Promise<number[]>}
 */
function watchReady(dir, count) {
  return new Promise((resolve) => {
    const seen = new Map();
    const watcher = fs.watch(path.join(dir, 'queue'), (_event, name) => {
      if (name === null || seen.has(name) || !/^\d{2}-\d{16}-s/.test(name)) return;
      seen.set(name, performance.timeOrigin + performance.now() - Number(name.slice(3, 19)) / 1000);
      if (seen.size === count) {
        watcher.close();
        resolve([...seen.values()]);
      }
    });
  });
}

/** @param {number[]} ms */
const summary = (ms) =>
  `p50 ${fix(percentile(ms, 50), 2)} ms, p99 ${fix(percentile(ms, 99), 2)} ms, max ${fix(Math.max(...ms), 2)} ms (${ms.length} slots)`;

async function latency(/** @type {number} */ n) {
  const dir = tempQueueDir(`sched-lat${n}`);
  const q = await Queue.open(dir, { maintenance: false });
  const procs = await children(dir, n);
  const ready = watchReady(dir, SLOTS);
  await q.schedule('beat', { type: 'beat', every: EVERY, overlap: 'allow' });
  const ms = await ready;
  await stop(procs);
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  console.log(`slot-to-ready, ${n} process${n === 1 ? '' : 'es'} open, every ${EVERY} ms: ${summary(ms)}`);
}

function heap() {
  globalThis.gc?.();
  globalThis.gc?.();
  return process.memoryUsage().heapUsed;
}

/** @param {() => Promise<unknown>} fn */
async function median(fn, rounds = 5) {
  const samples = [];
  for (let i = 0; i < rounds; i++) {
    const t0 = performance.now();
    await fn();
    samples.push(performance.now() - t0);
  }
  return percentile(samples, 50);
}

async function thousand() {
  const dir = tempQueueDir('sched-1000');
  const setup = await Queue.open(dir, { maintenance: false, durable: false });
  for (let i = 0; i < 1000; i++) await setup.schedule(`s${i}`, { type: 'report', every: 3_600_000, data: { i } });
  await setup.close();
  const empty = tempQueueDir('sched-0');
  const before = heap();
  const q0 = await Queue.open(empty, { maintenance: false });
  await q0.recover();
  const withNone = heap() - before;
  const t0 = performance.now();
  const q = await Queue.open(dir, { sweepInterval: 3_600_000, pollInterval: 3_600_000 });
  const openMs = performance.now() - t0;
  const withThousand = heap() - before - withNone;
  const sweepMs = await median(() => q.recover());
  const listMs = await median(() => q.schedules());
  await q.close();
  await q0.close();
  console.log(
    `1,000 schedules: Queue.open (its sweep, reading them all) ${fix(openMs, 1)} ms; a sweep (recover, with the Scheduler's pass) ${fix(sweepMs, 1)} ms median; ` +
      `q.schedules() ${fix(listMs, 1)} ms; Scheduler memory ${globalThis.gc ? `${fix(withThousand / 1000 / 1024, 2)} KiB per schedule` : '(run with --expose-gc)'}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(empty, { recursive: true, force: true });
}

async function firing(/** @type {boolean} */ durable) {
  const dir = tempQueueDir('sched-fire');
  const setup = await Queue.open(dir, { maintenance: false, durable: false });
  for (let i = 0; i < 1000; i++) await setup.schedule(`f${i}`, { type: 'fire', every: 1000, overlap: 'allow' });
  await setup.close();
  const seconds = QUICK ? 2 : 4;
  const procs = await children(dir, 1, durable);
  const ready = watchReady(dir, 1000 * seconds);
  const t0 = performance.now();
  const ms = await ready;
  const took = (performance.now() - t0) / 1000;
  await stop(procs);
  console.log(
    `1,000 schedules every 1 s, 1 process, ${durable ? 'durable' : 'durable: false'}: ${fix((1000 * seconds) / took, 0)} jobs/s made; slot-to-ready ${summary(ms)}`,
  );
  fs.rmSync(dir, { recursive: true, force: true });
}

async function main() {
  console.log(`bench/schedules.js on ${os.cpus().length} cores, node ${process.version}${QUICK ? ' (quick)' : ''}`);
  await latency(1);
  await latency(3);
  await thousand();
  await firing(true);
  await firing(false);
}

if (process.argv[2] === '--child') {
  // a process with the queue open, nothing else: its Scheduler makes the jobs of due slots
  const q = await Queue.open(/** @type {string} */ (process.argv[3]), {
    create: false,
    durable: process.argv[4] !== 'fast',
  });
  const alive = setInterval(() => undefined, 1 << 30);
  process.once('SIGTERM', () => {
    clearInterval(alive);
    void q.close().then(() => process.exit(0));
  });
  process.stdout.write('ready\n');
} else {
  await main();
}
