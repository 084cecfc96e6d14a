/**
 * What a processor sees: the job as a plain object with an AbortSignal and
 * ways to report progress, keep log lines and enqueue child jobs. The same
 * shape in a worker thread and in-process.
 */
import type { EnqueueOptions } from './options.js';

export interface ProcessorJob<Data = unknown> {
  id: string;
  type: string;
  data: Data;
  /** 1 on the first run. */
  attempt: number;
  /** The most attempts the job gets. */
  attempts: number;
  priority: number;
  /** Fires when the job times out or the pool shuts down: stop work and return or throw. */
  signal: AbortSignal;
  /** Record progress (any JSON value) in the job file. */
  progress(value: unknown): Promise<void>;
  /** Keep a line of text with the job. */
  log(line: string): Promise<void>;
  /** Enqueue a child job into the same queue. */
  enqueue(type: string, data?: unknown, options?: EnqueueOptions): Promise<{ id: string; duplicate: boolean }>;
}

/** A processor: the default export of a module (threads), or a function (in-process). */
export type Processor<Data = unknown, Result = unknown> = (job: ProcessorJob<Data>) => Result | Promise<Result>;

/** The job fields that travel to a thread. */
export interface JobFields {
  id: string;
  type: string;
  data: unknown;
  attempt: number;
  attempts: number;
  priority: number;
}

/** Messages from the pool to a thread. */
export type ToThread =
  | { t: 'run'; run: number; job: JobFields }
  | { t: 'abort'; run: number; reason: string }
  | { t: 'ping'; n: number }
  | { t: 'reply'; req: number; ok: true; value: unknown }
  | { t: 'reply'; req: number; ok: false; error: { message: string; code?: string } };

/** Messages from a thread to the pool. */
export type FromThread =
  | { t: 'ready' }
  | { t: 'load-error'; message: string; stack?: string }
  | { t: 'done'; run: number; ok: true; result: unknown }
  | { t: 'done'; run: number; ok: false; error: { message: string; code?: string; stack?: string } }
  | { t: 'pong'; n: number }
  | { t: 'call'; req: number; run: number; method: 'progress' | 'log' | 'enqueue'; args: unknown[] };
