/**
 * The maintenance lock (I6): workers/.lock, a regular file created
 * exclusively (O_CREAT | O_EXCL: one winner) by the process that sweeps, and
 * deleted when its sweep ends.
 *
 * Why not proper-lockfile, the design card's choice: loading it installs
 * signal-exit, which replaces the default action of SIGTERM and SIGINT with
 * a JavaScript handler for the life of the host process, so a process whose
 * event loop is busy (a processor stuck in a loop) can no longer be stopped
 * by kill or Ctrl-C (defects issue, D12). A library must not change that.
 * Its stale takeover also judged another host's lock by the local clock.
 *
 * A holder that dies leaves the file. The file names its holder (its owner
 * token and identity, as a heartbeat does), and is made complete before it
 * appears (written in tmp/, then link(2)ed to its name, which fails if a lock
 * exists), so a taker can always read who holds it: a holder on this host and
 * boot whose process is gone, by its own identity or by its owner's heartbeat,
 * has left a stale lock at once. Otherwise the lock is stale once its mtime,
 * stamped by the filesystem, is `staleMs` old in the filesystem's clock
 * (liveness.ts filesystemNow), so a host whose clock is off neither steals a
 * live lock nor waits longer for a dead one. A taker moves the stale file
 * aside by rename (of several takers one wins), checks that what it moved is
 * the file it judged (else it was a fresh lock made meanwhile, and it is put
 * back), deletes it, and then competes for a fresh one like anyone.
 *
 * The lock only keeps sweeps to one at a time normally. A sweep that runs
 * longer than `staleMs`, or a taker that misjudges, lets a second one in, and
 * that is harmless: every step of a sweep is a single-winner rename or an
 * idempotent delete (maintenance/sweep.ts), so two sweeps never move a job twice.
 */
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { errnoOf, fsError } from '../store/errors.js';
import { removeQuietly, writeNew } from '../store/files.js';
import { lstatQuietly } from '../store/entry.js';
import type { Layout } from '../store/layout.js';
import { filesystemNow, isDeadHere, myIdentity, readHeartbeat } from '../store/liveness.js';
import { isOwnerName, LOCK_FILE, CLOCK_FILE, lockAsideName, lockTmpName } from '../store/names.js';

export interface SweepLock {
  /** Delete the lock if it is still this holder's (a taker may have judged it stale). */
  release(): void;
}

/**
 * Take the maintenance lock for `owner` (a Queue handle's owner token, whose
 * heartbeat a taker may consult). Undefined when another process holds it; with
 * `waitMs`, first retry for that long.
 */
export async function lockSweeps(
  layout: Layout,
  owner: string,
  staleMs: number,
  waitMs = 0,
): Promise<SweepLock | undefined> {
  const path = layout.file('workers', LOCK_FILE);
  const deadline = Date.now() + waitMs;
  for (let pause = 20; ; pause = Math.min(200, pause * 2)) {
    const lock = await tryCreate(layout, path, owner);
    if (lock !== undefined) return lock;
    if (takeOverStale(layout, path, staleMs, owner)) continue; // it is gone: compete for a fresh one at once
    if (Date.now() >= deadline) return undefined;
    await sleep(Math.min(pause, Math.max(1, deadline - Date.now())));
  }
}

async function tryCreate(layout: Layout, path: string, owner: string): Promise<SweepLock | undefined> {
  const tmp = layout.file('tmp', lockTmpName(owner));
  await writeNew(tmp, `${JSON.stringify({ owner, ...myIdentity() })}\n`, false, layout.fileMode);
  try {
    fs.linkSync(tmp, path); // exclusive: fails with EEXIST while a lock exists
  } catch (error) {
    if (errnoOf(error) === 'EEXIST') return undefined;
    throw fsError(`taking the maintenance lock ${path}`, error);
  } finally {
    removeQuietly(tmp);
  }
  const mine = lstatQuietly(path);
  heldHere.add(path);
  return {
    release() {
      heldHere.delete(path);
      if (mine === undefined || !sameFile(lstatQuietly(path), mine)) return; // taken over as stale: the lock is someone else's now
      try {
        fs.unlinkSync(path);
      } catch (error) {
        if (errnoOf(error) !== 'ENOENT') throw fsError(`releasing the maintenance lock ${path}`, error);
      }
    },
  };
}

/**
 * The locks a sweep of this process holds now. A lock naming this process
 * that is not among them is one whose release failed (an I/O error): left
 * alone, it would hold every sweep off, this process's explicit recover()
 * included, until it is stale.
 */
const heldHere = new Set<string>();

/**
 * The lock at `path` exists: remove it if it is stale, or not a lock at all
 * (a directory, a link, a FIFO: never followed, only moved aside). True when
 * nothing is at `path` any more.
 */
function takeOverStale(layout: Layout, path: string, staleMs: number, self: string): boolean {
  const judged = lstatQuietly(path);
  if (judged === undefined) return true;
  if (judged.isFile() && !holderIsGone(layout, path, self)) {
    const { now } = filesystemNow(layout.file('workers', CLOCK_FILE), layout.paths.tmp);
    if (now - judged.mtimeMs <= staleMs) return false;
  }
  const aside = layout.file('workers', lockAsideName());
  try {
    fs.renameSync(path, aside);
  } catch (error) {
    if (errnoOf(error) === 'ENOENT') return true; // another taker, or its holder, was first
    throw fsError(`taking over the stale maintenance lock ${path}`, error);
  }
  if (!sameFile(lstatQuietly(aside), judged)) {
    try {
      fs.linkSync(aside, path); // a fresh lock made since we looked: put it back, unless yet another was made
    } catch {
      // EEXIST: a newer lock stands; or it is no file to link: removed below like any stale entry
    }
  }
  removeEntry(aside);
  return true;
}

/** Whether the lock at `path` names a holder known to be gone: by its identity, or by its owner's heartbeat. */
function holderIsGone(layout: Layout, path: string, self: string): boolean {
  const lock = readHeartbeat(path); // the same shape: an identity, read without following or blocking
  if (lock?.identity !== undefined && isDeadHere(lock.identity)) return true;
  const owner = (lock?.identity as { owner?: unknown } | undefined)?.owner;
  if (owner === self && !heldHere.has(path)) return true; // ours, and no sweep of ours holds it: a release that failed
  if (typeof owner !== 'string' || !isOwnerName(owner)) return false;
  const heartbeat = readHeartbeat(layout.file('workers', owner));
  return heartbeat?.identity !== undefined && isDeadHere(heartbeat.identity);
}

/** Delete what a takeover moved aside: a file, a link or an empty directory; anything else is left for fsck to name. */
function removeEntry(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch (error) {
    const code = errnoOf(error);
    if (code !== 'EISDIR' && code !== 'EPERM') return;
    try {
      fs.rmdirSync(path);
    } catch {
      // not empty: `dirq fsck` reports it
    }
  }
}

function sameFile(a: fs.Stats | undefined, b: fs.Stats): boolean {
  return a !== undefined && a.ino === b.ino && a.dev === b.dev;
}
