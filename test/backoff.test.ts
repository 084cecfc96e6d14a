/** The wait before a retry: fixed, exponential with a cap and jitter, or a function. */
import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../dist/queue/backoff.js';

const error = { message: 'x' };

describe('backoffDelay', () => {
  it('fixed waits the same after every attempt', () => {
    expect([1, 2, 5].map((a) => backoffDelay({ type: 'fixed', delay: 250 }, a, error))).toEqual([250, 250, 250]);
  });

  it('exponential doubles per attempt, up to max', () => {
    const spec = { type: 'exponential', delay: 100, max: 1000 } as const;
    expect([1, 2, 3, 4, 5, 9].map((a) => backoffDelay(spec, a, error))).toEqual([100, 200, 400, 800, 1000, 1000]);
  });

  it('jitter spreads the wait by +-jitter around it', () => {
    const spec = { type: 'exponential', delay: 1000, jitter: 0.2 } as const;
    expect(backoffDelay(spec, 1, error, () => 0)).toBe(800);
    expect(backoffDelay(spec, 1, error, () => 0.5)).toBe(1000);
    expect(backoffDelay(spec, 2, error, () => 1)).toBe(2400);
  });

  it('a function gets the attempt and error; a negative or non-finite answer means at once', () => {
    const seen: unknown[] = [];
    expect(backoffDelay((attempt, e) => (seen.push([attempt, e.message]), attempt * 7), 3, error)).toBe(21);
    expect(seen).toEqual([[3, 'x']]);
    expect(backoffDelay(() => -5, 1, error)).toBe(0);
    expect(backoffDelay(() => Number.NaN, 1, error)).toBe(0);
  });
});
