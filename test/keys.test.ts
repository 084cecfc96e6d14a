/** Unique keys: at most one live job per key, across processes. */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootId, processStartTime } from '../dist/store/liveness.js';
import { encodeKey, hostToken, NameMaker } from '../dist/store/names.js';
import { deadPid, exited, spawnNode, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const child = new URL('./fixtures/child.mjs', import.meta.url).pathname;
const ls = (dir: string, state: string): string[] => fs.readdirSync(path.join(dir, state)).sort();

describe('unique keys', () => {
  it('a key held by a job that a dead worker left in tmp/ is taken over at once, and the sweep deletes the file', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    /** A job `writer` left in tmp/ holding `key`; a heartbeat when the writer had claimed (a worker) and `pid` says whose. */
    const leftInTmp = (writer: NameMaker, key: string, pid?: number): string => {
      const id = writer.id(50, 't');
      fs.writeFileSync(path.join(dir, 'tmp', writer.tmpName(id)), '{"type":"t"}\n');
      fs.symlinkSync(id, path.join(dir, 'keys', encodeKey(key)));
      if (pid !== undefined) {
        const identity = {
          host: os.hostname(),
          bootId: bootId(),
          pid,
          startTime: processStartTime(pid) ?? 'gone',
          started: '',
        };
        fs.writeFileSync(path.join(dir, 'workers', writer.owner), JSON.stringify(identity));
      }
      return id;
    };
    const dead = await deadPid();
    leftInTmp(new NameMaker(hostToken(), dead), 'k', dead); // a worker that died between taking the key and its rename
    const busy = leftInTmp(new NameMaker(hostToken(), process.pid), 'k2', process.pid); // a live worker, still at it
    const quiet = leftInTmp(new NameMaker(hostToken(), dead), 'k3'); // an enqueuer without a heartbeat: not known dead

    expect((await q.enqueue('t', 1, { key: 'k' })).duplicate).toBe(false);
    expect(await q.enqueue('t', 2, { key: 'k2' })).toEqual({ id: busy, duplicate: true });
    expect(await q.enqueue('t', 3, { key: 'k3' })).toEqual({ id: quiet, duplicate: true });
    expect((await q.recover()).tmpRemoved).toBe(1);
    expect(
      ls(dir, 'tmp')
        .map((name) => name.slice(0, name.indexOf('.t.') + 2))
        .sort(),
    ).toEqual([busy, quiet].sort());
    await q.close();
  });

  it('returns the live job holding the key instead of adding another', async () => {
    const { dir, q } = await tempQueue();
    const first = await q.enqueue('report', { day: 1 }, { key: 'report:2026-11-22' });
    expect(first.duplicate).toBe(false);
    const second = await q.enqueue('report', { day: 2 }, { key: 'report:2026-11-22' });
    expect(second).toEqual({ id: first.id, duplicate: true });
    expect(ls(dir, 'queue')).toEqual([first.id]);
    expect(ls(dir, 'tmp')).toEqual([]);
    const job = (await q.claim())!;
    expect((await q.enqueue('report', 3, { key: 'report:2026-11-22' })).duplicate).toBe(true); // running still holds it
    await job.complete();
    const third = await q.enqueue('report', 4, { key: 'report:2026-11-22' }); // free once it ended
    expect(third.duplicate).toBe(false);
    expect(third.id).not.toBe(first.id);
    await q.close();
  });

  it('is released when a job fails for good, and held through retries', async () => {
    const { q } = await tempQueue();
    const { id } = await q.enqueue('t', null, { key: 'k', attempts: 2, backoff: 0 });
    await (await q.claim())!.fail('once');
    expect((await q.enqueue('t', null, { key: 'k' })).id).toBe(id);
    await (await q.claim())!.fail('twice');
    expect((await q.enqueue('t', null, { key: 'k' })).duplicate).toBe(false);
    await q.close();
  });

  it('takes over a key whose job is gone (removed by hand or a crash)', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('t', 1, { key: 'k', delay: 60_000 });
    for (const name of ls(dir, 'delayed')) fs.unlinkSync(path.join(dir, 'delayed', name));
    const again = await q.enqueue('t', 2, { key: 'k' });
    expect(again.duplicate).toBe(false);
    expect(again.id).not.toBe(id);
    expect(fs.readlinkSync(path.join(dir, 'keys', 'k'))).toBe(again.id);
    await q.close();
  });

  it('dedupes within one enqueueMany and keeps keys inside keys/', async () => {
    const { dir, q } = await tempQueue();
    const refs = await q.enqueueMany([
      { type: 't', data: 1, key: '../../escape' },
      { type: 't', data: 2, key: '../../escape' },
      { type: 't', data: 3, key: '.hidden' },
      { type: 't', data: 4 },
    ]);
    expect(refs.map((r) => r.duplicate)).toEqual([false, true, false, false]);
    expect(refs[1]!.id).toBe(refs[0]!.id);
    expect(ls(dir, 'queue')).toHaveLength(3);
    expect(ls(dir, 'keys')).toEqual(['%2E.%2F..%2Fescape', '%2Ehidden']);
    expect(fs.existsSync(path.join(dir, '..', 'escape'))).toBe(false);
    await expect(q.enqueue('t', 1, { key: '' })).rejects.toMatchObject({ code: 'EBADOPTION' });
    await q.close();
  });

  it('4 processes enqueueing one key 50 times each add exactly one job', async () => {
    const { dir, q } = await tempQueue();
    const children = Array.from({ length: 4 }, () => spawnNode([child, 'enqueue-key', dir, 'only-one']));
    const outputs = children.map(
      (c) =>
        new Promise<string>((resolve) => {
          let text = '';
          c.stdout!.on('data', (d: Buffer) => (text += d.toString()));
          c.once('exit', () => resolve(text));
        }),
    );
    expect(await Promise.all(children.map(exited))).toEqual([0, 0, 0, 0]);
    const ids = new Set((await Promise.all(outputs)).flatMap((o) => o.trim().split('\n')));
    expect(ls(dir, 'queue')).toHaveLength(1);
    expect([...ids]).toEqual(ls(dir, 'queue'));
    await q.close();
  });

  it('an enqueuer SIGKILLed between writing a keyed job and its rename frees the key at once, its file gone at the next sweep', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const writer = spawnNode([child, 'enqueue-key-freeze', dir, 'k1']);
    await lineFrom(writer, 'written');
    await until(() => ls(dir, 'keys').includes('k1'), 'the key to be taken by the frozen writer');
    const [orphan] = ls(dir, 'tmp');
    expect(ls(dir, 'queue')).toEqual([]);
    // while its writer lives, the job being written holds the key
    expect((await q.enqueue('k', 2, { key: 'k1' })).duplicate).toBe(true);
    writer.kill('SIGKILL');
    await exited(writer);
    const ref = await q.enqueue('k', 3, { key: 'k1' }); // not an hour later (tmpMaxAge): its writer is known dead
    expect(ref.duplicate).toBe(false);
    expect(ls(dir, 'queue')).toEqual([ref.id]);
    await q.recover();
    expect(ls(dir, 'tmp')).not.toContain(orphan);
    await q.close();
  });
});

describe('a running job hands its key to its next run (keyFrom)', () => {
  it('the successor takes the key from the running holder; a third enqueue is its duplicate; completing the first keeps the key', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const first = await q.enqueue('report', { run: 1 }, { key: 'daily' });
    const running = (await q.claim())!;
    expect(running.id).toBe(first.id);

    // without keyFrom the running holder keeps the key: the next run cannot be added
    expect(await q.enqueue('report', { run: 2 }, { key: 'daily' })).toEqual({ id: first.id, duplicate: true });
    const next = await q.enqueue('report', { run: 2 }, { key: 'daily', keyFrom: running.id, delay: 60_000 });
    expect(next.duplicate).toBe(false);
    expect(next.id).not.toBe(first.id);
    expect(fs.readlinkSync(path.join(dir, 'keys', encodeKey('daily')))).toBe(next.id);
    expect(ls(dir, 'keys')).toEqual([encodeKey('daily')]); // the link made for the hand-over was renamed into place
    expect(await q.enqueue('report', { run: 3 }, { key: 'daily' })).toEqual({ id: next.id, duplicate: true });
    // handing over twice from the same job does nothing more: it no longer holds the key
    expect(await q.enqueue('report', { run: 3 }, { key: 'daily', keyFrom: running.id })).toEqual({
      id: next.id,
      duplicate: true,
    });

    await running.complete();
    expect(fs.readlinkSync(path.join(dir, 'keys', encodeKey('daily')))).toBe(next.id);
    expect(await q.enqueue('report', { run: 4 }, { key: 'daily' })).toEqual({ id: next.id, duplicate: true });
    expect((await q.get(next.id)).state).toBe('delayed');
    await q.close();
  });

  it('only a running holder hands over: a waiting one keeps its key', async () => {
    const { q } = await tempQueue({ maintenance: false });
    const waiting = await q.enqueue('report', 1, { key: 'daily' });
    expect(await q.enqueue('report', 2, { key: 'daily', keyFrom: waiting.id })).toEqual({
      id: waiting.id,
      duplicate: true,
    });
    await q.close();
  });

  it('refuses keyFrom without a key, or that is not a job id', async () => {
    const { q } = await tempQueue({ maintenance: false });
    await expect(q.enqueue('report', 1, { keyFrom: '50-1763830000000000-k3j9x0.report' })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringMatching(/give the key too/),
    });
    await expect(q.enqueue('report', 1, { key: 'daily', keyFrom: 'me' })).rejects.toMatchObject({
      code: 'EBADOPTION',
      message: expect.stringMatching(/keyFrom must be the id of the running job/),
    });
    await q.close();
  });
});
