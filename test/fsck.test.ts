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
      version: '1.3',
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

describe('fsck of limits/ (fsck-limits.ts)', () => {
  const order = (a: [string, string, boolean], b: [string, string, boolean]): number =>
    a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]);

  /** A heartbeat in workers/ of a worker on another host (never judged dead here), `ageMs` old. */
  function foreignHeartbeat(dir: string, nonce: string, ageMs: number): string {
    const owner = `elsewhere.4242.${nonce}`;
    const identity = { host: 'elsewhere', bootId: 'other-boot', pid: 4242, startTime: '1', started: '' };
    fs.writeFileSync(path.join(dir, 'workers', owner), JSON.stringify(identity));
    if (ageMs > 0) backdate(path.join(dir, 'workers', owner), ageMs);
    return owner;
  }

  it('finds each problem, changes nothing, and repair fixes all but a broken limit.json, which it never changes', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('send', { concurrency: 3, rate: { max: 2, per: 1000 } });
    await q.limit('mail', { concurrency: 1 });
    await q.close(); // no sweep of its own while the test breaks things
    const limits = path.join(dir, 'limits');
    const send = path.join(limits, 'send');
    const dead = deadHeartbeat(dir, 'dead'); // a holder on this host whose process is gone
    const silent = foreignHeartbeat(dir, 'silent', 2 * HOUR); // silent for longer than helperMaxAge
    const live = foreignHeartbeat(dir, 'live', 0); // another host's live holder: its slot is never judged
    fs.linkSync(path.join(dir, 'workers', dead), path.join(send, '0'));
    fs.linkSync(path.join(dir, 'workers', silent), path.join(send, '1'));
    fs.linkSync(path.join(dir, 'workers', live), path.join(send, '2'));
    fs.mkdirSync(path.join(send, 'g.abcdefghij.0')); // a slot name that is no link to a heartbeat
    fs.writeFileSync(path.join(send, 'notes.txt'), 'mine');
    fs.writeFileSync(path.join(send, '.hidden'), 'skipped, as dot files are');
    fs.writeFileSync(path.join(send, 'r.5@0000000000000000'), ''); // K >= max
    fs.writeFileSync(path.join(send, 'r.0@0000000000000001'), ''); // a second name of K 0, used later: it counts
    fs.unlinkSync(path.join(send, 'r.1@0000000000000000')); // a token missing
    fs.writeFileSync(path.join(limits, 'mail', 'r.0@0000000000000000'), ''); // mail has no rate
    fs.mkdirSync(path.join(limits, 'broken'));
    fs.writeFileSync(path.join(limits, 'broken', 'limit.json'), '{"concurrency": 0}');
    fs.writeFileSync(path.join(limits, 'broken', 'r.9@0000000000000000'), ''); // a broken limit's tokens wait
    fs.mkdirSync(path.join(limits, 'bad%zz')); // no type's name
    fs.symlinkSync(tempDir(), path.join(limits, 'link'));
    fs.writeFileSync(path.join(limits, 'file'), '');
    fs.mkdirSync(path.join(limits, 'old~')); // set aside earlier: skipped

    const before = snapshot(dir);
    const report = await fsck(dir);
    expect(snapshot(dir)).toEqual(before);
    const expected: [string, string, boolean][] = [
      ['limit', 'limits/broken/limit.json', false],
      ['limit', 'limits/mail/r.0@0000000000000000', false],
      ['limit', 'limits/send', false],
      ['limit', 'limits/send/r.0@0000000000000000', false],
      ['limit', 'limits/send/r.5@0000000000000000', false],
      ['stale-helper', 'limits/send/0', false],
      ['stale-helper', 'limits/send/1', false],
      ['stale-helper', `workers/${dead}`, false],
      ['stale-helper', `workers/${silent}`, false],
      ['stray', 'limits/bad%zz', false],
      ['stray', 'limits/file', false],
      ['stray', 'limits/link', false],
      ['stray', 'limits/send/g.abcdefghij.0', false],
      ['stray', 'limits/send/notes.txt', false],
    ];
    expect(brief(report.findings).sort(order)).toEqual(expected.sort(order));
    const problem = (p: string): string => report.findings.find((f) => f.path === p)!.problem;
    expect(problem('limits/broken/limit.json')).toMatch(
      /^the limit on broken cannot be used, so it is not obeyed: concurrency must be a whole number/,
    );
    expect(report.findings.find((f) => f.path === 'limits/broken/limit.json')!.action).toBe(
      `fix the file, or set the limit again (dirq limit ${dir} broken ...), or remove it (dirq limit ${dir} broken --clear)`,
    );
    expect(problem('limits/send/0')).toBe('a running slot of send held by a worker that is gone (its process is gone)');
    expect(problem('limits/send/1')).toBe('a running slot of send held by a worker that is gone (silent since 2h ago)');
    expect(problem('limits/send')).toBe(
      'the rate limit of send has 1 of its 2 tokens (missing: 1): it allows fewer starts than set',
    );
    expect(problem('limits/send/r.5@0000000000000000')).toBe(
      "rate token 5 of send, beyond the limit's 2 (tokens 0 to 1)",
    );
    expect(problem('limits/send/r.0@0000000000000000')).toBe(
      'a second name of rate token 0 of send (the one used later counts)',
    );
    expect(problem('limits/mail/r.0@0000000000000000')).toBe('a rate token of mail, which has no rate limit');
    expect(problem('limits/link')).toBe('a symbolic link where the directory of the limits of link belongs');
    expect(problem('limits/file')).toBe('a file where the directory of the limits of file belongs');
    expect(problem('limits/send/g.abcdefghij.0')).toMatch(
      /^a running slot of send that is a directory, not a hard link/,
    );

    const repaired = await fsck(dir, { repair: true });
    expect(brief(repaired.findings).sort(order)).toEqual(
      expected.map(([kind, p]): [string, string, boolean] => [kind, p, p !== 'limits/broken/limit.json']).sort(order),
    );
    expect(repaired.unrepaired).toBe(1);
    expect(fs.readFileSync(path.join(limits, 'broken', 'limit.json'), 'utf8')).toBe('{"concurrency": 0}');
    expect(fs.readdirSync(path.join(limits, 'broken')).sort()).toEqual(['limit.json', 'r.9@0000000000000000']);
    expect(fs.readdirSync(send).sort()).toEqual([
      '.hidden',
      '2',
      'g.abcdefghij.0~',
      'limit.json',
      'notes.txt~',
      'r.0@0000000000000001',
      'r.1@0000000000000000',
    ]);
    expect(fs.readdirSync(path.join(limits, 'mail'))).toEqual(['limit.json']);
    expect(fs.readdirSync(limits).sort()).toEqual(['bad%zz~', 'broken', 'file~', 'link~', 'mail', 'old~', 'send']);
    expect(brief((await fsck(dir)).findings)).toEqual([['limit', 'limits/broken/limit.json', false]]);
  });

  it('deletes a slot a sweeper moved aside (.reap.OWNER.TOKEN) once older than helperMaxAge, or at once when its sweeper is dead; never a young one of a live sweeper', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('send', { concurrency: 1 });
    await q.close();
    const name = '.reap.elsewhere.4242.live.abcdefgh'; // its sweeper, on another host, is never judged dead here
    const reap = path.join(dir, 'limits', 'send', name);
    fs.writeFileSync(reap, '');
    expect((await fsck(dir, { repair: true })).findings).toEqual([]); // young: a reaper may be about to link it back
    expect(fs.existsSync(reap)).toBe(true);
    // its age is its ctime, which utimes cannot set back: wait for the clock to pass it (a millisecond)
    await vi.waitFor(() => expect(Date.now()).toBeGreaterThan(fs.statSync(reap).ctimeMs + 1));
    const report = await fsck(dir, { helperMaxAge: 0 });
    expect(report.findings).toEqual([
      {
        kind: 'stale-helper',
        path: `limits/send/${name}`,
        problem: 'a running slot a sweep moved aside to free, left by a sweeper that died',
        action: 'run with --repair to delete it',
        repaired: false,
      },
    ]);
    expect(brief((await fsck(dir, { helperMaxAge: 0, repair: true })).findings)).toEqual([
      ['stale-helper', `limits/send/${name}`, true],
    ]);
    expect(fs.existsSync(reap)).toBe(false);
    const deadReap = `.reap.${deadHeartbeat(dir, 'sweeper')}.abcdefgh`; // its sweeper's process is gone
    fs.writeFileSync(path.join(dir, 'limits', 'send', deadReap), '');
    const report2 = await fsck(dir, { repair: true });
    expect(brief(report2.findings).filter(([, p]) => p.startsWith('limits/'))).toEqual([
      ['stale-helper', `limits/send/${deadReap}`, true],
    ]);
  });

  it('sets aside a limits/ that is no directory, and finds nothing in a queue without limits/', async () => {
    const { dir, q } = await tempQueue();
    await q.close();
    expect((await fsck(dir)).findings).toEqual([]);
    fs.writeFileSync(path.join(dir, 'limits'), 'not a directory');
    const report = await fsck(dir);
    expect(brief(report.findings)).toEqual([['stray', 'limits', false]]);
    expect(report.findings[0]!.problem).toBe('limits/ is a file, not a directory: no limit there is obeyed');
    await fsck(dir, { repair: true });
    expect(fs.existsSync(path.join(dir, 'limits~'))).toBe(true);
    expect((await fsck(dir)).findings).toEqual([]);
  });

  it('a sweep frees the slots fsck reports, judged alike (slots.ts): the dead holder at once, the silent one after staleAfter', async () => {
    const { dir, q } = await tempQueue({ staleAfter: 2 * HOUR, maintenance: false }); // sweeps only when the test says
    await q.limit('send', { concurrency: 3, rate: { max: 2, per: 1000 } });
    const send = path.join(dir, 'limits', 'send');
    const dead = deadHeartbeat(dir, 'dead');
    const silent = foreignHeartbeat(dir, 'silent', HOUR + 60_000); // gone for fsck (helperMaxAge 1h), not for a 2h staleAfter
    fs.linkSync(path.join(dir, 'workers', dead), path.join(send, '0'));
    fs.linkSync(path.join(dir, 'workers', silent), path.join(send, '1'));
    fs.unlinkSync(path.join(send, 'r.1@0000000000000000'));
    expect(brief((await fsck(dir)).findings).filter(([, p]) => p.startsWith('limits/'))).toEqual([
      ['limit', 'limits/send', false],
      ['stale-helper', 'limits/send/0', false],
      ['stale-helper', 'limits/send/1', false],
    ]);
    await q.recover();
    expect(fs.readdirSync(send).sort()).toEqual(['1', 'limit.json', 'r.0@0000000000000000', 'r.1@0000000000000000']);
    backdate(path.join(send, '1'), 3 * HOUR);
    await q.recover();
    expect(fs.readdirSync(send).sort()).toEqual(['limit.json', 'r.0@0000000000000000', 'r.1@0000000000000000']);
    await q.close();
  });

  it('leaves the slot of a live holder and the tokens of a working limit alone', async () => {
    const { dir, q } = await tempQueue();
    await q.limit('send', { concurrency: 2, rate: { max: 3, per: 60_000 } });
    await q.enqueue('send', 1);
    const job = await q.claim(); // slot 0 held, token used: this process is alive
    expect(fs.readdirSync(path.join(dir, 'limits', 'send'))).toContain('0');
    expect((await fsck(dir, { repair: true })).findings).toEqual([]);
    await job!.complete();
    await q.close();
  });
});
