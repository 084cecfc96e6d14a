/**
 * Fan-out: one event expanded into many jobs, and a step that runs once they
 * all succeeded. A `new-post` job enqueues, as one batch, an e-mail per
 * follower, a feed update and a webhook per subscriber; the batch's
 * onSuccess marks the post published, and its onComplete (which runs
 * whatever happened) writes a report. Any number of these processes, on any
 * host sharing the queue, can run side by side: each callback runs once.
 *
 *   node examples/fan-out.js /tmp/blog            # enqueues post 1 and works the queue until it is published
 *   node examples/fan-out.js /tmp/blog --fail 2   # e-mail to follower 2 fails: no publish, the report says so
 *
 * The "database" is a directory of JSON files beside the queue (DIR.db/).
 */
import fs from 'node:fs';
import path from 'node:path';
import { Pool, Queue } from 'dirqueue';

const [dir, ...args] = process.argv.slice(2);
if (dir === undefined) {
  console.error('usage: node examples/fan-out.js DIR [--fail N]');
  process.exit(2);
}
const failFollower = args[0] === '--fail' ? Number(args[1]) : undefined;
const db = `${path.resolve(dir)}.db`;
fs.mkdirSync(db, { recursive: true });
const save = (name, value) => fs.writeFileSync(path.join(db, `${name}.json`), `${JSON.stringify(value, null, 2)}\n`);
const load = (name) => JSON.parse(fs.readFileSync(path.join(db, `${name}.json`), 'utf8'));

const queue = await Queue.open(dir);

/** One handler per job type; each gets the job's data and the job. */
const handlers = {
  async 'new-post'({ post }) {
    const { followers, webhooks } = load(`post-${post}`);
    const batch = await queue.enqueueBatch(
      [
        ...followers.map((to) => ({ type: 'email', data: { post, to }, attempts: 1 })),
        { type: 'feed', data: { post } },
        ...webhooks.map((url) => ({ type: 'webhook', data: { post, url }, attempts: 1 })),
      ],
      { onSuccess: { type: 'publish', data: { post } }, onComplete: { type: 'report', data: { post } } },
    );
    return { batch: batch.id, jobs: batch.jobs.length };
  },
  async email({ to }) {
    if (to === failFollower) throw new Error(`mailbox of follower ${to} is full`);
    return { sent: to };
  },
  async feed({ post }) {
    return { feed: `post ${post} added` };
  },
  async webhook({ url }) {
    return { called: url };
  },
  async publish({ post }) {
    save(`post-${post}`, { ...load(`post-${post}`), published: true });
    return { published: post };
  },
  async report({ post }, job) {
    // job.batch: how the batch ended ({ id, total, done, failed, failedIds })
    save(`report-${post}`, job.batch);
    return job.batch;
  },
};

const pool = new Pool(dir, {
  processor: (job) => handlers[job.type](job.data, job),
  concurrency: 8,
});
await pool.start();

save('post-1', { title: 'Hello', followers: [1, 2, 3, 4, 5], webhooks: ['https://example.com/hook'] });
await queue.enqueue('new-post', { post: 1 });

// the report is the last word on the batch: wait for it
while (!fs.existsSync(path.join(db, 'report-1.json'))) await new Promise((resolve) => setTimeout(resolve, 20));
await pool.onIdle();
await pool.close();
await queue.close();
const report = load('report-1');
const { published = false } = load('post-1');
console.log(
  `batch ${report.id}: ${report.done} of ${report.total} jobs done, ${report.failed} failed; published: ${published}`,
);
