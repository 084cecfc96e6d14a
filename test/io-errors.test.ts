/**
 * I/O errors at every filesystem call of every transition: the Nth call
 * fails with EIO, ENOSPC, EDQUOT or EROFS (test/support/faults.ts), once (a
 * transient fault) or from then on until the fault is removed (a persistent
 * one). Then:
 * - the operation rejects with a DirQueueError whose code is the errno and
 *   whose message names the step and its file and gives the errno's advice,
 *   or it succeeds because the library worked around the fault;
 * - every job is in exactly one state, none is lost, tmp/ holds nothing and
 *   active/ holds no claim of this process but the jobs it still holds;
 * - the same operation succeeds once the fault is gone;
 * - another handle's recovery then brings every job to an end exactly once.
 *
 * The matrix: every call of every transition fails with EIO, both once and
 * from then on; and each call also fails with one of ENOSPC, EDQUOT, EROFS in
 * turn (call 1 ENOSPC once, call 2 EDQUOT from then on, call 3 EROFS once,
 * ...), so that every errno meets every kind of step in both variants across
 * the transitions. Only the batch of 300 (the syncfs path), whose calls are
 * the same few steps repeated per file, is sampled: the first and the last
 * call of each kind that follows another kind (the first file's steps, the
 * last file's, the first and last rename, the directory fsyncs).
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { DirQueueError, type Job, type Queue } from '../dist/index.js';
import { Layout } from '../dist/store/layout.js';
import { bootId } from '../dist/store/liveness.js';
import { parseActiveName, scheduleUnique, tmpWriterOf } from '../dist/store/names.js';
import { tornIn } from '../dist/maintenance/torn.js';
import { census, duplicates } from './support/census.js';
import { injectAt, type Errno, type Fault } from './support/faults.js';
import { deadPid, openQueue, tempDir } from './support/temp.js';

/** What fsError says for each errno (src/store/errors.ts): the message must carry it. */
const ADVICE: Record<Errno, RegExp> = {
  EIO: /failed: an I\/O error: check the disk/,
  ENOSPC: /failed: the filesystem is full: free space/,
  EDQUOT: /failed: the disk quota is exhausted/,
  EROFS: /failed: the filesystem is read-only: remount it read-write/,
};
const OTHERS: Errno[] = ['ENOSPC', 'EDQUOT', 'EROFS'];

interface Transition {
  name: string;
  options?: Parameters<typeof openQueue>[1];
  /** Jobs to have before the transition; returns what the transition needs. */
  setup(q: Queue): Promise<unknown>;
  run(q: Queue, state: unknown): Promise<unknown>;
  /** After the transition succeeded (at once or when run again): its effect is there. */
  check?(dir: string, result: unknown, persistent: boolean): void;
  /** Ids the transition may delete (prune). */
  deletes?: boolean;
  /** Only some calls are tried (see the header). */
  sample?: boolean;
  /** Under a persistent fault, may leave a job under this handle's claim, to move on at its next claim, sweep or close. */
  strands?: boolean;
}

const held = (state: unknown): Job => state as Job;
const names = (dir: string, state: string): string[] =>
  fs.existsSync(path.join(dir, state)) ? fs.readdirSync(path.join(dir, state)) : [];
/** Make every delayed job due now. */
function dueNow(dir: string): void {
  for (const name of names(dir, 'delayed')) {
    fs.renameSync(
      path.join(dir, 'delayed', name),
      path.join(dir, 'delayed', name.replace(/^\d{16}/, '0000000000000001')),
    );
  }
}

const transitions: Transition[] = [
  {
    name: 'enqueue',
    setup: async () => undefined,
    run: (q) => q.enqueue('t', { x: 1 }),
    check: (dir, ref) => expect(names(dir, 'queue')).toContain((ref as { id: string }).id),
  },
  {
    name: 'enqueue delayed',
    setup: async () => undefined,
    run: (q) => q.enqueue('t', 1, { delay: 60_000 }),
    check: (dir, ref) =>
      expect(names(dir, 'delayed').map((name) => name.slice(17))).toContain((ref as { id: string }).id),
  },
  {
    name: 'enqueueMany of 3 (fdatasync each)',
    setup: async () => undefined,
    run: (q) => q.enqueueMany([{ type: 't' }, { type: 't', delay: 10 }, { type: 'u', key: 'k1' }]),
  },
  {
    name: 'enqueueMany of 300 (one syncfs)',
    sample: true,
    setup: async () => undefined,
    run: (q) => q.enqueueMany(Array.from({ length: 300 }, (_, i) => ({ type: 't', data: i }))),
  },
  {
    name: 'enqueue taking over a key whose holder ended without releasing it',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { key: 'k1' });
      await (await q.claim())!.complete('r');
      fs.symlinkSync(id, path.join(q.dir, 'keys', 'k1')); // a crash between the rename to done/ and the key's release
      return undefined;
    },
    run: (q) => q.enqueue('t', 2, { key: 'k1' }),
    // the key's holder is in queue/: this enqueue's job, or one whose enqueue landed but then reported the fault;
    // or, after a persistent fault, the failed enqueue's tmp/ file that could not be removed, whose key it keeps until
    // its writer is gone (the end of this case shows the next enqueuer then takes the key)
    check: (dir, ref, persistent) => {
      const { id } = ref as { id: string };
      if (persistent && names(dir, 'tmp').some((name) => name.startsWith(id))) return;
      expect(names(dir, 'queue')).toContain(id);
    },
  },
  {
    name: 'claim',
    strands: true,
    setup: (q) => q.enqueue('t', 1),
    run: (q) => q.claim(),
    check: (_dir, job) => expect(job).toBeDefined(),
  },
  {
    name: 'complete',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' }), q.claim()),
    run: (_q, job) => held(job).complete('r'),
  },
  {
    name: 'fail (retry now)',
    setup: async (q) => (await q.enqueue('t', 1, { backoff: 0 }), q.claim()),
    run: (_q, job) => held(job).fail('e'),
  },
  {
    name: 'fail (retry later)',
    setup: async (q) => (await q.enqueue('t', 1, { backoff: 5000 }), q.claim()),
    run: (_q, job) => held(job).fail('e'),
  },
  {
    name: 'fail for good',
    setup: async (q) => (await q.enqueue('t', 1, { attempts: 1 }), q.claim()),
    run: (_q, job) => held(job).fail('e'),
  },
  { name: 'release', setup: async (q) => (await q.enqueue('t', 1), q.claim()), run: (_q, job) => held(job).release() },
  {
    name: 'retry a failed job',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { attempts: 1 });
      await (await q.claim())!.fail('e');
      return id;
    },
    run: (q, id) => q.retry(id as string),
    check: (dir) => expect(names(dir, 'failed')).toEqual([]),
  },
  // limits (issue 13): a slot taken by link, a rate token by rename, given back at the end
  {
    name: 'set a limit (rate tokens, limit.json)',
    setup: async () => undefined,
    run: (q) => q.limit('t', { concurrency: 2, rate: { max: 3, per: 1000 } }),
    check: (dir) => expect(names(dir, 'limits/t').filter((f) => f.startsWith('r.'))).toHaveLength(3),
  },
  {
    name: 'claim under a limit (slot, token, claim)',
    strands: true,
    setup: async (q) => (await q.limit('t', { concurrency: 2, rate: { max: 10, per: 1000 } }), q.enqueue('t', 1)),
    run: (q) => q.claim(),
    check: (_dir, job) => expect(job).toBeDefined(),
  },
  {
    name: 'complete under a limit (the job, then its slot)',
    setup: async (q) => (await q.limit('t', { concurrency: 2 }), await q.enqueue('t', 1), q.claim()),
    run: (_q, job) => held(job).complete('r'),
  },
  // pause and cancel (issue 13)
  {
    name: 'pause a type',
    setup: async () => undefined,
    run: (q) => q.pause('u', { for: 60_000 }),
    check: (dir) => expect(names(dir, 'paused')).toEqual(['u']),
  },
  {
    name: 'resume a type',
    setup: (q) => q.pause('u'),
    run: (q) => q.resume('u'),
    check: (dir) => expect(names(dir, 'paused')).toEqual([]),
  },
  {
    name: 'cancel a waiting job',
    strands: true,
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' })).id,
    run: (q, id) => q.cancel(id as string),
    check: (dir, _result, persistent) => {
      // under a persistent fault the job may wait under this handle's claim, moved on at its close
      expect(
        names(dir, 'failed').length + (persistent ? names(dir, 'active').length + names(dir, 'queue').length : 0),
      ).toBe(1);
    },
  },
  {
    name: 'cancel a running job, then its end',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' }), q.claim()),
    run: async (q, job) => {
      if (!held(job).cancelled) await q.cancel(held(job).id);
      await held(job).complete('r');
    },
    check: (dir) => expect(names(dir, 'failed').length).toBe(1),
  },
  {
    name: "sweep: end a dead holder's cancelled claim in failed/",
    strands: true,
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { key: 'k1' });
      deadClaim(q, id);
      await q.cancel(id);
    },
    run: (q) => q.recover(),
    // under a persistent fault a take-back that could neither finish nor give the claim back is kept by this
    // handle for queue/ (rescue.ts Stranded): then the cancel is lost and the job runs again (a known limit)
    check: (dir, _report, persistent) => {
      const more = persistent ? names(dir, 'active').length + names(dir, 'queue').length : 0;
      expect(names(dir, 'failed').length + more).toBe(1);
    },
  },
  // the sweep services (maintenance/sweep.ts): each case is a whole sweep, so its other steps (the torn pass,
  // clean, the heartbeats, the totals fold) meet every fault too
  {
    name: "sweep: recover a dead worker's claim",
    strands: true,
    setup: async (q) => deadClaim(q, (await q.enqueue('t', 1, { key: 'k1' })).id),
    run: (q) => q.recover(),
    check: (dir, _report, persistent) => {
      expect(names(dir, 'queue').length + (persistent ? names(dir, 'active').length : 0)).toBe(1);
    },
  },
  {
    name: 'sweep: promote a due delayed job',
    setup: async (q) => {
      await q.enqueue('t', 1, { delay: 60_000 });
      dueNow(q.dir);
    },
    run: (q) => q.recover(),
    check: (dir) => expect([names(dir, 'queue').length, names(dir, 'delayed')]).toEqual([1, []]),
  },
  {
    name: 'sweep: prune done/',
    options: { keepDone: 0 },
    deletes: true,
    setup: async (q) => {
      for (const data of [1, 2]) await q.enqueue('t', data);
      for (let job = await q.claim(); job; job = await q.claim()) await job.complete('r');
      const then = new Date(Date.now() - 3600_000);
      for (const name of names(q.dir, 'done')) fs.utimesSync(path.join(q.dir, 'done', name), then, then);
      return undefined;
    },
    run: (q) => q.recover(),
    check: (dir) => expect(names(dir, 'done')).toEqual([]),
  },
  {
    // q.schedule makes a slot already due at once (here: of a schedule no longer paused); the Scheduler reports
    // what fails as a warning, and the same call again makes it
    name: "make a schedule's due slot (q.schedule of one that is due)",
    sample: true,
    setup: async (q) => {
      bootId(); // read once per process (cached), by the heartbeat the maker starts: so every run makes the same calls
      const startAt = Date.now() - 1000;
      await q.schedule('n', { type: 't', every: 3_600_000, startAt, overlap: 'allow', paused: true });
      const cursor = path.join(q.dir, 'schedules', '.n@0000000000000000');
      fs.utimesSync(cursor, new Date(startAt - 1000), new Date(startAt - 1000));
      return startAt;
    },
    run: (q, startAt) => q.schedule('n', { type: 't', every: 3_600_000, startAt: startAt as number, overlap: 'allow' }),
    check: (dir) => {
      const jobs = names(dir, 'queue').filter((id) => id.includes(`-${scheduleUnique('n')}.`));
      expect(jobs).toHaveLength(1);
      expect(names(dir, 'schedules').filter((f) => f.startsWith('.n@'))).toEqual([`.n@${jobs[0]!.slice(3, 19)}`]); // released
    },
  },
  {
    name: 'write a schedule',
    setup: async () => undefined,
    run: (q) => q.schedule('n', { type: 't', cron: '0 6 * * *', tz: 'Europe/Berlin' }),
    check: (dir) => {
      const spec = JSON.parse(fs.readFileSync(path.join(dir, 'schedules', 'n.json'), 'utf8')) as { cron: string };
      expect(spec.cron).toBe('0 6 * * *');
      expect(names(dir, 'schedules').filter((f) => f.startsWith('.n@'))).toHaveLength(1);
    },
  },
  {
    name: 'remove a schedule',
    setup: async (q) => q.schedule('n', { type: 't', every: 3_600_000 }),
    run: (q) => q.unschedule('n'),
    check: (dir) => expect(names(dir, 'schedules')).toEqual([]),
  },
];

/** Move job `id` from queue/ into a claim of a worker on another host that died an hour ago. */
function deadClaim(q: Queue, id: string): void {
  const owner = 'elsewhere.1.dead';
  fs.renameSync(path.join(q.dir, 'queue', id), path.join(q.dir, 'active', `${id}@${owner}.0`));
  const heartbeat = path.join(q.dir, 'workers', owner);
  fs.writeFileSync(heartbeat, '{}');
  const then = new Date(Date.now() - 3600_000);
  fs.utimesSync(heartbeat, then, then);
}

/** The calls to fail, of a transition that makes `calls` (names, in order). */
function pointsOf(transition: Transition, calls: readonly string[]): number[] {
  if (!transition.sample) return calls.map((_, i) => i + 1);
  const first = new Map<string, number>();
  const last = new Map<string, number>();
  calls.forEach((name, i) => {
    const kind = `${calls[i - 1] ?? ''}>${name}`;
    if (!first.has(kind)) first.set(kind, i + 1);
    last.set(kind, i + 1);
  });
  return [...new Set([...first.values(), ...last.values()])].sort((a, b) => a - b);
}

function faultsAt(n: number): Fault[] {
  const other = OTHERS[(n - 1) % OTHERS.length]!;
  return [
    { kind: 'errno', code: 'EIO', persistent: false },
    { kind: 'errno', code: 'EIO', persistent: true },
    { kind: 'errno', code: other, persistent: Math.floor((n - 1) / OTHERS.length) % 2 === 1 },
  ];
}

const open = (dir: string, transition: Transition): Promise<Queue> =>
  openQueue(dir, { durable: true, maintenance: false, watch: false, ...transition.options });

/** One case: the transition with `fault` at call `n`, and every check of the header. */
async function runCase(
  base: string,
  transition: Transition,
  n: number,
  fault: Fault & { kind: 'errno' },
  dead: number,
): Promise<void> {
  const what = `${fault.code} ${fault.persistent ? 'from' : 'at'} call ${n}`;
  const dir = fs.mkdtempSync(path.join(base, 'q-'));
  const q = await open(dir, transition);
  const warnings: Error[] = [];
  q.on('warning', (error) => warnings.push(error));
  const state = await transition.setup(q);
  const before = census(dir);
  const injection = injectAt(n, fault);
  let outcome: { ok: true; value: unknown } | { ok: false; error: unknown };
  try {
    outcome = { ok: true, value: await transition.run(q, state) };
  } catch (error) {
    outcome = { ok: false, error };
  } finally {
    injection.restore();
  }
  expect(injection.fired(), what).toBe(true);

  if (!outcome.ok) {
    const { error } = outcome;
    expect(error, `${what}: ${(error as Error).stack}`).toBeInstanceOf(DirQueueError);
    expect((error as DirQueueError).code, `${what}: ${String(error)}`).toBe(fault.code);
    // names the step and its file (a path in the queue), then what to do
    expect((error as Error).message, what).toMatch(
      new RegExp(`[a-z]+ing .*${dir.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`),
    );
    expect((error as Error).message, what).toMatch(ADVICE[fault.code]);
  }

  // right after the fault: one state each, nothing lost, nothing half-made
  expect(duplicates(dir), what).toEqual([]);
  const after = census(dir);
  for (const [id, states] of before) {
    if (!(transition.deletes && states[0] === 'done')) expect(after.has(id), `${what} lost ${id}`).toBe(true);
  }
  // a persistent fault may keep a failed write's tmp/ file from being removed: the sweeps remove it once its writer is gone;
  // so they do a helper temp (a lock's, a counter's) whose removal failed, which names no job: only a job's must go at once
  if (!fault.persistent)
    expect(
      names(dir, 'tmp').filter((name) => !(name.startsWith('.') && tmpWriterOf(name) === q.owner)),
      `${what}: left in tmp/`,
    ).toEqual([]);
  const ours = names(dir, 'active').filter((name) => parseActiveName(name)?.claim.owner === q.owner);
  const holding = [state, outcome.ok ? outcome.value : undefined].filter(
    (j): j is Job => j instanceof Object && 'claim' in j && !(j as Job).settled,
  );
  // a claim whose read failed goes back to queue/ at once, a take-back that failed half-way back to its old claim;
  // under a persistent fault the rename back fails too, and the handle keeps the job to move on at its next claim,
  // sweep or close (checked below, once the fault is gone)
  if (!fault.persistent || !transition.strands)
    expect(ours.map((name) => parseActiveName(name)!.id).sort(), `${what}: a claim of ours that no Job holds`).toEqual(
      holding.map((j) => j.id).sort(),
    );

  // an operation that resolved without its effect worked around the fault, and must have said so
  let result = outcome.ok ? outcome.value : undefined;
  let effective = outcome.ok;
  if (outcome.ok) {
    try {
      transition.check?.(dir, result, fault.persistent);
    } catch {
      effective = false;
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next turn
      expect(
        warnings.map((w) => (w as Partial<Pick<DirQueueError, 'code'>>).code),
        `${what}: resolved without its effect and without a warning`,
      ).toContain(fault.code);
    }
  }

  // the fault is gone: the same operation succeeds
  if (!effective) result = await transition.run(q, state);
  try {
    transition.check?.(dir, result, fault.persistent);
  } catch (error) {
    throw new Error(`${what}, run again: ${(error as Error).message}; warnings: ${warnings.map(String).join('; ')}`, {
      cause: error,
    });
  }

  // this handle closes (putting back what it holds) and is gone; another one brings every job to an end
  await q.close();
  fs.writeFileSync(
    path.join(dir, 'workers', q.owner),
    JSON.stringify({ host: os.hostname(), bootId: bootId(), pid: dead, startTime: '1', started: '' }),
  );
  const other = await openQueue(dir, { maintenance: false, watch: false });
  dueNow(dir);
  await other.recover();
  for (let job = await other.claim(); job; job = await other.claim()) await job.complete('end');
  const fresh = await other.enqueue('t', 'after', { key: 'k1' }); // every job has ended: the key is free
  expect(fresh.duplicate, `${what} wedged the key`).toBe(false);
  await other.close();
  const end = census(dir);
  for (const id of after.keys()) {
    if (!(transition.deletes && after.get(id)![0] === 'done'))
      expect(end.get(id), `${what}: ${id}`).toEqual([expect.stringMatching(/^(done|failed)$/)]);
  }
  for (const id of names(dir, 'done'))
    expect(tornIn(new Layout(dir), id, 1 << 20), `${what}: ${id} torn`).toBeUndefined();
  const tmp = names(dir, 'tmp');
  expect([tmp, names(dir, 'active'), names(dir, 'workers').filter((name) => name.startsWith('.lock'))], what).toEqual([
    [],
    [],
    [],
  ]);
  fs.rmSync(dir, { recursive: true, force: true });
}

describe('an I/O error at any filesystem call of a transition', () => {
  for (const transition of transitions) {
    it(
      transition.name,
      async () => {
        const base = tempDir();
        // count the calls of the transition without a fault, the second time: the first in this process also
        // reads what the library keeps once read (this process's boot id and start time, for its heartbeat)
        let calls: string[] = [];
        for (const run of ['warm', 'count']) {
          const dir = fs.mkdtempSync(path.join(base, `${run}-`));
          const q = await open(dir, transition);
          const state = await transition.setup(q);
          const counting = injectAt(Infinity, { kind: 'crash' });
          try {
            await transition.run(q, state);
          } finally {
            counting.restore();
          }
          await q.close();
          calls = counting.calls;
        }
        const points = pointsOf(transition, calls);
        expect(points.length).toBeGreaterThan(0);
        const dead = await deadPid(); // the pid of the handle that is gone, in every case's heartbeat
        let cases = 0;
        for (const n of points) {
          for (const fault of faultsAt(n)) {
            await runCase(base, transition, n, fault as Fault & { kind: 'errno' }, dead);
            cases++;
          }
        }
        console.log(`${transition.name}: ${calls.length} calls, ${cases} cases`);
      },
      300_000,
    ); // hundreds of cases each: 20 s for the batch of 300 alone, 60 s beside a loaded suite
  }
});
