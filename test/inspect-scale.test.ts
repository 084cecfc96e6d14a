/**
 * Issue 17, "a million jobs waiting": `dirq ls --limit N` picks the first N
 * with a bounded selection (queue/smallest.ts) instead of sorting every
 * name, and `dirq stats` lstats a few jobs of queue/ for the longest wait
 * instead of all of them. Both must answer as the full versions did.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { byteOrder, Smallest } from '../dist/queue/smallest.js';
import { WAIT_CANDIDATES } from '../dist/queue/inspect.js';
import { idTester, isId } from '../dist/store/names.js';
import type { State } from '../dist/index.js';
import { okJson } from './support/cli.js';
import { tempQueue } from './support/temp.js';
import { until } from './support/wait.js';

const pad16 = (us: number): string => String(us).padStart(16, '0');
const envelope = (type: string): string => `${JSON.stringify({ type, data: {}, created: new Date().toISOString() })}\n`;

describe('Smallest', () => {
  it('keeps the k smallest of a stream, in the order a full sort gives', () => {
    let seed = 7;
    const next = (): number => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
    const items = Array.from({ length: 5000 }, () => `${String(next() % 100).padStart(2, '0')}-${next()}`);
    for (const k of [0, 1, 2, 20, 999, 5000, 6000]) {
      const best = new Smallest<string>(k, byteOrder);
      for (const item of items) best.offer(item);
      expect(best.sorted()).toEqual([...items].sort().slice(0, k));
    }
  });
});

describe('idTester', () => {
  it('answers as isId, with each type decoded once', () => {
    const names = [
      '50-1763830000000000-k3j9x0.email',
      '50-1763830000000000-k3j9x1.email',
      '07-1763830000000000-a.caf%C3%A9',
      '07-1763830000000000-b.caf%c3%a9', // not the canonical spelling
      '07-1763830000000000-c.a%2Fb',
      '50-1763830000000000-d.a%41', // %41 is A, which is never encoded
      '50-176383000000000-short.email',
      '5-1763830000000000-x.email',
      '50-1763830000000000-k3j9x0.',
      '50-1763830000000000-k3j9x0.email@host.1.n.1',
    ];
    const test = idTester();
    for (const name of [...names, ...names]) expect(test(name)).toBe(isId(name));
  });
});

describe('list with a limit', () => {
  it('gives the first N of every state in the order of a full sort (mixed priorities, many jobs)', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const types = ['send', 'report', 'resize'];
    await q.enqueueMany(
      Array.from({ length: 600 }, (_, i) => ({
        type: types[i % 3]!,
        data: { i },
        priority: (i * 37) % 100,
        attempts: 1,
        ...(i % 5 === 0 ? { delay: 3_600_000 + i * 1000 } : {}),
      })),
    );
    // some to active/ (held), done/ and failed/
    for (let i = 0; i < 150; i++) {
      const job = (await q.claim())!;
      if (i % 3 === 0) await job.complete({ i });
      else if (i % 3 === 1) await job.fail(new Error(`boom ${i}`));
    }
    const states: State[] = ['queue', 'delayed', 'active', 'done', 'failed'];
    for (const state of states) {
      const full = (await q.list(state)).map((job) => job.id);
      expect(full.length).toBeGreaterThan(20);
      for (const n of [1, 7, 20, full.length - 1, full.length, full.length + 5]) {
        expect((await q.list(state, { limit: n })).map((job) => job.id)).toEqual(full.slice(0, n));
      }
      const shown = await okJson<{ id: string }[]>(['ls', dir, state, '--limit', '20', '--json']);
      expect(shown.map((job) => job.id)).toEqual(full.slice(0, 20));
    }
    expect(await q.list('queue', { limit: 0 })).toEqual([]);
    await q.close();
  });
});

describe('stats: the longest wait in queue/', () => {
  it('counts a job retried back into queue/ from when it entered queue/, not from its id', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const hourAgo = Date.now() - 3_600_000;
    const id = `50-${pad16(hourAgo * 1000)}-old1.report`;
    fs.writeFileSync(path.join(dir, 'failed', id), envelope('report'));
    await q.retry(id);
    const stats = await q.stats();
    expect(stats.counts.queue).toBe(1);
    expect(stats.oldest.queue).toBeGreaterThanOrEqual(3_600_000); // ready since its id's time
    expect(stats).toMatchObject({ waitingId: id, waitingState: 'queue' });
    expect(stats.waiting).toBeLessThan(3_600_000); // but in queue/ only since the retry
    await q.close();
  });

  it(`finds a delayed job retried early (its id's time still to come) behind more than ${WAIT_CANDIDATES} jobs with older ids`, async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const dueUs = (Date.now() + 3_600_000) * 1000;
    const early = `50-${pad16(dueUs)}-early1.report`;
    fs.writeFileSync(path.join(dir, 'delayed', `${pad16(dueUs)}~${early}`), envelope('report'));
    await q.retry(early);
    const entered = fs.lstatSync(path.join(dir, 'queue', early)).ctimeMs;
    // wait until the filesystem's clock has moved past that ctime, so every job written next entered queue/ later
    const probe = path.join(dir, 'probe');
    await until(() => {
      fs.writeFileSync(probe, '');
      return fs.lstatSync(probe).ctimeMs > entered;
    }, 'a later ctime');
    const base = (Date.now() - 60_000) * 1000;
    for (let i = 0; i < WAIT_CANDIDATES + 50; i++)
      fs.writeFileSync(path.join(dir, 'queue', `50-${pad16(base + i)}-n${i}.send`), envelope('send'));
    const stats = await q.stats();
    expect(stats.counts.queue).toBe(WAIT_CANDIDATES + 51);
    expect(stats).toMatchObject({ waitingId: early, waitingState: 'queue' });
    expect(stats.oldest.queue).toBeGreaterThanOrEqual(60_000); // by ids: the oldest id is a minute old
    await q.close();
  });
});
