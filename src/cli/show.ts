/** dirq show DIR ID: everything about one job, its history, result or error. */
import { formatAge } from '../store/duration.js';
import type { JobEvent } from '../store/envelope.js';
import type { RecordedError } from '../store/errors.js';
import type { JobInfo } from '../queue/inspect.js';
import { jobJson, parse, parseIdArg, print, printJson, table, withQueue, type Command } from './common.js';

export const show: Command = {
  name: 'show',
  summary: 'everything about one job: data, attempts, history, result or error',
  help: `Usage: dirq show DIR ID [--json]

Show one job of the queue in DIR, in whatever state it is: its type,
priority, attempts, times, data, the file that holds it, its result (done/)
or last error (with the stack the processor threw), and its history (every
event appended to the job file: errors, results, recoveries, retries). ID
is the job's id, or its file name or path in any state directory.

Options:
  --json     print the job: schema (1), id, state, type, priority, data (or
             bytes, base64), attemptsMade, attemptsSinceRetry, attempts,
             runs, retries, createdAt, readyAt, runAt, claim, claimedAt,
             result, torn (done/: why its result is not proven), error,
             errors, invalid, schedule ({"name", "at"}: the schedule and slot
             that made it), group (enqueue --group), after, afterFailed,
             waitingFor (waiting/: where each job of after is), parents
             (how they ended), batch, onBatch, batchOutcome, history, path
             (README, "JSON output")
  --debug    print the stack trace of an error
  -h, --help show this help

Examples:
  dirq show /var/spool/mail-out 50-1763830000123456-k3j9x0.send
  dirq show /var/spool/mail-out failed/50-1763830000123456-k3j9x0.send --json
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 2, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, idArg] = parsed.positionals as [string, string];
    const id = parseIdArg(idArg);
    const job = await withQueue(dir, (q) => q.get(id));
    if (parsed.values.json === true) printJson(jobJson(job));
    else print(render(job, Date.now()));
    return 0;
  },
};

function render(job: JobInfo, now: number): string {
  const when = (date: Date): string => {
    const ms = now - date.getTime();
    return `${date.toISOString()} (${ms >= 0 ? `${formatAge(ms)} ago` : `in ${formatAge(-ms)}`})`;
  };
  const rows: [string, string][] = [
    ['ID', job.id],
    ['STATE', job.state],
    ['TYPE', job.type],
    ['PRIORITY', String(job.priority)],
    ['ATTEMPTS', attemptsText(job)],
  ];
  if (job.createdAt !== undefined) rows.push(['CREATED', when(job.createdAt)]);
  if (job.group !== undefined) rows.push(['GROUP', job.group]);
  if (job.schedule !== undefined) rows.push(['SCHEDULE', `${job.schedule.name}, the slot of ${job.schedule.at}`]);
  if (job.waitingFor !== undefined) {
    const policy = job.afterFailed === 'run' ? 'runs even if one fails' : 'fails if one fails';
    rows.push(['WAITS FOR', [...job.waitingFor.map((p) => `${p.id} (${p.state})`), `(${policy})`].join('\n')]);
  } else if (job.after !== undefined) {
    rows.push(['AFTER', job.after.join('\n')]);
  }
  if (job.parents !== undefined) {
    const line = (p: (typeof job.parents)[number]): string =>
      `${p.id} ${p.state}${p.result !== undefined ? `: ${oneLine(json(p.result))}` : p.error !== undefined ? `: ${oneLine(p.error.message)}` : ''}`;
    rows.push(['PARENTS', job.parents.map(line).join('\n')]);
  }
  if (job.batch !== undefined) rows.push(['BATCH', job.batch]);
  if (job.onBatch !== undefined) {
    rows.push(['CALLBACK', `on${job.onBatch.when === 'complete' ? 'Complete' : 'Success'} of batch ${job.onBatch.id}`]);
  }
  rows.push(['READY', when(job.readyAt)]);
  if (job.runAt !== undefined) rows.push(['RUNS AT', when(job.runAt)]);
  if (job.claim !== undefined)
    rows.push(['CLAIMED BY', job.claimedAt === undefined ? job.claim : `${job.claim}, ${when(job.claimedAt)}`]);
  rows.push(['FILE', job.path]);
  rows.push(['DATA', payload(job.data)]);
  if (job.torn !== undefined)
    rows.push([
      'RESULT',
      `torn: ${job.torn} (a sweep after a reboot, or dirq fsck --repair, puts it back to run again)`,
    ]);
  else if (job.state === 'done') rows.push(['RESULT', job.result === undefined ? '(none)' : json(job.result)]);
  if (job.error !== undefined) rows.push(['ERROR', errorText(job.error)]);
  if (job.invalid !== undefined) rows.push(['INVALID', `${job.invalid} (fix the file, then dirq retry)`]);
  const width = Math.max(...rows.map(([k]) => k.length));
  const out = rows.map(([k, v]) => `${k.padEnd(width)}  ${indent(v, width + 2)}`);
  if (job.history.length > 0) {
    out.push(
      '',
      'HISTORY',
      indent(table(['AT', 'EVENT', 'ATTEMPT', 'CLAIM', 'DETAIL'], job.history.map(historyRow)), 2, true),
    );
  }
  return out.join('\n');
}

/**
 * Attempts count per round (a retry starts one); the runs of every round are
 * told apart. A torn job in done/ did not provably succeed: its last run's
 * result was lost, so that run is not counted (get() says so too) and will run again.
 */
function attemptsText(job: JobInfo): string {
  const round =
    job.state !== 'done'
      ? `${job.attemptsSinceRetry} of ${job.attempts} used`
      : job.torn !== undefined
        ? `not proven: the result of attempt ${job.attemptsSinceRetry + 1} of ${job.attempts} was lost (torn), so it runs again`
        : `succeeded on attempt ${job.attemptsSinceRetry + 1} of ${job.attempts}`;
  if (job.retries === 0) return round;
  const times = job.retries === 1 ? 'once' : `${job.retries} times`;
  return `${round} since the last retry (retried ${times}; ${job.runs} run${job.runs === 1 ? '' : 's'} in all)`;
}

function historyRow(e: JobEvent): string[] {
  switch (e.event) {
    case 'result':
      return [e.at, e.event, String(e.attempt), e.claim, 'value' in e ? oneLine(json(e.value)) : '(no value)'];
    case 'error':
      return [
        e.at,
        e.event,
        String(e.attempt),
        e.claim,
        `${oneLine(e.message)}${e.retryAt === undefined ? '' : ` (retry at ${e.retryAt})`}`,
      ];
    case 'revoked':
      return [e.at, e.event, String(e.attempt), e.claim, `${e.reason}, taken back by ${e.by}`];
    case 'invalid':
      return [e.at, e.event, '-', '-', oneLine(e.reason)];
    case 'retry':
      return [e.at, e.event, '-', '-', 'sent back to queue/ by an operator: attempts start over'];
    case 'torn':
      return [
        e.at,
        e.event,
        '-',
        '-',
        `found in done/ without its result (${oneLine(e.reason)}): put back in queue/ to run again`,
      ];
    case 'progress':
      return [e.at, e.event, String(e.attempt), e.claim, oneLine(json(e.value))];
    case 'log':
      return [e.at, e.event, String(e.attempt), e.claim, oneLine(e.line)];
    case 'released':
      return [e.at, e.event, '-', e.claim, releasedText(e)];
  }
}

function releasedText(e: Extract<JobEvent, { event: 'released' }>): string {
  if (e.batch !== undefined) {
    const { id, total, done, failed } = e.batch;
    return `batch ${id} ended: ${done} of ${total} done, ${failed} failed`;
  }
  const parents = (e.parents ?? []).map((p) => `${p.id} ${p.state}`).join(', ');
  return oneLine(
    `the jobs it waited for ended: ${parents}${e.truncated === true ? ' (results left out: too large)' : ''}`,
  );
}

function payload(data: unknown): string {
  if (Buffer.isBuffer(data)) return `(raw bytes: ${data.length}; --json shows them as base64)`;
  return data === undefined ? '(none)' : json(data);
}

function errorText(error: RecordedError): string {
  const head = `${error.message}${error.code === undefined ? '' : ` (${error.code})`}`;
  const stack = error.stack
    ?.split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l.startsWith('at '));
  return stack === undefined || stack.length === 0 ? head : [head, ...stack.map((l) => `  ${l}`)].join('\n');
}

/** Short JSON on one line, longer JSON pretty-printed. */
function json(value: unknown): string {
  const flat = JSON.stringify(value) ?? String(value);
  return flat.length <= 100 ? flat : JSON.stringify(value, null, 2);
}

function oneLine(text: string): string {
  const flat = text.replace(/\s+/g, ' ');
  return flat.length > 80 ? `${flat.slice(0, 77)}...` : flat;
}

/** Indent every line after the first by `n` spaces (every line with `all`). */
function indent(text: string, n: number, all = false): string {
  const pad = ' '.repeat(n);
  return text
    .split('\n')
    .map((line, i) => (i > 0 || all ? `${pad}${line}` : line))
    .join('\n');
}
