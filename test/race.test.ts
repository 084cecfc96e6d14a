/** N processes racing to claim thousands of jobs (I3): each is claimed exactly once, none left behind. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exited, spawnNode, tempQueue, WATCH } from './support/temp.js';

const child = new URL('./fixtures/child.mjs', import.meta.url).pathname;

describe('racing claimers', () => {
  it('4 processes drain 3,000 jobs: each claimed exactly once, none left', async () => {
    const { dir, q } = await tempQueue();
    const ids = (
      await q.enqueueMany(
        Array.from({ length: 3000 }, (_, i) => ({ type: i % 3 ? 'a' : 'b', data: i, priority: i % 7 })),
      )
    ).map((r) => r.id);
    const log = path.join(dir, 'claims.log');
    const workers = Array.from({ length: 4 }, () =>
      spawnNode([child, 'drain', dir, log], { env: { ...process.env, DIRQ_TEST_WATCH: WATCH ? '1' : '0' } }),
    );
    expect(await Promise.all(workers.map(exited))).toEqual([0, 0, 0, 0]);
    const lines = fs.readFileSync(log, 'utf8').trim().split('\n');
    const claimed = lines.map((l) => l.split(' ')[0]!);
    expect(claimed.length).toBe(3000);
    expect(new Set(claimed).size).toBe(3000);
    expect(new Set(claimed)).toEqual(new Set(ids));
    expect(new Set(lines.map((l) => l.split(' ')[1])).size).toBeGreaterThan(1); // they really raced
    expect(await q.counts()).toEqual({ queue: 0, delayed: 0, active: 0, done: 3000, failed: 0, waiting: 0 });
    await q.close();
  });
});
