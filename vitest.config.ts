import { defineConfig } from 'vitest/config';

// The suite runs twice for the files that find jobs: once with inotify
// watching and once poll-only (watch: false), as on NFS.
const discoveryFiles = [
  'test/queue.test.ts',
  'test/invariants.test.ts',
  'test/race.test.ts',
  'test/pool.test.ts',
  'test/cli-work.test.ts',
];

export default defineConfig({
  test: {
    reporters: ['default', './test/support/summary-reporter.ts'],
    // tests import the built dist/: refuse to run against a build older than src/
    globalSetup: ['./test/support/fresh-build.ts'],
    testTimeout: 60_000,
    hookTimeout: 60_000,
    pool: 'forks',
    projects: [
      { extends: true, test: { name: 'watch', include: ['test/**/*.test.ts'], env: { DIRQ_TEST_WATCH: '1' } } },
      { extends: true, test: { name: 'poll', include: discoveryFiles, env: { DIRQ_TEST_WATCH: '0' } } },
    ],
  },
});
