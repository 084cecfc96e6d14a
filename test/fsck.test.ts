/**
 * fsck (src/fsck.ts): each kind of damage is found, nothing changes without
 * repair, repair fixes it and a second check is clean; healthy files of a
 * working queue are never reported.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsck, type Finding } from '../src/index.js';
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

  it('finds each kind of damage, changes nothing, and repair fixes all but strays', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const [copied, linked, garbage, wrongType, keyed, finished, crashed] = await Promise.all(
      ['copied', 'linked', 'garbage', 'wrongtype', 'keyed', 'finished', 'crashed'].map(async (t) => (await q.enqueue(t, {}, t === 'keyed' ? { key: 'K' } : {})).id),
    );
    await q.close();
    const at = (...p: string[]): string => path.join(dir, ...p);
    fs.copyFileSync(at('queue', copied!), at('done', copied!)); // a job in two states (cp)
    fs.appendFileSync(at('done', copied!), resultLine()); // the done/ copy has its result: it is not torn
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
      ['duplicate', `queue/${copied}`, false],
      ['duplicate', `queue/${linked}`, false],
      ['orphan-tmp', 'tmp/abandoned', false],
      ['stale-helper', 'dirqueue.json.lock', false],
      ['stale-helper', 'keys/stale-key', false],
      ['stale-helper', `workers/${ghost}`, false],
      ['stray', 'queue/README', false],
      ['unparsable', `queue/${garbage}`, false],
      ['unparsable', `queue/${wrongType}`, false],
    ]);
    expect(report.unrepaired).toBe(9);
    expect(report.findings.find((f) => f.path === `queue/${copied}`)).toMatchObject({
      problem: `job ${copied} is in done/, queue/`,
      action: `run with --repair to delete this copy and keep done/${copied}`,
    });
    expect(report.findings.find((f) => f.path === `queue/${garbage}`)!.problem).toMatch(/line 1 is not JSON/);
    expect(report.findings.find((f) => f.path === `queue/${wrongType}`)!.problem).toMatch(/type "other" differs from the type in its name "wrongtype"/);
    expect(snapshot(dir)).toEqual(before);

    const repaired = await fsck(dir, { repair: true });
    expect(repaired.findings.filter((f) => !f.repaired).map((f) => f.path)).toEqual(['queue/README']);
    expect(repaired.unrepaired).toBe(1);
    expect(fs.readdirSync(at('queue')).sort()).toEqual(['README', `${keyed}`].sort());
    expect(fs.readdirSync(at('done')).sort()).toEqual([copied, finished].sort());
    expect(fs.readdirSync(at('failed')).sort()).toEqual([garbage, linked, wrongType].sort());
    expect(fs.statSync(at('failed', linked!)).nlink).toBe(1);
    expect(fs.readdirSync(at('keys'))).toEqual(['K']); // the live job's key stays
    expect(fs.readdirSync(at('tmp'))).toEqual([]);
    expect(fs.readdirSync(at('workers')).filter((n) => !n.startsWith('totals'))).toEqual([holder]); // its claim needs it: dirq recover takes that job back
    expect(fs.existsSync(at('dirqueue.json.lock'))).toBe(false);

    fs.rmSync(at('queue', 'README'));
    expect(await fsck(dir)).toMatchObject({ findings: [], unrepaired: 0 });
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
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({ format: 'dirqueue', version: '1.0' });
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

  it('refuses a directory that is not a queue', async () => {
    const dir = tempDir();
    await expect(fsck(path.join(dir, 'nope'))).rejects.toMatchObject({ code: 'ENOQUEUE' });
    await expect(fsck(dir)).rejects.toMatchObject({ code: 'ENOTQUEUE', message: expect.stringMatching(/is not a queue/) });
  });
});
