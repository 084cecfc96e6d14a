/** dirq pause DIR [TYPE] [--for DUR] and dirq resume DIR [TYPE]: stop and restart the start of jobs, on every host. */
import { parseDuration } from '../store/duration.js';
import type { PauseInfo } from '../queue/flow.js';
import { parse, print, printJson, withQueue, type Command } from './common.js';

export const pause: Command = {
  name: 'pause',
  summary: 'stop workers on every host from starting jobs of a type (or of the whole queue)',
  help: `Usage: dirq pause DIR [TYPE] [--for DURATION]

Pause TYPE (without it, the whole queue) for every process on every host
that shares the directory: within one poll interval (1 s by default; at
once on the same host) no worker starts a job of it. Running jobs finish;
enqueueing still works. The pause is the file DIR/paused/TYPE
(DIR/paused/@all for the whole queue): \`ls DIR/paused\` lists pauses and
\`rm\` of one resumes, as dirq resume does. Pausing a paused type again
replaces its pause (a new --for, or none). Prints the pause.

Options:
  --for DURATION  end the pause by itself after this long (in the
                  filesystem's clock, so hosts with skewed clocks agree)
  --json          print {"schema": 1, "type": TYPE|null, "until": ISO|null, "file": "paused/..."}
  --debug         print the stack trace of an error
  -h, --help      show this help

Examples:
  dirq pause /var/spool/mail-out send --for 10m
  dirq pause /var/spool/mail-out
  dirq resume /var/spool/mail-out send
`,
  async run(args) {
    const parsed = parse(this, args, { for: { type: 'string' }, json: { type: 'boolean' } }, { min: 1, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, type] = parsed.positionals as [string, string | undefined];
    const forMs = parsed.values.for === undefined ? undefined : parseDuration(parsed.values.for, '--for');
    const made = await withQueue(dir, (q) => q.pause(type, forMs === undefined ? {} : { for: forMs }));
    if (parsed.values.json === true) printJson(pauseJson(made));
    else print(describePause(made));
    return 0;
  },
};

export const resume: Command = {
  name: 'resume',
  summary: 'lift a pause of a type (or of the whole queue)',
  help: `Usage: dirq resume DIR [TYPE]

Lift the pause of TYPE (without it, the pause of the whole queue; pauses of
single types stay): removes DIR/paused/TYPE (DIR/paused/@all). Workers
everywhere start its jobs again within one poll interval. Resuming what is
not paused is not an error; it says so.

Options:
  --json      print {"schema": 1, "type": TYPE|null, "resumed": true|false}
  --debug     print the stack trace of an error
  -h, --help  show this help

Examples:
  dirq resume /var/spool/mail-out send
  dirq resume /var/spool/mail-out
`,
  async run(args) {
    const parsed = parse(this, args, { json: { type: 'boolean' } }, { min: 1, max: 2 });
    if (parsed === undefined) return 0;
    const [dir, type] = parsed.positionals as [string, string | undefined];
    const resumed = await withQueue(dir, (q) => q.resume(type));
    const what = type === undefined ? 'the queue' : type;
    if (parsed.values.json === true) printJson({ type: type ?? null, resumed });
    else print(resumed ? `resumed ${what}` : `${what} was not paused`);
    return 0;
  },
};

export function pauseJson(p: PauseInfo): Record<string, unknown> {
  return {
    type: p.type ?? null,
    until: p.until?.toISOString() ?? null,
    at: p.at ?? null,
    by: p.by ?? null,
    file: p.file,
  };
}

export function describePause(p: PauseInfo): string {
  const what = p.type === undefined ? 'the whole queue' : p.type;
  return `paused ${what} ${p.until === undefined ? 'until resumed' : `until ${p.until.toISOString()}`} (${p.file})`;
}
