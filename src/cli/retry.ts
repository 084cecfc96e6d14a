/** dirq retry DIR ID... | --all [--type T]: send failed (or delayed) jobs back to queue/. */
import { DirQueueError } from '../store/errors.js';
import { encodeType } from '../store/names.js';
import {
  EXIT_FAILURE,
  note,
  parse,
  parseIdArg,
  print,
  printJson,
  reportError,
  UsageError,
  withQueue,
  type Command,
} from './common.js';

export const retry: Command = {
  name: 'retry',
  summary: 'send failed jobs back to queue/ with fresh attempts (or run delayed ones now)',
  help: `Usage: dirq retry DIR ID... | dirq retry DIR --all [--type TYPE]

Move jobs back to queue/ to run as soon as a worker is free: a job in
failed/ gets a fresh set of attempts (its history is kept, with a "retry"
event); a job in delayed/ runs now instead of at its time. With --all,
every job in failed/ (of TYPE with --type), except files that are not
job files (a FIFO or socket set aside there), which stay, each with a note
on stderr, and a last line that counts them. Prints the id of each job retried. A job that cannot be retried (running, done, not found) is
reported on stderr, the others are still retried, and the exit code is 1.

Options:
  --all        every job in failed/
  --type TYPE  with --all: only jobs of this type
  --json       print {"schema": 1, "retried": [ID, ...], "skipped": [ID, ...]}
               (skipped: with --all, the files that are not job files)
  --debug      print the stack trace of an error
  -h, --help   show this help

Examples:
  dirq retry /var/spool/mail-out 50-1763830000123456-k3j9x0.send
  dirq retry /var/spool/mail-out --all --type send
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      { all: { type: 'boolean' }, type: { type: 'string' }, json: { type: 'boolean' } },
      { min: 1, max: Infinity },
    );
    if (parsed === undefined) return 0;
    const [dir, ...idArgs] = parsed.positionals as [string, ...string[]];
    const { all, type } = parsed.values;
    if (all === true && idArgs.length > 0) throw new UsageError('give job ids or --all, not both');
    if (all !== true && idArgs.length === 0)
      throw new UsageError(
        'retry: give the ids of the jobs to retry, or --all: usage: dirq retry DIR ID... | --all [--type TYPE]',
      );
    if (type !== undefined && all !== true) throw new UsageError('--type selects jobs for --all: add --all');
    if (type !== undefined) encodeType(type);
    const ids = idArgs.map(parseIdArg);
    const debug = parsed.values.debug === true;
    const retried: string[] = [];
    const skipped: string[] = [];
    let failures = 0;
    await withQueue(dir, async (q) => {
      const targets =
        all === true
          ? (await q.list('failed')).filter((job) => type === undefined || job.type === type).map((job) => job.id)
          : ids;
      for (const id of targets) {
        try {
          await q.retry(id);
          retried.push(id);
          if (parsed.values.json !== true) print(`retried ${id}`);
        } catch (error) {
          if (all === true && error instanceof DirQueueError && error.code === 'EBADDATA') {
            note(`skipped ${id}: ${error.message}`); // a file set aside because it cannot run (a FIFO, a socket): --all leaves it
            skipped.push(id);
            continue;
          }
          reportError(error, debug);
          failures++;
        }
      }
    });
    if (parsed.values.json === true) printJson({ retried, skipped });
    else if (skipped.length > 0) note(`${retried.length} retried, ${skipped.length} skipped (not a job file)`);
    else if (retried.length === 0 && failures === 0)
      note(type === undefined ? 'No jobs in failed/.' : `No jobs of type ${type} in failed/.`);
    return failures > 0 ? EXIT_FAILURE : 0;
  },
};
