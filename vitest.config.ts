import { configDefaults, defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // Tiers that run on their own (docs/testing.md): network namespaces (test/netns/vitest.config.ts), the
    // fleet, which needs redis-server (`npm run test:fleet`), and interop, which needs peers a newcomer may
    // not have installed: nginx, socat, Python websockets, Chromium (`npm run test:interop`).
    exclude: [...configDefaults.exclude, 'test/netns/**', 'test/fleet/**', 'test/interop/**'],
    // Loopback tests open real sockets; run files in parallel on the 2 cores, tests inside a file in order.
    pool: 'forks',
    testTimeout: 20_000,
    hookTimeout: 20_000,
    setupFiles: ['test/setup/leak-guard.ts'],
  },
});
