/**
 * A guest holding its scope (it must, to make a Preconnection) reaches the
 * scope's class through `scope.constructor` (the scope is its own guard).
 * Calling it must not make a second scope: one the guest wrote the policy and
 * quotas of would mint real targets that every driver's socket accepts, for
 * any address and any number of sockets. Real loopback sockets: the port the
 * host's policy denies must see no connection.
 */
import { createServer, type Server } from 'node:net';
import { describe, expect, it } from 'vitest';
import { NEVER_ABORTED, type ConnectAttempt } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { createScope, type NetworkScope } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { quotaTenants } from '../helpers/tenants.js';

const { cleanups, tenant } = quotaTenants('sf', 'allow tcp://127.0.0.1:1');

/** A TCP server on loopback counting what it accepted. */
async function server(): Promise<{ port: number; accepted: number }> {
  const c = { port: 0, accepted: 0 };
  const s: Server = createServer((sock) => {
    c.accepted++;
    sock.destroy();
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  c.port = (s.address() as { port: number }).port;
  return c;
}

/** What the guest does with whatever scope it made: mint a target to `port` and dial it with the TCP driver. */
async function dialThrough(forged: NetworkScope, port: number): Promise<unknown> {
  const target = await forged.guard.authorize({ use: 'connect', protocol: 'tcp', address: '127.0.0.1', port });
  const attempt: ConnectAttempt = {
    signal: NEVER_ABORTED, target, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port }), security: SecurityParameters.disabled(),
    properties: new TransportProperties(), options: {}, guard: forged.guard,
  };
  const channel = await tcpDriver.connect(attempt);
  channel.abort();
  return channel;
}

/** Try `make`: a TypeError at once is the only safe answer; anything made is dialled through. */
async function attack(make: () => unknown, port: number): Promise<void> {
  let forged: unknown;
  try {
    forged = make();
  } catch (err) {
    expect(err).toBeInstanceOf(TypeError);
    return;
  }
  await expect(dialThrough(forged as NetworkScope, port)).rejects.toThrow();
}

describe('a scope\'s class makes no scope for a guest', () => {
  it('a Host\'s tenant scope: its constructor with a core the guest wrote (audit mode, no quota) makes nothing', async () => {
    const { scope } = await tenant('limit connections 1');
    const denied = await server();
    await expect(dialThrough(scope, denied.port)).rejects.toThrow(/denied|prohibited|not allowed/i);
    const Scope = scope.constructor as new (...a: unknown[]) => unknown;
    const lease = { released: false, sent() {}, received() {}, release() {} };
    const core = {
      entry: () => ({ revision: 1, policy: { mode: 'audit', rules: undefined, custom: undefined, strictAnswers: new Set(), limits: {}, customTimeoutMs: 1000 } }),
      network: scope.network, onDecision: undefined, now: () => Date.now(), clock: { setTimeout, clearTimeout }, clockTolerance: 0,
      quota: () => ({ acquire: () => lease, charge() {} }), racingCache: () => undefined,
    };
    for (let i = 0; i < 3; i++) await attack(() => new Scope(core, scope.tenant, undefined), denied.port);
    expect(denied.accepted).toBe(0);
  });

  it('a createScope scope: its constructor with a policy the guest wrote makes nothing', async () => {
    const scope = createScope({ tenant: `sf-basic-${process.pid}`, policy: { decide: () => ({ allow: false, code: 'denied', reason: 'no', rule: null }) } });
    const denied = await server();
    await expect(dialThrough(scope, denied.port)).rejects.toThrow();
    const Scope = scope.constructor as new (...a: unknown[]) => unknown;
    const policy = { decide: () => ({ allow: true, rule: 'forged' }) };
    for (let i = 0; i < 3; i++) await attack(() => new Scope({ tenant: scope.tenant, policy }), denied.port);
    expect(denied.accepted).toBe(0);
  });
});
