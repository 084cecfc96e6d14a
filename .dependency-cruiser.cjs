// The import rule of ARCHITECTURE.md, checked by `npm run lint:deps` (which
// .ci/run runs before the tests). The layers, bottom to top: store,
// maintenance, queue, pool, then cli and testing; a folder imports only the folders below it.
// Type-only imports count too (tsPreCompilationDeps), so a type cannot smuggle
// an upward arrow or a cycle past the rule.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment:
        'Modules import each other in one direction only: split the shared part into its own module, in the lower of the two layers.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'store-imports-only-store',
      severity: 'error',
      comment: 'src/store/ is the on-disk protocol (FORMAT.md): it knows nothing of queues, sweeps, pools or the CLI.',
      from: { path: '^src/store/' },
      to: { path: '^src/', pathNot: '^src/store/' },
    },
    {
      name: 'maintenance-imports-only-store',
      severity: 'error',
      comment:
        'The sweep services and fsck work on the files alone, with no Queue open, so they may use only src/store/.',
      from: { path: '^src/maintenance/' },
      to: { path: '^src/', pathNot: '^src/(store|maintenance)/' },
    },
    {
      name: 'queue-imports-store-and-maintenance',
      severity: 'error',
      comment:
        'src/queue/ runs on src/store/ and sweeps with src/maintenance/; the pool and the CLI are built on it, not the reverse.',
      from: { path: '^src/queue/' },
      to: { path: '^src/', pathNot: '^src/(store|maintenance|queue)/' },
    },
    {
      name: 'pool-imports-queue-and-store',
      severity: 'error',
      comment:
        'src/pool/ runs jobs it claims through a Queue; it reaches the files through src/queue/ and src/store/ only.',
      from: { path: '^src/pool/' },
      to: { path: '^src/', pathNot: '^src/(store|queue|pool)/' },
    },
    {
      name: 'testing-imports-pool-queue-and-store',
      severity: 'error',
      comment:
        'src/testing/ (dirqueue/testing) runs jobs as the pool does, on a Queue: it may use src/pool/, src/queue/ and src/store/.',
      from: { path: '^src/testing/' },
      to: { path: '^src/', pathNot: '^src/(store|queue|pool|testing)/' },
    },
    {
      name: 'nothing-imports-the-testing-kit',
      severity: 'error',
      comment: 'dirqueue/testing is for the tests of users: the library and the CLI never depend on it.',
      from: { path: '^src/', pathNot: '^src/testing/' },
      to: { path: '^src/testing/' },
    },
    {
      name: 'nothing-imports-the-cli-or-the-index',
      severity: 'error',
      comment:
        'src/cli/ is the top of the house and src/index.ts is the public surface: the library never imports them.',
      from: { path: '^src/', pathNot: '^src/cli/' },
      to: { path: '^src/(cli/|index\\.ts$)' },
    },
    {
      name: 'demo-uses-the-package',
      severity: 'error',
      comment: 'The demo imports dirqueue by its name, as a user does, never a source file.',
      from: { path: '^demo/' },
      to: { path: '^src/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '(^|/)dist/' },
    tsConfig: { fileName: 'tsconfig.json' },
    tsPreCompilationDeps: true,
    enhancedResolveOptions: { extensions: ['.ts', '.js'] },
  },
};
