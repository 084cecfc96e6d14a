/**
 * bench/bullmq-table.js: README's side-by-side table, made from the --json files of
 * bench/bullmq.js runs (one per filesystem), so the table is never typed by hand.
 *
 * Run:   node bench/bullmq-table.js /tmp/bullmq-ext4.json /tmp/bullmq-tmpfs.json
 * Prints one Markdown table: a row per case, a column per filesystem and durability level,
 * each cell "dirqueue vs BullMQ: ratio", the ratio in bold where dirqueue is ahead (> 1), and for the
 * enqueue rows the raw floor of the same run (bench/bullmq.js floors).
 */
import fs from 'node:fs';

/**
 * @typedef {{ dirqueue: number, bullmq: number, floor?: number }} Raw
 * @typedef {{
 *   date?: string, bullmq: string, redis?: string, reps: number, n: number,
 *   fs?: { label: string, dir: string },
 *   results: Record<string, Record<string, Raw>>,
 * }} Run
 */

const LEVELS = /** @type {const} */ ([
  ['nofsync', 'no fsync'],
  ['fsync', "fsync ('all' vs always)"],
]);

const files = process.argv.slice(2);
if (files.length === 0) {
  console.error('usage: node bench/bullmq-table.js RUN.json [RUN.json ...]  (the --json files of bench/bullmq.js)');
  process.exit(2);
}
const runs = files.map(
  // eslint-disable-next-line @typescript-eslint/no-unsafe-return -- ESLint does not see JSDoc casts (typescript-eslint#4824): JSON.parse's any is cast to Run
  (f) => /** @type {Run} */ (JSON.parse(fs.readFileSync(f, 'utf8'))),
);

/** "23.6k/s" for a rate, "0.337 ms" for a latency. */
function value(/** @type {number} */ x, /** @type {boolean} */ latency) {
  if (latency) return `${x.toFixed(3)} ms`;
  return x >= 1000 ? `${(x / 1000).toFixed(x >= 10_000 ? 1 : 2)}k/s` : `${Math.round(x)}/s`;
}

/** A cell: both sides and how far dirqueue is ahead (> 1) or behind. */
function cell(/** @type {string} */ name, /** @type {Raw | undefined} */ raw) {
  if (raw === undefined) return '';
  const latency = name.endsWith('(ms)');
  const ratio = latency ? raw.bullmq / raw.dirqueue : raw.dirqueue / raw.bullmq;
  const r = `${ratio.toFixed(2)}x`;
  const floor = raw.floor === undefined ? '' : ` (floor ${value(raw.floor, latency)})`;
  return `${value(raw.dirqueue, latency)} vs ${value(raw.bullmq, latency)}: ${ratio > 1 ? `**${r}**` : r}${floor}`;
}

/** @type {{ run: Run, level: string, title: string }[]} */
const columns = runs.flatMap((run) =>
  LEVELS.filter(([key]) => run.results[key] !== undefined).map(([key, title]) => ({
    run,
    level: key,
    title: `${run.fs?.label ?? '?'}, ${title}`,
  })),
);
/** Every case any run measured, in the order the first run that has it lists it. */
const cases = [...new Set(columns.flatMap((c) => Object.keys(c.run.results[c.level] ?? {})))];
const strip = (/** @type {string} */ name) => name.replace(/ \((jobs\/s|ms)\)$/, '').replace(/ \d{1,3}(,\d{3})+/, '');

console.log(`| case | ${columns.map((c) => c.title).join(' | ')} |`);
console.log(`|---|${columns.map(() => '---').join('|')}|`);
for (const name of cases) {
  console.log(`| ${strip(name)} | ${columns.map((c) => cell(name, c.run.results[c.level]?.[name])).join(' | ')} |`);
}
console.log('');
for (const run of runs) {
  console.log(
    `${run.fs?.label ?? '?'} (${run.fs?.dir ?? '?'}): BullMQ ${run.bullmq} on ${run.redis ?? 'Redis'}, ` +
      `${run.n.toLocaleString('en-US')} jobs, medians of ${run.reps}${run.date === undefined ? '' : `, ${run.date.slice(0, 10)}`}`,
  );
}
