import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tiers that run on their own: network namespaces (test/netns/vitest.config.ts) and the fleet, which
    // needs redis-server (test/fleet/vitest.config.ts, `npm run test:fleet`).
    exclude: [...configDefaults.exclude, 'test/netns/**', 'test/fleet/**'],
    // Loopback tests open real sockets; run files in parallel on the 2 cores, tests inside a file in order.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    setupFiles: ['test/setup/leak-guard.ts'],
  },
});
