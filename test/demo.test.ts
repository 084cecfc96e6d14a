/** The README's first command runs the demo: it must keep working. */
import { describe, expect, it } from 'vitest';
import { closed } from './support/cli.js';
import { exited, spawnNode } from './support/temp.js';

describe('npm run demo', () => {
  it('enqueues, runs and reports 5,000 jobs in a temporary queue, then removes it', async () => {
    const child = spawnNode([new URL('../dist/demo.js', import.meta.url).pathname]);
    let out = '';
    child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
    expect(await exited(child)).toBe(0);
    await closed(child.stdout!);
    expect(out).toContain('5000/5000 done');
    expect(out).toMatch(/done\s+5000/);
    expect(out).toMatch(/removed \/.*dirq-demo-/);
  });
});
