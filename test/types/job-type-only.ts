/**
 * Type-level test, checked by `npm run typecheck` (vitest does not run it):
 * users get Job as a type to annotate claimed jobs with, never a class they
 * could construct. A Job is made only by Queue.claim; one built by hand would
 * hold no claim, yet its complete() and fail() would rename files in active/.
 */
import * as dirqueue from '../../dist/index.js';

export async function annotate(q: dirqueue.Queue): Promise<dirqueue.Job<{ to: string }> | undefined> {
  const job: dirqueue.Job<{ to: string }> | undefined = await q.claim<{ to: string }>();
  return job;
}

export function construct(args: ConstructorParameters<typeof import('../../dist/queue/job.js').Job>): void {
  // @ts-expect-error Job is exported as a type only: it cannot be used as a value
  // eslint-disable-next-line @typescript-eslint/no-unsafe-call -- the construction is the type error this test expects
  new dirqueue.Job(...args);
}
