import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    // One Temporal dev server and one workflow bundle per run (test/global-setup.ts).
    globalSetup: ['test/global-setup.ts'],
    // The SDK's native addon and worker threads do not mix: forked processes.
    pool: 'forks',
    // Two cores: keep Temporal, the workers and the provider from starving each other.
    maxWorkers: 2,
    testTimeout: 60_000,
    hookTimeout: 120_000,
    include: ['test/**/*.test.ts'],
    // The multi-service cluster suite has its own config and command: npm run test:cluster.
    exclude: ['test/cluster/**', 'node_modules/**'],
    // SDK and worker logs only for failing tests.
    silent: 'passed-only',
  },
});
