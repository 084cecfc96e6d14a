/**
 * The soak (test/soak/run.js) for 60 seconds: seven processes use one queue
 * in every way at once while a chaos loop SIGKILLs and SIGSTOPs them, and the
 * ledger of what each acknowledged is checked against the queue. Then the
 * checker itself (test/soak/check.js), on a queue made by hand and a ledger
 * written by hand: it passes the true ledger and fails each doctored one.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { claimByDeadWorker } from './support/fake.js';
import { exited, openQueue, spawnNode, tempDir } from './support/temp.js';

const RUN = fileURLToPath(new URL('./soak/run.js', import.meta.url));
const CHECK = fileURLToPath(new URL('./soak/check.js', import.meta.url));

interface Problem {
  kind: string;
  detail: string;
}

interface Verdict {
  code: number | NodeJS.Signals;
  ok: boolean;
  problems: Problem[];
  summary: {
    kills: number;
    stops: number;
    enqueued: number;
    completed: number;
    lost: number;
    duplicates: { kill: number; freeze: number; stall: number; unexplained: number };
  };
}

/** Run a script that prints its verdict as one JSON line (--json). */
async function verdictOf(args: string[]): Promise<Verdict> {
  const child = spawnNode([...args, '--json']);
  let stdout = '';
  let stderr = '';
  child.stdout!.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
  const code = await exited(child);
  const line = stdout.trim().split('\n').at(-1);
  if (line === undefined || !line.startsWith('{'))
    throw new Error(`${path.basename(args[0]!)} exited ${code} without a verdict: ${stderr}`);
  return { code, ...(JSON.parse(line) as Omit<Verdict, 'code'>) };
}

describe('soak', () => {
  it(
    '60 s of every operation under SIGKILL and SIGSTOP: nothing lost, nothing stuck, every re-run explained, counters within bounds',
    { timeout: 240_000 },
    async () => {
      const verdict = await verdictOf([RUN, '--minutes', '1']);
      expect(verdict.problems).toEqual([]);
      expect(verdict.code).toBe(0);
      const { summary } = verdict;
      console.log(`soak, 60 s: ${JSON.stringify(summary)}`);
      expect(summary.lost).toBe(0);
      // the chaos did its part: processes were killed and stopped, and their claims recovered
      expect(summary.kills).toBeGreaterThan(0);
      expect(summary.stops).toBeGreaterThan(0);
      expect(summary.duplicates.kill + summary.duplicates.freeze).toBeGreaterThan(0);
      expect(summary.completed).toBeGreaterThan(0);
    },
  );
});

describe('the soak checker', () => {
  const note = (entries: object[]): string => entries.map((e) => `${JSON.stringify(e)}\n`).join('');

  /**
   * A queue and the true ledger of what happened to it: three jobs enqueued
   * and completed, one of them first claimed by a worker that was killed
   * (its claim taken back by a sweep), and a fourth removed by the ledger's rm
   * before it ran.
   */
  async function history(): Promise<{
    dir: string;
    ledger: string;
    lines: Record<string, object[]>;
    write: (lines: Record<string, object[]>) => void;
  }> {
    const root = tempDir();
    const dir = path.join(root, 'queue');
    const ledger = path.join(root, 'ledger');
    fs.mkdirSync(ledger);
    const q = await openQueue(dir);
    const t = Date.now();
    const pid = process.pid;
    const refs = [
      await q.enqueue('soak.a', { ms: 0 }),
      await q.enqueue('soak.b', { ms: 0 }),
      await q.enqueue('soak.a', { ms: 0 }),
      await q.enqueue('soak.c', { ms: 0 }),
    ];
    const enq = refs.map((ref) => ({ t, pid, ev: 'enq', how: 'one', refs: [{ id: ref.id, dup: false }] }));
    const worker: object[] = [];
    claimByDeadWorker(dir, refs[0]!.id); // a dead pid's claim, as a SIGKILL leaves it
    const killed = { t, pid: 1, ev: 'kill', target: pid, role: 'worker' };
    await q.recover();
    const types = ['soak.a', 'soak.b'];
    for (let job = await q.claim({ types }); job !== undefined; job = await q.claim({ types })) {
      worker.push({ t, pid, ev: 'claim', id: job.id, claim: job.claim, attempt: job.attempt });
      await job.complete({ claim: job.claim });
      worker.push({ t, pid, ev: 'done', id: job.id, claim: job.claim, attempt: job.attempt });
    }
    const removed = [
      { t, pid, ev: 'rm-begin', id: refs[3]!.id },
      { t, pid, ev: 'rm', id: refs[3]!.id, state: await q.remove(refs[3]!.id) },
    ];
    await q.close();
    const lines = {
      'chaos.jsonl': [killed],
      'producer-0.jsonl': enq,
      'worker-1.jsonl': worker,
      'admin-2.jsonl': removed,
    };
    const write = (doctored: Record<string, object[]>): void => {
      for (const name of fs.readdirSync(ledger)) fs.rmSync(path.join(ledger, name));
      for (const [name, entries] of Object.entries(doctored)) fs.writeFileSync(path.join(ledger, name), note(entries));
    };
    write(lines);
    return { dir, ledger, lines, write };
  }

  const kinds = (verdict: Verdict): string[] => [...new Set(verdict.problems.map((p) => p.kind))].sort();

  it('passes the true ledger, counting the killed worker’s re-run as a duplicate caused by a kill', async () => {
    const { dir, ledger } = await history();
    const verdict = await verdictOf([CHECK, dir, ledger]);
    expect(verdict.problems).toEqual([]);
    expect(verdict.code).toBe(0);
    expect(verdict.summary).toMatchObject({
      enqueued: 4,
      completed: 3,
      lost: 0,
      duplicates: { kill: 1, freeze: 0, unexplained: 0 },
    });
  });

  it('fails a ledger that acknowledged a job the queue no longer has (its rm not in the ledger)', async () => {
    const { dir, ledger, lines, write } = await history();
    write({ ...lines, 'admin-2.jsonl': [] });
    const verdict = await verdictOf([CHECK, dir, ledger]);
    expect(verdict.code).toBe(1);
    expect(kinds(verdict)).toContain('lost');
    expect(verdict.summary.lost).toBe(1);
  });

  it('explains a re-run by the kill of its process when the pid is reused and killed again later', async () => {
    const { dir, ledger, lines, write } = await history();
    const [killed] = lines['chaos.jsonl'] as { t: number }[];
    write({ ...lines, 'chaos.jsonl': [killed!, { ...killed!, t: killed!.t + 600_000, role: 'producer' }] });
    const verdict = await verdictOf([CHECK, dir, ledger]);
    expect(verdict.problems).toEqual([]);
    expect(verdict.summary.duplicates).toMatchObject({ kill: 1, unexplained: 0 });
  });

  it('fails a re-run that no kill or freeze explains', async () => {
    const { dir, ledger, lines, write } = await history();
    write({ ...lines, 'chaos.jsonl': [] });
    const verdict = await verdictOf([CHECK, dir, ledger]);
    expect(verdict.code).toBe(1);
    expect(kinds(verdict)).toEqual(['duplicate']);
    expect(verdict.summary.duplicates).toEqual({ kill: 0, freeze: 0, stall: 0, unexplained: 1 });
  });

  it('fails a job completed twice, and a completion whose claim is not the one in done/', async () => {
    const { dir, ledger, lines, write } = await history();
    const worker = lines['worker-1.jsonl'] as { ev: string; claim: string }[];
    const done = worker.find((e) => e.ev === 'done')!;
    write({ ...lines, 'worker-1.jsonl': [...worker, done] });
    expect(kinds(await verdictOf([CHECK, dir, ledger]))).toContain('completed-twice');
    write({ ...lines, 'worker-1.jsonl': worker.map((e) => (e === done ? { ...e, claim: `${e.claim}0` } : e)) });
    expect(kinds(await verdictOf([CHECK, dir, ledger]))).toEqual(['mismatch']);
  });

  it('fails a queue with a job left in queue/ or a file left in tmp/', async () => {
    const { dir, ledger } = await history();
    const q = await openQueue(dir);
    const left = await q.enqueue('soak.a', { ms: 0 });
    await q.close();
    fs.writeFileSync(path.join(dir, 'tmp', `${left.id}.elsewhere.1.x.tmp`), '');
    const verdict = await verdictOf([CHECK, dir, ledger]);
    expect(verdict.code).toBe(1);
    expect(kinds(verdict)).toEqual(expect.arrayContaining(['stuck', 'tmp']));
  });
});
