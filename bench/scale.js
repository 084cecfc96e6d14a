/**
 * bench/scale.js: dirqueue at the sizes a busy queue reaches, and whether
 * anything on a hot path grows with them.
 *
 * Goal (issue 11, "Scale limits"; ARCHITECTURE.md's targets): a claim's cost
 * independent of the backlog, < 200 bytes of index per waiting job, and no
 * hot-path operation (claim, complete, enqueue, waitFor) that lists a
 * directory or reads every job file, at:
 *   million    1,000,000 jobs waiting in queue/ (one type): Queue.open time, the
 *              first claim (it builds the index: ready to claim), RSS and heap
 *              after it, then 2,000 claim+complete, 200 enqueues and 200 waitFor
 *              with the fs calls each makes counted (directory listings, opens);
 *              one maintenance sweep (q.recover(), what each process runs every
 *              sweepInterval), its time and fs calls; the periodic rescan (what
 *              discovery does every rescanInterval, 30 s: a listing of queue/ in
 *              slices, in the background): the longest the event loop was held
 *              while a queue rescanned every 500 ms for 2.2 s; `dirq stats` and
 *              `dirq ls --limit 10` and `--limit 20` (wall time and max RSS of
 *              the process: issue 17 asks both to stay cheap at a million).
 *              The same probe on a queue of 2,001 jobs is the empty baseline.
 *   failed     100,000 jobs in failed/ (each with an error event): `dirq stats`,
 *              `dirq ls DIR failed --limit 10` and `--limit 20`, `dirq retry DIR --all`,
 *              then `dirq stats` again (every job retried into queue/).
 *   maxbytes   a job whose file is exactly maxJobBytes (16 MiB by default):
 *              enqueue, claim, complete, then q.get and waitFor of it in done/.
 *   types      100,000 jobs over 10,000 types (10 each): claim cost without a
 *              types filter, with a one-type filter (a different type each
 *              claim) and with a 100-type filter; index heap per job.
 * Each probe runs in a fresh child process (node --expose-gc) so that its RSS
 * and heap are its own. Queue options are the defaults (watch on,
 * maintenance on, durable true for the Queue of a probe; its enqueues are
 * durable: false, to measure the queue rather than fsync).
 *
 * Setup: the million and failed/ files are written by a direct writer that
 * follows FORMAT.md (one envelope line, the library's id grammar) straight into
 * their state directory while no queue is open (a writer for a live queue goes
 * through tmp/ and a rename: that is what the enqueueMany rate beside it
 * measures, on 50,000 of the jobs). Everything lives on a tmpfs this script
 * mounts for itself (root; 12 GiB limit, about 5 GiB used at a million
 * jobs), unmounted at the end: this machine's ext4 has no journal, and a
 * million deletions there slow every file creation on the disk for minutes
 * after (see bench/lib.js, describeFs). Without root, --dir=PATH names a
 * directory to use instead (its filesystem is printed; it is emptied at the end).
 *
 * Settings: --jobs=N (default 1,000,000), --failed=N (100,000), --types=N
 * (10,000), --only=million,failed,maxbytes,types; BENCH_QUICK=1 (bench/run.js
 * --quick) divides the sizes by 10. About 3-4 minutes here in all.
 *
 * Run: npm run build && node bench/scale.js   (as root). Never asserts.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Queue } from '../dist/index.js';
import { envelopeLine, fix, fsTypeOf, heapUsedAfterGc, int, percentile } from './lib.js';

const here = path.dirname(fileURLToPath(import.meta.url));
const CLI = path.join(here, '../dist/cli/main.js');
const { values: args } = parseArgs({
  options: {
    jobs: { type: 'string' },
    failed: { type: 'string' },
    types: { type: 'string' },
    only: { type: 'string' },
    dir: { type: 'string' },
    probe: { type: 'string' },
    queue: { type: 'string' },
  },
});
const QUICK = process.env.BENCH_QUICK === '1';
/**
 * @param {'jobs' | 'failed' | 'types'} name
 * @param {number} full
 */
const size = (name, full) => Number(args[name] ?? (QUICK ? full / 10 : full));
const SIZE = { jobs: size('jobs', 1_000_000), failed: size('failed', 100_000), types: size('types', 10_000) };
const CLAIMS = 2_000;
const MIB = 1024 * 1024;

// ---------------------------------------------------------------- the direct writer

const NONCE = 'sc4le0';
let clock = Math.floor(Date.now() * 1000) - 3_600_000_000; // an hour ago: ages are realistic, nothing is "early"
/** A job id of the library's grammar (FORMAT.md, "File names"). */
const idOf = (/** @type {string} */ type) => `50-${String(++clock).padStart(16, '0')}-${NONCE}.${type}`;

/**
 * Write `n` job files straight into `dir/state/` (no queue open), `typeOf(i)` their types; returns the ms it took.
 * @param {string} dir
 * @param {'queue' | 'failed'} state
 * @param {number} n
 * @param {(i: number) => string} typeOf
 * @param {(i: number) => string} [extra] what follows the envelope line (events)
 * @returns {number}
 */
function writeDirect(dir, state, n, typeOf, extra = () => '') {
  const t0 = performance.now();
  const into = path.join(dir, state);
  for (let i = 0; i < n; i++) {
    const type = typeOf(i);
    fs.writeFileSync(path.join(into, idOf(type)), envelopeLine(type, i) + extra(i));
  }
  return performance.now() - t0;
}

// ---------------------------------------------------------------- probes (child processes)

/** @typedef {(...a: unknown[]) => unknown} AnyFunction */

/**
 * Count the calls of `names` on the shared fs object while `fn` runs (the library calls through it).
 * @template T
 * @param {string[]} names
 * @param {() => Promise<T>} fn
 * @returns {Promise<{ counts: Record<string, number>, value: T }>}
 */
async function counting(names, fn) {
  /** @type {Record<string, number>} */
  const counts = Object.fromEntries(names.map((n) => [n, 0]));
  const saved = names.map((name) => {
    const [owner, key] = /** @type {[Record<string, unknown>, string]} */ (
      name.startsWith('promises.') ? [fs.promises, name.slice(9)] : [fs, name]
    );
    const original = /** @type {AnyFunction} */ (owner[key]);
    /**
     * @this {unknown}
     * @param {unknown[]} a
     */
    owner[key] = function counted(...a) {
      counts[name] = (counts[name] ?? 0) + 1;
      return original.apply(this, a);
    };
    return () => (owner[key] = original);
  });
  try {
    const value = await fn();
    return { counts, value };
  } finally {
    for (const restore of saved) restore();
  }
}

const LISTINGS = ['readdirSync', 'promises.readdir', 'opendirSync', 'promises.opendir', 'readdir', 'opendir'];
const OPENS = ['openSync', 'promises.open', 'open', 'readFileSync'];
/** @param {Record<string, number>} c */
const listed = (c) => LISTINGS.reduce((s, n) => s + (c[n] ?? 0), 0);
/** @param {Record<string, number>} c */
const opened = (c) => OPENS.reduce((s, n) => s + (c[n] ?? 0), 0);
const rss = () => process.memoryUsage().rss;
const us = (/** @type {number} */ ms) => ms * 1000;

/**
 * The million (or baseline) probe: open, first claim, then hot-path operations with their fs calls counted.
 * @param {string} dir
 */
async function probeBacklog(dir) {
  const rss0 = rss();
  const heap0 = heapUsedAfterGc();
  let t0 = performance.now();
  const q = await Queue.open(dir, { durable: false });
  const openMs = performance.now() - t0;
  t0 = performance.now();
  const first = await q.claim();
  const readyMs = performance.now() - t0;
  if (first === undefined) throw new Error(`no job to claim in ${dir}/queue`);
  const heap1 = heapUsedAfterGc();
  const rss1 = rss();
  await first.complete();
  const waiting = fs.readdirSync(path.join(dir, 'queue')).length; // outside the counted windows
  /** @type {number[]} */
  const claimLat = [];
  /** @type {number[]} */
  const completeLat = [];
  const hot = await counting([...LISTINGS, ...OPENS], async () => {
    for (let i = 0; i < CLAIMS; i++) {
      const a = performance.now();
      const job = await q.claim({ types: ['bench'] });
      const b = performance.now();
      if (job === undefined) throw new Error(`no job of type bench for claim ${i + 1} of ${CLAIMS}`);
      await job.complete({ ok: i });
      completeLat.push(performance.now() - b);
      claimLat.push(b - a);
    }
  });
  /** @type {number[]} */
  const enqueueLat = [];
  /** @type {import('../dist/index.js').JobRef[]} */
  const refs = [];
  const enq = await counting([...LISTINGS, ...OPENS], async () => {
    for (let i = 0; i < 200; i++) {
      const a = performance.now();
      refs.push(await q.enqueue('later', { i }, { priority: 99 }));
      enqueueLat.push(performance.now() - a);
    }
  });
  // waitFor of jobs that end while it waits: claim each of the 200 (filter: only 'later'), start waitFor, complete
  /** @type {number[]} */
  const waitLat = [];
  const wait = await counting([...LISTINGS, ...OPENS], async () => {
    for (const { id } of refs) {
      const job = await q.claim({ types: ['later'] });
      if (job === undefined) throw new Error(`no job of type later for ${id}`);
      const a = performance.now();
      const result = q.waitFor(id, { timeout: 10_000 });
      await job.complete(id);
      await result;
      waitLat.push(performance.now() - a);
    }
  });
  // one maintenance sweep (what each process runs every sweepInterval), its fs calls counted
  t0 = performance.now();
  const sweep = await counting([...LISTINGS, ...OPENS], () => q.recover());
  const sweepMs = performance.now() - t0;
  await q.close();
  const rescan = await probeRescan(dir);
  return {
    waiting,
    openMs,
    readyMs,
    rssMiB: rss1 / MIB,
    rssGrowthMiB: (rss1 - rss0) / MIB,
    heapPerJob: (heap1 - heap0) / waiting,
    claimUs: {
      mean: us(claimLat.reduce((s, x) => s + x, 0) / claimLat.length),
      p50: us(percentile(claimLat, 50)),
      p99: us(percentile(claimLat, 99)),
    },
    completeUsP50: us(percentile(completeLat, 50)),
    enqueueUsP50: us(percentile(enqueueLat, 50)),
    waitForUsP50: us(percentile(waitLat, 50)),
    calls: {
      claimComplete: { listings: listed(hot.counts), opensPerJob: opened(hot.counts) / CLAIMS },
      enqueue: { listings: listed(enq.counts), opensPerJob: opened(enq.counts) / refs.length },
      waitFor: { listings: listed(wait.counts), opensPerJob: opened(wait.counts) / refs.length },
    },
    sweep: { ms: sweepMs, listings: listed(sweep.counts), opens: opened(sweep.counts) },
    rescan,
  };
}

/**
 * What the periodic rescan (the floor under watching, every rescanInterval) costs the event loop: a queue
 * that rescans every 500 ms, its index built, watched for 2.2 s with a 1 ms timer; the longest the loop was
 * held, and how many listings of queue/ ran meanwhile.
 * @param {string} dir
 */
async function probeRescan(dir) {
  const q = await Queue.open(dir, { durable: false, rescanInterval: 500 });
  await q.claim({ types: ['no-such-type'] }); // builds the index
  const delay = monitorEventLoopDelay({ resolution: 1 });
  delay.enable();
  const { counts } = await counting(LISTINGS, () => new Promise((resolve) => setTimeout(resolve, 2200)));
  delay.disable();
  await q.close();
  return { stallMs: delay.max / 1e6, listings: listed(counts) };
}

/** @typedef {{ name: string, ms: number, value?: unknown, error?: string }} Step */

/**
 * The maxJobBytes probe: a job whose file is exactly the limit, enqueued, claimed, completed, read back.
 * @param {string} dir
 */
async function probeMaxBytes(dir) {
  const q = await Queue.open(dir, { durable: false });
  const limit = q.options.maxJobBytes;
  // the envelope's overhead around the data string: measured on a job of the same shape, then removed
  const probe = await q.enqueue('big', 'x'.repeat(1000));
  const overhead = fs.statSync(path.join(dir, 'queue', probe.id)).size - 1000;
  await q.remove(probe.id);
  const data = 'x'.repeat(limit - overhead);
  /**
   * @template T
   * @param {string} name
   * @param {() => Promise<T>} fn
   * @returns {Promise<Step & { value?: T }>}
   */
  const step = async (name, fn) => {
    const t0 = performance.now();
    try {
      const value = await fn();
      return { name, ms: performance.now() - t0, value };
    } catch (thrown) {
      const error = /** @type {Error & { code?: string }} */ (thrown);
      return { name, ms: performance.now() - t0, error: `${error.code ?? ''} ${error.message}`.trim() };
    }
  };
  const rss0 = rss();
  /** @type {Step[]} */
  const steps = [];
  const enq = await step('enqueue', () => q.enqueue('big', data));
  steps.push(enq);
  // a failed step has no value: a failed enqueue ends the probe here, a failed claim fails the complete step
  const id = /** @type {import('../dist/index.js').JobRef} */ (enq.value).id;
  const size = fs.statSync(path.join(dir, 'queue', id)).size;
  const claim = await step('claim', () => q.claim());
  steps.push(claim);
  steps.push(
    await step('complete', () => /** @type {import('../dist/index.js').Job} */ (claim.value).complete('done')),
  );
  steps.push(await step('waitFor (in done/)', () => q.waitFor(id, { timeout: 10_000 })));
  steps.push(await step('get (in done/)', () => q.get(id)));
  const doneSize = fs.statSync(path.join(dir, 'done', id)).size;
  const peakRssMiB = process.resourceUsage().maxRSS / 1024;
  await q.close();
  return {
    limit,
    size,
    doneSize,
    rssBeforeMiB: rss0 / MIB,
    peakRssMiB,
    steps: steps.map(({ name, ms, value, error }) => ({
      name,
      ms,
      error,
      state: /** @type {{ state?: string } | undefined} */ (value)?.state, // get's (JobInfo)
      result: name.startsWith('waitFor') ? value : undefined,
    })),
  };
}

/**
 * The types probe: claim cost without and with a types filter among TYPES types.
 * @param {string} dir
 * @param {number} types
 */
async function probeTypes(dir, types) {
  const heap0 = heapUsedAfterGc();
  const q = await Queue.open(dir, { durable: false });
  const first = await q.claim();
  const heap1 = heapUsedAfterGc();
  if (first === undefined) throw new Error(`no job to claim in ${dir}/queue`);
  await first.complete();
  const waiting = fs.readdirSync(path.join(dir, 'queue')).length;
  const typeName = (/** @type {number} */ k) => `t${String(k).padStart(5, '0')}`;
  /** @param {(i: number) => string[] | undefined} filterOf */
  const measure = async (filterOf) => {
    /** @type {number[]} */
    const lat = [];
    const { counts } = await counting([...LISTINGS, ...OPENS], async () => {
      for (let i = 0; i < CLAIMS; i++) {
        const filter = filterOf(i);
        const a = performance.now();
        const job = await q.claim(filter === undefined ? {} : { types: filter });
        lat.push(performance.now() - a);
        if (job === undefined) throw new Error(`no job for ${JSON.stringify(filter)}`);
        await job.complete();
      }
    });
    return {
      mean: us(lat.reduce((s, x) => s + x, 0) / lat.length),
      p50: us(percentile(lat, 50)),
      p99: us(percentile(lat, 99)),
      listings: listed(counts),
      opensPerClaim: opened(counts) / CLAIMS,
    };
  };
  const none = await measure(() => undefined);
  const one = await measure((i) => [typeName((i * 7919) % types)]); // a different type each claim, spread over all
  const hundred = await measure((i) => Array.from({ length: 100 }, (_, k) => typeName((i * 7919 + k * 97) % types)));
  await q.close();
  return { waiting, types, heapPerJob: (heap1 - heap0) / waiting, none, one, hundred };
}

if (args.probe !== undefined) {
  const queue = /** @type {string} */ (args.queue); // probe() passes --queue with --probe
  const out =
    args.probe === 'backlog'
      ? await probeBacklog(queue)
      : args.probe === 'maxbytes'
        ? await probeMaxBytes(queue)
        : await probeTypes(queue, SIZE.types);
  process.stdout.write(`${JSON.stringify(out)}\n`);
  process.exit(0);
}

// ---------------------------------------------------------------- the parent

/**
 * Run a probe in a fresh node --expose-gc; its JSON line.
 * @template {keyof Probes} P
 * @param {P} name
 * @param {string} dir
 * @returns {Probes[P]}
 */
function probe(name, dir) {
  const r = spawnSync(
    process.execPath,
    ['--expose-gc', fileURLToPath(import.meta.url), `--probe=${name}`, `--queue=${dir}`, `--types=${SIZE.types}`],
    {
      encoding: 'utf8',
      maxBuffer: 64 * MIB,
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  if (r.status !== 0) throw new Error(`probe ${name} on ${dir} exited ${String(r.status ?? r.signal)}`);
  return /** @type {Probes[P]} */ (parseJson(/** @type {string} */ (r.stdout.trim().split('\n').pop())));
}

/**
 * What each probe prints (as JSON: no class instances survive).
 * @typedef {{
 *   backlog: Awaited<ReturnType<typeof probeBacklog>>,
 *   maxbytes: Awaited<ReturnType<typeof probeMaxBytes>>,
 *   types: Awaited<ReturnType<typeof probeTypes>>,
 * }} Probes
 */

/**
 * JSON text (a probe's line) as the unknown it is, for a cast.
 * @param {string} text
 * @returns {unknown}
 */
function parseJson(text) {
  return JSON.parse(text);
}

/** @typedef {{ ms: number, maxRssMiB: number, code: number | null, first: string }} DirqRun */

/**
 * Run `dirq ARGS` under /usr/bin/time: wall ms, max RSS, exit code and the first line of its output.
 * @param {string[]} cliArgs
 * @returns {DirqRun}
 */
function dirq(...cliArgs) {
  const t0 = performance.now();
  const r = spawnSync('/usr/bin/time', ['-f', '%M', process.execPath, CLI, ...cliArgs], {
    encoding: 'utf8',
    maxBuffer: 256 * MIB,
  });
  const ms = performance.now() - t0;
  const lines = r.stderr.trim().split('\n');
  return {
    ms,
    maxRssMiB: Number(lines.pop()) / 1024,
    code: r.status,
    first: (r.stdout.split('\n')[0] || lines[0] || '').slice(0, 90),
  };
}

/**
 * @param {string[]} head
 * @param {(string | number | null)[][]} rows
 */
function table(head, rows) {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => String(r[i]).length)));
  const fmt = (/** @type {(string | number | null)[]} */ cells) =>
    cells
      .map((c, i) => (i === 0 ? String(c).padEnd(w[i] ?? 0) : String(c).padStart(w[i] ?? 0)))
      .join('  ')
      .trimEnd();
  console.log(fmt(head));
  console.log(w.map((x) => '-'.repeat(x)).join('  '));
  for (const r of rows) console.log(fmt(r));
}

/**
 * A layout made by the library, with no queue left open.
 * @param {string} dir
 */
async function newQueue(dir) {
  const q = await Queue.open(dir, { durable: false, maintenance: false });
  await q.close();
}

/** Where the queues go: a tmpfs of our own (root), or --dir. Returns { base, done() }. */
function workspace() {
  if (args.dir !== undefined) {
    const base = fs.mkdtempSync(path.join(args.dir, 'dirq-scale-'));
    return {
      base,
      label: `${fsTypeOf(base)} (${base})`,
      done: () => fs.rmSync(base, { recursive: true, force: true }),
    };
  }
  if (process.getuid?.() !== 0)
    throw new Error('bench/scale.js mounts a tmpfs of its own and needs root; or give --dir=PATH');
  const base = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-scale-'));
  const mount = spawnSync('mount', ['-t', 'tmpfs', '-o', 'size=12g,mode=0755', 'dirq-scale', base], {
    encoding: 'utf8',
  });
  if (mount.status !== 0) throw new Error(`mount -t tmpfs on ${base} failed: ${mount.stderr.trim()}`);
  return {
    base,
    label: `tmpfs mounted for this run (${base})`,
    done: () => {
      // unmounting frees a tmpfs at once, with no per-file deletion
      spawnSync('umount', [base], { stdio: 'inherit' });
      fs.rmdirSync(base);
    },
  };
}

const only = args.only?.split(',');
const want = (/** @type {string} */ name) => only === undefined || only.includes(name);
const head = spawnSync('git', ['-C', path.join(here, '..'), 'describe', '--always', '--dirty'], { encoding: 'utf8' });
const ws = workspace();
console.log(
  `dirqueue ${head.stdout?.trim() || '(no git)'}  bench/scale.js  node ${process.version}  ${os.cpus().length} cpus  on ${ws.label}${QUICK ? '  QUICK' : ''}`,
);
const started = performance.now();
try {
  if (want('million')) {
    const big = path.join(ws.base, 'million');
    const small = path.join(ws.base, 'baseline');
    await newQueue(big);
    await newQueue(small);
    // 50,000 of the jobs through the library (tmp/ then rename), the rest by the direct writer
    const viaLib = Math.min(50_000, SIZE.jobs);
    const q = await Queue.open(big, { durable: false, maintenance: false, watch: false });
    let t0 = performance.now();
    for (let i = 0; i < viaLib; i += 10_000) {
      await q.enqueueMany(
        Array.from({ length: Math.min(10_000, viaLib - i) }, (_, k) => ({
          type: 'bench',
          data: { n: i + k, to: 'someone@example.com', subject: 'Your order has shipped' },
        })),
      );
    }
    const libMs = performance.now() - t0;
    await q.close();
    const directMs = writeDirect(big, 'queue', SIZE.jobs - viaLib, () => 'bench');
    writeDirect(small, 'queue', CLAIMS + 1, () => 'bench');
    console.log(
      `\nsetup: enqueueMany (durable: false, chunks of 10,000) ${int((viaLib * 1000) / libMs)} jobs/s; direct writer into queue/ ${int(((SIZE.jobs - viaLib) * 1000) / directMs)} jobs/s (${int(SIZE.jobs)} jobs in ${fix((libMs + directMs) / 1000)} s)`,
    );
    const rows = [];
    for (const [label, dir] of /** @type {[string, string][]} */ ([
      ['baseline', small],
      ['backlog', big],
    ])) {
      const r = probe('backlog', dir);
      rows.push([
        label,
        int(r.waiting),
        fix(r.openMs),
        fix(r.readyMs),
        fix(r.rssMiB, 0),
        fix(r.heapPerJob, 0),
        fix(r.claimUs.mean),
        fix(r.claimUs.p50),
        fix(r.claimUs.p99),
        fix(r.completeUsP50),
        fix(r.enqueueUsP50),
        fix(r.waitForUsP50),
        `${fix(r.rescan.stallMs)} (${r.rescan.listings})`,
        `${fix(r.sweep.ms)} (${r.sweep.listings}/${r.sweep.opens})`,
        `${r.calls.claimComplete.listings}/${r.calls.enqueue.listings}/${r.calls.waitFor.listings}`,
        `${fix(r.calls.claimComplete.opensPerJob, 2)}/${fix(r.calls.enqueue.opensPerJob, 2)}/${fix(r.calls.waitFor.opensPerJob, 2)}`,
      ]);
    }
    console.log(
      `\nwaiting in queue/: a fresh process opens the queue (defaults), its first claim builds the index, then ${int(CLAIMS)} claim+complete, 200 enqueue, 200 claim+waitFor+complete`,
    );
    console.log(
      '(listings / opens: fs calls counted during claim+complete / enqueue / waitFor; opens per job. rescan: the longest the event loop was held in 2.2 s of rescans every 500 ms, and how many ran; sweep: one q.recover(), its listings and opens)',
    );
    table(
      [
        'case',
        'waiting',
        'open ms',
        'first claim ms',
        'RSS MiB',
        'heap B/job',
        'claim us',
        'p50',
        'p99',
        'complete p50',
        'enqueue p50',
        'waitFor p50',
        'rescan stall ms (n)',
        'sweep ms (listings/opens)',
        'listings',
        'opens/job',
      ],
      rows,
    );
    /** @type {[string, DirqRun][]} */
    const cli = [
      ['dirq stats DIR', dirq('stats', big)],
      ['dirq stats DIR --json', dirq('stats', big, '--json')],
      ['dirq ls DIR --limit 10', dirq('ls', big, '--limit', '10')],
      ['dirq ls DIR --limit 20', dirq('ls', big, '--limit', '20')],
      ['dirq ls DIR queue --limit 20 --json', dirq('ls', big, 'queue', '--limit', '20', '--json')],
    ];
    console.log(
      `\nthe CLI on ${int(SIZE.jobs)} waiting (a fresh process each: wall time includes Node's start, ~40 ms)`,
    );
    table(
      ['command', 'ms', 'max RSS MiB', 'exit', 'first line'],
      cli.map(([name, r]) => [name, fix(r.ms, 0), fix(r.maxRssMiB, 0), r.code, r.first]),
    );
  }

  if (want('failed')) {
    const dir = path.join(ws.base, 'failed');
    await newQueue(dir);
    const error = (/** @type {number} */ i) =>
      `${JSON.stringify({ event: 'error', at: new Date().toISOString(), attempt: 3, claim: `host.1.${NONCE}.${i.toString(36)}`, message: 'connection refused' })}\n`;
    const ms = writeDirect(dir, 'failed', SIZE.failed, () => 'bench', error);
    console.log(
      `\n${int(SIZE.failed)} jobs in failed/ (written directly, ${int((SIZE.failed * 1000) / ms)} jobs/s), the CLI:`,
    );
    /** @type {[string, DirqRun][]} */
    const rows = [
      ['dirq stats DIR', dirq('stats', dir)],
      ['dirq ls DIR failed --limit 10', dirq('ls', dir, 'failed', '--limit', '10')],
      ['dirq ls DIR failed --limit 20', dirq('ls', dir, 'failed', '--limit', '20')],
      ['dirq retry DIR --all --json', dirq('retry', dir, '--all', '--json')],
      ['dirq stats DIR (after: all in queue/)', dirq('stats', dir)],
    ];
    table(
      ['command', 'ms', 'us/job', 'max RSS MiB', 'exit', 'first line'],
      rows.map(([name, r]) => [
        name,
        fix(r.ms, 0),
        fix(us(r.ms) / SIZE.failed, 1),
        fix(r.maxRssMiB, 0),
        r.code,
        r.first,
      ]),
    );
    console.log(
      `in queue/ after retry --all: ${int(fs.readdirSync(path.join(dir, 'queue')).length)}, left in failed/: ${int(fs.readdirSync(path.join(dir, 'failed')).length)}`,
    );
  }

  if (want('maxbytes')) {
    const dir = path.join(ws.base, 'maxbytes');
    await newQueue(dir);
    const r = probe('maxbytes', dir);
    console.log(
      `\na job file of exactly maxJobBytes (${int(r.limit)} bytes; file in queue/: ${int(r.size)} bytes, in done/ with its result: ${int(r.doneSize)}); RSS ${fix(r.rssBeforeMiB, 0)} MiB before, peak ${fix(r.peakRssMiB, 0)} MiB`,
    );
    table(
      ['step', 'ms', 'outcome'],
      r.steps.map((s) => [
        s.name,
        fix(s.ms),
        s.error?.slice(0, 100) ??
          (s.state ? `state ${s.state}` : s.result !== undefined ? `result ${JSON.stringify(s.result)}` : 'ok'),
      ]),
    );
  }

  if (want('types')) {
    const dir = path.join(ws.base, 'types');
    await newQueue(dir);
    const perType = 10;
    const typeName = (/** @type {number} */ k) => `t${String(k).padStart(5, '0')}`;
    writeDirect(dir, 'queue', SIZE.types * perType, (i) => typeName(i % SIZE.types));
    const r = probe('types', dir);
    console.log(
      `\n${int(r.waiting)} jobs over ${int(r.types)} types (${perType} each): ${int(CLAIMS)} claim+complete per row; index heap ${fix(r.heapPerJob, 0)} B/job`,
    );
    /**
     * @param {string} name
     * @param {Probes['types']['none']} m
     */
    const row = (name, m) => [name, fix(m.mean), fix(m.p50), fix(m.p99), m.listings, fix(m.opensPerClaim, 2)];
    table(
      ['claim', 'us mean', 'p50', 'p99', 'listings', 'opens/claim'],
      [row('no types filter', r.none), row('types: [one type]', r.one), row('types: [100 types]', r.hundred)],
    );
  }
} finally {
  ws.done();
}
console.log(`\nbench/scale.js took ${fix((performance.now() - started) / 1000)} s`);
