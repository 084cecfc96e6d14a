/**
 * The shared-queue security matrix (issue 11): a member of a `dirq init
 * --mode 0660` queue's group who is not the worker's user plants, in every
 * directory of the layout, what could make a worker read or write outside
 * the queue, or wedge it: symbolic links named like a job or a helper file
 * (to a file, to a directory), hard links to files outside, names whose
 * type decodes to `../..`, FIFOs (one a writer keeps feeding, an endless
 * read), a device node (/dev/zero's: root makes it, since the member may
 * not), a sparse file over maxJobBytes and a file that keeps growing. Then
 * the worker (root, and another user) runs every operation, and the test
 * checks that nothing outside changed or showed up in any output or job,
 * that every operation ended, and that fsck names the plants.
 *
 * Cells covered elsewhere (not repeated here beyond the matrix's own pass):
 * hostile.test.ts ("I9 hostile files in queue/": links, directories, FIFOs,
 * sockets and huge files in queue/, as one user), own-files.test.ts (links
 * and FIFOs at totals, heartbeats, dirqueue.json, keys/; a key pointing
 * outside; appendLine on a FIFO, link or directory in active/),
 * outside.test.ts (swapped layout directories, tmp/ strays, a hard link at
 * workers/.clock, as two users).
 *
 * Hard links. fs.protected_hardlinks=1 (this machine's value, and systemd's
 * default; the test fails if it is not) lets a user link only a file it
 * owns or may both read and write. So the member cannot link root's files
 * (checked below: EPERM), and a worker that appends an event to a job file
 * that is a hard link (which store/open.ts allows, as outsiders enqueue with
 * ln) writes only into a file the member could write itself: no write the
 * member could not make. What the member could not do itself is set such a
 * file's mtime to a time of its choosing (only an owner may), which a
 * promotion did through a delayed/ name (it stamps the due time); it now
 * leaves a file with other names as it is (store/files.ts, setJobFileTimes).
 * Runs processes as other users (setpriv), so it needs root, as CI runs.
 */
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { bootId } from '../dist/store/liveness.js';
import { hostToken } from '../dist/store/names.js';
import type { Run } from './support/cli.js';
import { ok } from './support/cli.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { deadPid, exited, track } from './support/temp.js';
import { lineFrom } from './support/wait.js';
import { chgrpQueue, GROUP, requireRoot, runAs, sharedBase, WEB, WORKER } from './support/users.js';

const { cli: CLI, child: CHILD } = checkoutForOtherUsers(); // the users below run this copy
const ECHO = path.join(path.dirname(CHILD), 'processors', 'echo.mjs'); // returns the job's data: a followed link's content would show in done/
const HOUR_US = 3600_000_000;
const MAX_JOB_BYTES = 16 * 1024 * 1024;
/** Contents only root may read, or only read: never in any output or job file. */
const SECRETS = ['SECRET-ROOT-ONLY', 'READABLE-NOT-WRITABLE'];

/** A file or directory outside the queue, as far as a worker could change it. */
interface Snap {
  mode: number;
  uid: number;
  gid: number;
  mtimeMs: number;
  size: number;
  content: string; // a hash, or the sorted listing of a directory
  text?: string;
}

function snapshot(dir: string): Record<string, Snap> {
  const out: Record<string, Snap> = {};
  for (const rel of ['', ...fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })]) {
    const file = path.join(dir, rel);
    const st = fs.lstatSync(file);
    const text = st.isFile() ? fs.readFileSync(file, 'utf8') : undefined;
    const content =
      text !== undefined
        ? crypto.createHash('sha256').update(text).digest('hex')
        : st.isDirectory()
          ? fs.readdirSync(file).sort().join('/')
          : '';
    out[rel] = {
      mode: st.mode,
      uid: st.uid,
      gid: st.gid,
      mtimeMs: st.mtimeMs,
      size: st.size,
      content,
      ...(text === undefined ? {} : { text }),
    };
  }
  return out;
}

/** The files outside: one per kind of access the member has to it. */
function outsideFiles(base: string): string {
  const out = path.join(base, 'outside');
  fs.mkdirSync(path.join(out, 'sub'), { recursive: true });
  for (const d of [out, path.join(out, 'sub')]) fs.chmodSync(d, 0o755);
  const files: [string, string, number, number, number][] = [
    ['secret', 'SECRET-ROOT-ONLY', 0, 0, 0o600], // the member may neither read nor write it
    ['readable', 'READABLE-NOT-WRITABLE', 0, 0, 0o644], // read, not write: protected_hardlinks forbids linking it
    ['shared', 'GROUP-WRITABLE', 0, GROUP, 0o660], // root's, but the member may write it, so may link it
    ['own', 'MEMBER-OWN', WEB, WEB, 0o644], // the member's own
    ['sub/inner', 'SECRET-ROOT-ONLY inner', 0, 0, 0o600],
  ];
  for (const [name, marker, uid, gid, mode] of files) {
    const file = path.join(out, name);
    // a valid envelope: were a link followed, it would run as a job, and the echo processor would print it
    fs.writeFileSync(file, `{"data":"${marker}"}\n`);
    fs.chownSync(file, uid, gid);
    fs.chmodSync(file, mode);
    const then = new Date('2020-01-01T00:00:00Z');
    fs.utimesSync(file, then, then);
  }
  return out;
}

interface Plant {
  dir: string; // the layout directory ('' for the queue directory itself)
  name: string;
  kind: string;
  id?: string; // the job id the name carries, if any
}

/** What the member plants where, named as the library would name a job (or a helper) there. */
function plan(host: string, dead: number): { plants: Plant[]; heartbeat: string } {
  const t = Math.floor(Date.now() * 1000) - 2 * HOUR_US;
  const kinds = ['symlink', 'symlinkdir', 'hlshared', 'hlown', 'fifo', 'fed', 'huge', 'growing', 'device', 'dotdot'];
  const owner = `${host}.${dead}.dead`;
  const plants: Plant[] = [];
  kinds.forEach((kind, i) => {
    const id = `50-${String(t + i).padStart(16, '0')}-${kind}.${kind === 'dotdot' ? '..%2F..%2Foutside%2Fpwned' : 't'}`;
    const job = (dir: string, name: string): Plant => ({ dir, name, kind, id });
    plants.push(job('queue', id), job('done', id), job('failed', id));
    plants.push(job('delayed', `${String(t - HOUR_US).padStart(16, '0')}~${id}`)); // due before its id's time: a promotion stamps the due time
    plants.push(job('active', `${id}@${owner}.${i.toString(36)}`)); // a claim of a dead worker: a sweep takes it back
    plants.push({ dir: 'tmp', name: `${id}.${owner}.tmp`, kind }); // a dead writer's temp file: a sweep deletes it
    if (kind !== 'dotdot') {
      plants.push({ dir: 'schedules', name: `${kind}.json`, kind }); // a schedule file: read only through open.ts
      plants.push({ dir: 'keys', name: kind, kind });
      plants.push({ dir: 'workers', name: `${host}.${dead}.${kind.slice(0, 16)}`, kind }); // a heartbeat's name
    }
  });
  // the helper files, each as a link to root's secret, and as a hard link to the file the member may write
  for (const [dir, name] of [
    ['workers', '.clock'],
    ['workers', '.lock'],
    ['workers', 'totals'],
    ['workers', `totals.${owner}.0`],
    ['tmp', '.dirqueue.json.1.abcdefgh'],
    ['keys', '.stale.abc'],
  ] as const) {
    plants.push({ dir, name, kind: 'symlink' });
    plants.push({ dir, name: `${name}x`, kind: 'hlshared' });
  }
  return { plants, heartbeat: owner };
}

/** The shell line by which the member makes one plant (devices and the fed FIFO's feeder come after). */
function plantLine(dir: string, out: string, p: Plant): string | undefined {
  const at = JSON.stringify(path.join(dir, p.dir, p.name));
  switch (p.kind) {
    case 'symlink':
      return `ln -s ${out}/secret ${at}`;
    case 'symlinkdir':
      return `ln -s ${out} ${at}`;
    case 'hlshared':
      return `ln ${out}/shared ${at}`;
    case 'hlown':
      return `ln ${out}/own ${at}`;
    case 'fifo':
    case 'fed':
      return `mkfifo ${at}`;
    case 'huge':
      return `printf '{"data":"huge"}\\n' > ${at} && truncate -s ${MAX_JOB_BYTES + 1} ${at}`; // sparse
    case 'dotdot':
      return `printf '{"data":"dotdot"}\\n' > ${at}`;
    default:
      return undefined; // growing: the feeder makes it; device: root does
  }
}

/** The member, as a shell line. */
const asMember = (line: string): Promise<Run> => runAs(WEB, 'sh', ['-c', line]);

/**
 * A process of the member's that keeps every fed FIFO full (it holds each
 * open for reading and writing, so it never blocks, and refills it every
 * millisecond: whoever reads one reads forever) and appends a line every few
 * ms to each growing file, through a descriptor, wherever it is moved.
 */
async function feeder(fifos: string[], growing: string[]): Promise<() => Promise<void>> {
  const script = `
    const fs = require('node:fs');
    const [fifos, growing] = JSON.parse(process.argv[1]);
    const zeros = Buffer.alloc(65536);
    const fds = fifos.map((f) => fs.openSync(f, fs.constants.O_RDWR | fs.constants.O_NONBLOCK));
    setInterval(() => { for (const fd of fds) try { fs.writeSync(fd, zeros); } catch {} }, 1);
    const grows = growing.map((f) => fs.openSync(f, 'a', 0o660));
    setInterval(() => { for (const fd of grows) fs.writeSync(fd, '{"x":1}\\n'); }, 5);
    console.log('feeding');`;
  const child = track(
    spawn(
      'setpriv',
      [
        '--reuid',
        String(WEB),
        '--regid',
        String(WEB),
        '--groups',
        String(GROUP),
        process.execPath,
        '-e',
        script,
        JSON.stringify([fifos, growing]),
      ],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    ),
  );
  await lineFrom(child, 'feeding');
  return async () => {
    child.kill('SIGKILL');
    await exited(child);
  };
}

interface Op {
  args: string[];
  run: Run;
}

/** Run dirq ARGS as `uid` with a generous bound; a run past it is killed (timeout(1) exits 124, or 137 after -k). */
async function bounded(uid: number, args: string[]): Promise<Op> {
  const run = await runAs(uid, 'timeout', ['-k', '5', '60', process.execPath, CLI, ...args]);
  return { args, run };
}

/** Run each of `argsList` with at most `width` at once (the machine has 2 cores; node starts dominate). */
async function boundedAll(uid: number, argsList: string[][], width = 4): Promise<Op[]> {
  const out: Op[] = [];
  for (let i = 0; i < argsList.length; i += width)
    out.push(...(await Promise.all(argsList.slice(i, i + width).map((a) => bounded(uid, a)))));
  return out;
}

/** Every regular file in the queue, with its text (the sparse ones by their first KiB). */
function queueTexts(dir: string): string[] {
  const texts: string[] = [];
  // by hand: readdir's recursive option enters the member's links to directories outside
  const walk = (sub: string): string[] =>
    fs.readdirSync(path.join(dir, sub)).flatMap((name) => {
      const rel = path.join(sub, name);
      return fs.lstatSync(path.join(dir, rel)).isDirectory() ? walk(rel) : [rel];
    });
  for (const rel of walk('')) {
    const file = path.join(dir, rel);
    const st = fs.lstatSync(file);
    if (!st.isFile()) continue;
    const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NONBLOCK);
    const buf = Buffer.alloc(Math.min(st.size, 1 << 20));
    fs.readSync(fd, buf, 0, buf.length, 0);
    fs.closeSync(fd);
    texts.push(`${rel}: ${buf.toString('utf8').replace(/\0+/g, '')}`);
  }
  return texts;
}

for (const worker of [
  { name: 'root', uid: 0 },
  { name: 'another user', uid: WORKER },
]) {
  describe(`a group member's plants in every directory of a shared queue, worked by ${worker.name}`, () => {
    it(
      'never make the worker read or write outside the queue, never hang it, and fsck names them',
      { timeout: 240_000 },
      async () => {
        requireRoot();
        expect(
          fs.readFileSync('/proc/sys/fs/protected_hardlinks', 'utf8').trim(),
          'fs.protected_hardlinks must be 1: the hard-link cells rely on it (see the header)',
        ).toBe('1');
        const base = sharedBase();
        const dir = path.join(base, 'q');
        await ok(['init', dir, '--mode', '0660']);
        chgrpQueue(dir);
        const out = outsideFiles(base);
        const dead = await deadPid();
        const host = hostToken();
        const { plants, heartbeat } = plan(host, dead);

        // what the member may not do: plant in the queue directory itself, link root's files, make a device
        const denied = await asMember(
          [
            `ln -s ${out}/secret ${dir}/x.lnk`,
            `mkfifo ${dir}/x.fifo`,
            `ln ${out}/shared ${dir}/x.hl`,
            `ln ${out}/secret ${dir}/queue/x`,
            `ln ${out}/readable ${dir}/queue/y`,
            `mknod ${dir}/queue/z c 1 5`,
          ]
            .map((line) => `${line} 2>&1 && echo "ALLOWED: ${line}"`)
            .join('; '),
        );
        expect(denied.stdout).not.toContain('ALLOWED');
        expect(denied.stdout.match(/Permission denied/g)).toHaveLength(3); // the queue directory is 02750
        expect(denied.stdout.match(/Operation not permitted/g)).toHaveLength(3); // protected_hardlinks (2), CAP_MKNOD (1)
        expect(fs.readdirSync(dir).sort()).toEqual([
          'active',
          'batches',
          'delayed',
          'deps',
          'dirqueue.json',
          'done',
          'failed',
          'keys',
          'queue',
          'schedules',
          'tmp',
          'waiting',
          'workers',
        ]);

        // the plants
        const identity = JSON.stringify({
          host: os.hostname(),
          bootId: bootId(),
          pid: dead,
          startTime: 'gone',
          started: '',
        });
        const lines = plants.map((p) => plantLine(dir, out, p)).filter((line) => line !== undefined);
        lines.push(`printf '%s' '${identity}' > ${dir}/workers/${heartbeat}`); // the dead worker that holds the active/ plants
        const planted = await asMember(lines.join(' && '));
        expect(planted).toMatchObject({ code: 0, stderr: '' });
        for (const p of plants.filter((x) => x.kind === 'device')) {
          // root makes them: the member may not (CAP_MKNOD), as checked above
          const at = path.join(dir, p.dir, p.name);
          const made = await runAs(0, 'sh', [
            '-c',
            `mknod ${JSON.stringify(at)} c 1 5 && chown ${WEB}:${GROUP} ${JSON.stringify(at)}`,
          ]);
          expect(made, at).toMatchObject({ code: 0, stderr: '' });
        }
        const stop = await feeder(
          plants.filter((p) => p.kind === 'fed').map((p) => path.join(dir, p.dir, p.name)),
          plants.filter((p) => p.kind === 'growing').map((p) => path.join(dir, p.dir, p.name)),
        );
        const started = Date.now();
        const before = snapshot(out);
        const baseBefore = fs.readdirSync(base).sort();
        const ops: Op[] = [];
        let fsckReport: { findings: { path: string; kind: string }[] } | undefined;
        try {
          const member = await runAs(WEB, process.execPath, [
            CLI,
            'enqueue',
            dir,
            '../../outside/x',
            '{"n":1}',
            '--key',
            '../../outside/pwned',
          ]);
          expect(member, 'the member enqueues a type and a key that spell a path out of the queue').toMatchObject({
            code: 0,
          });

          const report = await bounded(worker.uid, ['fsck', dir, '--json']);
          ops.push(report);
          fsckReport = JSON.parse(report.run.stdout) as typeof fsckReport;
          ops.push(await bounded(worker.uid, ['recover', dir, '--json']));
          const ids = [...new Set(plants.flatMap((p) => (p.id === undefined ? [] : [p.id])))];
          ops.push(
            ...(await boundedAll(worker.uid, [
              ...['queue', 'delayed', 'active', 'done', 'failed'].map((state) => ['ls', dir, state, '--json']),
              ['stats', dir, '--json'],
              ['workers', dir, '--json'],
              ['metrics', dir],
              ...ids.map((id) => ['show', dir, id, '--json']),
              ...ids.map((id) => ['wait', dir, id, '--timeout', '1s']),
            ])),
          );
          ops.push(await bounded(worker.uid, ['work', dir, ECHO, '--threads', '1', '--drain', '--drain-within', '0']));
          // (another user's worker may not append to the member's 0644 files, so it leaves their dead claims where they are)
          if (worker.uid === 0)
            expect(
              fs.readdirSync(path.join(dir, 'active')),
              'a drain leaves no claim behind (a job hard-linked at its done/ name did: rename(2) of two names of one file does nothing)',
            ).toEqual([]);
          ops.push(await bounded(worker.uid, ['retry', dir, '--all', '--json']));
          ops.push(await bounded(worker.uid, ['work', dir, ECHO, '--threads', '1', '--drain', '--drain-within', '0']));
          ops.push(await bounded(worker.uid, ['fsck', dir, '--repair', '--json']));
          ops.push(await bounded(worker.uid, ['purge', dir, 'failed']));
          ops.push(await bounded(worker.uid, ['purge', dir, 'done']));
          const left = ids.filter(
            (id) =>
              fs.readdirSync(path.join(dir, 'queue')).includes(id) ||
              fs.readdirSync(path.join(dir, 'delayed')).some((n) => n.endsWith(`~${id}`)),
          );
          if (left.length > 0) ops.push(await bounded(worker.uid, ['rm', dir, ...left]));
          ops.push(await bounded(worker.uid, ['fsck', dir, '--json']));
        } finally {
          await stop();
        }

        // every operation ended by itself, and none crashed with a stack
        for (const { args, run } of ops) {
          expect(run.code, `dirq ${args.join(' ')} hung: ${run.stderr}`).not.toBe(124);
          expect(run.code, `dirq ${args.join(' ')} was killed`).not.toBe(137);
          expect(run.stderr, `dirq ${args.join(' ')}`).not.toMatch(/\n\s+at /);
        }
        // nothing outside was read into an output or a job
        const said = ops.map(({ run }) => run.stdout + run.stderr).join('\n');
        for (const secret of SECRETS) {
          expect(said).not.toContain(secret);
          expect(queueTexts(dir).filter((t) => t.includes(secret))).toEqual([]);
        }
        // nothing outside changed, but what the member may write itself; and that only by appends, at the time of writing
        const after = snapshot(out);
        expect(fs.readdirSync(base).sort()).toEqual(baseBefore);
        expect(Object.keys(after).sort()).toEqual(Object.keys(before).sort());
        for (const [rel, was] of Object.entries(before)) {
          const now = after[rel]!;
          if (rel === 'shared' || rel === 'own') {
            expect({ mode: now.mode, uid: now.uid, gid: now.gid }, rel).toEqual({
              mode: was.mode,
              uid: was.uid,
              gid: was.gid,
            });
            expect(now.text!.startsWith(was.text!), `${rel} was only appended to`).toBe(true);
            if (now.mtimeMs !== was.mtimeMs)
              expect(now.mtimeMs, `${rel}'s mtime was set only to a time of writing`).toBeGreaterThanOrEqual(
                started - 1000,
              );
          } else {
            expect(now, rel).toEqual(was);
          }
        }
        // fsck named every plant in the state directories and keys/ (the same id in every state directory is
        // also a job in two states); not those in tmp/ (younger than an hour: a writer may be mid-enqueue),
        // nor a fresh keys/.stale. link, nor the heartbeat-named links, FIFOs and devices in workers/
        const named = new Set(fsckReport!.findings.map((f) => f.path));
        // (of a valid job both in queue/ and under a claim in active/, fsck names the copy it does not keep: queue/'s)
        const validJob = ['hlshared', 'hlown', 'growing', 'dotdot'];
        const reportable = plants.filter(
          (p) =>
            ['queue', 'delayed', 'active', 'done', 'failed', 'keys'].includes(p.dir) &&
            p.name !== '.stale.abc' &&
            !(p.dir === 'active' && validJob.includes(p.kind)),
        );
        expect(
          reportable.filter((p) => !named.has(`${p.dir}/${p.name}`)).map((p) => `${p.dir}/${p.name} (${p.kind})`),
        ).toEqual([]);
      },
    );
  });
}
