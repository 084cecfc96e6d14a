/**
 * dirq enqueue beyond the basics (test/cli.test.ts): --at, --key, raw
 * payloads with --file, bulk --jsonl from a file or stdin with its progress
 * bar on a terminal.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  dirq,
  enqueued,
  envelope,
  expectOneLineError,
  ID,
  jobFiles,
  newQueue,
  ok,
  okJson,
  onTerminal,
} from './support/cli.js';
import { exited, openQueue, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

describe('dirq enqueue --at and --key', () => {
  it('puts a job with --at in delayed/, due at that time', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'report', '{}', '--at', '2030-01-01T06:00:00+01:00');
    expect(fs.readdirSync(path.join(dir, 'delayed'))).toEqual([
      `${String(Date.UTC(2030, 0, 1, 5) * 1000).padStart(16, '0')}~${id}`,
    ]);
  });

  it('runs a job whose --at is past at once', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'report', '{}', '--at', '2020-01-01T00:00:00Z');
    expect(jobFiles(dir)).toEqual([`queue/${id}`]);
  });

  it('adds one job per --key while it is live, and says so on stderr', async () => {
    const dir = await newQueue();
    const first = await okJson<{ id: string; duplicate: boolean }>([
      'enqueue',
      dir,
      'invoice',
      '{"n":1}',
      '--key',
      'invoice-42',
    ]);
    expect(first).toEqual({ schema: 1, id: expect.stringMatching(ID), duplicate: false });
    const again = await dirq(['enqueue', dir, 'invoice', '{"n":2}', '--key', 'invoice-42']);
    expect(again).toMatchObject({ code: 0, stdout: `${first.id}\n` });
    expect(again.stderr).toBe(
      `key "invoice-42" is held by job ${first.id}, which is waiting or running: nothing was added\n`,
    );
    expect(jobFiles(dir)).toEqual([`queue/${first.id}`]);
    const q = await openQueue(dir);
    await (await q.claim())!.complete();
    await q.close();
    const third = await enqueued(dir, 'invoice', '{"n":3}', '--key', 'invoice-42');
    expect(third).not.toBe(first.id);
  });
});

describe('dirq enqueue --file', () => {
  it('enqueues the raw bytes of a file, which a worker gets as a Buffer', async () => {
    const dir = await newQueue();
    const bytes = Buffer.from([0, 1, 2, 255, 10, 13, 0x7b]);
    const file = path.join(tempDir(), 'photo.bin');
    fs.writeFileSync(file, bytes);
    const id = await enqueued(dir, 'resize', '--file', file);
    expect(envelope(path.join(dir, 'queue', id))).toEqual({
      type: 'resize',
      bytes: bytes.toString('base64'),
      created: expect.any(String),
    });
    const q = await openQueue(dir);
    const job = await q.claim();
    expect(job!.data).toEqual(bytes);
    await job!.complete();
    await q.close();
  });

  it('reads the raw payload from stdin with --file -', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'raw', '--file', '-');
    expect(envelope(path.join(dir, 'queue', id))).toMatchObject({ bytes: '' });
    const run = await dirq(['enqueue', dir, 'raw', '--file', '-'], Buffer.from('not json {'));
    expect(run.code).toBe(0);
    expect(envelope(path.join(dir, 'queue', run.stdout.trimEnd()))).toMatchObject({
      bytes: Buffer.from('not json {').toString('base64'),
    });
  });
});

describe('dirq enqueue --jsonl', () => {
  it('enqueues one job per line of a file, in order, and prints their ids', async () => {
    const dir = await newQueue();
    const file = path.join(tempDir(), 'jobs.jsonl');
    fs.writeFileSync(file, '{"to":"a"}\n\n{"to":"b"}\r\n[3]\n"four"\n');
    const ids = (await ok(['enqueue', dir, 'send', '--jsonl', file, '--priority', '20', '--attempts', '7']))
      .trimEnd()
      .split('\n');
    expect(ids).toHaveLength(4);
    for (const id of ids) expect(id).toMatch(/^20-.*\.send$/);
    expect(fs.readdirSync(path.join(dir, 'queue')).sort()).toEqual(ids);
    expect(ids.map((id) => envelope(path.join(dir, 'queue', id)))).toEqual([
      expect.objectContaining({ data: { to: 'a' }, attempts: 7 }),
      expect.objectContaining({ data: { to: 'b' }, attempts: 7 }),
      expect.objectContaining({ data: [3] }),
      expect.objectContaining({ data: 'four' }),
    ]);
  });

  it('reads stdin with --jsonl -, in chunks, and prints an array with --json', async () => {
    const dir = await newQueue();
    const lines = Array.from({ length: 2500 }, (_, i) => JSON.stringify({ n: i })).join('\n');
    const refs = JSON.parse(await ok(['enqueue', dir, 'bulk', '--jsonl', '-', '--json'], `${lines}\n`)) as {
      id: string;
      duplicate: boolean;
    }[];
    expect(refs).toHaveLength(2500);
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-boolean-literal-compare -- parsed from the CLI's output: duplicate must be false, not merely falsy
    expect(refs.every((r) => ID.test(r.id) && r.duplicate === false)).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(2500);
    expect(envelope(path.join(dir, 'queue', refs[2499]!.id))).toMatchObject({ data: { n: 2499 } });
  });

  it('enqueues nothing at all when one line is bad', async () => {
    const dir = await newQueue();
    const lines = `${Array.from({ length: 1500 }, () => '{}').join('\n')}\n{oops}\n`;
    expectOneLineError(
      await dirq(['enqueue', dir, 'bulk', '--jsonl', '-'], lines),
      2,
      /line 1501 of stdin is not valid JSON/,
    );
    expect(jobFiles(dir)).toEqual([]);
  });

  it('enqueues nothing from empty input', async () => {
    const dir = await newQueue();
    expect(await dirq(['enqueue', dir, 'bulk', '--jsonl', '-'], '\n\n')).toEqual({ code: 0, stdout: '', stderr: '' });
    expect(jobFiles(dir)).toEqual([]);
  });

  it('draws a progress bar on a terminal, and none into a pipe', async () => {
    const dir = await newQueue();
    const file = path.join(tempDir(), 'jobs.jsonl');
    fs.writeFileSync(file, `${Array.from({ length: 3000 }, (_, i) => `{"n":${i}}`).join('\n')}\n`);
    const child = onTerminal(['enqueue', dir, 'bulk', '--jsonl', file], '/dev/null');
    let tty = '';
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (tty += chunk));
    expect(await exited(child)).toBe(0);
    await until(() => tty.includes('100% 3000/3000'), 'the full bar');
    expect(tty).toMatch(/enqueue \[#+\.*\] \d+% \d+\/3000/);
    expect(fs.readdirSync(path.join(dir, 'queue'))).toHaveLength(3000);
    const piped = await dirq(['enqueue', dir, 'bulk', '--jsonl', file]);
    expect(piped.stderr).toBe('');
  });
});

describe('dirq enqueue --timeout and --backoff (the library options, from the shell)', () => {
  it('writes the run limit and the backoff into the job file, in ms', async () => {
    const dir = await newQueue();
    const fixed = await enqueued(dir, 'send', '{}', '--timeout', '1m30s', '--backoff', '30s');
    expect(envelope(path.join(dir, 'queue', fixed))).toMatchObject({
      timeout: 90_000,
      backoff: { type: 'fixed', delay: 30_000 },
    });
    const exponential = await enqueued(dir, 'send', '{}', '--backoff', 'exponential:2s');
    expect(envelope(path.join(dir, 'queue', exponential)).backoff).toEqual({ type: 'exponential', delay: 2000 });
    const spec = '{"type":"exponential","delay":1000,"max":60000,"jitter":0.5}';
    const json = await enqueued(dir, 'send', '{}', '--backoff', spec);
    expect(envelope(path.join(dir, 'queue', json)).backoff).toEqual(JSON.parse(spec));
  });

  it('the claimed job has the --timeout, and an attempt that fails waits the --backoff', async () => {
    const dir = await newQueue();
    const id = await enqueued(dir, 'send', '{}', '--timeout', '50ms', '--backoff', '1h');
    const q = await openQueue(dir);
    const job = (await q.claim())!;
    expect(job.timeout).toBe(50);
    expect(await job.fail(new Error('boom'))).toBe('retrying');
    const [name] = fs.readdirSync(path.join(dir, 'delayed'));
    expect(name).toMatch(new RegExp(`~${id.replace(/\./g, '\\.')}$`));
    const due = Number(name!.split('~')[0]) / 1000;
    expect(due - Date.now()).toBeGreaterThan(59 * 60_000);
    await q.close();
  });

  it('refuses a bad --timeout or --backoff in one line, and enqueues nothing', async () => {
    const dir = await newQueue();
    expectOneLineError(
      await dirq(['enqueue', dir, 'send', '{}', '--timeout', 'soon']),
      2,
      /--timeout must be a duration like/,
    );
    expectOneLineError(await dirq(['enqueue', dir, 'send', '{}', '--timeout', '0']), 2, /timeout/);
    expectOneLineError(
      await dirq(['enqueue', dir, 'send', '{}', '--backoff', 'exponential:x']),
      2,
      /--backoff exponential: must be a duration/,
    );
    expectOneLineError(await dirq(['enqueue', dir, 'send', '{}', '--backoff', '{"type":"linear"}']), 2, /backoff/);
    expectOneLineError(
      await dirq(['enqueue', dir, 'send', '{}', '--backoff', '{oops']),
      2,
      /--backoff is not valid JSON/,
    );
    expect(jobFiles(dir)).toEqual([]);
  });
});
