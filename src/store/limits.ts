/**
 * Limit files (FORMAT.md, "Limits"). limits/TYPE/ holds what limits one type:
 *
 *   limit.json     the limit: {"concurrency":3,"rate":{"max":100,"per":1000},"groupConcurrency":2,"at":..,"by":..}
 *   0 1 2          running slots: slot K is held while the name K exists, a hard link to its holder's
 *                  heartbeat (workers/OWNER). link(2) fails with EEXIST when the name is taken, so one
 *                  slot has one holder whatever the number of processes and hosts, and no slot file is
 *                  ever made or read to take one. Its content and mtime are the holder's heartbeat's, so
 *                  a sweep judges a slot exactly as it judges the holder's claims (rescue.ts).
 *   g.TAG.0        slot 0 of the group tagged TAG (groupConcurrency), taken the same way
 *   r.K@T          rate token K (0 <= K < max), last used to start a job at T (µs, the filesystem's
 *                  clock). Starting a job renames r.K@T to r.K@NOW, only when T + per <= NOW: the old
 *                  name is the one read, so one use of a token has one winner, and a token is used at
 *                  most once in any window of `per`: at most `max` starts per window.
 *   .reap.OWNER.T  a gone holder's slot that OWNER's sweep moved aside before deleting it
 *
 * Slots exist only while held; rate tokens are made by q.limit and by sweeps (the missing K < max,
 * when two listings agree it is missing: a rename seen in neither listing would need two uses of one
 * token within the time of two readdirs, far less than the shortest `per`).
 */
import fs from 'node:fs';
import { errnoOf, fsError } from './errors.js';
import { closeQuietly, listDir, removeQuietly, writeNew } from './files.js';
import type { Layout } from './layout.js';
import { createExclusive, openRegularStat } from './open.js';
import { ensureFlowDir, flowDirThere } from './pauses.js';
import { limitContent, parseLimitContent, type LimitSpec, type StoredLimit } from './limit-spec.js';
import {
  parseReapName,
  LIMIT_FILE,
  LIMITS_DIR,
  limitDirName,
  limitTmpName,
  parseLimitDirName,
  parseRateTokenName,
  parseSlotName,
  rateTokenName,
  reapName,
} from './names.js';

/** A limit file is a hundred bytes or so; one larger than this is not one. */
const LIMIT_MAX_BYTES = 4096;

export function limitsDir(layout: Layout): string {
  return `${layout.root}/${LIMITS_DIR}`;
}

/** limits/NAME: the directory of `type`'s limits (throws EBADTYPE for a type no job can have). */
export function typeLimitDir(layout: Layout, type: string): string {
  return `${limitsDir(layout)}/${limitDirName(type)}`;
}

/** One type's limit as read from limits/. */
export interface LimitEntry {
  type: string;
  /** Its directory, limits/NAME. */
  dir: string;
  limit: StoredLimit;
  /** The file's inode and mtime: a later look tells whether it changed. */
  ino: number;
  mtimeMs: number;
}

/** A file or directory in limits/ that is no limit: reported (fsck, a 'warning'), never obeyed. */
export interface LimitProblem {
  /** Relative to limits/. */
  name: string;
  reason: string;
}

/** Write `type`'s limit (one rename over limit.json), then make or remove its rate tokens to match. */
export async function writeLimit(layout: Layout, type: string, spec: LimitSpec, owner: string): Promise<void> {
  const dir = typeLimitDir(layout, type); // EBADTYPE before anything is written
  ensureFlowDir(layout, limitsDir(layout));
  ensureFlowDir(layout, dir);
  // tokens first: a limit whose file is read before its tokens exist would refuse every start for a moment
  reconcileRateTokens(layout, dir, spec.rate?.max ?? 0);
  const tmp = layout.file('tmp', limitTmpName(owner));
  await writeNew(tmp, limitContent(spec, owner), true, layout.fileMode);
  const target = `${dir}/${LIMIT_FILE}`;
  try {
    fs.renameSync(tmp, target);
  } catch (error) {
    removeQuietly(tmp); // or left for the sweeps: its name carries its writer
    throw fsError(`setting the limit: renaming ${tmp} to ${target}`, error);
  }
}

/** Remove `type`'s limit and its rate tokens (slots held stay until their jobs end). Resolves false when there was none. */
export function removeLimit(layout: Layout, type: string): boolean {
  const dir = typeLimitDir(layout, type);
  if (!flowDirThere(layout, dir)) return false;
  let had: boolean;
  try {
    fs.unlinkSync(`${dir}/${LIMIT_FILE}`);
    had = true;
  } catch (error) {
    if (errnoOf(error) !== 'ENOENT') throw fsError(`removing the limit ${dir}/${LIMIT_FILE}`, error);
    had = false;
  }
  reconcileRateTokens(layout, dir, 0);
  try {
    fs.rmdirSync(dir);
  } catch {
    // slots still held (their holders delete them), or a limit set again meanwhile
  }
  return had;
}

/** Every limit in limits/, by type, and what is there that is no limit. */
export function readLimits(layout: Layout): { limits: LimitEntry[]; problems: LimitProblem[] } {
  const limits: LimitEntry[] = [];
  const problems: LimitProblem[] = [];
  const root = limitsDir(layout);
  if (!flowDirThere(layout, root)) return { limits, problems };
  for (const name of listDir(root).sort()) {
    if (name.startsWith('.') || name.endsWith('~')) continue;
    const type = parseLimitDirName(name);
    if (type === undefined) {
      problems.push({ name, reason: 'its name is no type encoded as in job names' });
      continue;
    }
    const read = readLimit(`${root}/${name}`, type);
    if (read === undefined) continue; // no limit.json: a limit cleared while slots were held, or gone meanwhile
    if ('reason' in read) problems.push({ name: `${name}/${LIMIT_FILE}`, reason: read.reason });
    else limits.push(read);
  }
  return { limits, problems };
}

/** The limit in `dir`/limit.json, a reason it is none, or undefined when there is no file. */
export function readLimit(dir: string, type: string): LimitEntry | { reason: string } | undefined {
  const path = `${dir}/${LIMIT_FILE}`;
  let opened;
  try {
    opened = openRegularStat(path, fs.constants.O_RDONLY);
  } catch (error) {
    if (errnoOf(error) === 'ENOTDIR') return { reason: `${dir} is not a directory` };
    throw error;
  }
  if (opened === undefined) return undefined;
  if ('kind' in opened) return { reason: `it is ${opened.kind}, not a file` };
  let text: string;
  try {
    if (opened.stat.size > LIMIT_MAX_BYTES) return { reason: `it is ${opened.stat.size} bytes, too large` };
    text = fs.readFileSync(opened.fd, 'utf8');
  } catch (error) {
    throw fsError(`reading the limit ${path}`, error);
  } finally {
    closeQuietly(opened.fd); // read only: a failed close changes nothing
  }
  const limit = parseLimitContent(text);
  if ('reason' in limit) return limit;
  return { type, dir, limit, ino: opened.stat.ino, mtimeMs: opened.stat.mtimeMs };
}

/** What a type's directory holds: held slots, rate tokens, and reaped slots left aside. */
export interface TypeDirListing {
  /** Held slots: type slots (tag undefined) and group slots. */
  slots: { name: string; k: number; tag: string | undefined }[];
  tokens: { name: string; k: number; usedUs: number }[];
  reaps: string[];
  /** Names that are none of these (nor limit.json): fsck names them. */
  strays: string[];
}

/** One readdir of a type's directory, sorted into what it holds; a missing directory holds nothing. */
export function listTypeDir(dir: string): TypeDirListing {
  const listing: TypeDirListing = { slots: [], tokens: [], reaps: [], strays: [] };
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch (error) {
    const code = errnoOf(error);
    if (code === 'ENOENT' || code === 'ENOTDIR') return listing;
    throw fsError(`listing ${dir}`, error);
  }
  for (const name of names) {
    if (name === LIMIT_FILE || name.endsWith('~')) continue;
    const slot = parseSlotName(name);
    if (slot !== undefined) {
      listing.slots.push({ name, ...slot });
      continue;
    }
    const token = parseRateTokenName(name);
    if (token !== undefined) listing.tokens.push({ name, ...token });
    else if (parseReapName(name) !== undefined) listing.reaps.push(name);
    else listing.strays.push(name);
  }
  return listing;
}

/**
 * Take the slot `name` in `dir` for the holder whose heartbeat is at `heartbeat`: one link(2).
 * True when taken; false when another holds it. ENOENT (the directory or the heartbeat gone) throws,
 * with its code, for the caller to look again.
 */
export function linkSlot(heartbeat: string, dir: string, name: string): boolean {
  try {
    fs.linkSync(heartbeat, `${dir}/${name}`);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw fsError(`taking the slot ${dir}/${name}`, error);
  }
}

/**
 * Give back the slot `name` in `dir` if it is still the link to our heartbeat (inode `ino`): a slot
 * a sweep took from us (judged dead) and someone else now holds is not ours to delete. False when it
 * was not ours any more.
 */
export function unlinkSlot(dir: string, name: string, ino: number): boolean {
  const path = `${dir}/${name}`;
  try {
    if (fs.lstatSync(path).ino !== ino) return false;
    fs.unlinkSync(path);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`giving back the slot ${path}`, error);
  }
}

/**
 * Delete the slot `name` of a holder judged gone, unless it changed hands since it was judged (its
 * inode `ino`): it is renamed aside (one winner among sweepers), and what moved, if it is not the
 * slot judged, is linked back (never over a slot taken meanwhile). Returns whether the judged slot went.
 */
export function reapSlot(dir: string, name: string, ino: number, owner: string): boolean {
  const path = `${dir}/${name}`;
  const aside = `${dir}/${reapName(owner)}`;
  try {
    fs.renameSync(path, aside);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`freeing the slot ${path} of a holder that is gone`, error);
  }
  let same: boolean;
  try {
    same = fs.lstatSync(aside).ino === ino;
  } catch {
    same = false;
  }
  if (!same) {
    try {
      fs.linkSync(aside, path);
    } catch {
      // EEXIST: taken again meanwhile; the holder that moved aside keeps running, one over the limit until it ends
    }
  }
  removeQuietly(aside);
  return same;
}

/**
 * Use the rate token `from` (r.K@T) for a start at `nowUs`: one rename to r.K@NOW. False when another
 * process used it first.
 */
export function useRateToken(dir: string, from: string, to: string): boolean {
  try {
    fs.renameSync(`${dir}/${from}`, `${dir}/${to}`);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`using the rate token ${dir}/${from}`, error);
  }
}

/**
 * Make the rate tokens of `dir` match `max`: the missing K < max are made (r.K@0, never used), the K >= max
 * deleted, and of two names of one K the one used earlier deleted (the later use is what bounds the window).
 * Returns how many names were made and deleted.
 */
export function reconcileRateTokens(layout: Layout, dir: string, max: number): { made: number; deleted: number } {
  let made = 0;
  let deleted = 0;
  const plan = planRateTokens(listTypeDir(dir).tokens, max);
  for (const name of plan.extra) if (unlinkName(dir, name)) deleted++;
  if (plan.missing.length > 0) {
    // a token renamed during the listing may be in neither name: believe it missing only if a second listing agrees
    const again = new Set(listTypeDir(dir).tokens.map((t) => t.k));
    for (const k of plan.missing) {
      if (again.has(k)) continue;
      if (makeToken(layout, dir, k)) made++;
    }
  }
  return { made, deleted };
}

/**
 * What reconcileRateTokens would change, from one listing's tokens: the names to delete (K >= max, and of
 * two names of one K the one used earlier) and the K < max with no name. Changes nothing (fsck reports it).
 */
export function planRateTokens(
  tokens: readonly { name: string; k: number; usedUs: number }[],
  max: number,
): { extra: string[]; missing: number[] } {
  const byK = new Map<number, { name: string; usedUs: number }[]>();
  for (const token of tokens) byK.set(token.k, [...(byK.get(token.k) ?? []), token]);
  const extra: string[] = [];
  for (const [k, names] of byK) {
    const keep = k < max ? names.reduce((a, b) => (b.usedUs > a.usedUs ? b : a)) : undefined;
    for (const token of names) if (token !== keep) extra.push(token.name);
  }
  const missing: number[] = [];
  for (let k = 0; k < max; k++) if (!byK.has(k)) missing.push(k);
  return { extra, missing };
}

function makeToken(layout: Layout, dir: string, k: number): boolean {
  const path = `${dir}/${rateTokenName(k, 0)}`;
  try {
    fs.closeSync(createExclusive(path, fs.constants.O_WRONLY, layout.fileMode ?? 0o666));
    return true;
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return false;
    throw fsError(`making the rate token ${path}`, error);
  }
}

function unlinkName(dir: string, name: string): boolean {
  try {
    fs.unlinkSync(`${dir}/${name}`);
    return true;
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return false;
    throw fsError(`deleting ${dir}/${name}`, error);
  }
}
