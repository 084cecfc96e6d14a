/**
 * Processes run as another user (uid 65534, setpriv) must load the built
 * library, the fixtures and the runtime dependencies, but the checkout may
 * sit under a directory they cannot enter (a `mktemp -d` is 0700, and CI
 * clones wherever it likes). So a test file that runs them takes a copy of
 * just what they load, in a temp directory every user may read, and spawns
 * them from there. The copy keeps the checkout's relative layout, so the
 * fixtures' `../../dist/` imports and dist's bare imports resolve as they do
 * in the checkout.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll } from 'vitest';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));

export interface OtherUsersCheckout {
  /** The copy of dist/cli/main.js. */
  cli: string;
  /** The copy of test/fixtures/child.mjs. */
  child: string;
}

/**
 * A fresh copy, removed after the tests of the current suite. Call it once,
 * at the top level of the test file (not inside a describe), so that the
 * copy outlives every test of the file.
 */
export function checkoutForOtherUsers(): OtherUsersCheckout {
  requireEnterable(os.tmpdir());
  if (!fs.existsSync(path.join(ROOT, 'dist/cli/main.js')))
    throw new Error(`${ROOT}dist/ is missing: run npm run build before the tests that run processes as other users`);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'dirq-test-checkout-'));
  // Node loads neither type declarations nor source maps: leaving them out copies a third fewer files.
  const loaded = (src: string): boolean => !/\.(d\.ts|map)$/.test(src);
  for (const rel of ['package.json', 'dist', 'test/fixtures'])
    fs.cpSync(path.join(ROOT, rel), path.join(dir, rel), { recursive: true, filter: loaded });
  for (const pkg of runtimePackages()) {
    // Nested node_modules/ are copied only as far as the closure reaches them.
    fs.cpSync(pkg, path.join(dir, path.relative(ROOT, pkg)), {
      recursive: true,
      filter: (src) => src !== path.join(pkg, 'node_modules'),
    });
  }
  letEveryoneRead(dir);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
  return { cli: path.join(dir, 'dist/cli/main.js'), child: path.join(dir, 'test/fixtures/child.mjs') };
}

/**
 * The installed directories of package.json's "dependencies" and, in turn,
 * of theirs: what dist/ may import at run time. Each is looked up as Node
 * resolves a bare import, in node_modules/ from the importer's directory up
 * to the checkout's, so a nested copy of another version is found first.
 */
function runtimePackages(): string[] {
  const found = new Set<string>();
  const visit = (importer: string): void => {
    const manifest = readManifest(importer);
    const optional = Object.keys(manifest.optionalDependencies ?? {});
    for (const name of [...Object.keys(manifest.dependencies ?? {}), ...optional]) {
      const pkg = locate(name, importer);
      if (pkg === undefined) {
        if (optional.includes(name)) continue; // not built for this platform
        throw new Error(
          `${name}, a dependency of ${path.relative(ROOT, importer) || 'the checkout'}, is not installed: run npm ci`,
        );
      }
      if (found.has(pkg)) continue;
      found.add(pkg);
      visit(pkg);
    }
  };
  visit(ROOT);
  return [...found];
}

interface Manifest {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

function readManifest(dir: string): Manifest {
  return JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as Manifest;
}

function locate(name: string, importer: string): string | undefined {
  for (let dir = importer; ; dir = path.dirname(dir)) {
    const pkg = path.join(dir, 'node_modules', name);
    if (fs.existsSync(path.join(pkg, 'package.json'))) return pkg;
    if (path.relative(ROOT, dir) === '') return undefined;
  }
}

/** A checkout made under umask 077 has files only its owner may read, and the copy keeps their modes. */
function letEveryoneRead(dir: string): void {
  fs.chmodSync(dir, 0o755);
  for (const rel of fs.readdirSync(dir, { recursive: true, encoding: 'utf8' })) {
    const file = path.join(dir, rel);
    const stat = fs.lstatSync(file);
    if (stat.isDirectory()) fs.chmodSync(file, 0o755);
    else if (stat.isFile()) fs.chmodSync(file, stat.mode & 0o100 ? 0o755 : 0o644);
  }
}

/** The copy (and the tests' queues) help only if the temp directory lets others in too: say so rather than fail obscurely. */
function requireEnterable(tmp: string): void {
  for (let dir = path.resolve(tmp); ; dir = path.dirname(dir)) {
    if ((fs.statSync(dir).mode & 0o001) === 0) {
      throw new Error(
        `${dir} does not let other users in, so processes run as another user cannot reach the tests' temp directories in ${tmp}: set TMPDIR to a directory they may enter, such as /tmp`,
      );
    }
    if (path.dirname(dir) === dir) return;
  }
}
