/** dirq fsck, spawned as users run it: its report, --json, --repair and exit codes 0 / 3. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirq, enqueued, newQueue, ok, okJson } from './support/cli.js';
import { backdate, deadHeartbeat } from './support/fake.js';

describe('dirq fsck', () => {
  it('says a healthy queue is clean and exits 0', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    expect(await ok(['fsck', dir])).toBe(`${dir}: clean (1 job file checked)\n`);
    expect(await okJson(['fsck', dir])).toEqual({ schema: 1, dir, checked: 1, findings: [], unrepaired: 0 });
  });

  it('reports damage and exits 3; --repair fixes it and exits 0; then it is clean', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'email', '{}');
    const bad = await enqueued(dir, 'email', '{}');
    fs.copyFileSync(path.join(dir, 'queue', id), path.join(dir, 'done', id));
    fs.writeFileSync(path.join(dir, 'queue', bad), '{"data": oops\n');
    fs.writeFileSync(path.join(dir, 'tmp', 'x'), 'half');
    backdate(path.join(dir, 'tmp', 'x'), 2 * 3600_000);

    const run = await dirq(['fsck', dir]);
    expect(run.code).toBe(3);
    expect(run.stderr).toBe('');
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^KIND\s+PATH\s+PROBLEM$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^duplicate\\s+done/${id.replace(/\./g, '\\.')}\\s+job .* is in queue/, done/: run with --repair to delete this copy and keep queue/`,
      ),
    );
    expect(lines[2]).toMatch(
      /^orphan-tmp\s+tmp\/x\s+not a name dirqueue makes, so sweeps leave it \(last written 2h ago\): run with --repair to delete it$/,
    );
    expect(lines[3]).toMatch(
      /^unparsable\s+queue\/\S+\s+unparsable job file: line 1 is not JSON .*: run with --repair to set it aside in failed\/$/,
    );
    expect(lines.at(-1)).toBe(`${dir}: 3 problems, 0 repaired (2 job files checked)`);

    const repaired = await dirq(['fsck', dir, '--repair', '--json']);
    expect(repaired.code).toBe(0);
    const report = JSON.parse(repaired.stdout) as {
      unrepaired: number;
      findings: { kind: string; action: string; repaired: boolean }[];
    };
    expect(report.unrepaired).toBe(0);
    expect(report.findings.map((f) => [f.kind, f.action, f.repaired])).toEqual([
      ['duplicate', `deleted this copy, kept queue/${id}`, true],
      ['orphan-tmp', 'deleted', true],
      ['unparsable', `moved to failed/${bad}`, true],
    ]);
    expect(await ok(['fsck', dir])).toBe(`${dir}: clean (1 job file checked)\n`);
    expect(fs.readdirSync(path.join(dir, 'done'))).toEqual([]);
    expect(await ok(['ls', dir, 'failed'])).toMatch(/unparsable job file: line 1 is not JSON/);
  });

  it('sets a stray file aside with --repair (renamed, never deleted), then exits 0 (item 15)', async () => {
    const dir = await newQueue();
    fs.writeFileSync(path.join(dir, 'queue', 'notes.txt'), 'mine');
    const found = await dirq(['fsck', dir]);
    expect(found.code).toBe(3);
    expect(found.stdout).toMatch(
      /^stray\s+queue\/notes\.txt\s+not a job name in queue\/ .*: rename it or move it out of queue\/, or run with --repair to rename it to notes\.txt~$/m,
    );
    const run = await dirq(['fsck', dir, '--repair']);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/: 1 problem, 1 repaired \(0 job files checked\)\n$/);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual(['notes.txt~']);
    expect(await ok(['fsck', dir])).toBe(`${dir}: clean (0 job files checked)\n`);
  });

  it('repairs a queue that other commands refuse to open (a missing directory)', async () => {
    const dir = await newQueue();
    fs.rmdirSync(path.join(dir, 'failed'));
    const refused = await dirq(['ls', dir]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/failed is missing: run dirq fsck .* --repair\n$/);
    expect((await dirq(['fsck', dir, '--repair'])).code).toBe(0);
    expect(await dirq(['ls', dir, 'failed'])).toEqual({ code: 0, stdout: '', stderr: 'No jobs in failed/.\n' });
  });

  it("reports damage in limits/ (a gone holder's slot, a stray, a broken limit.json) and --repair fixes what it may", async () => {
    const dir = await newQueue();
    await ok(['limit', dir, 'send', '--concurrency', '2']);
    const owner = deadHeartbeat(dir, 'dead');
    fs.linkSync(path.join(dir, 'workers', owner), path.join(dir, 'limits', 'send', '0'));
    fs.writeFileSync(path.join(dir, 'limits', 'send', 'notes'), 'mine');
    fs.mkdirSync(path.join(dir, 'limits', 'mail'));
    fs.writeFileSync(path.join(dir, 'limits', 'mail', 'limit.json'), 'oops');

    const run = await dirq(['fsck', dir]);
    expect([run.code, run.stderr]).toEqual([3, '']);
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines.slice(1, 5)).toEqual([
      expect.stringMatching(
        /^limit\s+limits\/mail\/limit\.json\s+the limit on mail cannot be used, so it is not obeyed: its content is not JSON: fix the file, or set the limit again \(dirq limit .* mail \.\.\.\), or remove it \(dirq limit .* mail --clear\)$/,
      ),
      expect.stringMatching(
        /^stale-helper\s+limits\/send\/0\s+a running slot of send held by a worker that is gone \(its process is gone\): run with --repair to free it \(a sweep does too\)$/,
      ),
      expect.stringMatching(/^stale-helper\s+workers\/\S+\s+the heartbeat of a worker that is gone/),
      expect.stringMatching(/^stray\s+limits\/send\/notes\s+not a limit file, .*rename it to notes~$/),
    ]);
    expect(lines.at(-1)).toBe(`${dir}: 4 problems, 0 repaired (0 job files checked)`);

    const repaired = await dirq(['fsck', dir, '--repair', '--json']);
    expect(repaired.code).toBe(3); // the broken limit.json is left for its owner
    const report = JSON.parse(repaired.stdout) as { unrepaired: number; findings: { path: string; action: string }[] };
    expect(report.unrepaired).toBe(1);
    expect(report.findings.map((f) => [f.path, f.action])).toEqual([
      ['limits/mail/limit.json', expect.stringMatching(/^fix the file/)],
      ['limits/send/0', 'freed'],
      [`workers/${owner}`, 'deleted'],
      ['limits/send/notes', expect.stringMatching(/^renamed to notes~/)],
    ]);
    expect(fs.readdirSync(path.join(dir, 'limits', 'send')).sort()).toEqual(['limit.json', 'notes~']);
    expect(fs.readFileSync(path.join(dir, 'limits', 'mail', 'limit.json'), 'utf8')).toBe('oops');
    await ok(['limit', dir, 'mail', '--clear']);
    expect(await ok(['fsck', dir])).toBe(`${dir}: clean (0 job files checked)\n`);
  });
});
