/**
 * examples/ works as documented: the processor runs in a pool's threads;
 * every cron line of dirq.cron runs with only the PATH the file sets (and
 * stays silent on a healthy queue, as cron needs); and the systemd unit's
 * ExecStart, run the way systemd runs it, works a queue and exits 0 on
 * SIGTERM with no worker left behind. Each runs in a stand-in for the
 * examples' /opt/app: an app with dirqueue installed in node_modules/.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { parseDuration } from '../dist/store/duration.js';
import { closed, enqueued, newQueue, okJson } from './support/cli.js';
import { startPool } from './support/pools.js';
import { exited, tempDir, track } from './support/temp.js';

const ROOT = new URL('../', import.meta.url).pathname;
const EXAMPLES = path.join(ROOT, 'examples');
/** The app directory the examples assume. */
const APP = '/opt/app';
/** A worker's heartbeat in workers/ (FORMAT.md): HOST.PID.NONCE. */
const HEARTBEAT = /^[A-Za-z0-9-]{1,32}\.\d{1,10}\.[a-z0-9]{1,16}$/;

/** A stand-in for /opt/app: this package installed as node_modules/dirqueue, its bin linked as npm links it, and the example processor. */
function app(): string {
  const dir = path.join(tempDir(), 'app');
  fs.mkdirSync(path.join(dir, 'node_modules/.bin'), { recursive: true });
  fs.symlinkSync(ROOT, path.join(dir, 'node_modules/dirqueue'));
  fs.symlinkSync('../dirqueue/dist/cli/main.js', path.join(dir, 'node_modules/.bin/dirq'));
  for (const file of ['processor.js', 'fan-out.js']) fs.copyFileSync(path.join(EXAMPLES, file), path.join(dir, file));
  return dir;
}

/**
 * A PATH as the example sets it, for the stand-in app. The directory of the node running
 * the tests goes last: the examples say node must be on their PATH, and where this
 * machine keeps it is not what is tested.
 */
function examplePath(value: string, appDir: string): string {
  return `${value.replaceAll(APP, appDir)}:${path.dirname(process.execPath)}`;
}

/** The [Section] -> key -> values of a systemd unit file (a key may repeat). */
function parseUnit(text: string): Map<string, Map<string, string[]>> {
  const sections = new Map<string, Map<string, string[]>>();
  let section: Map<string, string[]> | undefined;
  for (const line of text.split('\n')) {
    if (/^\s*([#;]|$)/.test(line)) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header !== null) {
      section = new Map();
      sections.set(header[1]!, section);
      continue;
    }
    const pair = /^([A-Za-z]+)=(.*)$/.exec(line);
    if (pair === null || section === undefined) throw new Error(`not a unit file line: ${line}`);
    section.set(pair[1]!, [...(section.get(pair[1]!) ?? []), pair[2]!]);
  }
  return sections;
}

describe('examples/', () => {
  it('processor.js: checksums a file, echoes, and fails a job of an unknown type with a clear error', async () => {
    const dir = await newQueue();
    const file = path.join(tempDir(), 'data.txt');
    fs.writeFileSync(file, 'hello\n');
    const sum = await enqueued(dir, 'checksum', JSON.stringify({ path: file }));
    const echo = await enqueued(dir, 'echo', '[1,2]');
    const unknown = await enqueued(dir, 'resize', '{}', '--attempts', '1');
    const missing = await enqueued(
      dir,
      'checksum',
      JSON.stringify({ path: path.join(file, 'nope') }),
      '--attempts',
      '1',
    );
    const pool = await startPool(dir, { processor: path.join(EXAMPLES, 'processor.js'), threads: 2 });
    await pool.onIdle();
    await pool.close();
    expect(await okJson(['wait', dir, sum])).toMatchObject({
      result: { path: file, bytes: 6, sha256: '5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03' },
    });
    expect(await okJson(['wait', dir, echo])).toMatchObject({ result: { data: [1, 2], attempt: 1 } });
    expect(await okJson(['show', dir, unknown])).toMatchObject({
      state: 'failed',
      error: { code: 'EINVALIDJOB', message: 'no handler for job type "resize": use one of checksum, echo' },
    });
    expect(await okJson(['show', dir, missing])).toMatchObject({ state: 'failed', error: { code: 'ENOTDIR' } });
  });

  it('dirq.cron: sets PATH, and every line runs with only that PATH, silently while the queue is healthy', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    const appDir = app();
    const textfiles = tempDir();
    const text = fs.readFileSync(path.join(EXAMPLES, 'dirq.cron'), 'utf8');
    const settings = Object.fromEntries([...text.matchAll(/^([A-Z_]+)=(.*)$/gm)].map((m) => [m[1]!, m[2]!]));
    expect(settings.PATH, 'cron runs commands with PATH=/usr/bin:/bin unless the file sets one').toBeDefined();
    expect(settings.PATH!.split(':')).toContain(`${APP}/node_modules/.bin`);
    const lines = text.split('\n').filter((l) => /^[0-9*]/.test(l));
    expect(lines.length).toBe(3);
    expect(lines[0]).toMatch(/^\*\/5 +\* +\* +\* +\* +worker +dirq stats \/var\/spool\/mail-out --sla 5m/);
    // what cron gives a command: a few variables, the file's settings, /bin/sh
    const env = { HOME: tempDir(), LOGNAME: 'worker', SHELL: '/bin/sh', PATH: examplePath(settings.PATH!, appDir) };
    for (const line of lines) {
      const command = line
        .split(/\s+/)
        .slice(6)
        .join(' ')
        .replaceAll('/var/spool/mail-out', dir)
        .replaceAll('/var/lib/node_exporter/textfile', textfiles);
      const { stdout, stderr } = await promisify(execFile)('/bin/sh', ['-c', command], { env });
      expect({ line, stdout, stderr }).toEqual({ line, stdout: '', stderr: '' });
    }
    expect(fs.readFileSync(path.join(textfiles, 'dirqueue-mail-out.prom'), 'utf8')).toContain(
      `dirqueue_jobs{queue="${dir}",state="queue"} 1`,
    );
  });

  it('dirq-work@.service: its keys', () => {
    const unit = parseUnit(fs.readFileSync(path.join(EXAMPLES, 'dirq-work@.service'), 'utf8'));
    const service = unit.get('Service')!;
    const one = (key: string): string => {
      expect(service.get(key), key).toHaveLength(1);
      return service.get(key)![0]!;
    };
    expect(one('WorkingDirectory')).toBe(APP);
    // the app's own dirq, run directly: not a global install under npm's prefix, not npx or a shell that would not pass SIGTERM on
    const [program, ...args] = one('ExecStart').split(/\s+/);
    expect(program).toBe(`${APP}/node_modules/.bin/dirq`);
    expect(args.slice(0, 3)).toEqual(['work', '/var/spool/%i', `${APP}/processor.js`]);
    expect(one('Environment')).toMatch(/^PATH=\//);
    expect(one('Restart')).toBe('on-failure');
    expect(one('KillSignal')).toBe('SIGTERM');
    // SIGTERM to dirq work alone, which drains; SIGKILL to all only once TimeoutStopSec is over
    expect(one('KillMode')).toBe('mixed');
    const closeTimeout = args.indexOf('--close-timeout');
    expect(closeTimeout, 'ExecStart says the close timeout that TimeoutStopSec must cover').toBeGreaterThan(0);
    const stopMs = parseDuration(one('TimeoutStopSec'));
    expect(
      stopMs - parseDuration(args[closeTimeout + 1]!),
      'TimeoutStopSec leaves 10 s or more after the close timeout',
    ).toBeGreaterThanOrEqual(10_000);
  });

  it('dirq-work@.service: ExecStart, run as systemd runs it, works the queue and exits 0 on SIGTERM leaving no worker', async () => {
    const dir = await newQueue();
    const appDir = app();
    const file = path.join(tempDir(), 'data.txt');
    fs.writeFileSync(file, 'hello\n');
    const service = parseUnit(fs.readFileSync(path.join(EXAMPLES, 'dirq-work@.service'), 'utf8')).get('Service')!;
    // %i is the instance (the queue's name under /var/spool); systemd execs the command without a shell, in WorkingDirectory
    const [program, ...args] = service
      .get('ExecStart')![0]!
      .replaceAll('/var/spool/%i', dir)
      .replaceAll(APP, appDir)
      .split(/\s+/);
    const PATH = examplePath(service.get('Environment')![0]!.replace(/^PATH=/, ''), appDir);
    const cwd = service.get('WorkingDirectory')![0]!.replaceAll(APP, appDir);
    const worker = track(spawn(program!, args, { cwd, env: { PATH }, stdio: ['ignore', 'pipe', 'pipe'] }));
    let stderr = '';
    worker.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    worker.stdout!.resume();

    const id = await enqueued(dir, 'checksum', JSON.stringify({ path: file }));
    expect(await okJson(['wait', dir, id, '--timeout', '30s'])).toMatchObject({ result: { path: file, bytes: 6 } });
    const heartbeats = (): string[] => fs.readdirSync(path.join(dir, 'workers')).filter((name) => HEARTBEAT.test(name));
    expect(heartbeats()).toHaveLength(1);

    worker.kill('SIGTERM'); // what systemctl stop sends to the unit's main process (KillMode=mixed)
    expect(await exited(worker)).toBe(0);
    await closed(worker.stderr!);
    expect(stderr).toBe('');
    // no worker left claiming: behind npx, which does not pass SIGTERM on, the pool would live on with its heartbeat
    expect(heartbeats()).toEqual([]);
  });
  it('fan-out.js: a new post fans out to a batch; onSuccess publishes it, onComplete reports; a failure skips the publish', async () => {
    const appDir = app();
    const run = async (dir: string, ...args: string[]): Promise<string> =>
      (await promisify(execFile)(process.execPath, ['fan-out.js', dir, ...args], { cwd: appDir })).stdout;
    const ok = path.join(tempDir(), 'blog');
    expect(await run(ok)).toMatch(/^batch b\d{16}[a-z0-9]{8}: 7 of 7 jobs done, 0 failed; published: true\n$/);
    const failing = path.join(tempDir(), 'blog');
    expect(await run(failing, '--fail', '2')).toMatch(/: 6 of 7 jobs done, 1 failed; published: false\n$/);
    const batchId = (JSON.parse(fs.readFileSync(`${failing}.db/report-1.json`, 'utf8')) as { id: string }).id;
    const batch = await okJson<{ onSuccess: { state: string }; onComplete: { state: string } }>([
      'batch',
      failing,
      batchId,
    ]);
    expect(batch.onSuccess.state).toBe('skipped');
    expect(batch.onComplete.state).toBe('done');
    expect(await okJson(['stats', failing])).toMatchObject({
      counts: { queue: 0, waiting: 0, active: 0, done: 8, failed: 1 }, // new-post, 6 of the batch, the report; the e-mail
    });
  });
});
