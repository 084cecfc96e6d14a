// bench/flow.js: what pause, cancel, groups and limits cost the claim path (issue 13).
//
// Goal (FLOW brief): the claim stays cheap with pauses in force: no directory scan or file read per
// claim (the pause state is cached, refreshed by watch and poll, queue/pause-watch.ts), and the
// holder's look for cancel requests costs one readdir per heartbeat, not per claim.
//
// Cases, in one run, on one queue directory, interleaved rounds (the median of ROUNDS is reported):
//   claim, nothing paused                   the plain claim (queue.claim of a ready job)
//   claim, 10 other types paused            the claimed type is not paused; 10 types are (a Set to skip)
//   claim, whole queue paused (refused)     claim() answers undefined without touching the disk
//   claim + complete, nothing paused        for scale: a job's whole hot path
//   claim + complete, 5 jobs cancelled      the same with cancel requests waiting in cancel/
//   claim, 10,000 groups (round robin)      JOBS jobs in 10,000 groups (1,000 with BENCH_QUICK), served in turns,
//                                           against the plain claim of ungrouped jobs above (GROUPS brief)
//   claim + complete, 10,000 groups         2 x JOBS jobs in 10,000 groups: two turns of every group
//   claim + complete, concurrency limit     concurrency 1000 (never refusing): a slot taken by link(2) and given
//                                           back by unlink per job (limit-gate.ts), against claim + complete above
//   claim + complete, rate limit            rate JOBS per minute (never refusing): one token rename per job
//   claim + complete, groups, groupConc. 1  JOBS jobs in 10,000 groups under groupConcurrency 1: a group slot per job
//   heartbeat look for cancel requests      one readdir of cancel/ with 5 requests (per beat)
//   in memory: the pause check alone        PauseWatch.blocked() + ReadyIndex.take with and without the
//                                           paused types to skip, 100,000 takes (what a claim adds, without I/O)
//   in memory: take, 10,000 groups          ReadyIndex.take of 100,000 ids in 10,000 groups (round robin) against
//                                           100,000 ungrouped ids
//   in memory: bytes per waiting job        heap (after gc) of a ReadyIndex of 100,000 ids, ungrouped and in
//                                           10,000 groups, per id (the ids' strings included, as a queue holds them)
// Settings: durable: false; queue in a temp dir on the project's filesystem (BENCH_DIR to override,
// e.g. /dev/shm).
//
// Run: npm run build && node bench/flow.js     (BENCH_QUICK=1 for a smaller run; it re-runs itself under
//      node --expose-gc for the memory rows)
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../dist/index.js';
import { Layout } from '../dist/store/layout.js';
import { listCancels } from '../dist/store/cancels.js';
import { NameMaker, encodeType, groupTag } from '../dist/store/names.js';
import { PauseWatch } from '../dist/queue/pause-watch.js';
import { ReadyIndex } from '../dist/queue/ready-index.js';

if (typeof globalThis.gc !== 'function') {
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const quick = process.env.BENCH_QUICK === '1';
const base = process.env.BENCH_DIR ?? os.tmpdir();
const JOBS = quick ? 2_000 : 10_000;
const ROUNDS = quick ? 3 : 5;
const GROUPS = quick ? 1_000 : 10_000;

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/**
 * Microseconds per claim of JOBS ready jobs of type `t`, with `setup` run first (pauses).
 * @param {string} dir
 * @param {(q: Queue) => Promise<void>} setup
 * @param {boolean} complete
 * @param {number} [groups] the jobs in this many groups, else ungrouped
 * @param {number} [jobs] how many (claims without complete hold a descriptor each: at most JOBS then)
 */
async function claims(dir, setup, complete, groups, jobs = JOBS) {
  const q = await Queue.open(dir, { durable: false, maintenance: false, watch: true });
  for (let i = 0; i < jobs; i += 10_000) {
    const items = Array.from({ length: Math.min(10_000, jobs - i) }, (_, n) => ({ type: 't', data: i + n }));
    await q.enqueueMany(
      groups === undefined ? items : items.map((item) => ({ ...item, group: `tenant-${item.data % groups}` })),
    );
  }
  await setup(q);
  await q.claim({ types: ['warm-up'] }); // discovery, heartbeat and pause watch started outside the timing
  const start = performance.now();
  let n = 0;
  for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
    n++;
    if (complete) await job.complete();
  }
  const us = ((performance.now() - start) * 1000) / n;
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { us, n };
}

/** @param {string} dir */
async function refusedClaims(dir) {
  const q = await Queue.open(dir, { durable: false, maintenance: false, watch: true });
  await q.enqueueMany(Array.from({ length: 100 }, (_, i) => ({ type: 't', data: i })));
  await q.pause();
  await q.claim();
  const start = performance.now();
  for (let i = 0; i < JOBS; i++) if ((await q.claim()) !== undefined) throw new Error('claimed while paused');
  const us = ((performance.now() - start) * 1000) / JOBS;
  await q.close();
  fs.rmSync(dir, { recursive: true, force: true });
  return { us, n: JOBS };
}

/**
 * 5 jobs of another type held by another handle with their cancels requested: requests in cancel/.
 * @param {Queue} q
 */
async function fiveCancels(q) {
  const other = await Queue.open(q.dir, { durable: false, maintenance: false });
  for (let i = 0; i < 5; i++) await other.enqueue('held', i);
  for (let i = 0; i < 5; i++) {
    const job = await other.claim({ types: ['held'] });
    if (job === undefined) throw new Error('no job to hold');
    await q.cancel(job.id);
  }
  // left held: `other` is not closed until the process ends, so the requests stay
}

const cases = [
  ['claim, nothing paused', (/** @type {string} */ d) => claims(d, async () => undefined, false)],
  [
    'claim, 10 other types paused',
    (/** @type {string} */ d) =>
      claims(
        d,
        async (q) => {
          for (let i = 0; i < 10; i++) await q.pause(`other${i}`);
        },
        false,
      ),
  ],
  ['claim, whole queue paused (refused)', (/** @type {string} */ d) => refusedClaims(d)],
  [
    `claim, ${GROUPS.toLocaleString('en')} groups (round robin)`,
    (/** @type {string} */ d) => claims(d, async () => undefined, false, GROUPS),
  ],
  ['claim + complete, nothing paused', (/** @type {string} */ d) => claims(d, async () => undefined, true)],
  [
    `claim + complete, ${GROUPS.toLocaleString('en')} groups`,
    (/** @type {string} */ d) => claims(d, async () => undefined, true, GROUPS, 2 * JOBS),
  ],
  ['claim + complete, 5 cancel requests', (/** @type {string} */ d) => claims(d, fiveCancels, true)],
  // limits: high enough never to refuse, so the rows are the cost of taking and giving back, not of waiting
  [
    'claim + complete, concurrency limit (a slot per job)',
    (/** @type {string} */ d) =>
      claims(
        d,
        async (q) => {
          await q.limit('t', { concurrency: 1000 });
        },
        true,
      ),
  ],
  [
    'claim + complete, rate limit (a token per job)',
    (/** @type {string} */ d) =>
      claims(
        d,
        async (q) => {
          await q.limit('t', { rate: { max: JOBS, per: 60_000 } });
        },
        true,
      ),
  ],
  [
    `claim + complete, ${GROUPS.toLocaleString('en')} groups, groupConcurrency 1`,
    (/** @type {string} */ d) =>
      claims(
        d,
        async (q) => {
          await q.limit('t', { groupConcurrency: 1 });
        },
        true,
        GROUPS,
      ),
  ],
];

/** @type {Map<string, number[]>} */
const results = new Map(cases.map(([name]) => [/** @type {string} */ (name), []]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of cases) {
    const dir = fs.mkdtempSync(path.join(base, 'dirq-bench-flow-'));
    const { us } = await /** @type {(d: string) => Promise<{ us: number }>} */ (run)(dir);
    results.get(/** @type {string} */ (name))?.push(us);
  }
}

// the heartbeat's look for cancel requests: one readdir of cancel/ (5 requests), per beat
const dir = fs.mkdtempSync(path.join(base, 'dirq-bench-flow-'));
const q = await Queue.open(dir, { durable: false, maintenance: false });
await fiveCancels(q);
const layout = new Layout(dir);
const LOOKS = 20_000;
const t0 = performance.now();
for (let i = 0; i < LOOKS; i++) listCancels(layout);
const lookUs = ((performance.now() - t0) * 1000) / LOOKS;

// in memory: the claim index's take with and without a skip set, and the cached pause check
const TAKES = 100_000;
const tags = Array.from({ length: 10_000 }, (_, g) => groupTag(`tenant-${g}`));
/** @param {ReadonlySet<string> | undefined} skip @param {() => unknown} check @param {boolean} [grouped] */
function takes(skip, check, grouped = false) {
  const names = new NameMaker();
  const index = new ReadyIndex(10_000);
  for (let i = 0; i < TAKES; i++)
    index.add(names.id(50, i % 2 === 0 ? 't' : 'u', undefined, grouped ? tags[i % tags.length] : undefined));
  const start = performance.now();
  for (let i = 0; i < TAKES; i++) {
    check();
    index.take(undefined, skip);
  }
  return ((performance.now() - start) * 1000) / TAKES;
}
const watch = new PauseWatch(
  layout,
  { watch: false, pollInterval: 60_000 },
  () => 0,
  () => undefined,
);
await q.pause('x');
watch.start();
const skip = new Set(Array.from({ length: 10 }, (_, i) => encodeType(`other${i}`)));
const plainTake = median([
  takes(undefined, () => undefined),
  takes(undefined, () => undefined),
  takes(undefined, () => undefined),
]);
const pausedTake = median([
  takes(skip, () => watch.blocked()),
  takes(skip, () => watch.blocked()),
  takes(skip, () => watch.blocked()),
]);
watch.close();
const groupedTake = median([
  takes(undefined, () => undefined, true),
  takes(undefined, () => undefined, true),
  takes(undefined, () => undefined, true),
]);

// in memory: heap per waiting id in the index, after gc, ungrouped and in 10,000 groups
/** @param {boolean} grouped */
function bytesPerId(grouped) {
  const names = new NameMaker();
  const gc = /** @type {() => void} */ (globalThis.gc);
  gc();
  const before = process.memoryUsage().heapUsed;
  const index = new ReadyIndex(10_000);
  for (let i = 0; i < TAKES; i++) index.add(names.id(50, 't', undefined, grouped ? tags[i % tags.length] : undefined));
  gc();
  const bytes = (process.memoryUsage().heapUsed - before) / index.size;
  if (index.size !== TAKES) throw new Error('ids lost');
  return bytes;
}
const plainBytes = median([bytesPerId(false), bytesPerId(false), bytesPerId(false)]);
const groupedBytes = median([bytesPerId(true), bytesPerId(true), bytesPerId(true)]);

console.log(`bench/flow.js: ${JOBS} jobs per case, median of ${ROUNDS} rounds, on ${base}`);
for (const [name, xs] of results) console.log(`  ${name.padEnd(56)} ${median(xs).toFixed(2)} us per claim`);
console.log(`  ${'heartbeat look for cancel requests'.padEnd(40)} ${lookUs.toFixed(2)} us per beat`);
console.log(`  ${'in memory: take, no pause check'.padEnd(40)} ${plainTake.toFixed(3)} us per take`);
console.log(`  ${'in memory: blocked() + take skipping 10'.padEnd(40)} ${pausedTake.toFixed(3)} us per take`);
console.log(`  ${'in memory: take, 10,000 groups'.padEnd(40)} ${groupedTake.toFixed(3)} us per take`);
console.log(`  ${'in memory: index bytes per waiting job'.padEnd(40)} ${plainBytes.toFixed(0)} B ungrouped`);
console.log(`  ${'in memory: the same in 10,000 groups'.padEnd(40)} ${groupedBytes.toFixed(0)} B`);
process.exit(0);
