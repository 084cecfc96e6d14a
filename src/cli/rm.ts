/** dirq rm DIR ID...: delete jobs that are not running. */
import { parse, parseIdArg, print, printJson, reportError, EXIT_FAILURE, withQueue, type Command } from './common.js';
import type { State } from '../store/layout.js';

export const rm: Command = {
  name: 'rm',
  summary: 'delete jobs (not running ones)',
  help: `Usage: dirq rm DIR ID... [--json]

Delete jobs from the queue in DIR, whatever state they are in except
active/ (a running job: wait for it to end, or stop its worker). Prints
each id and the state it was removed from. A job that cannot be removed is
reported on stderr, the others are still removed, and the exit code is 1.

Options:
  --json     print {"schema": 1, "removed": [{"id": ID, "state": STATE}, ...]}
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq rm /var/spool/mail-out 50-1763830000123456-k3j9x0.send
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 2, max: Infinity });
    if (parsed === undefined) return 0;
    const [dir, ...idArgs] = parsed.positionals as [string, ...string[]];
    const ids = idArgs.map(parseIdArg);
    const removed: { id: string; state: State }[] = [];
    let failures = 0;
    await withQueue(dir, async (q) => {
      for (const id of ids) {
        try {
          const state = await q.remove(id);
          removed.push({ id, state });
          if (parsed.values.json !== true) print(`removed ${id} (from ${state}/)`);
        } catch (error) {
          reportError(error, parsed.values.debug === true);
          failures++;
        }
      }
    });
    if (parsed.values.json === true) printJson({ removed });
    return failures > 0 ? EXIT_FAILURE : 0;
  },
};
