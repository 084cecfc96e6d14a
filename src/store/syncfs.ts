/**
 * One syncfs(2) for a durable batch instead of an fdatasync per file.
 *
 * Measured here (ext4 on virtio, 10,000 fresh 134-byte files, alternating
 * runs): fdatasync of every file, concurrently on libuv's 4 threads, took
 * 800-870 ms; one syncfs of the filesystem after writing them all 85-99 ms,
 * so create+sync+rename of the batch ran 16.6-18.2k/s instead of 7.3-7.5k/s.
 *
 * Node has no binding for syncfs, so this runs GNU coreutils' `sync -f PATH`
 * (syncfs of PATH's filesystem), a few ms to start. Used only where it is
 * sound and cheap enough: Linux 5.8 or later (earlier kernels' syncfs does not
 * report writeback errors), a local filesystem (a network or FUSE one may not
 * pass syncfs on to the server), and batches of at least SYNCFS_MIN_FILES.
 * The cost: syncfs flushes everything dirty on that filesystem, other
 * programs' writes too, so a batch waits for them (`batchSync: 'fdatasync'`
 * avoids that). If `sync -f` is missing or fails, the caller fsyncs each file
 * instead, which also reports any error file by file.
 *
 * Tested under power cuts (test/power-cut.test.ts, test/support/power.ts):
 * ext4, xfs and btrfs loop images lose their power while a writer makes
 * syncfs batches, and every job of a batch that resolved must be on the disk
 * after the cut, complete. With `sync -f` replaced by a no-op, every cut on
 * all three lost such jobs (their files came back empty).
 */
import childProcess from 'node:child_process';
import os from 'node:os';
import { filesystemKind } from './fs-kind.js';

/** Below this many files, fdatasyncs in bursts beat starting a process. */
export const SYNCFS_MIN_FILES = 256;

/** False where syncfs is unsound, or once `sync` was missing: not tried again by this process. */
let available = process.platform === 'linux' && kernelAtLeast(os.release(), 5, 8);

/** Whether a durable batch written under `dir` may be made durable by one syncfs. */
export function syncfsSuits(dir: string): boolean {
  return available && !filesystemKind(dir).shared;
}

/**
 * syncfs(2) of the filesystem that holds `dir`. Resolves true once it
 * succeeded: every file written there before the call is on stable storage.
 * Resolves false when it could not say so, and the caller must fsync each file.
 */
export function syncFilesystem(dir: string): Promise<boolean> {
  return new Promise((resolve) => {
    childProcess.execFile('sync', ['-f', '--', dir], { timeout: 600_000 }, (error) => {
      // no sync(1) on PATH: stop trying. Any other failure (an old sync without -f, an I/O
      // error) falls back this time; the per-file fsyncs then report a real error file by file.
      if ((error as NodeJS.ErrnoException | null)?.code === 'ENOENT') available = false;
      resolve(error === null);
    });
  });
}

export function kernelAtLeast(release: string, major: number, minor: number): boolean {
  const m = /^(\d+)\.(\d+)/.exec(release);
  if (!m) return false;
  const [have, haveMinor] = [Number(m[1]), Number(m[2])];
  return have > major || (have === major && haveMinor >= minor);
}
