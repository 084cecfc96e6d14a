/** dirq stats DIR: how many jobs in each state, how old, of which types. */
import { formatAge } from '../duration.js';
import type { Stats } from '../inspect.js';
import { STATES } from '../layout.js';
import { parse, print, printJson, table, withQueue, type Align, type Command } from './common.js';

export const stats: Command = {
  name: 'stats',
  summary: 'counts and ages per state, and counts per job type',
  help: `Usage: dirq stats DIR [--json]

Show, for the queue in DIR: how many jobs are in each state and how old the
oldest of them is (since it became ready; in delayed/, since it was put
there); when the next delayed job is due; the longest any ready job has
waited in queue/; and the jobs of each type by state.

Options:
  --json     print {"counts": {"queue": N, ...}, "oldest": {"queue": MS|null, ...},
             "nextDue": MS|null, "waiting": MS|null, "types": {"TYPE": {"queue": N, ...}, ...}}
             (ages in milliseconds)
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq stats /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 1 });
    if (parsed === undefined) return 0;
    const result = await withQueue(parsed.positionals[0]!, (q) => q.stats());
    if (parsed.values.json === true) printJson(result);
    else print(render(result));
    return 0;
  },
};

function render(s: Stats): string {
  const age = (ms: number | null): string => (ms === null ? '-' : formatAge(ms));
  const states = table(
    ['STATE', 'JOBS', 'OLDEST'],
    STATES.map((state) => [state, String(s.counts[state]), age(s.oldest[state])]),
    ['left', 'right', 'right'],
  );
  const out = [states, '', `Longest wait in queue/: ${age(s.waiting)}`];
  if (s.nextDue !== null) out.push(`Next delayed job due: ${s.nextDue <= 0 ? `overdue by ${formatAge(-s.nextDue)}` : `in ${formatAge(s.nextDue)}`}`);
  const types = Object.keys(s.types).sort();
  if (types.length > 0) {
    const align: Align[] = ['left', ...STATES.map((): Align => 'right')];
    const rows = types.map((type) => [type, ...STATES.map((state) => String(s.types[type]![state]))]);
    out.push('', table(['TYPE', ...STATES.map((st) => st.toUpperCase())], rows, align));
  }
  return out.join('\n');
}
