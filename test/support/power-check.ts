/**
 * What a queue must show after a power cut (test/support/power.ts makes the
 * cut): the writers' ledgers of acknowledged operations against the queue on
 * the repaired copy of the filesystem.
 *
 * The promises checked (README, "Guarantees"): every enqueue that resolved
 * (durable, by any path) is there exactly once, complete and parseable, in
 * one state; nothing is in two states; after the first sweep after the boot
 * nothing is left in active/ (its writers are dead) or in done/ without a
 * proven result (torn.ts); a job whose completion resolved is in done/ with
 * that result, or waiting to run again (at least once, never lost); `dirq
 * fsck` finds nothing its --repair cannot repair, and nothing after it.
 *
 * No vitest here: the full matrix (test/power/matrix.mjs) runs this outside
 * the test runner.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isDeepStrictEqual } from 'node:util';
import { Queue, type State } from '../../dist/index.js';
import { parseJobFile, payloadOf, tornReason, type JobRecord } from '../../dist/store/envelope.js';
import { Layout } from '../../dist/store/layout.js';
import { locate } from '../../dist/store/locate.js';
import { isDoneCheckedNameOf, hostToken } from '../../dist/store/names.js';
import { census, oneFileAtBoth } from './census.js';

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

/** The enqueue paths the writers take (test/fixtures/power-writer.mjs). */
export const PATHS = ['single', 'group', 'syncfs', 'fdatasync'] as const;
export type EnqueuePath = (typeof PATHS)[number];

/** One line of a writer's ledger: an operation that resolved before the cut. */
type LedgerEntry =
  | { op: 'enqueue'; path: EnqueuePath; id: string; type: string; data: unknown }
  | { op: 'complete'; id: string; result: unknown; durable?: 'all' }
  | { op: 'fail'; id: string; outcome: string }
  | { op: 'retry'; id: string };

/** Why a job whose completion was acknowledged is waiting to run again. */
export type RerunCause = 'torn' | 'rescued' | 'unclaimed';

/** What one cut showed. Every count is of acknowledged operations. */
export interface QueueVerdict {
  /** Acknowledged durable enqueues checked, by path. */
  enqueues: Record<EnqueuePath, number>;
  /** Acknowledged enqueues (and completions) not found as the promise says, one line each. */
  lost: string[];
  /** Jobs in more than one state, before or after the sweep (but the half-done renames below). */
  twoStates: string[];
  /**
   * Jobs found after the cut as one file at its claim's name in active/ and at the name its ending gives
   * it: a rename whose new name the filesystem kept and whose removal of the old it did not (btrfs, after
   * acknowledged durable: 'all' endings). One job, not two; the first sweep must leave it where its
   * ending put it (rescue.ts), and the check after the sweep holds it to that like every other job.
   */
  halfRenamed: string[];
  /** Job data found under more than one id: an enqueue that landed twice. */
  enqueuedTwice: string[];
  /**
   * Acknowledged completions: found in done/ with their result, or waiting to run again, by why.
   * `unenqueued`: completions of jobs whose own enqueue had not resolved at the cut, gone with that
   * enqueue: nothing was synced for such a job, so no promise covers it (README, "Power cuts").
   */
  completions: { acked: number; completed: number; rerun: Record<RerunCause, number>; unenqueued: number };
  /** Acknowledged completions of a `durable: 'all'` queue: each must be in done/ with its result, whatever else. */
  durableAll: number;
  /** Acknowledged fails and retries (their job is checked as every job is: present once). */
  fails: number;
  retries: number;
  /** Whether the copy had this boot's torn-check marker, which the check removed (a "reboot"). */
  markerRemoved: boolean;
  /** Kinds of what fsck found after the sweep (all repaired), with how many of each. */
  fsckFound: Record<string, number>;
  /** Everything else that breaks a promise: unparsable files, leftovers in active/, fsck's verdicts. */
  problems: string[];
}

/** Read the writers' ledgers; a last line cut short (a writer killed while writing it) is left out. */
export function readLedgers(files: readonly string[]): LedgerEntry[] {
  const entries: LedgerEntry[] = [];
  for (const file of files) {
    const text = fs.readFileSync(file, 'utf8');
    const complete = text.slice(0, text.lastIndexOf('\n') + 1);
    for (const line of complete.split('\n')) if (line !== '') entries.push(JSON.parse(line) as LedgerEntry);
  }
  return entries;
}

/** Run the built dirq CLI; never rejects, the exit code tells. */
export function dirq(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { maxBuffer: 64 << 20 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
      resolve({ code, stdout, stderr });
    });
  });
}

interface FsckJson {
  unrepaired: number;
  findings: { kind: string; path: string; problem: string; action: string; repaired: boolean }[];
}

/** Kinds of finding that mean the first sweep after the boot left the queue damaged. */
const DAMAGE = new Set(['duplicate', 'unparsable', 'torn', 'settings', 'missing', 'stray']);

/**
 * Check the queue at `dir` (on the mounted copy) against the ledger. The copy
 * is treated as a host after a reboot: the torn-result marker of this boot,
 * if the cut kept it, is removed, so the first sweep reads done/ as the first
 * sweep after a real boot does (the boot id cannot be changed without one).
 */
export async function checkQueue(dir: string, ledger: readonly LedgerEntry[]): Promise<QueueVerdict> {
  const verdict: QueueVerdict = {
    enqueues: { single: 0, group: 0, syncfs: 0, fdatasync: 0 },
    lost: [],
    twoStates: [],
    halfRenamed: [],
    enqueuedTwice: [],
    completions: { acked: 0, completed: 0, rerun: { torn: 0, rescued: 0, unclaimed: 0 }, unenqueued: 0 },
    durableAll: 0,
    fails: 0,
    retries: 0,
    markerRemoved: false,
    fsckFound: {},
    problems: [],
  };
  const enqueued = new Map<string, Extract<LedgerEntry, { op: 'enqueue' }>>();
  const completed = new Map<string, unknown>();
  const completedDurably = new Set<string>();
  for (const entry of ledger) {
    if (entry.op === 'enqueue') {
      enqueued.set(entry.id, entry);
      verdict.enqueues[entry.path]++;
    } else if (entry.op === 'complete') {
      completed.set(entry.id, entry.result);
      if (entry.durable === 'all') completedDurably.add(entry.id);
    } else if (entry.op === 'fail') verdict.fails++;
    else verdict.retries++;
  }

  const before = census(dir);
  for (const [id, states] of before) {
    if (states.length <= 1) continue;
    if (oneFileAtBoth(dir, id, states))
      verdict.halfRenamed.push(`${id} in ${states.join(', ')}: one file at both names`);
    else verdict.twoStates.push(`${id} in ${states.join(', ')} after the cut`);
  }

  const workers = path.join(dir, 'workers');
  for (const name of fs.readdirSync(workers)) {
    if (!isDoneCheckedNameOf(name, hostToken())) continue;
    fs.rmSync(path.join(workers, name));
    verdict.markerRemoved = true;
  }
  // The writers are dead (SIGKILL, same boot), so their claims are taken back at once; a claim whose
  // heartbeat the cut lost is judged by its age, and staleAfter: 1 stands for waiting that out.
  const q = await Queue.open(dir, {
    create: false,
    maintenance: false,
    watch: false,
    staleAfter: 1,
    keepDone: Infinity,
  });
  let report;
  try {
    report = await q.recover();
  } finally {
    await q.close();
  }
  if (!report.swept || report.torn === undefined)
    verdict.problems.push('the first sweep after the boot did not run (the maintenance lock was not taken)');
  const tornIds = new Set(report.torn?.requeued ?? []);
  const rescuedIds = new Set(report.recovered.map((r) => r.id));
  for (const problem of report.torn?.problems ?? []) verdict.problems.push(`torn-result pass: ${problem.message}`);

  const layout = new Layout(dir);
  const after = census(dir);
  const records = new Map<string, { state: State; record: JobRecord; text: string }>();
  const unparsable = new Map<string, string>();
  const byData = new Map<string, string[]>();
  for (const [id, states] of after) {
    if (states.length > 1) verdict.twoStates.push(`${id} in ${states.join(', ')} after the first sweep`);
    const where = locate(layout, id);
    if (where === undefined) continue; // listed a moment ago: nothing else runs on the copy
    const file = layout.file(where.state, where.name);
    const text = fs.readFileSync(file, 'utf8');
    let record: JobRecord;
    try {
      record = parseJobFile(text);
    } catch (error) {
      unparsable.set(id, `${where.state}/${where.name} is unparsable: ${(error as Error).message}`);
      continue;
    }
    records.set(id, { state: where.state, record, text });
    const key = JSON.stringify(payloadOf(record.envelope));
    byData.set(key, [...(byData.get(key) ?? []), id]);
    if (where.state === 'active')
      verdict.problems.push(`active/${where.name} is still claimed after the first sweep, though every writer is dead`);
    if (record.invalid !== undefined)
      verdict.problems.push(`${where.state}/${where.name} was set aside as unrunnable: ${record.invalid}`);
    const torn = where.state === 'done' ? tornReason(text, record) : undefined;
    if (torn !== undefined && !completed.has(id))
      verdict.problems.push(`done/${id} has no proven result after the first sweep after the boot (${torn})`);
  }
  for (const [data, ids] of byData)
    if (ids.length > 1) verdict.enqueuedTwice.push(`data ${data} under ${ids.join(', ')}`);

  for (const [id, entry] of enqueued) {
    const found = records.get(id);
    if (unparsable.has(id)) {
      verdict.lost.push(`${entry.path} enqueue ${id}: ${unparsable.get(id)!}`);
      unparsable.delete(id);
      continue;
    }
    if (found === undefined) {
      const was = before.get(id);
      verdict.lost.push(
        `${entry.path} enqueue ${id}: ${was === undefined ? 'not on the copy' : `in ${was.join(', ')} after the cut, gone after the sweep`}`,
      );
      continue;
    }
    const { envelope } = found.record;
    if (envelope.type !== entry.type || !isDeepStrictEqual(payloadOf(envelope), entry.data)) {
      verdict.lost.push(
        `${entry.path} enqueue ${id}: its file holds ${JSON.stringify(envelope)}, not the job enqueued`,
      );
    }
  }

  for (const [id, result] of completed) {
    verdict.completions.acked++;
    const found = records.get(id);
    if (completedDurably.has(id)) {
      // durable 'all': the line was fdatasynced and done/ fsynced before complete() resolved, so
      // not even an unacknowledged enqueue or a torn tail may undo it
      verdict.durableAll++;
      if (found?.state !== 'done' || tornReason(found.text, found.record) !== undefined)
        verdict.lost.push(
          `completed ${id} (durable 'all'): ${found === undefined ? (unparsable.get(id) ?? 'not found after the sweep') : `in ${found.state}/ after the first sweep`}, not in done/ with its result`,
        );
      else if (!isDeepStrictEqual(found.record.result?.value, result))
        verdict.lost.push(`completed ${id} (durable 'all'): done/ holds ${JSON.stringify(found.record.result)}`);
      else verdict.completions.completed++;
      unparsable.delete(id);
      continue;
    }
    if (found === undefined && !unparsable.has(id) && !enqueued.has(id)) {
      verdict.completions.unenqueued++; // claimed and completed before its enqueue resolved, and the cut took both
    } else if (found === undefined) {
      verdict.lost.push(`completed ${id}: ${unparsable.get(id) ?? 'not found after the sweep'}`);
      unparsable.delete(id);
    } else if (found.state === 'done') {
      const torn = tornReason(found.text, found.record);
      if (torn !== undefined)
        verdict.lost.push(
          `completed ${id}: in done/ without a proven result after the first sweep (${torn}), so it will never run again`,
        );
      else if (!isDeepStrictEqual(found.record.result?.value, result))
        verdict.lost.push(
          `completed ${id}: done/ holds the result ${JSON.stringify(found.record.result)}, not ${JSON.stringify(result)}`,
        );
      else verdict.completions.completed++;
    } else if (found.state === 'queue' || found.state === 'delayed') {
      const cause: RerunCause = tornIds.has(id) ? 'torn' : rescuedIds.has(id) ? 'rescued' : 'unclaimed';
      verdict.completions.rerun[cause]++;
    } else {
      verdict.lost.push(
        `completed ${id}: in ${found.state}/ after the first sweep, neither completed nor waiting to run again`,
      );
    }
  }

  verdict.problems.push(...unparsable.values()); // files of jobs whose enqueue was not acknowledged: none may be visible incomplete
  await checkFsck(dir, verdict);
  return verdict;
}

/** fsck after the sweep: what it finds must be repairable and, once repaired, gone. */
async function checkFsck(dir: string, verdict: QueueVerdict): Promise<void> {
  const found = await fsckJson(verdict, ['fsck', dir, '--json']);
  if (found === undefined) return;
  for (const f of found.findings) {
    verdict.fsckFound[f.kind] = (verdict.fsckFound[f.kind] ?? 0) + 1;
    if (DAMAGE.has(f.kind)) verdict.problems.push(`fsck after the first sweep: ${f.kind} ${f.path}: ${f.problem}`);
  }
  const repaired = await fsckJson(verdict, ['fsck', dir, '--repair', '--json']);
  if (repaired === undefined) return;
  for (const f of repaired.findings.filter((x) => !x.repaired))
    verdict.problems.push(`fsck --repair could not repair ${f.kind} ${f.path}: ${f.problem} (${f.action})`);
  const left = await fsckJson(verdict, ['fsck', dir, '--json']);
  if (left !== undefined && left.findings.length > 0)
    verdict.problems.push(
      `fsck after --repair still finds ${left.findings.map((f) => `${f.kind} ${f.path}`).join(', ')}`,
    );
}

/** Run fsck with --json; exit 3 (damage left) is an answer too. Undefined, with a problem said, when it did not answer. */
async function fsckJson(verdict: QueueVerdict, args: string[]): Promise<FsckJson | undefined> {
  const run = await dirq(args);
  if (run.code === 0 || run.code === 3) {
    try {
      return JSON.parse(run.stdout) as FsckJson;
    } catch {
      // said below
    }
  }
  verdict.problems.push(`dirq ${args.join(' ')} exited ${run.code}: ${run.stderr.trim() || run.stdout.trim()}`);
  return undefined;
}
