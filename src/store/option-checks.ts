/**
 * The checks every options object shares (Queue, enqueue, Pool, fsck): they
 * live at the bottom so that fsck, which may import only the store, checks
 * its options with the same rules and messages as the Queue does.
 */
import { DirQueueError } from './errors.js';
import { describe } from './names.js';

/** A misspelt option is refused rather than silently ignored. */
export function checkKnown(
  options: object,
  known: readonly string[],
  what: string,
  alsoKnown: readonly string[] = [],
): void {
  for (const name of Object.keys(options)) {
    if (!known.includes(name)) {
      const all = [...alsoKnown, ...known].join(', ');
      throw new DirQueueError('EBADOPTION', `unknown ${what} ${JSON.stringify(name)}; the options are ${all}`);
    }
  }
}

export function checkMs(value: unknown, name: string, min: number): number {
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min) {
    throw new DirQueueError('EBADOPTION', `${name} must be a number of milliseconds >= ${min}, got ${describe(value)}`);
  }
  return value;
}

export function checkInteger(value: unknown, name: string, min: number): void {
  if (!Number.isSafeInteger(value) || (value as number) < min) {
    throw new DirQueueError('EBADOPTION', `${name} must be an integer >= ${min}, got ${describe(value)}`);
  }
}

export function checkBoolean(value: unknown, name: string): void {
  if (typeof value !== 'boolean')
    throw new DirQueueError('EBADOPTION', `${name} must be true or false, got ${describe(value)}`);
}

/** Options with undefined values taken out, so that `{ ...defaults, ...options }` keeps the defaults for them. */
export function dropUndefined<T extends object>(object: T): Partial<T> {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== undefined)) as Partial<T>;
}
