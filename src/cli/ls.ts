/** dirq ls DIR [STATE]: the jobs in one state, in run order. */
import { formatAge } from '../duration.js';
import type { JobInfo } from '../inspect.js';
import { STATES, type State } from '../layout.js';
import { jobJson, note, parse, parseInteger, parseState, print, printJson, table, UsageError, withQueue, type Align, type Command } from './common.js';

export const ls: Command = {
  name: 'ls',
  summary: 'list the jobs in a state, in run order',
  help: `Usage: dirq ls DIR [STATE] [--json] [--limit N]

List the jobs in one state of the queue in DIR, in the order they run
(priority, then the time they became ready). STATE is one of
${STATES.join(', ')}; the default is queue.

Columns: ID (the file name in queue/), TYPE, PRI (0..99, lower runs first),
AGE (since it was enqueued), ATTEMPTS (made/allowed in this round: a retry
with dirq retry starts a new round), RUNS (only when a listed job was
retried: its runs that ended, over every round), and per state: DUE IN
(delayed), CLAIM (active: HOST.PID.NONCE.SEQ of the holder), ERROR (failed),
RESULT (done, only when a listed job is torn: "torn" for a job whose result
a power cut lost, which will run again; --json has its "torn" reason).

Options:
  --limit N  list at most N jobs
  --json     print an array of jobs, each as dirq show --json prints one
             (README, "JSON output"), plus age (ms since it was enqueued,
             the AGE column)
  --debug    print the stack trace of an error
  -h, --help show this help

Examples:
  dirq ls /var/spool/mail-out
  dirq ls /var/spool/mail-out failed --json --limit 10
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' }, limit: { type: 'string' } }, { min: 1, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, stateArg = 'queue'] = parsed.positionals as [string, string?];
    const state = parseState(stateArg);
    let limit: number | undefined;
    if (parsed.values.limit !== undefined) {
      limit = parseInteger(parsed.values.limit, '--limit');
      if (limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit} (leave it out to list every job)`);
    }
    const { jobs, total } = await withQueue(dir, async (q) => {
      const jobs = await q.list(state, limit === undefined ? {} : { limit });
      const total = limit !== undefined && jobs.length >= limit ? (await q.counts())[state] : jobs.length;
      return { jobs, total };
    });
    if (parsed.values.json === true) {
      const now = Date.now();
      printJson(jobs.map((job) => ({ ...jobJson(job), age: ageOf(job, now) })));
      return 0;
    }
    if (jobs.length === 0) {
      note(`No jobs in ${state}/.`);
      return 0;
    }
    print(render(state, jobs, Date.now()));
    const torn = jobs.filter((job) => job.torn !== undefined).length;
    if (torn > 0) {
      note(`(${torn} torn: the result was lost, as in a power cut, so the job did not provably complete; a sweep after a reboot or dirq fsck --repair puts it back to run again, dirq show ID says why)`);
    }
    if (total > jobs.length) note(`(${jobs.length} of ${total} jobs in ${state}/; raise --limit to see more)`);
    return 0;
  },
};

function render(state: State, jobs: readonly JobInfo[], now: number): string {
  const headers = ['ID', 'TYPE', 'PRI', 'AGE', 'ATTEMPTS'];
  const align: Align[] = ['left', 'left', 'right', 'right', 'right'];
  const extra = EXTRA[state];
  if (extra !== undefined) {
    headers.push(extra.header);
    align.push(extra.align);
  }
  // RUNS only once an operator has retried a listed job: until then it would repeat ATTEMPTS
  const runs = jobs.some((job) => job.retries > 0);
  if (runs) {
    headers.splice(5, 0, 'RUNS');
    align.splice(5, 0, 'right');
  }
  // RESULT only when a listed done/ job is torn: otherwise every job in done/ succeeded and it would say so each row
  const torn = jobs.some((job) => job.torn !== undefined);
  if (torn) {
    headers.push('RESULT');
    align.push('left');
  }
  const rows = jobs.map((job) => {
    const row = [job.id, job.type, String(job.priority), formatAge(ageOf(job, now)), `${job.attemptsSinceRetry}/${job.attempts}`];
    if (runs) row.push(String(job.runs));
    if (extra !== undefined) row.push(extra.cell(job, now));
    if (torn) row.push(job.torn === undefined ? 'ok' : 'torn');
    return row;
  });
  return table(headers, rows, align);
}

/** The AGE column: ms since the job was enqueued (its file's created time, else when it became ready). */
function ageOf(job: JobInfo, now: number): number {
  return Math.max(0, now - (job.createdAt ?? job.readyAt).getTime());
}

const EXTRA: Partial<Record<State, { header: string; align: Align; cell: (job: JobInfo, now: number) => string }>> = {
  delayed: {
    header: 'DUE IN',
    align: 'right',
    cell: (job, now) => (job.runAt === undefined ? '-' : formatAge(Math.max(0, job.runAt.getTime() - now))),
  },
  active: { header: 'CLAIM', align: 'left', cell: (job) => job.claim ?? '-' },
  failed: { header: 'ERROR', align: 'left', cell: (job) => truncate(job.error?.message ?? job.invalid ?? '-', 60) },
};

function truncate(text: string, max: number): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > max ? `${flat.slice(0, max - 3)}...` : flat;
}
