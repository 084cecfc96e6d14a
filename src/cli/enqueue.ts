/** dirq enqueue DIR TYPE [JSON|-]: add one job, or one per line with --jsonl. */
import fs from 'node:fs';
import { parseDuration } from '../store/duration.js';
import type { BackoffSpec } from '../store/envelope.js';
import { encodeType } from '../store/names.js';
import { resolveEnqueueOptions, type EnqueueOptions } from '../queue/options.js';
import type { JobRef, Queue } from '../queue/queue.js';
import {
  note,
  parse,
  parseInteger,
  print,
  printJson,
  readStdin,
  readStdinBytes,
  UsageError,
  withQueue,
  type Command,
} from './common.js';
import { progressBar } from './progress.js';

/** Jobs per enqueueMany call with --jsonl: each call is all or nothing. */
const CHUNK = 1000;

export const enqueue: Command = {
  name: 'enqueue',
  summary: 'add a job (data as JSON, from stdin, a raw file, or one job per line)',
  help: `Usage: dirq enqueue DIR TYPE [JSON|-] [options]

Add one job of TYPE to the queue in DIR. Its data is the JSON argument, or
stdin when it is "-", or the raw bytes of --file, or none. Prints the new
job's id, which is also its file name in queue/ (with --delay or --at, the
end of its name in delayed/). With --jsonl, every non-empty line of FILE
(or stdin, "-") is the JSON data of one job of TYPE; it prints one id per
line, with a progress bar on a terminal. The queue must exist (dirq init
DIR). Every argument and line is checked first: on any error nothing is
enqueued.

Options:
  --priority N   0..99, lower runs first (default 50)
  --delay D      run no sooner than D from now: 500ms, 30s, 5m, 2h, 7d, 1h30m
  --at TIME      run no sooner than TIME, ISO 8601: 2026-11-22T18:00:00Z
  --attempts N   how many times to try before the job goes to failed/ (default 3)
  --timeout D    a run longer than D counts as a failed attempt: 30s, 5m
  --backoff B    the wait before the next attempt after an error: a duration
                 (fixed: 30s), exponential:D (D, then doubling: exponential:1s),
                 or the library's object as JSON:
                 '{"type":"exponential","delay":1000,"max":60000}'
                 (default: the queue's, exponential from 1s)
  --group G      the job's group (a tenant, a user): among ready jobs of one
                 type and priority, groups take turns (1 to 256 characters)
  --coalesce KEY the job's coalesce key (a user, a document): dirq work
                 --batch-size N hands the processor ready jobs of one type
                 and key together (1 to 256 characters)
  --key K        a unique key: while a job with key K waits or runs, print
                 its id instead of adding another (a note says so on stderr)
  --after IDS    wait in waiting/ until the jobs IDS (comma-separated, or the
                 option again; at most 100) have ended, then run
  --after-failed P  run: run even if one of --after failed or was removed;
                 fail (the default): end in failed/ with EPARENTFAILED
  --file PATH    a raw payload: the bytes of PATH ("-": stdin) instead of JSON
  --jsonl FILE   one job per line of FILE ("-": stdin), each line its JSON data
  --json         print {"schema": 1, "id": ..., "duplicate": false} (--jsonl:
                 an array of {"id", "duplicate"})
  --debug        print the stack trace of an error
  -h, --help     show this help

Examples:
  dirq enqueue /var/spool/mail-out send '{"to":"a@example.com"}' --priority 10
  echo '{"to":"b@example.com"}' | dirq enqueue /var/spool/mail-out send - --delay 5m
  dirq enqueue /var/spool/mail-out report '{}' --at 2026-12-01T06:00:00Z --key monthly-2026-12
  dirq enqueue /var/spool/thumbs resize --file photo.jpg
  dirq enqueue /var/spool/thumbs resize '{"src":"a.png"}' --group tenant-42
  dirq enqueue /var/spool/thumbs index '{}' --after "$(dirq enqueue /var/spool/thumbs resize '{}')"
  jq -c '.[]' recipients.json | dirq enqueue /var/spool/mail-out send --jsonl -
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        priority: { type: 'string' },
        delay: { type: 'string' },
        at: { type: 'string' },
        attempts: { type: 'string' },
        timeout: { type: 'string' },
        backoff: { type: 'string' },
        key: { type: 'string' },
        group: { type: 'string' },
        after: { type: 'string', multiple: true },
        'after-failed': { type: 'string' },
        coalesce: { type: 'string' },
        file: { type: 'string' },
        jsonl: { type: 'string' },
        json: { type: 'boolean' },
      },
      { min: 2, max: 3 },
    );
    if (parsed === undefined) return 0;
    const [dir, type, dataArg] = parsed.positionals as [string, string, string?];
    const { values } = parsed;
    // Everything is checked before the queue is touched: a bad call enqueues nothing.
    const sources = [
      dataArg === undefined ? undefined : 'a JSON argument',
      values.file && '--file',
      values.jsonl && '--jsonl',
    ].filter(Boolean);
    if (sources.length > 1) throw new UsageError(`give the data once: ${sources.join(' or ')}, not both`);
    if (values.delay !== undefined && values.at !== undefined) throw new UsageError('give --delay or --at, not both');
    if (values.jsonl !== undefined && values.key !== undefined)
      throw new UsageError('--key gives one job a unique key: it cannot be used with --jsonl');
    const options: EnqueueOptions = {};
    if (values.priority !== undefined) options.priority = parseInteger(values.priority, '--priority');
    if (values.delay !== undefined) options.delay = parseDuration(values.delay, '--delay');
    if (values.at !== undefined) options.runAt = parseTime(values.at);
    if (values.attempts !== undefined) options.attempts = parseInteger(values.attempts, '--attempts');
    if (values.timeout !== undefined) options.timeout = parseDuration(values.timeout, '--timeout');
    if (values.backoff !== undefined) options.backoff = parseBackoff(values.backoff);
    if (values.key !== undefined) options.key = values.key;
    if (values.group !== undefined) options.group = values.group;
    if (values.after !== undefined)
      options.after = values.after.flatMap((ids) => ids.split(',')).map((id) => id.trim());
    if (values['after-failed'] !== undefined) {
      if (options.after === undefined)
        throw new UsageError('--after-failed says what to do when a job of --after fails: give --after too');
      options.afterFailed = values['after-failed'] as 'fail' | 'run';
    }
    if (values.coalesce !== undefined) options.coalesce = values.coalesce;
    encodeType(type);
    resolveEnqueueOptions(options);
    const json = values.json === true;
    if (values.jsonl !== undefined) {
      const items = parseLines(
        values.jsonl === '-' ? await readStdin() : readText(values.jsonl, '--jsonl'),
        values.jsonl,
      );
      const refs = await withQueue(dir, (q) => enqueueLines(q, type, items, options, json));
      if (json) printJson(refs);
      return 0;
    }
    let data: unknown;
    if (values.file !== undefined) data = values.file === '-' ? await readStdinBytes() : readBytes(values.file);
    else if (dataArg !== undefined) data = parseData(dataArg === '-' ? await readStdin() : dataArg, dataArg === '-');
    const ref = await withQueue(dir, (q) => q.enqueue(type, data, options));
    if (ref.duplicate)
      note(
        `key ${JSON.stringify(values.key)} is held by job ${ref.id}, which is waiting or running: nothing was added`,
      );
    if (json) printJson(ref);
    else print(ref.id);
    return 0;
  },
};

/** Enqueue in chunks (each all or nothing), printing ids as they are added. */
async function enqueueLines(
  q: Queue,
  type: string,
  items: unknown[],
  options: EnqueueOptions,
  json: boolean,
): Promise<JobRef[]> {
  const refs: JobRef[] = [];
  const bar = progressBar('enqueue');
  try {
    for (let i = 0; i < items.length; i += CHUNK) {
      bar.update(i, items.length);
      let added: JobRef[];
      try {
        added = await q.enqueueMany(items.slice(i, i + CHUNK).map((data) => ({ type, data, ...options })));
      } catch (error) {
        if (error instanceof Error && i > 0)
          error.message = `${i} of ${items.length} jobs were enqueued (their ids are above), then: ${error.message}`;
        throw error;
      }
      refs.push(...added);
      if (!json) print(added.map((r) => r.id).join('\n'));
    }
    bar.update(items.length, items.length);
  } finally {
    bar.finish();
  }
  return refs;
}

function parseLines(text: string, source: string): unknown[] {
  const where = source === '-' ? 'stdin' : source;
  const items: unknown[] = [];
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim().length === 0) continue;
    try {
      items.push(JSON.parse(line));
    } catch (error) {
      throw new UsageError(
        `line ${i + 1} of ${where} is not valid JSON: ${(error as Error).message} (each line is the data of one job)`,
      );
    }
  }
  return items;
}

export function parseData(text: string, fromStdin: boolean): unknown {
  const where = fromStdin ? 'stdin' : 'the JSON argument';
  if (text.trim().length === 0)
    throw new UsageError(`${where} is empty: give a JSON value such as '{}' or "null", or leave it out`);
  try {
    return JSON.parse(text);
  } catch (error) {
    const hint = fromStdin
      ? ''
      : ` (quote it for the shell: '{"to":"a@example.com"}'; a plain string needs its JSON quotes: '"hello"'; raw bytes: --file)`;
    throw new UsageError(`${where} is not valid JSON: ${(error as Error).message}${hint}`);
  }
}

/** --backoff: a fixed delay, exponential:DELAY, or a backoff object as JSON (the library checks its fields). */
export function parseBackoff(text: string): BackoffSpec | number {
  if (text.trim().startsWith('{')) {
    try {
      return JSON.parse(text) as BackoffSpec;
    } catch (error) {
      throw new UsageError(
        `--backoff is not valid JSON: ${(error as Error).message} (or give a duration: 30s, or exponential:1s)`,
      );
    }
  }
  const exponential = /^exp(?:onential)?:(.*)$/.exec(text.trim());
  if (exponential !== null)
    return { type: 'exponential', delay: parseDuration(exponential[1]!, '--backoff exponential:') };
  return parseDuration(text, '--backoff');
}

function parseTime(text: string): Date {
  const at = new Date(text);
  if (!/^\d{4}-\d{2}-\d{2}/.test(text) || Number.isNaN(at.getTime())) {
    throw new UsageError(
      `--at must be an ISO 8601 time like 2026-11-22T18:00:00Z (or with an offset, +01:00), got ${JSON.stringify(text)}`,
    );
  }
  return at;
}

function readBytes(file: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (error) {
    throw new UsageError(`cannot read --file ${file}: ${(error as Error).message}`);
  }
}

function readText(file: string, flag: string): string {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${flag} ${file}: ${(error as Error).message}`);
  }
}
