// The full power-cut matrix: npm run power -- --fs ext4,xfs,btrfs --cuts 30 [--spread MS] [--keep DIR]
// Runs the suite's own harness (test/support/power.ts), loaded through Vite's module runner (the
// test runner's TypeScript transform, already a dev dependency), so the matrix and the suite can
// never drift apart; `npm run power` builds dist/ first, which the harness and its writers import.
// Prints one line per cut and a table per filesystem; exits 1 if any cut broke a promise.
import { parseArgs } from 'node:util';
import os from 'node:os';
import { runnerImport } from 'vite';

const { values } = parseArgs({
  options: {
    fs: { type: 'string', default: 'ext4,xfs,btrfs' },
    cuts: { type: 'string', default: '30' },
    spread: { type: 'string', default: '1500' },
    keep: { type: 'string', default: os.tmpdir() },
  },
});
/** @typedef {typeof import('../support/power.js')} Power */
/** @typedef {typeof import('../support/power-check.js')} Check */
/** @typedef {import('../support/power.js').FsName} FsName */
/** @typedef {import('../support/power-check.js').EnqueuePath} EnqueuePath */
/** @typedef {import('../support/power-check.js').RerunCause} RerunCause */

// eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- runnerImport's module is any; the JSDoc cast types it, but ESLint cannot see casts in .js (typescript-eslint#4824)
const power = /** @type {Power} */ (
  (await runnerImport(new URL('../support/power.ts', import.meta.url).pathname)).module
);
// eslint-disable-next-line @typescript-eslint/no-unsafe-assignment -- runnerImport's module is any; the JSDoc cast types it, but ESLint cannot see casts in .js (typescript-eslint#4824)
const check = /** @type {Check} */ (
  (await runnerImport(new URL('../support/power-check.ts', import.meta.url).pathname)).module
);

/**
 * Whether `f` names one of the harness's filesystems.
 * @param {string} f
 * @returns {f is FsName}
 */
function isFs(f) {
  return /** @type {readonly string[]} */ (power.FILESYSTEMS).includes(f);
}
/** @type {FsName[]} */
const filesystems = [];
for (const f of values.fs.split(',')) {
  if (!isFs(f)) throw new Error(`--fs: ${f} is not one of ${power.FILESYSTEMS.join(', ')}`);
  filesystems.push(f);
}
const cuts = Number(values.cuts);
if (!Number.isInteger(cuts) || cuts < 1) throw new Error(`--cuts must be a positive integer, got ${values.cuts}`);

const rig = await power.PowerRig.start(filesystems);
// an interrupted run still restores the sysctls and drops its mounts and loop devices
let stopping = false;
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => {
    stopping = true;
    void rig.close().finally(() => process.exit(130));
  });
}

/**
 * @typedef {object} Row
 * @property {FsName} fs
 * @property {number} cuts
 * @property {Record<EnqueuePath, number>} enqueues
 * @property {number} lost
 * @property {number} twoStates
 * @property {number} halfRenamed
 * @property {number} enqueuedTwice
 * @property {number} acked
 * @property {number} durableAll
 * @property {number} completed
 * @property {Record<RerunCause, number>} rerun
 * @property {number} unenqueued
 * @property {number} fsRepairs
 * @property {number} problems
 * @property {number} seconds
 */
/** @type {Row[]} */
const rows = [];
/** @type {RerunCause[]} */
const CAUSES = ['torn', 'rescued', 'unclaimed'];
let failed = false;
const started = Date.now();
try {
  for (const fsName of filesystems) {
    /** @type {Row} */
    const row = {
      fs: fsName,
      cuts: 0,
      enqueues: { single: 0, group: 0, syncfs: 0, fdatasync: 0 },
      lost: 0,
      twoStates: 0,
      halfRenamed: 0,
      enqueuedTwice: 0,
      acked: 0,
      durableAll: 0,
      completed: 0,
      rerun: { torn: 0, rescued: 0, unclaimed: 0 },
      unenqueued: 0,
      fsRepairs: 0,
      problems: 0,
      seconds: 0,
    };
    for (const p of check.PATHS) row.enqueues[p] = 0;
    const t = Date.now();
    for (let i = 0; i < cuts && !stopping; i++) {
      const cut = await rig.cut(fsName, { spreadMs: Number(values.spread), keepFailedIn: values.keep });
      const v = cut.verdict;
      row.cuts++;
      for (const p of check.PATHS) row.enqueues[p] += v.enqueues[p];
      row.lost += v.lost.length;
      row.twoStates += v.twoStates.length;
      row.halfRenamed += v.halfRenamed.length;
      row.enqueuedTwice += v.enqueuedTwice.length;
      row.acked += v.completions.acked;
      row.durableAll += v.durableAll;
      row.completed += v.completions.completed;
      for (const c of CAUSES) row.rerun[c] += v.completions.rerun[c];
      row.unenqueued += v.completions.unenqueued;
      row.fsRepairs += cut.fsck === 'clean' ? 0 : 1;
      row.problems += v.problems.length;
      const bad = v.lost.length + v.twoStates.length + v.enqueuedTwice.length + v.problems.length > 0;
      failed ||= bad;
      const enq = check.PATHS.reduce((n, p) => n + v.enqueues[p], 0);
      console.log(
        `${fsName} cut ${i + 1}/${cuts} at +${cut.moment} ms: ${enq} enqueues, ${v.completions.acked} completions acknowledged; ` +
          `lost ${v.lost.length}, two states ${v.twoStates.length}, half-done renames ${v.halfRenamed.length}, rerun ${JSON.stringify(v.completions.rerun)}, gone with their unacknowledged enqueue ${v.completions.unenqueued}; filesystem ${cut.fsck}` +
          (cut.copies > 1 ? `; ${cut.copies} copies to get one of an instant` : '') +
          (Object.keys(v.fsckFound).length > 0 ? `; fsck found ${JSON.stringify(v.fsckFound)}` : '') +
          (bad
            ? `\n  BROKEN: ${[...v.lost, ...v.twoStates, ...v.enqueuedTwice, ...v.problems].slice(0, 10).join('\n  ')}\n  kept in ${String(cut.kept)}`
            : ''),
      );
    }
    row.seconds = Math.round((Date.now() - t) / 1000);
    rows.push(row);
  }
} finally {
  if (!stopping) await rig.close();
}

const header = [
  'filesystem',
  'cuts',
  'acknowledged enqueues checked (single/group/syncfs/fdatasync)',
  'lost',
  'in two states',
  'half-done renames (one file at its claim and its ending)',
  'enqueued twice',
  'completions acknowledged',
  "of them durable 'all' (each must be found completed)",
  'found completed',
  'to run again: torn result / claim rescued / claim lost',
  'gone with their unacknowledged enqueue',
  'fs repaired',
  'other problems',
  's',
];
const table = rows.map((r) => {
  const total = check.PATHS.reduce((n, p) => n + r.enqueues[p], 0);
  return [
    r.fs,
    r.cuts,
    `${total} (${check.PATHS.map((p) => r.enqueues[p]).join('/')})`,
    r.lost,
    r.twoStates,
    r.halfRenamed,
    r.enqueuedTwice,
    r.acked,
    r.durableAll,
    r.completed,
    `${r.rerun.torn + r.rerun.rescued + r.rerun.unclaimed} (${r.rerun.torn}/${r.rerun.rescued}/${r.rerun.unclaimed})`,
    r.unenqueued,
    r.fsRepairs,
    r.problems,
    r.seconds,
  ].map(String);
});
console.log(`\n${markdown([header, ...table])}`);
console.log(
  `\n${rows.reduce((n, r) => n + r.cuts, 0)} cuts in ${Math.round((Date.now() - started) / 1000)} s on ${os.cpus().length} CPUs, kernel ${os.release()}`,
);
process.exitCode = failed ? 1 : 0;

/**
 * A Markdown table, ready for README.
 * @param {string[][]} lines
 * @returns {string}
 */
function markdown(lines) {
  const [head, ...body] = lines;
  if (head === undefined) throw new Error('markdown: no header row');
  return [head, head.map(() => '---'), ...body].map((cells) => `| ${cells.join(' | ')} |`).join('\n');
}
