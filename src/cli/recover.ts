/** dirq recover DIR: one maintenance sweep now. */
import type { SweepReport } from '../maintenance/sweep.js';
import { parse, print, printJson, withQueue, type Command } from './common.js';

export const recover: Command = {
  name: 'recover',
  summary: 'one maintenance sweep now: take back stale claims, promote due jobs',
  help: `Usage: dirq recover DIR [--json]

Run one maintenance sweep of the queue in DIR now, as every worker does
every few seconds: take back the jobs of workers that died or went silent
(to queue/, or failed/ when their attempts are used up), move due delayed
jobs to queue/, delete done/ jobs past their retention (7 days) and files
abandoned in tmp/ (an hour old, or left by a worker that died). Waits for
a sweep another process is running. Prints what it did; exits 1 naming the
claims it could not take back (a job file this user may not write), after
doing the rest.

Options:
  --json     print {"schema": 1, "swept": BOOL, "recovered": [{"id", "claim", "reason", "to"}],
             "unrecovered": [], "promoted": N, "pruned": N, "tmpRemoved": N,
             "heartbeatsRemoved": N, "warnings": [{"code", "message"}],
             "torn": {"requeued": [ID], "problems": []}}
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq recover /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const report = await withQueue(parsed.positionals[0]!, (q) => q.recover());
    if (parsed.values.json === true)
      printJson({ ...report, warnings: report.warnings.map(({ code, message }) => ({ code, message })) });
    else print(render(report));
    return 0;
  },
};

function render(r: SweepReport): string {
  if (!r.swept) return 'another process was sweeping the queue: nothing done';
  const lines = r.recovered.map((x) => `recovered ${x.id} from ${x.claim} (${x.reason}) -> ${x.to}/`);
  for (const id of r.torn?.requeued ?? [])
    lines.push(`put back ${id}: in done/ without a proven result (torn) -> queue/`);
  const plural = (n: number, what: string): string => `${n} ${what}${n === 1 ? '' : 's'}`;
  lines.push(
    `${plural(r.recovered.length, 'claim')} taken back, ${plural(r.promoted, 'delayed job')} promoted, ` +
      `${plural(r.pruned, 'done job')} pruned, ${plural(r.tmpRemoved, 'abandoned tmp/ file')} removed`,
  );
  for (const warning of r.warnings) lines.push(`warning: ${warning.message}`);
  return lines.join('\n');
}
