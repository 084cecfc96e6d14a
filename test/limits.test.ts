/**
 * Limits (issue 13, second slice) within one process and with one child
 * killed: q.limit/q.limits, the files under limits/TYPE/ (slots as hard
 * links to the holder's heartbeat, rate tokens r.K@T), a slot given back at
 * every ending, a dead holder's slot freed by the next sweep, group
 * concurrency, bad input, hand-broken files, and that a claim at a limit
 * waits without scanning. Across processes: test/limits-procs.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import type { Job } from '../dist/index.js';
import { openQueue, spawnNode, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';
import { rejects } from './support/rejects.js';

const child = path.join(import.meta.dirname, 'fixtures', 'child.mjs');

/** The held slots of `type` (names K and g.TAG.K in limits/TYPE/). */
const slots = (dir: string, type: string): string[] => {
  const typeDir = path.join(dir, 'limits', type);
  return fs.existsSync(typeDir)
    ? fs
        .readdirSync(typeDir)
        .filter((f) => /^(?:g\.[a-z0-9]{10}\.)?\d+$/.test(f))
        .sort()
    : [];
};

describe('q.limit and q.limits', () => {
  it('writes limits/TYPE/limit.json and the rate tokens; limits() tells what is in use; null clears it all', async () => {
    const { dir, q } = await tempQueue();
    expect(await q.limit('mail', { concurrency: 2, rate: { max: 3, per: 1000 }, groupConcurrency: 1 })).toBe(true);
    const files = fs.readdirSync(path.join(dir, 'limits', 'mail')).sort();
    expect(files).toEqual(['limit.json', 'r.0@0000000000000000', 'r.1@0000000000000000', 'r.2@0000000000000000']);
    const stored = JSON.parse(fs.readFileSync(path.join(dir, 'limits', 'mail', 'limit.json'), 'utf8')) as object;
    expect(stored).toMatchObject({ concurrency: 2, rate: { max: 3, per: 1000 }, groupConcurrency: 1, by: q.owner });
    await q.enqueue('mail', 1);
    const job = await q.claim();
    expect(slots(dir, 'mail')).toEqual(['0']);
    // the slot is our heartbeat under another name
    expect(fs.statSync(path.join(dir, 'limits', 'mail', '0')).ino).toBe(
      fs.statSync(path.join(dir, 'workers', q.owner)).ino,
    );
    expect(await q.limits()).toEqual([
      expect.objectContaining({
        type: 'mail',
        concurrency: 2,
        rate: { max: 3, per: 1000 },
        groupConcurrency: 1,
        running: 1,
        groupsRunning: 0,
        recentStarts: 1,
        file: 'limits/mail/limit.json',
      }),
    ]);
    // a lower rate removes the tokens it no longer has
    await q.limit('mail', { concurrency: 2, rate: { max: 1, per: 1000 } });
    expect(fs.readdirSync(path.join(dir, 'limits', 'mail')).filter((f) => f.startsWith('r.'))).toHaveLength(1);
    await job!.complete();
    expect(slots(dir, 'mail')).toEqual([]);
    expect(await q.limit('mail', null)).toBe(true);
    expect(fs.existsSync(path.join(dir, 'limits', 'mail'))).toBe(false);
    expect(await q.limit('mail', null)).toBe(false);
    expect(await q.limits()).toEqual([]);
    await q.close();
  });

  it('refuses bad limits with EBADOPTION (or EBADTYPE) and a message saying what would do', async () => {
    const { dir, q } = await tempQueue();
    const bad: [unknown, RegExp][] = [
      [{ concurrency: 0 }, /concurrency must be a whole number from 1 to 10000, got 0/],
      [{ concurrency: -1 }, /concurrency must be a whole number/],
      [{ concurrency: 1.5 }, /concurrency must be a whole number/],
      [{ concurrency: '3' }, /concurrency must be a whole number.*"3"/],
      [{ concurrency: 10_001 }, /from 1 to 10000/],
      [{ groupConcurrency: 0 }, /groupConcurrency must be a whole number/],
      [{ rate: { max: 10, per: 5 } }, /rate.per must be a whole number of ms, at least 10, got 5/],
      [{ rate: { max: 0, per: 1000 } }, /rate.max must be a whole number/],
      [{ rate: 20 }, /rate must be \{ max, per \}/],
      [{ rate: { max: 1, per: 1000, burst: 2 } }, /unknown rate option "burst"/],
      [{ concurency: 3 }, /unknown limit option "concurency"/],
      [{}, /at least one of concurrency, rate and groupConcurrency/],
      [[], /a limit is \{ concurrency/],
      [undefined, /needs a limit/],
    ];
    for (const [spec, message] of bad) await rejects(q.limit('mail', spec as never), 'EBADOPTION', message);
    await rejects(q.limit('', { concurrency: 1 }), 'EBADTYPE', /non-empty string/);
    await rejects(q.limit('x'.repeat(200), { concurrency: 1 }), 'EBADTYPE', /too long/);
    expect(fs.existsSync(path.join(dir, 'limits'))).toBe(false); // nothing was written
    await q.close();
  });
});

describe('concurrency', () => {
  it('never more than N running; the limited type does not block others; an ending frees a slot at once', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('slow', { concurrency: 2 });
    for (let i = 0; i < 5; i++) await q.enqueue('slow', i);
    await q.enqueue('fast', 'f');
    const a = await q.claim();
    const b = await q.claim();
    expect([a!.type, b!.type]).toEqual(['slow', 'slow']);
    const c = await q.claim();
    expect(c!.type).toBe('fast'); // the limited type is skipped, not waited for
    expect(await q.claim()).toBeUndefined();
    expect(slots(dir, 'slow')).toEqual(['0', '1']);
    const waiting = q.claim({ wait: 10_000 });
    await a!.complete();
    const d = await waiting; // woken by our own release, not a poll
    expect(d!.type).toBe('slow');
    await Promise.all([b!.complete(), c!.complete(), d!.complete()]);
    expect(slots(dir, 'slow')).toEqual([]);
    await q.close();
  });

  it('every ending gives the slot back: complete, fail (retry and for good), release, cancel, close, timeout', async () => {
    const { dir, q } = await tempQueue({ staleAfter: 400 });
    await q.limit('t', { concurrency: 1 });
    const claimOne = async (): Promise<Job> => {
      await q.enqueue('t', 1, { attempts: 2, backoff: 0 });
      const job = await q.claim();
      expect(slots(dir, 't')).toEqual(['0']);
      return job!;
    };
    const endings: [string, (job: Job) => Promise<unknown>][] = [
      ['complete', (job) => job.complete()],
      ['fail, to run again', (job) => job.fail(new Error('x'))],
      ['release', (job) => job.release()],
      ['cancel', async (job) => (await q.cancel(job.id), job.complete().catch(() => undefined))],
    ];
    for (const [what, end] of endings) {
      for (const id of fs.readdirSync(path.join(dir, 'queue'))) await q.remove(id); // one job at a time
      const job = await claimOne();
      await end(job);
      expect(slots(dir, 't'), what).toEqual([]);
    }
    // fail for good: the second attempt
    for (const id of fs.readdirSync(path.join(dir, 'queue'))) await q.remove(id);
    await q.enqueue('t', 1, { attempts: 1 });
    await (await q.claim())!.fail(new Error('y'));
    expect(slots(dir, 't'), 'fail for good').toEqual([]);
    // past its timeout and staleAfter more: this handle takes its own claim back, and the slot with it
    await q.enqueue('t', 1, { timeout: 50 });
    const overdue = await q.claim();
    expect(slots(dir, 't')).toEqual(['0']);
    await until(() => slots(dir, 't').length === 0, 'the overdue claim and its slot taken back', 10_000);
    await rejects(overdue!.complete(), 'ECOMPROMISED', /timeout/);
    // close puts held jobs back, and gives their slots back
    await q.enqueue('t', 2);
    expect(await q.claim()).toBeDefined();
    await q.close();
    expect(slots(dir, 't'), 'close').toEqual([]);
  });

  it("a SIGKILLed holder's slot is freed by the next sweep (dead pid on this host), and its job runs again", async () => {
    const { dir, q } = await tempQueue();
    await q.limit('t', { concurrency: 1 });
    const { id } = await q.enqueue('t', 1);
    await q.enqueue('t', 2);
    const holder = spawnNode([child, 'hold', dir], { stdio: ['pipe', 'pipe', 'inherit'] });
    await lineFrom(holder, `claimed ${id} 1`);
    expect(slots(dir, 't')).toEqual(['0']);
    expect(await q.claim()).toBeUndefined(); // the one slot is the child's
    holder.kill('SIGKILL');
    await new Promise((resolve) => holder.once('exit', resolve));
    const report = await q.recover();
    expect(report.slotsFreed).toBe(1);
    expect(report.recovered.map((r) => r.id)).toEqual([id]);
    const again = await q.claim({ wait: 5000 });
    expect(again!.id).toBe(id);
    expect(again!.attempt).toBe(2);
    await again!.complete();
    await q.close();
  });

  it('a lower concurrency holds new starts until the running jobs are below it', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('t', { concurrency: 3 });
    for (let i = 0; i < 6; i++) await q.enqueue('t', i);
    const held = [(await q.claim())!, (await q.claim())!, (await q.claim())!];
    await q.limit('t', { concurrency: 1 });
    await held[0]!.complete();
    expect(await q.claim()).toBeUndefined(); // 2 running, limit 1
    await held[1]!.complete();
    expect(await q.claim()).toBeUndefined(); // slot 2 is above the limit: 1 still running
    await held[2]!.complete();
    const next = await q.claim();
    expect(next).toBeDefined();
    expect(slots(dir, 't')).toEqual(['0']);
    expect(await q.claim()).toBeUndefined();
    await next!.complete();
    await q.close();
  });

  it('a claim at the limit waits without scanning: no listing of limits/ but the polls', async () => {
    const { dir, q } = await tempQueue({ pollInterval: 500 });
    await q.limit('t', { concurrency: 1 });
    await q.enqueue('t', 1);
    await q.enqueue('t', 2);
    const first = await q.claim();
    const spy = vi.spyOn(fs, 'readdirSync');
    const cpu = process.cpuUsage();
    const started = Date.now();
    expect(await q.claim({ wait: 1500 })).toBeUndefined();
    const elapsed = Date.now() - started;
    const usage = process.cpuUsage(cpu);
    const listings = spy.mock.calls.filter(([p]) => String(p).includes(`${path.sep}limits`)).length;
    spy.mockRestore();
    // one poll of limits/ (and of each limited type) per 0.5 s, jittered by 20 %: at most 4 polls in 1.5 s
    expect(listings).toBeLessThanOrEqual(4 * 2 * Math.ceil(elapsed / 1500));
    expect((usage.user + usage.system) / 1000).toBeLessThan(elapsed / 4); // waiting, not spinning
    await first!.complete();
    await (await q.claim())!.complete();
    expect(dir).toBeTruthy();
    await q.close();
  });

  it('the heartbeat is made again when its name is removed while slots link to it', async () => {
    const { dir, q } = await tempQueue({ staleAfter: 200 });
    await q.limit('t', { concurrency: 1 });
    await q.enqueue('t', 1);
    const job = await q.claim();
    const beat = path.join(dir, 'workers', q.owner);
    fs.unlinkSync(beat); // as a sweep does to a heartbeat silent for an hour
    await until(() => fs.existsSync(beat), 'the heartbeat made again', 5000);
    await job!.complete(); // the slot is the old inode's link, still ours to give back
    expect(slots(dir, 't')).toEqual([]);
    await q.close();
  });
});

describe('rate', () => {
  it('no window of `per` ms sees more than `max` starts; a claim at the rate wakes when the next token frees', async () => {
    const { q } = await tempQueue();
    await q.limit('t', { rate: { max: 3, per: 300 } });
    for (let i = 0; i < 9; i++) await q.enqueue('t', i);
    const starts: number[] = [];
    for (let job = await q.claim({ wait: 2000 }); job !== undefined; job = await q.claim({ wait: 2000 })) {
      starts.push(Date.now());
      await job.complete();
    }
    expect(starts).toHaveLength(9);
    for (const t of starts) expect(starts.filter((s) => s >= t && s < t + 290).length).toBeLessThanOrEqual(3);
    expect(starts.at(-1)! - starts[0]!).toBeGreaterThanOrEqual(590); // three windows at least
    await q.close();
  });

  it('a start whose claim is lost gives its token back', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('t', { rate: { max: 1, per: 60_000 } });
    const { id } = await q.enqueue('t', 1);
    // another process takes the job first: the rename of our claim loses (I3)
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@elsewhere.1.x.0`));
    await q.enqueue('t', 2);
    const job = await q.claim();
    expect(job).toBeDefined(); // the token was not spent on the job that was gone
    await job!.complete();
    await q.close();
  });
});

describe('groupConcurrency', () => {
  it("caps each group's running jobs; a group at its cap is passed over, not waited for", async () => {
    const { dir, q } = await tempQueue();
    await q.limit('t', { groupConcurrency: 1 });
    for (let i = 0; i < 3; i++) await q.enqueue('t', `a${i}`, { group: 'A' });
    await q.enqueue('t', 'b0', { group: 'B' });
    await q.enqueue('t', 'u', {}); // no group: no group limit
    const first = await q.claim();
    const second = await q.claim();
    const third = await q.claim();
    expect([first!.data, second!.data, third!.data].sort()).toEqual(['a0', 'b0', 'u']);
    expect(await q.claim()).toBeUndefined(); // A is at its cap
    expect(slots(dir, 't')).toHaveLength(2); // one per running group
    const waiting = q.claim({ wait: 10_000 });
    await [first, second, third].find((j) => j!.data === 'a0')!.complete();
    expect((await waiting)!.data).toBe('a1');
    expect((await q.limits())[0]).toMatchObject({ running: 2, groupsRunning: 2 });
    await q.close();
  });
});

describe('hand-broken limit files', () => {
  it('are reported as warnings and by limits(), never obeyed, and never stop the queue', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('t', { concurrency: 1 });
    fs.writeFileSync(path.join(dir, 'limits', 't', 'limit.json'), '{"concurrency": 0}');
    fs.mkdirSync(path.join(dir, 'limits', '%zz'));
    const other = await openQueue(dir);
    const warnings: Error[] = [];
    other.on('warning', (w) => warnings.push(w));
    await other.enqueue('t', 1);
    await other.enqueue('t', 2);
    const a = await other.claim();
    const b = await other.claim();
    expect(a).toBeDefined();
    expect(b).toBeDefined(); // not limited by a limit that is not one
    expect(warnings.map((w) => w.message).join('\n')).toMatch(
      /limits\/t\/limit.json is not obeyed as a limit: concurrency must be/,
    );
    expect(await other.limits()).toEqual(
      expect.arrayContaining([
        { file: 'limits/t/limit.json', invalid: expect.stringMatching(/concurrency/) as unknown },
        { file: 'limits/%zz', invalid: expect.stringMatching(/no type/) as unknown },
      ]),
    );
    await a!.complete();
    await b!.complete();
    await other.close();
    await q.close();
  });
});
