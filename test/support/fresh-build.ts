/**
 * Vitest global setup: every test imports what it tests from the built
 * dist/ (and demo/dist/), the code that ships and that the CLI, the worker
 * threads and the child processes run. A build older than its source would
 * silently test old code, so the run stops here, naming the first stale file.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The sources under `from` whose built `.js` in `to` is missing or older than them. */
export function staleBuilds(from: string, to: string): string[] {
  const stale: string[] = [];
  for (const entry of fs.readdirSync(path.join(ROOT, from), { recursive: true, withFileTypes: true })) {
    if (!entry.isFile() || !entry.name.endsWith('.ts') || entry.name.endsWith('.d.ts')) continue;
    const source = path.join(entry.parentPath, entry.name);
    const relative = path.relative(path.join(ROOT, from), source);
    if (relative.split(path.sep)[0] === 'dist') continue; // demo/dist lives inside demo/
    const built = path.join(ROOT, to, relative.replace(/\.ts$/, '.js'));
    const builtStat = fs.statSync(built, { throwIfNoEntry: false });
    if (builtStat === undefined || builtStat.mtimeMs < fs.statSync(source).mtimeMs)
      stale.push(path.relative(ROOT, built));
  }
  return stale;
}

export default function setup(): void {
  const stale = [...staleBuilds('src', 'dist'), ...staleBuilds('demo', 'demo/dist')];
  if (stale.length > 0) {
    throw new Error(
      `${stale[0]} is missing or older than its source (${stale.length} such files): run \`npm run build && npm run build:demo\`, or \`npm test\`, which builds first`,
    );
  }
}
