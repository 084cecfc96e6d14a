/**
 * SIGKILL torture (I4): worker processes claim and complete hundreds of jobs
 * while one of them is killed at random a dozen times and restarted. In the
 * end every job is in done/, none lost, none completed twice, and every
 * re-run carries a higher attempt number.
 */
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJobFile } from '../dist/store/envelope.js';
import { duplicates } from './support/census.js';
import { exited, spawnNode, tempQueue } from './support/temp.js';
import { lineFrom, until } from './support/wait.js';

const child = new URL('./fixtures/child.mjs', import.meta.url).pathname;
const JOBS = 600;
const WORKERS = 3;
const KILLS = 12;

/** Whether process `pid` is stopped (state T in /proc/PID/stat, after the parenthesised command name). */
function isStopped(pid: number): boolean {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).startsWith('T');
}

/** The jobs `pid` has logged as started and not as done: the ones a kill now interrupts. */
function inFlight(log: string, pid: number): number {
  const open = new Set<string>();
  for (const [kind, id, , by] of fs
    .readFileSync(log, 'utf8')
    .split('\n')
    .map((l) => l.split(' '))) {
    if (Number(by) !== pid) continue;
    if (kind === 'start') open.add(id!);
    else if (kind === 'done') open.delete(id!);
  }
  return open.size;
}

/**
 * SIGSTOP a random worker that, once stopped, has a job in flight (its log
 * lines are written synchronously, so what a stopped worker logged is all it
 * did), and return its index; a worker caught between jobs is resumed and
 * another tried. So a kill interrupts a started job, however the machine's
 * load spaces the workers' turns (a kill between jobs re-runs nothing).
 * Undefined once no job is left to interrupt.
 */
async function freezeOneMidJob(workers: ChildProcess[], log: string, left: () => number): Promise<number | undefined> {
  let victim: number | undefined;
  await until(() => {
    if (left() === 0) return true;
    const index = Math.floor(Math.random() * workers.length);
    const worker = workers[index]!;
    worker.kill('SIGSTOP');
    while (!isStopped(worker.pid!)); // the signal is delivered asynchronously: read the log only once it has taken
    if (inFlight(log, worker.pid!) > 0) {
      victim = index;
      return true;
    }
    worker.kill('SIGCONT');
    return false;
  }, 'a worker stopped in the middle of a job');
  return victim;
}

describe('SIGKILL torture', () => {
  it(`${WORKERS} workers, ${KILLS} kills, ${JOBS} jobs: all done exactly once, re-runs counted`, async () => {
    const { dir, q } = await tempQueue({ maintenance: false });
    const ids = (
      await q.enqueueMany(Array.from({ length: JOBS }, (_, i) => ({ type: 't', data: i, attempts: 100 })))
    ).map((r) => r.id);
    const log = path.join(dir, 'torture.log');
    const env = { ...process.env, DIRQ_SWEEP_INTERVAL: '50' }; // dead pids are noticed at the next sweep
    const start = async (): Promise<ChildProcess> => {
      const worker = spawnNode([child, 'torture', dir, log], { env });
      await lineFrom(worker, 'ready');
      return worker;
    };
    const workers = await Promise.all(Array.from({ length: WORKERS }, start));
    const done = (): number => fs.readdirSync(path.join(dir, 'done')).length;
    for (let kill = 0; kill < KILLS; kill++) {
      const target = Math.min(JOBS - 5, Math.round(((kill + 1) * JOBS) / (KILLS + 2)));
      await until(() => done() >= target, `${target} jobs done`);
      const victim = await freezeOneMidJob(workers, log, () => JOBS - done());
      if (victim === undefined) break; // the others finished every job meanwhile
      workers[victim]!.kill('SIGKILL');
      await exited(workers[victim]!);
      workers[victim] = await start();
    }
    await until(() => done() === JOBS, 'every job done', 60_000);
    for (const worker of workers) worker.kill('SIGKILL');
    await Promise.all(workers.map(exited));

    expect(await q.counts()).toEqual({ queue: 0, delayed: 0, active: 0, done: JOBS, failed: 0, waiting: 0 });
    expect(duplicates(dir)).toEqual([]);
    const lines = fs
      .readFileSync(log, 'utf8')
      .trim()
      .split('\n')
      .map((l) => l.split(' '));
    const completions = lines.filter(([kind]) => kind === 'done').map(([, id]) => id);
    expect(new Set(completions).size).toBe(completions.length); // none completed twice
    const attempts = new Map<string, number[]>();
    for (const [kind, id, attempt] of lines)
      if (kind === 'start') attempts.set(id!, [...(attempts.get(id!) ?? []), Number(attempt)]);
    expect([...attempts.keys()].sort()).toEqual([...ids].sort());
    let reruns = 0;
    for (const [id, seen] of attempts) {
      expect(seen, id).toEqual([...seen].sort((a, b) => a - b));
      expect(new Set(seen).size, id).toBe(seen.length); // every re-run has a higher attempt number
      reruns += seen.length - 1;
      const record = parseJobFile(fs.readFileSync(path.join(dir, 'done', id), 'utf8'));
      expect(record.result?.value, id).toMatchObject({ attempt: seen.at(-1) });
      // each logged re-run followed a counted attempt; a kill between a claim and its log line
      // counts an attempt that the log never saw, so the record may count more, never fewer
      expect(record.attemptsMade, id).toBeGreaterThanOrEqual(seen.length - 1);
      expect(record.attemptsMade + 1, id).toBe(seen.at(-1));
    }
    expect(reruns).toBeGreaterThan(0); // the kills did interrupt jobs
    await q.close();
  });
});
