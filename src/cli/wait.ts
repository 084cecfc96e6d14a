/** dirq wait DIR ID [--timeout D]: wait for a job to finish; print its result. */
import { formatAge, parseDuration } from '../store/duration.js';
import { DirQueueError, JobFailedError } from '../store/errors.js';
import { EXIT_FAILURE, openExisting, parse, parseIdArg, print, printJson, type Command } from './common.js';

export const wait: Command = {
  name: 'wait',
  summary: 'wait for a job to finish and print its result',
  help: `Usage: dirq wait DIR ID [--timeout D] [--json]

Wait until the job ID of the queue in DIR finishes. When it is in done/,
print its result as JSON (nothing when it returned nothing) and exit 0.
When it ends in failed/, print its error on stderr and exit 1. With
--timeout, give up after D and exit 4 (the job is left as it is).

Options:
  --timeout D  wait at most D: 100ms, 30s, 5m, 2h (default: for ever)
  --json       print {"schema": 1, "id": ID, "state": "done", "result": ...}
               or, exiting 1, {"schema": 1, "id": ID, "state": "failed",
               "error": {"message", "code"?, "stack"?}}
  --debug      print the stack trace of an error
  -h, --help   show this help

Examples:
  dirq wait /var/spool/thumbs 50-1763830000123456-k3j9x0.resize --timeout 30s
  id=$(dirq enqueue /var/spool/thumbs resize '{"src":"a.jpg"}') && dirq wait /var/spool/thumbs "$id"
`,
  async run(args) {
    const parsed = parse(this, args, { timeout: { type: 'string' }, json: { type: 'boolean' } }, { min: 2, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, idArg] = parsed.positionals as [string, string];
    const id = parseIdArg(idArg);
    const timeout = parsed.values.timeout === undefined ? undefined : parseDuration(parsed.values.timeout, '--timeout');
    const json = parsed.values.json === true;
    const q = await openExisting(dir, { watch: true, pollInterval: 250 });
    try {
      const result = await q.waitFor(id, timeout === undefined ? {} : { timeout });
      if (json) printJson({ id, state: 'done', result: result ?? null });
      else if (result !== undefined) print(JSON.stringify(result, null, 2));
      return 0;
    } catch (error) {
      if (error instanceof JobFailedError && json) {
        printJson({ id, state: 'failed', error: error.jobError ?? null });
        return EXIT_FAILURE;
      }
      if (error instanceof DirQueueError && error.code === 'ETIMEOUT') {
        const where = await q.get(id).then(
          (job) => `it is in ${job.state}/`,
          () => 'it is gone',
        );
        throw new DirQueueError(
          'ETIMEOUT',
          `job ${id} did not finish within ${formatAge(timeout!)}: ${where}; wait longer with a larger --timeout`,
          { cause: error },
        );
      }
      throw error;
    } finally {
      await q.close();
    }
  },
};
