/**
 * What every verb of the CLI shares: the command shape, argument parsing with
 * clean one-line errors, the exit-code convention, tables and JSON output.
 *
 * Exit codes (also in `dirq --help` and README):
 *   0  success
 *   1  the command was valid but failed: no queue there, a job not found,
 *      a filesystem error (permissions, disk full); `wait`: the job failed
 *   2  usage: unknown command or option, a missing or malformed argument
 *      (bad JSON, priority out of range, unknown state, bad duration);
 *      nothing was changed
 *   3  a check found a problem: `stats --sla` over the SLA, `fsck` damage
 *      left unrepaired
 *   4  `wait --timeout`: the job did not finish in time
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { DirQueueError } from '../store/errors.js';
import type { JobInfo } from '../queue/inspect.js';
import { DIRS, isState, SETTINGS_FILE, STATES, type State } from '../store/layout.js';
import { checkId, parseActiveName, parseDelayedName } from '../store/names.js';
import type { QueueOptions } from '../queue/options.js';
import { Queue } from '../queue/queue.js';

export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;
export const EXIT_CHECK = 3;
export const EXIT_TIMEOUT = 4;

/** The exit-code table of `dirq --help`. */
export const EXIT_CODES_HELP = `Exit codes:
  0  success
  1  the command failed: no queue at DIR, no such job, a filesystem error;
     wait: the job ended in failed/
  2  usage error: unknown command or option, bad argument (malformed JSON,
     priority out of range, unknown state, bad duration); nothing changed
  3  a check failed: stats --sla found a job waiting longer than the SLA or a
     late schedule; fsck found damage it did not repair
  4  wait --timeout: the job did not finish in time`;

/** One verb: its help text and what it does. `run` returns the exit code. */
export interface Command {
  name: string;
  /** One line for the overview in `dirq --help`. */
  summary: string;
  /** The full `dirq VERB --help` text, ending with an example. */
  help: string;
  run(args: string[]): Promise<number>;
}

/** A mistake in how the command was called: exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Library codes that mean the caller's input was rejected before anything changed. */
const USAGE_CODES: ReadonlySet<string> = new Set(['EBADOPTION', 'EBADTYPE', 'EBADID', 'EBADDATA', 'EBADSCHEDULE']);

export function exitCodeOf(error: unknown): number {
  if (error instanceof UsageError) return EXIT_USAGE;
  if (error instanceof DirQueueError && USAGE_CODES.has(error.code)) return EXIT_USAGE;
  if (error instanceof DirQueueError && error.code === 'ETIMEOUT') return EXIT_TIMEOUT;
  return EXIT_FAILURE;
}

/** `dirq: <message>` on one line; with `debug`, the stack and causes follow. */
export function reportError(error: unknown, debug: boolean): void {
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`dirq: ${oneLine(message)}\n`);
  if (!debug) return;
  for (let e: unknown = error; e !== undefined; e = (e as { cause?: unknown }).cause) {
    // eslint-disable-next-line @typescript-eslint/no-base-to-string -- a cause that is not an Error: its String() is all there is to show
    process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    if (!(e instanceof Error)) break;
  }
}

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

/** Options every verb accepts. */
const COMMON_OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  debug: { type: 'boolean' },
} as const satisfies ParseArgsConfig['options'];

type Options = NonNullable<ParseArgsConfig['options']>;
type Parsed<O extends Options> = ReturnType<
  typeof parseArgs<{ options: O & typeof COMMON_OPTIONS; allowPositionals: true; strict: true }>
>;

/**
 * parseArgs in strict mode, with one-line messages that name the verb. Returns
 * undefined after printing the help when --help was given.
 */
export function parse<O extends Options>(
  command: Command,
  args: string[],
  options: O,
  positionals: { min: number; max: number },
): Parsed<O> | undefined {
  let parsed;
  const joined = joinNegativeValues(args, options);
  try {
    parsed = parseArgs({
      args: joined,
      options: { ...options, ...COMMON_OPTIONS },
      allowPositionals: true,
      strict: true,
    });
  } catch (error) {
    throw new UsageError(`${parseArgsMessage(error, joined)} (see dirq ${command.name} --help)`);
  }
  if ((parsed.values as { help?: boolean }).help === true) {
    process.stdout.write(command.help);
    return undefined;
  }
  const n = parsed.positionals.length;
  if (n < positionals.min) throw new UsageError(`${command.name}: missing arguments: usage: ${usageLine(command)}`);
  if (n > positionals.max) {
    throw new UsageError(
      `${command.name}: unexpected argument ${JSON.stringify(parsed.positionals[positionals.max])}: usage: ${usageLine(command)}`,
    );
  }
  return parsed;
}

function usageLine(command: Command): string {
  const line = command.help.split('\n').find((l) => l.startsWith('Usage: '));
  return line === undefined ? `dirq ${command.name}` : line.slice('Usage: '.length);
}

/**
 * `--priority -1` as `--priority=-1`: parseArgs takes a value that starts
 * with '-' for an option and refuses it, but no option of dirq looks like a
 * negative number, so the value is meant; then the value's own check says
 * what is wrong with it (priority 0..99) instead of a hint about '='.
 */
function joinNegativeValues(args: readonly string[], options: Options): string[] {
  const out: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      out.push(...args.slice(i));
      break;
    }
    const next = args[i + 1];
    const name = arg.startsWith('--') ? arg.slice(2) : undefined;
    if (name !== undefined && options[name]?.type === 'string' && next !== undefined && /^-\.?\d/.test(next)) {
      out.push(`${arg}=${next}`);
      i++;
    } else {
      out.push(arg);
    }
  }
  return out;
}

function parseArgsMessage(error: unknown, args: readonly string[]): string {
  const { code, message } = error as { code?: string; message?: string };
  const option = /'(-[^' ]*)/.exec(message ?? '')?.[1];
  if (option === undefined) return oneLine(message ?? String(error)); // a message that names no option: Node's own
  switch (code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return `unknown option ${option}`;
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE': {
      if (message?.includes('does not take an argument')) return `option ${option} does not take a value`;
      const value = args[args.indexOf(option) + 1];
      if (message?.includes('ambiguous') && value !== undefined)
        return `option ${option} needs a value (for a value that starts with '-', write ${option}=${value})`;
      return `option ${option} needs a value`;
    }
    default:
      return oneLine(message ?? String(error));
  }
}

/** A state name as typed (`failed` or `failed/`), limited to `allowed`. */
export function parseState(text: string, allowed: readonly State[] = STATES): State {
  const state = text.replace(/\/$/, '');
  if (!isState(state) || !allowed.includes(state))
    throw new UsageError(`unknown state ${JSON.stringify(text)}: use one of ${allowed.join(', ')}`);
  return state;
}

/**
 * A job id as an operator may paste it: the id, or a file name or path from
 * any state directory (`delayed/DUE~ID`, `active/ID@CLAIM`, `done/ID`).
 */
export function parseIdArg(text: string): string {
  const name = path.basename(text);
  const id = parseDelayedName(name)?.id ?? parseActiveName(name)?.id ?? name;
  return checkId(id);
}

/** A whole number from a flag; the library checks its range. */
export function parseInteger(text: string, flag: string): number {
  if (!/^-?\d+$/.test(text.trim())) throw new UsageError(`${flag} must be a whole number, got ${JSON.stringify(text)}`);
  return Number(text);
}

/**
 * Open an existing queue for a command: never creates one (use `dirq init`),
 * and never sweeps unless asked (`dirq recover`): inspecting writes nothing,
 * so a user who may only read the queue can inspect it.
 */
export async function openExisting(dir: string, options: QueueOptions = {}): Promise<Queue> {
  try {
    return await Queue.open(dir, { create: false, watch: false, maintenance: false, ...options });
  } catch (error) {
    if (error instanceof DirQueueError && error.code === 'ENOQUEUE') {
      throw new DirQueueError(
        'ENOQUEUE',
        `no queue at ${dir}: the directory does not exist (create one with dirq init ${dir})`,
        {
          cause: error,
        },
      );
    }
    const misread = error instanceof DirQueueError && error.code === 'ENOTQUEUE' ? notAQueue(dir) : undefined;
    if (misread !== undefined) throw new DirQueueError('ENOTQUEUE', misread, { cause: error });
    throw error;
  }
}

/**
 * Why `dir` is no queue, for the two cases where `dirq init DIR` is the
 * wrong advice: a file, or a directory inside a queue (`dirq ls Q/queue`).
 */
function notAQueue(dir: string): string | undefined {
  let stat: fs.Stats;
  try {
    stat = fs.statSync(dir);
  } catch {
    return undefined;
  }
  if (!stat.isDirectory())
    return `${dir} is a file, not a queue directory: give the directory that holds ${SETTINGS_FILE}`;
  const parent = path.dirname(path.resolve(dir));
  const name = path.basename(path.resolve(dir));
  if ((DIRS as readonly string[]).includes(name) && fs.existsSync(path.join(parent, SETTINGS_FILE))) {
    const hint = isState(name) ? ` (to list its jobs: dirq ls ${parent} ${name})` : '';
    return `${dir} is the ${name}/ directory of the queue ${parent}: give the queue's directory, ${parent}${hint}`;
  }
  return undefined;
}

/** Run `body` with an open queue and close it afterwards. */
export async function withQueue<T>(
  dir: string,
  body: (q: Queue) => Promise<T>,
  options: QueueOptions = {},
): Promise<T> {
  const q = await openExisting(dir, options);
  try {
    return await body(q);
  } finally {
    await q.close();
  }
}

/**
 * The version of every --json shape (README, "JSON output"). Object outputs
 * carry it as their first field, `schema`; arrays (ls, enqueue --jsonl,
 * metrics) stay plain arrays. New fields may appear at any version; it goes
 * up when a field changes its meaning or goes away.
 */
export const JSON_SCHEMA = 1;

/** An output as JSON, an object stamped with the schema version; pretty-printed unless `oneLine` (--watch). */
export function jsonText(value: unknown, oneLine = false): string {
  const stamped =
    value !== null && typeof value === 'object' && !Array.isArray(value) ? { schema: JSON_SCHEMA, ...value } : value;
  return oneLine ? JSON.stringify(stamped) : JSON.stringify(stamped, null, 2);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${jsonText(value)}\n`);
}

/**
 * Run a verb's body; with --json among `args`, an error is also printed on stdout as
 * {"schema": 1, "error": {"code", "message"}} for scripts (a usage mistake's code is EBADOPTION),
 * then thrown on as usual: the one line on stderr and the exit code stay as for every verb.
 */
export async function withJsonErrors(args: readonly string[], body: () => Promise<number>): Promise<number> {
  try {
    return await body();
  } catch (error) {
    if (args.includes('--json') && (error instanceof DirQueueError || error instanceof UsageError)) {
      const code = error instanceof DirQueueError ? error.code : 'EBADOPTION';
      printJson({ error: { code, message: oneLine(error.message) } });
    }
    throw error;
  }
}

export function print(text = ''): void {
  process.stdout.write(`${text}\n`);
}

/** A note for people that scripts reading stdout should not see. */
export function note(text: string): void {
  process.stderr.write(`${text}\n`);
}

export type Align = 'left' | 'right';

/** Columns padded to their widest cell, two spaces apart, no trailing blanks (as kubectl prints). */
export function table(
  headers: readonly string[],
  rows: readonly (readonly string[])[],
  align: readonly Align[] = [],
): string {
  // a loop, not Math.max(...cells): spreading every row as arguments overflows the stack past ~100,000 rows
  const widths = headers.map((h) => h.length);
  for (const row of rows)
    for (const [i, cell] of row.entries()) if (i < widths.length && cell.length > widths[i]!) widths[i] = cell.length;
  const line = (cells: readonly string[]): string =>
    cells
      .map((cell, i) => (align[i] === 'right' ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(headers), ...rows.map(line)].join('\n');
}

/** A job as the CLI prints it in JSON: dates as ISO strings, a raw payload as base64 `bytes` instead of `data`. */
export function jobJson(info: JobInfo): Record<string, unknown> {
  const { id, state, type, priority, data, ...rest } = info;
  const payload = Buffer.isBuffer(data) ? { bytes: data.toString('base64') } : { data: data ?? null };
  return { id, state, type, priority, ...payload, ...rest };
}

/** Read all of stdin, as bytes (a raw payload). */
export async function readStdinBytes(): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** Read all of stdin as UTF-8. */
export async function readStdin(): Promise<string> {
  return (await readStdinBytes()).toString('utf8');
}
