/**
 * The README's first command runs the demo (`npm run demo`, which is
 * `node demo/dist/demo.js` after building the package and the demo): it
 * must keep working, say where its queue is, show real `dirq stats` output,
 * and keep the queue with `--keep`. The demo is not in the package.
 */
import fs from 'node:fs';
import { describe, expect, it, onTestFinished } from 'vitest';
import { closed, ok } from './support/cli.js';
import { exited, spawnNode } from './support/temp.js';

const DEMO = new URL('../demo/dist/demo.js', import.meta.url).pathname;

async function demo(...args: string[]): Promise<{ code: number | NodeJS.Signals; out: string; err: string }> {
  const child = spawnNode([DEMO, ...args]);
  let out = '';
  let err = '';
  child.stdout!.setEncoding('utf8').on('data', (c: string) => (out += c));
  child.stderr!.setEncoding('utf8').on('data', (c: string) => (err += c));
  const code = await exited(child);
  await Promise.all([closed(child.stdout!), closed(child.stderr!)]);
  return { code, out, err };
}

/** The queue the demo says it made. */
function queueOf(out: string): string {
  const m = /^dirqueue demo: a temporary queue in (\/\S+)$/m.exec(out);
  expect(m, out).not.toBeNull();
  return m![1]!;
}

/**
 * dirq stats output with what changes from one second to the next (ages, rates) blanked. Column widths
 * follow the widest value, so a blanked age can leave its column wider or narrower: runs of spaces count as one.
 */
const timeless = (text: string): string =>
  text
    .replace(/\d+(\.\d+)?(ms|s|m|h|d)\b(\d+(ms|s|m|h)\b)*/g, 'T')
    .replace(/[\d.,]+\/s/g, 'R/s')
    .replace(/ +/g, ' ');

describe('npm run demo', () => {
  it('enqueues, runs and reports 5,000 jobs in a temporary queue, then removes it', async () => {
    const { code, out, err } = await demo();
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const dir = queueOf(out);
    expect(out).toContain('5000/5000 done');
    expect(out).toContain(`$ dirq stats ${dir}\n`);
    expect(out).toMatch(/done\s+5000/);
    expect(out).toContain(`removed ${dir}`);
    expect(fs.existsSync(dir)).toBe(false);
  });

  it('--keep keeps the queue, says where, and its `dirq stats` block is what dirq stats prints', async () => {
    const { code, out, err } = await demo('--keep');
    expect({ code, err }).toEqual({ code: 0, err: '' });
    const dir = queueOf(out);
    onTestFinished((ctx) => {
      if (ctx.task.result?.state === 'fail') console.error(`kept the demo's queue of the failed test: ${dir}`);
      else fs.rmSync(dir, { recursive: true, force: true });
    });
    expect(out).not.toContain('removed');
    expect(out).toContain(`kept the queue in ${dir}`);
    expect(fs.readdirSync(`${dir}/done`)).toHaveLength(5000);

    const shown = out.split(`$ dirq stats ${dir}\n`)[1]?.split('\na retried job')[0];
    expect(shown, out).toBeDefined();
    expect(timeless(shown!)).toBe(timeless(await ok(['stats', dir])));
  });

  it('refuses an option it does not know, saying which', async () => {
    const { code, out, err } = await demo('--kep');
    expect(code).toBe(2);
    expect(out).toBe('');
    expect(err).toMatch(/--kep/);
  });
});
