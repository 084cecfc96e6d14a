/** dirq cancel DIR ID...: cancel waiting or running jobs, wherever they run. */
import {
  EXIT_FAILURE,
  parse,
  parseIdArg,
  print,
  printJson,
  reportError,
  UsageError,
  withQueue,
  type Command,
} from './common.js';
import type { CancelResult } from '../queue/flow.js';

export const cancel: Command = {
  name: 'cancel',
  summary: 'cancel jobs: waiting ones go to failed/ now, running ones are stopped wherever they run',
  help: `Usage: dirq cancel DIR ID...

Cancel each job. A waiting job (queue/ or delayed/) goes to failed/ at once,
its error code ECANCELLED. A running job's holder, in any process on any
host, sees the request (the file DIR/cancel/ID@CLAIM) at its next heartbeat
(within staleAfter/4, 7.5 s by default) and aborts the job's signal; the job
ends in failed/ with ECANCELLED once its processor returns. A cancelled job
is never retried (dirq retry still sends it back). A job that ended already,
or is not found, is reported on stderr; the others are still cancelled, and
the exit code is 1.

Options:
  --json      print {"schema": 1, "cancelled": [{"id", "state": "failed"|"active", "claim"?}, ...]}
  --debug     print the stack trace of an error
  -h, --help  show this help

Examples:
  dirq cancel /var/spool/mail-out 50-1763830000123456-k3j9x0.send
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: Infinity });
    if (parsed === undefined) return 0;
    const [dir, ...idArgs] = parsed.positionals as [string, ...string[]];
    if (idArgs.length === 0)
      throw new UsageError('cancel: give the ids of the jobs to cancel: usage: dirq cancel DIR ID...');
    const ids = idArgs.map(parseIdArg);
    const debug = parsed.values.debug === true;
    const cancelled: CancelResult[] = [];
    let failures = 0;
    await withQueue(dir, async (q) => {
      for (const id of ids) {
        try {
          const result = await q.cancel(id);
          cancelled.push(result);
          if (parsed.values.json !== true)
            print(
              result.state === 'failed'
                ? `cancelled ${id} (it was waiting: now in failed/)`
                : `cancelling ${id} (running, claim ${result.claim ?? '?'}: it stops at its holder's next heartbeat)`,
            );
        } catch (error) {
          reportError(error, debug);
          failures++;
        }
      }
    });
    if (parsed.values.json === true) printJson({ cancelled });
    return failures > 0 ? EXIT_FAILURE : 0;
  },
};
