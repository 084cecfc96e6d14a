/**
 * Group-shared queues: `dirq init --mode 0660` (or Queue.open's `mode`) so
 * that a web app's user enqueues and a worker user runs the jobs, each with
 * its own primary group and the queue's group as a supplementary one. Runs
 * processes as other users (setpriv), so it needs root, as CI runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ok } from './support/cli.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { openQueue, openToAll } from './support/temp.js';
import { chgrpQueue, modeOf, requireRoot, runAs, sharedBase, GROUP, WEB, WORKER } from './support/users.js';

const { cli: CLI, child: CHILD } = checkoutForOtherUsers(); // the users below run these, not the checkout's

describe('group-shared queues (--mode)', () => {
  it('init --mode 0660 keeps the mode in dirqueue.json and makes the directories setgid and group-writable, the queue directory only setgid', async () => {
    const dir = path.join(sharedBase(), 'q');
    expect(JSON.parse(await ok(['init', dir, '--mode', '0660', '--json']))).toEqual({ schema: 1, dir, mode: '0660' });
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({ mode: '0660' });
    expect(modeOf(path.join(dir, 'dirqueue.json'))).toBe(0o660);
    expect(modeOf(dir)).toBe(0o2750); // members never create or rename in it, so none may swap its directories (S3)
    for (const d of ['tmp', 'queue', 'delayed', 'active', 'done', 'failed', 'workers', 'keys'])
      expect(modeOf(path.join(dir, d)), d).toBe(0o2770);
    expect(JSON.parse(await ok(['init', dir, '--json']))).toEqual({ schema: 1, dir, mode: '0660' }); // again: unchanged
  });

  it('a web app user enqueues with the CLI and a worker user of the same group runs the job', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const enqueue = await runAs(WEB, process.execPath, [
      CLI,
      'enqueue',
      dir,
      'send',
      '{"to":"a@example.com"}',
      '--key',
      'k1',
    ]);
    expect(enqueue).toMatchObject({ code: 0, stderr: '' });
    const id = enqueue.stdout.trimEnd();
    const file = path.join(dir, 'queue', id);
    expect(fs.statSync(file)).toMatchObject({ uid: WEB, gid: GROUP }); // the group from the setgid directory, not the user's own
    expect(modeOf(file)).toBe(0o660); // whatever the umask
    const log = path.join(dir, '..', 'log');
    fs.writeFileSync(log, '');
    fs.chmodSync(log, 0o666);
    const worker = await runAs(WORKER, process.execPath, [CHILD, 'drain', dir, log]);
    expect(worker).toMatchObject({ code: 0, stderr: '' });
    expect(fs.readFileSync(log, 'utf8')).toMatch(new RegExp(`^${id.replace(/\./g, '\\.')} \\d+\n$`));
    const done = path.join(dir, 'done', id);
    expect(fs.readFileSync(done, 'utf8').split('\n')[1]).toMatch(/^\{"event":"result"/); // the worker could append to the web app's file
    expect(fs.readdirSync(path.join(dir, 'keys'))).toEqual([]); // and release its key
    const shown = await runAs(WEB, process.execPath, [CLI, 'show', dir, id, '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({ state: 'done', result: expect.any(Number) });
  });

  it('without a mode, files follow the umask (0644): another user could not end the job', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir]);
    openToAll(dir);
    const enqueue = await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 'send', '{}']);
    expect(modeOf(path.join(dir, 'queue', enqueue.stdout.trimEnd())) & 0o020).toBe(0);
  });

  it('Queue.open(dir, { mode }) creates a shared queue, and changes the mode of an existing one', async () => {
    const dir = path.join(sharedBase(), 'q');
    const q = await openQueue(dir, { mode: '0664' });
    const { id } = await q.enqueue('t', 1);
    expect(modeOf(path.join(dir, 'queue', id))).toBe(0o664);
    await q.close();
    expect([modeOf(dir), modeOf(path.join(dir, 'done'))]).toEqual([0o2755, 0o2775]);
    const again = await openQueue(dir, { mode: 0o660 });
    await again.close();
    expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({ mode: '0660' });
    expect([modeOf(dir), modeOf(path.join(dir, 'done'))]).toEqual([0o2750, 0o2770]);
    await expect(openQueue(dir, { mode: '0400' })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringMatching(/owner read and write/),
    });
  });
});
