/** I9: bad arguments and hostile files get a typed error or are set aside, and never hurt other jobs. */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { DirQueueError, fsck, Pool, Queue } from '../dist/index.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { exited, openQueue, openToAll, spawnNode, tempDir, tempQueue } from './support/temp.js';

const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();
const ID = (unique: string): string => `50-1763830000000000-${unique}.t`;
const isRoot = process.getuid?.() === 0;
const CHILD = checkoutForOtherUsers().child; // a copy other users may read wherever the checkout is

/**
 * Unmount a test's filesystem. One still busy (a file left open) is detached
 * lazily, so it never stays mounted; the error of the plain umount is
 * returned, for the test to fail with once its own failure, if any, is told.
 */
function unmount(mount: string): Error | undefined {
  try {
    execFileSync('umount', [mount], { stdio: 'pipe' });
    return undefined;
  } catch (error) {
    execFileSync('umount', ['-l', mount]);
    return error as Error;
  }
}

async function claimAll(q: Awaited<ReturnType<typeof openQueue>>): Promise<unknown[]> {
  const data: unknown[] = [];
  for (let job = await q.claim(); job; job = await q.claim()) {
    data.push(job.data);
    await job.complete();
  }
  return data;
}

describe('I9 bad arguments', () => {
  it('rejects bad enqueue arguments with a code and a message that says what to do', async () => {
    const { dir, q } = await tempQueue();
    const cases: [() => Promise<unknown>, string, RegExp][] = [
      [() => q.enqueue('t', 1, { priority: 500 }), 'EBADOPTION', /priority must be an integer 0\.\.99.*got 500/],
      [() => q.enqueue('t', 1, { priority: 1.5 }), 'EBADOPTION', /priority/],
      [() => q.enqueue('', 1), 'EBADTYPE', /non-empty string/],
      [() => q.enqueue(7 as unknown as string, 1), 'EBADTYPE', /got 7/],
      [() => q.enqueue('t', () => 1), 'EBADDATA', /data is a function/],
      [() => q.enqueue('t', { n: 10n }), 'EBADDATA', /data\.n is a BigInt/],
      [() => q.enqueue('t', { s: Symbol('x') }), 'EBADDATA', /symbol/],
      [() => q.enqueue('t', [1, undefined]), 'EBADDATA', /data\[1\] is undefined/],
      [() => q.enqueue('t', { when: new Date() }), 'EBADDATA', /toISOString/],
      [() => q.enqueue('t', { m: new Map() }), 'EBADDATA', /Map/],
      [() => q.enqueue('t', { x: NaN }), 'EBADDATA', /NaN/],
      // the path to a value deep down, put together on the way back up (json-check.ts)
      [() => q.enqueue('t', { a: [0, { b: [1, Infinity] }] }), 'EBADDATA', /^data\.a\[1\]\.b\[1\] is Infinity,/],
      [
        () => q.enqueue('t', { list: new Array<number>(3).fill(1, 2) }),
        'EBADDATA',
        /^data\.list\[0\] is a hole in a sparse array/,
      ],
      [
        () => {
          const a: unknown[] = [1];
          a.push({ back: a });
          return q.enqueue('t', { a });
        },
        'EBADDATA',
        /^data\.a\[1\]\.back is a circular reference/,
      ],
      [
        () => {
          const o: Record<string, unknown> = {};
          o.self = o;
          return q.enqueue('t', o);
        },
        'EBADDATA',
        /circular/,
      ],
      [() => q.enqueue('t', 1, { delay: -5 }), 'EBADOPTION', /delay/],
      [() => q.enqueue('t', 1, { delay: 5, runAt: Date.now() }), 'EBADOPTION', /either delay or runAt/],
      [() => q.enqueue('t', 1, { runAt: new Date('nope') }), 'EBADOPTION', /runAt/],
      [() => q.enqueue('t', 1, { attempts: 0 }), 'EBADOPTION', /attempts/],
      [() => q.enqueue('t', 1, { backoff: { type: 'exponential', delay: 1, jitter: 2 } }), 'EBADOPTION', /backoff/],
      [() => q.enqueue('t', 1, { timeout: 0 }), 'EBADOPTION', /timeout must be a number of milliseconds >= 1/],
      [
        () => q.enqueue('t', 1, { prio: 5 } as never),
        'EBADOPTION',
        /unknown enqueue option "prio"; the options are priority, delay/,
      ],
      [() => q.enqueueMany([{ type: 't', priorty: 5 } as never]), 'EBADOPTION', /unknown enqueue option "priorty"/],
      [
        () => Queue.open(dir, { stalAfter: 5 } as never),
        'EBADOPTION',
        /unknown Queue option "stalAfter"; the options are create, durable/,
      ],
      [
        () => Queue.open(dir, { batchSync: 'syncfs' } as never),
        'EBADOPTION',
        /batchSync must be 'auto' or 'fdatasync', got "syncfs"/,
      ],
      [
        async () => new Pool(dir, { processor: () => 1, thread: 2 } as never),
        'EBADOPTION',
        /unknown Pool option "thread"; the options are processor, isolation, threads/,
      ],
      [() => q.list('queue', { limit: -1 }), 'EBADOPTION', /limit must be an integer >= 0, got -1/],
      [() => q.enqueue('t', 'x'.repeat(17 * 1024 * 1024)), 'ETOOBIG', /maxJobBytes/],
      [() => q.claim({ types: 'a' as unknown as string[] }), 'EBADOPTION', /array/],
      [() => q.claim({ wait: -1 }), 'EBADOPTION', /wait/],
      [() => q.get('../../etc/passwd'), 'EBADID', /not a job id/],
      [() => q.retry('nope'), 'EBADID', /not a job id/],
      [() => q.list('trash' as never), 'EBADOPTION', /use one of queue, delayed, active, done, failed/],
      [() => q.purge('nope' as never), 'EBADOPTION', /unknown state/],
      [() => q.get(ID('missing')), 'ENOTFOUND', /no job/],
    ];
    for (const [call, code, message] of cases) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, String(call)).toBeInstanceOf(DirQueueError);
      expect(error, String(call)).toMatchObject({ code, message: expect.stringMatching(message) });
    }
    expect(ls(dir, 'queue')).toEqual([]);
    expect(ls(dir, 'tmp')).toEqual([]);
    await q.close();
  });

  it('refuses a bad element or an unknown name in the options of Pool, enqueue and fsck at once', async () => {
    const { dir, q } = await tempQueue();
    const cases: [() => Promise<unknown>, RegExp][] = [
      // A Pool claims with its types on every pump: a type a claim cannot encode must stop the constructor, not every claim.
      [
        async () => new Pool(dir, { processor: () => 1, types: ['ok', 'x'.repeat(200)] }),
        /^types\[1\] is not a job type \(job type is too long: 200 characters/,
      ],
      [
        async () => new Pool(dir, { processor: () => 1, types: [7 as unknown as string] }),
        /^types\[0\] is not a job type \(job type must be a non-empty string, got 7\)/,
      ],
      // Written into the job file as JSON, Infinity would become null and the file would no longer parse.
      [() => q.enqueue('t', 1, { backoff: { type: 'exponential', delay: 1, max: Infinity } }), /^backoff must be ms, /],
      [() => q.enqueue('t', 1, { backoff: { type: 'fixed', delay: 1, jiter: 0.2 } as never }), /^backoff must be ms, /],
      [() => Queue.open(dir, { backoff: { type: 'fixed', delay: 1, max: 5 } as never }), /^backoff must be ms, /],
      [
        () => fsck(dir, { repiar: true } as never),
        /^unknown fsck option "repiar"; the options are repair, tmpMaxAge, helperMaxAge, maxJobBytes$/,
      ],
      [() => fsck(dir, { maxJobBytes: -1 }), /^maxJobBytes must be an integer >= 64, got -1$/],
      [() => fsck(dir, { tmpMaxAge: NaN }), /^tmpMaxAge must be a number of milliseconds >= 0, got NaN$/],
      [() => fsck(dir, { repair: 'yes' as never }), /^repair must be true or false, got "yes"$/],
      [() => fsck(dir, null as never), /^fsck options must be an object, got null$/],
    ];
    for (const [call, message] of cases) {
      const error = await call().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error, String(call)).toBeInstanceOf(DirQueueError);
      expect(error, String(call)).toMatchObject({ code: 'EBADOPTION', message: expect.stringMatching(message) });
    }
    expect(ls(dir, 'queue')).toEqual([]);
    await q.close();
  });

  it('a type like ../../x cannot create a file outside the queue', async () => {
    const base = tempDir();
    const dir = path.join(base, 'q');
    const q = await openQueue(dir);
    const { id } = await q.enqueue('../../x', 'payload');
    await q.enqueue('../../x', 'later', { delay: 60_000 });
    expect(fs.readdirSync(base)).toEqual(['q']);
    expect(ls(dir, 'queue')).toEqual([id]);
    const job = (await q.claim({ types: ['../../x'] }))!;
    expect(job.type).toBe('../../x');
    await job.complete();
    expect(fs.readdirSync(base)).toEqual(['q']);
    await q.close();
  });

  it('a full disk is ENOSPC with advice, and loses no other job', async () => {
    if (!isRoot) throw new Error('this test mounts a tiny tmpfs and needs root (CI runs as root)');
    const mount = tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=256k', 'tmpfs', mount]);
    const q = await openQueue(path.join(mount, 'q'));
    try {
      const kept = await q.enqueue('t', 'small');
      const big = 'y'.repeat(100 * 1024);
      const error = await (async () => {
        for (let i = 0; i < 10; i++) await q.enqueue('t', big);
      })().then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).toMatchObject({ code: 'ENOSPC', message: expect.stringContaining('full') });
      expect(ls(path.join(mount, 'q'), 'tmp')).toEqual([]); // the partial write was removed
      const job = (await q.claim())!;
      expect(job.id).toBe(kept.id);
      expect(job.data).toBe('small');
      await job.complete();
    } finally {
      await q.close();
      execFileSync('umount', [mount]);
    }
  });

  it('a nearly full disk: an enqueue, a complete and a fail that do not fit fail with ENOSPC and leave every file as it was', async () => {
    if (!isRoot) throw new Error('this test mounts a tiny tmpfs and needs root (CI runs as root)');
    const mount = tempDir();
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=2m', 'tmpfs', mount]);
    const dir = path.join(mount, 'q');
    const queues: Queue[] = [];
    let failure: unknown;
    try {
      const q = await openQueue(dir, { maintenance: false });
      queues.push(q);
      const { id } = await q.enqueue('t', 'small');
      const job = (await q.claim())!;
      const before = fs.readFileSync(job.path);
      const filler = path.join(mount, 'filler');
      const { bavail, bsize } = fs.statfsSync(mount);
      fs.writeFileSync(filler, Buffer.alloc(bavail * bsize - 40 * 1024)); // 40 KB left
      const big = 'y'.repeat(200 * 1024);

      await expect(q.enqueue('t', big)).rejects.toMatchObject({
        code: 'ENOSPC',
        message: expect.stringContaining('full'),
      });
      expect([ls(dir, 'queue'), ls(dir, 'tmp')]).toEqual([[], []]); // no half-written job anywhere

      await expect(job.complete(big)).rejects.toMatchObject({ code: 'ENOSPC' });
      await expect(job.fail(new Error(big))).rejects.toMatchObject({ code: 'ENOSPC' });
      expect(job.settled).toBe(false); // still held: endable another way
      expect(fs.readFileSync(job.path)).toEqual(before); // neither a torn result nor a torn error line
      expect(ls(dir, 'done')).toEqual([]);

      fs.rmSync(filler);
      await q.close(); // releases what it holds, the job that could not end included
      expect(ls(dir, 'queue')).toEqual([id]);
      const other = await openQueue(dir, { maintenance: false });
      queues.push(other);
      const again = (await other.claim())!;
      expect([again.id, again.attempt]).toEqual([id, 1]); // the failed fail() counted no attempt
      await again.complete(big);
      expect(await other.waitFor(id)).toBe(big);
      await other.close();
    } catch (error) {
      failure = error;
    }
    // unmount whatever happened (a close that throws included), and let the test's own failure win over the cleanup's
    const closed = await Promise.allSettled(queues.map((queue) => queue.close()));
    const unmounted = unmount(mount);
    // eslint-disable-next-line @typescript-eslint/only-throw-error -- rethrows whatever the test body threw
    if (failure !== undefined) throw failure;
    for (const result of closed) if (result.status === 'rejected') throw result.reason;
    if (unmounted !== undefined) throw unmounted;
  });

  it('short writes are continued: every byte of enqueues, results and errors reaches the file', async () => {
    const { dir, q } = await tempQueue({ attempts: 2, backoff: { type: 'fixed', delay: 0 } });
    const write = fs.writeSync;
    // write(2) may write less than asked (a nearly full disk, a signal): let each call write at most 1000 bytes
    const spy = vi
      .spyOn(fs, 'writeSync')
      .mockImplementation((fd: number, data: string | NodeJS.ArrayBufferView, ...rest: unknown[]) => {
        const bytes =
          typeof data === 'string'
            ? Buffer.from(data)
            : Buffer.from(
                data.buffer,
                data.byteOffset + ((rest[0] as number | undefined) ?? 0),
                (rest[1] as number | undefined) ?? data.byteLength - ((rest[0] as number | undefined) ?? 0),
              );
        const position = typeof data === 'string' ? rest[0] : rest[2];
        return write(fd, bytes, 0, Math.min(bytes.length, 1000), (position as number | null | undefined) ?? null);
      });
    try {
      const big = (c: string): string => c.repeat(10_000);
      const one = await q.enqueue('t', big('a'));
      const [two] = await q.enqueueMany([{ type: 't', data: big('b') }]);
      const first = (await q.claim())!;
      expect(first.data).toBe(big('a'));
      await first.complete(big('r'));
      const second = (await q.claim())!;
      expect(second.data).toBe(big('b'));
      await second.fail(new Error(big('e')));
      expect(spy.mock.calls.length).toBeGreaterThan(40);
      spy.mockRestore();
      expect(await q.waitFor(one.id)).toBe(big('r'));
      const info = await q.get(two!.id);
      expect([info.state, info.attemptsMade, info.error?.message]).toEqual(['queue', 1, big('e')]);
      expect(ls(dir, 'failed')).toEqual([]);
    } finally {
      spy.mockRestore();
      await q.close();
    }
  });

  it('an ending whose rename fails (ENOSPC on the directory) keeps the job held, its file without the line', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1);
    const job = (await q.claim())!;
    const before = fs.readFileSync(job.path, 'utf8');
    const rename = fs.renameSync;
    const spy = vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (String(to).includes(`${path.sep}done${path.sep}`))
        throw Object.assign(new Error('ENOSPC: no space left on device, rename'), { code: 'ENOSPC' });
      rename(from, to);
    });
    try {
      await expect(job.complete('r')).rejects.toMatchObject({ code: 'ENOSPC' });
    } finally {
      spy.mockRestore();
    }
    expect(job.settled).toBe(false);
    expect(fs.readFileSync(job.path, 'utf8')).toBe(before); // the result line was taken back
    await job.release();
    expect(ls(dir, 'queue')).toEqual([id]);
    expect((await q.get(id)).history).toEqual([]);
    await q.close();
  });

  it('an unwritable queue directory is a typed error, not a crash', async () => {
    const { dir, q } = await tempQueue();
    fs.rmSync(path.join(dir, 'tmp'), { recursive: true });
    fs.writeFileSync(path.join(dir, 'tmp'), 'not a directory');
    await expect(q.enqueue('t', 1)).rejects.toMatchObject({ code: 'ENOTDIR', message: expect.stringContaining('tmp') });
    await q.close();
  });
});

describe('I9 hostile files in queue/', () => {
  it('sets aside symlinks, directories, FIFOs and huge files with a reason, never following, blocking or stopping', async () => {
    const { dir, q } = await tempQueue({ maxJobBytes: 1024 });
    const outside = path.join(tempDir(), 'secret');
    fs.writeFileSync(outside, '{"data":"secret"}\n');
    fs.symlinkSync(outside, path.join(dir, 'queue', ID('link')));
    fs.mkdirSync(path.join(dir, 'queue', ID('dir')));
    execFileSync('mkfifo', [path.join(dir, 'queue', ID('fifo'))]);
    const socket = net.createServer().listen(path.join(dir, 'queue', ID('sock')));
    await new Promise((resolve) => socket.once('listening', resolve));
    fs.writeFileSync(path.join(dir, 'queue', ID('huge')), `{"data":"${'z'.repeat(4096)}"}\n`);
    fs.writeFileSync(path.join(dir, 'queue', ID('empty')), '');
    fs.writeFileSync(path.join(dir, 'queue', ID('array')), '[1,2]\n');
    fs.writeFileSync(path.join(dir, 'queue', ID('wrongtype')), '{"type":"other"}\n');
    const good = await q.enqueue('t', 'good', { priority: 99 });
    const reasons = new Map<string, string>();
    q.on('invalid', ({ id, reason }) => reasons.set(id.split('-')[2]!.split('.')[0]!, reason));
    expect(await claimAll(q)).toEqual(['good']);
    expect(reasons).toEqual(
      new Map([
        ['array', expect.stringContaining('not a JSON object')],
        ['dir', expect.stringContaining('directory')],
        ['empty', expect.stringContaining('not JSON')],
        ['fifo', expect.stringContaining('FIFO')],
        ['huge', expect.stringContaining('over the limit')],
        ['link', expect.stringContaining('symbolic link')],
        ['sock', expect.stringContaining('socket')],
        ['wrongtype', expect.stringContaining('differs from the type in its name')],
      ]),
    );
    expect(ls(dir, 'failed')).toHaveLength(8);
    expect(ls(dir, 'active')).toEqual([]); // the socket did not stay behind under a claim
    await new Promise((resolve) => socket.close(resolve));
    expect(fs.readFileSync(outside, 'utf8')).toBe('{"data":"secret"}\n'); // never followed or written
    expect((await q.get(ID('huge'))).invalid).toContain('over the limit');
    expect((await q.get(ID('link'))).invalid).toContain('symbolic link');
    expect((await q.get(good.id)).state).toBe('done');
    await q.close();
  });

  it('junk lines cost a scan, not a thrown exception each; past 1,000 torn lines a file is set aside', async () => {
    const TORN_LIMIT = 1000; // FORMAT.md, "File content"
    const { dir, q } = await tempQueue();
    fs.writeFileSync(path.join(dir, 'queue', ID('braces')), `{"data":1}\n${'{\n'.repeat(TORN_LIMIT + 1)}`);
    fs.writeFileSync(path.join(dir, 'queue', ID('junk')), `{"data":"kept"}\n${'x\n'.repeat(1_000_000)}`);
    fs.writeFileSync(path.join(dir, 'queue', ID('torn')), `{"data":"torn"}\n${'{"event":"err\n'.repeat(TORN_LIMIT)}`);
    const reasons = new Map<string, string>();
    q.on('invalid', ({ id, reason }) => reasons.set(id, reason));
    const parse = vi.spyOn(JSON, 'parse');
    try {
      expect(await claimAll(q)).toEqual(['kept', 'torn']);
      expect(parse.mock.calls.length).toBeLessThan(2 * TORN_LIMIT + 100); // not one per line of junk
    } finally {
      parse.mockRestore();
    }
    expect(reasons).toEqual(
      new Map([[ID('braces'), expect.stringContaining(`more than ${TORN_LIMIT} lines after line 1 are not JSON`)]]),
    );
    await q.close();
  });

  it('sets aside a file the worker cannot read', async () => {
    if (!isRoot) throw new Error('this test runs a worker as another user and needs root (CI runs as root)');
    const dir = tempDir();
    await (await openQueue(dir)).close();
    openToAll(dir);
    fs.writeFileSync(path.join(dir, 'queue', ID('secret')), '{}\n', { mode: 0o600 });
    fs.chmodSync(path.join(dir, 'queue', ID('secret')), 0o000);
    const log = path.join(dir, 'log');
    fs.writeFileSync(log, '');
    fs.chmodSync(log, 0o666);
    const child = spawnNode([CHILD, 'drain', dir, log], { uid: 65534, gid: 65534 });
    expect(await exited(child)).toBe(0);
    expect(fs.readdirSync(path.join(dir, 'failed'))).toEqual([ID('secret')]);
    expect(fs.readFileSync(log, 'utf8')).toBe('');
  });

  it('a user who may only read the queue can still open and inspect it', async () => {
    if (!isRoot) throw new Error('this test runs a reader as another user and needs root (CI runs as root)');
    const { dir, q } = await tempQueue();
    await q.enqueue('t', 1);
    fs.chmodSync(dir, 0o755); // others may read it, not write
    const reader = spawnNode([CHILD, 'counts', dir], { uid: 65534, gid: 65534 });
    let out = '';
    reader.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    expect(await exited(reader)).toBe(0);
    const { counts, warnings } = JSON.parse(out) as { counts: { queue: number }; warnings: string[] };
    expect(counts.queue).toBe(1);
    expect(warnings).toEqual(['EACCES']); // its maintenance sweep could not write, and said so
    await q.close();
  });

  it('ignores a FIFO in tmp/ and other junk outside the state directories', async () => {
    const { dir, q } = await tempQueue();
    execFileSync('mkfifo', [path.join(dir, 'tmp', 'pipe')]);
    fs.writeFileSync(path.join(dir, 'stray.txt'), 'hi');
    await q.enqueue('t', 1);
    expect(await claimAll(q)).toEqual([1]);
    await q.close();
  });
});
