/**
 * What a processor sees: the job as a plain object with an AbortSignal and
 * ways to report progress, keep log lines and enqueue child jobs. The same
 * shape in a worker thread and in-process.
 */
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { DirQueueError } from '../store/errors.js';
import type { BatchOutcome, ParentOutcome } from '../store/envelope.js';
import type { EnqueueOptions } from '../queue/options.js';
import { describe } from '../store/names.js';

export interface ProcessorJob<Data = unknown> {
  id: string;
  type: string;
  data: Data;
  /** 1 on the first run. */
  attempt: number;
  /** The most attempts the job gets. */
  attempts: number;
  priority: number;
  /** A job made by a schedule: the schedule's name and the slot (ISO 8601) this run is for. */
  schedule?: { name: string; at: string };
  /** The group the job was enqueued with (enqueue's `group`), if any. */
  group?: string;
  /** A job enqueued with `after`: each job it waited for, with its final state and its result or error. */
  parents?: ParentOutcome[];
  /** A batch's onComplete or onSuccess job: the batch's id and how many of its jobs were done and failed. */
  batch?: BatchOutcome;
  /** The coalesce key the job was enqueued with (enqueue's `coalesce`), if any: a batch's jobs share it. */
  coalesce?: string;
  /** Fires when the job times out or the pool shuts down: stop work and return or throw. */
  signal: AbortSignal;
  /** Record progress (any JSON value) in the job file. */
  progress(value: unknown): Promise<void>;
  /** Keep a line of text with the job. */
  log(line: string): Promise<void>;
  /**
   * Enqueue a child job into the same queue. With the `key` this job holds (a job enqueueing its own
   * next run), the key is handed to the new job (`keyFrom` is this job's id unless given).
   */
  enqueue(type: string, data?: unknown, options?: EnqueueOptions): Promise<{ id: string; duplicate: boolean }>;
}

/** A processor: the default export of a module (threads), or a function (in-process). */
export type Processor<Data = unknown, Result = unknown> = (job: ProcessorJob<Data>) => Result | Promise<Result>;

/**
 * The module a thread imports, as a file: URL. A path is resolved against
 * process.cwd() when the Pool is made, as a shell user means `./send.js`; a
 * library that means a module next to its own passes
 * `new URL('../send.js', import.meta.url)`. file: URLs (URL objects or
 * strings) are taken as they are; other schemes cannot name a processor.
 */
export function processorSpecifier(processor: string | URL): string {
  const text = processor instanceof URL ? processor.href : processor;
  if (!/^[a-z][a-z0-9+.-]+:/i.test(text)) return pathToFileURL(path.resolve(text)).href;
  let url: URL;
  try {
    url = new URL(text);
    if (url.protocol !== 'file:') throw new Error(`${url.protocol} URLs cannot be imported as a processor`);
    fileURLToPath(url); // a file URL with a host or an encoded slash names no local file
  } catch (error) {
    throw new DirQueueError(
      'EBADOPTION',
      `processor must be a module path or a file: URL, got ${describe(text)} (${(error as Error).message})${text.includes('//') ? '' : `; for a path with a colon, write ./${text}`}`,
    );
  }
  return url.href;
}
