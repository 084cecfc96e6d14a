/**
 * The package as users get it: what `npm pack` puts in the tarball (every
 * page and folder README links to, the LICENSE, the built dist/), and an
 * install from a git URL, which has no dist/ until the package's `prepare`
 * script builds it.
 *
 * The git install runs npm for real (about 7 s alone here, most of it the
 * TypeScript build in npm's clone): it prefers the npm cache that `npm ci`
 * filled, so it works offline once the project is installed.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { tempDir } from './support/temp.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const run = promisify(execFile);

/** The environment of a user's shell: none of the npm_* settings that `npm test` hands its children. */
function userEnv(): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^npm_/i.test(name)));
}

/** The relative links of a markdown page, without their #fragment. */
function links(page: string): string[] {
  const text = fs.readFileSync(path.join(ROOT, page), 'utf8');
  return [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((href) => !/^[a-z]+:/.test(href));
}

describe('the npm package', () => {
  it('npm pack ships dist/, the LICENSE and everything README links to, and no tests or sources', async () => {
    // --ignore-scripts: `prepare` would rebuild dist/ under the other test files' feet.
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], {
      cwd: ROOT,
      env: userEnv(),
    });
    const files = new Set((JSON.parse(stdout) as [{ files: { path: string }[] }])[0].files.map((f) => f.path));
    for (const file of [
      'package.json',
      'LICENSE',
      'README.md',
      'FORMAT.md',
      'NFS.md',
      'dist/index.js',
      'dist/index.d.ts',
      'dist/cli/main.js',
      'dist/testing/index.js',
      'dist/testing/index.d.ts',
    ]) {
      expect(files, file).toContain(file);
    }
    for (const [page, href] of [
      ...links('README.md').map((href) => ['README.md', href]),
      ...links('examples/README.md').map((href) => ['examples/README.md', href]),
    ]) {
      const target = path.posix.normalize(path.posix.join(path.posix.dirname(page!), href!));
      const packed = target.endsWith('/') ? [...files].some((file) => file.startsWith(target)) : files.has(target);
      expect(packed, `${page} links to ${href}, which the package must hold`).toBe(true);
    }
    expect([...files].filter((file) => /^(src|test|bench|demo|\.ci)\//.test(file))).toEqual([]);
    expect(fs.readFileSync(path.join(ROOT, 'LICENSE'), 'utf8')).toMatch(
      /^MIT License\n\nCopyright \(c\) \d{4} the dirqueue authors\n/,
    );
  });

  // The bound is generous for a loaded CI machine; it is not what the test checks.
  it(
    'npm install git+file://CLONE builds dist/ with `prepare` and installs a working dirq',
    { timeout: 120_000 },
    async () => {
      // A git repository of this working tree as it is (edits not yet committed included), as a user's clone would be.
      const repo = path.join(tempDir(), 'dirqueue');
      const { stdout: listed } = await run('git', ['ls-files', '-z', '--cached', '--others', '--exclude-standard'], {
        cwd: ROOT,
      });
      for (const file of listed.split('\0').filter((f) => f.length > 0 && fs.existsSync(path.join(ROOT, f)))) {
        fs.cpSync(path.join(ROOT, file), path.join(repo, file));
      }
      expect(fs.existsSync(path.join(repo, 'dist'))).toBe(false);
      const git = (...args: string[]) =>
        run('git', ['-c', 'user.name=test', '-c', 'user.email=test@example.invalid', ...args], { cwd: repo });
      await git('init', '-q');
      await git('add', '-A');
      await git('commit', '-q', '-m', 'the working tree');

      const app = path.join(tempDir(), 'app');
      fs.mkdirSync(app);
      fs.writeFileSync(
        path.join(app, 'package.json'),
        `${JSON.stringify({ name: 'app', version: '1.0.0', private: true, type: 'module' })}\n`,
      );
      await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', `git+${pathToFileURL(repo).href}`], {
        cwd: app,
        env: userEnv(),
      });

      const bin = path.join(app, 'node_modules/.bin/dirq');
      const queue = path.join(app, 'q');
      const dirq = async (...args: string[]) => (await run(bin, args, { cwd: app, env: userEnv() })).stdout;
      const version = (JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as { version: string })
        .version;
      expect(await dirq('--version')).toBe(`${version}\n`);
      await dirq('init', queue);
      const id = (await dirq('enqueue', queue, 'email', '{"to":"a@example.com"}')).trimEnd();
      expect(JSON.parse(await dirq('ls', queue, '--json'))).toMatchObject([{ id, type: 'email' }]);
      // and the library, imported by name from the app
      const script =
        "import { Queue } from 'dirqueue'; const q = await Queue.open('q'); console.log(JSON.stringify(await q.counts())); await q.close();";
      const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script], {
        cwd: app,
        env: userEnv(),
      });
      expect(JSON.parse(stdout)).toMatchObject({ queue: 1 });
      // and the testing kit, by its export name
      const kit = [
        "import { testQueue, runJobs } from 'dirqueue/testing';",
        'const q = await testQueue();',
        "await q.enqueue('add', { a: 1, b: 2 });",
        'const { completed } = await runJobs(q, (job) => job.data.a + job.data.b);',
        'console.log(JSON.stringify({ results: completed.map((c) => c.result), dir: q.dir }));',
        'await q.close();',
      ].join(' ');
      const ran = await run(process.execPath, ['--input-type=module', '-e', kit], { cwd: app, env: userEnv() });
      const said = JSON.parse(ran.stdout) as { results: number[]; dir: string };
      expect(said.results).toEqual([3]);
      expect(fs.existsSync(said.dir)).toBe(false);
    },
  );
});
