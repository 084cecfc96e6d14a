/**
 * fsck (src/maintenance/fsck.ts): each kind of damage is found, nothing changes without
 * repair, repair fixes it and a second check is clean; healthy files of a
 * working queue are never reported.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { fsck, type Finding } from '../dist/index.js';
import { backdate, claimByDeadWorker, deadHeartbeat, resultLine } from './support/fake.js';
import { openQueue, tempDir, tempQueue } from './support/temp.js';

const HOUR = 3600_000;

/** Every path under `dir` with its size: a snapshot to prove that a check changed nothing. */
function snapshot(dir: string): string[] {
  return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((p) => {
    const stat = fs.lstatSync(path.join(dir, p));
    return `${p} ${stat.isDirectory() ? 'dir' : stat.size}`;
  });
}

const brief = (findings: Finding[]): [string, string, boolean][] => findings.map((f) => [f.kind, f.path, f.repaired]);

describe('fsck', () => {
  it('finds nothing wrong in a working queue with jobs in every state', async () => {
    const { dir, q } = await tempQueue();
    const done = await q.enqueue('a', 1);
    await q.enqueue('a', 2, { attempts: 1 });
    await q.enqueue('a', 3, { key: 'k' });
    await q.enqueue('a', 4, { delay: HOUR });
    await (await q.claim())!.complete('ok');
    await (await q.claim())!.fail(new Error('no'));
    const held = await q.claim(); // active, with this process's live heartbeat
    fs.writeFileSync(path.join(dir, 'tmp', 'being-written'), '{'); // a writer at work
    fs.writeFileSync(path.join(dir, 'queue', '.hidden'), 'x'); // dot files and ~ names are skipped
    fs.writeFileSync(path.join(dir, 'queue', `${done.id}~`), 'x');
    const report = await fsck(dir);
    expect(report).toEqual({ dir, checked: 2, findings: [], unrepaired: 0 });
    await held!.complete();
    await q.close();
  });

  it('finds each kind of damage, changes nothing, and repair fixes it all', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const [copied, linked, garbage, wrongType, keyed, finished, crashed] = await Promise.all(
      ['copied', 'linked', 'garbage', 'wrongtype', 'keyed', 'finished', 'crashed'].map(
        async (t) => (await q.enqueue(t, {}, t === 'keyed' ? { key: 'K' } : {})).id,
      ),
    );
    await q.close();
    const at = (...p: string[]): string => path.join(dir, ...p);
    fs.copyFileSync(at('queue', copied!), at('done', copied!)); // a job in two states (cp)
    fs.linkSync(at('queue', linked!), at('failed', linked!)); // ... and by a hard link
    fs.writeFileSync(at('queue', garbage!), 'this is not JSON\n');
    fs.writeFileSync(at('queue', wrongType!), '{"type":"other"}\n');
    fs.appendFileSync(at('queue', finished!), resultLine());
    fs.renameSync(at('queue', finished!), at('done', finished!));
    fs.symlinkSync(finished!, at('keys', 'stale-key')); // a key whose job ended
    fs.writeFileSync(at('tmp', 'abandoned'), '{"data":');
    backdate(at('tmp', 'abandoned'), 2 * HOUR);
    const ghost = deadHeartbeat(dir, 'ghost'); // a worker that died holding nothing
    const holder = claimByDeadWorker(dir, crashed!); // a dead worker holding a job: left for recover
    fs.mkdirSync(at('dirqueue.json.lock'));
    backdate(at('dirqueue.json.lock'), 2 * HOUR);
    fs.writeFileSync(at('queue', 'README'), 'notes');
    const before = snapshot(dir);

    const report = await fsck(dir);
    expect(brief(report.findings)).toEqual([
      ['duplicate', `done/${copied}`, false],
      ['duplicate', `failed/${linked}`, false],
      ['orphan-tmp', 'tmp/abandoned', false],
      ['stale-helper', 'dirqueue.json.lock', false],
      ['stale-helper', 'keys/stale-key', false],
      ['stale-helper', `workers/${ghost}`, false],
      ['stray', 'queue/README', false],
      ['unparsable', `queue/${garbage}`, false],
      ['unparsable', `queue/${wrongType}`, false],
    ]);
    expect(report.unrepaired).toBe(9);
    // the copies in done/ and failed/ never ran there (no result, no error): the waiting one is the job
    expect(report.findings.find((f) => f.path === `done/${copied}`)).toMatchObject({
      problem: `job ${copied} is in queue/, done/`,
      action: `run with --repair to delete this copy and keep queue/${copied}`,
    });
    expect(report.findings.find((f) => f.path === 'queue/README')!.action).toBe(
      'rename it or move it out of queue/, or run with --repair to rename it to README~',
    );
    expect(report.findings.find((f) => f.path === `queue/${garbage}`)!.problem).toMatch(/line 1 is not JSON/);
    expect(report.findings.find((f) => f.path === `queue/${wrongType}`)!.problem).toMatch(
      /type "other" differs from the type in its name "wrongtype"/,
    );
    expect(snapshot(dir)).toEqual(before);

    const repaired = await fsck(dir, { repair: true });
    expect(repaired.findings.filter((f) => !f.repaired).map((f) => f.path)).toEqual([]);
    expect(repaired.unrepaired).toBe(0);
    expect(repaired.findings.find((f) => f.path === 'queue/README')!.action).toBe(
      'renamed to README~ (set aside: readers and fsck skip names ending in ~)',
    );
    expect(fs.readdirSync(at('queue')).sort()).toEqual(['README~', copied, keyed, linked].sort());
    expect(fs.readdirSync(at('done')).sort()).toEqual([finished]);
    expect(fs.readdirSync(at('failed')).sort()).toEqual([garbage, wrongType].sort());
    expect(fs.statSync(at('queue', linked!)).nlink).toBe(1);
    expect(fs.readdirSync(at('keys'))).toEqual(['K']); // the live job's key stays
    expect(fs.readdirSync(at('tmp'))).toEqual([]);
    expect(fs.readdirSync(at('workers')).filter((n) => !n.startsWith('totals'))).toEqual([holder]); // its claim needs it: dirq recover takes that job back
    expect(fs.existsSync(at('dirqueue.json.lock'))).toBe(false);

    expect(await fsck(dir)).toMatchObject({ findings: [], unrepaired: 0 }); // the stray set aside is no longer damage
    const q2 = await openQueue(dir, { maintenance: false });
    expect((await q2.get(garbage!)).invalid).toMatch(/line 1 is not JSON/);
    expect((await q2.get(wrongType!)).invalid).toMatch(/differs from the type in its name/);
    await q2.close();
  });

  it('recreates a missing directory and dirqueue.json with repair', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('a', 1);
    await q.close();
    fs.rmSync(path.join(dir, 'delayed'), { recursive: true });
    fs.rmSync(path.join(dir, 'dirqueue.json'));
    expect(brief((await fsck(dir)).findings)).toEqual([
      ['missing', 'delayed', false],
      ['settings', 'dirqueue.json', false],
    ]);
    expect(brief((await fsck(dir, { repair: true })).findings)).toEqual([
      ['missing', 'delayed', true],
      ['settings', 'dirqueue.json', true],
    ]);
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({
      format: 'dirqueue',
      version: '1.2',
    });
    expect(await fsck(dir)).toMatchObject({ findings: [], checked: 1 });
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([id]);
  });

  it('keeps the copy furthest along: active over queue', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id } = await q.enqueue('a', 1);
    fs.copyFileSync(path.join(dir, 'queue', id), path.join(dir, 'tmp', 'copy'));
    const job = await q.claim();
    fs.renameSync(path.join(dir, 'tmp', 'copy'), path.join(dir, 'queue', id));
    const report = await fsck(dir, { repair: true });
    expect(brief(report.findings)).toEqual([['duplicate', `queue/${id}`, true]]);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([]);
    await job!.complete();
    await q.close();
  });

  it('keeps a done/ copy of a job only when it has its result (item 15)', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const { id: ran } = await q.enqueue('a', 1);
    const { id: never } = await q.enqueue('a', 2);
    fs.copyFileSync(path.join(dir, 'queue', ran), path.join(dir, 'tmp', 'copy'));
    const job = await q.claim();
    expect(job!.id).toBe(ran);
    await job!.complete('done it');
    fs.renameSync(path.join(dir, 'tmp', 'copy'), path.join(dir, 'queue', ran)); // a copy from before it ran
    fs.copyFileSync(path.join(dir, 'queue', never), path.join(dir, 'done', never)); // a copy in done/ of a job that never ran
    await q.close();
    const report = await fsck(dir, { repair: true });
    expect(brief(report.findings)).toEqual([
      ['duplicate', `done/${never}`, true],
      ['duplicate', `queue/${ran}`, true],
    ]);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([never]);
    expect(fs.readdirSync(path.join(dir, 'done'))).toEqual([ran]);
  });

  it('sets a stray aside once: a second check is clean (item 15)', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    await q.close();
    fs.writeFileSync(path.join(dir, 'queue', 'notes.txt'), 'mine');
    fs.writeFileSync(path.join(dir, 'queue', 'notes.txt~'), 'an earlier one');
    fs.writeFileSync(path.join(dir, 'keys', 'not-a-link'), 'x');
    expect(brief((await fsck(dir, { repair: true })).findings)).toEqual([
      ['stray', 'keys/not-a-link', true],
      ['stray', 'queue/notes.txt', true],
    ]);
    expect(fs.readdirSync(path.join(dir, 'queue')).sort()).toEqual(['notes.txt.2~', 'notes.txt~']);
    expect(fs.readFileSync(path.join(dir, 'queue', 'notes.txt.2~'), 'utf8')).toBe('mine');
    expect(fs.readdirSync(path.join(dir, 'keys'))).toEqual(['not-a-link~']);
    expect(await fsck(dir)).toMatchObject({ findings: [], unrepaired: 0 });
  });

  it('leaves a key that is released and taken again while it looks: no stray, and the new holder keeps it (found by the soak)', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const first = await q.enqueue('a', 1, { key: 'k' });
    const next = await q.enqueue('a', 2);
    const key = path.join(dir, 'keys', 'k');
    const readlink = fs.readlinkSync.bind(fs);
    // between fsck's listing of keys/ and its read of the link, the first job ends (its key is
    // released) and another enqueue takes the key for `next` just after the read fails
    vi.spyOn(fs, 'readlinkSync').mockImplementation(((file: string, ...rest: []) => {
      if (file !== key || !fs.existsSync(path.join(dir, 'queue', first.id))) return readlink(file, ...rest);
      fs.renameSync(path.join(dir, 'queue', first.id), path.join(dir, 'done', first.id));
      fs.unlinkSync(key);
      try {
        return readlink(file, ...rest);
      } finally {
        fs.symlinkSync(next.id, key);
      }
    }) as typeof fs.readlinkSync);
    let report;
    try {
      report = await fsck(dir, { repair: true });
    } finally {
      vi.restoreAllMocks();
    }
    expect(brief(report.findings).filter(([, where]) => where.startsWith('keys/'))).toEqual([]);
    expect(fs.readdirSync(path.join(dir, 'keys'))).toEqual(['k']);
    expect(fs.readlinkSync(key)).toBe(next.id);
    await q.close();
  });

  it('refuses a directory that is not a queue', async () => {
    const dir = tempDir();
    await expect(fsck(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOQUEUE' });
    await expect(fsck(dir)).rejects.toMatchObject({
      code: 'ENOTQUEUE',
      message: expect.stringMatching(/is not a queue/),
    });
  });
});
