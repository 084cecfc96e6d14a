/** The processor `npm run demo` runs in worker threads: a little work, and a transient failure now and then. */
import type { ProcessorJob } from 'dirqueue';

export default async function demoProcessor(
  job: ProcessorJob<{ n: number; failOnce: boolean }>,
): Promise<{ ok: true; n: number }> {
  if (job.data.failOnce && job.attempt === 1)
    throw new Error(`job ${job.data.n}: a transient failure, to show a retry`);
  return { ok: true, n: job.data.n };
}
