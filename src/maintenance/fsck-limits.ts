/**
 * fsck's part in limits/ (store/limits.ts, FORMAT.md "Limits"), beside fsck.ts, which calls it with its
 * own ways to report and set aside. What it finds, and what repair does:
 * - stray: limits/ that is not a directory; a name in limits/ that is no type's (not encoded as in job
 *   names), or a type's name that is a link or a file; a name in a type's directory that is none of
 *   limit.json, a running slot (K, g.TAG.K), a rate token (r.K@T) or a reap leftover; a slot that is not a
 *   regular file (it holds the slot for no one) -> set aside as NAME~ (renamed in place, never deleted)
 * - limit: a limit.json that cannot be used (reported, never changed, as a broken schedule file: it is not
 *   obeyed until fixed, set again or cleared); rate tokens that do not match the limit (a K >= max, a second
 *   name of one K, tokens of a type without a rate, a K < max missing) -> delete or make them, as a sweep's
 *   reconcileRateTokens does
 * - stale-helper: a running slot whose holder is gone (its process dead on this host, or its heartbeat silent
 *   for helperMaxAge) -> freed with reapSlot, as a sweep frees it (slots.ts judges both); a slot a sweeper
 *   moved aside (.reap.TOKEN) and left when it died, older than helperMaxAge -> delete it
 * Dot files (other than reap leftovers) and names ending in `~` are skipped, as everywhere in fsck.
 */
import path from 'node:path';
import type { Layout } from '../store/layout.js';
import { lstatOrGone, unlinkOrGone } from '../store/entry.js';
import type fs from 'node:fs';
import { describeKind } from '../store/open.js';
import { myIdentity } from '../store/liveness.js';
import {
  limitsDir,
  listTypeDir,
  planRateTokens,
  readLimit,
  reapSlot,
  reconcileRateTokens,
  type TypeDirListing,
} from '../store/limits.js';
import { listDir } from '../store/files.js';
import { LIMIT_FILE, isSetAsideName, NameMaker, parseLimitDirName } from '../store/names.js';
import { goneSlots, leftoverReaps } from './slots.js';

/** fsck's owner token, named in the slots it moves aside to free (store/limits.ts reapSlot). */
const FSCK_OWNER = new NameMaker().owner;

/** How fsck.ts lets this module report: its `found` and `stray`, and its judgement of age. */
export interface LimitsCheck {
  layout: Layout;
  /** fsck's clock, ms. */
  now: number;
  /** A holder silent this long is gone, and a reap leftover this old is stale (fsck's helperMaxAge). */
  helperMaxAge: number;
  found(
    kind: 'limit' | 'stale-helper',
    file: string,
    problem: string,
    todo: string,
    fix?: () => string | undefined,
  ): void;
  stray(file: string, problem: string, todo: string): void;
  /** "2h ago" for a time in ms. */
  ago(ms: number): string;
}

export function checkLimits(c: LimitsCheck): void {
  const root = limitsDir(c.layout);
  const stat = lstatOrGone(root);
  if (stat === undefined) return; // made by the first limit: a queue without it has none
  if (!stat.isDirectory()) {
    c.stray(root, `limits/ is ${kind(stat)}, not a directory: no limit there is obeyed`, 'move it away');
    return;
  }
  for (const name of listDir(root).sort()) {
    if (name.startsWith('.') || isSetAsideName(name)) continue;
    const dir = path.join(root, name);
    const type = parseLimitDirName(name);
    if (type === undefined) {
      c.stray(
        dir,
        "not a type's directory (limits/TYPE, the type encoded as in job names): not obeyed",
        'move it away',
      );
      continue;
    }
    const entry = lstatOrGone(dir);
    if (entry === undefined) continue; // a cleared limit's directory removed meanwhile
    if (!entry.isDirectory()) {
      c.stray(dir, `${kind(entry)} where the directory of the limits of ${type} belongs`, 'move it away');
      continue;
    }
    checkType(c, dir, type);
  }
}

function checkType(c: LimitsCheck, dir: string, type: string): void {
  const limit = readLimit(dir, type);
  const broken = limit !== undefined && 'reason' in limit;
  if (broken) {
    const root = c.layout.root;
    c.found(
      'limit',
      path.join(dir, LIMIT_FILE),
      `the limit on ${type} cannot be used, so it is not obeyed: ${limit.reason}`,
      `fix the file, or set the limit again (dirq limit ${root} ${type} ...), or remove it (dirq limit ${root} ${type} --clear)`,
    );
  }
  const listing = listTypeDir(dir);
  for (const name of listing.strays) {
    if (name.startsWith('.')) continue;
    c.stray(
      path.join(dir, name),
      'not a limit file, a running slot (K, g.TAG.K), a rate token (r.K@T) or a reap leftover: nothing reads it',
      'move it away',
    );
  }
  checkSlots(c, dir, type, listing);
  // a broken file's tokens wait until it is fixed, as in a sweep (slots.ts)
  if (!broken) checkTokens(c, dir, type, limit?.limit.rate?.max ?? 0, listing);
}

function checkSlots(c: LimitsCheck, dir: string, type: string, listing: TypeDirListing): void {
  for (const slot of listing.slots) {
    const file = path.join(dir, slot.name);
    const stat = lstatOrGone(file);
    if (stat === undefined || stat.isFile()) continue;
    c.stray(
      file,
      `a running slot of ${type} that is ${kind(stat)}, not a hard link to a heartbeat: it holds the slot for no one`,
      'remove it',
    );
  }
  for (const gone of goneSlots(dir, listing, myIdentity(), c.helperMaxAge, c.now)) {
    const why = gone.dead ? 'its process is gone' : `silent since ${c.ago(gone.mtimeMs)}`;
    c.found(
      'stale-helper',
      path.join(dir, gone.name),
      `a running slot of ${type} held by a worker that is gone (${why})`,
      'run with --repair to free it (a sweep does too)',
      () => (reapSlot(dir, gone.name, gone.ino, FSCK_OWNER) ? 'freed' : undefined),
    );
  }
  for (const reap of leftoverReaps(c.layout, dir, listing, FSCK_OWNER, c.helperMaxAge, c.now)) {
    const file = path.join(dir, reap);
    c.found(
      'stale-helper',
      file,
      'a running slot a sweep moved aside to free, left by a sweeper that died',
      'run with --repair to delete it',
      () => (unlinkOrGone(file) ? 'deleted' : undefined),
    );
  }
}

/**
 * Rate tokens against the limit's `max` (0: no rate). A token renamed during a listing may show under both
 * names or neither, so only what two listings agree on is reported.
 */
function checkTokens(c: LimitsCheck, dir: string, type: string, max: number, listing: TypeDirListing): void {
  const first = planRateTokens(listing.tokens, max);
  if (first.extra.length === 0 && first.missing.length === 0) return;
  const again = planRateTokens(listTypeDir(dir).tokens, max);
  const extra = new Set(again.extra);
  const kOf = new Map(listing.tokens.map((t) => [t.name, t.k]));
  for (const name of first.extra.filter((n) => extra.has(n))) {
    const k = kOf.get(name)!;
    const problem =
      max === 0
        ? `a rate token of ${type}, which has no rate limit`
        : k >= max
          ? `rate token ${k} of ${type}, beyond the limit's ${max} (tokens 0 to ${max - 1})`
          : `a second name of rate token ${k} of ${type} (the one used later counts)`;
    const file = path.join(dir, name);
    c.found('limit', file, problem, 'run with --repair to delete it (a sweep does too)', () =>
      unlinkOrGone(file) ? 'deleted' : undefined,
    );
  }
  const missing = first.missing.filter((k) => again.missing.includes(k));
  if (missing.length === 0) return;
  c.found(
    'limit',
    dir,
    `the rate limit of ${type} has ${max - missing.length} of its ${max} tokens (missing: ${missing.join(', ')}): it allows fewer starts than set`,
    'run with --repair to make the missing ones (a sweep does too)',
    () => {
      const { made } = reconcileRateTokens(c.layout, dir, max);
      return planRateTokens(listTypeDir(dir).tokens, max).missing.length === 0 ? `made ${made}` : undefined;
    },
  );
}

/** "a file", "a symbolic link", "a directory", ... (describeKind names only what is not a regular file). */
function kind(stat: fs.Stats): string {
  return stat.isFile() ? 'a file' : describeKind(stat);
}
