/** dirq purge DIR STATE [--older-than D]: delete the jobs of a state. */
import { formatAge, parseDuration } from '../store/duration.js';
import { parse, parseState, print, printJson, UsageError, withQueue, type Command } from './common.js';
import { progressBar } from './progress.js';

export const purge: Command = {
  name: 'purge',
  summary: 'delete every job of a state (older than a duration)',
  help: `Usage: dirq purge DIR STATE [--older-than D] [--json]

Delete the jobs in STATE (queue, delayed, done, failed or waiting; running jobs in
active/ cannot be purged) of the queue in DIR, or with --older-than only
those whose file has not changed for D: in done/ and failed/, jobs that
ended more than D ago. Prints how many were deleted; a progress bar shows
on a terminal. Workers prune done/ by themselves after keepDone (7 days).

Options:
  --older-than D  only jobs older than D: 30s, 5m, 2h, 7d
  --json          print {"schema": 1, "state": STATE, "removed": N}
  --debug         print the stack trace of an error
  -h, --help      show this help

Examples:
  dirq purge /var/spool/mail-out done --older-than 7d
  dirq purge /var/spool/mail-out failed
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      { 'older-than': { type: 'string' }, json: { type: 'boolean' } },
      { min: 2, max: 2 },
    );
    if (parsed === undefined) return 0;
    const [dir, stateArg] = parsed.positionals as [string, string];
    if (stateArg.replace(/\/$/, '') === 'active')
      throw new UsageError(
        'active jobs cannot be purged: they are running (use one of queue, delayed, done, failed, waiting)',
      );
    const state = parseState(stateArg, ['queue', 'delayed', 'done', 'failed', 'waiting']);
    const olderThanArg = parsed.values['older-than'];
    const olderThan = olderThanArg === undefined ? undefined : parseDuration(olderThanArg, '--older-than');
    const bar = progressBar(`purge ${state}/`);
    const removed = await withQueue(dir, (q) =>
      q.purge(state, {
        ...(olderThan === undefined ? {} : { olderThan }),
        progress: (done, total) => bar.update(done, total),
      }),
    ).finally(() => bar.finish());
    if (parsed.values.json === true) printJson({ state, removed });
    else
      print(
        `purged ${removed} job${removed === 1 ? '' : 's'} from ${state}/${olderThan === undefined ? '' : ` (older than ${formatAge(olderThan)})`}`,
      );
    return 0;
  },
};
