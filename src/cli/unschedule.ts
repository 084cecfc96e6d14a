/** dirq unschedule DIR NAME: remove a schedule. */
import { DirQueueError } from '../store/errors.js';
import { parse, print, printJson, withQueue, type Command } from './common.js';

export const unschedule: Command = {
  name: 'unschedule',
  summary: 'remove a schedule (the jobs it made stay)',
  help: `Usage: dirq unschedule DIR NAME [--json]

Remove the schedule NAME from the queue in DIR: its file schedules/NAME.json,
its cursor and its last-run link. The jobs it made stay where they are. Every
process with the queue open stops making its jobs within a poll (1 s). Exits
1 when there is no such schedule.

Options:
  --json     print {"schema": 1, "name": NAME, "removed": true}
  --debug    print the stack trace of an error
  -h, --help show this help

Example:
  dirq unschedule /var/spool/shop cancel-abandoned
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 2, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, name] = parsed.positionals as [string, string];
    const removed = await withQueue(dir, (q) => q.unschedule(name));
    if (!removed)
      throw new DirQueueError(
        'ENOTFOUND',
        `no schedule ${JSON.stringify(name)} in ${dir} (dirq schedules ${dir} lists them)`,
      );
    if (parsed.values.json === true) printJson({ name, removed });
    else print(`removed the schedule ${name}`);
    return 0;
  },
};
