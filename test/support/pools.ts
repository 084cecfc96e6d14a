/** Pools for tests, from the built package (worker threads load dist/pool/thread.js); a pool left running fails the test. */
import { afterEach } from 'vitest';
import { Pool, type PoolOptions } from '../../dist/index.js';
import { WATCH } from './temp.js';

const running = new Set<Pool>();

export const processors = (name: string): string =>
  new URL(`../fixtures/processors/${name}.mjs`, import.meta.url).pathname;

/** Start a pool in `dir` (poll-only in the poll project), tracked for the leak check. */
export async function startPool(dir: string, options: PoolOptions): Promise<Pool> {
  const pool = new Pool(dir, { durable: false, watch: WATCH, pollInterval: 50, ...options });
  pool.on('error', () => undefined); // tests that care listen themselves
  await pool.start();
  running.add(pool);
  const close = pool.close.bind(pool);
  pool.close = async (o) => {
    running.delete(pool);
    await close(o);
  };
  return pool;
}

afterEach(async () => {
  const leaks = [...running].map((p) => `pool ${p.dir} left running`);
  for (const pool of [...running]) await pool.close({ timeout: 0 });
  if (leaks.length > 0) throw new Error(`the test leaked: ${leaks.join('; ')}`);
});
