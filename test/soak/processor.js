/**
 * The soak's processor module, run by Pools in worker threads. It notes
 * each run in the ledger before working (so a run the kill interrupted is
 * known), sleeps the job's `ms`, fails the jobs the workload means to fail,
 * and returns a run token that the pool's process notes with the
 * completion: the job file's result must carry the same token.
 */
import { threadId } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { openLedger } from './ledger.js';

const note = openLedger(process.env.SOAK_LEDGER);
let runs = 0;

/**
 * @param {{ id: string, attempt: number, data: { ms: number, fail?: boolean } }} job
 * @returns {Promise<{ run: string }>}
 */
export default async function (job) {
  const run = `${process.pid}.${threadId}.${++runs}`;
  note('run', { id: job.id, attempt: job.attempt, run });
  await sleep(job.data.ms);
  if (job.data.fail) throw new Error('soak: planned failure');
  return { run };
}
