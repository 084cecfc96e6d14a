/**
 * The on-disk format (FORMAT.md) as a contract with outsiders:
 *
 * - a golden queue directory written by hand per FORMAT.md
 *   (test/fixtures/golden, never by the library) is read and run correctly;
 * - the bash and Python recipes, taken from FORMAT.md itself so the page and
 *   the test cannot drift, enqueue jobs the library runs;
 * - the files the library writes have the documented shape;
 * - a newer major format version is refused, a newer minor one accepted.
 *
 * The name grammar below is written again from FORMAT.md, not imported from
 * src/store/names.ts, so a change of the codec that breaks the page fails here.
 * Tests copy the fixture to a temp dir and never touch the original.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Job, Queue } from '../dist/index.js';
import { ok, okJson } from './support/cli.js';
import { checkoutForOtherUsers } from './support/other-users.js';
import { openQueue, tempDir, tempQueue } from './support/temp.js';
import { chgrpQueue, GROUP, modeOf, requireRoot, runAs, sharedBase, WEB, WORKER } from './support/users.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const GOLDEN = path.join(ROOT, 'test/fixtures/golden');
const FORMAT_MD = fs.readFileSync(path.join(ROOT, 'FORMAT.md'), 'utf8');
/** What the worker user below runs: a copy it may read wherever the checkout is. */
const OTHERS = checkoutForOtherUsers();
const OTHERS_ECHO = path.join(path.dirname(OTHERS.child), 'processors/echo.mjs');

// ---- the grammar of FORMAT.md, "File names" ----
const TYPE = '(?:[A-Za-z0-9_.-]|%[0-9A-F]{2})+';
const ID = `(\\d{2})-(\\d{16})-([A-Za-z0-9]{1,32})\\.(${TYPE})`;
const CLAIM = '([A-Za-z0-9-]{1,32})\\.(\\d+)\\.([a-z0-9]+)\\.([0-9a-z]+)';
const ID_RE = new RegExp(`^${ID}$`);
const DELAYED_RE = new RegExp(`^(\\d{16})~(${ID})$`);
const ACTIVE_RE = new RegExp(`^(${ID})@(${CLAIM})$`);
const CLAIM_RE = new RegExp(`^${CLAIM}$`);
/** TYPE has one valid spelling: bytes other than A-Z a-z 0-9 _ . - as %XX, upper-case hex, 1 to 120 characters. */
function canonicalType(encoded: string): boolean {
  let decoded: string;
  try {
    decoded = decodeURIComponent(encoded);
  } catch {
    return false;
  }
  let again = '';
  for (const byte of Buffer.from(decoded, 'utf8')) {
    const c = String.fromCharCode(byte);
    again += /[A-Za-z0-9_.-]/.test(c) ? c : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return again === encoded && encoded.length <= 120;
}
/** A job id per FORMAT.md: the pattern and the one spelling of its type. */
function isId(name: string): boolean {
  const m = ID_RE.exec(name);
  return m !== null && canonicalType(m[4]!);
}
const ISO_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$/;

// ---- the golden queue, as written in test/fixtures/golden ----
const G = {
  urgent: '10-1763830002000000-urgent1.mail%2Fout',
  min: '50-1763830000000000-min1.ping',
  back: '50-1763830000250000-back1.email', // in delayed/, due in the past
  again: '50-1763830000500000-again1.resize',
  bin: '50-1763830001000000-bin1.thumbnail',
  low: '90-1763829999000000-low1.report',
  far: '50-4102444800000000-far1.report', // in delayed/, due in 2100
  busy: '50-1763829998000000-busy1.email',
  sent: '50-1763829995000000-sent1.email',
  redo: '50-1763829996000000-redo1.resize',
  lost: '50-1763829997000000-lost1.email', // in done/, its result line cut short: torn
  bad: '50-1763829990000000-bad1.email',
  junk: '50-1763829991000000-junk1.email',
} as const;

/** queue/ in run order: priority first, then ready time (creation order is low, min, again, bin, urgent). */
const QUEUE_ORDER = [G.urgent, G.min, G.again, G.bin, G.low];
/**
 * Once back1 is promoted, it runs by its id (ready at ...250000), not by its due time; the torn
 * lost1, put back by the first sweep after a boot, runs by its id too.
 */
const RUN_ORDER = [G.urgent, G.lost, G.min, G.back, G.again, G.bin, G.low];
const GOLDEN_COUNTS = { queue: 5, delayed: 2, active: 1, done: 3, failed: 2, waiting: 0 };
/** Names in queue/ that are not jobs: readers must skip them and leave them where they are. */
const QUEUE_NOT_JOBS = [
  '.50-1763830000000000-min1.ping.swp',
  '.hidden',
  '5-1763830000000000-short1.ping',
  '50-176383000000000-fifteen1.ping',
  '50-1763830000000000-bad_unique.ping',
  '50-1763830000000000-lower1.mail%2fout',
  '50-1763830000000000-min1.ping~',
  '50-1763830000000000-needless1.%41',
  '50-1763830000000000-notype1.',
  'README',
];

/**
 * Open a copy of the golden queue. Maintenance (which at open would already
 * promote the past-due delayed job) is off, so the test sees the fixture as
 * written and runs each step itself.
 */
async function openGolden(dir = copyGolden()): Promise<Queue> {
  return openQueue(dir, { maintenance: false });
}

function copyGolden(): string {
  const dir = tempDir();
  fs.cpSync(GOLDEN, dir, { recursive: true });
  return dir;
}

/** Every file under `dir` with its bytes, for before/after comparisons. */
function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const entry of fs.readdirSync(dir, { recursive: true, withFileTypes: true })) {
    const full = path.join(entry.parentPath, entry.name);
    out[path.relative(dir, full)] = entry.isFile() ? fs.readFileSync(full).toString('base64') : '<dir>';
  }
  return out;
}

/** `LC_ALL=C ls DIR`, as FORMAT.md tells a reader to list a state. */
function lsC(dir: string): string[] {
  return execFileSync('ls', [dir], { env: { ...process.env, LC_ALL: 'C' }, encoding: 'utf8' })
    .split('\n')
    .filter((name) => name.length > 0);
}

/** The lines of a job file; the last one must end with a newline. */
function fileLines(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  expect(text.endsWith('\n'), `${file} ends with a newline`).toBe(true);
  return text.slice(0, -1).split('\n');
}

/** The one fenced block of `lang` in FORMAT.md. */
function codeBlock(lang: string): string {
  const blocks = [...FORMAT_MD.matchAll(new RegExp('^```' + lang + '\\n([\\s\\S]*?)^```$', 'gm'))];
  expect(blocks, `FORMAT.md has exactly one \`\`\`${lang} block`).toHaveLength(1);
  return blocks[0]![1]!;
}

/** Run a recipe; it must succeed without a word on stderr. Resolves with its stdout lines. */
function run(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): string[] {
  const child = spawnSync(command, args, { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  expect({ status: child.status, stderr: child.stderr, error: child.error }).toEqual({
    status: 0,
    stderr: '',
    error: undefined,
  });
  return child.stdout.trim().split('\n');
}

/** Claim every ready job, in the order the queue hands them out. */
async function claimAll(q: Queue): Promise<Job[]> {
  const jobs: Job[] = [];
  for (let job = await q.claim(); job !== undefined; job = await q.claim()) jobs.push(job);
  return jobs;
}

function usNow(): number {
  return Date.now() * 1000;
}

describe('golden queue directory written by hand per FORMAT.md', () => {
  let original: Record<string, string>;
  beforeAll(() => {
    original = tree(GOLDEN);
  });
  afterAll(() => {
    expect(tree(GOLDEN), 'the golden fixture was changed by a test').toEqual(original);
  });

  it('lists queue/ in run order with each field read from the name and the envelope', async () => {
    const q = await openGolden();
    const ready = await q.list('queue');
    expect(ready.map((j) => j.id)).toEqual(QUEUE_ORDER);
    const [urgent, min, again, bin, low] = ready;
    expect(urgent).toMatchObject({
      state: 'queue',
      type: 'mail/out', // from the percent-encoded name
      priority: 10,
      data: { to: 'ops@example.com', subject: 'disk 95% full' }, // x-origin: other fields are ignored
      attemptsMade: 0,
      createdAt: new Date('2025-11-22T16:46:42.000Z'),
      readyAt: new Date(1763830002000),
    });
    // `{}`: a job of the type in its name, with no data
    expect(min).toMatchObject({ type: 'ping', priority: 50, data: undefined, attemptsMade: 0, createdAt: undefined });
    // an operator retry: attempts start over, yet every ended attempt is counted
    expect(again).toMatchObject({
      type: 'resize',
      data: { w: 64, h: 64 },
      attemptsMade: 2,
      attempts: 2,
      attemptsSinceRetry: 0,
      runs: 2,
      retries: 1,
    });
    expect(again!.history.at(-1)).toMatchObject({ event: 'retry' });
    expect(bin!.type).toBe('thumbnail');
    expect(Buffer.isBuffer(bin!.data)).toBe(true);
    expect(bin!.data).toEqual(Buffer.from([0, 1, 2, 253, 254, 255]));
    expect(low).toMatchObject({ type: 'report', priority: 90, data: [1, 'two', null, { 3: true }], attempts: 1 });
    await q.close();
  });

  it('LC_ALL=C ls queue/ shows the jobs in the same order', async () => {
    const dir = copyGolden();
    expect(lsC(path.join(dir, 'queue')).filter(isId)).toEqual(QUEUE_ORDER);
  });

  it('reads done/, failed/, active/ and delayed/ jobs and their history', async () => {
    const q = await openGolden();

    const sent = await q.get(G.sent);
    expect(sent).toMatchObject({
      state: 'done',
      type: 'email',
      result: { messageId: '<1@example.com>' },
      attemptsMade: 0,
    });
    expect(sent.errors).toEqual([]);

    // The revoked claim web2.777.zz9k1m.0 wrote an error and a result after it lost
    // the job: both are void. One error plus one revoked claim = 2 attempts made.
    const redo = await q.get(G.redo);
    expect(redo.state).toBe('done');
    expect(redo.result).toEqual({ thumb: '128.png' });
    expect(redo.attemptsMade).toBe(2);
    expect(redo.errors[0]).toMatchObject({ message: 'timeout talking to S3', code: 'ETIMEDOUT' });
    expect(redo.errors.map((e) => e.message)).not.toContain('late error');

    // attempts exhausted; the torn third line is skipped
    const bad = await q.get(G.bad);
    expect(bad).toMatchObject({
      state: 'failed',
      type: 'email',
      data: { to: 'd@example.com' },
      attemptsMade: 2,
      attempts: 2,
    });
    expect(bad.errors).toHaveLength(2);
    expect(bad.errors.map((e) => e.code)).toEqual(['ECONNREFUSED', 'ECONNREFUSED']);
    expect(bad.error).toEqual({
      message: 'connection refused',
      code: 'ECONNREFUSED',
      stack: 'Error: connection refused\n    at send (mailer.js:10:5)',
    });
    expect(bad.result).toBeUndefined();

    const junk = await q.get(G.junk);
    expect(junk.state).toBe('failed');
    expect(junk.invalid).toMatch(/line 1 is not JSON/);

    expect(await q.get(G.busy)).toMatchObject({
      state: 'active',
      type: 'email',
      claim: 'web1.4242.q8d0ab.1c',
      data: { to: 'c@example.com' },
    });

    expect(await q.get(G.back)).toMatchObject({
      state: 'delayed',
      runAt: new Date(1763830003000), // the due time of the name, not the id's time
      readyAt: new Date(1763830000250),
      attemptsMade: 1,
      attempts: 3,
    });
    expect(await q.get(G.far)).toMatchObject({
      state: 'delayed',
      runAt: new Date('2100-01-01T00:00:00.000Z'),
      data: { year: 2100 },
    });

    // the power cut kept lost1's rename into done/, not all of its result line: not a completed job
    const lost = await q.get(G.lost);
    expect(lost).toMatchObject({ state: 'done', torn: expect.stringMatching(/cut short/), attemptsMade: 0 });
    expect('result' in lost).toBe(false);

    expect((await q.list('done')).map((j) => j.id)).toEqual([G.sent, G.redo, G.lost]);
    expect((await q.list('failed')).map((j) => j.id)).toEqual([G.bad, G.junk]);
    expect((await q.list('active')).map((j) => j.id)).toEqual([G.busy]);
    expect((await q.list('delayed')).map((j) => j.id)).toEqual([G.back, G.far]);
    await q.close();
  });

  it('counts only names that match the patterns and leaves the others alone', async () => {
    const dir = copyGolden();
    const q = await openGolden(dir);
    expect(await q.counts()).toEqual(GOLDEN_COUNTS);
    // the grammar of this test agrees with the fixture
    for (const name of QUEUE_NOT_JOBS) expect(isId(name), name).toBe(false);
    for (const id of Object.values(G)) expect(isId(id), id).toBe(true);
    // not ids at all
    for (const name of [
      '5-1763830000000000-short1.ping',
      '50-1763830000000000-lower1.mail%2fout',
      '50-1763830000000000-needless1.%41',
      'README',
    ]) {
      await expect(q.get(name), name).rejects.toMatchObject({ code: 'EBADID' });
    }
    // ids, but in no state: a file in tmp/, an active/ name without a claim or with half a claim, a delayed/ name without a due time
    for (const id of [
      '50-1763830009000000-half1.email',
      '50-1763829998000000-busy2.email',
      '50-1763829998000000-busy3.email',
      '50-1763830000250000-nodue1.email',
    ]) {
      await expect(q.get(id), id).rejects.toMatchObject({ code: 'ENOTFOUND' });
    }
    await q.close();
  });

  it('claims in the documented order; recover() promotes the past-due delayed job, not the future one', async () => {
    const dir = copyGolden();
    // The golden jobs were enqueued in 2025: under ageing all of them have waited past 99 x agingStep and run
    // first come, first served (I8). The order ls shows is the order of strict priority.
    const q = await openQueue(dir, { maintenance: false, agingStep: Infinity });
    // web1's claim is younger than staleAfter; no sweep has checked done/ since this host booted
    expect(await q.recover()).toMatchObject({ promoted: 1, recovered: [], torn: { requeued: [G.lost], problems: [] } });
    expect((await q.list('delayed')).map((j) => j.id)).toEqual([G.far]);
    const ls = lsC(path.join(dir, 'queue')).filter(isId);
    expect(ls).toEqual(RUN_ORDER);

    const jobs = await claimAll(q);
    expect(jobs.map((j) => j.id)).toEqual(RUN_ORDER);
    const byId = new Map(jobs.map((j) => [j.id, j]));
    expect(byId.get(G.urgent)).toMatchObject({ type: 'mail/out', priority: 10, attempt: 1 });
    expect(byId.get(G.min)).toMatchObject({ type: 'ping', data: undefined, attempt: 1 });
    expect(byId.get(G.back)).toMatchObject({ type: 'email', data: { to: 'b@example.com' }, attempt: 2, attempts: 3 });
    expect(byId.get(G.again)).toMatchObject({ type: 'resize', attempt: 3, attempts: 2 });
    expect(byId.get(G.bin)!.data).toEqual(Buffer.from([0, 1, 2, 253, 254, 255]));
    expect(byId.get(G.low)).toMatchObject({ type: 'report', priority: 90, attempt: 1 });
    expect(byId.get(G.lost)).toMatchObject({ type: 'email', data: { to: 'e@example.com' }, attempt: 2 }); // its lost run counts
    for (const job of jobs) await job.complete({ ran: job.id });

    expect(await q.counts()).toEqual({ queue: 0, delayed: 1, active: 1, done: 9, failed: 2, waiting: 0 });
    expect(await q.get(G.back)).toMatchObject({ state: 'done', result: { ran: G.back } });
    expect((await q.get(G.far)).state).toBe('delayed');
    // the names that are not jobs were neither run nor set aside
    expect(fs.readdirSync(path.join(dir, 'queue')).sort()).toEqual(QUEUE_NOT_JOBS);
    expect(fs.readdirSync(path.join(dir, 'failed')).sort()).toEqual(['.nfs0000000000a1b2c300000001', G.bad, G.junk]);
    await q.close();
  });

  it('a retried job gets a fresh set of attempts: its next failure retries instead of failing it', async () => {
    const dir = copyGolden();
    const q = await openGolden(dir);
    const job = await q.claim({ types: ['resize'] });
    expect(job).toMatchObject({ id: G.again, attempt: 3, attempts: 2 });
    expect(await job!.fail(new Error('still out of memory'))).toBe('retrying');
    const info = await q.get(G.again);
    expect(info.state).toBe('delayed'); // fixed backoff of 60 s from its envelope
    expect(info.history.at(-1)).toMatchObject({
      event: 'error',
      attempt: 3,
      claim: job!.claim,
      message: 'still out of memory',
    });
    const [name] = fs.readdirSync(path.join(dir, 'delayed')).filter((n) => n.endsWith(`~${G.again}`));
    const due = Number(DELAYED_RE.exec(name!)![1]);
    expect(due).toBe(Date.parse((info.history.at(-1) as { retryAt: string }).retryAt) * 1000);
    await q.close();
  });
});

describe('enqueueing without the library, with the recipes in FORMAT.md', () => {
  it('the bash recipe enqueues jobs the library claims and completes', async () => {
    const recipe = codeBlock('bash');
    expect(recipe).toContain('enqueue /var/spool/mail-out ');
    const { dir, q } = await tempQueue();
    const script = [
      recipe.replaceAll('/var/spool/mail-out', '"$QDIR"'), // the page's own example, into our queue
      `enqueue "$QDIR" report '{"n":1,"tags":["a","b"],"s":"caf\u00e9"}' 10`,
      `enqueue "$QDIR" broken '{"n":' 0`, // invalid JSON: the page says it goes to failed/
    ].join('\n');
    const ids = run('bash', ['-c', script], { ...process.env, QDIR: dir });
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(isId(id), id).toBe(true);
    const [sendId, reportId, brokenId] = ids as [string, string, string];
    expect(sendId).toMatch(/^50-\d{16}-\d+\.send$/);
    expect(reportId).toMatch(/^10-/);
    expect(brokenId).toMatch(/^00-/);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);

    const first = await q.claim({ wait: 10_000 }); // sets the broken one (priority 00) aside on the way
    const second = await q.claim({ wait: 10_000 });
    expect(first).toMatchObject({
      id: reportId,
      type: 'report',
      data: { n: 1, tags: ['a', 'b'], s: 'caf\u00e9' },
      attempt: 1,
    });
    expect(second).toMatchObject({ id: sendId, type: 'send', data: { to: 'a@example.com' }, attempt: 1 });
    await first!.complete('reported');
    await second!.complete({ sent: true });
    expect(await q.waitFor(reportId, { timeout: 10_000 })).toBe('reported');
    expect(await q.get(sendId)).toMatchObject({ state: 'done', result: { sent: true } });
    await expect(q.waitFor(brokenId, { timeout: 10_000 })).rejects.toMatchObject({ code: 'EJOBFAILED' });
    expect((await q.get(brokenId)).invalid).toMatch(/line 1 is not JSON/);
    await q.close();
  });

  it('the Python recipe enqueues jobs the library claims and completes', async () => {
    const { dir, q } = await tempQueue();
    const script = pythonScript(tempDir());
    const wanted: [string, unknown, number][] = [
      ['resize.v2', { w: 64, name: 'caf\u00e9 \u2713', n: null }, 50],
      ['ping', null, 5],
      ['report_daily', [1, 2, 3], 99],
    ];
    const ids = run('python3', [script, dir, JSON.stringify(wanted)]);
    expect(ids).toHaveLength(3);
    for (const id of ids) expect(isId(id), id).toBe(true);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);

    const jobs: Job[] = [];
    for (let i = 0; i < wanted.length; i++) jobs.push((await q.claim({ wait: 10_000 }))!);
    expect(jobs.map((j) => [j.type, j.data, j.priority])).toEqual([wanted[1], wanted[0], wanted[2]]);
    expect(jobs.map((j) => j.id)).toEqual([ids[1], ids[0], ids[2]]);
    for (const job of jobs) await job.complete({ ok: job.type });
    for (const [i, id] of ids.entries())
      expect(await q.waitFor(id, { timeout: 10_000 })).toEqual({ ok: wanted[i]![0] });
    await q.close();
  });

  it("both recipes give their files a shared queue's mode, whatever the umask, so another user's worker runs the jobs", async () => {
    requireRoot();
    const dir = path.join(sharedBase(), 'q');
    await ok(['init', dir, '--mode', '0660']);
    chgrpQueue(dir);
    const scripts = sharedBase();
    const bash = path.join(scripts, 'enqueue.sh');
    fs.writeFileSync(bash, `${codeBlock('bash').replace(/^enqueue \/var\/spool\/.*$/m, '')}\nenqueue "$@"\n`);
    const python = pythonScript(scripts);
    // The web app's user, with the common umask 022, which alone would make the files 0644.
    const fromBash = await runAs(WEB, 'bash', [bash, dir, 'send', '{"to":"a@example.com"}']);
    const fromPython = await runAs(WEB, 'python3', [python, dir, JSON.stringify([['resize', { w: 64 }, 50]])]);
    expect([fromBash, fromPython]).toMatchObject([
      { code: 0, stderr: '' },
      { code: 0, stderr: '' },
    ]);
    const ids = [fromBash.stdout.trimEnd(), fromPython.stdout.trimEnd()];
    for (const id of ids) {
      expect(isId(id), id).toBe(true);
      const file = path.join(dir, 'queue', id);
      expect(fs.statSync(file), id).toMatchObject({ uid: WEB, gid: GROUP });
      expect(modeOf(file).toString(8), id).toBe('660');
    }

    // The worker's user is another member of the group: it must be able to append each job's result.
    const worker = await runAs(WORKER, process.execPath, [OTHERS.cli, 'work', dir, OTHERS_ECHO, '--drain', '--quiet']);
    expect(worker).toMatchObject({ code: 0, stderr: '' });
    expect(await okJson(['show', dir, ids[0]!])).toMatchObject({
      state: 'done',
      result: { echo: { to: 'a@example.com' }, attempt: 1 },
    });
    expect(await okJson(['show', dir, ids[1]!])).toMatchObject({
      state: 'done',
      result: { echo: { w: 64 }, attempt: 1 },
    });
  });
});

/** The Python recipe of FORMAT.md as a script: `python3 SCRIPT DIR '[[TYPE, DATA, PRIORITY], ...]'` prints the ids. */
function pythonScript(dir: string): string {
  const script = path.join(dir, 'enqueue.py');
  fs.writeFileSync(
    script,
    `${codeBlock('python')}\nimport sys\nfor t, d, p in json.loads(sys.argv[2]):\n    print(enqueue(sys.argv[1], t, d, p))\n`,
  );
  return script;
}

describe('files the library writes have the documented shape', () => {
  it('enqueue writes PP-T-UNIQUE.TYPE with the envelope on line 1; complete appends a result', async () => {
    const { dir, q } = await tempQueue();
    const before = usNow();
    const { id } = await q.enqueue('mail/out', { to: 'a@example.com' }, { priority: 7 });
    const after = usNow() + 1000;
    expect(fs.readdirSync(path.join(dir, 'queue'))).toEqual([id]);
    expect(fs.readdirSync(path.join(dir, 'tmp'))).toEqual([]);
    expect(isId(id), id).toBe(true);
    const m = ID_RE.exec(id)!;
    expect(m[1]).toBe('07');
    expect(Number(m[2])).toBeGreaterThanOrEqual(before - 1000);
    expect(Number(m[2])).toBeLessThanOrEqual(after);
    expect(m[4]).toBe('mail%2Fout');

    const [line1, ...rest] = fileLines(path.join(dir, 'queue', id));
    expect(rest).toEqual([]);
    const envelope = JSON.parse(line1!) as Record<string, unknown>;
    expect(envelope).toEqual({
      type: 'mail/out',
      data: { to: 'a@example.com' },
      created: expect.stringMatching(ISO_RE),
    });
    expect(Date.parse(envelope.created as string) * 1000).toBeGreaterThanOrEqual(before - 1000);

    const job = (await q.claim())!;
    const [activeName] = fs.readdirSync(path.join(dir, 'active'));
    expect(activeName).toBe(`${id}@${job.claim}`);
    const am = ACTIVE_RE.exec(activeName!)!;
    expect(am).not.toBeNull();
    const cm = CLAIM_RE.exec(job.claim)!;
    expect(cm).not.toBeNull();
    expect(cm[1]).toBe(
      os
        .hostname()
        .split('.')[0]!
        .replace(/[^A-Za-z0-9-]/g, '-')
        .slice(0, 32),
    );
    expect(Number(cm[2])).toBe(process.pid);

    await job.complete({ sent: true });
    expect(fs.readdirSync(path.join(dir, 'active'))).toEqual([]);
    const lines = fileLines(path.join(dir, 'done', id));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(line1); // line 1 is written once
    expect(JSON.parse(lines[1]!)).toEqual({
      event: 'result',
      at: expect.stringMatching(ISO_RE),
      attempt: 1,
      claim: job.claim,
      value: { sent: true },
    });

    // a processor that returns nothing: no `value`
    const { id: id2 } = await q.enqueue('ping');
    expect(JSON.parse(fileLines(path.join(dir, 'queue', id2))[0]!)).toEqual({
      type: 'ping',
      created: expect.stringMatching(ISO_RE),
    });
    const job2 = (await q.claim())!;
    await job2.complete();
    const event = JSON.parse(fileLines(path.join(dir, 'done', id2))[1]!) as Record<string, unknown>;
    expect(event).toEqual({ event: 'result', at: expect.stringMatching(ISO_RE), attempt: 1, claim: job2.claim });
    await q.close();
  });

  it('bytes are written as base64 in `bytes`, without `data`', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('blob', Buffer.from([0, 255, 1]));
    expect(JSON.parse(fileLines(path.join(dir, 'queue', id))[0]!)).toEqual({
      type: 'blob',
      bytes: 'AP8B',
      created: expect.stringMatching(ISO_RE),
    });
    await q.close();
  });

  it('fail appends an error with attempt, claim and message; failed/ when attempts are used up', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('email', { n: 1 }, { attempts: 1 });
    expect(JSON.parse(fileLines(path.join(dir, 'queue', id))[0]!)).toMatchObject({
      type: 'email',
      data: { n: 1 },
      attempts: 1,
    });
    const job = (await q.claim())!;
    expect(await job.fail(Object.assign(new Error('smtp down'), { code: 'ESMTP' }))).toBe('failed');
    const lines = fileLines(path.join(dir, 'failed', id));
    expect(lines).toHaveLength(2);
    expect(JSON.parse(lines[1]!)).toEqual({
      event: 'error',
      at: expect.stringMatching(ISO_RE),
      attempt: 1,
      claim: job.claim,
      message: 'smtp down',
      code: 'ESMTP',
      stack: expect.stringContaining('smtp down'),
    });
    await q.close();
  });

  it('a failure with attempts left goes to delayed/DUE~ID, DUE being the retryAt of the error', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('email', { n: 2 }, { attempts: 2, backoff: 60_000 });
    const job = (await q.claim())!;
    expect(await job.fail('nope')).toBe('retrying');
    const [name, ...others] = fs.readdirSync(path.join(dir, 'delayed'));
    expect(others).toEqual([]);
    const m = DELAYED_RE.exec(name!)!;
    expect(m).not.toBeNull();
    expect(m[2]).toBe(id);
    const error = JSON.parse(fileLines(path.join(dir, 'delayed', name!))[1]!) as Record<string, unknown>;
    expect(error).toMatchObject({
      event: 'error',
      attempt: 1,
      claim: job.claim,
      message: 'nope',
      retryAt: expect.stringMatching(ISO_RE),
    });
    expect(Number(m[1])).toBe(Date.parse(error.retryAt as string) * 1000);
    await q.close();
  });

  it('a delayed enqueue is named DUE~ID where the id carries the due time', async () => {
    const { dir, q } = await tempQueue();
    const { id } = await q.enqueue('report', null, { delay: 60_000 });
    const [name] = fs.readdirSync(path.join(dir, 'delayed'));
    const m = DELAYED_RE.exec(name!)!;
    expect(m).not.toBeNull();
    expect(m[2]).toBe(id);
    expect(m[4]).toBe(m[1]); // the id's time is the due time
    expect(Number(m[1])).toBeGreaterThan(usNow() + 50_000_000);
    await q.close();
  });
});

describe('dirqueue.json version', () => {
  function withVersion(version: string, extra: Record<string, unknown> = {}): string {
    const dir = copyGolden();
    const settings = { format: 'dirqueue', version, created: '2025-11-22T16:40:00.000Z', ...extra };
    fs.writeFileSync(path.join(dir, 'dirqueue.json'), `${JSON.stringify(settings)}\n`);
    return dir;
  }

  it.each(['2.0', '10.0'])(
    'refuses a queue of major version %s with EVERSION and leaves it untouched',
    async (version) => {
      const dir = withVersion(version);
      fs.rmSync(path.join(dir, 'workers'), { recursive: true }); // would be created if the open went ahead
      const before = tree(dir);
      await expect(openQueue(dir)).rejects.toMatchObject({ code: 'EVERSION' });
      await expect(openQueue(dir, { create: false })).rejects.toMatchObject({ code: 'EVERSION' });
      expect(tree(dir)).toEqual(before);
    },
  );

  it('accepts a newer minor version (1.7) with fields it does not know', async () => {
    const q = await openGolden(withVersion('1.7', { shards: 4 }));
    expect(await q.counts()).toEqual(GOLDEN_COUNTS);
    expect((await q.list('queue')).map((j) => j.id)).toEqual(QUEUE_ORDER);
    await q.close();
  });
});

describe('groups per FORMAT.md, "Groups"', () => {
  const section = FORMAT_MD.slice(FORMAT_MD.indexOf('## Groups'), FORMAT_MD.indexOf('## Schedules'));

  it("the page's recipe computes the library's tag, and its example id carries it", async () => {
    const { groupTag } = await import('../dist/store/names.js');
    const recipe = /^```py\n([\s\S]*?)^```$/m.exec(section)![1]!;
    const groups = ['tenant-42', 'ünïcode ✓', 'x'.repeat(256)];
    const out = run('python3', ['-c', `${recipe}\nimport sys\nfor g in sys.argv[1:]: print(group_tag(g))`, ...groups]);
    expect(out).toEqual(groups.map(groupTag));
    const example = /^(\d{2}-\d{16}-[A-Za-z0-9]+\.[a-z-]+)$/m.exec(section)![1]!;
    expect(example).toMatch(ID_RE);
    expect(example).toContain(`G${groupTag('tenant-42')}.`);
    expect(section).toContain(`group_tag("tenant-42") == "${groupTag('tenant-42')}"`);
  });

  it('jobs written by hand with tags and the group field take turns, and show their group', async () => {
    const { groupTag } = await import('../dist/store/names.js');
    const { dir, q } = await tempQueue({ durable: false });
    const write = (us: number, group: string): string => {
      const id = `50-${String(1763830000000000 + us).padStart(16, '0')}-sh${us}G${groupTag(group)}.send`;
      fs.writeFileSync(path.join(dir, 'queue', id), `{"group":${JSON.stringify(group)}}\n`);
      return id;
    };
    const a = [1, 2, 3].map((us) => write(us, 'A'));
    const b = [10, 11].map((us) => write(us, 'B'));
    const order: string[] = [];
    const groups: (string | undefined)[] = [];
    for (let job = await q.claim(); job !== undefined; job = await q.claim()) {
      order.push(job.id);
      groups.push(job.group);
      await job.complete();
    }
    await q.close();
    expect(order).toEqual([a[0], b[0], a[1], b[1], a[2]]);
    expect(groups).toEqual(['A', 'B', 'A', 'B', 'A']);
  });
});
