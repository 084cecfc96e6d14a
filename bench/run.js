/**
 * bench/run.js: run every dirqueue benchmark, one child process each, one
 * after the other, and print their tables.
 *
 * Goal: the numbers ARCHITECTURE.md's performance targets are judged by and the README quotes:
 * enqueue one by one >= 6.5k/s and in bulk >= 14k/s (BullMQ-on-Redis here);
 * drain >= 8.7k/s; enqueue-to-start latency p50 <= 1 ms, p99 <= 5 ms; a
 * claim's cost independent of the backlog; < 200 bytes per waiting job in the
 * index; each beside the raw filesystem floor of the same run. See each
 * script's header for its cases and settings.
 *
 * Scripts: every bench/*.js but lib.js: core.js (throughput against the raw
 * floor, ext4 and tmpfs; under node --expose-gc) first, then the others in
 * name order (bullmq.js: dirqueue beside BullMQ on a local Redis, skipped with
 * a note when redis-server or bullmq is missing; lease.js, pool.js: the worker
 * pool end to end, latency). core.js's and bullmq.js's ext4 files are deleted
 * only after the last script: on a journal-less ext4, as here, creating files
 * is slow for minutes after a mass deletion, which would skew the next script.
 *
 * Settings: arguments go to core.js (--reps=N, --quick, --fs=disk|tmpfs);
 * --quick also sets BENCH_QUICK=1 for the others; --only=core,pool runs those,
 * --skip=nfs leaves those out. core.js takes 1-1.5 min; the whole set longer.
 *
 * Run: cd /work/main && npx tsc -p tsconfig.json && node bench/run.js
 *      (or npm run bench). Never asserts; exits non-zero only if a script crashed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = process.argv.slice(2);
const only = args
  .find((a) => a.startsWith('--only='))
  ?.slice('--only='.length)
  .split(',');
const skip =
  args
    .find((a) => a.startsWith('--skip='))
    ?.slice('--skip='.length)
    .split(',') ?? [];
const quick = args.includes('--quick');
const passed = args.filter((a) => !a.startsWith('--only=') && !a.startsWith('--skip='));

const trashList = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'dirqueue-bench-run-')), 'trash-list');
fs.writeFileSync(trashList, '');

/** Every bench/*.js but this file and lib.js: core.js first, then the rest in name order. */
const files = fs
  .readdirSync(here)
  .filter((f) => f.endsWith('.js') && f !== 'run.js' && f !== 'lib.js')
  .sort((a, b) => (a === 'core.js' ? -1 : b === 'core.js' ? 1 : a < b ? -1 : 1));
const SCRIPTS = files
  .map((file) =>
    file === 'core.js'
      ? { name: 'core', file, node: ['--expose-gc'], args: [...passed, `--trash-list=${trashList}`], env: {} }
      : {
          name: file.replace(/\.js$/, ''),
          file,
          node: [],
          args: file === 'bullmq.js' ? [`--trash-list=${trashList}`] : [],
          env: quick ? { BENCH_QUICK: '1' } : {},
        },
  )
  .filter((s) => (only === undefined || only.includes(s.name)) && !skip.includes(s.name));

const started = performance.now();
let failed = 0;
try {
  for (const s of SCRIPTS) {
    const t0 = performance.now();
    console.log(`\n##### bench/${s.file}`);
    const r = spawnSync(process.execPath, [...s.node, path.join(here, s.file), ...s.args], {
      stdio: 'inherit',
      env: { ...process.env, ...s.env },
    });
    console.log(`##### bench/${s.file}: ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    if (r.status !== 0) {
      failed++;
      console.log(`bench/${s.file} exited with ${String(r.status ?? r.signal)}`);
    }
  }
} finally {
  for (const dir of fs.readFileSync(trashList, 'utf8').split('\n').filter(Boolean))
    fs.rmSync(dir, { recursive: true, force: true });
  fs.rmSync(path.dirname(trashList), { recursive: true, force: true });
}
console.log(
  `\nbench/run.js: ${SCRIPTS.map((s) => s.file).join(', ')} in ${((performance.now() - started) / 1000).toFixed(1)} s`,
);
process.exit(failed > 0 ? 1 : 0);
