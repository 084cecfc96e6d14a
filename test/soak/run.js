/**
 * The soak: several processes use one queue at once, in every way the
 * library and the CLI allow, while a chaos loop SIGKILLs and SIGSTOPs them
 * at random; then the ledger of what each acknowledged is checked against
 * the queue (check.js). Runs the built dist/: `npm run build` first.
 *
 *   npm run soak -- --minutes 30
 *   node test/soak/run.js --minutes 1 --json
 *
 * Options (ms unless named):
 *   --minutes N         how long the chaos runs (default 1; decimals allowed)
 *   --stale-after MS    every process's staleAfter (default 3000): a SIGSTOP
 *                       longer than this makes a sweep take the claims back
 *   --sweep-interval MS every process's sweepInterval (default 500): a
 *                       killed worker's claims come back at the next sweep
 *   --chaos-every MS    mean time between chaos actions (default 1500)
 *   --cli-share F       share of actions that SIGKILL a dirq command one of
 *                       the processes runs, when one runs (default 0.2)
 *   --kill-share F      of the other actions, the share that SIGKILL one of
 *                       the processes (restarted), the rest SIGSTOP one (default 0.5)
 *   --stop-min MS, --stop-max MS
 *                       how long a SIGSTOP lasts before its SIGCONT
 *                       (default 500..7000: some shorter than staleAfter,
 *                       some longer)
 *   --workers N, --pools N, --threads N
 *                       Queue API workers, Pools, threads per Pool (default 2, 2, 2)
 *   --max-backlog N     producers pause while this many jobs wait (default 400)
 *   --keep              keep the queue and the ledger (kept anyway on failure)
 *   --json              print the result as JSON instead of a table
 *
 * Exits 1 when the ledger check fails, naming each problem.
 */
import { execFile, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs, promisify } from 'node:util';
import { Queue } from '../../dist/index.js';
import { check, formatSummary, PLANNED } from './check.js';
import { openLedger } from './ledger.js';
import { TMP_MAX_AGE_MS } from '../../dist/maintenance/clean.js';

/** @typedef {import('node:child_process').ChildProcess} ChildProcess */
/** @typedef {import('../../dist/index.js').FsckReport} FsckReport */

const ACTOR = fileURLToPath(new URL('./actor.js', import.meta.url));
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));

const { values: args } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    'stale-after': { type: 'string', default: '3000' },
    'sweep-interval': { type: 'string', default: '500' },
    'chaos-every': { type: 'string', default: '1500' },
    'kill-share': { type: 'string', default: '0.5' },
    'cli-share': { type: 'string', default: '0.2' },
    'stop-min': { type: 'string', default: '500' },
    'stop-max': { type: 'string', default: '7000' },
    workers: { type: 'string', default: '2' },
    pools: { type: 'string', default: '2' },
    threads: { type: 'string', default: '2' },
    'max-backlog': { type: 'string', default: '400' },
    keep: { type: 'boolean', default: false },
    json: { type: 'boolean', default: false },
  },
});
/** @param {Exclude<keyof typeof args, 'keep' | 'json'>} name */
const number = (name) => {
  const n = Number(args[name]);
  if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number, got ${args[name]}`);
  return n;
};
const minutes = number('minutes');
const staleAfter = number('stale-after');
const stopMin = number('stop-min');
const stopMax = number('stop-max');
const settings = {
  staleAfter,
  sweepInterval: number('sweep-interval'),
  threads: number('threads'),
  maxBacklog: number('max-backlog'),
  // purge deletes jobs that ended this long ago; the margin is above the longest SIGSTOP (actor.js, purge)
  purgeOlderThan: stopMax + 5000,
  purgeMargin: stopMax + 2000,
};
/** @typedef {typeof settings} Settings what every actor gets in SOAK_OPTIONS (actor.js) */

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-soak-'));
const dir = path.join(root, 'queue');
const ledgerDir = path.join(root, 'ledger');
const logDir = path.join(root, 'logs');
fs.mkdirSync(ledgerDir);
fs.mkdirSync(logDir);
await (await Queue.open(dir)).close();
const note = openLedger(path.join(ledgerDir, 'chaos.jsonl'));

/** @type {string[]} */
const roles = [
  'producer',
  'bulk',
  'admin',
  ...Array.from(Array(number('workers')), () => 'worker'),
  ...Array.from(Array(number('pools')), () => 'pool'),
];
/** @typedef {{ code: number | null, signal: NodeJS.Signals | null }} Exit */
/**
 * @typedef {object} Slot
 * @property {string} role
 * @property {ChildProcess} child
 * @property {Promise<Exit>} exited
 * @property {boolean} stopped
 * @property {boolean} killed
 */
/**
 * The live process of each slot, with whether it is stopped now and whether we killed it. Its child
 * and exited come with start(), which runs for every slot before anything reads them.
 */
const slots = /** @type {Slot[]} */ (roles.map((role) => ({ role, stopped: false, killed: false })));
let ending = false;
let spawned = 0;

/** @param {Slot} slot */
function start(slot) {
  const n = spawned++;
  const log = fs.openSync(path.join(logDir, `${slot.role}-${n}.log`), 'a');
  const child = spawn(process.execPath, [ACTOR, slot.role, dir, path.join(ledgerDir, `${slot.role}-${n}.jsonl`)], {
    stdio: ['ignore', log, log],
    env: { ...process.env, SOAK_OPTIONS: JSON.stringify(settings) },
  });
  fs.closeSync(log);
  /** @type {Promise<Exit>} */
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  Object.assign(slot, { child, stopped: false, killed: false, exited });
  note('spawn', { target: child.pid, role: slot.role, n });
  void exited.then(({ code, signal }) => {
    note('exit', { target: child.pid, role: slot.role, code, signal });
    if (slot.child !== child) return;
    // a process started just before the end can get its SIGTERM while it is still loading, before its
    // handler is installed: it then dies of the signal having done nothing (its ledger is empty)
    const ledger = fs.statSync(path.join(ledgerDir, `${slot.role}-${n}.jsonl`), { throwIfNoEntry: false });
    const endedUnstarted = ending && signal === 'SIGTERM' && (ledger?.size ?? 0) === 0;
    if (!slot.killed && !(ending && code === 0) && !endedUnstarted) {
      const stderr = fs.readFileSync(path.join(logDir, `${slot.role}-${n}.log`), 'utf8').slice(-2000);
      note('crash', { target: child.pid, role: slot.role, code, signal, stderr });
    }
    if (!ending) setTimeout(() => ending || start(slot), 100 + Math.random() * 400);
  });
}

/** @param {number} until */
async function chaos(until) {
  while (Date.now() < until) {
    await sleep(-Math.log(1 - Math.random()) * number('chaos-every'));
    const live = slots.filter(
      (s) => !s.stopped && !s.killed && s.child.exitCode === null && s.child.signalCode === null,
    );
    if (live.length === 0 || Date.now() >= until) continue;
    // now and then a dirq command an actor runs (fsck --repair, rm, retry, recover, enqueue) instead
    const commands = Math.random() < number('cli-share') ? live.flatMap((s) => childrenOf(s.child.pid)) : [];
    if (commands.length > 0) {
      const target = /** @type {number} */ (commands[Math.floor(Math.random() * commands.length)]);
      try {
        process.kill(target, 'SIGKILL');
        note('kill', { target, role: 'dirq' });
      } catch {
        // it ended meanwhile
      }
      continue;
    }
    const slot = /** @type {Slot} */ (live[Math.floor(Math.random() * live.length)]);
    const pid = slot.child.pid;
    if (Math.random() < number('kill-share')) {
      slot.killed = true;
      slot.child.kill('SIGKILL');
      note('kill', { target: pid, role: slot.role });
    } else {
      const ms = Math.round(stopMin + Math.random() * (stopMax - stopMin));
      slot.stopped = true;
      slot.child.kill('SIGSTOP');
      note('stop', { target: pid, role: slot.role, ms });
      void sleep(ms).then(() => {
        if (!slot.stopped || slot.child.pid !== pid) return;
        slot.stopped = false;
        slot.child.kill('SIGCONT');
        note('cont', { target: pid, role: slot.role });
      });
    }
  }
}

/**
 * The pids of a process's children (the dirq commands an actor runs), from /proc.
 * @param {number | undefined} pid
 * @returns {number[]}
 */
function childrenOf(pid) {
  if (pid === undefined) return []; // it did not start
  try {
    return fs.readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

/** After the chaos: wake every stopped process, ask each to end (SIGTERM), wait for all to exit. */
async function stopAll() {
  ending = true;
  for (const slot of slots) {
    if (slot.stopped) {
      slot.stopped = false;
      slot.child.kill('SIGCONT');
      note('cont', { target: slot.child.pid, role: slot.role });
    }
  }
  await Promise.all(
    slots.map(async (slot) => {
      if (slot.child.exitCode !== null || slot.child.signalCode !== null) return;
      slot.child.kill('SIGTERM');
      const ms = 60_000;
      const timer = setTimeout(() => {
        note('hung', { target: slot.child.pid, role: slot.role, ms });
        slot.killed = true;
        slot.child.kill('SIGKILL');
      }, ms);
      await slot.exited;
      clearTimeout(timer);
    }),
  );
}

/**
 * Recover what the killed processes held (their pids are dead, so one sweep
 * takes their claims back whatever staleAfter says), then run every job
 * left, noting it in the ledger as the workers do, until nothing waits, and
 * repair what fsck finds (the heartbeats and keys of killed processes).
 */
async function drain() {
  const noteDrain = openLedger(path.join(ledgerDir, 'drain.jsonl'));
  const q = await Queue.open(dir, {
    staleAfter,
    sweepInterval: settings.sweepInterval,
    pollInterval: 100,
    create: false,
  });
  q.on('recovered', (r) => noteDrain('recovered', { id: r.id, claim: r.claim, reason: r.reason, to: r.to }));
  const deadline = Date.now() + 120_000;
  for (;;) {
    await q.recover();
    for (let job = await q.claim({ wait: 100 }); job !== undefined; job = await q.claim({ wait: 100 })) {
      noteDrain('claim', { id: job.id, claim: job.claim, attempt: job.attempt });
      if (/** @type {{ fail?: boolean }} */ (job.data).fail) {
        noteDrain('fail', {
          id: job.id,
          claim: job.claim,
          attempt: job.attempt,
          to: await job.fail(new Error(PLANNED)),
        });
      } else {
        await job.complete({ claim: job.claim });
        noteDrain('done', { id: job.id, claim: job.claim, attempt: job.attempt });
      }
    }
    const counts = await q.counts();
    if (counts.queue + counts.delayed + counts.active === 0) break;
    if (Date.now() > deadline) {
      noteDrain('drain-timeout', { counts });
      break;
    }
  }
  // Files killed processes left in tmp/: a producer has no heartbeat (only claimers beat) and a
  // helper's temp file (the sweep lock's, a counter's) is not judged by one, so nothing tells that
  // their writer died, and sweeps delete them once tmpMaxAge (an hour) has passed. Make it pass.
  const orphans = fs.readdirSync(path.join(dir, 'tmp'));
  noteDrain('tmp-orphans', { names: orphans });
  for (const name of orphans) backdate(path.join(dir, 'tmp', name), TMP_MAX_AGE_MS + 60_000);
  await q.recover();
  await q.close();
  // fsck exits 3 when it found damage: its report is on stdout either way
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, 'fsck', dir, '--repair', '--json']).catch(
    (/** @type {unknown} */ error) => /** @type {{ stdout: string }} */ (error),
  );
  const report = /** @type {FsckReport} */ (parseJson(stdout));
  noteDrain('fsck', {
    findings: report.findings.map((f) => ({ kind: f.kind, path: f.path, problem: f.problem, repaired: f.repaired })),
  });
  return report.findings;
}

/**
 * JSON text (fsck's --json report) as the unknown it is, for a cast.
 * @param {string} text
 * @returns {unknown}
 */
function parseJson(text) {
  return JSON.parse(text);
}

/**
 * @param {string} file
 * @param {number} ms
 */
function backdate(file, ms) {
  const then = new Date(Date.now() - ms);
  fs.utimesSync(file, then, then);
}

const began = Date.now();
for (const slot of slots) start(slot);
await chaos(began + minutes * 60_000);
const phases = { chaos: Date.now() - began, stop: 0, drain: 0, check: 0 };
await stopAll();
phases.stop = Date.now() - began - phases.chaos;
const repaired = await drain();
phases.drain = Date.now() - began - phases.chaos - phases.stop;
const result = await check(dir, ledgerDir);
phases.check = Date.now() - began - phases.chaos - phases.stop - phases.drain;
result.summary.seconds = Math.round((Date.now() - began) / 1000);
result.summary.phases = phases;
result.summary.finalRepairs = repaired.map((f) => f.kind);
result.dir = root;
if (args.json) process.stdout.write(`${JSON.stringify(result)}\n`);
else {
  const took = Object.entries(phases)
    .map(([phase, ms]) => `${phase} ${(ms / 1000).toFixed(1)} s`)
    .join(', ');
  process.stdout.write(
    `soak of ${minutes} min, ${roles.length} processes (${roles.join(', ')}), ${result.summary.seconds} s in all (${took})\n`,
  );
  process.stdout.write(`${formatSummary(result.summary)}\n`);
  process.stdout.write(
    `final fsck --repair: ${repaired.length === 0 ? 'nothing' : repaired.map((f) => f.kind).join(', ')}\n`,
  );
  for (const p of result.problems) process.stdout.write(`PROBLEM ${p.kind}: ${p.detail}\n`);
  process.stdout.write(
    result.ok ? 'ledger check: OK\n' : `ledger check: FAILED (${result.problems.length} problems); kept ${root}\n`,
  );
}
if (result.ok && !args.keep) fs.rmSync(root, { recursive: true, force: true });
process.exitCode = result.ok ? 0 : 1;
