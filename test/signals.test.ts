/**
 * A library must not change its host process's signal behaviour (defects
 * issue, D12): a process that opened a queue, swept it and rewrote its
 * settings, then got stuck in synchronous code, still dies of SIGTERM and
 * SIGINT by their default action. (proper-lockfile and write-file-atomic
 * installed signal-exit, whose JavaScript handler cannot run while the event
 * loop is busy, so only SIGKILL ended such a process.)
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { exited, spawnNode, tempDir } from './support/temp.js';
import { lineFrom } from './support/wait.js';

const library = new URL('../dist/index.js', import.meta.url).href;

/** Open (creating) the queue, sweep it, make it group-shared (a settings write), enqueue and claim, then spin forever. */
const stuck = `
  import { Queue } from ${JSON.stringify(library)};
  const q = await Queue.open(process.argv[1], { watch: false });
  await q.recover();
  await (await Queue.open(process.argv[1], { mode: 0o660, maintenance: false, watch: false })).close();
  await q.enqueue('t', 1);
  await q.claim();
  process.stdout.write('spinning\\n');
  for (;;);
`;

describe('D12: an open queue leaves SIGTERM and SIGINT to their default action', () => {
  for (const signal of ['SIGTERM', 'SIGINT'] as const) {
    it(`kill -${signal.slice(3)} ends a process whose event loop is blocked`, async () => {
      const dir = path.join(tempDir(), 'q');
      const child = spawnNode(['--input-type=module', '-e', stuck, dir], { stdio: ['ignore', 'pipe', 'inherit'] });
      await lineFrom(child, 'spinning');
      expect(JSON.parse(fs.readFileSync(path.join(dir, 'dirqueue.json'), 'utf8'))).toMatchObject({ mode: '0660' });
      child.kill(signal);
      // a generous bound on a loaded machine: a process that ignores the signal is killed and the test fails
      const killer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const how = await exited(child);
      clearTimeout(killer);
      expect(how).toBe(signal);
    });
  }
});
