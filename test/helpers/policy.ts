/**
 * Policy and attempt helpers for driver tests: an allow-all policy, a test
 * tenant scope with the fake loopback resolver, `checked()` to have the guard
 * mint a CheckedTarget, and `connectAttempt()` / `listenAttempt()` to build
 * the objects a driver receives, the way the selector builds them.
 *
 * @example
 * const scope = scopeFor();
 * const target = await checked(scope, { protocol: 'tcp', address: '127.0.0.1', port });
 * const channel = await scope.network.connect(tcpDriver, connectAttempt(scope, target));
 */
import type { ConnectAttempt, ListenAttempt } from '../../src/driver.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { createScope, type CheckedTarget, type NetworkScope } from '../../src/policy/index.js';
import type { NetworkPolicy, NetworkUse, PolicyProtocol } from '../../src/policy/types.js';
import { TransportProperties } from '../../src/properties.js';
import type { SecurityParameters } from '../../src/security.js';
import type { Resolver } from '../../src/network.js';
import { loopbackResolver } from './resolver.js';

export const TEST_TENANT = 'test-tenant';

/** Allows every request (tests only). */
export const allowAll: NetworkPolicy = Object.freeze({
  decide: () => ({ allow: true, rule: 'test: allow all' }) as const,
});

/** A scope for the test tenant; default policy allowAll, default resolver: localhost → 127.0.0.1 and ::1. */
export function scopeFor(policy: NetworkPolicy = allowAll, resolver: Resolver = loopbackResolver()): NetworkScope {
  return createScope({ tenant: TEST_TENANT, policy, resolver });
}

export interface CheckedInit {
  readonly protocol: PolicyProtocol;
  readonly address: string;
  readonly port: number;
  readonly hostName?: string;
  readonly use?: NetworkUse;
}

/** Have the scope's guard authorize a target (use 'connect' unless given). */
export function checked(scope: NetworkScope, init: CheckedInit): Promise<CheckedTarget> {
  return scope.guard.authorize({ use: init.use ?? 'connect', protocol: init.protocol, address: init.address, port: init.port, hostName: init.hostName });
}

export interface AttemptInit {
  readonly signal?: AbortSignal;
  /** SecurityParameters, or a plain object with the same fields. */
  readonly security?: SecurityParameters | Record<string, unknown>;
  readonly properties?: TransportProperties;
  readonly options?: Record<string, unknown>;
  readonly local?: LocalEndpoint;
}

/** A ConnectAttempt for `target` as the selector would build it. */
export function connectAttempt(scope: NetworkScope, target: CheckedTarget, init: AttemptInit = {}): ConnectAttempt {
  const remote = RemoteEndpoint.from(
    target.hostName !== undefined ? { hostName: target.hostName, ipAddress: target.address, port: target.port } : { ipAddress: target.address, port: target.port },
  );
  return {
    signal: init.signal ?? new AbortController().signal,
    target,
    remote,
    local: init.local,
    security: (init.security ?? {}) as SecurityParameters,
    properties: init.properties ?? new TransportProperties(),
    options: init.options ?? {},
    guard: scope.guard,
  };
}

/** A ListenAttempt binding `address`:`port` (port 0: any free port). */
export async function listenAttempt(
  scope: NetworkScope,
  protocol: PolicyProtocol,
  address: string,
  port = 0,
  init: AttemptInit = {},
): Promise<ListenAttempt> {
  const target = await checked(scope, { protocol, address, port, use: 'bind' });
  return {
    signal: init.signal ?? new AbortController().signal,
    target,
    local: init.local ?? LocalEndpoint.from({ ipAddress: address, port }),
    security: (init.security ?? {}) as SecurityParameters,
    properties: init.properties ?? new TransportProperties(),
    options: init.options ?? {},
    guard: scope.guard,
  };
}
