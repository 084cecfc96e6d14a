/**
 * Pause and cancel (issue 13, first slice) within one process and from the
 * CLI: the files they make (paused/, cancel/), what claims and pools do with
 * them, bad input, and what sweeps and fsck make of hand-broken or stale ones.
 * Across processes and simulated hosts: test/flow-hosts.test.ts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirQueueError, Pool, type Job } from '../dist/index.js';
import { fsck } from '../dist/maintenance/fsck.js';
import { dirq, ok as okText, okJson } from './support/cli.js';
import { backdate, claimByDeadWorker } from './support/fake.js';
import { openQueue, tempQueue } from './support/temp.js';
import { until } from './support/wait.js';
import { rejects } from './support/rejects.js';

const ls = (dir: string, sub: string): string[] =>
  fs.existsSync(path.join(dir, sub)) ? fs.readdirSync(path.join(dir, sub)).sort() : [];

describe('pause and resume', () => {
  it('a paused type is not claimed, other types are, enqueue still works; resume (or rm of the file) restarts it', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueue('mail', 1);
    const info = await q.pause('mail');
    expect(info).toMatchObject({ type: 'mail', until: undefined, file: 'paused/mail' });
    expect(ls(dir, 'paused')).toEqual(['mail']);
    await q.pause('mail'); // idempotent
    expect(ls(dir, 'paused')).toEqual(['mail']);
    await q.enqueue('mail', 2);
    const other = await q.enqueue('sms', 3);
    const job = await q.claim();
    expect(job?.id).toBe(other.id);
    await job!.complete();
    expect(await q.claim()).toBeUndefined();
    expect(await q.claim({ types: ['mail'] })).toBeUndefined();
    expect(await q.resume('mail')).toBe(true);
    expect(await q.resume('mail')).toBe(false);
    expect((await q.claim())?.type).toBe('mail');
    // by hand: touch pauses (an empty file: until removed), rm resumes
    fs.writeFileSync(path.join(dir, 'paused', 'mail'), '');
    await until(async () => {
      const early = await q.claim({ types: ['mail'] });
      await early?.release();
      return early === undefined;
    }, 'the hand-made pause to be seen');
    expect((await q.paused()).map((p) => p.type)).toEqual(['mail']);
    fs.unlinkSync(path.join(dir, 'paused', 'mail'));
    await until(async () => (await q.claim({ types: ['mail'] })) !== undefined, 'the rm to resume');
    await q.close();
  });

  it('pausing the whole queue stops every type (paused/@all); resume() lifts it but not a type pause', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueue('a', 1);
    await q.enqueue('b', 1);
    await q.pause('b');
    await q.pause();
    expect(ls(dir, 'paused')).toEqual(['@all', 'b']);
    expect(await q.claim()).toBeUndefined();
    expect(await q.resume()).toBe(true);
    expect((await q.claim())?.type).toBe('a');
    expect(await q.claim()).toBeUndefined();
    expect((await q.paused()).map((p) => p.type)).toEqual(['b']);
    await q.close();
  });

  it('a type starting with a dot is paused under %2E, never as a dot file', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueue('.hidden', 1);
    await q.pause('.hidden');
    expect(ls(dir, 'paused')).toEqual(['%2Ehidden']);
    expect(await q.claim()).toBeUndefined();
    await q.resume('.hidden');
    expect((await q.claim())?.type).toBe('.hidden');
    await q.close();
  });

  it('for: ms ends by itself, and a claim waiting on the paused type wakes then', async () => {
    const { dir, q } = await tempQueue();
    await q.enqueue('t', 1);
    const made = await q.pause('t', { for: 300 });
    expect(made.until).toBeInstanceOf(Date);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'paused', 't'), 'utf8'))).toMatchObject({
      until: made.until!.toISOString(),
    });
    expect(await q.claim()).toBeUndefined();
    const job = await q.claim({ wait: 5000 });
    expect(job?.type).toBe('t');
    expect(Date.now()).toBeGreaterThanOrEqual(made.until!.getTime() - 50); // the filesystem's clock is this host's here
    // the filesystem's clock (coarse mtimes) may read a few ms behind this one
    await until(async () => (await q.paused()).length === 0, 'the pause to have ended for paused()');
    // the ended pause's file is removed by a sweep
    expect(ls(dir, 'paused')).toEqual(['t']);
    await q.recover();
    expect(ls(dir, 'paused')).toEqual([]);
    await q.close();
  });

  it('a Pool on a paused type idles without spinning and resumes by itself', async () => {
    const { dir, q } = await tempQueue();
    await q.pause('work');
    for (let i = 0; i < 5; i++) await q.enqueue('work', i);
    const ran: unknown[] = [];
    const pool = new Pool(dir, {
      processor: async (job) => void ran.push(job.data),
      durable: false,
      pollInterval: 50,
      concurrency: 2,
    });
    await pool.start();
    const cpu = process.cpuUsage();
    const started = performance.now();
    // the pool is up and claiming: another type runs while `work` waits
    await q.enqueue('other', 'x');
    await until(() => ran.includes('x'), 'the unpaused job to run');
    await until(() => performance.now() - started > 500, 'half a second of the paused pool'); // measuring idle CPU needs elapsed time
    const used = process.cpuUsage(cpu);
    expect((used.user + used.system) / 1000, 'CPU ms spent while paused').toBeLessThan(250);
    expect(ran).toEqual(['x']);
    await q.resume('work');
    await until(() => ran.length === 6, 'the pool to resume');
    await pool.close();
    await q.close();
  });

  it('bad input: a type no job can have, a bad for', async () => {
    const { q } = await tempQueue();
    await rejects(q.pause(''), 'EBADTYPE', /non-empty string/);
    await rejects(q.pause('x'.repeat(200)), 'EBADTYPE', /too long/);
    await rejects(q.pause('t', { for: -1 }), 'EBADOPTION', /for/);
    await rejects(q.pause('t', { for: 'soon' as unknown as number }), 'EBADOPTION', /for/);
    await rejects(q.resume(42 as unknown as string), 'EBADTYPE', /non-empty string/);
    await q.close();
  });

  it('a hand-broken pause file is not obeyed: a warning, fsck reports it and --repair sets it aside', async () => {
    const { dir, q } = await tempQueue();
    const warnings: Error[] = [];
    q.on('warning', (w) => warnings.push(w));
    fs.mkdirSync(path.join(dir, 'paused'));
    fs.writeFileSync(path.join(dir, 'paused', 't'), 'tomorrow');
    fs.writeFileSync(path.join(dir, 'paused', 'no/t'.replace('/', '%')), '');
    fs.symlinkSync('/etc/passwd', path.join(dir, 'paused', 'u'));
    await q.enqueue('t', 1);
    await q.enqueue('u', 1);
    expect((await q.claim())?.type).toBe('t');
    expect((await q.claim())?.type).toBe('u');
    expect(warnings.map((w) => (w as Partial<Pick<DirQueueError, 'code'>>).code)).toEqual([
      'EBADFILE',
      'EBADFILE',
      'EBADFILE',
    ]);
    const report = await fsck(dir);
    expect(report.findings.map((f) => [f.kind, f.path])).toEqual([
      ['stray', 'paused/no%t'],
      ['stray', 'paused/t'],
      ['stray', 'paused/u'],
    ]);
    await fsck(dir, { repair: true });
    expect(ls(dir, 'paused')).toEqual(['no%t~', 't~', 'u~']);
    expect((await fsck(dir)).findings).toEqual([]);
    await q.close();
  });

  it('CLI: pause, stats, resume, with --json', async () => {
    const { dir, q } = await tempQueue();
    await q.close();
    const ok = async (args: string[]): Promise<string> => (await okText(args)).trim();
    expect(await ok(['pause', dir, 'send', '--for', '10m'])).toMatch(/^paused send until \S+ \(paused\/send\)/);
    expect(await okJson(['pause', dir, '--json'])).toMatchObject({ schema: 1, type: null, file: 'paused/@all' });
    expect(await ok(['stats', dir])).toMatch(/Paused: the whole queue \(until resumed\), send \(until \S+\)/);
    const stats = await okJson<{ paused: { type: string | null }[] }>(['stats', dir, '--json']);
    expect(stats.paused.map((p) => p.type)).toEqual([null, 'send']);
    expect(await ok(['resume', dir, 'send'])).toBe('resumed send');
    expect(await okJson(['resume', dir, 'send', '--json'])).toEqual({ schema: 1, type: 'send', resumed: false });
    expect(await ok(['resume', dir])).toBe('resumed the queue');
    const bad = await dirq(['pause', dir, 'send', '--for', 'soon']);
    expect([bad.code, bad.stderr]).toEqual([2, expect.stringMatching(/--for must be a duration/)]);
  });
});

describe('cancel', () => {
  it('a waiting job (queue/ or delayed/) goes to failed/ at once with ECANCELLED, and is never retried', async () => {
    const { dir, q } = await tempQueue();
    const ready = await q.enqueue('t', 1, { key: 'k' });
    const later = await q.enqueue('t', 2, { delay: 60_000, attempts: 5 });
    expect(await q.cancel(ready.id)).toEqual({ id: ready.id, state: 'failed' });
    expect(await q.cancel(later.id)).toEqual({ id: later.id, state: 'failed' });
    for (const id of [ready.id, later.id]) {
      const info = await q.get(id);
      expect(info.state).toBe('failed');
      expect(info.error).toMatchObject({ code: 'ECANCELLED', message: expect.stringMatching(/was cancelled by/) });
    }
    expect(ls(dir, 'cancel')).toEqual([]);
    expect((await q.enqueue('t', 3, { key: 'k' })).duplicate).toBe(false); // its key was released
    await q.recover();
    expect((await q.get(later.id)).state).toBe('failed');
    // an operator's retry still can
    await q.retry(ready.id);
    expect((await q.get(ready.id)).state).toBe('queue');
    await q.close();
  });

  it("a running job's signal aborts at once in its own process; it ends in failed/ whatever the processor returns", async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1, { attempts: 3 });
    const job = (await q.claim())!;
    const result = await q.cancel(id);
    expect(result).toEqual({ id, state: 'active', claim: job.claim });
    expect(ls(dir, 'cancel')).toEqual([`${id}@${job.claim}`]);
    expect(job.signal.aborted).toBe(true);
    expect(job.cancelled).toBe(true);
    expect((job.signal.reason as DirQueueError).code).toBe('ECANCELLED');
    expect(await q.cancel(id)).toEqual(result); // asking twice is asking once
    await job.complete('done anyway');
    const info = await q.get(id);
    expect([info.state, info.error?.code, info.result]).toEqual(['failed', 'ECANCELLED', undefined]);
    expect(ls(dir, 'cancel')).toEqual([]);
    await q.close();
  });

  it('a Pool aborts the processor of a cancelled job and records ECANCELLED, not a retry', async () => {
    const { dir, q } = await tempQueue({ staleAfter: 400 });
    const { id } = await q.enqueue('t', 1, { attempts: 5 });
    let sawAbort: unknown;
    const failed: [string, string | undefined][] = [];
    const pool = new Pool(dir, {
      processor: (job) =>
        new Promise((_resolve, reject) => {
          job.signal.addEventListener('abort', () => {
            sawAbort = (job.signal.reason as DirQueueError).code;
            reject(new Error('stopped'));
          });
        }),
      durable: false,
      pollInterval: 50,
      staleAfter: 400,
    });
    pool.on('failed', (job, error) => failed.push([job.id, error.code]));
    await pool.start();
    await until(() => ls(dir, 'active').length === 1, 'the job to start');
    const asked = performance.now();
    expect((await q.cancel(id)).state).toBe('active'); // another handle (in this process): seen at the holder's heartbeat
    await until(() => failed.length === 1, 'the job to end');
    expect(performance.now() - asked).toBeLessThan(400 / 4 + 300);
    expect([sawAbort, failed]).toEqual(['ECANCELLED', [[id, 'ECANCELLED']]]);
    expect((await q.get(id)).error?.code).toBe('ECANCELLED');
    await pool.close();
    await q.close();
  });

  it('a finished job: EBADSTATE saying it already ended; an unknown id: ENOTFOUND; not an id: EBADID', async () => {
    const { q } = await tempQueue();
    const { id } = await q.enqueue('t', 1);
    await (await q.claim())!.complete();
    await rejects(q.cancel(id), 'EBADSTATE', /already ended \(it is in done\/\)/);
    await rejects(q.cancel(id.replace(/\.t$/, '.u')), 'ENOTFOUND', /no job/);
    await rejects(q.cancel('nope'), 'EBADID', /not a job id/);
    await q.close();
  });

  it("a dead holder's cancelled job is ended in failed/ by the sweep, not put back in queue/", async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1, { attempts: 5 });
    const active = `${id}@${claimByDeadWorker(dir, id)}.0`;
    expect((await q.cancel(id)).state).toBe('active');
    expect(ls(dir, 'cancel')).toEqual([active]);
    await q.recover();
    const info = await q.get(id);
    expect([info.state, info.error?.code]).toEqual(['failed', 'ECANCELLED']);
    expect(ls(dir, 'cancel')).toEqual([]);
    await q.close();
  });

  it('stale cancel requests (their claim ended) are removed by sweeps and fsck once old; broken ones are reported', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1);
    const job = (await q.claim())!;
    const request = path.join(dir, 'cancel', `${id}@${job.claim}`);
    await q.cancel(id);
    await job.complete();
    fs.writeFileSync(request, ''); // as if the holder died between its ending and removing the request
    fs.writeFileSync(path.join(dir, 'cancel', 'junk'), '');
    await q.recover();
    expect(ls(dir, 'cancel')).toEqual([`${id}@${job.claim}`, 'junk']); // too young to judge
    backdate(request, 120_000);
    expect((await fsck(dir)).findings.map((f) => [f.kind, f.path])).toEqual([
      ['stale-helper', `cancel/${id}@${job.claim}`],
      ['stray', 'cancel/junk'],
    ]);
    await q.recover();
    expect(ls(dir, 'cancel')).toEqual(['junk']);
    await fsck(dir, { repair: true });
    expect(ls(dir, 'cancel')).toEqual(['junk~']);
    await q.close();
  });

  it('CLI: dirq cancel DIR ID... (text and --json), errors on stderr with exit 1', async () => {
    const { dir, q } = await tempQueue();
    const a = await q.enqueue('t', 1);
    const b = await q.enqueue('t', 2);
    const held: Job = (await q.claim({ types: ['t'] }))!;
    expect(held.id).toBe(a.id);
    const text = (await okText(['cancel', dir, b.id])).trim();
    expect(text).toBe(`cancelled ${b.id} (it was waiting: now in failed/)`);
    const json = await okJson(['cancel', dir, a.id, '--json']);
    expect(json).toEqual({ schema: 1, cancelled: [{ id: a.id, state: 'active', claim: held.claim }] });
    const again = await dirq(['cancel', dir, b.id]);
    expect([again.code, again.stderr]).toEqual([1, expect.stringMatching(/already ended/)]);
    await held.complete();
    await q.close();
  });
});

describe('open queues: a second handle sees pauses within one poll', () => {
  it('pause from another handle stops claims of this one', async () => {
    const { dir, q } = await tempQueue();
    const other = await openQueue(dir);
    await q.enqueue('t', 1);
    expect(await q.claim({ types: ['nothing'] })).toBeUndefined(); // starts this handle's pause watch
    await other.pause('t');
    await until(async () => {
      const job = await q.claim();
      if (job !== undefined) await job.release();
      return job === undefined;
    }, 'the pause to be seen');
    await other.resume('t');
    await until(async () => (await q.claim()) !== undefined, 'the resume to be seen');
    await other.close();
    await q.close();
  });
});
