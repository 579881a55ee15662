import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // The network-namespace tier runs on its own (test/netns/vitest.config.ts).
    exclude: [...configDefaults.exclude, 'test/netns/**'],
    // Loopback tests open real sockets; run files in parallel on the 2 cores, tests inside a file in order.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    setupFiles: ['test/setup/leak-guard.ts'],
  },
});
