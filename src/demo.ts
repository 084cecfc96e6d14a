/**
 * `npm run demo`: a queue's life in a few seconds. Makes a temporary queue,
 * enqueues 5,000 jobs of two types at three priorities in one enqueueMany,
 * shows that `ls queue/` lists them in run order, runs them with a worker
 * pool (2 threads running demo-processor.js; 2% fail once and are retried at
 * once), prints progress and the final stats, and removes the queue.
 *
 * The queue is opened with `durable: false`: the demo shows the flow, not
 * fsync throughput (bench/ measures both).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Pool, Queue, type EnqueueItem } from './index.js';

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
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-demo-'));
  console.log(`dirqueue demo: a temporary queue in ${dir}\n`);
  try {
    await run(dir);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
    console.log(`\nremoved ${dir}`);
  }
}

async function run(dir: string): Promise<void> {
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
      processor: new URL('./demo-processor.js', import.meta.url),
      threads: THREADS,
      concurrency: CONCURRENCY,
      durable: false,
    });
    pool.on('retrying', (job) => (retriedId = job.id));
    pool.on('completed', (job) => {
      if (firstRuns.length < 3) firstRuns.push(job.id);
      if (++completed % 1000 === 0) {
        console.log(`  ${String(completed).padStart(5)}/${JOBS} done, ${pool.counts.retried} retried, ${ms(performance.now() - t0)}`);
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

    const stats = await q.stats();
    console.log('$ dirq stats');
    console.log(Object.entries(stats.counts).map(([state, count]) => `  ${state.padEnd(8)}${String(count).padStart(6)}`).join('\n'));
    for (const [type, counts] of Object.entries(stats.types)) console.log(`  ${type}: ${counts.done} done`);
    if (stats.counts.done !== JOBS || stats.counts.failed !== 0) throw new Error(`expected ${JOBS} jobs in done/, got ${JSON.stringify(stats.counts)}`);
    const retriedJob = await q.get(retriedId);
    console.log(`\na retried job's file tells its story (${retriedJob.id}):`);
    for (const line of fs.readFileSync(retriedJob.path, 'utf8').trimEnd().split('\n')) console.log(`  ${line.length > 150 ? `${line.slice(0, 147)}...` : line}`);
  } finally {
    await q.close();
  }
}

const ms = (value: number): string => (value < 1000 ? `${Math.round(value)} ms` : `${(value / 1000).toFixed(2)} s`);
const rate = (n: number, elapsedMs: number): string => Math.round((n / elapsedMs) * 1000).toLocaleString('en-US');

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
