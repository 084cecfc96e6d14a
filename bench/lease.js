// bench/lease.js: what a claim's sign of life costs, per held job.
//
// Goal (issue 3): choose between refreshing each active file's mtime (futimes per held
// job per beat) and one heartbeat file per process (one write per beat, whatever it holds).
// Cases: futimes of N held job files vs one rewrite+fstat of a heartbeat file, N = 1, 50, 1000.
// Settings: files in a temp dir on the project's filesystem (BENCH_DIR to override).
// Run: node bench/lease.js
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const dir = fs.mkdtempSync(path.join(process.env.BENCH_DIR ?? os.tmpdir(), 'dirq-bench-lease-'));
const ROUNDS = 200;

/**
 * The median time of `fn` over ROUNDS runs after a warm-up, in microseconds.
 * @param {() => void} fn
 * @returns {number}
 */
function time(fn) {
  for (let i = 0; i < 20; i++) fn(); // warm up
  const samples = [];
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now();
    fn();
    samples.push((performance.now() - t0) * 1000);
  }
  return /** @type {number} */ (samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)]);
}

const heartbeat = fs.openSync(path.join(dir, 'heartbeat'), 'w+');
const identity = Buffer.from(`${JSON.stringify({ host: os.hostname(), pid: process.pid })}\n`);
const beat = time(() => {
  fs.writeSync(heartbeat, identity, 0, identity.length, 0);
  fs.fstatSync(heartbeat);
});
console.log(`one heartbeat (rewrite + fstat): ${beat.toFixed(1)} us per beat, whatever the process holds`);
for (const held of [1, 50, 1000]) {
  const fds = Array.from({ length: held }, (_, i) => fs.openSync(path.join(dir, `job${i}`), 'w+'));
  const us = time(() => {
    const now = new Date();
    for (const fd of fds) fs.futimesSync(fd, now, now);
  });
  console.log(
    `futimes of ${String(held).padStart(4)} held jobs: ${us.toFixed(1).padStart(7)} us per beat = ${(us / held).toFixed(2)} us per job per beat (${(us / beat).toFixed(1)}x the heartbeat)`,
  );
  for (const fd of fds) fs.closeSync(fd);
}
fs.closeSync(heartbeat);
fs.rmSync(dir, { recursive: true, force: true });
