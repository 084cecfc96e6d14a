/**
 * The check of claimMany's options (Queue.claimMany, ClaimManyOptions): up to `max` ready jobs of one
 * type in one call, each its own claim; with `coalesce`, only those of the first job's coalesce key.
 */
import { DirQueueError } from '../store/errors.js';
import { describe } from '../store/names.js';

/** Throws EBADOPTION unless `options` are claimMany's; returns max and coalesce. */
export function checkClaimMany(options: unknown): { max: number; coalesce: boolean } {
  if (options === null || typeof options !== 'object') {
    throw new DirQueueError(
      'EBADOPTION',
      `claimMany options must be an object ({ max: 10 }), got ${describe(options)}`,
    );
  }
  const { max, coalesce = false } = options as Record<string, unknown>;
  if (typeof max !== 'number' || !Number.isSafeInteger(max) || max < 1) {
    throw new DirQueueError('EBADOPTION', `max must be an integer of at least 1, got ${describe(max)}`);
  }
  if (typeof coalesce !== 'boolean') {
    throw new DirQueueError('EBADOPTION', `coalesce must be true or false, got ${describe(coalesce)}`);
  }
  return { max, coalesce };
}
