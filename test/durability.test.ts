/**
 * Durability is the default: one enqueue's file is fdatasynced before its
 * rename into queue/, and queue/ is fsynced before enqueue resolves.
 * Durable enqueueMany: the fdatasyncs of a batch run concurrently, in bursts
 * of SYNC_CHUNK files, while the next chunk is written; yet every file is on
 * stable storage before its rename into queue/, the directory is fsynced
 * after the renames, and a failing fdatasync leaves nothing behind and closes
 * no descriptor under a running fdatasync. Observed by spying on node:fs.
 */
import childProcess, { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { SYNC_CHUNK } from '../dist/store/files.js';
import { filesystemKind } from '../dist/store/fs-kind.js';
import { Layout } from '../dist/store/layout.js';
import { SYNCFS_MIN_FILES } from '../dist/store/syncfs.js';
import { Queue } from '../dist/index.js';
import { openQueue, tempDir, tempQueue } from './support/temp.js';

const JOBS = 5 * SYNC_CHUNK + 17;

/** Watch the batch's files (those created under `tmpDir`): opens, fdatasyncs in flight, closes, renames. */
function watchFiles(tmpDir: string, failSyncOf?: number) {
  const { openSync, closeSync, fdatasync, renameSync } = fs;
  const fileOf = new Map<number, string>(); // open descriptors of the batch
  const numberOf = new Map<number, number>(); // descriptor -> the file's place in creation order, from 1
  const syncing = new Set<number>();
  const synced = new Set<string>();
  const seen = {
    created: 0,
    maxOpen: 0,
    maxSyncing: 0,
    openedWhileSyncing: 0,
    closedWhileSyncing: 0,
    renamed: 0,
    renamedUnsynced: 0,
  };
  vi.spyOn(fs, 'openSync').mockImplementation(((file: string, ...rest: unknown[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(file, ...rest);
    if (String(file).startsWith(tmpDir)) {
      if (syncing.size > 0) seen.openedWhileSyncing++;
      fileOf.set(fd, String(file));
      numberOf.set(fd, ++seen.created);
      seen.maxOpen = Math.max(seen.maxOpen, fileOf.size);
    }
    return fd;
  }) as never);
  vi.spyOn(fs, 'closeSync').mockImplementation((fd: number) => {
    if (syncing.has(fd)) seen.closedWhileSyncing++;
    fileOf.delete(fd);
    closeSync(fd);
  });
  vi.spyOn(fs, 'fdatasync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
    const file = fileOf.get(fd);
    syncing.add(fd);
    seen.maxSyncing = Math.max(seen.maxSyncing, syncing.size);
    const done = (error: Error | null): void => {
      syncing.delete(fd);
      if (!error && file !== undefined) synced.add(file);
      callback(error);
    };
    if (failSyncOf !== undefined && numberOf.get(fd) === failSyncOf) {
      setImmediate(() =>
        done(Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5, syscall: 'fdatasync' })),
      );
    } else {
      fdatasync(fd, done);
    }
  });
  vi.spyOn(fs, 'renameSync').mockImplementation(((from: string, to: string) => {
    if (String(from).startsWith(tmpDir)) {
      seen.renamed++;
      if (!synced.has(String(from))) seen.renamedUnsynced++;
    }
    renameSync(from, to);
  }) as never);
  return { seen, openFiles: () => fileOf.size };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('durable enqueue', () => {
  it('is the default: the file is on stable storage before its name appears, the directory before enqueue resolves', async () => {
    const dir = tempDir();
    const q = await Queue.open(dir, { maintenance: false }); // durable not given: the default
    const { seen } = watchFiles(path.join(dir, 'tmp'));
    const dirSyncs: number[] = [];
    const { fsync } = fs;
    vi.spyOn(fs, 'fsync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
      dirSyncs.push(seen.renamed);
      fsync(fd, callback);
    });
    let resolved = false;
    const pending = q.enqueue('t', 'kept').then((ref) => ((resolved = true), ref));
    const { id } = await pending;
    expect(resolved).toBe(true);
    expect(seen.renamed).toBe(1);
    expect(seen.renamedUnsynced).toBe(0);
    expect(dirSyncs).toContain(1); // queue/ was fsynced after the rename, before enqueue resolved
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([id]);
    await q.close();
  });

  it('durable: false syncs nothing', async () => {
    const dir = tempDir();
    const q = await Queue.open(dir, { maintenance: false, durable: false });
    const { seen } = watchFiles(path.join(dir, 'tmp'));
    const fsyncs = vi.spyOn(fs, 'fsync');
    await q.enqueue('t', 'fast');
    await q.enqueueMany([{ type: 't' }, { type: 't' }]);
    expect(seen.renamed).toBe(3);
    expect(seen.maxSyncing).toBe(0);
    expect(fsyncs).not.toHaveBeenCalled();
    await q.close();
  });
});

describe('durable enqueueMany', () => {
  it('syncs chunks concurrently while writing the next, and renames only synced files', async () => {
    const { dir, q } = await tempQueue({ durable: true, maintenance: false, batchSync: 'fdatasync' });
    const { seen, openFiles } = watchFiles(path.join(dir, 'tmp'));
    const dirSyncs: number[] = []; // renames done when each directory fsync was started
    const { fsync } = fs;
    vi.spyOn(fs, 'fsync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
      dirSyncs.push(seen.renamed);
      fsync(fd, callback);
    });

    const refs = await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })));

    expect(refs).toHaveLength(JOBS);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(JOBS);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    expect(seen.renamed).toBe(JOBS);
    expect(seen.renamedUnsynced).toBe(0); // I2: a file's data is durable before its name appears in queue/
    expect(dirSyncs.at(-1)).toBe(JOBS); // the directory fsync comes after the last rename
    expect(seen.maxSyncing).toBeGreaterThanOrEqual(SYNC_CHUNK); // a chunk's fdatasyncs start together
    expect(seen.openedWhileSyncing).toBeGreaterThan(0); // the next chunk is written while one syncs
    expect(seen.maxOpen).toBeLessThanOrEqual(2 * SYNC_CHUNK); // bounded descriptors
    expect(seen.closedWhileSyncing).toBe(0);
    expect(openFiles()).toBe(0);
    await q.close();
  });

  it('a failing fdatasync enqueues nothing, leaves no file, and closes no descriptor under a running fdatasync', async () => {
    const { dir, q } = await tempQueue({ durable: true, maintenance: false, batchSync: 'fdatasync' });
    const before = await q.enqueue('t', 'already there');
    const { seen, openFiles } = watchFiles(path.join(dir, 'tmp'), SYNC_CHUNK + 3);

    await expect(q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })))).rejects.toMatchObject(
      {
        code: 'EIO',
        message: expect.stringContaining('syncing'),
      },
    );

    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([before.id]);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    expect(seen.renamed).toBe(0);
    expect(seen.closedWhileSyncing).toBe(0);
    expect(openFiles()).toBe(0);
    vi.restoreAllMocks();
    expect((await q.enqueueMany([{ type: 't', data: 'after' }])).length).toBe(1); // the queue still works
    await q.close();
  });
});

/** Watch `sync -f` runs: what was written, open and renamed when each started and when it ended. */
function watchSyncfs(seen: ReturnType<typeof watchFiles>['seen'], openFiles: () => number, fail = false) {
  const runs: { args: string[]; atStart: { created: number; open: number; renamed: number }; renamedAtEnd?: number }[] =
    [];
  const { execFile } = childProcess;
  vi.spyOn(childProcess, 'execFile').mockImplementation(((
    file: string,
    args: string[],
    options: unknown,
    callback: (error: Error | null) => void,
  ) => {
    if (file !== 'sync') return (execFile as (...a: unknown[]) => unknown)(file, args, options, callback);
    const run: (typeof runs)[number] = {
      args,
      atStart: { created: seen.created, open: openFiles(), renamed: seen.renamed },
    };
    runs.push(run);
    const done = (error: Error | null): void => {
      run.renamedAtEnd = seen.renamed;
      callback(error);
    };
    if (fail) setImmediate(() => done(Object.assign(new Error('Command failed: sync -f'), { code: 1 })));
    else execFile(file, args, options as never, done);
    return undefined;
  }) as never);
  return runs;
}

describe('durable enqueueMany of a large batch (batchSync auto)', () => {
  const JOBS = SYNCFS_MIN_FILES + 44;

  it('writes the whole batch, makes it durable with one syncfs, then renames', async () => {
    const { dir, q } = await tempQueue({ durable: true, maintenance: false });
    const { seen, openFiles } = watchFiles(path.join(dir, 'tmp'));
    const runs = watchSyncfs(seen, openFiles);
    const refs = await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })));
    expect(refs).toHaveLength(JOBS);
    expect(runs, 'one `sync -f` of the queue (Linux 5.8+, a local filesystem, GNU sync on PATH)').toHaveLength(1);
    expect(runs[0]!.args).toEqual(['-f', '--', path.join(dir, 'tmp')]);
    expect(runs[0]!.atStart).toEqual({ created: JOBS, open: 0, renamed: 0 }); // every file written and closed, none renamed
    expect(runs[0]!.renamedAtEnd).toBe(0); // I2: no name appears in queue/ before the sync returned
    expect(seen.maxSyncing).toBe(0); // no fdatasync per file
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(JOBS);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    await q.close();
  });

  it('falls back to an fdatasync of every file when syncfs fails, still before any rename', async () => {
    const { dir, q } = await tempQueue({ durable: true, maintenance: false });
    const { seen, openFiles } = watchFiles(path.join(dir, 'tmp'));
    const runs = watchSyncfs(seen, openFiles, true);
    await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })));
    expect(runs).toHaveLength(1);
    expect(seen.renamed).toBe(JOBS);
    expect(seen.renamedUnsynced).toBe(0); // each file fdatasynced (reopened) before its rename
    expect(seen.closedWhileSyncing).toBe(0);
    expect(openFiles()).toBe(0);
    await q.close();
  });

  it('small batches and batchSync fdatasync never run sync -f', async () => {
    const { dir, q } = await tempQueue({ durable: true, maintenance: false });
    const { seen, openFiles } = watchFiles(path.join(dir, 'tmp'));
    const runs = watchSyncfs(seen, openFiles);
    await q.enqueueMany(Array.from({ length: SYNCFS_MIN_FILES - 1 }, (_, i) => ({ type: 't', data: i })));
    const strict = await openQueue(dir, { durable: true, maintenance: false, batchSync: 'fdatasync' });
    await strict.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i })));
    expect(runs).toEqual([]);
    expect(seen.renamedUnsynced).toBe(0);
    await strict.close();
    await q.close();
  });
});

/**
 * Watch an ending's steps in order: fdatasyncs (when they finish), renames out of active/, and fsyncs
 * of directories (by path: the DirSyncer opens each directory once, through fs.openSync).
 */
function watchEndings(dir: string) {
  const steps: string[] = [];
  const dirOf = new Map<number, string>();
  const { openSync, fdatasync, fsync, renameSync } = fs;
  vi.spyOn(fs, 'openSync').mockImplementation(((file: string, ...rest: unknown[]) => {
    const fd = (openSync as (...a: unknown[]) => number)(file, ...rest);
    const where = path.relative(dir, String(file));
    if (String(file).startsWith(dir) && !where.includes('/')) dirOf.set(fd, where); // a directory of the queue
    return fd;
  }) as typeof fs.openSync);
  vi.spyOn(fs, 'fdatasync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
    fdatasync(fd, (error) => {
      steps.push('fdatasync');
      callback(error);
    });
  });
  vi.spyOn(fs, 'fsync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
    fsync(fd, (error) => {
      steps.push(`fsync ${dirOf.get(fd) ?? 'file'}`);
      callback(error);
    });
  });
  vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
    renameSync(from, to);
    const was = path.relative(dir, String(from)).split('/')[0];
    if (was === 'active') steps.push(`rename to ${path.relative(dir, String(to)).split('/')[0]!}`);
  });
  return steps;
}

describe("durable: 'all'", () => {
  afterEach(() => vi.restoreAllMocks());

  it('complete: the result line is synced before the rename, done/ after it, all before it resolves', async () => {
    const { q, dir } = await tempQueue({ durable: 'all', maintenance: false });
    await q.enqueue('t', 1);
    const job = (await q.claim())!;
    const steps = watchEndings(dir);
    await job.complete({ ok: true });
    expect(steps.slice(0, 2)).toEqual(['fdatasync', 'rename to done']);
    expect(steps.slice(2)).toEqual(['fsync done']); // not active/: a cut that keeps the old name too is the sweep's (rescue.ts)
    expect((await q.get(job.id))?.state).toBe('done');
    await q.close();
  });

  it('fail: a retry and the final failure are each on disk before fail() resolves', async () => {
    const { q, dir } = await tempQueue({ durable: 'all', maintenance: false });
    const steps = watchEndings(dir); // before the enqueue, which opens queue/ for its fsyncs
    await q.enqueue('t', 1, { attempts: 2, backoff: { type: 'fixed', delay: 0 } });
    steps.length = 0;
    const first = (await q.claim())!;
    expect(await first.fail(new Error('once'))).toBe('retrying');
    expect(steps.slice(0, 2)).toEqual(['fdatasync', 'rename to queue']);
    expect(steps.slice(2)).toEqual(['fsync queue']);
    steps.length = 0;
    const second = (await q.claim())!;
    expect(await second.fail(new Error('twice'))).toBe('failed');
    expect(steps.slice(0, 2)).toEqual(['fdatasync', 'rename to failed']);
    expect(steps.slice(2)).toEqual(['fsync failed']);
    await q.close();
  });

  it('durable: true (the default) syncs no ending', async () => {
    const { q, dir } = await tempQueue({ durable: true, maintenance: false });
    await q.enqueue('t', 1);
    const job = (await q.claim())!;
    const steps = watchEndings(dir);
    await job.complete(2);
    expect(steps).toEqual(['rename to done']);
    await q.close();
  });

  it('concurrent completions share the directory fsyncs (group commit)', async () => {
    const { q, dir } = await tempQueue({ durable: 'all', maintenance: false });
    const n = 40;
    await q.enqueueMany(Array.from({ length: n }, (_, i) => ({ type: 't', data: i })));
    const jobs = [];
    for (let i = 0; i < n; i++) jobs.push((await q.claim())!);
    const steps = watchEndings(dir);
    await Promise.all(jobs.map((job) => job.complete()));
    expect(steps.filter((s) => s === 'fdatasync')).toHaveLength(n); // each file's own
    expect(steps.filter((s) => s === 'rename to done')).toHaveLength(n);
    const doneSyncs = steps.filter((s) => s === 'fsync done').length;
    expect(doneSyncs).toBeGreaterThan(0);
    expect(doneSyncs).toBeLessThan(n / 2);
    expect(fs.readdirSync(path.join(dir, 'done'))).toHaveLength(n);
    await q.close();
  });

  it('a failing fdatasync leaves the job held in active/ without the line, and no other call runs on it meanwhile', async () => {
    const { q, dir } = await tempQueue({ durable: 'all', maintenance: false });
    await q.enqueue('t', 1, { attempts: 1 });
    const job = (await q.claim())!;
    const before = fs.readFileSync(job.path, 'utf8');
    const { fdatasync } = fs;
    let calls = 0;
    vi.spyOn(fs, 'fdatasync').mockImplementation((fd: number, callback: (error: Error | null) => void) => {
      if (calls++ === 0) {
        const error = Object.assign(new Error('EIO: i/o error, fdatasync'), { code: 'EIO', errno: -5 });
        setImmediate(() => callback(error));
      } else fdatasync(fd, callback);
    });
    const completing = job.complete('lost?');
    await expect(job.log('meanwhile')).rejects.toMatchObject({ code: 'EBADSTATE' });
    await expect(completing).rejects.toMatchObject({ code: 'EIO' });
    expect(fs.readFileSync(job.path, 'utf8')).toBe(before); // the result line was cut off again
    expect(fs.readdirSync(path.join(dir, 'done'))).toEqual([]);
    expect(await job.fail(new Error('could not record'))).toBe('failed');
    expect((await q.get(job.id))?.state).toBe('failed');
    await q.close();
  });

  it('a rename that fails leaves the job held in active/ without the line, to fail later', async () => {
    const { q, dir } = await tempQueue({ durable: 'all', maintenance: false });
    await q.enqueue('t', 1, { attempts: 1 });
    const job = (await q.claim())!;
    const before = fs.readFileSync(job.path, 'utf8');
    const { renameSync } = fs;
    let calls = 0;
    vi.spyOn(fs, 'renameSync').mockImplementation((from, to) => {
      if (calls++ === 0) throw Object.assign(new Error('EIO: i/o error, rename'), { code: 'EIO', errno: -5 });
      renameSync(from, to);
    });
    await expect(job.complete('lost?')).rejects.toMatchObject({ code: 'EIO' });
    expect(fs.readFileSync(job.path, 'utf8')).toBe(before); // the result line was cut off again
    await job.progress(50); // by path now: the ending closed the claim's descriptor before its rename
    expect(await job.fail(new Error('could not record'))).toBe('failed');
    expect(fs.readdirSync(path.join(dir, 'failed'))).toEqual([job.id]);
    await q.close();
  });

  it('a pool drains under it, and a value other than true, false or all is refused', async () => {
    const { Pool } = await import('../dist/index.js');
    const dir = tempDir();
    const q = await openQueue(dir, { durable: 'all' });
    await q.enqueueMany(Array.from({ length: 50 }, (_, i) => ({ type: 't', data: i })));
    const pool = new Pool(dir, { processor: (job) => Promise.resolve(job.data), concurrency: 8, durable: 'all' });
    await pool.start();
    await pool.onIdle();
    expect(pool.counts.completed).toBe(50);
    await pool.close();
    expect((await q.counts()).done).toBe(50);
    await q.close();
    // @ts-expect-error: a bad value on purpose
    await expect(Queue.open(dir, { durable: 'yes' })).rejects.toMatchObject({ code: 'EBADOPTION' });
  });
});

describe('a queue in memory (tmpfs)', () => {
  const isRoot = process.getuid?.() === 0;

  /** Every fsync and fdatasync this process makes, and every `sync -f` (syncfs.ts) it starts. */
  function countSyncs(): () => number {
    const calls = [
      vi.spyOn(fs, 'fsync'),
      vi.spyOn(fs, 'fdatasync'),
      vi.spyOn(fs, 'fsyncSync'),
      vi.spyOn(fs, 'fdatasyncSync'),
      vi.spyOn(childProcess, 'execFile'),
    ];
    return () => calls.reduce((n, spy) => n + spy.mock.calls.length, 0);
  }

  /** Enqueue one, a small batch and a syncfs-sized batch; claim, complete and fail one each. */
  async function everyKindOfWrite(q: Queue): Promise<void> {
    await q.enqueue('t', 1);
    await q.enqueueMany([{ type: 't' }, { type: 't' }]);
    await q.enqueueMany(Array.from({ length: SYNCFS_MIN_FILES }, (_, i) => ({ type: 'bulk', data: i })));
    await (await q.claim({ types: ['t'] }))!.complete({ ok: true });
    await (await q.claim({ types: ['t'] }))!.fail(new Error('no'));
  }

  it("makes no fsync there, durable: 'all' or not, since tmpfs's fsync does nothing; the same work on a disk does", async () => {
    const shm = '/dev/shm';
    expect(fs.existsSync(shm) && filesystemKind(shm).memory, `${shm} is a tmpfs (Linux)`).toBe(true);
    const inMemory = await Queue.open(tempDir(shm), { durable: 'all', maintenance: false });
    const memorySyncs = countSyncs();
    await everyKindOfWrite(inMemory);
    expect(memorySyncs()).toBe(0);
    expect((await inMemory.stats()).counts).toMatchObject({ queue: 1 + SYNCFS_MIN_FILES, done: 1 });
    await inMemory.close();
    vi.restoreAllMocks();

    const onDisk = tempDir();
    expect(filesystemKind(onDisk).memory, `the temp dir ${onDisk} must be on a disk (set TMPDIR)`).toBe(false);
    const durable = await Queue.open(onDisk, { durable: 'all', maintenance: false });
    const diskSyncs = countSyncs();
    await everyKindOfWrite(durable);
    expect(diskSyncs()).toBeGreaterThan(0);
    await durable.close();
  });

  it('counts as in memory only when every directory is (a disk mounted at done/ counts as a disk)', async () => {
    if (!isRoot) throw new Error('this test bind-mounts a directory and needs root (CI runs as root)');
    const dir = tempDir('/dev/shm');
    await (await Queue.open(dir, { maintenance: false })).close();
    expect(new Layout(dir).inMemory()).toBe(true);
    execFileSync('mount', ['--bind', tempDir(), path.join(dir, 'done')]);
    try {
      expect(new Layout(dir).inMemory()).toBe(false);
    } finally {
      execFileSync('umount', [path.join(dir, 'done')]);
    }
  });
});
