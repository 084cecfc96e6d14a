/**
 * What kind of filesystem a directory is on, from statfs(2)'s f_type magic.
 *
 * Why it matters: inotify (fs.watch) reports only the changes made through
 * this kernel. On a network filesystem (NFS, SMB, Ceph, 9p, ...) or a FUSE
 * one (sshfs, bindfs, glusterfs, virtiofs, ...), renames made by other hosts
 * raise no event here, so a queue there must poll (I7); `watch: 'auto'`
 * (the default) decides with this. The magic numbers are the kernel's
 * (include/uapi/linux/magic.h and each filesystem's own header).
 *
 * And a filesystem in memory (tmpfs, ramfs) has nothing to sync: its fsync is
 * the kernel's noop_fsync, and nothing on it outlives a reboot or a power
 * cut, synced or not. A durable queue there skips its fsyncs (Queue), which
 * cost a thread-pool round trip each for nothing (on /dev/shm a durable
 * enqueue one by one ran 7.8k/s, 49k/s without them, bench/bullmq.js).
 */
import fs from 'node:fs';

/** Filesystems whose other clients' changes raise no local inotify event. */
const SHARED: ReadonlyMap<number, string> = new Map([
  [0x6969, 'NFS'],
  [0x65735546, 'FUSE'],
  [0xff534d42, 'CIFS'],
  [0xfe534d42, 'SMB2'],
  [0x517b, 'SMB'],
  [0x00c36400, 'Ceph'],
  [0x01021997, '9p'],
  [0x5346414f, 'AFS'],
  [0x6b414653, 'kAFS'],
  [0x73757245, 'Coda'],
  [0x564c, 'NCP'],
  [0x0bd00bd0, 'Lustre'],
  [0x47504653, 'GPFS'],
  [0x01161970, 'GFS2'],
  [0x7461636f, 'OCFS2'],
  [0x19830326, 'BeeGFS'],
  [0x20030528, 'OrangeFS'],
]);

/** Filesystems in memory, whose fsync does nothing. */
const MEMORY: ReadonlySet<number> = new Set([0x01021994 /* tmpfs */, 0x858458f6 /* ramfs */]);

export interface FilesystemKind {
  /** statfs f_type, or undefined when statfs failed. */
  type: number | undefined;
  /** A readable name for a shared filesystem ("NFS", "FUSE", ...), else the magic in hex. */
  name: string;
  /** True when other hosts (or another FUSE mount) may change it without local inotify events. */
  shared: boolean;
  /** True for tmpfs and ramfs: kept in memory, fsync does nothing. */
  memory: boolean;
}

/** The kind of filesystem `dir` is on. A failing statfs reads as local (watching then fails or works on its own). */
export function filesystemKind(dir: string): FilesystemKind {
  let type: number;
  try {
    type = Number(fs.statfsSync(dir).type);
  } catch {
    return { type: undefined, name: 'unknown', shared: false, memory: false };
  }
  const unsigned = type >>> 0; // f_type is signed on some ABIs: 0xff534d42 can read as negative
  const name = SHARED.get(unsigned);
  const memory = MEMORY.has(unsigned);
  return name === undefined
    ? { type: unsigned, name: `0x${unsigned.toString(16)}`, shared: false, memory }
    : { type: unsigned, name, shared: true, memory };
}
