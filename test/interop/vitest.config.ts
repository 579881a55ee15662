import { configDefaults, defineConfig } from 'vitest/config';

/**
 * The interop tier (`npm run test:interop`): the library against peers nobody
 * on the project wrote (openssl, curl, nginx, socat, Python's ssl/asyncio and
 * websockets, headless Chromium), each started by its test on loopback. A
 * missing peer is a loud skip, or a failure under TAPS_REQUIRE_PEERS=1 (CI).
 * The table reporter prints peer × direction × result at the end.
 */
export default defineConfig({
  test: {
    include: ['test/interop/**/*.test.ts'],
    exclude: [...configDefaults.exclude],
    pool: 'forks',
    testTimeout: 30_000,
    hookTimeout: 30_000,
    setupFiles: ['test/setup/leak-guard.ts'],
    reporters: ['default', './test/interop/helpers/table-reporter.ts'],
  },
});
