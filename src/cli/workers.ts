/**
 * dirq workers DIR: who is working on the queue. Each process that claims
 * keeps a heartbeat in workers/ (liveness.ts) and names itself in every
 * claim in active/ (names.ts), so the two together say which workers there
 * are, whether each is alive, and what each holds: what `ls active/` cannot.
 */
import { formatAge, parseDuration } from '../store/duration.js';
import type { JobInfo } from '../queue/inspect.js';
import { Layout } from '../store/layout.js';
import { isDeadHere, readHeartbeat, type OwnerIdentity } from '../store/liveness.js';
import { parseClaim, parseOwner } from '../store/names.js';
import { listDir } from '../store/files.js';
import { note, parse, print, printJson, table, withQueue, type Command } from './common.js';

export const workers: Command = {
  name: 'workers',
  summary: 'the workers of a queue: host, pid, since, alive or not, the jobs each holds',
  help: `Usage: dirq workers DIR [--stale-after D] [--json]

List the workers of the queue in DIR: every process with a heartbeat in
workers/ (a process starts one at its first claim), and every holder of a
claim in active/. For each: its host and pid, when it started, how long
ago its heartbeat last beat, whether it is live, stale (silent longer than
--stale-after: a sweep will take its jobs back), dead (on this host, its
process is gone) or without a heartbeat (its claims were made by hand or
it closed without releasing them), and the jobs it holds: how long each has
run since its claim and the last progress it reported. Ages are read with
this host's clock against the files' times (the filesystem's clock).

Options:
  --stale-after D  the staleAfter the workers run with (default 30s)
  --json           print {"schema": 1, "staleAfter": MS, "workers": [...]}
                   (README, "JSON output")
  --debug          print the stack trace of an error
  -h, --help       show this help

Example:
  dirq workers /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      { 'stale-after': { type: 'string' }, json: { type: 'boolean' } },
      { min: 1, max: 1 },
    );
    if (parsed === undefined) return 0;
    const staleAfter =
      parsed.values['stale-after'] === undefined
        ? 30_000
        : parseDuration(parsed.values['stale-after'], '--stale-after');
    const found = await withQueue(parsed.positionals[0]!, async (q) =>
      census(new Layout(q.dir), await q.list('active'), staleAfter, Date.now()),
    );
    if (parsed.values.json === true) {
      printJson({ staleAfter, workers: found });
      return 0;
    }
    if (found.length === 0) {
      note('No workers: no heartbeat in workers/ and no claim in active/.');
      return 0;
    }
    print(render(found, Date.now()));
    return 0;
  },
};

export type WorkerStatus = 'live' | 'stale' | 'dead' | 'no-heartbeat';

export interface WorkerJob {
  id: string;
  type: string;
  claim: string;
  /** When it was claimed (ISO 8601), null when unknown. */
  claimedAt: string | null;
  /** ms since the claim, null when unknown. */
  runningMs: number | null;
  /** This run's attempt number in the current round (1 on the first). */
  attempt: number;
  /** The last progress this claim reported, null when none. */
  lastProgress: { at: string; value: unknown } | null;
}

export interface Worker {
  /** HOST.PID.NONCE: the name of its heartbeat and the start of its claims. */
  owner: string;
  host: string;
  pid: number;
  /** When the process opened its queue (its heartbeat's identity), null when unknown. */
  started: string | null;
  status: WorkerStatus;
  /** When its heartbeat last beat (its mtime, ISO 8601), null without one. */
  lastBeat: string | null;
  jobs: WorkerJob[];
}

/** Heartbeats and claims, by owner: live workers first, then the rest, each by host and pid. */
function census(layout: Layout, active: readonly JobInfo[], staleAfter: number, now: number): Worker[] {
  const byOwner = new Map<string, Worker>();
  for (const name of listDir(layout.paths.workers)) {
    const token = parseOwner(name); // a heartbeat is named by its owner
    if (token === undefined) continue; // totals and other helpers
    const beat = readHeartbeat(layout.file('workers', name));
    if (beat === undefined) continue; // gone meanwhile, or not a heartbeat
    const identity = beat.identity as Partial<OwnerIdentity> | undefined;
    let status: WorkerStatus = now - beat.mtimeMs > staleAfter ? 'stale' : 'live';
    if (beat.identity !== undefined && isDeadHere(beat.identity)) status = 'dead';
    byOwner.set(name, {
      owner: name,
      host: typeof identity?.host === 'string' ? identity.host : token.host,
      pid: token.pid,
      started: typeof identity?.started === 'string' && identity.started !== '' ? identity.started : null,
      status,
      lastBeat: new Date(beat.mtimeMs).toISOString(),
      jobs: [],
    });
  }
  for (const job of active) {
    const claim = job.claim === undefined ? undefined : parseClaim(job.claim);
    if (claim === undefined) continue;
    const owner = claim.owner;
    let worker = byOwner.get(owner);
    if (worker === undefined) {
      worker = {
        owner,
        host: claim.host,
        pid: claim.pid,
        started: null,
        status: 'no-heartbeat',
        lastBeat: null,
        jobs: [],
      };
      byOwner.set(owner, worker);
    }
    const progress = job.history.findLast((e) => e.event === 'progress' && e.claim === job.claim);
    worker.jobs.push({
      id: job.id,
      type: job.type,
      claim: job.claim!,
      claimedAt: job.claimedAt?.toISOString() ?? null,
      runningMs: job.claimedAt === undefined ? null : Math.max(0, now - job.claimedAt.getTime()),
      attempt: job.attemptsSinceRetry + 1,
      lastProgress: progress?.event === 'progress' ? { at: progress.at, value: progress.value } : null,
    });
  }
  const rank: Record<WorkerStatus, number> = { live: 0, stale: 1, dead: 2, 'no-heartbeat': 3 };
  return [...byOwner.values()].sort(
    (a, b) => rank[a.status] - rank[b.status] || a.host.localeCompare(b.host) || a.pid - b.pid,
  );
}

function render(found: readonly Worker[], now: number): string {
  const ago = (iso: string | null): string =>
    iso === null ? '-' : `${formatAge(Math.max(0, now - Date.parse(iso)))} ago`;
  const up = (iso: string | null): string => (iso === null ? '-' : formatAge(Math.max(0, now - Date.parse(iso))));
  const rows = found.map((w) => [
    w.owner,
    w.host,
    String(w.pid),
    up(w.started),
    w.status,
    ago(w.lastBeat),
    String(w.jobs.length),
  ]);
  const out = [
    table(['WORKER', 'HOST', 'PID', 'UP', 'STATUS', 'BEAT', 'JOBS'], rows, [
      'left',
      'left',
      'right',
      'right',
      'left',
      'right',
      'right',
    ]),
  ];
  const held = found.flatMap((w) => w.jobs.map((j) => ({ w, j })));
  if (held.length > 0) {
    const jobRows = held.map(({ w, j }) => [
      j.id,
      w.owner,
      j.runningMs === null ? '-' : formatAge(j.runningMs),
      String(j.attempt),
      j.lastProgress === null ? '-' : `${ago(j.lastProgress.at)}: ${short(j.lastProgress.value)}`,
    ]);
    out.push(
      '',
      table(['JOB', 'WORKER', 'RUNNING', 'ATTEMPT', 'LAST PROGRESS'], jobRows, [
        'left',
        'left',
        'right',
        'right',
        'left',
      ]),
    );
  }
  return out.join('\n');
}

function short(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}
