/**
 * Host identity (src/store/liveness.ts): a pid is evidence only on the host and
 * boot that issued it. Hostnames are half of that and nfs-hosts.test.ts
 * covers them (hosts with their own names); this file covers the other
 * half, the boot id: a machine that rebooted (or a clone of it, or a
 * container sharing its hostname) reuses pids, so a claim from another boot
 * with our hostname is judged by its lease alone, never by kill(pid, 0).
 *
 * Pid reuse by start time, judged by a sweep, is in recovery.test.ts; EPERM
 * with a real non-root judge is there too (it needs root). Here EPERM is
 * produced by a spy on process.kill, so it runs for any user.
 */
import fs from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  bootId,
  filesystemNow,
  Heartbeat,
  isDeadHere,
  processStartTime,
  type OwnerIdentity,
} from '../dist/store/liveness.js';
import { hostToken } from '../dist/store/names.js';
import { backdate } from './support/fake.js';
import { systemError } from './support/faults.js';
import { deadPid, openQueue, tempDir } from './support/temp.js';

const STALE_AFTER = 5000;
const OTHER_BOOT = '00000000-0000-4000-8000-000000000000';

/** This hostname, with the given boot id, pid and start time. */
const identity = (boot: string, pid: number, startTime: string): OwnerIdentity => ({
  host: hostname(),
  bootId: boot,
  pid,
  startTime,
  started: '',
});

/** What the heartbeat in workers/ of `owner` says. */
const heartbeatOf = (dir: string, owner: string): OwnerIdentity =>
  JSON.parse(fs.readFileSync(path.join(dir, 'workers', owner), 'utf8')) as OwnerIdentity;

/** A job claimed by hand under `who`, with its heartbeat fresh. Returns the id and the heartbeat's path. */
async function claimAs(dir: string, who: OwnerIdentity, nonce: string): Promise<{ id: string; heartbeat: string }> {
  const q = await openQueue(dir, { maintenance: false });
  const { id } = await q.enqueue('t', nonce);
  await q.close();
  const owner = `${hostToken(who.host)}.${who.pid}.${nonce}`;
  fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
  const heartbeat = path.join(dir, 'workers', owner);
  fs.writeFileSync(heartbeat, JSON.stringify(who));
  expect(heartbeatOf(dir, owner)).toEqual(who);
  return { id, heartbeat };
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('isDeadHere: a pid is judged only on this host and boot', () => {
  it('same hostname, another boot: neither a dead pid nor a reused one is judged dead', async () => {
    const dead = await deadPid();
    expect(bootId()).not.toBe(OTHER_BOOT);
    // the contrast: this boot, the same pids
    expect(isDeadHere(identity(bootId(), dead, '1'))).toBe(true); // gone (ESRCH)
    expect(isDeadHere(identity(bootId(), process.pid, 'not-the-start-time'))).toBe(true); // reused
    expect(isDeadHere(identity(bootId(), process.pid, processStartTime(process.pid)!))).toBe(false); // this very process
    // another boot: the pid says nothing
    expect(isDeadHere(identity(OTHER_BOOT, dead, '1'))).toBe(false);
    expect(isDeadHere(identity(OTHER_BOOT, process.pid, 'not-the-start-time'))).toBe(false);
    expect(isDeadHere(identity(OTHER_BOOT, process.pid, processStartTime(process.pid)!))).toBe(false);
  });

  it('another boot is not even asked about: no kill(pid, 0) for it', () => {
    const kill = vi.spyOn(process, 'kill');
    isDeadHere(identity(OTHER_BOOT, process.pid, 'x'));
    isDeadHere({ ...identity(bootId(), process.pid, 'x'), host: `not-${hostname()}` });
    expect(kill).not.toHaveBeenCalled();
    isDeadHere(identity(bootId(), process.pid, 'x'));
    expect(kill).toHaveBeenCalledWith(process.pid, 0);
  });

  it("EPERM from kill(pid, 0) means alive (the process exists, another user's), unless its start time says the pid was reused", () => {
    const fail = (code: string) => () => {
      throw Object.assign(new Error(`${code}: simulated kill(pid, 0)`), { code, syscall: 'kill' });
    };
    const mine = processStartTime(process.pid)!;
    vi.spyOn(process, 'kill').mockImplementation(fail('EPERM'));
    expect(isDeadHere(identity(bootId(), process.pid, mine))).toBe(false);
    expect(isDeadHere(identity(bootId(), process.pid, 'not-the-start-time'))).toBe(true);
    vi.spyOn(process, 'kill').mockImplementation(fail('ESRCH')); // the contrast: no such process
    expect(isDeadHere(identity(bootId(), process.pid, mine))).toBe(true);
  });
});

describe('a sweep judges a claim of our hostname but another boot by its lease alone', () => {
  it('a dead pid does not make it dead at once: recovered as stalled only when the heartbeat is older than staleAfter', async () => {
    const dir = tempDir();
    const { id, heartbeat } = await claimAs(dir, identity(OTHER_BOOT, await deadPid(), '1'), 'otherboot');
    const q = await openQueue(dir, { maintenance: false, staleAfter: STALE_AFTER });
    expect((await q.recover()).recovered).toEqual([]);
    expect((await q.get(id)).state).toBe('active');
    backdate(heartbeat, STALE_AFTER + 1000);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled', to: 'queue' })]);
    await q.close();
  });

  it('a pid alive here (this very process) does not keep it alive: stalled once the heartbeat is older than staleAfter', async () => {
    const dir = tempDir();
    const { id, heartbeat } = await claimAs(
      dir,
      identity(OTHER_BOOT, process.pid, processStartTime(process.pid)!),
      'otherboot',
    );
    const q = await openQueue(dir, { maintenance: false, staleAfter: STALE_AFTER });
    expect((await q.recover()).recovered).toEqual([]);
    backdate(heartbeat, STALE_AFTER + 1000);
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'stalled', to: 'queue' })]);
    await q.close();
  });

  it('the contrast, this host and boot: a dead pid is crashed at once, its heartbeat still fresh', async () => {
    const dir = tempDir();
    const { id } = await claimAs(dir, identity(bootId(), await deadPid(), '1'), 'thisboot');
    const q = await openQueue(dir, { maintenance: false, staleAfter: STALE_AFTER });
    expect((await q.recover()).recovered).toEqual([expect.objectContaining({ id, reason: 'crashed', to: 'queue' })]);
    await q.close();
  });
});

describe("the filesystem's clock", () => {
  it('with no inode left to create the clock file, a sweep reads the local clock and warns, rather than not sweeping', () => {
    const dir = tempDir();
    const clock = path.join(dir, '.clock');
    const open = fs.openSync.bind(fs);
    const spy = vi.spyOn(fs, 'openSync').mockImplementation((file, flags, ...rest) => {
      if (typeof flags === 'number' && flags & fs.constants.O_CREAT) throw systemError('ENOSPC', 'openSync', [file]);
      return open(file, flags, ...rest);
    });
    let read: ReturnType<typeof filesystemNow>;
    const before = Date.now();
    try {
      read = filesystemNow(clock, dir);
    } finally {
      spy.mockRestore();
    }
    expect(read.now).toBeGreaterThanOrEqual(before);
    expect(read.now).toBeLessThanOrEqual(Date.now());
    expect(read.warning).toMatchObject({
      code: 'ENOSPC',
      message: expect.stringMatching(/filesystem clock .* is full.*judged ages by this host's clock/),
    });
    expect(fs.readdirSync(dir)).toEqual([]);
    // any other failure still fails the sweep
    const eio = vi.spyOn(fs, 'openSync').mockImplementation((file) => {
      throw systemError('EIO', 'openSync', [file]);
    });
    try {
      expect(() => filesystemNow(clock, dir)).toThrow(expect.objectContaining({ code: 'EIO' }));
    } finally {
      eio.mockRestore();
    }
  });
});

describe('Heartbeat', () => {
  it('whose file cannot be made again keeps no closed descriptor: a later beat never closes a file that reused its number', () => {
    const dir = path.join(tempDir(), 'workers');
    fs.mkdirSync(dir);
    const heartbeat = new Heartbeat(path.join(dir, 'h.1.x'));
    fs.rmSync(dir, { recursive: true }); // its queue removed under it (a test's, a bench's temp dir)
    expect(() => heartbeat.beat()).toThrow(); // closes the gone file's descriptor, cannot make a new one
    const other = path.join(path.dirname(dir), 'other');
    const fd = fs.openSync(other, 'w'); // most likely the number just freed
    expect(() => heartbeat.beat()).toThrow();
    expect(fs.fstatSync(fd).ino).toBe(fs.statSync(other).ino); // still open: not closed by the beat
    fs.writeSync(fd, 'mine');
    fs.closeSync(fd);
    expect(fs.readFileSync(other, 'utf8')).toBe('mine'); // and not written to by it
    heartbeat.close();
  });
});
