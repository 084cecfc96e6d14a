// bench/dependencies.js: what dependencies and batches cost (issue 15), each against the plain operation
// in the same run.
//
// Cases, in one run, on fresh queue directories, interleaved rounds (the median of ROUNDS is reported):
//   complete, no children               claim + complete of a job nothing waits for: the hot path, which now
//                                       pays one lstat of deps/ID (release.ts afterEnding)
//   complete, releasing a child         claim + complete of a parent with one child waiting: the release
//                                       (two renames, a read of the child, the parent's result, an append,
//                                       the marker's unlink and rmdir), per parent
//   complete, the child of a chain      a chain of JOBS jobs each after the one before, claimed and completed
//                                       in order: each completion releases the next
//   complete, batch member (not last)   claim + complete of a job of a batch of JOBS: the marker's rename and
//                                       the look at pending/ (opendir, one read)
//   complete, a batch's last job        the last job of a batch of 100 (its callback made: a rename into
//                                       waiting/, batch.json read, the counts listed, an append, a rename):
//                                       per batch, against "complete, no children"
//   enqueue, plain / after a parent     enqueue one by one, and with { after: [one waiting parent] } (the
//                                       parent's check, a marker, placed in waiting/)
//   enqueueBatch of JOBS                per job, against enqueueMany of JOBS
// Settings: durable: false; queues in a temp dir on the project's filesystem (BENCH_DIR to override).
//
// Run: npm run build && node bench/dependencies.js     (BENCH_QUICK=1 for a smaller run)
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Queue } from '../dist/index.js';

const quick = process.env.BENCH_QUICK === '1';
const base = process.env.BENCH_DIR ?? os.tmpdir();
const JOBS = quick ? 1_000 : 5_000;
const ROUNDS = quick ? 3 : 5;
const BATCHES = quick ? 50 : 200;

/** @param {number[]} xs */
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

/** @param {string} dir */
const open = (dir) => Queue.open(dir, { durable: false, maintenance: false, watch: true });

/**
 * Claim and complete every ready job, timing only the completions that `timed` picks.
 * @param {Queue} q
 * @param {(job: import('../dist/index.js').Job) => boolean} [timed]
 */
async function drain(q, timed = () => true) {
  let us = 0;
  let n = 0;
  for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
    const start = performance.now();
    await job.complete(job.id);
    if (timed(job)) {
      us += (performance.now() - start) * 1000;
      n++;
    }
  }
  return { us: us / n, n };
}

/** @type {[string, (dir: string) => Promise<{ us: number, n: number }>][]} */
const cases = [
  [
    'complete, no children',
    async (dir) => {
      const q = await open(dir);
      await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })));
      const r = await drain(q);
      await q.close();
      return r;
    },
  ],
  [
    'complete, releasing a child',
    async (dir) => {
      const q = await open(dir);
      const parents = await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 'p', data: i })));
      await q.enqueueMany(parents.map((p) => ({ type: 'c', after: [p.id] })));
      const r = await drain(q, (job) => job.type === 'p');
      await q.close();
      return r;
    },
  ],
  [
    'complete, the next of a chain',
    async (dir) => {
      const q = await open(dir);
      let prev = await q.enqueue('link', 0);
      for (let i = 1; i < JOBS; i++) prev = await q.enqueue('link', i, { after: [prev.id] });
      const r = await drain(q);
      await q.close();
      if (r.n !== JOBS) throw new Error(`the chain ran ${r.n} of ${JOBS}`);
      return r;
    },
  ],
  [
    'complete, batch member (not last)',
    async (dir) => {
      const q = await open(dir);
      await q.enqueueBatch(
        Array.from({ length: JOBS }, (_, i) => ({ type: 'm', data: i })),
        { onComplete: { type: 'cb' } },
      );
      let seen = 0;
      const r = await drain(q, (job) => job.type === 'm' && ++seen < JOBS);
      await q.close();
      return r;
    },
  ],
  [
    "complete, a batch's last job",
    async (dir) => {
      const q = await open(dir);
      const lasts = new Set();
      for (let b = 0; b < BATCHES; b++) {
        const batch = await q.enqueueBatch(
          Array.from({ length: 100 }, (_, i) => ({ type: 'm', data: i })),
          { onComplete: { type: 'cb' } },
        );
        lasts.add(batch.jobs.at(-1)?.id);
      }
      const r = await drain(q, (job) => lasts.has(job.id));
      await q.close();
      if (r.n !== BATCHES) throw new Error(`${r.n} last jobs timed, not ${BATCHES}`);
      return r;
    },
  ],
  [
    'enqueue, plain',
    async (dir) => {
      const q = await open(dir);
      const start = performance.now();
      for (let i = 0; i < JOBS; i++) await q.enqueue('t', i);
      const us = ((performance.now() - start) * 1000) / JOBS;
      await q.close();
      return { us, n: JOBS };
    },
  ],
  [
    'enqueue, after a waiting parent',
    async (dir) => {
      const q = await open(dir);
      const parent = await q.enqueue('p');
      const start = performance.now();
      for (let i = 0; i < JOBS; i++) await q.enqueue('t', i, { after: [parent.id] });
      const us = ((performance.now() - start) * 1000) / JOBS;
      await q.close();
      return { us, n: JOBS };
    },
  ],
  [
    `enqueueMany of ${JOBS.toLocaleString('en')}, per job`,
    async (dir) => {
      const q = await open(dir);
      const start = performance.now();
      await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 'm', data: i })));
      const us = ((performance.now() - start) * 1000) / JOBS;
      await q.close();
      return { us, n: JOBS };
    },
  ],
  [
    `enqueueBatch of ${JOBS.toLocaleString('en')}, per job`,
    async (dir) => {
      const q = await open(dir);
      const start = performance.now();
      await q.enqueueBatch(
        Array.from({ length: JOBS }, (_, i) => ({ type: 'm', data: i })),
        { onComplete: { type: 'cb' } },
      );
      const us = ((performance.now() - start) * 1000) / JOBS;
      await q.close();
      return { us, n: JOBS };
    },
  ],
];

const results = new Map(cases.map(([name]) => [name, /** @type {number[]} */ ([])]));
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, run] of cases) {
    const dir = path.join(fs.mkdtempSync(path.join(base, 'dirq-bench-deps-')), 'q');
    const { us } = await run(dir);
    results.get(name)?.push(us);
    fs.rmSync(path.dirname(dir), { recursive: true, force: true });
  }
}
const plain = median(results.get('complete, no children') ?? []);
console.log(`bench/dependencies.js: ${JOBS.toLocaleString('en')} jobs a case, median of ${ROUNDS} rounds, ${base}`);
console.log('| case | us per operation | x complete, no children |');
console.log('|---|---|---|');
for (const [name, xs] of results) {
  const us = median(xs);
  console.log(`| ${name} | ${us.toFixed(1)} | ${(us / plain).toFixed(2)} |`);
}
