/** dirq workers (item 16): heartbeats and claims read together, against a real worker process. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CLI, dirq, enqueued, newQueue, ok, okJson } from './support/cli.js';
import { backdate } from './support/fake.js';
import { exited, spawnNode, tempDir } from './support/temp.js';
import { until } from './support/wait.js';

interface WorkersJson {
  schema: number;
  staleAfter: number;
  workers: {
    owner: string;
    host: string;
    pid: number;
    started: string | null;
    status: string;
    lastBeat: string | null;
    jobs: {
      id: string;
      claim: string;
      claimedAt: string | null;
      runningMs: number | null;
      attempt: number;
      lastProgress: { at: string; value: unknown } | null;
    }[];
  }[];
}

/** The poll project runs dirq work poll-only (as on NFS), polling often enough for tests. */
const MODE = process.env.DIRQ_TEST_WATCH === '0' ? ['--poll', '50ms'] : [];

describe('dirq workers', () => {
  it('shows a live worker with the jobs it holds and their progress, then marks it dead once killed', async () => {
    const dir = await newQueue();
    const processor = path.join(tempDir(), 'hang.mjs');
    fs.writeFileSync(
      processor,
      "export default async (job) => { await job.progress({ step: 1 }); await new Promise((resolve) => job.signal.addEventListener('abort', resolve)); };\n",
    );
    const ids = [await enqueued(dir, 'email', '{}'), await enqueued(dir, 'email', '{}')].sort();
    const worker = spawnNode([CLI, 'work', dir, processor, '--concurrency', '2', '--quiet', ...MODE]);
    const active = (): string[] => fs.readdirSync(path.join(dir, 'active'));
    await until(
      () =>
        active().length === 2 &&
        active().every((n) => fs.readFileSync(path.join(dir, 'active', n), 'utf8').includes('"progress"')),
      'both jobs to report progress',
    );

    const live = await okJson<WorkersJson>(['workers', dir]);
    expect(live).toMatchObject({ schema: 1, staleAfter: 30_000 });
    expect(live.workers).toHaveLength(1);
    const [w] = live.workers;
    expect(w).toMatchObject({
      pid: worker.pid,
      status: 'live',
      started: expect.stringMatching(/Z$/),
      lastBeat: expect.stringMatching(/Z$/),
    });
    expect(w!.jobs.map((j) => j.id).sort()).toEqual(ids);
    for (const job of w!.jobs) {
      expect(job).toMatchObject({
        claim: expect.stringMatching(new RegExp(`^${w!.owner.replace(/\./g, '\\.')}\\.`)),
        attempt: 1,
        lastProgress: { value: { step: 1 } },
      });
      expect(job.runningMs).toBeGreaterThanOrEqual(0);
      expect(job.runningMs).toBeLessThan(60_000);
    }
    const lines = (await ok(['workers', dir])).split('\n');
    expect(lines[0]).toMatch(/^WORKER\s+HOST\s+PID\s+UP\s+STATUS\s+BEAT\s+JOBS$/);
    expect(lines[1]).toMatch(
      new RegExp(
        `^${w!.owner.replace(/\./g, '\\.')}\\s+\\S+\\s+${worker.pid}\\s+\\d+(ms|s)\\s+live\\s+\\d+(ms|s) ago\\s+2$`,
      ),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^JOB\s+WORKER\s+RUNNING\s+ATTEMPT\s+LAST PROGRESS$/));
    expect(lines.filter((l) => /\s1\s+\d+(ms|s) ago: \{"step":1\}$/.test(l))).toHaveLength(2);

    worker.kill('SIGKILL');
    await exited(worker);
    const after = await okJson<WorkersJson>(['workers', dir]);
    expect(after.workers.map((x) => [x.owner, x.status, x.jobs.length])).toEqual([[w!.owner, 'dead', 2]]);
  });

  it('marks a silent worker stale and lists claims whose holder has no heartbeat', async () => {
    const dir = await newQueue();
    const elsewhere = 'otherhost.4242.abcdef';
    fs.writeFileSync(
      path.join(dir, 'workers', elsewhere),
      JSON.stringify({
        host: 'otherhost',
        bootId: 'b',
        pid: 4242,
        startTime: '1',
        started: '2026-01-01T00:00:00.000Z',
      }),
    );
    backdate(path.join(dir, 'workers', elsewhere), 120_000);
    const id = await enqueued(dir, 'email', '{}');
    fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@byhand.7.zzz.0`));
    const { workers } = await okJson<WorkersJson>(['workers', dir, '--stale-after', '1m']);
    expect(workers.map((x) => [x.owner, x.host, x.pid, x.status, x.jobs.map((j) => j.id)])).toEqual([
      [elsewhere, 'otherhost', 4242, 'stale', []],
      ['byhand.7.zzz', 'byhand', 7, 'no-heartbeat', [id]],
    ]);
    expect((await okJson<WorkersJson>(['workers', dir, '--stale-after', '1h'])).workers[0]!.status).toBe('live');
  });

  it('says so when there are no workers', async () => {
    const dir = await newQueue();
    expect(await dirq(['workers', dir])).toEqual({
      code: 0,
      stdout: '',
      stderr: 'No workers: no heartbeat in workers/ and no claim in active/.\n',
    });
  });
});
