import { defineConfig } from 'vitest/config';

// The real-network tier: tests that build network namespaces (root + Linux). Files run one at a time
// (each builds its own namespaces and child processes); `npm test` leaves them out.
export default defineConfig({
  test: {
    include: ['test/netns/**/*.test.ts'],
    pool: 'forks',
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    setupFiles: ['test/setup/leak-guard.ts'],
  },
});
