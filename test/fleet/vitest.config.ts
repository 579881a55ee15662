import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The fleet tier (`npm run test:fleet`): hosts sharing quotas and policies
 * through a real Redis that each file starts on loopback (redis-server from
 * Debian). Files run one at a time: several of them run host processes.
 */
export default defineConfig({
  test: {
    include: ['test/fleet/**/*.test.ts'],
    exclude: [...configDefaults.exclude],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/leak-guard.ts'],
  },
});
