/**
 * Loading a processor module and the middleware around it, where the job
 * runs: in a worker thread, in a worker process, or in the pool's own
 * process for a function processor. Middleware is Sidekiq's server
 * middleware in Koa's shape: `async (job, next) => result`, outermost first;
 * what it returns is the job's result, and what it throws fails the attempt
 * like the processor's own error.
 */
import { DirQueueError } from '../store/errors.js';
import type { Processor, ProcessorJob } from './processor.js';

/** A middleware module's default export. */
export type Middleware = (job: ProcessorJob, next: () => Promise<unknown>) => unknown;

/** The default export function of `specifier`, or EPROCESSOR saying what is wrong. */
async function importDefault(specifier: string, what: string, shape: string): Promise<unknown> {
  let module: { default?: unknown };
  try {
    module = (await import(specifier)) as { default?: unknown };
  } catch (error) {
    throw new DirQueueError('EPROCESSOR', `the ${what} ${specifier} failed to load: ${(error as Error).message}`, {
      cause: error,
    });
  }
  if (typeof module.default !== 'function') {
    throw new DirQueueError(
      'EPROCESSOR',
      `the ${what} ${specifier} has no default export function: export default ${shape}`,
    );
  }
  return module.default;
}

export async function importProcessor(specifier: string): Promise<Processor> {
  return (await importDefault(specifier, 'processor', 'async function (job) { ... }')) as Processor;
}

export async function importMiddleware(specifiers: readonly string[]): Promise<Middleware[]> {
  const loaded: Middleware[] = [];
  for (const specifier of specifiers)
    loaded.push(
      (await importDefault(specifier, 'middleware', 'async function (job, next) { return next(); }')) as Middleware,
    );
  return loaded;
}

/** `processor` inside `middleware`, the first one outermost. */
export function wrap(processor: Processor, middleware: readonly Middleware[]): Processor {
  if (middleware.length === 0) return processor;
  return (job) => {
    const step = async (i: number): Promise<unknown> => {
      if (i === middleware.length) return processor(job);
      let called = false;
      return middleware[i]!(job, () => {
        if (called) return Promise.reject(new DirQueueError('EBADSTATE', 'a middleware called next() twice'));
        called = true;
        return step(i + 1);
      });
    };
    return step(0);
  };
}
