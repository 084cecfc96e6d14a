/**
 * bench/core.js: the core throughput of dirqueue against the raw filesystem
 * floor measured in the same run, on the project's filesystem (os.tmpdir(),
 * ext4 here, same device as /work; DIRQUEUE_BENCH_DIR overrides) and on tmpfs
 * (/dev/shm), where only CPU counts.
 *
 * Goal (ARCHITECTURE.md, "Performance targets"; BullMQ on a local Redis measured here, 10,000 jobs):
 *   - enqueue one by one   >= 6.5k jobs/s   (BullMQ add)
 *   - enqueue in bulk      >= 14k jobs/s    (BullMQ addBulk)
 *   - drain                >= 8.7k jobs/s   (BullMQ at concurrency 50; 4.1k at 1)
 *   - a claim's cost independent of the backlog (1,000 vs 100,000 waiting)
 *   - memory per waiting job in the ready index < 200 bytes
 *   and within reach of the raw floor: the same syscalls in a plain loop.
 *   Compare at equal durability: `durable: false` against Redis without
 *   persistence, `durable: true` against Redis with appendfsync always.
 *
 * Cases (each fast case: median of --reps repetitions, default 3, each in a
 * fresh directory; the units of a repetition run in reverse order every other
 * repetition, so that drift and the neighbours' noise hit floors and cases alike):
 *   floor A          open(O_CREAT|O_EXCL)+write+close+rename tmp/ -> queue/, 10,000
 *   floor A+fsync    the same plus fdatasync of the file and fsync of queue/, 500
 *   floor A+fsync, 50 callers  the same by 50 concurrent async loops (fs.fdatasync),
 *                    sharing directory fsyncs (group commit), 500
 *   floor A bulk     write all, fdatasync them concurrently in bursts of 128 (the
 *                    next 128 written meanwhile), rename all, one dir fsync
 *   floor A bulk+syncfs  write and close all, one `sync -f` (syncfs), rename all,
 *                    one dir fsync: the floor of enqueueMany fsync (batchSync auto)
 *   floor B          rename queue/ -> active/ of existing files (those of `enqueue`)
 *   floor C          rename to active/, read, append a result, rename to done/
 *                    (the files of floor A): the raw cost of claim+complete
 *   enqueue          q.enqueue, awaited one by one: 10,000 (no fsync), 500 (fsync);
 *                    and 500 durable ones by 50 concurrent callers (group commit)
 *   enqueueMany      10,000 jobs in one call, durable false and true (batchSync
 *                    auto: one syncfs), and durable with batchSync 'fdatasync'
 *   drain            one consumer, `const j = await q.claim(); await j.complete()`,
 *                    on the 10,000 jobs of enqueueMany, timed from the first claim
 *                    (it builds the index) to the claim that finds queue/ empty;
 *                    then, once, a claim() on the emptied queue 200 ms later.
 *                    Counts renames that hit ENOENT (claims of ids that are no
 *                    longer in queue/): 0 is the healthy value for one consumer
 *   drain, yielding  the same with `await setImmediate()` after each job, as a
 *                    worker doing I/O would: watch on (the durable enqueueMany's
 *                    jobs) and watch off (floor A bulk's files)
 *   backlog          1,000 and 100,000 jobs waiting: a fresh Queue's first claim
 *                    builds the index (timed; heap before/after, with gc()), then
 *                    2,000 claim+complete with at least the backlog still waiting;
 *                    topped up between repetitions; watch on, then watch off on
 *                    the same directory. The claim-cost target is judged on the
 *                    mean claim time with watch on (the default). Then the largest
 *                    backlog once more in 10,000 groups, watch on (GROUPS brief):
 *                    index memory per job and claim cost with round robin
 * Each file is created once and consumed by the next step of its unit (jobs
 * are never created only to set up a case: creation is the expensive call on ext4).
 * Job: type "bench", data { n, to, subject } (a 134-byte file). Queue options
 * are the defaults (watch on, agingStep 10 s) except `durable`.
 * Concurrent fdatasyncs run on libuv's thread pool, 4 threads unless
 * UV_THREADPOOL_SIZE says more (the header line shows it): the durable bulk
 * cases and floor depend on it, so compare runs with the same setting.
 * On disk, finished cases are moved to trash/ and deleted only at the end:
 * this machine's ext4 has no journal, and such an ext4 creates files slowly
 * for 60-360 s after mass deletions (fs/ext4/ialloc.c, recently_deleted), so
 * absolute ext4 rates depend on what deleted files just before (the test
 * suite, a previous run): wait ~6 min between runs, compare ratios.
 *
 * Run:   cd /work/main && npx tsc -p tsconfig.json && node bench/core.js
 * Flags: --reps=N  --fs=disk|tmpfs  --quick (small sizes, a smoke test)
 *        --json=FILE (write the medians as JSON)
 *        --trash-list=FILE (append the disk run's directory to FILE instead of
 *        deleting it: bench/run.js deletes it after its last script)
 * It re-runs itself under `node --expose-gc` when gc() is not exposed.
 * Never asserts: it prints numbers for the README.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { setImmediate as tick, setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Queue } from '../dist/index.js';
import {
  benchFilesystems,
  countFailedRenames,
  envelopeLine,
  fix,
  floorCreate,
  floorCreateBulkDurable,
  floorCreateConcurrentDurable,
  floorDrain,
  floorRename,
  heapUsedAfterGc,
  int,
  makeRoot,
  median,
  payload,
  percentile,
  pool,
  printTable,
  rate,
  rawLayout,
  row,
} from './lib.js';

if (typeof globalThis.gc !== 'function') {
  const self = fileURLToPath(import.meta.url);
  const r = spawnSync(process.execPath, ['--expose-gc', ...process.execArgv, self, ...process.argv.slice(2)], {
    stdio: 'inherit',
  });
  process.exit(r.status ?? 1);
}

const args = Object.fromEntries(
  process.argv.slice(2).map((a) => {
    const [k, v] = a.replace(/^--/, '').split('=');
    return /** @type {const} */ ([/** @type {string} */ (k), v ?? true]);
  }),
);
const QUICK = args.quick === true;
const REPS = Number(args.reps ?? 3);
const SIZE = {
  one: QUICK ? 1_000 : 10_000,
  durableOne: QUICK ? 100 : 500,
  bulk: QUICK ? 1_000 : 10_000,
  durableBulk: QUICK ? 1_000 : 10_000,
  backlogs: QUICK ? [1_000, 10_000] : [1_000, 100_000],
  claims: QUICK ? 500 : 2_000,
  warmup: 500,
};
const TYPE = 'bench';
const FILL_CHUNK = 10_000;

/** @typedef {import('../dist/index.js').Queue} QueueT */
/** @typedef {ReturnType<typeof makeRoot>} Root */
/** @typedef {import('./lib.js').Row} Row */
/**
 * @typedef {{
 *   backlog: number, groups: number, watch: boolean, fillMs: number, buildMs: number, bytesPerJob: number,
 *   claimUs: { mean: number, p50: number, p99: number }, completeUsP50: number, rate: number, enoentPerClaim: number,
 * }} BacklogRow
 */

/** GROUPS (issue 13): the grouped backlog row spreads its jobs over this many groups. */
const GROUPS = 10_000;
const items = (/** @type {number} */ n, from = 0, groups = 0) =>
  Array.from({ length: n }, (_, i) =>
    groups === 0
      ? { type: TYPE, data: payload(from + i) }
      : { type: TYPE, data: payload(from + i), group: `tenant-${(from + i) % groups}` },
  );

/**
 * Enqueue `n` jobs into `q`, FILL_CHUNK per enqueueMany.
 * @param {QueueT} q
 * @param {number} n
 * @param {number} [groups] spread the jobs over this many groups (0: none)
 */
async function fill(q, n, groups = 0) {
  for (let done = 0; done < n; done += FILL_CHUNK)
    await q.enqueueMany(items(Math.min(FILL_CHUNK, n - done), done, groups));
}

/**
 * Run each named case `reps` times, alternating their order; per case an array of results.
 * @template {Record<string, () => Promise<unknown>>} C
 * @param {number} reps
 * @param {C} cases
 * @returns {Promise<{ [K in keyof C]: Awaited<ReturnType<C[K]>>[] }>}
 */
async function alternate(reps, cases) {
  /** @type {Record<string, unknown[]>} */
  const out = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  const keys = Object.keys(cases);
  for (let r = 0; r < reps; r++) {
    const order = r % 2 ? [...keys].reverse() : keys;
    for (const k of order)
      /** @type {unknown[]} */ (out[k]).push(await /** @type {() => Promise<unknown>} */ (cases[k])());
  }
  return /** @type {{ [K in keyof C]: Awaited<ReturnType<C[K]>>[] }} */ (out);
}

/**
 * The median rate of `results`, each of `x.n` jobs or else `n`.
 * @param {{ ms: number, n?: number }[]} results
 * @param {number} [n]
 */
const medianRate = (results, n) => median(results.map((x) => rate(/** @type {number} */ (x.n ?? n), x.ms)));
const lats = (/** @type {{ lat: Iterable<number> }[]} */ results) => pool(results.map((x) => x.lat));

// ---------------------------------------------------------------- library cases

/**
 * @param {string} dir
 * @param {number} n
 * @param {boolean} durable
 */
async function enqueueOneByOne(dir, n, durable) {
  const q = await Queue.open(dir, { durable });
  const lat = new Float64Array(n);
  const start = performance.now();
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await q.enqueue(TYPE, payload(i));
    lat[i] = performance.now() - t0;
  }
  const ms = performance.now() - start;
  await q.close();
  return { ms, lat };
}

/**
 * `callers` loops, each awaiting its own durable q.enqueue, together `n` jobs.
 * @param {string} dir
 * @param {number} n
 * @param {number} callers
 */
async function enqueueConcurrently(dir, n, callers) {
  const q = await Queue.open(dir, { durable: true });
  const lat = new Float64Array(n);
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: callers }, async () => {
      for (let i = next++; i < n; i = next++) {
        const t0 = performance.now();
        await q.enqueue(TYPE, payload(i));
        lat[i] = performance.now() - t0;
      }
    }),
  );
  const ms = performance.now() - start;
  await q.close();
  return { ms, lat };
}

/**
 * @param {string} dir
 * @param {number} n
 * @param {boolean} durable
 * @param {'auto' | 'fdatasync'} [batchSync]
 */
async function enqueueBulk(dir, n, durable, batchSync = 'auto') {
  const q = await Queue.open(dir, { durable, batchSync });
  const batch = items(n);
  const start = performance.now();
  await q.enqueueMany(batch);
  const ms = performance.now() - start;
  await q.close();
  return { ms };
}

/**
 * Drain every job of `dir` with one consumer; `yieldEach` lets the event loop run between jobs.
 * @param {string} dir
 * @param {{ yieldEach?: boolean, watch?: boolean }} [options]
 */
async function drain(dir, { yieldEach = false, watch = true } = {}) {
  const q = await Queue.open(dir, { durable: false, watch });
  /** @type {number[]} */
  const lat = [];
  const start = performance.now();
  for (;;) {
    const t0 = performance.now();
    const job = await q.claim();
    if (job === undefined) break;
    await job.complete();
    lat.push(performance.now() - t0);
    if (yieldEach) await tick();
  }
  const ms = performance.now() - start;
  return { ms, lat, n: lat.length, q };
}

// ---------------------------------------------------------------- one filesystem

/**
 * @param {import('./lib.js').BenchFs} target
 * @param {Record<string, Record<string, unknown>>} results
 */
async function benchFilesystem(target, results) {
  const ctx = makeRoot(target.base, { deferDelete: target.key === 'disk' });
  const sectionStart = performance.now();
  console.log(`\n=== ${target.label}: ${ctx.root}`);
  if (target.noJournal) {
    console.log(
      'note: ext4 without a journal does not reuse an inode freed in the last 60-360 s and scans past each such inode to create a\n' +
        '      file: creation is slow for minutes after mass deletions (by this bench, tests, other runs). Cases here delete\n' +
        '      nothing until the end; compare each case with its floor of the same run rather than across runs.',
    );
  }
  /** @type {Row[]} */
  const rows = [];
  /** @type {Record<string, unknown>} */
  const res = (results[target.key] = {});
  try {
    // Warm-up: JIT, page cache, dentry cache, on this filesystem.
    {
      const d = ctx.sub('warmup');
      const l = rawLayout(`${d}/raw`);
      const f = floorCreate(l, SIZE.warmup);
      floorDrain(l, f.ids);
      await enqueueOneByOne(`${d}/one`, SIZE.warmup, false);
      await enqueueBulk(`${d}/bulk`, SIZE.warmup, false);
      const dr = await drain(`${d}/bulk`);
      await dr.q.close();
      ctx.rm(d);
    }

    // 1. Durable enqueue one by one (few jobs: each fsyncs), against floor A+fsync.
    const dur = await alternate(REPS, {
      floor: async () => {
        const d = ctx.sub('floorAsync');
        const r = floorCreate(rawLayout(d), SIZE.durableOne, { durable: true });
        ctx.rm(d);
        return r;
      },
      lib: async () => {
        const d = ctx.sub('durable');
        const r = await enqueueOneByOne(d, SIZE.durableOne, true);
        ctx.rm(d);
        return r;
      },
      floorConcurrent: async () => {
        const d = ctx.sub('floorAsyncConc');
        const r = await floorCreateConcurrentDurable(rawLayout(d), SIZE.durableOne, 50);
        ctx.rm(d);
        return r;
      },
      // 50 callers awaiting their own enqueues at once: the directory fsync is shared (group commit)
      concurrent: async () => {
        const d = ctx.sub('durableConc');
        const r = await enqueueConcurrently(d, SIZE.durableOne, 50);
        ctx.rm(d);
        return r;
      },
    });

    // 2. The 10,000-job cases. Each unit makes 10,000 files in queue/ and the
    //    next step of the unit consumes them, so that no file is created
    //    only to set up a case (creation is the expensive operation on ext4).
    /** @type {{ ms: number, failed: number, found: boolean } | undefined} */
    let emptyClaim;
    const big = await alternate(REPS, {
      // floor A, then floor C (raw claim+complete) on its files
      floorAC: async () => {
        const d = ctx.sub('floorAC');
        const l = rawLayout(d);
        const a = floorCreate(l, SIZE.one);
        const c = floorDrain(l, a.ids);
        ctx.rm(d);
        return { a, c };
      },
      // enqueue one by one, then floor B (raw rename queue/ -> active/) on its files
      oneB: async () => {
        const d = ctx.sub('one');
        const one = await enqueueOneByOne(d, SIZE.one, false);
        const ids = fs.readdirSync(`${d}/queue`);
        const b = floorRename({ queue: `${d}/queue`, active: `${d}/active` }, ids);
        ctx.rm(d);
        return { one, b };
      },
      // enqueueMany, then drain its jobs with one consumer
      bulkDrain: async () => {
        const d = ctx.sub('bulk');
        const bulk = await enqueueBulk(d, SIZE.bulk, false);
        const { failed: drainFailed, value } = await countFailedRenames(() => drain(d));
        const dr = { ...value, failed: drainFailed };
        if (emptyClaim === undefined) {
          // A claim on the queue just emptied, once the watcher delivered the drain's events.
          await sleep(200);
          const t0 = performance.now();
          const { failed, value: job } = await countFailedRenames(() => dr.q.claim());
          emptyClaim = { ms: performance.now() - t0, failed, found: job !== undefined };
        }
        await dr.q.close();
        ctx.rm(d);
        return { bulk, drain: dr };
      },
      // floor A bulk+fsync, then a yielding drain with watch off on its files
      floorSyncPoll: async () => {
        const d = ctx.sub('floorBulk');
        const floor = await floorCreateBulkDurable(rawLayout(d), SIZE.durableBulk);
        const { failed, value: dr } = await countFailedRenames(() => drain(d, { yieldEach: true, watch: false }));
        await dr.q.close();
        ctx.rm(d);
        return { floor, poll: { ...dr, failed } };
      },
      // floor A bulk+syncfs: the floor of enqueueMany durable with batchSync 'auto'
      floorSyncfs: async () => {
        const d = ctx.sub('floorBulkSyncfs');
        const floor = await floorCreateBulkDurable(rawLayout(d), SIZE.durableBulk, { syncfs: true });
        ctx.rm(d);
        return { floor };
      },
      // enqueueMany durable with an fdatasync per file (batchSync 'fdatasync')
      syncStrict: async () => {
        const d = ctx.sub('bulkSyncStrict');
        const bulk = await enqueueBulk(d, SIZE.durableBulk, true, 'fdatasync');
        ctx.rm(d);
        return { bulk };
      },
      // enqueueMany durable, then a yielding drain with watch on
      syncWatch: async () => {
        const d = ctx.sub('bulkSync');
        const bulk = await enqueueBulk(d, SIZE.durableBulk, true);
        const { failed, value: dr } = await countFailedRenames(() => drain(d, { yieldEach: true, watch: true }));
        await dr.q.close();
        ctx.rm(d);
        return { bulk, watch: { ...dr, failed } };
      },
    });
    /**
     * One field of a unit's results, per repetition.
     * @template {keyof typeof big} U
     * @template {keyof (typeof big)[U][number]} F
     * @param {U} unit
     * @param {F} field
     * @returns {(typeof big)[U][number][F][]}
     */
    const pick = (unit, field) => big[unit].map((x) => x[field]);

    const floorA = { name: 'A create+rename', rate: medianRate(pick('floorAC', 'a'), SIZE.one) };
    const floorAsync = { name: 'A+fsync', rate: medianRate(dur.floor, SIZE.durableOne) };
    const floorAsyncConc = { name: 'A+fsync, 50 callers', rate: medianRate(dur.floorConcurrent, SIZE.durableOne) };
    const floorBulk = { name: 'A bulk+fsync', rate: medianRate(pick('floorSyncPoll', 'floor'), SIZE.durableBulk) };
    const floorB = { name: 'B rename', rate: medianRate(pick('oneB', 'b'), SIZE.one) };
    const floorC = { name: 'C claim+complete', rate: medianRate(pick('floorAC', 'c'), SIZE.one) };
    rows.push(row(`floor A (${int(SIZE.one)})`, { rate: floorA.rate, lat: lats(pick('floorAC', 'a')) }));
    rows.push(row(`floor A+fsync (${int(SIZE.durableOne)})`, { rate: floorAsync.rate, lat: lats(dur.floor) }));
    rows.push(
      row(`floor A+fsync, 50 callers (${int(SIZE.durableOne)})`, {
        rate: floorAsyncConc.rate,
        lat: lats(dur.floorConcurrent),
      }),
    );
    rows.push(row(`floor A bulk+fsync (${int(SIZE.durableBulk)})`, { rate: floorBulk.rate }));
    const floorSyncfs = { name: 'A bulk+syncfs', rate: medianRate(pick('floorSyncfs', 'floor'), SIZE.durableBulk) };
    rows.push(row(`floor A bulk+syncfs (${int(SIZE.durableBulk)})`, { rate: floorSyncfs.rate }));
    rows.push(row(`floor B (${int(SIZE.one)})`, { rate: floorB.rate, lat: lats(pick('oneB', 'b')) }));
    rows.push(row(`floor C (${int(SIZE.one)})`, { rate: floorC.rate, lat: lats(pick('floorAC', 'c')) }));
    rows.push(
      row(`enqueue, no fsync (${int(SIZE.one)})`, {
        rate: medianRate(pick('oneB', 'one'), SIZE.one),
        lat: lats(pick('oneB', 'one')),
        floor: floorA,
      }),
    );
    rows.push(
      row(`enqueue, fsync (${int(SIZE.durableOne)})`, {
        rate: medianRate(dur.lib, SIZE.durableOne),
        lat: lats(dur.lib),
        floor: floorAsync,
      }),
    );
    rows.push(
      row(`enqueue, fsync, 50 callers (${int(SIZE.durableOne)})`, {
        rate: medianRate(dur.concurrent, SIZE.durableOne),
        lat: lats(dur.concurrent),
        floor: floorAsyncConc,
      }),
    );
    rows.push(
      row(`enqueueMany, no fsync (${int(SIZE.bulk)})`, {
        rate: medianRate(pick('bulkDrain', 'bulk'), SIZE.bulk),
        floor: floorA,
      }),
    );
    rows.push(
      row(`enqueueMany, fsync (${int(SIZE.durableBulk)})`, {
        rate: medianRate(pick('syncWatch', 'bulk'), SIZE.durableBulk),
        floor: floorSyncfs,
      }),
    );
    rows.push(
      row(`enqueueMany, fsync, per file (${int(SIZE.durableBulk)})`, {
        rate: medianRate(pick('syncStrict', 'bulk'), SIZE.durableBulk),
        floor: floorBulk,
      }),
    );
    const short = (/** @type {{ n: number }[]} */ runs) =>
      runs.some((x) => x.n !== SIZE.bulk) ? ` drained ${runs.map((x) => x.n).join('/')} jobs!` : '';
    rows.push(
      row(`drain, 1 consumer (${int(SIZE.bulk)})`, {
        rate: medianRate(pick('bulkDrain', 'drain')),
        lat: lats(pick('bulkDrain', 'drain')),
        floor: floorC,
        note: `ENOENT renames/job ${fix(median(pick('bulkDrain', 'drain').map((x) => x.failed / x.n)), 2)}${short(pick('bulkDrain', 'drain'))}`,
      }),
    );
    for (const [runs, label] of /** @type {const} */ ([
      [pick('syncWatch', 'watch'), 'watch on'],
      [pick('floorSyncPoll', 'poll'), 'watch off'],
    ])) {
      rows.push(
        row(`drain, yielding, ${label} (${int(SIZE.durableBulk)})`, {
          rate: medianRate(runs),
          lat: lats(runs),
          floor: floorC,
          note: `ENOENT renames/job ${fix(median(runs.map((x) => x.failed / x.n)), 2)}${short(runs)}`,
        }),
      );
    }

    console.log(`median of ${REPS} repetitions; p50/p99 per job over all repetitions; ratio = jobs/s / floor/s`);
    printTable(rows);
    if (emptyClaim === undefined) throw new Error('no repetition ran (--reps=0?)');
    console.log(
      `claim() on an empty queue 200 ms after a ${int(SIZE.bulk)}-job drain (watch on): ${fix(emptyClaim.ms)} ms, ` +
        `${int(emptyClaim.failed)} renames hit ENOENT${emptyClaim.found ? ' (found a job!)' : ''}`,
    );
    for (const r of rows)
      res[r.name] = { rate: r.rate, p50us: r.p50, p99us: r.p99, floor: r.floor?.rate, note: r.note };
    res.emptyClaim = emptyClaim;

    // 7. Claim cost and index memory with 1,000 vs 100,000 jobs waiting.
    /** @type {BacklogRow[]} */
    const backlogRows = [];
    for (const backlog of SIZE.backlogs) backlogRows.push(...(await backlogCase(ctx, backlog)));
    // the largest backlog again in 10,000 groups (watch on): index memory and claim cost with round robin
    backlogRows.push(...(await backlogCase(ctx, SIZE.backlogs.at(-1) ?? 1000, GROUPS)));
    console.log(
      `\nbacklog: fresh Queue per repetition; its first claim builds the index; then ${int(SIZE.claims)} claim+complete ` +
        `with >= backlog waiting\n(median of ${REPS}; claim mean/p50/p99 over all; watch off = poll only, on the same directory)`,
    );
    printBacklog(backlogRows);
    res.backlog = backlogRows;
    summarize(target, rows, backlogRows);
  } finally {
    if (typeof args['trash-list'] === 'string' && target.key === 'disk') {
      // bench/run.js deletes it after the last script, so that the next script's creations on this
      // filesystem do not run in the slow minutes after a mass deletion (see the header)
      fs.appendFileSync(args['trash-list'], `${ctx.root}\n`);
    } else {
      ctx.rm();
    }
    const seconds = (performance.now() - sectionStart) / 1000;
    res.seconds = seconds;
    console.log(`(${target.label}: ${fix(seconds)} s with cleanup)`);
  }
}

/**
 * With `backlog` jobs waiting: per repetition a fresh Queue, its first claim
 * (builds the index; heap before/after), then SIZE.claims claim+complete.
 * Run with watch on (the default), then with watch off on the same directory.
 * @param {Root} ctx
 * @param {number} backlog
 * @returns {Promise<BacklogRow[]>}
 */
async function backlogCase(ctx, backlog, groups = 0) {
  const dir = ctx.sub(`backlog${backlog}${groups === 0 ? '' : `g${groups}`}`);
  const writer = await Queue.open(dir, { durable: false });
  const fillStart = performance.now();
  await fill(writer, backlog + SIZE.claims + 1, groups);
  const fillMs = performance.now() - fillStart;
  /** @type {BacklogRow[]} */
  const out = [];
  for (const watch of groups === 0 ? [true, false] : [true]) {
    /** @type {number[]} */
    const builds = [];
    /** @type {number[]} */
    const bytes = [];
    /** @type {number[]} */
    const claimLat = [];
    /** @type {number[]} */
    const completeLat = [];
    /** @type {number[]} */
    const rates = [];
    let failed = 0;
    for (let r = 0; r < REPS; r++) {
      if (out.length > 0 || r > 0) await fill(writer, SIZE.claims + 1, groups); // back to backlog + claims + 1 waiting
      // In its own function, so that no register of this frame keeps the
      // previous repetition's Queue (and its index) alive into the heap reading.
      const one = await backlogRepetition(dir, backlog, watch);
      builds.push(one.buildMs);
      bytes.push(one.bytesPerJob);
      claimLat.push(...one.claimLat);
      completeLat.push(...one.completeLat);
      rates.push(one.rate);
      failed += one.failed;
    }
    out.push({
      backlog,
      groups,
      watch,
      fillMs,
      buildMs: median(builds),
      bytesPerJob: median(bytes),
      claimUs: {
        mean: (claimLat.reduce((a, b) => a + b, 0) / claimLat.length) * 1000,
        p50: percentile(claimLat, 50) * 1000,
        p99: percentile(claimLat, 99) * 1000,
      },
      completeUsP50: percentile(completeLat, 50) * 1000,
      rate: median(rates),
      enoentPerClaim: failed / (REPS * SIZE.claims),
    });
  }
  await writer.close();
  ctx.rm(dir);
  return out;
}

/**
 * @param {string} dir
 * @param {number} backlog
 * @param {boolean} watch
 */
async function backlogRepetition(dir, backlog, watch) {
  /** @type {QueueT | undefined} */
  let q = await Queue.open(dir, { durable: false, watch });
  const before = heapUsedAfterGc();
  const t0 = performance.now();
  const first = await q.claim();
  const buildMs = performance.now() - t0;
  const after = heapUsedAfterGc();
  if (first === undefined) throw new Error(`backlog: no job waiting in ${dir}`);
  await first.complete();
  /** @type {number[]} */
  const claimLat = [];
  /** @type {number[]} */
  const completeLat = [];
  const start = performance.now();
  const { failed } = await countFailedRenames(async () => {
    for (let i = 0; i < SIZE.claims; i++) {
      const c0 = performance.now();
      const job = await /** @type {QueueT} */ (q).claim();
      const c1 = performance.now();
      if (job === undefined) throw new Error(`backlog: no job waiting in ${dir}`);
      await job.complete();
      claimLat.push(c1 - c0);
      completeLat.push(performance.now() - c1);
    }
  });
  const ms = performance.now() - start;
  await q.close();
  q = undefined;
  return {
    buildMs,
    bytesPerJob: (after - before) / (backlog + SIZE.claims),
    claimLat,
    completeLat,
    rate: rate(SIZE.claims, ms),
    failed,
  };
}

/** @param {BacklogRow[]} rows */
function printBacklog(rows) {
  const head = [
    'waiting',
    'groups',
    'watch',
    'fill ms',
    'index build ms',
    'claim us mean',
    'p50',
    'p99',
    'complete us p50',
    'claim+complete/s',
    'ENOENT/claim',
    'index bytes/job',
  ];
  const body = rows.map((r) => [
    int(r.backlog),
    r.groups === 0 ? '-' : int(r.groups),
    r.watch ? 'on' : 'off',
    int(r.fillMs),
    fix(r.buildMs),
    fix(r.claimUs.mean),
    fix(r.claimUs.p50),
    fix(r.claimUs.p99),
    fix(r.completeUsP50),
    int(r.rate),
    fix(r.enoentPerClaim, 2),
    fix(r.bytesPerJob, 0),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...body.map((b) => /** @type {string} */ (b[i]).length)));
  const fmt = (/** @type {string[]} */ cells) =>
    cells.map((c, i) => c.padStart(/** @type {number} */ (w[i]))).join('  ');
  console.log(fmt(head));
  console.log(w.map((x) => '-'.repeat(x)).join('  '));
  for (const b of body) console.log(fmt(b));
}

/**
 * The performance targets (ARCHITECTURE.md) against this filesystem's medians: labels, never assertions.
 * @param {import('./lib.js').BenchFs} target
 * @param {Row[]} rows
 * @param {BacklogRow[]} backlogRows
 */
function summarize(target, rows, backlogRows) {
  const get = (/** @type {string} */ prefix) => {
    const r = rows.find((x) => x.name.startsWith(prefix));
    if (r === undefined) throw new Error(`summarize: no row named ${prefix}...`);
    return r;
  };
  const on = backlogRows.filter((r) => r.watch && r.groups === 0);
  const small = /** @type {BacklogRow} */ (on[0]);
  const big = /** @type {BacklogRow} */ (on[on.length - 1]);
  const growth = big.claimUs.mean / small.claimUs.mean;
  /** @type {(prefix: string) => [string, string]} */
  const perSec = (prefix) => {
    const r = get(prefix);
    return [`${int(r.rate)}/s`, r.floor ? `floor ${int(r.floor.rate)}/s` : ''];
  };
  /** @type {[string, string, string, string, boolean][]} */
  const lines = [
    [
      'enqueue one by one, no fsync',
      ...perSec('enqueue, no fsync'),
      '>= 6,500/s (BullMQ add)',
      get('enqueue, no fsync').rate >= 6500,
    ],
    [
      'enqueueMany, no fsync',
      ...perSec('enqueueMany, no fsync'),
      '>= 14,000/s (BullMQ addBulk)',
      get('enqueueMany, no fsync').rate >= 14000,
    ],
    [
      'drain, 1 consumer',
      ...perSec('drain, 1 consumer'),
      '>= 8,700/s (BullMQ, concurrency 50)',
      get('drain, 1 consumer').rate >= 8700,
    ],
    [
      'claim cost (mean), backlog growth',
      `${fix(growth, 2)}x`,
      `${fix(small.claimUs.mean)} -> ${fix(big.claimUs.mean)} us`,
      `~1x, ${int(small.backlog)} -> ${int(big.backlog)} waiting`,
      growth <= 1.5,
    ],
    [
      'index memory per waiting job',
      `${fix(big.bytesPerJob, 0)} B`,
      `${int(big.backlog)} waiting`,
      '< 200 bytes',
      big.bytesPerJob < 200,
    ],
  ];
  const grouped = backlogRows.find((r) => r.groups > 0);
  if (grouped !== undefined) {
    lines.push([
      `index memory per waiting job, ${int(grouped.groups)} groups`,
      `${fix(grouped.bytesPerJob, 0)} B`,
      `${int(grouped.backlog)} waiting`,
      '< 200 bytes',
      grouped.bytesPerJob < 200,
    ]);
  }
  console.log(`\ntargets on ${target.label} (a miss with a ratio near 1 is the filesystem, not dirqueue):`);
  for (const [name, value, floor, goal, ok] of lines) {
    console.log(
      `  ${name.padEnd(34)} ${value.padStart(10)}  ${floor.padEnd(22)} goal ${goal.padEnd(36)} ${ok ? 'meets' : 'MISSES'}`,
    );
  }
}

// ---------------------------------------------------------------- main

const started = performance.now();
const head = spawnSync(
  'git',
  ['-C', fileURLToPath(new URL('..', import.meta.url)), 'describe', '--always', '--dirty'],
  { encoding: 'utf8' },
);
const built = fs.statSync(new URL('../dist/index.js', import.meta.url)).mtime.toISOString();
console.log(`dirqueue ${head.stdout?.trim() || '(no git)'}, dist built ${built}`);
console.log(
  `dirqueue bench/core.js  node ${process.version}  ${process.platform}/${process.arch}  reps=${REPS}${QUICK ? '  QUICK' : ''}  ` +
    `job file ${Buffer.byteLength(envelopeLine(TYPE, 1234))} bytes  UV_THREADPOOL_SIZE=${process.env.UV_THREADPOOL_SIZE ?? '(unset: 4)'}`,
);
/** @type {Record<string, Record<string, unknown>>} */
const results = {};
for (const target of benchFilesystems()) {
  if (args.fs !== undefined && args.fs !== target.key) continue;
  await benchFilesystem(target, results);
}
console.log(`\ncore.js took ${fix((performance.now() - started) / 1000)} s`);
if (typeof args.json === 'string')
  fs.writeFileSync(args.json, `${JSON.stringify({ node: process.version, reps: REPS, results }, null, 2)}\n`);
