/**
 * `npm run demo`: a queue's life in a few seconds. Makes a temporary queue,
 * enqueues 5,000 jobs of two types at three priorities in one enqueueMany,
 * shows that `ls queue/` lists them in run order, runs them with a worker
 * pool (2 threads running processor.js; 2% fail once and are retried at
 * once), prints progress and what `dirq stats` says then, and removes the
 * queue, or keeps it with `--keep` (`npm run demo -- --keep`) to look at.
 *
 * The queue is opened with `durable: false`: the demo shows the flow, not
 * fsync throughput (bench/ measures both).
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { Pool, Queue, type EnqueueItem } from 'dirqueue';

const USAGE = 'usage: npm run demo [-- --keep]   (--keep: keep the queue afterwards, to look at it)';
/** The checkout's built CLI (this file runs from demo/dist/), run as a user would run `dirq`. */
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const JOBS = 5000;
const THREADS = 2;
const CONCURRENCY = 8;
const FAIL_ONCE_EVERY = 50; // 2% of jobs fail their first attempt
const PRIORITIES = [90, 50, 10] as const; // bulk, normal, urgent: enqueued in that order, run in reverse
const TYPES = ['email', 'thumbnail'] as const;

interface DemoData {
  n: number;
  failOnce: boolean;
}

async function main(): Promise<void> {
  let keep: boolean;
  try {
    keep = parseArgs({ options: { keep: { type: 'boolean' } } }).values.keep === true;
  } catch (error) {
    console.error(`demo: ${(error as Error).message}\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-demo-'));
  console.log(`dirqueue demo: a temporary queue in ${dir}\n`);
  try {
    report(dir, await run(dir));
  } finally {
    if (keep) {
      console.log(`\nkept the queue in ${dir}: try \`npx dirq ls ${dir} done\`, \`ls ${dir}/done\`, then rm -r it`);
    } else {
      fs.rmSync(dir, { recursive: true, force: true });
      console.log(`\nremoved ${dir} (npm run demo -- --keep keeps it)`);
    }
  }
}

/** Enqueue the jobs, run them with a pool; resolves with the id of a job that was retried. */
async function run(dir: string): Promise<string> {
  const q = await Queue.open(dir, { durable: false });
  try {
    // Low priorities first, so the `ls` below shows order by priority, not by enqueue time.
    const items: EnqueueItem[] = [];
    for (let n = 0; n < JOBS; n++) {
      const failOnce = n % FAIL_ONCE_EVERY === 7;
      items.push({
        type: TYPES[n % TYPES.length]!,
        data: { n, failOnce } satisfies DemoData,
        priority: PRIORITIES[Math.floor((n * PRIORITIES.length) / JOBS)]!,
        ...(failOnce ? { backoff: 0, attempts: 3 } : {}),
      });
    }
    let t0 = performance.now();
    await q.enqueueMany(items);
    const enqueueMs = performance.now() - t0;
    console.log(`enqueued ${JOBS} jobs in one enqueueMany: ${ms(enqueueMs)} (${rate(JOBS, enqueueMs)} jobs/s)`);
    console.log(`priorities ${PRIORITIES.join(', ')} (lower runs first), types ${TYPES.join(' and ')}\n`);

    const names = fs.readdirSync(path.join(dir, 'queue')).sort();
    console.log(`$ LC_ALL=C ls ${path.join(dir, 'queue')}   # ${names.length} files, in the order they will run`);
    for (const name of names.slice(0, 4)) console.log(`  ${name}`);
    console.log('  ...');
    for (const name of names.slice(-2)) console.log(`  ${name}`);
    console.log('  (PRIORITY-MICROSECONDS-UNIQUE.TYPE: the urgent jobs, enqueued last, sort first)\n');

    let completed = 0;
    let retriedId = '';
    const firstRuns: string[] = [];
    const pool = new Pool(dir, {
      processor: new URL('./processor.js', import.meta.url),
      threads: THREADS,
      concurrency: CONCURRENCY,
      durable: false,
    });
    pool.on('retrying', (job) => (retriedId = job.id));
    pool.on('completed', (job) => {
      if (firstRuns.length < 3) firstRuns.push(job.id);
      if (++completed % 1000 === 0) {
        console.log(
          `  ${String(completed).padStart(5)}/${JOBS} done, ${pool.counts.retried} retried, ${ms(performance.now() - t0)}`,
        );
      }
    });
    t0 = performance.now();
    await pool.start();
    await pool.onIdle();
    const drainMs = performance.now() - t0;
    await pool.close();
    console.log(`
ran by a pool of ${THREADS} worker threads x ${CONCURRENCY} in ${ms(drainMs)}: ${rate(JOBS, drainMs)} jobs/s`);
    console.log(`first completed (priority 10 first): ${firstRuns.join(', ')}\n`);

    const counts = await q.counts();
    if (counts.done !== JOBS || counts.failed !== 0)
      throw new Error(`expected ${JOBS} jobs in done/, got ${JSON.stringify(counts)}`);
    return retriedId;
  } finally {
    await q.close(); // which also leaves its lifetime counts in workers/ for dirq stats
  }
}

/** What `dirq stats` says of the queue (the CLI itself, not a copy of its output), and one retried job's file. */
function report(dir: string, retriedId: string): void {
  console.log(`$ dirq stats ${dir}`);
  process.stdout.write(execFileSync(process.execPath, [CLI, 'stats', dir], { encoding: 'utf8' }));
  console.log(`\na retried job's file tells its story (done/${retriedId}):`);
  for (const line of fs
    .readFileSync(path.join(dir, 'done', retriedId), 'utf8')
    .trimEnd()
    .split('\n')) {
    console.log(`  ${line.length > 150 ? `${line.slice(0, 147)}...` : line}`);
  }
}

const ms = (value: number): string => (value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`);
const rate = (n: number, elapsedMs: number): string => Math.round((n / elapsedMs) * 1000).toLocaleString('en-US');

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
