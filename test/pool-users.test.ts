/**
 * A pool run as a user who may not write the queue, or one job's file: it
 * fails at start, or puts the job back unrun, and says what to do; it never
 * retries forever or strands a job in active/. Runs processes as other users
 * (setpriv), so it needs root, as CI runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { ok } from './support/cli.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { openQueue } from './support/temp.js';
import { chgrpQueue, GROUP, requireRoot, runAs, sharedBase, WEB, WORKER } from './support/users.js';

// the users below run a copy they may read, wherever the checkout is (a clone under a 0700 directory)
const { cli: CLI, child: CHILD } = checkoutForOtherUsers();
const DIST = pathToFileURL(path.join(path.dirname(CLI), '..', 'index.js')).href;
const processors = (name: string): string => path.join(path.dirname(CHILD), 'processors', `${name}.mjs`);
const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state));

/** A queue made by root with the default umask: others may read it, not write it. */
async function rootsQueue(): Promise<string> {
  const dir = path.join(sharedBase(), 'q');
  const q = await openQueue(dir);
  await q.enqueue('t', { n: 1 });
  await q.close();
  return dir;
}

describe('a pool that may not write', () => {
  it('Pool.start() rejects with EACCES, naming what it cannot write and what to do, and leaves nothing running', async () => {
    requireRoot();
    const dir = await rootsQueue();
    const script = `
      import { Pool } from ${JSON.stringify(DIST)};
      const pool = new Pool(${JSON.stringify(dir)}, { processor: ${JSON.stringify(processors('echo'))}, create: false });
      try {
        await pool.start();
        console.log(JSON.stringify({ started: true }));
        await pool.close();
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, message: error.message }));
      }`;
    // the child must also end by itself: a pool that failed to start leaves no timer or thread behind
    const run = await runAs(WORKER, process.execPath, ['--input-type=module', '-e', script]);
    expect(run).toMatchObject({ code: 0, stderr: '' }); // and no warning of the failed opening sweep
    expect(JSON.parse(run.stdout)).toEqual({
      code: 'EACCES',
      message: expect.stringMatching(
        /^this process \(uid 12345, gid 12345\) cannot write \S+\/q\/tmp \(permission denied\), so it cannot work on the queue: run the worker as the queue's owner/,
      ),
    });
    expect(ls(dir, 'queue')).toHaveLength(1);
  });

  it('dirq work fails at once with that one line and exit 1, instead of retrying every second', async () => {
    requireRoot();
    const dir = await rootsQueue();
    const run = await runAs(WORKER, process.execPath, [CLI, 'work', dir, processors('echo')]); // no --drain: only failing can end it
    expect(run.code).toBe(1);
    expect(run.stdout).toBe('');
    expect(run.stderr).toMatch(/^dirq: this process \(uid 12345, gid 12345\) cannot write .* --mode 0660.*\n$/);
  });

  it('dirq work puts back a job whose file it may not write, unrun, says what to do, and exits 1', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const enqueue = await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 'send', '{"to":"a@example.com"}']);
    expect(enqueue).toMatchObject({ code: 0, stderr: '' });
    const id = enqueue.stdout.trimEnd();
    const file = path.join(dir, 'queue', id);
    fs.chmodSync(file, 0o644); // as a producer that ignores the queue's mode makes it
    const before = fs.readFileSync(file, 'utf8');

    const run = await runAs(WORKER, process.execPath, [CLI, 'work', dir, processors('echo'), '--drain']);
    expect(run.code, run.stderr).toBe(1);
    expect(run.stderr).toContain(
      `job ${id}: this process (uid 12345, gid 12345) may not write the job file ${file} (mode 0644, owner uid ${WEB}, gid ${GROUP}), so it could not record an outcome; ` +
        `it was put back in queue/ without running, and the pool stopped. Fix: chmod it to the queue's mode (chmod 0660 ${file}, as its owner or root)`,
    );
    expect(ls(dir, 'active')).toEqual([]);
    expect(ls(dir, 'queue')).toEqual([id]);
    expect(fs.readFileSync(file, 'utf8')).toBe(before); // it did not run: nothing was appended, attempt not counted

    fs.chmodSync(file, 0o660); // the fix the message names
    const again = await runAs(WORKER, process.execPath, [CLI, 'work', dir, processors('echo'), '--drain']);
    expect(again.code, again.stderr).toBe(0);
    expect(ls(dir, 'done')).toEqual([id]);
  });

  it("a job whose file the worker may not append to: complete() names the file, its mode and owner, and the chmod to the queue's mode (item 10)", async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const enqueue = await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 'send', '{}']);
    expect(enqueue).toMatchObject({ code: 0, stderr: '' });
    const id = enqueue.stdout.trimEnd();
    fs.chmodSync(path.join(dir, 'queue', id), 0o644); // as a producer that ignores the queue's mode makes it
    const script = `
      import { Queue } from ${JSON.stringify(DIST)};
      const q = await Queue.open(${JSON.stringify(dir)}, { create: false });
      const job = await q.claim();
      try {
        await job.complete('r');
        console.log(JSON.stringify({ completed: true }));
      } catch (error) {
        console.log(JSON.stringify({ code: error.code, message: error.message, path: job.path }));
      }
      await q.close(); // releases the job it could not end`;
    const run = await runAs(WORKER, process.execPath, ['--input-type=module', '-e', script]);
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: '' });
    const { code, message, path: file } = JSON.parse(run.stdout) as { code: string; message: string; path: string };
    expect(code).toBe('EACCES');
    expect(message).toBe(
      `appending to ${file} failed: this process (uid 12345, gid 12345) may not write the job file ${file} (mode 0644, owner uid ${WEB}, gid ${GROUP}): ` +
        `chmod it to the queue's mode (chmod 0660 ${file}, as its owner or root); producers must create job files with that mode (FORMAT.md)`,
    );
    expect(ls(dir, 'queue')).toEqual([id]); // not stranded in active/
  });

  it('a pool whose ending of a job fails (the rename into done/ is refused) puts the job back in queue/ and stops', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await (await openQueue(dir)).close();
    for (const p of [dir, ...fs.readdirSync(dir).map((n) => path.join(dir, n))]) fs.chownSync(p, WORKER, WORKER); // the worker owns the queue
    // the processor itself takes the worker's right to write done/ away (root would ignore modes)
    const script = `
      import fs from 'node:fs';
      import { Pool, Queue } from ${JSON.stringify(DIST)};
      const dir = ${JSON.stringify(dir)};
      const q = await Queue.open(dir, { durable: false });
      const { id } = await q.enqueue('t', {});
      await q.close();
      const processor = async () => {
        fs.chmodSync(dir + '/done', 0o555);
        return { ran: true };
      };
      const pool = new Pool(dir, { processor, watch: false, pollInterval: 50, durable: false });
      pool.on('error', () => undefined);
      const closed = new Promise((resolve) => pool.once('closed', resolve));
      await pool.start();
      const reason = await closed;
      console.log(JSON.stringify({ id, code: reason?.code, message: reason?.message, counts: pool.counts }));`;
    const run = await runAs(WORKER, process.execPath, ['--input-type=module', '-e', script]);
    expect(run, run.stderr).toMatchObject({ code: 0, stderr: '' });
    const { id, code, message, counts } = JSON.parse(run.stdout) as {
      id: string;
      code: string;
      message: string;
      counts: Record<string, number>;
    };
    expect(code).toBe('EACCES');
    expect(message).toContain(`job ${id}: its outcome could not be recorded`);
    expect(message).toContain('it was put back in queue/ (attempt not counted)');
    expect(counts).toMatchObject({ completed: 0, released: 1 });
    expect(ls(dir, 'active')).toEqual([]); // not stranded
    expect(ls(dir, 'queue')).toEqual([id]);
  });
});
