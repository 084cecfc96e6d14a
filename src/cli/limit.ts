/**
 * dirq limit DIR TYPE [--concurrency N] [--rate N/DUR] [--group-concurrency N] [--clear] and
 * dirq limits DIR: set, clear and list the limits every process on every host obeys (queue/limits.ts).
 */
import { formatAge, parseDuration } from '../store/duration.js';
import { DirQueueError } from '../store/errors.js';
import { LIMIT_MAX, RATE_PER_MIN_MS, type LimitSpec, type RateLimit } from '../store/limit-spec.js';
import type { LimitInfo, LimitProblemInfo } from '../queue/limits.js';
import { parse, print, printJson, table, withQueue, withJsonErrors, type Align, type Command } from './common.js';

export const limit: Command = {
  name: 'limit',
  summary: 'limit how many jobs of a type run at once, or start per window, on every host',
  help: `Usage: dirq limit DIR TYPE [--concurrency N] [--rate N/DURATION] [--group-concurrency N] [--clear]

Set the limit of TYPE, obeyed by every process on every host that shares
the directory (within one poll interval, 1 s by default): at most N of its
jobs running at once, at most N starts in any window of DURATION, at most
N running jobs of each group (enqueue's group). A limit replaces the type's
earlier one whole: give every part you want kept. The limit is the file
DIR/limits/TYPE/limit.json; running slots and rate tokens sit beside it
(FORMAT.md, "Limits"). A type at its limit does not hold up other types.
Prints the limit now in force.

Options:
  --concurrency N        at most N jobs of TYPE running at once (1..${LIMIT_MAX})
  --rate N/DURATION      at most N starts in any window of DURATION (at
                         least ${RATE_PER_MIN_MS}ms): 20/1s, 100/1m, 5/500ms
  --group-concurrency N  at most N running jobs of each group of TYPE
  --clear                remove the limit of TYPE (running jobs keep their
                         slots until they end); not an error when there is none
  --json                 print the limit as dirq limits --json shows one, or
                         {"schema": 1, "type": TYPE, "cleared": true|false};
                         an error as {"schema": 1, "error": {"code", "message"}}
  --debug                print the stack trace of an error
  -h, --help             show this help

Examples:
  dirq limit /var/spool/mail-out send --concurrency 3
  dirq limit /var/spool/mail-out send --rate 20/1s --concurrency 5
  dirq limit /var/spool/shop export --group-concurrency 1
  dirq limit /var/spool/mail-out send --clear
`,
  async run(args) {
    return withJsonErrors(args, async () => {
      const parsed = parse(
        this,
        args,
        {
          concurrency: { type: 'string' },
          rate: { type: 'string' },
          'group-concurrency': { type: 'string' },
          clear: { type: 'boolean' },
          json: { type: 'boolean' },
        },
        { min: 2, max: 2 },
      );
      if (parsed === undefined) return 0;
      const { values } = parsed;
      const [dir, type] = parsed.positionals as [string, string];
      const parts = [values.concurrency, values.rate, values['group-concurrency']].some((v) => v !== undefined);
      if (values.clear === true) {
        if (parts) throw bad('--clear removes the whole limit: give it alone, or set a new limit without --clear');
        const cleared = await withQueue(dir, (q) => q.limit(type, null));
        if (values.json === true) printJson({ type, cleared });
        else print(cleared ? `cleared the limit on ${type}` : `no limit on ${type}`);
        return 0;
      }
      const spec: LimitSpec = {};
      if (values.concurrency !== undefined) spec.concurrency = parseCount(values.concurrency, '--concurrency');
      if (values.rate !== undefined) spec.rate = parseRate(values.rate);
      if (values['group-concurrency'] !== undefined)
        spec.groupConcurrency = parseCount(values['group-concurrency'], '--group-concurrency');
      if (!parts) {
        throw bad(
          `give --concurrency N, --rate N/DURATION or --group-concurrency N to limit ${type}, or --clear to remove its limit (to see the limits: dirq limits ${dir})`,
        );
      }
      const info = await withQueue(dir, async (q) => {
        await q.limit(type, spec);
        return (await q.limits()).find((l): l is LimitInfo => !('invalid' in l) && l.type === type);
      });
      if (info === undefined) throw new DirQueueError('EFS', `the limit on ${type} was written, but is gone already`);
      if (values.json === true) printJson(info);
      else print(`limit on ${type}: ${describeLimit(info)} (${info.file})`);
      return 0;
    });
  },
};

export const limits: Command = {
  name: 'limits',
  summary: 'list the limits of types and how much of each is in use',
  help: `Usage: dirq limits DIR [--json]

List the limits of the queue in DIR, by type: the concurrency and the jobs
running now on every host, the rate and the starts in its latest window,
the group concurrency and the groups with a job running, and which process
set the limit (HOST.PID.NONCE) and when. A limit file broken by hand is
listed as "limits/NAME/limit.json: invalid: REASON"; it is not obeyed until
fixed (dirq fsck reports it too), and the other limits hold.

Options:
  --json      print an array of {"type", "concurrency", "rate": {"max", "per"},
              "groupConcurrency", "running", "recentStarts", "groupsRunning",
              "at", "by", "file"} (absent fields: not set), and
              {"file", "invalid"} for a broken file
  --debug     print the stack trace of an error
  -h, --help  show this help

Example:
  dirq limits /var/spool/mail-out
`,
  async run(args) {
    return withJsonErrors(args, async () => {
      const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 1 });
      if (parsed === undefined) return 0;
      const list = await withQueue(parsed.positionals[0]!, (q) => q.limits());
      if (parsed.values.json === true) {
        printJson(list);
        return 0;
      }
      if (list.length === 0) {
        print(`no limits (dirq limit ${parsed.positionals[0]!} TYPE --concurrency N adds one)`);
        return 0;
      }
      print(limitsText(list));
      return 0;
    });
  },
};

/** The table of `dirq limits`, then a line per broken file. */
function limitsText(list: readonly (LimitInfo | LimitProblemInfo)[]): string {
  const valid = list.filter((l): l is LimitInfo => !('invalid' in l));
  const broken = list.filter((l): l is LimitProblemInfo => 'invalid' in l);
  const now = Date.now();
  const cell = (n: number | undefined): string => (n === undefined ? '-' : String(n));
  const out: string[] = [];
  if (valid.length > 0) {
    const align: Align[] = ['left', 'right', 'right', 'right', 'right', 'right', 'right', 'left'];
    const rows = valid.map((l) => [
      l.type,
      cell(l.concurrency),
      cell(l.running),
      l.rate === undefined ? '-' : rateText(l.rate),
      cell(l.recentStarts),
      cell(l.groupConcurrency),
      cell(l.groupsRunning),
      setBy(l, now),
    ]);
    out.push(
      table(['TYPE', 'CONCURRENCY', 'RUNNING', 'RATE', 'RECENT', 'GROUP-CONC', 'GROUPS', 'SET-BY'], rows, align),
    );
  }
  if (valid.length > 0 && broken.length > 0) out.push('');
  for (const b of broken) out.push(`${b.file}: invalid: ${b.invalid}`);
  return out.join('\n');
}

function setBy(l: LimitInfo, now: number): string {
  const at = l.at === undefined ? Number.NaN : Date.parse(l.at);
  const when = Number.isNaN(at) ? '' : ` (${formatAge(now - at)} ago)`;
  return l.by === undefined && when === '' ? '-' : `${l.by ?? '?'}${when}`;
}

/** "20/1s": a rate as --rate takes it. */
export function rateText(rate: RateLimit): string {
  return `${rate.max}/${formatAge(rate.per)}`;
}

/** One limit in words, with its use: "concurrency 3 (1 running), rate 20/1s (4 in the last 1s), ...". */
export function describeLimit(l: LimitInfo): string {
  const parts: string[] = [];
  if (l.concurrency !== undefined) parts.push(`concurrency ${l.concurrency} (${l.running ?? 0} running)`);
  if (l.rate !== undefined)
    parts.push(`rate ${rateText(l.rate)} (${l.recentStarts ?? 0} in the last ${formatAge(l.rate.per)})`);
  if (l.groupConcurrency !== undefined) {
    const groups = l.groupsRunning ?? 0;
    parts.push(`group concurrency ${l.groupConcurrency} (${groups} group${groups === 1 ? '' : 's'} running)`);
  }
  return parts.join(', ');
}

/** A whole number 1..LIMIT_MAX from a flag. */
function parseCount(text: string, flag: string): number {
  const n = /^\s*-?\d+\s*$/.test(text) ? Number(text) : Number.NaN;
  if (!Number.isSafeInteger(n) || n < 1 || n > LIMIT_MAX) {
    throw bad(
      `${flag} must be a whole number from 1 to ${LIMIT_MAX}, got ${JSON.stringify(text)} (to remove a limit: --clear)`,
    );
  }
  return n;
}

/** --rate N/DURATION: at most N starts in any window of DURATION. */
function parseRate(text: string): RateLimit {
  const parts = text.split('/');
  if (parts.length !== 2) {
    throw bad(`--rate must be N/DURATION, at most N starts per window (20/1s, 100/1m), got ${JSON.stringify(text)}`);
  }
  const max = parseCount(parts[0]!, "--rate's count");
  const per = parseDuration(parts[1]!, "--rate's window");
  if (per < RATE_PER_MIN_MS) {
    throw bad(
      `--rate's window must be at least ${RATE_PER_MIN_MS}ms (shorter ones are below what clocks and mtimes can tell apart), got ${JSON.stringify(text)}`,
    );
  }
  return { max, per };
}

function bad(message: string): DirQueueError {
  return new DirQueueError('EBADOPTION', message);
}
