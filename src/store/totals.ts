/**
 * Lifetime counters for `dirq metrics`: how many jobs every process of the
 * queue has enqueued, completed, retried, failed and recovered, kept with
 * no daemon and no shared file that processes would lock for each job.
 *
 * A Queue counts in memory and, every FLUSH_MS while it counts and when it
 * closes, writes what it counted since its last write as a new file that is
 * never rewritten: workers/totals.OWNER.SEQ (a delta). Sweeps fold deltas
 * into workers/totals, which names the deltas it absorbed, so a fold that
 * dies before deleting them counts nothing twice (the next fold deletes
 * them). A fold first renames workers/totals to totals~TOKEN, a name of its
 * own, so that normally one fold at a time rewrites it; a fold that died
 * holding it for FOLD_STALE_MS is taken over. Each base carries a generation
 * and readers trust the highest, so a crash between the steps of a fold
 * never shows a base twice.
 *
 * What is lost: a process killed with SIGKILL loses at most its last
 * FLUSH_MS of counts, and counters are not fsynced. Two folds can overlap only
 * when one stalls for FOLD_STALE_MS inside its few-millisecond window; then a
 * delta may be counted twice or not at all. Counters are for rates and
 * dashboards; the jobs themselves are never at stake.
 */
import fs from 'node:fs';
import { basename } from 'node:path';
import { errnoOf, fsError } from './errors.js';
import { unlinkOrGone } from './entry.js';
import { listDir, move, removeQuietly, writeNew } from './files.js';
import type { Layout } from './layout.js';
import { counterTmpName, deltaName, heldBaseName, isDeltaName, isHeldBaseName, TOTALS_BASE } from './names.js';
import { openRegular } from './open.js';

export const COUNTERS = ['enqueued', 'completed', 'retried', 'failed', 'recovered'] as const;
export type Counter = (typeof COUNTERS)[number];

/** Counts per job type, then per counter (null-prototype objects: a type may be any string, "__proto__" too). */
export type Totals = Record<string, Partial<Record<Counter, number>>>;

const noTotals = (): Totals => Object.create(null) as Totals;

/** How often a counting Queue writes a delta. */
export const FLUSH_MS = 5000;
/** A fold holding workers/totals this long (filesystem clock) is taken to have died. */
export const FOLD_STALE_MS = 60_000;

/** Names come from listings and from the base's `absorbed`: only what the codec calls a delta is ever read or deleted. */
const isDelta = isDeltaName;
/** Counter files are small; a larger one is not ours and is not read. */
const MAX_BYTES = 16 * 1024 * 1024;

interface Base {
  gen: number;
  counts: Totals;
  /** Deltas already in `counts`: skip them, delete them. */
  absorbed: string[];
}

/** One Queue's counts since its last write. */
export class Tally {
  #layout: Layout;
  #owner: string;
  #seq = 0;
  #counts = noTotals();
  #dirty = false;

  constructor(layout: Layout, owner: string) {
    this.#layout = layout;
    this.#owner = owner;
  }

  add(type: string, counter: Counter, n = 1): void {
    const row = (this.#counts[type] ??= Object.create(null) as Totals[string]);
    row[counter] = (row[counter] ?? 0) + n;
    this.#dirty = true;
  }

  /** What was counted since the last write. */
  get pending(): Totals {
    return this.#counts;
  }

  /** Write what was counted since the last write, if anything, as a new delta. */
  async flush(): Promise<void> {
    if (!this.#dirty) return;
    const counts = this.#counts;
    this.#counts = noTotals();
    this.#dirty = false;
    const name = deltaName(this.#owner, this.#seq++);
    const tmp = this.#layout.file('tmp', counterTmpName(name));
    try {
      await writeNew(tmp, `${JSON.stringify({ counts })}\n`, false, this.#layout.fileMode);
      moveOrDrop(tmp, this.#layout.file('workers', name));
    } catch (error) {
      // not written: keep the counts for the next write (the next delta gets a new seq, so no name is reused)
      addInto(this.#counts, counts);
      this.#dirty = true;
      throw error;
    }
  }
}

/** Rename a counter file into place; when the rename fails, remove it from tmp/ (or leave it for the sweeps, by its writer's heartbeat). */
function moveOrDrop(tmp: string, to: string): void {
  try {
    move(tmp, to);
  } catch (error) {
    removeQuietly(tmp);
    throw error;
  }
}

/**
 * Everything counted so far: the newest base plus the deltas it has not
 * absorbed. A fold that ends while this reads deletes files it listed; then
 * it reads again, so a scrape never sees a counter drop.
 */
export function readTotals(layout: Layout, pending: Totals = noTotals()): Totals {
  for (let tries = 1; ; tries++) {
    const read = new Reader(layout);
    const names = listDir(layout.paths.workers);
    const base = newestBase(read, names);
    const sum = noTotals();
    addInto(sum, base.counts);
    addInto(sum, pending);
    const absorbed = new Set(base.absorbed);
    for (const name of names) if (isDelta(name) && !absorbed.has(name)) addInto(sum, read.counts(name));
    if (!read.vanished || tries === 5) return sum;
  }
}

/**
 * Fold every delta into workers/totals. `token` names this fold (a claim
 * token); `now` is the filesystem's clock. Returns the deltas folded.
 */
export async function foldTotals(layout: Layout, token: string, now: number): Promise<number> {
  const present = listDir(layout.paths.workers);
  if (present.includes(TOTALS_BASE) && !present.some(isDelta)) return 0; // nothing to fold
  const basePath = layout.file('workers', TOTALS_BASE);
  const mine = layout.file('workers', heldBaseName(token));
  if (!move(basePath, mine, true) && !(await takeOverStaleFold(layout, mine, now))) return 0;
  const read = new Reader(layout);
  const names = listDir(layout.paths.workers);
  const base = read.base(heldBaseName(token)) ?? newestBase(read, names);
  for (const name of base.absorbed) unlinkOrGone(layout.file('workers', name)); // left by a fold that died
  const absorbed = new Set(base.absorbed);
  const deltas = names.filter((name) => isDelta(name) && !absorbed.has(name));
  const counts = noTotals();
  addInto(counts, base.counts);
  for (const name of deltas) addInto(counts, read.counts(name));
  const next: Base = { gen: base.gen + 1, counts, absorbed: deltas };
  const tmp = layout.file('tmp', counterTmpName(heldBaseName(token)));
  try {
    await writeNew(tmp, `${JSON.stringify(next)}\n`, false, layout.fileMode);
    moveOrDrop(tmp, basePath);
  } catch (error) {
    // no new base (a full disk): give the one we hold its name back, so that the next sweep folds at once rather
    // than FOLD_STALE_MS later, when this copy would be taken over as a dead fold's
    try {
      move(mine, basePath);
    } catch {
      // left held: readers still count it, and a fold takes it over once stale
    }
    throw error;
  }
  for (const name of deltas) unlinkOrGone(layout.file('workers', name));
  unlinkOrGone(mine);
  for (const name of names) {
    if (
      isHeldBaseName(name) &&
      (read.base(name)?.gen ?? 0) < next.gen &&
      olderThan(layout.file('workers', name), now - FOLD_STALE_MS)
    ) {
      unlinkOrGone(layout.file('workers', name)); // a fold's leftover, now outdated
    }
  }
  return deltas.length;
}

/**
 * workers/totals is missing: another fold holds it (leave it), one died
 * holding it (take it over), or there is none yet: create an empty one, so
 * that from now on only a rename can take it, and fold next time. (Folding
 * it at once could race a fold that took the new base meanwhile: measured
 * here as a delta lost when 4 processes folded a queue's first 100 deltas.)
 * True when `mine` holds the base.
 */
async function takeOverStaleFold(layout: Layout, mine: string, now: number): Promise<boolean> {
  const held = listDir(layout.paths.workers).filter(isHeldBaseName);
  if (held.length === 0) {
    const tmp = layout.file('tmp', counterTmpName(heldBaseName(basename(mine))));
    await writeNew(tmp, `${JSON.stringify({ gen: 0, counts: {}, absorbed: [] })}\n`, false, layout.fileMode);
    try {
      fs.linkSync(tmp, layout.file('workers', TOTALS_BASE)); // exclusive: a racing creator's base stands
    } catch (error) {
      if (errnoOf(error) !== 'EEXIST') throw fsError(`creating ${layout.file('workers', TOTALS_BASE)}`, error);
    } finally {
      removeQuietly(tmp); // or left for the sweeps (tmpWriterOf): the base stands either way
    }
    return false;
  }
  const read = new Reader(layout);
  const newest = held.sort((a, b) => (read.base(b)?.gen ?? -1) - (read.base(a)?.gen ?? -1))[0]!;
  const path = layout.file('workers', newest);
  return olderThan(path, now - FOLD_STALE_MS) && move(path, mine, true);
}

/** The base readers trust: workers/totals or a fold's copy, whichever has the highest generation. */
function newestBase(read: Reader, names: readonly string[]): Base {
  let best: Base = { gen: -1, counts: noTotals(), absorbed: [] };
  for (const name of names) {
    if (name !== TOTALS_BASE && !isHeldBaseName(name)) continue;
    const base = read.base(name);
    if (base !== undefined && base.gen > best.gen) best = base;
  }
  return best;
}

/** Reads counter files in workers/, noting whether one it was asked for had vanished. */
class Reader {
  vanished = false;
  #layout: Layout;

  constructor(layout: Layout) {
    this.#layout = layout;
  }

  base(name: string): Base | undefined {
    const value = this.#json(name) as Partial<Base> | undefined;
    if (typeof value !== 'object' || value === null || typeof value.gen !== 'number' || !Array.isArray(value.absorbed))
      return undefined;
    // `absorbed` names files this fold deletes: a name that is not a delta's ("../../x") is dropped here (S1)
    return {
      gen: value.gen,
      counts: checkCounts(value.counts),
      absorbed: value.absorbed.filter((n): n is string => typeof n === 'string' && isDelta(n)),
    };
  }

  counts(name: string): Totals {
    const value = this.#json(name) as { counts?: unknown } | undefined;
    return checkCounts(typeof value === 'object' && value !== null ? value.counts : undefined);
  }

  /** A file's JSON, or undefined when it is gone or not ours (a stray file never stops a count). */
  #json(name: string): unknown {
    let text: string;
    try {
      const fd = openRegular(this.#layout.file('workers', name), fs.constants.O_RDONLY);
      if (fd === undefined) this.vanished = true;
      if (typeof fd !== 'number') return undefined; // gone, or a link, FIFO or directory: never followed
      try {
        text = fs.fstatSync(fd).size > MAX_BYTES ? '' : fs.readFileSync(fd, 'utf8');
      } finally {
        fs.closeSync(fd);
      }
    } catch {
      return undefined;
    }
    try {
      return JSON.parse(text) as unknown;
    } catch {
      return undefined;
    }
  }
}

/** Keep only well-formed counts: type -> counter -> non-negative integer. */
function checkCounts(value: unknown): Totals {
  const out = noTotals();
  if (typeof value !== 'object' || value === null) return out;
  for (const [type, row] of Object.entries(value)) {
    if (typeof row !== 'object' || row === null) continue;
    for (const counter of COUNTERS) {
      const n = (row as Record<string, unknown>)[counter];
      if (Number.isSafeInteger(n) && (n as number) > 0)
        (out[type] ??= Object.create(null) as Totals[string])[counter] = n as number;
    }
  }
  return out;
}

function addInto(sum: Totals, counts: Totals): void {
  for (const [type, row] of Object.entries(counts)) {
    const into = (sum[type] ??= Object.create(null) as Totals[string]);
    for (const counter of COUNTERS) if (row[counter] !== undefined) into[counter] = (into[counter] ?? 0) + row[counter];
  }
}

/** By ctime: the rename that made a fold's copy stamps it, while its mtime is when the base was written. */
function olderThan(path: string, cutoff: number): boolean {
  try {
    return fs.lstatSync(path).ctimeMs < cutoff;
  } catch {
    return false;
  }
}
