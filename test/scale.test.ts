/**
 * Limits that bench/scale.js found (issue 11, "Scale limits"; its figures are
 * in README): a job enqueued at the size limit whose result takes its file
 * past maxJobBytes must not leave waitFor waiting for a result it can never read.
 */
import { describe, expect, it } from 'vitest';
import { tempQueue } from './support/temp.js';

describe('a job near maxJobBytes', () => {
  it('waitFor rejects at once with ETOOBIG when the result took the file in done/ past maxJobBytes, saying what to do', async () => {
    const { q } = await tempQueue({ maxJobBytes: 1024, maintenance: false });
    const { id } = await q.enqueue('big', 'x'.repeat(900)); // within the limit: enqueue checks only the envelope
    const job = await q.claim();
    await job!.complete('y'.repeat(200)); // the result line takes the file past 1024 bytes
    // no timeout given: before, it polled until one ran out, here forever
    await expect(q.waitFor(id)).rejects.toMatchObject({
      code: 'ETOOBIG',
      message: expect.stringContaining(`job ${id} completed, but its file in done/ is`),
    });
    await expect(q.waitFor(id)).rejects.toThrow(/open the queue with a larger maxJobBytes to read its result/);
    await q.close();
  });
});
