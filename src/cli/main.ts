#!/usr/bin/env node
/**
 * dirq: the command line of dirqueue. `dirq VERB DIR ...`; one module per verb.
 * Exit codes and error output are described in common.ts and `dirq --help`.
 */
import { readFileSync } from 'node:fs';
import { EXIT_CODES_HELP, exitCodeOf, reportError, UsageError, type Command } from './common.js';
import { STATES } from '../store/layout.js';
import { enqueue } from './enqueue.js';
import { fsck } from './fsck.js';
import { init } from './init.js';
import { ls } from './ls.js';
import { metrics } from './metrics.js';
import { purge } from './purge.js';
import { recover } from './recover.js';
import { retry } from './retry.js';
import { schedule } from './schedule.js';
import { schedules } from './schedules.js';
import { unschedule } from './unschedule.js';
import { rm } from './rm.js';
import { show } from './show.js';
import { stats } from './stats.js';
import { wait } from './wait.js';
import { work } from './work.js';
import { workers } from './workers.js';
import { pause, resume } from './pause.js';
import { cancel } from './cancel.js';
import { limit, limits } from './limit.js';
import { batch } from './batch.js';

const COMMANDS: readonly Command[] = [
  init,
  enqueue,
  work,
  ls,
  show,
  stats,
  workers,
  retry,
  rm,
  purge,
  recover,
  wait,
  fsck,
  metrics,
  pause,
  resume,
  cancel,
  schedule,
  schedules,
  unschedule,
  limit,
  limits,
  batch,
];

function overview(): string {
  const width = Math.max(...COMMANDS.map((c) => c.name.length));
  return `Usage: dirq COMMAND DIR [ARGS] [OPTIONS]

dirqueue: a durable job queue whose only server is the filesystem. A queue
is a directory, a job is a file, and every state change is one rename.

Commands:
${COMMANDS.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Every command prints text for people by default and JSON with --json;
dirq COMMAND --help describes one command, with examples.
States: ${STATES.join(', ')}.
Durations: 100ms, 30s, 5m, 2h, 7d, 1h30m (a bare number is milliseconds).

Options:
  --debug        print the stack trace of an error
  -h, --help     show this help
  -v, --version  print the version

${EXIT_CODES_HELP}
An error prints one line on stderr, "dirq: <reason>" (--debug adds the stack).

Examples:
  dirq init /var/spool/mail-out
  dirq enqueue /var/spool/mail-out send '{"to":"a@example.com"}' --priority 10
  dirq ls /var/spool/mail-out failed
  dirq show /var/spool/mail-out 50-1763830000123456-k3j9x0.send
  dirq stats /var/spool/mail-out --sla 5m
  dirq retry /var/spool/mail-out --all
`;
}

function version(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

async function main(argv: string[]): Promise<number> {
  // --debug may also come before the command: dirq --debug ls DIR
  const [verb, ...rest] = argv[0] === '--debug' ? [...argv.slice(1), '--debug'] : argv;
  if (verb === undefined) throw new UsageError('missing command: try dirq --help');
  if (verb === '--help' || verb === '-h' || verb === 'help') {
    const topic = verb === 'help' ? rest[0] : undefined;
    const command = topic === undefined ? undefined : COMMANDS.find((c) => c.name === topic);
    if (topic !== undefined && command === undefined) throw unknownCommand(topic);
    process.stdout.write(command?.help ?? overview());
    return 0;
  }
  if (verb === '--version' || verb === '-v') {
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  const command = COMMANDS.find((c) => c.name === verb);
  if (command === undefined) throw unknownCommand(verb);
  return command.run(rest);
}

function unknownCommand(verb: string): UsageError {
  const what = verb.startsWith('-') ? `unknown option ${verb}` : `unknown command ${JSON.stringify(verb)}`;
  return new UsageError(`${what}: use one of ${COMMANDS.map((c) => c.name).join(', ')} (see dirq --help)`);
}

// `dirq ls DIR | head` closes the pipe early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const args = process.argv.slice(2);
try {
  process.exitCode = await main(args);
} catch (error) {
  reportError(error, args.includes('--debug'));
  process.exitCode = exitCodeOf(error);
}
