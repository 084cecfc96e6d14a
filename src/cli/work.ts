/** dirq work DIR PROCESSOR: run a worker pool until SIGTERM/SIGINT (or, with --drain, until nothing is left to run). */
import { parseDuration } from '../store/duration.js';
import { DRAIN_WITHIN_MS, Pool, type Leftovers } from '../pool/pool.js';
import type { PoolOptions } from '../pool/options.js';
import { parse, parseInteger, UsageError, type Command } from './common.js';

export const work: Command = {
  name: 'work',
  summary: 'run a pool of worker threads on the queue',
  help: `Usage: dirq work DIR PROCESSOR [OPTIONS]

Run the jobs of the queue in DIR with PROCESSOR, a JavaScript module whose
default export is an async function (job) => result, in worker threads. The
job has id, type, data, attempt, signal (aborted on timeout or shutdown),
progress(value), log(line) and enqueue(type, data, options). PROCESSOR is a
path, relative to the current directory, or a file: URL.

It exits 1 at once if it may not write the queue. If it cannot record a
job's outcome (a job file it may not write, a full disk), it puts the job
back in queue/, says what to fix, and exits 1.

On SIGTERM or SIGINT the pool stops taking jobs, lets running jobs finish
(up to --close-timeout), releases the rest back to queue/ and exits 0; a
second signal releases them at once.

Options:
  --threads N          worker threads (default 1)
  --concurrency N      jobs in flight per thread (default 1)
  --types a,b          only jobs of these types
  --job-timeout DUR    fail a job's attempt after this long (default: none)
  --max-jobs N         replace a thread after N jobs (leaky processors)
  --max-memory MB      heap limit per thread, in MB
  --close-timeout DUR  how long shutdown waits for running jobs (default 30s)
  --stale-after DUR    take back a silent worker's claims after this (default 30s)
  --poll DUR           poll for jobs this often instead of watching (NFS)
  --drain              stop once nothing is left to run (see below)
  --drain-within DUR   with --drain, wait for delayed jobs due within this
                       (default 1m)
  --quiet              print only errors
  --debug              print the stack trace of an error
  -h, --help           show this help

With --drain the pool stops once no job of its types is ready or running
and none in delayed/ is due within --drain-within: a retry waiting for its
backoff is waited for, a job scheduled for tomorrow is not. It exits 0 when
nothing of its types is left but jobs scheduled later (it says how many); it
exits 1, naming them, when retries due later than that are left (their jobs
have not finished: run it again later, or dirq retry DIR ID to run one now).

Durations: 100ms, 30s, 5m, 2h, 7d.

Example:
  dirq work /var/spool/mail-out ./send.js --threads 4 --job-timeout 30s
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        threads: { type: 'string' },
        concurrency: { type: 'string' },
        types: { type: 'string' },
        'job-timeout': { type: 'string' },
        'max-jobs': { type: 'string' },
        'max-memory': { type: 'string' },
        'close-timeout': { type: 'string' },
        'stale-after': { type: 'string' },
        poll: { type: 'string' },
        drain: { type: 'boolean' },
        'drain-within': { type: 'string' },
        quiet: { type: 'boolean' },
      },
      { min: 2, max: 2 },
    );
    if (parsed === undefined) return 0;
    const v = parsed.values;
    const [dir, processor] = parsed.positionals as [string, string];
    const options: PoolOptions = { processor };
    if (v.threads !== undefined) options.threads = parseInteger(v.threads, '--threads');
    if (v.concurrency !== undefined) options.concurrency = parseInteger(v.concurrency, '--concurrency');
    if (v.types !== undefined)
      options.types = v.types
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t.length > 0);
    if (v['job-timeout'] !== undefined) options.jobTimeout = parseDuration(v['job-timeout']);
    if (v['max-jobs'] !== undefined) options.maxJobsPerThread = parseInteger(v['max-jobs'], '--max-jobs');
    if (v['max-memory'] !== undefined)
      options.resourceLimits = { maxOldGenerationSizeMb: parseInteger(v['max-memory'], '--max-memory') };
    if (v['close-timeout'] !== undefined) options.closeTimeout = parseDuration(v['close-timeout']);
    if (v['stale-after'] !== undefined) options.staleAfter = parseDuration(v['stale-after']);
    if (v.poll !== undefined) {
      options.watch = false;
      options.pollInterval = parseDuration(v.poll);
    }
    if (v['drain-within'] !== undefined && v.drain !== true) throw new UsageError('--drain-within goes with --drain');
    const within = v['drain-within'] === undefined ? DRAIN_WITHIN_MS : parseDuration(v['drain-within']);
    if (options.types?.length === 0) throw new UsageError('--types needs at least one type, e.g. --types email,sms');
    const quiet = v.quiet === true;
    const say = (line: string): void => {
      if (!quiet) process.stdout.write(`${line}\n`);
    };

    const pool = new Pool(dir, { ...options, create: false });
    pool.on('failed', (job, error) =>
      process.stderr.write(`failed ${job.id} (attempt ${job.attempt}): ${error.message}\n`),
    );
    pool.on('retrying', (job, error) => say(`retrying ${job.id} (attempt ${job.attempt}): ${error.message}`));
    pool.on('lost', (job) => say(`lost ${job.id}: its claim was taken back by another worker's recovery`));
    pool.on('recovered', (r) => say(`recovered ${r.id} from ${r.claim} (${r.reason}) -> ${r.to}/`));
    pool.on('error', (error) => process.stderr.write(`dirq work: ${error.message}\n`));
    pool.on('warning', (warning) => process.stderr.write(`dirq work: warning: ${warning.message}\n`));
    // Listen before the pool starts: it may claim a job before start() resolves, and a signal then
    // must close the pool (the job goes back), not end the process by the signal's default action.
    let signals = 0;
    let fatal: Error | undefined;
    let left: Leftovers | undefined;
    let started: Promise<void> = Promise.resolve();
    const stopped = new Promise<void>((resolve) => {
      pool.once('closed', (error) => {
        fatal = error;
        resolve();
      });
      const onSignal = (signal: NodeJS.Signals): void => {
        signals++;
        say(
          signals === 1
            ? `${signal}: finishing running jobs (again to release them now)`
            : `${signal}: releasing running jobs now`,
        );
        const timeout = signals === 1 ? {} : { timeout: 0 };
        void started.then(() => pool.close(timeout)).then(resolve, resolve);
      };
      process.on('SIGTERM', onSignal);
      process.on('SIGINT', onSignal);
    });
    started = pool.start();
    await started;
    const { threads, concurrency } = pool.options;
    say(
      `dirq work: ${dir}, ${typeof pool.options.processor === 'string' ? `${threads} thread(s) x ${concurrency}` : concurrency} (pid ${process.pid})`,
    );
    if (v.drain === true) {
      void pool.onDrained({ within }).then((leftovers) => {
        if (signals === 0) left = leftovers; // stopped by a signal: nothing to report
        return pool.close();
      });
    }
    await stopped;
    const c = pool.counts;
    say(
      `dirq work: stopped: ${c.completed} completed, ${c.retried} retried, ${c.failed} failed, ${c.released} released, ${c.lost} lost`,
    );
    if (fatal !== undefined) throw fatal; // the pool gave up: exit 1 with its reason
    if (left !== undefined && left.scheduled.length > 0) {
      say(
        `dirq work: not waited for: ${left.scheduled.length} job(s) scheduled later, the next at ${new Date(left.scheduled[0]!.runAt).toISOString()}`,
      );
    }
    if (left !== undefined && left.retries.length > 0) {
      const first = left.retries[0]!;
      const more = left.retries.length > 1 ? ` and ${left.retries.length - 1} more` : '';
      throw new Error(
        `drained, but ${left.retries.length} job(s) wait in delayed/ for a retry due after --drain-within ${v['drain-within'] ?? '1m'}: ` +
          `${first.id} at ${new Date(first.runAt).toISOString()}${more}; run dirq work --drain again then, or dirq retry ${dir} ID to run one now`,
      );
    }
    return 0;
  },
};
