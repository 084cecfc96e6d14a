/**
 * examples/ works as documented: the processor runs in a pool's threads,
 * and every cron line of dirq.cron runs (with the paths swapped for a temp
 * queue) and stays silent on a healthy queue, as cron needs.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { CLI, enqueued, newQueue, okJson } from './support/cli.js';
import { startPool } from './support/pools.js';
import { tempDir } from './support/temp.js';

const EXAMPLES = new URL('../examples/', import.meta.url).pathname;

describe('examples/', () => {
  it('processor.js: checksums a file, echoes, and fails a job of an unknown type with a clear error', async () => {
    const dir = await newQueue();
    const file = path.join(tempDir(), 'data.txt');
    fs.writeFileSync(file, 'hello\n');
    const sum = await enqueued(dir, 'checksum', JSON.stringify({ path: file }));
    const echo = await enqueued(dir, 'echo', '[1,2]');
    const unknown = await enqueued(dir, 'resize', '{}', '--attempts', '1');
    const missing = await enqueued(dir, 'checksum', JSON.stringify({ path: path.join(file, 'nope') }), '--attempts', '1');
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

  it('dirq.cron: every line runs against a queue, silently while it is healthy', async () => {
    const dir = await newQueue();
    await enqueued(dir, 'email', '{}');
    const textfiles = tempDir();
    const lines = fs
      .readFileSync(path.join(EXAMPLES, 'dirq.cron'), 'utf8')
      .split('\n')
      .filter((l) => /^[0-9*]/.test(l));
    expect(lines.length).toBe(3);
    expect(lines[0]).toMatch(/^\*\/5 +\* +\* +\* +\* +worker +dirq stats \/var\/spool\/mail-out --sla 5m/);
    for (const line of lines) {
      const command = line
        .split(/\s+/)
        .slice(6)
        .join(' ')
        .replaceAll('/var/spool/mail-out', dir)
        .replaceAll('/var/lib/node_exporter/textfile', textfiles)
        .replace(/^dirq /, `${process.execPath} ${CLI} `);
      const { stdout, stderr } = await promisify(execFile)('sh', ['-c', command]);
      expect({ line, stdout, stderr }).toEqual({ line, stdout: '', stderr: '' });
    }
    expect(fs.readFileSync(path.join(textfiles, 'dirqueue-mail-out.prom'), 'utf8')).toContain(`dirqueue_jobs{queue="${dir}",state="queue"} 1`);
  });

  it('dirq-work@.service runs dirq work with 4 threads, restarts on failure and stops with SIGTERM', () => {
    const unit = fs.readFileSync(path.join(EXAMPLES, 'dirq-work@.service'), 'utf8');
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/dirq work \/var\/spool\/%i \/opt\/app\/processor\.js --threads 4$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(unit).toMatch(/^KillSignal=SIGTERM$/m);
    expect(unit).toMatch(/^TimeoutStopSec=\d+s$/m);
  });
});
