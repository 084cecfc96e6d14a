// bench/coalesce.js: what coalescing costs and what it buys (issue 15).
//
// Goal: a coalesced claim costs the same whatever the backlog (the claim stays O(1), DESIGN.md); a
// batch processor drains jobs of one key faster than one by one; jobs of no key cost the ready
// index what they did before coalescing (build time, bytes per waiting job).
//
// Cases, in one run:
//   drain, one by one                 10,000 no-op jobs over 10 coalesce keys, Pool batchSize 1
//   drain, batchSize 50               the same jobs, Pool batchSize 50 (claimMany with coalesce)
//                                     each in-process (a function) and in 1 worker thread, concurrency 1
//   claimMany, 1,000 / 100,000 waiting  us per claimed job of claimMany({ max: 50, coalesce: true }) on
//                                     1,000 jobs of one key, with 1,000 or 100,000 other jobs of the
//                                     same type waiting (other keys and no key, interleaved in time)
//   in memory: takeCoalesced          the index alone: us per take of 1,000 ids of one key among 1,000 or
//                                     100,000 others of the same type
//   in memory: index build            100,000 ReadyIndex.add in reverse id order (each add sorts into
//                                     the front: the worst case), ids of no key, then ids over 10 keys
//   in memory: bytes per waiting job  heap (after gc) of a ReadyIndex of 100,000 ids, no key and keyed
// Settings: durable: false; median of ROUNDS; each in-memory row in a fresh process; queue in a temp dir on the project's filesystem
// (BENCH_DIR to override, e.g. /dev/shm).
//
// Run: npm run build && node bench/coalesce.js     (BENCH_QUICK=1 for a smaller run; it re-runs itself
//      under node --expose-gc for the memory rows)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { batchProcessor, Pool, Queue } from '../dist/index.js';
import { coalesceTag, NameMaker } from '../dist/store/names.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

/** The in-memory rows run one per fresh process (`--row=NAME`): a heap grown by the rows before skews them. */
const row = process.argv.find((arg) => arg.startsWith('--row='))?.slice('--row='.length);
const quick = process.env.BENCH_QUICK === '1';
const base = process.env.BENCH_DIR ?? os.tmpdir();
const DRAIN = quick ? 2_000 : 10_000;
const OTHERS = quick ? 20_000 : 100_000;
const ROUNDS = quick ? 1 : 3;
const KEYS = Array.from({ length: 10 }, (_, i) => `user-${i}`);
const noop = new URL('./processors/noop-batch.js', import.meta.url).pathname;

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
/** @param {string} name */
const fresh = (name) => fs.mkdtempSync(path.join(base, `dirq-bench-coalesce-${name}-`));

/**
 * Jobs per second draining DRAIN jobs over 10 keys.
 * @param {number} batchSize
 * @param {'function' | 'thread'} runner
 */
async function drain(batchSize, runner) {
  const dir = fresh('drain');
  const q = await Queue.open(dir, { durable: false });
  for (let i = 0; i < DRAIN; i += 10_000)
    await q.enqueueMany(
      Array.from({ length: Math.min(10_000, DRAIN - i) }, (_, n) => ({
        type: 't',
        coalesce: /** @type {string} */ (KEYS[(i + n) % 10]),
      })),
    );
  await q.close();
  const processor =
    runner === 'thread'
      ? noop
      : batchSize === 1
        ? () => undefined
        : batchProcessor((jobs) => jobs.map(() => undefined));
  const pool = new Pool(dir, { processor, batchSize, durable: false });
  let done = 0;
  /** @type {() => void} */
  let all = () => undefined;
  const finished = new Promise((resolve) => (all = () => resolve(undefined)));
  pool.on('completed', () => {
    if (++done === DRAIN) all();
  });
  const start = performance.now();
  await pool.start();
  await finished;
  const rate = DRAIN / ((performance.now() - start) / 1000);
  await pool.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return rate;
}

/**
 * Microseconds per job claimed by claimMany({ max: 50, coalesce: true }), 1,000 jobs of one key among `others`.
 * @param {number} others
 */
async function claimMany(others) {
  const dir = fresh('claim');
  const q = await Queue.open(dir, { durable: false, maintenance: false });
  const mine = 1_000;
  const every = Math.max(1, Math.floor(others / mine));
  /** @type {import('../dist/index.js').EnqueueItem[]} */
  let items = [];
  for (let i = 0; i < others; i++) {
    // the key's jobs are more urgent, so each batch starts with one of them, interleaved in time with the others
    if (i % every === 0) items.push({ type: 't', priority: 40, coalesce: 'mine' });
    items.push(i % 3 === 0 ? { type: 't' } : { type: 't', coalesce: `other-${i % 1000}` });
    if (items.length >= 10_000) {
      await q.enqueueMany(items);
      items = [];
    }
  }
  if (items.length > 0) await q.enqueueMany(items);
  await q.claim({ types: ['warm-up'] }); // the index built, outside the timing
  let us = 0;
  let claimed = 0;
  for (;;) {
    const start = performance.now();
    const jobs = await q.claimMany({ types: ['t'], max: 50, coalesce: true });
    us += (performance.now() - start) * 1000;
    if (jobs.length === 0 || jobs[0]?.coalesce !== 'mine') {
      for (const job of jobs) await job.release();
      break;
    }
    claimed += jobs.length;
    for (const job of jobs) await job.complete();
  }
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  if (claimed !== mine) throw new Error(`claimed ${claimed} of the key's ${mine} jobs`);
  return us / claimed;
}

const INDEXED = 100_000;
const tags = KEYS.map((key) => coalesceTag(key));
/** @param {boolean} keyed */
function ids(keyed) {
  const names = new NameMaker();
  return Array.from({ length: INDEXED }, (_, i) =>
    names.id(50, 't', undefined, keyed ? { coalesce: tags[i % tags.length] } : undefined),
  );
}
/** Milliseconds to add INDEXED ids in reverse order. @param {boolean} keyed */
function build(keyed) {
  const all = ids(keyed);
  /** @type {() => void} */ (globalThis.gc)(); // the ids' garbage collected outside the timing
  const index = new ReadyIndex(Infinity);
  const start = performance.now();
  for (let i = all.length - 1; i >= 0; i--) index.add(/** @type {string} */ (all[i]));
  return performance.now() - start;
}
/** Heap bytes per waiting id (the ids' strings included). @param {boolean} keyed */
function bytesPerId(keyed) {
  const gc = /** @type {() => void} */ (globalThis.gc);
  gc();
  const before = process.memoryUsage().heapUsed;
  const index = new ReadyIndex(Infinity);
  for (const id of ids(keyed)) index.add(id);
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / index.size;
  if (index.size !== INDEXED) throw new Error('ids lost');
  return bytes;
}

/**
 * Microseconds per takeCoalesced of 1,000 ids of one key among `others` ids of the same type (other keys,
 * no key), in memory: the claim's own cost, without the rename and read a claim adds.
 * @param {number} others
 */
function takes(others) {
  const names = new NameMaker();
  const index = new ReadyIndex(Infinity);
  const mine = coalesceTag('mine');
  const every = Math.max(1, Math.floor(others / 1_000));
  for (let i = 0; i < others; i++) {
    if (i % every === 0) index.add(names.id(50, 't', undefined, { coalesce: mine }));
    index.add(names.id(50, 't', undefined, i % 3 === 0 ? undefined : { coalesce: tags[i % tags.length] }));
  }
  const start = performance.now();
  let n = 0;
  while (index.takeCoalesced('t', mine) !== undefined) n++;
  const us = ((performance.now() - start) * 1000) / n;
  if (n !== 1_000) throw new Error(`took ${n} of the key's 1,000`);
  return us;
}

/** @type {Record<string, () => number>} */
const ROWS = {
  // each after a warm-up of the same code, so neither pays for the JIT
  'in memory: takeCoalesced, 1,000 others': () => (takes(1_000), takes(1_000)),
  [`in memory: takeCoalesced, ${OTHERS.toLocaleString('en')} others`]: () => (takes(1_000), takes(OTHERS)),
  'index build, no key': () => build(false),
  'index build, 10 keys': () => build(true),
  'index bytes, no key': () => bytesPerId(false),
  'index bytes, 10 keys': () => bytesPerId(true),
};
if (row !== undefined) {
  console.log(ROWS[row]?.());
  process.exit(0);
}

/** @type {Map<string, number[]>} */
const results = new Map();
/** @param {string} name @param {number} value */
const record = (name, value) => results.set(name, [...(results.get(name) ?? []), value]);
for (let r = 0; r < ROUNDS; r++) {
  for (const runner of /** @type {const} */ (['function', 'thread'])) {
    record(`drain, one by one, ${runner}`, await drain(1, runner));
    record(`drain, batchSize 50, ${runner}`, await drain(50, runner));
  }
  record('claimMany, 1,000 others waiting', await claimMany(1_000));
  record(`claimMany, ${OTHERS.toLocaleString('en')} others waiting`, await claimMany(OTHERS));
  for (const name of Object.keys(ROWS)) {
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', /** @type {string} */ (process.argv[1]), `--row=${name}`],
      {
        encoding: 'utf8',
        env: process.env,
      },
    );
    if (child.status !== 0) throw new Error(`${name}: ${child.stderr}`);
    record(name, Number(child.stdout.trim()));
  }
}

/** @param {string} name */
const unit = (name) =>
  name.startsWith('drain')
    ? 'jobs/s'
    : name.startsWith('claimMany')
      ? 'us per job claimed'
      : name.startsWith('in memory')
        ? 'us per take'
        : name.startsWith('index build')
          ? `ms for ${INDEXED.toLocaleString('en')} adds, reverse order`
          : 'B per waiting job';
console.log(
  `bench/coalesce.js: ${DRAIN} jobs per drain, median of ${ROUNDS} rounds, on ${base}, Node ${process.version}`,
);
for (const [name, xs] of results) {
  const m = median(xs);
  console.log(`  ${name.padEnd(40)} ${(m >= 100 ? m.toFixed(0) : m.toFixed(2)).padStart(9)} ${unit(name)}`);
}
process.exit(0);
