/**
 * Whether this process may write a queue the way a worker must: create its
 * heartbeat in workers/, rename jobs into and out of every state directory,
 * write child jobs in tmp/, free unique keys in keys/ and take the sweep lock
 * (workers/.lock). The queue directory itself is not written by workers (only
 * init and fsck --repair replace dirqueue.json there), so it is not checked:
 * a root-owned queue directory with group-writable state directories works. A
 * pool checks this at start, so a worker run as the wrong user fails at once with one clear
 * error instead of retrying its first claim every second.
 *
 * access(2) judges by the real uid and gid, which for a worker are its
 * effective ones (nothing here runs setuid); it honours ACLs and read-only
 * mounts (EROFS), so it answers as the renames would.
 */
import fs from 'node:fs';
import { DirQueueError, errnoOf, fsError } from '../store/errors.js';
import { DIRS, type Layout } from '../store/layout.js';

/** Throws a DirQueueError with the errno code (EACCES, EROFS, ...) naming the first directory this process cannot write. */
export function checkCanWrite(layout: Layout): void {
  for (const where of DIRS.map((dir) => layout.paths[dir])) {
    try {
      fs.accessSync(where, fs.constants.W_OK | fs.constants.X_OK);
    } catch (error) {
      const { code } = fsError(where, error);
      const who =
        process.getuid === undefined
          ? 'this process'
          : `this process (uid ${process.getuid()}, gid ${process.getgid!()})`;
      const fix =
        errnoOf(error) === 'EROFS'
          ? 'remount the filesystem read-write'
          : `run the worker as the queue's owner, or make the queue group-shared (dirq init ${layout.root} --mode 0660, as its owner) and run the worker as a member of its group`;
      const why =
        errnoOf(error) === 'EROFS'
          ? 'a read-only filesystem'
          : errnoOf(error) === 'EACCES' || errnoOf(error) === 'EPERM'
            ? 'permission denied'
            : String((error as Error).message);
      throw new DirQueueError(code, `${who} cannot write ${where} (${why}), so it cannot work on the queue: ${fix}`, {
        cause: error,
      });
    }
  }
}
