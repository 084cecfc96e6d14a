/** dirq work DIR PROCESSOR (or --exec CMD): run a worker pool until SIGTERM/SIGINT (or, with --drain, until nothing is left to run). */
import { parseDuration } from '../store/duration.js';
import { DRAIN_WITHIN_MS, Pool, type Leftovers } from '../pool/pool.js';
import { checkCommand } from '../pool/exec.js';
import {
  resolvePoolOptions,
  type ExecProcessor,
  type PoolOptions,
  type ResolvedPoolOptions,
  type WorkerCount,
} from '../pool/options.js';
import { parse, parseInteger, UsageError, type Command } from './common.js';

export const work: Command = {
  name: 'work',
  summary: 'run a pool of workers (threads, processes or any executable) on the queue',
  help: `Usage: dirq work DIR (PROCESSOR | --exec 'CMD ARGS...') [OPTIONS]

Run the jobs of the queue in DIR with PROCESSOR, a JavaScript module whose
default export is an async function (job) => result, in worker threads (or,
with --isolation process, in worker processes: a crash, process.exit() or the
OOM killer then costs only that process's jobs). The job has id, type, data,
attempt, signal (aborted on timeout or shutdown), progress(value), log(line)
and enqueue(type, data, options). PROCESSOR is a path, relative to the
current directory, or a file: URL.

With --exec, any executable is the worker, one process per job: the job's
data on stdin (JSON, or the raw bytes of a --file job), DIRQ_JOB_ID,
DIRQ_JOB_TYPE, DIRQ_JOB_ATTEMPT, DIRQ_JOB_ATTEMPTS and DIRQ_QUEUE in its
environment. Exit 0 completes the job with stdout as its result (JSON when it
parses, text otherwise); another exit fails the attempt (EEXEC) with the last
lines of stderr. A timeout, a cancel or shutdown stops its whole process
group (SIGTERM, then SIGKILL after 2s). With --persistent, one long-running process
per worker reads one JSON job per line on stdin and writes one JSON outcome
per line on stdout (FORMAT.md, "Workers in any language").

It exits 2 at once, touching no job, if --exec's program is not there; 1 if
it may not write the queue. If it cannot record a job's outcome (a job file
it may not write, a full disk), it puts the job back in queue/, says what to
fix, and exits 1.

On SIGTERM or SIGINT the pool stops taking jobs, lets running jobs finish
(up to --close-timeout), releases the rest back to queue/ and exits 0; a
second signal releases them at once. Under systemd, use KillMode=mixed, so
that the stop signal reaches this process and not its workers.

Options:
  --threads N          worker threads (default 1)
  --isolation KIND     thread (default) or process
  --processes N        worker processes (--isolation process, --persistent)
  --min N, --max M     autoscale between N and M workers (threads or
                       processes): grow while jobs wait and every worker is
                       busy, stop a worker idle for --idle-timeout
  --idle-timeout DUR   with --min/--max (default 30s)
  --concurrency N      jobs in flight per worker, or in all with a per-job
                       --exec (default 1); a batch counts as one
  --batch-size N       up to N ready jobs of one type and coalesce key
                       (dirq enqueue --coalesce) in one call: the
                       processor takes an array and returns an array as
                       long, an Error for a job that failed (not with --exec)
  --exec 'CMD ARGS'    run each job with this command (through /bin/sh -c)
  --persistent         with --exec: one long-running process per worker
  --middleware a.js    a module wrapping every job: export default
                       async (job, next) => next(); repeat for more,
                       outermost first
  --recycle-after-error  replace a worker after a job it ran failed
  --types a,b          only jobs of these types
  --job-timeout DUR    fail a job's attempt after this long (default: none)
  --max-jobs N         replace a worker after N jobs (leaky processors)
  --max-memory MB      heap limit per worker thread or process, in MB
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

Examples:
  dirq work /var/spool/mail-out ./send.js --threads 4 --job-timeout 30s
  dirq work /var/spool/thumbs ./resize.js --isolation process --min 1 --max 8
  dirq work /var/spool/thumbs --exec './resize.sh --fast' --concurrency 4
  dirq work /var/spool/thumbs --exec 'python3 worker.py' --persistent --processes 2
`,
  async run(args) {
    const parsed = parse(
      this,
      args,
      {
        threads: { type: 'string' },
        isolation: { type: 'string' },
        processes: { type: 'string' },
        min: { type: 'string' },
        max: { type: 'string' },
        'idle-timeout': { type: 'string' },
        concurrency: { type: 'string' },
        'batch-size': { type: 'string' },
        exec: { type: 'string' },
        persistent: { type: 'boolean' },
        middleware: { type: 'string', multiple: true },
        'recycle-after-error': { type: 'boolean' },
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
      { min: 1, max: 2 },
    );
    if (parsed === undefined) return 0;
    const v = parsed.values;
    const [dir, processor] = parsed.positionals as [string, string | undefined];
    const options: PoolOptions = { processor: workProcessor(processor, v.exec, v.persistent === true) };
    if (v.isolation !== undefined) {
      if (v.isolation !== 'thread' && v.isolation !== 'process')
        throw new UsageError(`--isolation is thread or process, got ${JSON.stringify(v.isolation)}`);
      if (v.exec !== undefined) throw new UsageError('--isolation goes with a PROCESSOR module, not with --exec');
      options.isolation = v.isolation;
    }
    const inProcesses = options.isolation === 'process' || v.persistent === true;
    const count = workerCount(v, inProcesses);
    if (count !== undefined) {
      if (v.exec !== undefined && v.persistent !== true)
        throw new UsageError('--exec runs one process per job: give --concurrency, or add --persistent for workers');
      if (inProcesses) options.processes = count;
      else options.threads = count;
    }
    if (v['idle-timeout'] !== undefined) {
      if (v.min === undefined && v.max === undefined) throw new UsageError('--idle-timeout goes with --min/--max');
      options.idleTimeout = parseDuration(v['idle-timeout']);
    }
    if (v.middleware !== undefined) options.middleware = v.middleware;
    if (v['recycle-after-error'] === true) options.recycleAfterError = true;
    if (v.concurrency !== undefined) options.concurrency = parseInteger(v.concurrency, '--concurrency');
    if (v['batch-size'] !== undefined) options.batchSize = parseInteger(v['batch-size'], '--batch-size');
    if (v.types !== undefined)
      options.types = v.types
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t.length > 0);
    if (v['job-timeout'] !== undefined) options.jobTimeout = parseDuration(v['job-timeout']);
    if (v['max-jobs'] !== undefined) options.maxJobsPerWorker = parseInteger(v['max-jobs'], '--max-jobs');
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

    // checked before the pool opens the queue: a missing program is a usage error, and touches no job
    const { runner } = resolvePoolOptions(options);
    if (runner.kind === 'exec' || runner.kind === 'persistent') {
      try {
        checkCommand(runner.command);
      } catch (error) {
        throw new UsageError((error as Error).message);
      }
    }
    const pool = new Pool(dir, { ...options, create: false });
    pool.on('grew', (workers) => say(`grew to ${workers} workers: jobs wait and every worker is busy`));
    pool.on('shrank', (workers) =>
      say(`shrank to ${workers} workers: one was idle for ${pool.options.idleTimeout} ms`),
    );
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
    const batches = pool.options.batchSize > 1 ? `, batches of up to ${pool.options.batchSize}` : '';
    say(`dirq work: ${dir}, ${describeWorkers(pool.options)}${batches} (pid ${process.pid})`);
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

/** The processor of `dirq work`: the PROCESSOR module, or --exec's command. */
function workProcessor(
  module: string | undefined,
  exec: string | undefined,
  persistent: boolean,
): string | ExecProcessor {
  if (module !== undefined && exec !== undefined) throw new UsageError('give a PROCESSOR module or --exec, not both');
  if (persistent && exec === undefined) throw new UsageError('--persistent goes with --exec');
  if (exec !== undefined) return persistent ? { exec, persistent } : { exec };
  if (module === undefined)
    throw new UsageError("work: missing PROCESSOR (a JavaScript module) or --exec 'CMD': see dirq work --help");
  return module;
}

/** --threads/--processes N, or --min/--max, as a worker count; undefined when none is given. */
function workerCount(
  v: { threads?: string; processes?: string; min?: string; max?: string },
  inProcesses: boolean,
): WorkerCount | undefined {
  const fixed = inProcesses ? v.processes : v.threads;
  const other = inProcesses ? '--threads' : '--processes';
  if ((inProcesses ? v.threads : v.processes) !== undefined)
    throw new UsageError(
      inProcesses
        ? `${other} is for worker threads: give --processes`
        : `${other} needs --isolation process or --persistent`,
    );
  if (v.min === undefined && v.max === undefined)
    return fixed === undefined ? undefined : parseInteger(fixed, inProcesses ? '--processes' : '--threads');
  if (fixed !== undefined)
    throw new UsageError(`give ${inProcesses ? '--processes' : '--threads'} N or --min/--max, not both`);
  if (v.max === undefined) throw new UsageError('--min goes with --max M, the most workers to grow to');
  return { min: v.min === undefined ? 1 : parseInteger(v.min, '--min'), max: parseInteger(v.max, '--max') };
}

function describeWorkers(o: Readonly<ResolvedPoolOptions>): string {
  const { min, max } = o.workers;
  const count = min === max ? `${min}` : `${min}..${max}`;
  switch (o.runner.kind) {
    case 'thread':
      return `${count} thread(s) x ${o.concurrency}`;
    case 'process':
      return `${count} process(es) x ${o.concurrency}`;
    case 'persistent':
      return `${count} persistent ${o.runner.command.join(' ')} x ${o.concurrency}`;
    case 'exec':
      return `${o.runner.command.join(' ')} per job, ${o.concurrency} at a time`;
    case 'in-process':
      return `in-process x ${o.concurrency}`;
  }
}
