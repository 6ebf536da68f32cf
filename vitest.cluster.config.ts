import { defineConfig } from 'vitest/config';

/**
 * `npm run test:cluster`: the multi-service Temporal cluster suite (scripts/cluster.sh),
 * kept out of the default `./sf test`. One cluster per run, started in globalSetup.
 */
export default defineConfig({
  test: {
    globalSetup: ['test/cluster/global-setup.ts'],
    pool: 'forks',
    // The chaos test kills services of the shared cluster: nothing may run beside it.
    maxWorkers: 1,
    fileParallelism: false,
    testTimeout: 300_000,
    hookTimeout: 600_000,
    include: ['test/cluster/**/*.test.ts'],
    silent: 'passed-only',
  },
});
