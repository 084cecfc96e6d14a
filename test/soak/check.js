/**
 * The soak's verdict: the queue directory after the run, against the
 * ledger (ledger.js) of every process and of the chaos loop.
 *
 *   node test/soak/check.js DIR LEDGER_DIR [--json]
 *
 * exits 1 and names each problem when the check fails. What it checks, once
 * every process has exited and the leftovers were recovered and drained:
 * - lost: every acknowledged enqueue is in done/ or failed/, unless the
 *   ledger's own rm or purge may have deleted it;
 * - nothing waits or runs any more (queue/, delayed/, active/ are empty),
 *   tmp/ is empty, no job is in two states, and fsck finds nothing;
 * - done/ holds each completion the ledger acknowledged, with the same
 *   claim (Queue API) or run token (Pool), at most one per job, and its
 *   result's attempt counts every earlier attempt; a completion the ledger
 *   never saw is one whose process was killed before it could note it;
 * - failed/ holds only jobs the workload failed, or whose attempts a
 *   recovery used up;
 * - duplicates: every claim taken back from its holder (a `revoked` event in
 *   the job's file, or a recovery a process noted, for jobs deleted since)
 *   is a run cut short that runs again; each must be explained: reason
 *   crashed by a SIGKILL of the claim's process before it (cause kill),
 *   reason stalled by a SIGSTOP of it at that time (cause freeze) or by a
 *   gap its own event loop noted (cause stall: a loaded machine, not the
 *   chaos); a job the ledger saw run more often than its file and the
 *   ledger end it would be a job run twice at once;
 * - a claim lost by its holder (ECOMPROMISED) follows a stop or stall of it;
 * - tmp/ files left at the end were written by killed processes;
 * - no process exited by itself, no pool reported an error, no dirq
 *   command failed, and fsck --repair during the run found only what
 *   crashes leave (orphaned temp files, stale heartbeats and keys);
 * - counters: the lifetime totals (Queue.totals and `dirq metrics`, which
 *   must agree) lie between what the ledger proves, less what a SIGKILLed
 *   process may not have written yet (its last FLUSH_MS, store/totals.ts,
 *   plus a slack and any time it was stopped), and what the files allow.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Queue } from '../../dist/index.js';
import { parseJobFile } from '../../dist/store/envelope.js';
import { STATES } from '../../dist/store/layout.js';
import { idOfName } from '../../dist/store/locate.js';
import { parseClaim, parseOwner, parseTmpName } from '../../dist/store/names.js';
import { FLUSH_MS, COUNTERS } from '../../dist/store/totals.js';
import { fsck } from '../../dist/maintenance/fsck.js';
import { readLedger } from './ledger.js';

/** @typedef {import('../../dist/index.js').State} State */
/** @typedef {import('../../dist/index.js').Counter} Counter */
/** @typedef {import('../../dist/index.js').Finding} Finding */
/** @typedef {Pick<Finding, 'kind' | 'path' | 'problem' | 'repaired'>} NotedFinding */

/**
 * What each kind of ledger line carries besides t, pid and ev: the lines
 * run.js (the chaos loop and the drain), actor.js and processor.js note.
 * @typedef {{
 *   spawn: { target: number, role: string, n: number },
 *   exit: { target?: number, role: string, code?: number | null, signal?: string | null },
 *   crash: { target: number, role: string, code: number | null, signal: string | null, stderr: string },
 *   kill: { target: number, role: string },
 *   stop: { target: number, role: string, ms: number },
 *   cont: { target: number, role: string },
 *   hung: { target: number, role: string, ms: number },
 *   start: { role: string },
 *   stall: { ms: number },
 *   enq: { how: 'one' | 'many' | 'cli', refs: { id: string, dup: boolean }[] },
 *   claim: { id: string, claim: string, attempt: number },
 *   run: { id: string, attempt: number, run: string },
 *   done: { id: string, claim?: string, run?: string, attempt: number },
 *   fail: { id: string, claim?: string, attempt: number, to: 'retrying' | 'failed' },
 *   release: { id: string, claim: string },
 *   lost: { id: string, claim?: string, attempt: number },
 *   recovered: { id: string, claim: string, reason: string, to: 'queue' | 'failed', by?: 'cli' },
 *   warning: { code?: string, message: string },
 *   'pool-error': { code?: string, message: string },
 *   'retry-begin': { id: string },
 *   retry: { id: string, ok?: boolean, code?: string },
 *   'rm-begin': { id: string },
 *   rm: { id: string, state?: State, code?: string },
 *   'purge-begin': { state: 'done' | 'failed', ids: string[] },
 *   purge: { state: 'done' | 'failed', removed: number },
 *   fsck: { code?: number, findings: NotedFinding[] },
 *   'cli-error': { verb: string, code: number, stderr: string },
 *   'cli-killed': { verb: string },
 *   'drain-timeout': { counts: import('../../dist/index.js').Counts },
 *   'tmp-orphans': { names: string[] },
 * }} Noted
 */
/**
 * A ledger line of kind `E` (every kind when left out).
 * @template {keyof Noted} [E=keyof Noted]
 * @typedef {E extends keyof Noted ? { t: number, pid: number, ev: E, file: string } & Noted[E] : never} Entry
 */
/** @typedef {{ kind: string, detail: string }} Problem */
/** @typedef {{ t: number, pid: number, how?: string, by?: string }} Countable a noted event a counter counts */
/** @typedef {{ id: string, reason: string, t: number }} TakenBack a claim taken back, from a job file's revoked event or the ledger */
/** @typedef {{ proven: Countable[], upper: number }} CounterRow what the ledger proves of a counter, and what the files allow */
/** @typedef {{ total: number, ledger: number, lower: number, upper: number }} CounterCheck */
/**
 * @typedef {object} Summary
 * @property {number} processes
 * @property {number} kills
 * @property {number} commandKills
 * @property {number} stops
 * @property {number} enqueued
 * @property {number} keyDuplicates
 * @property {number} completed
 * @property {number} completedUnacked
 * @property {number} failedByWorkload
 * @property {number} failedByRecovery
 * @property {number} retried
 * @property {number} removed
 * @property {number} purged
 * @property {number} recovered
 * @property {{ kill: number, freeze: number, stall: number, unexplained: number }} duplicates
 * @property {number} duplicateJobs
 * @property {number} lostClaims
 * @property {Record<string, number>} warnings
 * @property {number} tmpOrphans
 * @property {number} lost
 * @property {Record<string, CounterCheck>} counters
 * @property {number} [seconds] added by run.js, as are phases and finalRepairs
 * @property {Record<string, number>} [phases]
 * @property {string[]} [finalRepairs]
 */
/** @typedef {{ ok: boolean, problems: Problem[], summary: Summary, dir?: string }} CheckResult */

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
export const PLANNED = 'soak: planned failure';
/** fsck findings a crash leaves behind by design (a dead writer's temp file, a heartbeat or key of a killed process); any other kind is damage. */
const CRASH_LEFTOVERS = new Set(['orphan-tmp', 'stale-helper']);

/**
 * Check the queue in `dir` against the ledger in `ledgerDir`; resolves with { ok, problems, summary }.
 * @param {string} dir
 * @param {string} ledgerDir
 * @param {{ slackMs?: number }} [options]
 * @returns {Promise<CheckResult>}
 */
export async function check(dir, ledgerDir, { slackMs = 2000 } = {}) {
  const { entries: lines, torn } = readLedger(ledgerDir);
  // the ledger's lines as the soak's own processes wrote them
  const entries = /** @type {Entry[]} */ (lines);
  /** @type {Problem[]} */
  const problems = [];
  /**
   * @param {string} kind
   * @param {string} detail
   */
  const problem = (kind, detail) => problems.push({ kind, detail });
  /**
   * @template {keyof Noted} E
   * @param {E} ev
   * @returns {Entry<E>[]}
   */
  const by = (ev) => /** @type {Entry<E>[]} */ (entries.filter((e) => e.ev === ev));

  // the chaos loop's ledger: which processes were killed, and which stopped for how long
  // pids are reused in a long run: a pid's kills and stops are lists, and each question names a time
  // (asked about undefined pids too: a claim or a tmp/ name whose pid did not parse)
  /** @type {Map<number | undefined, number[]>} */
  const kills = new Map();
  /** @type {Map<number | undefined, number>} */
  const stoppedMs = new Map();
  /** @type {Map<number | undefined, Entry<'stop'>[]>} */
  const stops = new Map();
  for (const e of by('kill')) kills.set(e.target, [...(kills.get(e.target) ?? []), e.t]);
  /** @type {(pid: number | undefined, t: number) => boolean} */
  const killedBy = (pid, t) => (kills.get(pid) ?? []).some((k) => k <= t);
  /**
   * When the process that noted something at `t` as `pid` was killed, if it was: its pid's first kill after `t`.
   * @type {(pid: number, t: number) => number | undefined}
   */
  const killOf = (pid, t) => (kills.get(pid) ?? []).find((k) => k >= t);
  for (const e of by('stop')) {
    stoppedMs.set(e.target, (stoppedMs.get(e.target) ?? 0) + e.ms);
    stops.set(e.target, [...(stops.get(e.target) ?? []), e]);
  }
  /**
   * Whether process `pid` was stopped at time `t` (or had just been woken: its first heartbeat after SIGCONT comes a beat later).
   * @type {(pid: number | undefined, t: number) => boolean}
   */
  const frozenAt = (pid, t) => (stops.get(pid) ?? []).some((s) => s.t <= t && t <= s.t + s.ms + slackMs);
  // gaps a process noticed in its own event loop (actor.js), noted when it ran again
  /** @type {Map<number | undefined, Entry<'stall'>[]>} */
  const stalls = new Map();
  for (const e of by('stall')) stalls.set(e.pid, [...(stalls.get(e.pid) ?? []), e]);
  /** @type {(pid: number | undefined, t: number) => boolean} */
  const stalledAt = (pid, t) => (stalls.get(pid) ?? []).some((s) => s.t - s.ms - slackMs <= t && t <= s.t + slackMs);
  for (const e of by('crash'))
    problem(
      'crash',
      `${e.role} process ${e.target} exited by itself (${String(e.code ?? e.signal)}): ${e.stderr ?? ''}`,
    );
  for (const e of by('hung'))
    problem('hung', `${e.role} process ${e.target} did not exit within ${e.ms} ms of SIGTERM`);
  for (const e of by('pool-error'))
    problem('pool', `a pool in process ${e.pid} reported ${String(e.code)}: ${e.message}`);
  for (const e of by('cli-error')) problem('cli', `dirq ${e.verb} exited ${e.code}: ${e.stderr}`);
  for (const e of by('drain-timeout')) problem('stuck', `the drain ended with jobs left: ${JSON.stringify(e.counts)}`);
  if (torn > 0) problem('ledger', `${torn} ledger line(s) did not parse`);

  // where every job is now
  /** @type {Map<string, State[]>} */
  const where = new Map();
  for (const state of STATES) {
    for (const name of fs.readdirSync(path.join(dir, state))) {
      const id = idOfName(state, name);
      if (id === undefined) {
        problem('stray', `${state}/${name} is not a job name`);
        continue;
      }
      where.set(id, [...(where.get(id) ?? []), state]);
      if (state === 'queue' || state === 'delayed' || state === 'active')
        problem('stuck', `${state}/${name} is left after the drain`);
    }
  }
  for (const [id, states] of where) if (states.length > 1) problem('two-states', `${id} is in ${states.join(' and ')}`);
  for (const name of fs.readdirSync(path.join(dir, 'tmp'))) problem('tmp', `tmp/${name} is left after recovery`);
  // files killed processes left in tmp/: a producer has no heartbeat, and helper files name no job, so sweeps wait out tmpMaxAge before deleting them (run.js drain)
  let tmpOrphans = 0;
  for (const e of by('tmp-orphans')) {
    for (const name of e.names) {
      tmpOrphans++;
      const pid = writerOf(name);
      if (!killedBy(pid, Infinity))
        problem('tmp', `tmp/${name} was left by process ${String(pid)}, which was not killed`);
    }
  }
  const report = await fsck(dir);
  for (const f of report.findings) problem('fsck', `${f.kind} ${f.path}: ${f.problem}`);
  for (const e of by('fsck')) {
    for (const f of e.findings)
      if (!CRASH_LEFTOVERS.has(f.kind))
        problem('fsck', `fsck --repair during the run (process ${e.pid}) found ${f.kind} ${f.path}: ${f.problem}`);
  }

  // what the ledger may have deleted itself
  const removable = new Set(by('rm-begin').map((e) => e.id));
  for (const e of by('purge-begin')) for (const id of e.ids) removable.add(id);
  /** @type {{ done: Set<string>, failed: Set<string> }} */
  const purgedFrom = { done: new Set(), failed: new Set() };
  for (const e of by('purge-begin')) for (const id of e.ids) purgedFrom[e.state].add(id);

  // acknowledged enqueues
  /** @type {Map<string, Entry<'enq'>>} */
  const acked = new Map();
  let keyDuplicates = 0;
  for (const e of by('enq')) {
    for (const r of e.refs) {
      if (r.dup) keyDuplicates++;
      else acked.set(r.id, e);
    }
  }
  const lost = [...acked.keys()].filter((id) => !where.has(id) && !removable.has(id));
  for (const id of lost) {
    const e = /** @type {Entry<'enq'>} */ (acked.get(id)); // lost is some of acked's keys
    problem('lost', `${id}: enqueue acknowledged (${e.how}, process ${e.pid}), now in no state and never removed`);
  }

  /** @type {Map<string, Entry<'done'>[]>} */
  const completions = new Map();
  for (const e of by('done')) completions.set(e.id, [...(completions.get(e.id) ?? []), e]);
  /** @type {Map<string, number>} */
  const runs = new Map();
  for (const e of [...by('claim'), ...by('run')]) runs.set(e.id, (runs.get(e.id) ?? 0) + 1);
  /** @type {Map<string, number>} */
  const releases = new Map();
  for (const e of by('release')) releases.set(e.id, (releases.get(e.id) ?? 0) + 1);

  // every claim taken back, from the files and (for jobs an rm or purge deleted since) the ledger's recoveries
  /** @type {Map<string, TakenBack>} */
  const takenBack = new Map();
  for (const e of by('recovered')) takenBack.set(e.claim, { id: e.id, reason: e.reason, t: e.t });
  let unackedCompletions = 0;
  let failedByWorkload = 0;
  let failedByRecovery = 0;
  const files = { retried: 0, failedEntries: 0 };
  for (const [id, states] of where) {
    const state = states[0];
    if (state !== 'done' && state !== 'failed') continue;
    let record;
    try {
      record = parseJobFile(fs.readFileSync(path.join(dir, state, id), 'utf8'));
    } catch (error) {
      problem('unreadable', `${state}/${id}: ${/** @type {Error} */ (error).message}`);
      continue;
    }
    const revoked = record.events.filter((e) => e.event === 'revoked');
    const voided = new Set(revoked.map((e) => e.claim));
    const counted = record.events.filter((e) => {
      const claim = 'claim' in e ? e.claim : undefined; // invalid, retry and torn events name no claim
      return claim === undefined || !voided.has(claim) || e.event === 'revoked';
    });
    for (const e of revoked) takenBack.set(e.claim, { id, reason: e.reason, t: Date.parse(e.at) });
    files.retried += counted.filter((e) => e.event === 'error' && e.retryAt !== undefined).length;
    files.failedEntries += record.events.filter((e) => e.event === 'retry').length + (state === 'failed' ? 1 : 0);
    const endings =
      record.events.filter((e) => e.event === 'result' || e.event === 'error' || e.event === 'revoked').length +
      (releases.get(id) ?? 0);
    if ((runs.get(id) ?? 0) > endings)
      problem(
        'double-run',
        `${id}: the ledger saw ${runs.get(id) ?? 0} runs, its file and the ledger end only ${endings}`,
      );
    const data = /** @type {{ fail?: boolean } | undefined} */ (record.envelope.data); // the workload's (actor.js)

    if (state === 'done') {
      const result = counted.filter((e) => e.event === 'result').at(-1);
      if (record.lastOutcome !== 'result' || result === undefined) {
        problem('torn', `done/${id} has no result`);
        continue;
      }
      if (data?.fail) problem('wrong-outcome', `done/${id} completed, but the workload fails it every time`);
      if (result.attempt !== record.attemptsMade + 1)
        problem(
          'attempts',
          `done/${id}: completed as attempt ${result.attempt} after ${record.attemptsMade} counted attempts`,
        );
      const noted = completions.get(id) ?? [];
      if (noted.length === 0) {
        unackedCompletions++;
        const pid = parseClaim(result.claim)?.pid;
        if (!killedBy(pid, Infinity))
          problem(
            'unacked',
            `done/${id} was completed by process ${String(pid)}, which was not killed, yet the ledger has no completion`,
          );
      } else {
        const c = /** @type {Entry<'done'>} */ (noted[0]);
        const run = /** @type {{ run?: string } | undefined} */ (record.result?.value)?.run; // a Pool's (processor.js)
        const same = c.claim !== undefined ? c.claim === result.claim : c.run === run;
        if (!same)
          problem(
            'mismatch',
            `done/${id}: the ledger's completion (${c.claim ?? String(c.run)}) is not the result in the file (${result.claim})`,
          );
      }
    } else if (record.lastOutcome === 'error' && record.errors.at(-1)?.message === PLANNED) {
      failedByWorkload++;
      if (!data?.fail) problem('wrong-outcome', `failed/${id} failed, but the workload never fails it`);
    } else if (record.lastOutcome === 'revoked') {
      failedByRecovery++;
    } else {
      problem('wrong-outcome', `failed/${id} is there for another reason: ${JSON.stringify(record.events.at(-1))}`);
    }
  }
  const duplicates = { kill: 0, freeze: 0, stall: 0, unexplained: 0 };
  const dupJobs = new Set();
  for (const [claim, { id, reason, t }] of takenBack) {
    const pid = parseClaim(claim)?.pid;
    // a killed process is dead at the next sweep ('crashed'); a stopped one goes silent past staleAfter ('stalled')
    /** @type {keyof typeof duplicates} */
    let cause = 'unexplained';
    if (reason === 'crashed' && killedBy(pid, t)) cause = 'kill';
    else if (reason === 'stalled' && frozenAt(pid, t)) cause = 'freeze';
    else if (reason === 'stalled' && stalledAt(pid, t)) cause = 'stall';
    duplicates[cause]++;
    dupJobs.add(id);
    if (cause === 'unexplained')
      problem(
        'duplicate',
        `${id}: claim ${claim} was taken back (${reason}) but its process ${String(pid)} was neither killed, stopped nor stalled then`,
      );
  }
  for (const [id, noted] of completions) {
    if (noted.length > 1)
      problem(
        'completed-twice',
        `${id}: ${noted.length} completions acknowledged (${noted.map((c) => c.claim ?? String(c.run)).join(', ')})`,
      );
    const states = where.get(id);
    if (states === undefined ? !removable.has(id) : states[0] !== 'done')
      problem('lost', `${id}: completion acknowledged, now ${states?.join('+') ?? 'in no state and never removed'}`);
  }
  for (const e of by('lost')) {
    const silent = [...(stops.get(e.pid) ?? []), ...(stalls.get(e.pid) ?? [])].some((s) => s.t <= e.t);
    if (!silent)
      problem(
        'lost-claim',
        `${e.id}: process ${e.pid} lost its claim (ECOMPROMISED) but had not been stopped or stalled`,
      );
  }

  const counters = await checkCounters(
    dir,
    entries,
    { takenBack, where, acked, completions, removable, purgedFrom, files, killOf, stoppedMs, runs, slackMs },
    problem,
  );

  /** @type {Summary} */
  const summary = {
    processes: by('spawn').length,
    kills: by('kill').filter((e) => e.role !== 'dirq').length,
    commandKills: by('kill').filter((e) => e.role === 'dirq').length,
    stops: by('stop').length,
    enqueued: acked.size,
    keyDuplicates,
    completed: [...completions.keys()].length,
    completedUnacked: unackedCompletions,
    failedByWorkload,
    failedByRecovery,
    retried: by('retry').filter((e) => e.ok).length,
    removed: by('rm').filter((e) => e.state !== undefined).length,
    purged: by('purge').reduce((n, e) => n + e.removed, 0),
    recovered: takenBack.size,
    duplicates,
    duplicateJobs: dupJobs.size,
    lostClaims: by('lost').length,
    warnings: countBy(by('warning'), (e) => e.code ?? 'none'),
    tmpOrphans,
    lost: lost.length,
    counters,
  };
  return { ok: problems.length === 0, problems, summary };
}

/**
 * What check() gathered, for checkCounters.
 * @typedef {object} Known
 * @property {Map<string, TakenBack>} takenBack
 * @property {Map<string, State[]>} where
 * @property {Map<string, Entry<'enq'>>} acked
 * @property {Map<string, Entry<'done'>[]>} completions
 * @property {Set<string>} removable
 * @property {{ done: Set<string>, failed: Set<string> }} purgedFrom
 * @property {{ retried: number, failedEntries: number }} files
 * @property {(pid: number, t: number) => number | undefined} killOf
 * @property {Map<number | undefined, number>} stoppedMs
 * @property {Map<string, number>} runs
 * @property {number} slackMs
 */

/**
 * The lifetime totals against the ledger: exact where the ledger knows, bounded where a SIGKILL may have taken the last counts.
 * @param {string} dir
 * @param {Entry[]} entries
 * @param {Known} k
 * @param {(kind: string, detail: string) => void} problem
 * @returns {Promise<Record<string, CounterCheck>>}
 */
async function checkCounters(dir, entries, k, problem) {
  const q = await Queue.open(dir, { create: false, maintenance: false });
  const totals = await q.totals();
  await q.close();
  /** @param {Counter} counter */
  const sum = (counter) => Object.values(totals).reduce((n, row) => n + (row[counter] ?? 0), 0);
  const metrics = await metricsTotals(dir);
  for (const counter of COUNTERS) {
    if ((metrics[counter] ?? 0) !== sum(counter))
      problem('counters', `dirq metrics says ${counter} ${metrics[counter] ?? 0}, Queue.totals ${sum(counter)}`);
  }

  /**
   * Of these noted events, the ones a SIGKILL may have kept from the totals: noted by a killed process in its last FLUSH_MS (plus slack and its stops).
   * @param {Countable[]} noted
   */
  const mayBeUncounted = (noted) =>
    noted.filter((e) => {
      const killed = k.killOf(e.pid, e.t);
      return killed !== undefined && e.t >= killed - FLUSH_MS - k.slackMs - (k.stoppedMs.get(e.pid) ?? 0);
    }).length;
  /** @param {Countable} e */
  const counted = (e) => e.how !== 'cli' && e.by !== 'cli'; // dirq's own process counts these, and is never killed
  const enq = entries.filter((e) => e.ev === 'enq').flatMap((e) => e.refs.filter((r) => !r.dup).map(() => e));
  const done = [...k.completions.values()].map((noted) => /** @type {Entry<'done'>} */ (noted[0])); // none is empty
  const retrying = entries.filter((e) => e.ev === 'fail' && e.to === 'retrying');
  const recovered = dedupe(
    entries.filter((e) => e.ev === 'recovered'),
    (e) => e.claim,
  );
  const failed = [
    ...entries.filter((e) => e.ev === 'fail' && e.to === 'failed'),
    ...recovered.filter((e) => e.to === 'failed'),
  ];

  // every id the library ever made a file for: acknowledged, found, or listed before an rm or purge
  const everyId = new Set([...k.acked.keys(), ...k.where.keys(), ...k.removable]);
  const gone = [...k.removable].filter((id) => !k.where.has(id));
  const everDone = new Set([
    ...k.completions.keys(),
    ...[...k.where].filter(([, s]) => s[0] === 'done').map(([id]) => id),
    ...k.purgedFrom.done,
  ]);
  // an rm that did not report back (killed) may have deleted a done job
  const rmAnswered = new Set(entries.filter((e) => e.ev === 'rm').map((e) => e.id));
  for (const e of entries) {
    if (e.ev === 'rm' && e.state === 'done') everDone.add(e.id);
    else if (e.ev === 'rm-begin' && !rmAnswered.has(e.id)) everDone.add(e.id);
  }
  const retryBegins = countBy(
    entries.filter((e) => e.ev === 'retry-begin'),
    (e) => e.id,
  );
  /** @type {Record<Counter, CounterRow>} */
  const rows = {
    enqueued: { proven: enq, upper: everyId.size },
    completed: { proven: done, upper: everDone.size },
    // a job deleted by rm or purge took its history along: each run it had could have ended in one retry, and each admin retry follows one stay in failed/
    retried: { proven: retrying, upper: k.files.retried + gone.reduce((n, id) => n + (k.runs.get(id) ?? 0), 0) },
    failed: {
      proven: failed,
      upper: k.files.failedEntries + gone.reduce((n, id) => n + (retryBegins[id] ?? 0) + 1, 0),
    },
    recovered: { proven: recovered, upper: k.takenBack.size },
  };
  /** @type {Record<string, CounterCheck>} */
  const out = {};
  for (const [counter, { proven, upper }] of /** @type {[Counter, CounterRow][]} */ (Object.entries(rows))) {
    const lower = proven.length - mayBeUncounted(proven.filter(counted));
    const total = sum(counter);
    out[counter] = { total, ledger: proven.length, lower, upper };
    if (total < lower || total > upper)
      problem(
        'counters',
        `${counter}: the totals say ${total}, the ledger allows ${lower}..${upper} (${proven.length} noted)`,
      );
  }
  return out;
}

/**
 * The job event counters `dirq metrics --json` reports, by event, summed over types.
 * @param {string} dir
 * @returns {Promise<Record<string, number>>}
 */
async function metricsTotals(dir) {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'metrics', dir, '--json']);
  const families = /** @type {{ name: string, samples: { labels: Record<string, string>, value: number }[] }[]} */ (
    parseJson(stdout)
  );
  const family = families.find((f) => f.name === 'dirqueue_job_events_total');
  /** @type {Record<string, number>} */
  const out = {};
  for (const s of family?.samples ?? []) out[String(s.labels.event)] = (out[String(s.labels.event)] ?? 0) + s.value;
  return out;
}

/**
 * JSON text (a dirq command's --json output) as the unknown it is, for a cast.
 * @param {string} text
 * @returns {unknown}
 */
function parseJson(text) {
  return JSON.parse(text);
}

/**
 * The pid of the process that made a tmp/ file: a job's (ID.OWNER.tmp) or a helper's (.lock.OWNER.X, .totals.OWNER.SEQ, .totals~CLAIM, .clock.PID.X, .dirqueue.json.PID.X).
 * @param {string} name
 * @returns {number | undefined}
 */
function writerOf(name) {
  const job = parseTmpName(name)?.owner;
  if (job !== undefined) return parseOwner(job)?.pid;
  const helper = /^\.(?:lock|totals)\.(.+)\.[a-z0-9]+$/.exec(name)?.[1];
  if (helper !== undefined) return parseOwner(helper)?.pid;
  const fold = /^\.totals~(?:totals~)?(.+)$/.exec(name)?.[1];
  if (fold !== undefined) return parseClaim(fold)?.pid;
  const pid = /^\.(?:clock|dirqueue\.json)\.(\d+)\./.exec(name)?.[1];
  return pid === undefined ? undefined : Number(pid);
}

/**
 * @template T
 * @param {T[]} list
 * @param {(item: T) => string} key
 * @returns {Record<string, number>}
 */
function countBy(list, key) {
  /** @type {Record<string, number>} */
  const out = {};
  for (const item of list) out[key(item)] = (out[key(item)] ?? 0) + 1;
  return out;
}

/**
 * @template T
 * @param {T[]} list
 * @param {(item: T) => unknown} key
 * @returns {T[]}
 */
function dedupe(list, key) {
  /** @type {Map<unknown, T>} */
  const seen = new Map();
  for (const item of list) if (!seen.has(key(item))) seen.set(key(item), item);
  return [...seen.values()];
}

/**
 * The summary as a table of two columns.
 * @param {Summary} s
 * @returns {string}
 */
export function formatSummary(s) {
  /** @type {[string, string | number][]} */
  const rows = [
    ['processes started', s.processes],
    ['SIGKILLs', s.kills],
    ['SIGKILLs of dirq commands they ran', s.commandKills],
    ['SIGSTOPs', s.stops],
    ['enqueued (acknowledged)', s.enqueued],
    ['  unique-key duplicates returned', s.keyDuplicates],
    ['completed (acknowledged)', s.completed],
    ['  completed, not acknowledged (killed)', s.completedUnacked],
    ['failed by the workload', s.failedByWorkload],
    ['failed, attempts used up by recoveries', s.failedByRecovery],
    ['retried / removed / purged', `${s.retried} / ${s.removed} / ${s.purged}`],
    ['claims taken back', s.recovered],
    ['duplicates (re-runs): kill', s.duplicates.kill],
    ['duplicates (re-runs): freeze', s.duplicates.freeze],
    ['duplicates (re-runs): stall (not chaos)', s.duplicates.stall],
    ['duplicates (re-runs): unexplained', s.duplicates.unexplained],
    ['  jobs that ran more than once', s.duplicateJobs],
    ['claims lost by a frozen holder', s.lostClaims],
    ['tmp/ files left by killed processes', s.tmpOrphans],
    [
      'warnings (Queue and Pool events)',
      Object.entries(s.warnings)
        .map(([code, n]) => `${code} ${n}`)
        .join(', ') || 'none',
    ],
    ['lost', s.lost],
  ];
  for (const [counter, c] of Object.entries(s.counters))
    rows.push([`totals ${counter} (allowed)`, `${c.total} (${c.lower}..${c.upper})`]);
  const width = Math.max(...rows.map(([label]) => label.length));
  return rows.map(([label, value]) => `${label.padEnd(width)}  ${value}`).join('\n');
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const [dir, ledgerDir] = /** @type {[string, string]} */ (process.argv.slice(2).filter((a) => !a.startsWith('--')));
  const result = await check(dir, ledgerDir);
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify(result)}\n`);
  else {
    process.stdout.write(`${formatSummary(result.summary)}\n`);
    for (const p of result.problems) process.stdout.write(`PROBLEM ${p.kind}: ${p.detail}\n`);
  }
  process.exitCode = result.ok ? 0 : 1;
}
