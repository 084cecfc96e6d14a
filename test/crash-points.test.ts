/**
 * I1 at every instruction: each transition is run again and again with a
 * simulated crash before its 1st, 2nd, 3rd, ... filesystem call (from then on
 * every call fails, as if the process were gone). After each crash every job
 * is in exactly one state directory, nothing is lost, and a recovery by
 * another queue handle brings every job to an end exactly once, every job in
 * done/ with a proven result (none torn).
 * The fault injection (test/support/faults.ts) spies on node:fs.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Job, Queue, ScheduleSpec } from '../dist/index.js';
import { Layout, readSettings } from '../dist/store/layout.js';
import { bootId } from '../dist/store/liveness.js';
import { tornIn } from '../dist/maintenance/torn.js';
import { readPause } from '../dist/store/pauses.js';
import { scheduleUnique } from '../dist/store/names.js';
import { census, duplicates, oneFileAtBoth } from './support/census.js';
import { Crash, crashAt } from './support/faults.js';
import { deadPid, openQueue, tempDir } from './support/temp.js';

interface Transition {
  name: string;
  /** Jobs to have before the transition; returns what the transition needs. */
  setup(q: Queue): Promise<unknown>;
  run(q: Queue, state: unknown): Promise<unknown>;
  /** Right after each crash: the transition's own files are whole or absent. */
  checkAfterCrash?(dir: string): void;
  /**
   * The setup leaves a job as one file at its claim's name and its ending's (the half-done rename a power
   * cut can leave): after a crash that job may still be so, and only so (census.ts oneFileAtBoth).
   */
  oneFileAtTwoNames?: true;
  /** Once another handle recovered and every job ended: what the transition's own files must show. */
  check?(dir: string, what: string): Promise<void> | void;
}

/**
 * A paused schedule with one due slot: every hour from 1 s ago, begun before that slot. Unpausing it
 * (q.schedule again) makes that slot's job at once. Returns the spec without `paused`.
 */
async function dueSchedule(q: Queue): Promise<ScheduleSpec> {
  const spec = { type: 't', every: 3_600_000, startAt: Date.now() - 1000, overlap: 'allow' } as const;
  await q.schedule('n', { ...spec, paused: true });
  const cursor = path.join(q.dir, 'schedules', '.n@0000000000000000');
  fs.utimesSync(cursor, new Date(spec.startAt - 1000), new Date(spec.startAt - 1000)); // began before its first slot
  return spec;
}

/** Jobs of schedule n in done/ (every job has ended by the time checks run). */
const runsOfN = (dir: string): string[] =>
  fs.readdirSync(path.join(dir, 'done')).filter((id) => id.includes(`-${scheduleUnique('n')}.`));

/** After recovery: schedule n is either there and valid, or gone with nothing of it left. */
async function scheduleWholeOrGone(dir: string, what: string): Promise<void> {
  const q = await openQueue(dir, { maintenance: false, watch: false });
  const list = await q.schedules();
  await q.close();
  expect(
    list.filter((s) => s.invalid !== undefined),
    what,
  ).toEqual([]);
  const left = fs.readdirSync(path.join(dir, 'schedules'));
  if (!left.includes('n.json')) expect(left, `${what}: state of a removed schedule`).toEqual([]);
  else
    expect(
      left.filter((f) => f.startsWith('.n@')),
      `${what}: one cursor`,
    ).toHaveLength(1);
}

/** paused/ holds only whole pauses (never a half-written one): each file reads as a pause. */
function wholePauses(dir: string): void {
  const layout = new Layout(dir);
  for (const name of fs.existsSync(path.join(dir, 'paused')) ? fs.readdirSync(path.join(dir, 'paused')) : [])
    expect(readPause(layout, name), `paused/${name}`).not.toHaveProperty('reason');
}

/**
 * After recovery, with every job ended: type t's limit is whole or gone, no slot is held, and a limit
 * with a rate has exactly its tokens (one name per K), once a sweep has looked.
 */
async function limitWholeOrGone(dir: string, what: string): Promise<void> {
  const q = await openQueue(dir, { maintenance: false, watch: false });
  await q.recover();
  const limits = await q.limits();
  await q.close();
  expect(
    limits.filter((l) => 'invalid' in l),
    what,
  ).toEqual([]);
  const typeDir = path.join(dir, 'limits', 't');
  const left = fs.existsSync(typeDir) ? fs.readdirSync(typeDir) : [];
  expect(
    left.filter((f) => /^(?:g\.[a-z0-9]{10}\.)?\d+$/.test(f) || f.startsWith('.reap.')),
    `${what}: slots held`,
  ).toEqual([]);
  const tokens = left.filter((f) => f.startsWith('r.')).map((f) => f.slice(0, f.indexOf('@')));
  const max = limits.length === 1 && 'rate' in limits[0]! ? (limits[0].rate?.max ?? 0) : 0;
  expect(tokens.sort(), `${what}: rate tokens`).toEqual(Array.from({ length: max }, (_, k) => `r.${k}`).sort());
}

/** After recovery and one more sweep (which drops the markers of children a crash kept from being placed): no marker left. */
async function noMarkersLeft(dir: string, what: string): Promise<void> {
  await withQueue(dir, (q) => q.recover().then(() => undefined));
  const left = fs.readdirSync(path.join(dir, 'deps')).filter((name) => name !== '.marker'); // the file markers link
  expect(left, `${what}: deps/`).toEqual([]);
}

async function withQueue(dir: string, use: (q: Queue) => Promise<void>): Promise<void> {
  const q = await openQueue(dir, { maintenance: false, watch: false });
  try {
    await use(q);
  } finally {
    await q.close();
  }
}

/** After recovery: a batch that was made (its batch.json there) ended, and its callback ran exactly once; none else. */
async function batchEndedOnce(dir: string, what: string): Promise<void> {
  const batches = fs.readdirSync(path.join(dir, 'batches'));
  await withQueue(dir, async (q) => {
    const callbacks = [...(await q.list('done')), ...(await q.list('failed'))].filter((j) => j.data === 'cb');
    const made = batches.filter((b) => fs.existsSync(path.join(dir, 'batches', b, 'batch.json')));
    if (made.length === 0) {
      expect(callbacks.length, `${what}: a callback of a batch never made`).toBeLessThanOrEqual(1);
      return;
    }
    expect(made, what).toHaveLength(1);
    const info = await q.batch(made[0]!);
    expect(info.ended, `${what}: the batch ended`).toBe(true);
    expect(
      callbacks.map((c) => c.id),
      `${what}: one callback`,
    ).toEqual([info.onComplete!.id]);
    expect(callbacks[0]!.batchOutcome?.id, what).toBe(made[0]);
  });
}

const transitions: Transition[] = [
  { name: 'enqueue (durable)', setup: async () => undefined, run: (q) => q.enqueue('t', { x: 1 }) },
  { name: 'enqueue delayed', setup: async () => undefined, run: (q) => q.enqueue('t', 1, { delay: 60_000 }) },
  {
    name: 'enqueueMany (durable)',
    setup: async () => undefined,
    run: (q) => q.enqueueMany([{ type: 't' }, { type: 't', delay: 10 }, { type: 'u' }]),
  },
  { name: 'enqueue with a unique key', setup: async () => undefined, run: (q) => q.enqueue('t', 1, { key: 'k1' }) },
  {
    name: 'a running job enqueues its next run under its key (keyFrom hands the key over)',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' }), q.claim()),
    run: (q, job) => q.enqueue('t', 2, { key: 'k1', keyFrom: (job as Job).id }),
  },
  {
    name: 'retry a delayed job (run now: its mtime, then one rename)',
    setup: async (q) => (await q.enqueue('t', 1, { delay: 3_600_000 })).id,
    run: (q, id) => q.retry(id as string),
  },
  { name: 'claim', setup: (q) => q.enqueue('t', 1), run: (q) => q.claim() },
  {
    name: 'complete a keyed job (frees its key)',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' }), q.claim()),
    run: (_q, job) => (job as { complete(r: unknown): Promise<void> }).complete('r'),
  },
  {
    name: 'complete',
    setup: async (q) => (await q.enqueue('t', 1), q.claim()),
    run: (_q, job) => (job as { complete(r: unknown): Promise<void> }).complete('r'),
  },
  {
    name: 'fail and retry',
    setup: async (q) => (await q.enqueue('t', 1, { backoff: 0 }), q.claim()),
    run: (_q, job) => (job as { fail(e: unknown): Promise<unknown> }).fail('e'),
  },
  {
    name: 'fail with backoff',
    setup: async (q) => (await q.enqueue('t', 1, { backoff: 5000 }), q.claim()),
    run: (_q, job) => (job as { fail(e: unknown): Promise<unknown> }).fail('e'),
  },
  {
    name: 'fail for good',
    setup: async (q) => (await q.enqueue('t', 1, { attempts: 1 }), q.claim()),
    run: (_q, job) => (job as { fail(e: unknown): Promise<unknown> }).fail('e'),
  },
  {
    name: 'release',
    setup: async (q) => (await q.enqueue('t', 1), q.claim()),
    run: (_q, job) => (job as { release(): Promise<void> }).release(),
  },
  {
    name: 'retry from failed',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { attempts: 1 });
      await (await q.claim())!.fail('e');
      return id;
    },
    run: (q, id) => q.retry(id as string),
  },
  {
    name: 'recover a dead claim and promote a due job',
    setup: async (q) => {
      await q.enqueue('t', 1, { delay: 1 });
      const { id } = await q.enqueue('t', 2);
      const dir = q.dir;
      const owner = `elsewhere.1.dead`;
      fs.renameSync(path.join(dir, 'queue', id), path.join(dir, 'active', `${id}@${owner}.0`));
      fs.writeFileSync(path.join(dir, 'workers', owner), '{}');
      const then = new Date(Date.now() - 3600_000);
      fs.utimesSync(path.join(dir, 'workers', owner), then, then);
      const delayed = fs.readdirSync(path.join(dir, 'delayed'))[0]!;
      fs.renameSync(
        path.join(dir, 'delayed', delayed),
        path.join(dir, 'delayed', delayed.replace(/^\d{16}/, '0000000000000001')),
      );
      return undefined;
    },
    run: (q) => q.recover(),
  },
  {
    name: "recover a dead claim whose ending's rename a power cut left half done (one file in active/ and done/)",
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1);
      const dir = q.dir;
      const owner = 'elsewhere.1.halfway';
      const active = path.join(dir, 'active', `${id}@${owner}.0`);
      fs.renameSync(path.join(dir, 'queue', id), active);
      const result = {
        event: 'result',
        at: new Date().toISOString(),
        attempt: 1,
        claim: `${owner}.0`,
        value: 'before the cut',
      };
      fs.appendFileSync(active, `${JSON.stringify(result)}\n`);
      fs.linkSync(active, path.join(dir, 'done', id));
      fs.writeFileSync(path.join(dir, 'workers', owner), '{}');
      const then = new Date(Date.now() - 3600_000);
      fs.utimesSync(path.join(dir, 'workers', owner), then, then);
      return undefined;
    },
    run: (q) => q.recover(),
    oneFileAtTwoNames: true,
    async check(dir, what) {
      // it completed before the cut: the recoveries left it in done/ with that result, never ran it again
      const [id, ...others] = fs.readdirSync(path.join(dir, 'done'));
      expect(others, what).toEqual([]);
      const q = await openQueue(dir, { maintenance: false, watch: false });
      const info = await q.get(id!);
      await q.close();
      expect(info?.result, what).toBe('before the cut');
    },
  },
  // pause and cancel (issue 13): a pause is a temp in tmp/ and one rename; a cancel of a waiting job takes it
  // under a claim (its cancel request first), appends the error, renames it to failed/; of a running one, the
  // request, then the holder's ending in failed/
  {
    name: 'pause a type (a temp in tmp/, one rename into paused/)',
    setup: (q) => q.enqueue('t', 1),
    run: (q) => q.pause('u', { for: 60_000 }),
    checkAfterCrash: wholePauses,
  },
  {
    name: 'resume (one unlink)',
    setup: async (q) => (await q.enqueue('t', 1), q.pause('u')),
    run: (q) => q.resume('u'),
    checkAfterCrash: wholePauses,
  },
  {
    name: 'cancel a waiting job with a unique key',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' })).id,
    run: (q, id) => q.cancel(id as string),
  },
  {
    name: 'cancel a running job and end it (its holder in this process)',
    setup: async (q) => (await q.enqueue('t', 1, { key: 'k1' }), q.claim()),
    run: async (q, job) => {
      await q.cancel((job as Job).id);
      await (job as Job).complete('r');
    },
  },
  {
    name: "recover a dead holder's cancelled claim (to failed/)",
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { key: 'k1' });
      const owner = `elsewhere.1.dead`;
      fs.renameSync(path.join(q.dir, 'queue', id), path.join(q.dir, 'active', `${id}@${owner}.0`));
      fs.writeFileSync(path.join(q.dir, 'workers', owner), '{}');
      const then = new Date(Date.now() - 3600_000);
      fs.utimesSync(path.join(q.dir, 'workers', owner), then, then);
      await q.cancel(id);
      return undefined;
    },
    run: (q) => q.recover(),
  },
  {
    name: 'set a limit (its rate tokens, then a temp in tmp/ renamed to limit.json)',
    setup: (q) => q.enqueue('t', 1),
    run: (q) => q.limit('t', { concurrency: 1, rate: { max: 3, per: 1000 } }),
    check: limitWholeOrGone,
  },
  {
    name: 'clear a limit (limit.json, its rate tokens, its directory)',
    setup: async (q) => (await q.enqueue('t', 1), q.limit('t', { concurrency: 1, rate: { max: 3, per: 1000 } })),
    run: (q) => q.limit('t', null),
    check: limitWholeOrGone,
  },
  {
    name: 'claim under a limit (a slot by link, a rate token by rename, then the claim)',
    setup: async (q) => (await q.limit('t', { concurrency: 1, rate: { max: 3, per: 1000 } }), q.enqueue('t', 1)),
    run: (q) => q.claim(),
    check: limitWholeOrGone,
  },
  {
    name: 'complete under a limit (the job, then its slot)',
    setup: async (q) => {
      await q.limit('t', { concurrency: 1, groupConcurrency: 1 });
      await q.enqueue('t', 1);
      return q.claim();
    },
    run: (_q, job) => (job as Job).complete('r'),
    check: limitWholeOrGone,
  },
  {
    name: "free a dead holder's slot (rename aside, check, delete) with its claim",
    setup: async (q) => {
      await q.limit('t', { concurrency: 1 });
      const { id } = await q.enqueue('t', 1);
      const owner = `elsewhere.1.dead`;
      const heartbeat = path.join(q.dir, 'workers', owner);
      fs.writeFileSync(heartbeat, '{}');
      const then = new Date(Date.now() - 3600_000);
      fs.utimesSync(heartbeat, then, then);
      fs.linkSync(heartbeat, path.join(q.dir, 'limits', 't', '0'));
      fs.renameSync(path.join(q.dir, 'queue', id), path.join(q.dir, 'active', `${id}@${owner}.0`));
      return undefined;
    },
    run: (q) => q.recover(),
    check: limitWholeOrGone,
  },
  // dependencies and batches (issue 15): a child's markers, then its rename into waiting/; an ending's rename, then
  // the release (waiting/ID -> waiting/ID@CLAIM, the released event, the rename on); a batch's directory, its
  // batch.json, its callbacks in waiting/, then its jobs. After each crash the sweeps of the recovery release what
  // may go, and every job, callbacks included, ends exactly once (the census check below)
  {
    name: 'enqueue after a waiting parent (markers in deps/, then waiting/)',
    setup: async (q) => (await q.enqueue('t', 1)).id,
    run: (q, id) => q.enqueue('t', 2, { after: [id as string] }),
    check: noMarkersLeft,
  },
  {
    name: 'enqueue after an ended parent (placed, then released at once)',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1);
      await (await q.claim())!.complete('r');
      return id;
    },
    run: (q, id) => q.enqueue('t', 2, { after: [id as string] }),
    check: noMarkersLeft,
  },
  {
    name: 'complete a parent (then release its waiting child)',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1);
      await q.enqueue('t', 2, { after: [id] });
      return q.claim();
    },
    run: (_q, job) => (job as Job).complete('r'),
    check: async (dir, what) => {
      await noMarkersLeft(dir, what);
      await withQueue(dir, async (q) => {
        const [child] = (await q.list('done')).filter((j) => j.after !== undefined);
        // 'r', or 'end' when the crash came before the parent's result and the recovery ran it again
        expect(child?.parents, what).toEqual([{ id: child!.after![0], state: 'done', result: expect.any(String) }]);
      });
    },
  },
  {
    name: 'fail a parent for good (then its child to failed/ with EPARENTFAILED)',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { attempts: 1 });
      await q.enqueue('t', 2, { after: [id] });
      return q.claim();
    },
    run: (_q, job) => (job as Job).fail('e'),
    check: async (dir, what) => {
      await noMarkersLeft(dir, what);
      await withQueue(dir, async (q) => {
        // the parent failed with 'e', or with ECRASHED when the crash came first (its one attempt is used up)
        const failed = await q.list('failed');
        expect(
          failed.map((j) => j.error?.code).filter((c) => c !== undefined && c !== 'ECRASHED'),
          what,
        ).toEqual(['EPARENTFAILED']);
      });
    },
  },
  {
    name: 'enqueueBatch (jobs in tmp/, batches/ID/ and its batch.json, the callback in waiting/, the jobs)',
    setup: async () => undefined,
    run: (q) => q.enqueueBatch([{ type: 't' }, { type: 't' }], { onComplete: { type: 't', data: 'cb' } }),
    check: batchEndedOnce,
  },
  {
    name: 'complete the last job of a batch (mark it, then release the callback)',
    setup: async (q) => (await q.enqueueBatch([{ type: 't' }], { onComplete: { type: 't', data: 'cb' } }), q.claim()),
    run: (_q, job) => (job as Job).complete('r'),
    check: batchEndedOnce,
  },
  {
    // dirqueue.json is replaced by a rename of a fresh file from tmp/: a crash leaves the old one or the new one
    name: 'rewrite the settings (as init --mode does on an existing queue)',
    setup: (q) => q.enqueue('t', 1),
    run: (q) => {
      const layout = new Layout(q.dir);
      return layout.writeSettings({ ...readSettings(layout.settingsPath)!, mode: '0660' });
    },
  },
  {
    name: 'put back a torn done/ job with a unique key (the first sweep after a boot)',
    setup: async (q) => {
      const { id } = await q.enqueue('t', 1, { key: 'k1' });
      await (await q.claim())!.complete('r');
      const file = path.join(q.dir, 'done', id);
      fs.writeFileSync(file, `${fs.readFileSync(file, 'utf8').split('\n')[0]}\n`); // a power cut kept the rename, not the result line
      return undefined; // maintenance is off: no sweep has checked done/ since this "boot"
    },
    run: (q) => q.recover(),
  },
  {
    name: "make a schedule's due slot (job in tmp/, take the cursor, last-run link, place, release)",
    setup: dueSchedule,
    run: (q, spec) => q.schedule('n', spec as ScheduleSpec), // no longer paused: q.schedule makes the due slot at once
    // exactly one job for the slot: the crashed maker's (placed by it, or by the completer from its tmp/ file), or
    // the recoverer's own when the crash came before the cursor was taken; none when it came before the unpaused
    // schedule was written (still paused, its slot is skipped)
    check: (dir, what) => {
      const spec = JSON.parse(fs.readFileSync(path.join(dir, 'schedules', 'n.json'), 'utf8')) as { paused?: boolean };
      expect(runsOfN(dir), what).toHaveLength(spec.paused === true ? 0 : 1);
    },
  },
  {
    name: 'write a schedule (q.schedule replacing one)',
    setup: async (q) => q.schedule('n', { type: 't', every: 3_600_000 }),
    run: (q) => q.schedule('n', { type: 't', cron: '0 6 * * *', tz: 'Europe/Berlin' }),
    check: scheduleWholeOrGone,
  },
  {
    name: 'remove a schedule that has run (q.unschedule)',
    setup: async (q) => {
      await q.schedule('n', await dueSchedule(q)); // its slot is made
      return undefined;
    },
    run: (q) => q.unschedule('n'),
    check: async (dir, what) => {
      await scheduleWholeOrGone(dir, what);
      expect(runsOfN(dir), what).toHaveLength(1); // its job stays
    },
  },
];

describe('a crash between any two steps of a transition (I1)', () => {
  for (const transition of transitions) {
    it(transition.name, async () => {
      let completedWithoutCrash = false;
      let crashPoints = 0;
      // the crashed handle's heartbeat names a process that has exited; its start time '1' matches no process, so
      // the pid reads as dead even if the system hands it to a new process later in the test
      const dead = await deadPid();
      for (let n = 1; !completedWithoutCrash; n++) {
        expect(n, 'the transition should end within 200 calls').toBeLessThan(200);
        const dir = path.join(tempDir(), 'q');
        const q = await openQueue(dir, { durable: true, maintenance: false, watch: false });
        const state = await transition.setup(q);
        const before = new Set(census(dir).keys());
        const crash = crashAt(n);
        try {
          await transition.run(q, state);
        } catch (error) {
          if (!(error instanceof Crash) && !crash.crashed()) throw error;
        } finally {
          crash.restore();
        }
        completedWithoutCrash = !crash.crashed();
        if (crash.crashed()) crashPoints++;

        // right after the crash: one state each, and every job that existed is still there
        const split = duplicates(dir).filter(
          ([id, states]) => transition.oneFileAtTwoNames === undefined || !oneFileAtBoth(dir, id, states),
        );
        expect(split, `crash at call ${n}`).toEqual([]);
        transition.checkAfterCrash?.(dir);
        const after = census(dir);
        for (const id of before) expect(after.has(id), `crash at call ${n} lost ${id}`).toBe(true);

        // the crashed handle is dead: another handle recovers and runs everything to an end
        fs.writeFileSync(
          path.join(dir, 'workers', q.owner),
          JSON.stringify({ host: os.hostname(), bootId: bootId(), pid: dead, startTime: '1', started: '' }),
        );
        const other = await openQueue(dir, { maintenance: false, watch: false });
        await other.recover();
        await q.close();
        for (const name of fs.readdirSync(path.join(dir, 'delayed'))) {
          fs.renameSync(
            path.join(dir, 'delayed', name),
            path.join(dir, 'delayed', name.replace(/^\d{16}/, '0000000000000001')),
          );
        }
        await other.recover();
        for (let job = await other.claim(); job; job = await other.claim()) await job.complete('end');
        const fresh = await other.enqueue('t', 'after', { key: 'k1' }); // every job has ended: the key is free
        expect(fresh.duplicate ?? false, `crash at call ${n} wedged the key`).toBe(false);
        await other.close();
        const end = census(dir);
        for (const id of after.keys())
          expect(end.get(id), `crash at call ${n}: ${id}`).toEqual([expect.stringMatching(/^(done|failed)$/)]);
        for (const id of fs.readdirSync(path.join(dir, 'done')))
          expect(tornIn(new Layout(dir), id, 1 << 20), `crash at call ${n}: ${id} torn`).toBeUndefined();
        await transition.check?.(dir, `crash at call ${n}`);
      }
      expect(crashPoints).toBeGreaterThanOrEqual(1); // a release is a single rename; enqueueMany of 3 has 27 calls
    });
  }
});
