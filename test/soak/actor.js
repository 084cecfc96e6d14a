/**
 * One process of the soak: node actor.js ROLE DIR LEDGER_FILE, its settings
 * in the environment (SOAK_OPTIONS, JSON, from run.js). It works the queue
 * until SIGTERM, then ends what it holds, closes and exits 0; the chaos loop
 * may SIGKILL or SIGSTOP it at any instant. Every acknowledged step goes to
 * its ledger (ledger.js) right after the call resolves, so a kill between
 * the two leaves a step done but not noted: the checker allows exactly that.
 *
 * Roles: producer (enqueue one by one: keys, delays, priorities, and `dirq
 * enqueue`), bulk (enqueueMany), worker (claim, complete, fail, release by
 * the Queue API), pool (a Pool with worker threads), admin (retry, rm,
 * purge, recover by the API and by `dirq`, `dirq fsck --repair`, `ls`,
 * `stats`, `metrics`). The chaos loop kills those `dirq` processes too.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Pool, Queue } from '../../dist/index.js';
import { idOfName } from '../../dist/store/locate.js';
import { openLedger } from './ledger.js';

/** @typedef {import('./run.js').Settings} Settings */
/** @typedef {import('../../dist/index.js').Job<Data>} SoakJob */
/** @typedef {import('../../dist/index.js').JobRef} JobRef */
/** @typedef {import('../../dist/index.js').Recovered} Recovered */
/** @typedef {import('../../dist/index.js').FsckReport} FsckReport */
/** @typedef {import('../../dist/index.js').State} State */
/** @typedef {{ n: number, ms: number, fail: boolean }} Data */
/** @typedef {{ attempts: number, backoff: number, delay?: number, key?: string, priority?: number }} WorkloadOptions */
/** @typedef {{ type: string, data: Data } & WorkloadOptions} WorkloadJob */
/** @typedef {{ code: number, stdout: string, stderr: string }} CliOutput */

const run = promisify(execFile);
const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const PROCESSOR = fileURLToPath(new URL('./processor.js', import.meta.url));

// run.js passes all three
const [role, dir, ledgerFile] = /** @type {[string, string, string]} */ (process.argv.slice(2));
const settings = /** @type {Settings} */ (parseJson(process.env.SOAK_OPTIONS ?? '{}'));
const note = openLedger(ledgerFile);
const queueOptions = {
  staleAfter: settings.staleAfter,
  sweepInterval: settings.sweepInterval,
  pollInterval: 200,
  create: false,
};

let stopping = false;
process.on('SIGTERM', () => (stopping = true));

/**
 * A process can go silent without the chaos loop: on a loaded machine its
 * event loop may not run for seconds. Note every such gap (a SIGSTOP shows
 * too), so a claim taken back because of it is explained, as a 'stall'.
 */
const TICK_MS = 250;
let lastTick = performance.now();
setInterval(() => {
  const now = performance.now();
  const gap = now - lastTick - TICK_MS;
  lastTick = now;
  if (gap > settings.staleAfter / 4) note('stall', { ms: Math.round(gap) });
}, TICK_MS).unref();

/** @param {number} n */
const random = (n) => Math.floor(Math.random() * n);
/** @param {number} p */
const chance = (p) => Math.random() < p;
/**
 * One of `list` (not empty), at random.
 * @template T
 * @param {readonly T[]} list
 * @returns {T}
 */
const oneOf = (list) => /** @type {T} */ (list[random(list.length)]);

/**
 * JSON text (the settings, a dirq command's --json output) as the unknown it is, for a cast.
 * @param {string} text
 * @returns {unknown}
 */
function parseJson(text) {
  return JSON.parse(text);
}

/**
 * The `code` of a thrown value, if it has one (a DirQueueError's, a system error's).
 * @param {unknown} error
 * @returns {unknown}
 */
function codeOf(error) {
  return typeof error === 'object' && error !== null && 'code' in error ? error.code : undefined;
}

/**
 * A job of the workload: a tenth of them fail every attempt (planned), the rest succeed; some wait in delayed/, some hold a unique key.
 * @param {number} n
 * @returns {WorkloadJob}
 */
function newJob(n) {
  const fail = chance(0.1);
  /** @type {WorkloadOptions} */
  const options = fail ? { attempts: 2, backoff: 100 } : { attempts: 50, backoff: 50 };
  if (chance(0.15)) options.delay = 100 + random(2000);
  if (chance(0.1)) options.key = `k${random(20)}`;
  options.priority = random(100);
  // about 60 ms a job: the pools and workers cannot keep up with the producers, so most of the time
  // every slot holds a claim, and a SIGKILL or a long SIGSTOP has claims to cut short
  return { type: chance(0.5) ? 'soak.a' : 'soak.b', data: { n, ms: random(120), fail }, ...options };
}

/** Producers hold back while this many jobs wait, so the end drain stays short. */
function backlog() {
  return fs.readdirSync(path.join(dir, 'queue')).length + fs.readdirSync(path.join(dir, 'delayed')).length;
}

async function waitForRoom() {
  while (!stopping && backlog() > settings.maxBacklog) await sleep(50);
}

/** @param {Queue} queue */
function listen(queue) {
  queue.on('recovered', (r) => note('recovered', { id: r.id, claim: r.claim, reason: r.reason, to: r.to }));
  queue.on('warning', (error) => note('warning', { code: codeOf(error), message: error.message }));
}

const roles = {
  async producer() {
    const q = await Queue.open(dir, queueOptions);
    listen(q);
    for (let n = 0; !stopping; n++) {
      await waitForRoom();
      const job = newJob(n);
      if (chance(0.05)) {
        const args = [
          'enqueue',
          dir,
          job.type,
          JSON.stringify(job.data),
          '--json',
          '--priority',
          String(job.priority),
          '--attempts',
          String(job.attempts),
          '--backoff',
          `${job.backoff}ms`,
        ];
        if (job.key !== undefined) args.push('--key', job.key);
        if (job.delay !== undefined) args.push('--delay', `${job.delay}ms`);
        const out = await cli(args);
        if (out === undefined) continue; // killed by the chaos loop: not acknowledged
        if (out.code !== 0) throw new Error(`dirq enqueue exited ${out.code}: ${out.stderr}`);
        const ref = /** @type {JobRef} */ (parseJson(out.stdout));
        note('enq', { how: 'cli', refs: [{ id: ref.id, dup: ref.duplicate }] });
      } else {
        const { type, data, ...options } = job;
        const ref = await q.enqueue(type, data, options);
        note('enq', { how: 'one', refs: [{ id: ref.id, dup: ref.duplicate }] });
      }
      await sleep(random(20));
    }
    await q.close();
  },

  async bulk() {
    const q = await Queue.open(dir, queueOptions);
    listen(q);
    for (let n = 0; !stopping; n++) {
      await waitForRoom();
      // 256 and more take the syncfs path of a durable batch, fewer the fdatasync one
      const size = chance(0.3) ? 256 + random(100) : 5 + random(60);
      const refs = await q.enqueueMany(Array.from({ length: size }, (_, i) => newJob(n * 1000 + i)));
      note('enq', { how: 'many', refs: refs.map((r) => ({ id: r.id, dup: r.duplicate })) });
      await sleep(500 + random(1000));
    }
    await q.close();
  },

  async worker() {
    const q = await Queue.open(dir, queueOptions);
    listen(q);
    while (!stopping) {
      /** @type {SoakJob | undefined} */
      const job = await q.claim({ wait: 500 });
      if (job === undefined) continue;
      note('claim', { id: job.id, claim: job.claim, attempt: job.attempt });
      await sleep(job.data.ms);
      try {
        if (chance(0.05)) {
          await job.release();
          note('release', { id: job.id, claim: job.claim });
        } else if (job.data.fail) {
          const to = await job.fail(new Error('soak: planned failure'));
          note('fail', { id: job.id, claim: job.claim, attempt: job.attempt, to });
        } else {
          await job.complete({ claim: job.claim });
          note('done', { id: job.id, claim: job.claim, attempt: job.attempt });
        }
      } catch (error) {
        if (codeOf(error) !== 'ECOMPROMISED') throw error;
        note('lost', { id: job.id, claim: job.claim, attempt: job.attempt });
      }
    }
    await q.close();
  },

  async pool() {
    process.env.SOAK_LEDGER = ledgerFile;
    const pool = new Pool(dir, {
      ...queueOptions,
      processor: PROCESSOR,
      threads: settings.threads,
      concurrency: 2,
      closeTimeout: 30_000,
    });
    pool.on('completed', (job, result) =>
      note('done', { id: job.id, run: /** @type {{ run: string }} */ (result).run, attempt: job.attempt }),
    );
    pool.on('retrying', (job) => note('fail', { id: job.id, attempt: job.attempt, to: 'retrying' }));
    pool.on('failed', (job) => note('fail', { id: job.id, attempt: job.attempt, to: 'failed' }));
    pool.on('lost', (job) => note('lost', { id: job.id, attempt: job.attempt }));
    pool.on('recovered', (r) => note('recovered', { id: r.id, claim: r.claim, reason: r.reason, to: r.to }));
    pool.on('error', (error) => note('pool-error', { code: codeOf(error), message: error.message }));
    pool.on('warning', (error) => note('warning', { code: codeOf(error), message: error.message }));
    await pool.start();
    while (!stopping) await sleep(100);
    await pool.close();
  },

  async admin() {
    const q = await Queue.open(dir, queueOptions);
    listen(q);
    // purges are rare: each deletes the history the checker reads
    /** @type {((q: Queue) => Promise<void>)[]} */
    const actions = [
      retry,
      retry,
      retryCli,
      remove,
      remove,
      removeCli,
      recover,
      recoverCli,
      fsckRepair,
      fsckRepair,
      inspectCli,
      inspectCli,
      inspectCli,
    ];
    while (!stopping) {
      await (chance(0.03) ? purge : oneOf(actions))(q);
      await sleep(100 + random(300));
    }
    await q.close();
  },
};

/**
 * A random job of `state`, by id.
 * @param {State} state
 * @returns {string | undefined}
 */
function pick(state) {
  const names = fs.readdirSync(path.join(dir, state));
  if (names.length === 0) return undefined;
  return idOfName(state, oneOf(names));
}

/** @param {Queue} q */
async function retry(q) {
  const id = pick(chance(0.8) ? 'failed' : 'delayed');
  if (id === undefined) return;
  note('retry-begin', { id });
  try {
    await q.retry(id);
    note('retry', { id, ok: true });
  } catch (error) {
    note('retry', { id, code: codeOf(error) });
  }
}

async function retryCli() {
  const id = pick('failed');
  if (id === undefined) return;
  note('retry-begin', { id });
  const out = await cli(['retry', dir, id, '--json']);
  note('retry', { id, ok: out?.code === 0 });
}

/**
 * Remove a job that is waiting or has ended; the intent is noted first, since a kill may come between the unlink and the note.
 * @param {Queue} q
 */
async function remove(q) {
  const id = pick(oneOf(['queue', 'delayed', 'done', 'failed']));
  if (id === undefined) return;
  note('rm-begin', { id });
  try {
    note('rm', { id, state: await q.remove(id) });
  } catch (error) {
    note('rm', { id, code: codeOf(error) });
  }
}

async function removeCli() {
  const id = pick(oneOf(['queue', 'done', 'failed']));
  if (id === undefined) return;
  note('rm-begin', { id });
  const out = await cli(['rm', dir, id, '--json']);
  if (out === undefined) note('rm', { id, code: 'killed' });
  else
    note(
      'rm',
      out.code === 0
        ? { id, state: /** @type {{ removed: [{ state: State }] }} */ (parseJson(out.stdout)).removed[0].state }
        : { id, code: `exit ${out.code}` },
    );
}

/**
 * Purge failed/ of jobs older than purgeOlderThan, or done/ (less often, and
 * only of older jobs: the checker reads their results). Purge reports
 * only a count, so the ids it may delete are noted first: every file old
 * enough when purge runs. The listing takes files up to purgeMargin younger
 * than the cutoff, since a SIGSTOP between the listing and the purge moves
 * purge's cutoff later (the margin is above the longest stop).
 * @param {Queue} q
 */
async function purge(q) {
  const state = chance(0.2) ? 'done' : 'failed';
  const olderThan = state === 'done' ? 3 * settings.purgeOlderThan : settings.purgeOlderThan;
  const cutoff = Date.now() - olderThan + settings.purgeMargin;
  /** @type {string[]} */
  const ids = [];
  for (const name of fs.readdirSync(path.join(dir, state))) {
    const id = idOfName(state, name); // purge takes only job names
    if (id === undefined) continue;
    try {
      if (fs.lstatSync(path.join(dir, state, name)).mtimeMs <= cutoff) ids.push(id);
    } catch {
      // gone meanwhile (a retry, an rm): not purged
    }
  }
  note('purge-begin', { state, ids });
  note('purge', { state, removed: await q.purge(state, { olderThan }) });
}

/** @param {Queue} q */
async function recover(q) {
  await q.recover(); // what it takes back is noted by the 'recovered' listener
}

async function recoverCli() {
  const out = await cli(['recover', dir, '--json']);
  if (out === undefined) return;
  if (out.code !== 0) {
    note('cli-error', { verb: 'recover', code: out.code, stderr: out.stderr });
    return;
  }
  for (const r of /** @type {{ recovered: Recovered[] }} */ (parseJson(out.stdout)).recovered)
    note('recovered', { id: r.id, claim: r.claim, reason: r.reason, to: r.to, by: 'cli' });
}

async function fsckRepair() {
  const out = await cli(['fsck', dir, '--repair', '--json']);
  if (out === undefined) return;
  const report = /** @type {FsckReport} */ (parseJson(out.stdout));
  note('fsck', {
    code: out.code,
    findings: report.findings.map((f) => ({ kind: f.kind, path: f.path, problem: f.problem, repaired: f.repaired })),
  });
}

async function inspectCli() {
  const verb = oneOf([
    ['ls', dir, oneOf(['queue', 'failed', 'active', 'done']), '--json'],
    ['stats', dir, '--json'],
    ['metrics', dir],
  ]);
  const out = await cli(verb);
  if (out !== undefined && out.code !== 0) note('cli-error', { verb: verb[0], code: out.code, stderr: out.stderr });
}

/**
 * Run dirq; resolves with its exit code and output whatever the code, or undefined when the chaos loop killed it (noted).
 * @param {string[]} args
 * @returns {Promise<CliOutput | undefined>}
 */
async function cli(args) {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI, ...args], { maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (thrown) {
    // execFile's rejection: the exit code or signal, with the output so far
    const error = /** @type {import('node:child_process').ExecFileException & { stdout: string, stderr: string }} */ (
      thrown
    );
    if (error.signal === 'SIGKILL') {
      note('cli-killed', { verb: args[0] });
      return undefined;
    }
    if (typeof error.code !== 'number') throw thrown;
    return { code: error.code, stdout: error.stdout, stderr: error.stderr };
  }
}

/**
 * @param {string} r
 * @returns {r is keyof typeof roles}
 */
const isRole = (r) => Object.hasOwn(roles, r);

note('start', { role });
if (!isRole(role)) throw new Error(`actor.js: no role ${role} (one of ${Object.keys(roles).join(', ')})`);
await roles[role]();
note('exit', { role });
process.exit(0);
