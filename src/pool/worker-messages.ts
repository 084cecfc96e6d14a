/**
 * The messages between the Pool (worker-host.ts) and a worker
 * (worker-runtime.ts), a thread (postMessage) or a child process (its IPC
 * channel, with the same structured clone). Internal: users see only
 * Processor and ProcessorJob (processor.ts), which are the same in a thread,
 * a process and in-process. Errors travel as message and code, since
 * structured clone does not keep an Error's class.
 */
import type { BatchOutcome, ParentOutcome } from '../store/envelope.js';

/** The job fields that travel to a worker. */
export interface JobFields {
  id: string;
  type: string;
  data: unknown;
  attempt: number;
  attempts: number;
  priority: number;
  /** A job made by a schedule: its name and slot. */
  schedule?: { name: string; at: string };
  /** The job's group (enqueue's `group`). */
  group?: string;
  /** A job enqueued with `after`: how each job it waited for ended. */
  parents?: ParentOutcome[];
  /** A batch's callback: how its batch ended. */
  batch?: BatchOutcome;
  /** The job's coalesce key (enqueue's `coalesce`). */
  coalesce?: string;
}

/** What a worker loads: the processor and the middleware around it, as import specifiers (file: URLs). */
export interface WorkerModules {
  processor: string;
  middleware: readonly string[];
}

/** How a run ended, as the pool hears it. */
export type RunOutcome =
  { ok: true; result: unknown } | { ok: false; error: { message: string; code?: string; stack?: string } };

/** Messages from the pool to a worker. */
export type ToWorker =
  | { t: 'run'; run: number; job: JobFields }
  /** One processor call on a batch (batch.ts): runs[i] is the run of jobs[i], answered by a `done` each. */
  | { t: 'batch'; runs: number[]; jobs: JobFields[] }
  | { t: 'abort'; run: number; code: string; reason: string }
  | { t: 'ping'; n: number }
  | { t: 'reply'; req: number; ok: true; value: unknown }
  | { t: 'reply'; req: number; ok: false; error: { message: string; code?: string } };

/** Messages from a worker to the pool. */
export type FromWorker =
  | { t: 'ready' }
  | { t: 'load-error'; message: string; stack?: string }
  | { t: 'done'; run: number; ok: true; result: unknown }
  | { t: 'done'; run: number; ok: false; error: { message: string; code?: string; stack?: string } }
  | { t: 'pong'; n: number }
  | { t: 'call'; req: number; run: number; method: 'progress' | 'log' | 'enqueue'; args: unknown[] };
