/**
 * A member of a shared queue's group never makes a worker (often root) read,
 * write, delete or chmod anything outside the queue (defects issue, S1-S3):
 * not by swapping one of the queue's directories for a link to a directory
 * elsewhere after the worker opened it, not by leaving its own files in
 * tmp/, and not by hard-linking a file it may write to workers/.clock. The
 * other users are real ones (setpriv), so it needs root, as CI runs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { fsck } from '../dist/maintenance/fsck.js';
import type { Queue } from '../dist/index.js';
import { ok } from './support/cli.js';
import { backdate } from './support/fake.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { openQueue, openToAll, tempQueue } from './support/temp.js';
import { chgrpQueue, modeOf, requireRoot, runAs, sharedBase, GROUP, WEB } from './support/users.js';

const { cli: CLI } = checkoutForOtherUsers(); // the users below run this, not the checkout's
const HOUR = 3600_000;

/** Run a shell command line as the group member WEB. */
const asMember = (line: string): ReturnType<typeof runAs> => runAs(WEB, 'sh', ['-c', line]);

/** The warnings a queue emits from now until `action` has run and a turn has passed. */
async function warningsOf(q: Queue, action: () => Promise<unknown>): Promise<Error[]> {
  const seen: Error[] = [];
  const listener = (error: Error): void => void seen.push(error);
  q.on('warning', listener);
  await action();
  await new Promise((resolve) => setImmediate(resolve));
  q.off('warning', listener);
  return seen;
}

/** A directory outside the queue, root's own, holding a file a sweep would delete by name and age if tmp/ led there, and one it never should. */
function victimDir(base: string): { victim: string; files: Record<string, string> } {
  const victim = path.join(base, 'victim');
  fs.mkdirSync(victim);
  fs.chmodSync(victim, 0o755);
  const files = { 'important.conf': 'keep me\n', '00-0000000000000001-a.t.host.1.abc.tmp': 'named like a job temp\n' };
  for (const [name, text] of Object.entries(files)) {
    fs.writeFileSync(path.join(victim, name), text);
    backdate(path.join(victim, name), 2 * HOUR);
  }
  return { victim, files };
}

const contents = (dir: string): Record<string, string> =>
  Object.fromEntries(fs.readdirSync(dir).map((name) => [name, fs.readFileSync(path.join(dir, name), 'utf8')]));

describe('a group member cannot swap the directories of a shared queue (dirq init --mode 0660)', () => {
  it('the queue directory is not group-writable, so renaming tmp/ or done/ away fails with EACCES', async () => {
    requireRoot();
    const base = sharedBase();
    const dir = path.join(base, 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const { victim } = victimDir(base);
    const q = await openQueue(dir, { maintenance: false });
    for (const sub of ['tmp', 'done']) {
      const swap = await asMember(`mv ${dir}/${sub} ${dir}/${sub}.old && ln -s ${victim} ${dir}/${sub}`);
      expect(swap.code, sub).not.toBe(0);
      expect(swap.stderr, sub).toMatch(/Permission denied/);
      expect(fs.lstatSync(path.join(dir, sub)).isDirectory(), sub).toBe(true);
    }
    // still shared: the member writes in the state directories as before
    expect(await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 't', '{}'])).toMatchObject({ code: 0, stderr: '' });
    await q.close();
  });

  it('opening a shared queue whose root its group may write warns EBADMODE, and dirq init --mode 0660 closes it', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    fs.chmodSync(dir, 0o2770); // as an older dirqueue made it
    const q = await openQueue(dir, { maintenance: false });
    const warnings = await warningsOf(q, async () => undefined);
    expect(warnings).toEqual([
      expect.objectContaining({
        code: 'EBADMODE',
        message: expect.stringContaining(`run dirq init ${dir} --mode 0660 as the queue's owner`),
      }),
    ]);
    await q.close();
    // a member may not fix it, and is told so; its own work goes on meanwhile
    const byMember = await runAs(WEB, process.execPath, [CLI, 'init', dir, '--mode', '0660']);
    expect(byMember.code).toBe(1);
    expect(byMember.stderr).toContain(`${dir} stays writable by others: only its owner or root can make it 02750`);
    expect(await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 't', '{}'])).toMatchObject({ code: 0 });
    expect(modeOf(dir)).toBe(0o2770);
    await ok(['init', dir, '--mode', '0660']);
    expect(modeOf(dir)).toBe(0o2750);
    const again = await openQueue(dir, { maintenance: false });
    expect(await warningsOf(again, async () => undefined)).toEqual([]);
    await again.close();
  });

  it('a group member opening a queue whose workers/ is missing is told to run fsck --repair as the owner', async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    fs.rmdirSync(path.join(dir, 'workers'));
    const run = await runAs(WEB, process.execPath, [CLI, 'enqueue', dir, 't', '{}']);
    expect(run.code).toBe(1);
    expect(run.stderr).toContain(
      `${dir}/workers is missing and this user may not create it in ${dir}: run dirq fsck ${dir} --repair as the queue's owner`,
    );
    expect(run.stderr).not.toMatch(/\n\s+at /); // no stack
    expect(fs.existsSync(path.join(dir, 'workers'))).toBe(false);
  });
});

describe('a queue directory anyone may write (not made by dirq init --mode)', () => {
  it('after tmp/ and done/ are swapped for links to a directory outside, a sweep touches nothing there and warns EBADFILE', async () => {
    requireRoot();
    const base = sharedBase();
    const dir = path.join(base, 'q');
    await ok(['init', dir]);
    openToAll(dir);
    const { victim, files } = victimDir(base);
    const q = await openQueue(dir, { maintenance: false, keepDone: 0 });
    for (const sub of ['tmp', 'done']) {
      expect(await asMember(`mv ${dir}/${sub} ${dir}/${sub}.old && ln -s ${victim} ${dir}/${sub}`)).toMatchObject({
        code: 0,
        stderr: '',
      });
    }
    const warnings = await warningsOf(q, async () => expect(await q.recover()).toMatchObject({ swept: false }));
    expect(contents(victim)).toEqual(files);
    expect(warnings).toEqual([
      expect.objectContaining({
        code: 'EBADFILE',
        message: expect.stringMatching(
          /\/q\/tmp was replaced since this process opened the queue \(it is a symbolic link now\)/,
        ),
      }),
    ]);
    await q.close();
  });
});

describe('sweeps delete only the names the library makes in tmp/', () => {
  it("a stray file older than tmpMaxAge is left (and fsck names it); the library's own leftovers are deleted", async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const ours = [
      `00-0000000000000001-a.t.${q.owner}.tmp`,
      '.dirqueue.json.123.abcdefgh',
      '.clock.123.abcdefgh',
      `.lock.${q.owner}.abcdefgh`,
      `.totals.${q.owner}.0`,
      `.totals~${q.owner}.1`,
      `.totals~totals~${q.owner}.2`,
    ];
    for (const name of [...ours, 'important.conf', '.hidden']) {
      fs.writeFileSync(path.join(dir, 'tmp', name), 'x');
      backdate(path.join(dir, 'tmp', name), 2 * HOUR);
    }
    const report = await q.recover();
    expect(report.tmpRemoved).toBe(ours.length);
    expect(fs.readdirSync(path.join(dir, 'tmp')).sort()).toEqual(['.hidden', 'important.conf']);
    await q.close();
    expect((await fsck(dir)).findings).toEqual(
      ['tmp/.hidden', 'tmp/important.conf'].map((p) =>
        expect.objectContaining({
          kind: 'orphan-tmp',
          path: p,
          problem: expect.stringContaining('not a name dirqueue makes'),
        }),
      ),
    );
  });
});

describe('workers/.clock that is a hard link to a file outside the queue', () => {
  it("a root sweep leaves the outside file's mode and content as they were, warns EBADFILE, and fsck --repair removes the link only", async () => {
    requireRoot();
    const base = sharedBase();
    const dir = path.join(base, 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const outside = path.join(base, 'conf');
    fs.writeFileSync(outside, 'secret=1\n');
    fs.chownSync(outside, 0, GROUP);
    fs.chmodSync(outside, 0o660); // the member may write it, so fs.protected_hardlinks lets it link it
    const clock = path.join(dir, 'workers', '.clock');
    expect(await asMember(`rm -f ${clock} && ln ${outside} ${clock}`)).toMatchObject({ code: 0, stderr: '' });
    const q = await openQueue(dir, { maintenance: false });
    const report = await q.recover();
    expect([modeOf(outside), fs.readFileSync(outside, 'utf8')]).toEqual([0o660, 'secret=1\n']);
    expect(report.warnings).toEqual([
      expect.objectContaining({
        code: 'EBADFILE',
        message: expect.stringContaining('.clock is a file with 2 names (a hard link)'),
      }),
    ]);
    await q.close();
    expect((await fsck(dir)).findings).toEqual([
      expect.objectContaining({
        kind: 'stale-helper',
        path: 'workers/.clock',
        problem: expect.stringContaining('hard link'),
      }),
    ]);
    await fsck(dir, { repair: true });
    expect(fs.existsSync(clock)).toBe(false);
    expect([modeOf(outside), fs.readFileSync(outside, 'utf8')]).toEqual([0o660, 'secret=1\n']);
  });

  it('a missing clock is created world-writable, whatever the umask; an existing one is not chmodded', async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const clock = path.join(dir, 'workers', '.clock');
    fs.rmSync(clock, { force: true });
    const umask = process.umask(0o077);
    try {
      await q.recover();
    } finally {
      process.umask(umask);
    }
    expect(modeOf(clock)).toBe(0o666);
    fs.chmodSync(clock, 0o644);
    await q.recover();
    expect(modeOf(clock)).toBe(0o644);
    await q.close();
  });
});
