/**
 * dirq limit and dirq limits, spawned as users run them: setting, replacing and clearing a limit,
 * the table and --json of what is in force and in use, each bad input (exit 2, one line, nothing
 * written, and the typed code with --json), and dirq stats showing the limits.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { dirq, expectOneLineError, newQueue, ok, okJson } from './support/cli.js';
import { openQueue } from './support/temp.js';

const SET_BY = /^\S+\.\d+\.\S+ \(\d+(ms|s) ago\)$/;

describe('dirq limit', () => {
  it('sets each part, prints what is in force, and --json shows it as dirq limits --json does', async () => {
    const dir = await newQueue();
    expect(await ok(['limit', dir, 'send', '--concurrency', '3'])).toBe(
      'limit on send: concurrency 3 (0 running) (limits/send/limit.json)\n',
    );
    expect(await ok(['limit', dir, 'send', '--rate', '20/1s', '--concurrency', '5'])).toBe(
      'limit on send: concurrency 5 (0 running), rate 20/1s (0 in the last 1s) (limits/send/limit.json)\n',
    );
    expect(await ok(['limit', dir, 'export', '--group-concurrency', '1'])).toBe(
      'limit on export: group concurrency 1 (0 groups running) (limits/export/limit.json)\n',
    );
    const json = await okJson<Record<string, unknown>>(['limit', dir, 'poll', '--rate', '5/500ms']);
    expect(json).toEqual({
      schema: 1,
      type: 'poll',
      rate: { max: 5, per: 500 },
      recentStarts: 0,
      at: expect.stringMatching(/^\d{4}-\d\d-\d\dT/),
      by: expect.stringMatching(/^\S+\.\d+\.\S+$/),
      file: 'limits/poll/limit.json',
    });
    expect(await okJson<unknown[]>(['limits', dir])).toContainEqual({ ...json, schema: undefined });
    // 100/1m and a bare number of ms are durations too
    expect(await okJson(['limit', dir, 'poll', '--rate', '100/1m'])).toMatchObject({ rate: { max: 100, per: 60_000 } });
    expect(await okJson(['limit', dir, 'poll', '--rate', '7/250'])).toMatchObject({ rate: { max: 7, per: 250 } });
    // a limit replaces the type's earlier one whole
    const replaced = await okJson<Record<string, unknown>>(['limit', dir, 'send', '--group-concurrency', '2']);
    expect(replaced).toMatchObject({ type: 'send', groupConcurrency: 2 });
    expect(replaced).not.toHaveProperty('concurrency');
    expect(replaced).not.toHaveProperty('rate');
    expect(fs.readdirSync(path.join(dir, 'limits', 'send'))).toEqual(['limit.json']); // its rate tokens went with the rate
  });

  it('--clear removes the limit and its tokens; without a limit it says so and exits 0', async () => {
    const dir = await newQueue();
    await ok(['limit', dir, 'send', '--rate', '3/1s']);
    expect(fs.readdirSync(path.join(dir, 'limits', 'send')).length).toBe(4);
    expect(await ok(['limit', dir, 'send', '--clear'])).toBe('cleared the limit on send\n');
    expect(fs.readdirSync(path.join(dir, 'limits'))).toEqual([]);
    expect(await ok(['limit', dir, 'send', '--clear'])).toBe('no limit on send\n');
    expect(await okJson(['limit', dir, 'send', '--clear'])).toEqual({ schema: 1, type: 'send', cleared: false });
    await ok(['limit', dir, 'send', '--concurrency', '1']);
    expect(await okJson(['limit', dir, 'send', '--clear'])).toEqual({ schema: 1, type: 'send', cleared: true });
    expect(await ok(['limits', dir])).toBe(`no limits (dirq limit ${dir} TYPE --concurrency N adds one)\n`);
  });

  const bad: { name: string; args: string[]; code: string; message: RegExp }[] = [
    {
      name: 'concurrency 0',
      args: ['--concurrency', '0'],
      code: 'EBADOPTION',
      message: /--concurrency must be a whole number from 1 to 10000, got "0" \(to remove a limit: --clear\)/,
    },
    {
      name: 'concurrency -1',
      args: ['--concurrency', '-1'],
      code: 'EBADOPTION',
      message: /--concurrency must be a whole number from 1 to 10000, got "-1"/,
    },
    {
      name: 'concurrency 1.5',
      args: ['--concurrency', '1.5'],
      code: 'EBADOPTION',
      message: /--concurrency must be a whole number .* got "1\.5"/,
    },
    {
      name: 'concurrency over the maximum',
      args: ['--concurrency', '10001'],
      code: 'EBADOPTION',
      message: /from 1 to 10000, got "10001"/,
    },
    {
      name: 'group concurrency 0',
      args: ['--group-concurrency', '0'],
      code: 'EBADOPTION',
      message: /--group-concurrency must be a whole number from 1 to 10000, got "0"/,
    },
    {
      name: 'group concurrency 1.5',
      args: ['--group-concurrency', '1.5'],
      code: 'EBADOPTION',
      message: /--group-concurrency must be a whole number/,
    },
    {
      name: 'rate 5/5ms (window under 10ms)',
      args: ['--rate', '5/5ms'],
      code: 'EBADOPTION',
      message: /--rate's window must be at least 10ms .*got "5\/5ms"/,
    },
    {
      name: 'rate without a slash',
      args: ['--rate', '20'],
      code: 'EBADOPTION',
      message: /--rate must be N\/DURATION, at most N starts per window \(20\/1s, 100\/1m\), got "20"/,
    },
    {
      name: 'rate with two slashes',
      args: ['--rate', '1/2/3s'],
      code: 'EBADOPTION',
      message: /--rate must be N\/DURATION/,
    },
    {
      name: 'rate 0/1s',
      args: ['--rate', '0/1s'],
      code: 'EBADOPTION',
      message: /--rate's count must be a whole number from 1 to 10000, got "0"/,
    },
    {
      name: 'rate 1.5/1s',
      args: ['--rate', '1.5/1s'],
      code: 'EBADOPTION',
      message: /--rate's count must be a whole number/,
    },
    {
      name: 'rate with a bad duration',
      args: ['--rate', '5/soon'],
      code: 'EBADOPTION',
      message: /--rate's window must be a duration like 100ms/,
    },
    {
      name: 'no flags at all',
      args: [],
      code: 'EBADOPTION',
      message: /give --concurrency N, --rate N\/DURATION or --group-concurrency N to limit send, or --clear/,
    },
    {
      name: '--clear with a limit',
      args: ['--clear', '--concurrency', '2'],
      code: 'EBADOPTION',
      message: /--clear removes the whole limit: give it alone/,
    },
    {
      name: 'an unknown option',
      args: ['--max', '3'],
      code: 'EBADOPTION',
      message: /unknown option --max \(see dirq limit --help\)/,
    },
    {
      name: 'a value missing',
      args: ['--concurrency'],
      code: 'EBADOPTION',
      message: /option --concurrency needs a value/,
    },
  ];
  it.each(bad)(
    'refuses $name: exit 2, one line, nothing written; --json prints the code',
    async ({ args, code, message }) => {
      const dir = await newQueue();
      expectOneLineError(await dirq(['limit', dir, 'send', ...args]), 2, message);
      const json = await dirq(['limit', dir, 'send', ...args, '--json']);
      expect(json.code).toBe(2);
      expect(JSON.parse(json.stdout)).toEqual({ schema: 1, error: { code, message: expect.stringMatching(message) } });
      expect(json.stderr).toMatch(message);
      expect(fs.existsSync(path.join(dir, 'limits'))).toBe(false);
    },
  );

  it('refuses a type no job can have, a missing type, and a directory that is no queue', async () => {
    const dir = await newQueue();
    expectOneLineError(
      await dirq(['limit', dir, '', '--concurrency', '2']),
      2,
      /job type must be a non-empty string, got ""/,
    );
    const json = await dirq(['limit', dir, '', '--concurrency', '2', '--json']);
    expect([json.code, JSON.parse(json.stdout)]).toEqual([
      2,
      { schema: 1, error: { code: 'EBADTYPE', message: expect.any(String) } },
    ]);
    expectOneLineError(await dirq(['limit', dir]), 2, /limit: missing arguments: usage: dirq limit DIR TYPE/);
    expect(fs.existsSync(path.join(dir, 'limits'))).toBe(false);
    const none = path.join(dir, 'nowhere');
    expectOneLineError(await dirq(['limit', none, 'send', '--concurrency', '2']), 1, /no queue at .*dirq init/);
    const noQueue = await dirq(['limits', none, '--json']);
    expect([noQueue.code, JSON.parse(noQueue.stdout)]).toEqual([
      1,
      { schema: 1, error: { code: 'ENOQUEUE', message: expect.stringMatching(/no queue at/) } },
    ]);
  });
});

describe('dirq limits', () => {
  it('lists every limit with its use: slots held, recent starts, set by whom and when', async () => {
    const dir = await newQueue();
    await ok(['limit', dir, 'send', '--concurrency', '2', '--rate', '20/1m']);
    await ok(['limit', dir, 'export', '--group-concurrency', '3']);
    const q = await openQueue(dir);
    await q.enqueue('send', 1);
    const job = await q.claim(); // holds slot 0 of send and has used one of its rate tokens
    expect(job?.type).toBe('send');
    const lines = (await ok(['limits', dir])).trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TYPE\s+CONCURRENCY\s+RUNNING\s+RATE\s+RECENT\s+GROUP-CONC\s+GROUPS\s+SET-BY$/);
    const cells = lines.slice(1).map((l) => l.split(/\s{2,}/));
    expect(cells.map((c) => c.slice(0, 7))).toEqual([
      ['export', '-', '0', '-', '-', '3', '0'],
      ['send', '2', '1', '20/1m', '1', '-', '-'],
    ]);
    for (const c of cells) expect(c[7]).toMatch(SET_BY);
    expect(await okJson(['limits', dir])).toEqual([
      expect.objectContaining({ type: 'export', groupConcurrency: 3, running: 0, groupsRunning: 0 }),
      expect.objectContaining({
        type: 'send',
        concurrency: 2,
        rate: { max: 20, per: 60_000 },
        running: 1,
        recentStarts: 1,
      }),
    ]);
    await job!.complete();
    expect(await okJson(['limits', dir])).toContainEqual(
      expect.objectContaining({ type: 'send', running: 0, recentStarts: 1 }),
    );
    await q.close();
  });

  it('lists a broken limit file as invalid with the reason, after the limits in force', async () => {
    const dir = await newQueue();
    await ok(['limit', dir, 'send', '--concurrency', '2']);
    fs.mkdirSync(path.join(dir, 'limits', 'mail'));
    fs.writeFileSync(path.join(dir, 'limits', 'mail', 'limit.json'), '{"concurrency": 0}');
    fs.mkdirSync(path.join(dir, 'limits', 'no%zz'));
    const lines = (await ok(['limits', dir])).trimEnd().split('\n');
    expect(lines.slice(1)).toEqual([
      expect.stringMatching(/^send\s+2\s+0\s+-\s+-\s+-\s+-\s+\S/),
      '',
      'limits/mail/limit.json: invalid: concurrency must be a whole number from 1 to 10000, got 0 (to remove the limit, pass null)',
      'limits/no%zz: invalid: its name is no type encoded as in job names',
    ]);
    const json = await okJson<Record<string, unknown>[]>(['limits', dir]);
    expect(json.slice(1)).toEqual([
      { file: 'limits/mail/limit.json', invalid: expect.stringMatching(/^concurrency must be/) },
      { file: 'limits/no%zz', invalid: 'its name is no type encoded as in job names' },
    ]);
    fs.rmSync(path.join(dir, 'limits', 'send'), { recursive: true });
    expect((await ok(['limits', dir])).split('\n')[0]).toBe(
      'limits/mail/limit.json: invalid: concurrency must be a whole number from 1 to 10000, got 0 (to remove the limit, pass null)',
    );
  });

  it('refuses an extra argument and an unknown option', async () => {
    const dir = await newQueue();
    expectOneLineError(await dirq(['limits', dir, 'send']), 2, /limits: unexpected argument "send"/);
    expectOneLineError(await dirq(['limits', dir, '--all']), 2, /unknown option --all/);
  });
});

describe('dirq stats with limits', () => {
  it('shows the limits in force, with their use, and --json has them', async () => {
    const dir = await newQueue();
    expect(await ok(['stats', dir])).not.toMatch(/Limits:/);
    expect(await okJson(['stats', dir])).toMatchObject({ limits: [] });
    await ok(['limit', dir, 'send', '--concurrency', '3', '--rate', '20/1s']);
    await ok(['limit', dir, 'export', '--group-concurrency', '2']);
    fs.mkdirSync(path.join(dir, 'limits', 'mail'));
    fs.writeFileSync(path.join(dir, 'limits', 'mail', 'limit.json'), 'oops'); // not in force: not shown
    expect(await ok(['stats', dir])).toMatch(
      /\nLimits: export: group concurrency 2 \(0 groups running\); send: concurrency 3 \(0 running\), rate 20\/1s \(0 in the last 1s\)\n/,
    );
    const stats = await okJson<{ limits: Record<string, unknown>[] }>(['stats', dir]);
    expect(stats.limits).toEqual([
      expect.objectContaining({ type: 'export', groupConcurrency: 2, file: 'limits/export/limit.json' }),
      expect.objectContaining({ type: 'send', concurrency: 3, rate: { max: 20, per: 1000 }, running: 0 }),
    ]);
  });
});

describe('help', () => {
  it('limit and limits are listed, each with its usage and examples', async () => {
    const overview = await ok(['--help']);
    for (const verb of ['limit', 'limits']) {
      expect(overview).toContain(`  ${verb} `);
      const help = await ok([verb, '--help']);
      expect(help).toMatch(new RegExp(`^Usage: dirq ${verb} DIR`));
      expect(help).toMatch(/\nExamples?:\n {2}dirq /);
    }
  });
});
