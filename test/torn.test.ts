/**
 * Torn results (FORMAT.md, "Torn results"): a job in done/ whose result
 * event a power cut lost did not provably complete. Readers say so, fsck
 * names it, and the first sweep after a boot (or fsck --repair) puts it back
 * to run again. The files are torn by hand the three ways loop images showed:
 * ext4 (the result line reads as NUL bytes), xfs (the file keeps its old
 * length: no result line), btrfs (half a line).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { fsck } from '../dist/maintenance/fsck.js';
import type { Queue } from '../dist/index.js';
import { YIELD_BYTES } from '../dist/maintenance/torn.js';
import { openQueue, tempQueue } from './support/temp.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

/** Enqueue and complete one job per entry of `results` (undefined: complete() with nothing); ids in order. */
async function completed(q: Queue, results: unknown[]): Promise<string[]> {
  const ids: string[] = [];
  for (const result of results) {
    const { id } = await q.enqueue('t', { n: ids.length });
    const job = (await q.claim())!;
    await job.complete(result);
    ids.push(id);
  }
  return ids;
}

/** The three tears, applied to done/ID: what a power cut left of the result line complete() appended. */
function tear(dir: string, id: string, how: 'nul' | 'missing' | 'half'): void {
  const file = path.join(dir, 'done', id);
  const text = fs.readFileSync(file, 'utf8');
  const cut = text.lastIndexOf('\n', text.length - 2) + 1; // where the result line starts
  const line = text.slice(cut);
  const rest = { nul: '\0'.repeat(Buffer.byteLength(line)), missing: '', half: line.slice(0, line.length >> 1) }[how];
  fs.writeFileSync(file, text.slice(0, cut) + rest);
}

/** As if the host had booted since the last check of done/. */
function reboot(dir: string): void {
  for (const name of fs.readdirSync(path.join(dir, 'workers'))) {
    if (name.startsWith('.done-checked.')) fs.rmSync(path.join(dir, 'workers', name));
  }
}

describe('torn results', () => {
  it('readers see a torn done/ job as torn, never as one without a result; complete() with nothing is not torn', async () => {
    const { dir, q } = await tempQueue();
    const [nul, missing, half, nothing, kept] = await completed(q, ['r0', 'r1', 'r2', undefined, 'r4']);
    tear(dir, nul!, 'nul');
    tear(dir, missing!, 'missing');
    tear(dir, half!, 'half');

    expect((await q.get(nul!)).torn).toMatch(/NUL bytes/);
    expect((await q.get(missing!)).torn).toMatch(/no result event/);
    expect((await q.get(half!)).torn).toMatch(/cut short/);
    for (const id of [nul, missing, half]) {
      const info = await q.get(id!);
      expect([info.state, 'result' in info], id).toEqual(['done', false]);
      await expect(q.waitFor(id!), id).rejects.toMatchObject({
        code: 'ETORN',
        message: expect.stringContaining('fsck'),
      });
    }
    const none = await q.get(nothing!);
    expect(['torn' in none, 'result' in none, none.result]).toEqual([false, true, undefined]);
    expect(await q.waitFor(nothing!)).toBeUndefined();
    expect(await q.waitFor(kept!)).toBe('r4');
    expect((await q.list('done')).filter((info) => info.torn !== undefined).map((info) => info.id)).toEqual([
      nul,
      missing,
      half,
    ]);
    await q.close();
  });

  it('a done/ job whose last outcome is an error, not a result, is torn too', async () => {
    const { dir, q } = await tempQueue({ backoff: { type: 'fixed', delay: 0 } });
    const { id } = await q.enqueue('t');
    await (await q.claim())!.fail(new Error('first run'));
    await (await q.claim())!.complete('second run');
    tear(dir, id, 'missing'); // the error of run 1 is what is left
    expect((await q.get(id)).torn).toMatch(/no result event/);
    await q.close();
  });

  it('the first sweep after a boot puts torn jobs back to run again, saying why; later sweeps do not read done/', async () => {
    const { dir, q } = await tempQueue();
    const [nul, missing, half, kept] = await completed(q, ['r0', 'r1', 'r2', 'r3']);
    tear(dir, nul!, 'nul');
    tear(dir, missing!, 'missing');
    tear(dir, half!, 'half');
    expect((await q.recover()).torn?.requeued).toEqual([]); // this boot was checked when the queue opened

    reboot(dir);
    expect((await q.recover()).torn?.requeued).toEqual([nul, missing, half]);
    expect([ls(dir, 'queue'), ls(dir, 'done')]).toEqual([[nul, missing, half], [kept]]);
    for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
      expect(job.attempt, job.id).toBe(2); // the lost run shows in the attempt number
      const info = await q.get(job.id);
      expect(info.history.filter((e) => e.event === 'torn')).toEqual([
        { event: 'torn', at: expect.any(String), reason: expect.any(String) },
      ]);
      expect(info.error).toMatchObject({ code: 'ETORN', message: expect.stringContaining('the job ran again') });
      await job.complete(`again ${job.id}`);
    }
    for (const id of [nul, missing, half]) expect(await q.waitFor(id!)).toBe(`again ${id}`);
    expect(await q.waitFor(kept!)).toBe('r3');

    tear(dir, kept!, 'missing');
    const open = vi.spyOn(fs, 'openSync');
    try {
      expect((await q.recover()).torn?.requeued).toEqual([]);
      expect(open.mock.calls.filter(([file]) => String(file).includes(`${path.sep}done${path.sep}`))).toEqual([]);
    } finally {
      open.mockRestore();
    }
    expect(ls(dir, 'workers').filter((n) => n.startsWith('.done-checked.'))).toHaveLength(1);
    await q.close();
  });

  it('a torn job older than keepDone is put back to run, not pruned with the done jobs of its age', async () => {
    const { dir, q } = await tempQueue({ keepDone: 0 }); // every done/ job is past its retention
    const [torn, kept] = await completed(q, ['r0', 'r1']);
    tear(dir, torn!, 'missing');
    const old = new Date(Date.now() - 3600_000); // a power cut may leave the mtime of an earlier write
    for (const id of [torn, kept]) fs.utimesSync(path.join(dir, 'done', id!), old, old);
    reboot(dir);
    const report = await q.recover();
    expect([report.torn?.requeued, report.pruned]).toEqual([[torn], 1]);
    expect([ls(dir, 'queue'), ls(dir, 'done')]).toEqual([[torn], []]);
    await q.close();
  });

  it('a torn job whose attempts were used up still runs again: the lost run did not fail', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1, { attempts: 1 });
    await (await q.claim())!.complete('lost');
    tear(dir, id, 'nul');
    reboot(dir);
    await q.recover();
    const again = (await q.claim())!;
    expect([again.id, again.attempt, again.attempts]).toEqual([id, 2, 1]);
    expect(await again.fail(new Error('now it fails'))).toBe('failed'); // one attempt of its own, as before
    await q.close();
  });

  it('a torn job with a unique key holds it again when it goes back to run', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1, { key: 'report-7' });
    await (await q.claim())!.complete('lost');
    tear(dir, id, 'missing');
    reboot(dir);
    await q.recover();
    expect(await q.enqueue('t', 2, { key: 'report-7' })).toEqual({ id, duplicate: true });
    await (await q.claim())!.complete('again');
    expect((await q.enqueue('t', 3, { key: 'report-7' })).duplicate).toBe(false); // released when it ended
    await q.close();
  });

  it('fsck names a torn job, and --repair puts it back in queue/', async () => {
    const { dir, q } = await tempQueue();
    const [torn, kept] = await completed(q, ['r0', 'r1']);
    await q.close();
    tear(dir, torn!, 'half');
    const report = await fsck(dir);
    expect(report.findings).toEqual([
      {
        kind: 'torn',
        path: `done/${torn}`,
        problem: expect.stringMatching(/^not provably completed: its last line is cut short/),
        action: expect.stringContaining('--repair'),
        repaired: false,
      },
    ]);
    expect(report.unrepaired).toBe(1);
    const repaired = await fsck(dir, { repair: true });
    expect(repaired.findings).toEqual([
      expect.objectContaining({
        kind: 'torn',
        action: `moved back to queue/${torn}`.concat(' to run again'),
        repaired: true,
      }),
    ]);
    expect([ls(dir, 'queue'), ls(dir, 'done')]).toEqual([[torn], [kept]]);
    expect(await fsck(dir)).toMatchObject({ findings: [], unrepaired: 0 });
    const other = await openQueue(dir);
    const job = (await other.claim())!;
    expect([job.id, job.attempt]).toEqual([torn, 2]);
    await job.complete('again');
    expect(await other.waitFor(torn!)).toBe('again');
    await other.close();
  });

  it('the pass after a boot yields to the event loop by bytes read too, not only every 256 files', async () => {
    const { dir, q } = await tempQueue();
    const big = 'r'.repeat(3 << 20); // 3 MiB results: a few files are more than YIELD_BYTES
    await completed(q, [big, big, big, big, big, big]);
    reboot(dir);
    // count the turns of the event loop, and what is read in each
    let turn = 0;
    let counting = true;
    const tick = (): void => {
      turn++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    const readPerTurn = new Map<number, number>();
    const realRead = fs.readSync;
    const read = vi.spyOn(fs, 'readSync').mockImplementation((...args: Parameters<typeof fs.readSync>) => {
      const n = (realRead as (...a: Parameters<typeof fs.readSync>) => number)(...args);
      readPerTurn.set(turn, (readPerTurn.get(turn) ?? 0) + n);
      return n;
    });
    try {
      await q.recover();
    } finally {
      read.mockRestore();
      counting = false;
    }
    const perTurn = [...readPerTurn.values()];
    expect(perTurn.reduce((a, b) => a + b, 0)).toBeGreaterThan(6 * big.length); // it read every result
    expect(Math.max(...perTurn)).toBeLessThan(YIELD_BYTES + 2 * big.length); // at most YIELD_BYTES and the file that passed it
    await q.close();
  });

  it('a boot whose check cannot be recorded in workers/ is checked once per process, with one warning', async () => {
    const { dir, q } = await tempQueue();
    const [torn] = await completed(q, ['r0', 'r1']);
    tear(dir, torn!, 'missing');
    reboot(dir);
    const realOpen = fs.openSync;
    const open = vi.spyOn(fs, 'openSync').mockImplementation(((file: fs.PathLike, ...rest: [never]) => {
      if (String(file).includes(`${path.sep}.done-checked.`))
        throw Object.assign(new Error(`EACCES: permission denied, open '${String(file)}'`), { code: 'EACCES' });
      return (realOpen as (f: fs.PathLike, ...r: [never]) => number)(file, ...rest);
    }) as typeof fs.openSync);
    try {
      const first = (await q.recover()).torn!;
      expect(first.requeued).toEqual([torn]);
      expect(first.problems).toEqual([
        expect.objectContaining({
          code: 'EACCES',
          message: expect.stringMatching(/\.done-checked\..*permission denied.*this process will not check again/),
        }),
      ]);
      open.mockClear();
      expect((await q.recover()).torn).toEqual({ requeued: [], problems: [] }); // no second warning
      expect(open.mock.calls.filter(([file]) => String(file).includes(`${path.sep}done${path.sep}`))).toEqual([]); // and done/ was not read again
    } finally {
      open.mockRestore();
    }
    await q.close();
  });
});
