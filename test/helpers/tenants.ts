/**
 * The fixture of the quota tests: one Host per test file, a fresh tenant per
 * test (named `<prefix>-<pid>-<n>`, so files and processes running side by
 * side never share one), and a cleanup list run after the file's tests, last
 * in first out, before the host closes.
 *
 * @example
 * const { host, cleanups, tenant } = quotaTenants('sq', 'allow *://@loopback:*');
 * const { id, scope } = await tenant('limit connections 1');
 * cleanups.push(() => listener.stop());
 * expect(host.usage(id).connections).toBe(0);
 */
import { afterAll } from 'vitest';
import { Host, type TenantScope } from '../../src/policy/index.js';

/** A tenant made for one test. */
export interface TestTenant {
  readonly id: string;
  readonly scope: TenantScope;
}

/** What {@link quotaTenants} gives a test file. */
export interface QuotaTenants {
  readonly host: Host;
  /** Run after the file's tests, last in first out. */
  readonly cleanups: (() => Promise<unknown> | void)[];
  /** A new tenant whose policy is the file's `base` rules (none: ''), then `limits`. */
  tenant(limits?: string): Promise<TestTenant>;
  /** The next tenant id `<prefix>-<pid>-<n>`, for a tenant whose policy the test writes whole. */
  nextId(): string;
}

/** A Host for this test file and its tenants `<prefix>-<pid>-<n>` (see the module comment). */
export function quotaTenants(prefix: string, base: string): QuotaTenants {
  const host = new Host();
  const cleanups: (() => Promise<unknown> | void)[] = [];
  afterAll(async () => {
    for (const c of cleanups.reverse()) await c();
    host.close();
  });
  let n = 0;
  const nextId = (): string => `${prefix}-${process.pid}-${++n}`;
  return {
    host,
    cleanups,
    nextId,
    async tenant(limits = '') {
      const id = nextId();
      host.setPolicy(id, [base, limits].filter((r) => r !== '').join('\n'));
      return { id, scope: await host.tenant(id) };
    },
  };
}
