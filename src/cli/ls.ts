/** dirq ls DIR [STATE]: the jobs in one state, in run order. */
import { formatAge, parseDuration } from '../store/duration.js';
import { firstJobs, type JobInfo } from '../queue/inspect.js';
import { Layout, STATES, type State } from '../store/layout.js';
import {
  jobJson,
  note,
  parse,
  parseInteger,
  parseState,
  print,
  printJson,
  table,
  UsageError,
  withQueue,
  type Align,
  type Command,
} from './common.js';

export const ls: Command = {
  name: 'ls',
  summary: 'list the jobs in a state, in run order',
  help: `Usage: dirq ls DIR [STATE] [--json] [--limit N] [--type T] [--grep TEXT] [--older-than D]

List the jobs in one state of the queue in DIR, in the order they run
(priority, then the time they became ready). STATE is one of
${STATES.join(', ')}; the default is queue.

Columns: ID (the file name in queue/), TYPE, GROUP (only when a listed job
has one: enqueue --group), PRI (0..99, lower runs first),
AGE (since it was enqueued), ATTEMPTS (made/allowed in this round: a retry
with dirq retry starts a new round), RUNS (only when a listed job was
retried: its runs that ended, over every round), and per state: DUE IN
(delayed), CLAIM (active: HOST.PID.NONCE.SEQ of the holder), ERROR (failed),
RESULT (done, only when a listed job is torn: "torn" for a job whose result
a power cut lost, which will run again; --json has its "torn" reason).

Options:
  --limit N         list at most N jobs (of those the filters keep)
  --type T          only jobs of type T (repeat it for several types)
  --grep TEXT       only jobs whose data (as JSON) or error message holds
                    TEXT, a plain case-sensitive substring
  --older-than D    only jobs older than D (the AGE column): 30s, 5m, 2h, 7d
  --json     print an array of jobs, each as dirq show --json prints one
             (README, "JSON output"), plus age (ms since it was enqueued,
             the AGE column)
  --debug    print the stack trace of an error
  -h, --help show this help

Examples:
  dirq ls /var/spool/mail-out
  dirq ls /var/spool/mail-out failed --json --limit 10
  dirq ls /var/spool/mail-out failed --type send --grep ECONNREFUSED --older-than 1h
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        json: { type: 'boolean' },
        limit: { type: 'string' },
        type: { type: 'string', multiple: true },
        grep: { type: 'string' },
        'older-than': { type: 'string' },
      },
      { min: 1, max: 2 },
    );
    if (parsed === undefined) return 0;
    const [dir, stateArg = 'queue'] = parsed.positionals as [string, string?];
    const state = parseState(stateArg);
    let limit: number | undefined;
    if (parsed.values.limit !== undefined) {
      limit = parseInteger(parsed.values.limit, '--limit');
      if (limit < 1) throw new UsageError(`--limit must be 1 or more, got ${limit} (leave it out to list every job)`);
    }
    const keep = filterOf(parsed.values.type, parsed.values.grep, parsed.values['older-than']);
    const { jobs, total } = await withQueue(dir, async (q) => {
      if (keep !== undefined) {
        // a filter must read every job to know which match: the limit applies to those it keeps
        const now = Date.now();
        const matching = (await q.list(state)).filter((job) => keep(job, now));
        return { jobs: matching.slice(0, limit), total: matching.length };
      }
      if (limit === undefined) {
        const jobs = await q.list(state);
        return { jobs, total: jobs.length };
      }
      // one streamed listing picks the first `limit` and counts the state: no sort of every name (issue 17)
      return firstJobs(new Layout(q.dir), state, limit, q.options);
    });
    const matching = keep === undefined ? '' : ' matching';
    if (parsed.values.json === true) {
      const now = Date.now();
      printJson(jobs.map((job) => ({ ...jobJson(job), age: ageOf(job, now) })));
      return 0;
    }
    if (jobs.length === 0) {
      note(`No${matching} jobs in ${state}/.`);
      return 0;
    }
    print(render(state, jobs, Date.now()));
    const torn = jobs.filter((job) => job.torn !== undefined).length;
    if (torn > 0) {
      note(
        `(${torn} torn: the result was lost, as in a power cut, so the job did not provably complete; a sweep after a reboot or dirq fsck --repair puts it back to run again, dirq show ID says why)`,
      );
    }
    if (total > jobs.length)
      note(`(${jobs.length} of ${total}${matching} jobs in ${state}/; raise --limit to see more)`);
    return 0;
  },
};

/** The filters given, as one test of a job; undefined when none was given. */
function filterOf(
  types: string[] | undefined,
  grep: string | undefined,
  olderThan: string | undefined,
): ((job: JobInfo, now: number) => boolean) | undefined {
  if (types === undefined && grep === undefined && olderThan === undefined) return undefined;
  if (grep === '') throw new UsageError('--grep needs some text to look for (leave it out to list every job)');
  const minAge = olderThan === undefined ? undefined : parseDuration(olderThan, '--older-than');
  return (job, now) =>
    (types === undefined || types.includes(job.type)) &&
    (grep === undefined || searchable(job).some((text) => text.includes(grep))) &&
    (minAge === undefined || ageOf(job, now) > minAge);
}

/** What --grep looks in: the data as JSON (raw bytes as text) and the last error's message or why the job is invalid. */
function searchable(job: JobInfo): string[] {
  const texts: string[] = [];
  if (Buffer.isBuffer(job.data)) texts.push(job.data.toString('utf8'));
  else if (job.data !== undefined) texts.push(JSON.stringify(job.data));
  if (job.error?.message !== undefined) texts.push(job.error.message);
  if (job.invalid !== undefined) texts.push(job.invalid);
  return texts;
}

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
  // GROUP only when a listed job has one: a queue without groups lists as before
  const grouped = jobs.some((job) => job.group !== undefined);
  if (grouped) {
    headers.splice(2, 0, 'GROUP');
    align.splice(2, 0, 'left');
  }
  // RESULT only when a listed done/ job is torn: otherwise every job in done/ succeeded and it would say so each row
  const torn = jobs.some((job) => job.torn !== undefined);
  if (torn) {
    headers.push('RESULT');
    align.push('left');
  }
  const rows = jobs.map((job) => {
    const row = [
      job.id,
      job.type,
      String(job.priority),
      formatAge(ageOf(job, now)),
      `${job.attemptsSinceRetry}/${job.attempts}`,
    ];
    if (runs) row.push(String(job.runs));
    if (grouped) row.splice(2, 0, job.group ?? '-');
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
