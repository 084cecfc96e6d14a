/** dirq enqueue DIR TYPE [JSON|-]: add one job. */
import { parseDuration } from '../duration.js';
import { encodeType } from '../names.js';
import { resolveEnqueueOptions, type EnqueueOptions } from '../options.js';
import { parse, parseInteger, print, printJson, readStdin, UsageError, withQueue, type Command } from './common.js';

export const enqueue: Command = {
  name: 'enqueue',
  summary: 'add a job (data as a JSON argument or on stdin)',
  help: `Usage: dirq enqueue DIR TYPE [JSON|-] [options]

Add one job of TYPE to the queue in DIR. Its data is the JSON argument, or
stdin when it is "-", or none. Prints the new job's id, which is also its
file name in queue/ (or, with --delay, the end of its name in delayed/).
The queue must exist (dirq init DIR); nothing is enqueued on any error.

Options:
  --priority N   0..99, lower runs first (default 50)
  --delay D      run no sooner than D from now: 500ms, 30s, 5m, 2h, 7d, 1h30m
  --attempts N   how many times to try before the job goes to failed/ (default 3)
  --json         print {"id": ...}
  --debug        print the stack trace of an error
  -h, --help     show this help

Examples:
  dirq enqueue /var/spool/mail-out send '{"to":"a@example.com"}' --priority 10
  echo '{"to":"b@example.com"}' | dirq enqueue /var/spool/mail-out send - --delay 5m
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        priority: { type: 'string' },
        delay: { type: 'string' },
        attempts: { type: 'string' },
        json: { type: 'boolean' },
      },
      { min: 2, max: 3 },
    );
    if (parsed === undefined) return 0;
    const [dir, type, dataArg] = parsed.positionals as [string, string, string?];
    const { values } = parsed;
    // Everything is checked before the queue is touched: a bad call enqueues nothing.
    const options: EnqueueOptions = {};
    if (values.priority !== undefined) options.priority = parseInteger(values.priority, '--priority');
    if (values.delay !== undefined) options.delay = parseDuration(values.delay, '--delay');
    if (values.attempts !== undefined) options.attempts = parseInteger(values.attempts, '--attempts');
    encodeType(type);
    resolveEnqueueOptions(options);
    const data = dataArg === undefined ? undefined : parseData(dataArg === '-' ? await readStdin() : dataArg, dataArg === '-');
    const ref = await withQueue(dir, (q) => q.enqueue(type, data, options));
    if (values.json === true) printJson({ id: ref.id });
    else print(ref.id);
    return 0;
  },
};

function parseData(text: string, fromStdin: boolean): unknown {
  const where = fromStdin ? 'stdin' : 'the JSON argument';
  if (text.trim().length === 0) throw new UsageError(`${where} is empty: give a JSON value such as '{}' or "null", or leave it out`);
  try {
    return JSON.parse(text);
  } catch (error) {
    const hint = fromStdin ? '' : ` (quote it for the shell: '{"to":"a@example.com"}'; a plain string needs its JSON quotes: '"hello"')`;
    throw new UsageError(`${where} is not valid JSON: ${(error as Error).message}${hint}`);
  }
}
