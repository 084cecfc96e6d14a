import { expect } from 'vitest';
import { DirQueueError } from '../../dist/index.js';

/** Expect `promise` to reject with a DirQueueError of `code` whose message matches `message`. */
export async function rejects(promise: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(DirQueueError);
  expect((error as DirQueueError).code).toBe(code);
  expect((error as Error).message).toMatch(message);
}
