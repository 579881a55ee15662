/**
 * A policy reload between a name's lookup grant and its resolution: every
 * decision after the reload is the newest revision's. The injected resolver
 * holds its answer until the test has swapped the policy, so the grant is
 * the old revision's and the answers arrive under the new one. Real loopback
 * listeners behind the name (`mixed.test`: 127.0.0.1, allowed by an address
 * rule, and 127.0.0.2, allowed by nothing) count who is reached.
 *
 * - strict answers turned on after the grant: the forbidden answer refuses
 *   the whole name, nobody is dialled (not the grant's revision's setting,
 *   which would dial 127.0.0.1);
 * - strict answers turned off after the grant: the allowed answer is dialled;
 * - the name rule removed after the grant: the name is refused;
 * - the address rule removed while the query is out under strict answers:
 *   refused;
 * - a strict verdict given under one revision is not reused under the next.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PolicyDeniedError } from '../../src/errors.js';
import type { ResolvedAddress, Resolver } from '../../src/network.js';
import { Host } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';

interface Counter { reached: number; server: Server; sockets: Set<Socket> }
async function counter(address: string, port: number): Promise<Counter> {
  const c: Counter = { reached: 0, server: createServer((s) => { c.reached++; c.sockets.add(s); s.on('error', () => {}); }), sockets: new Set() };
  await new Promise<void>((resolve, reject) => c.server.once('error', reject).listen(port, address, resolve));
  return c;
}

/** A resolver whose answers wait until `release()`; `asked` resolves at the first query after each `hold()`. */
function gatedResolver(): Resolver & { hold(): Promise<void>; release(): void } {
  let gate: Promise<void> = Promise.resolve();
  let open = (): void => {};
  let asked = (): void => {};
  const answers: Record<string, Record<4 | 6, string[]>> = { 'mixed.test': { 4: ['127.0.0.1', '127.0.0.2'], 6: [] } };
  const resolver = async (host: string, family: 4 | 6): Promise<ResolvedAddress[]> => {
    asked();
    await gate;
    const list = answers[host]?.[family];
    if (list === undefined) throw Object.assign(new Error(`ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return list.map((address) => ({ address, family }));
  };
  return Object.assign(resolver, {
    hold: () => {
      gate = new Promise<void>((r) => (open = r));
      return new Promise<void>((r) => (asked = r));
    },
    release: () => open(),
  });
}

let allowed: Counter, forbidden: Counter;
let port: number;
let host: Host;
const resolver = gatedResolver();

beforeAll(async () => {
  allowed = await counter('127.0.0.1', 0);
  port = (allowed.server.address() as { port: number }).port;
  forbidden = await counter('127.0.0.2', port);
  host = new Host({ resolver });
});

afterAll(async () => {
  host.close();
  for (const c of [allowed, forbidden]) {
    for (const s of c.sockets) s.destroy();
    await new Promise<void>((r) => c.server.close(() => r()));
  }
});

let n = 0;
const settle = (): Promise<unknown> => new Promise((r) => setTimeout(r, 20));

/**
 * initiate() to mixed.test under `before`; once the resolver has been asked (the lookup was granted under
 * `before`), the policy becomes `after`, then the answers come. What initiate() ended with, and who was reached.
 */
async function reloadDuringLookup(before: string, after: string): Promise<{ outcome: string; reached: [number, number] }> {
  const tenant = `reload-${process.pid}-${n++}`;
  host.setPolicy(tenant, before);
  const scope = await host.tenant(tenant);
  allowed.reached = forbidden.reached = 0;
  const asked = resolver.hold();
  const pending = new Preconnection({
    scope, remote: { hostName: 'mixed.test', port }, drivers: [tcpDriver],
    properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(),
  }).initiate().then(
    (conn) => {
      conn.abort();
      return `connected to ${conn.remote.address}`;
    },
    (err: unknown) => (err as { code?: string }).code ?? String(err),
  );
  await asked;
  const before$ = scope.revision;
  host.setPolicy(tenant, after);
  expect(scope.revision).toBeGreaterThan(before$);
  resolver.release();
  const outcome = await pending;
  await settle();
  return { outcome, reached: [allowed.reached, forbidden.reached] };
}

describe('a reload between the lookup grant and the resolution: the newest revision decides', () => {
  const name = (): string => `allow tcp://mixed.test:${port}`;
  const address = (): string => `allow tcp://127.0.0.1:${port}`;

  it('control: without a reload, the forbidden answer is dropped and the allowed one dialled', async () => {
    const r = await reloadDuringLookup(`${name()}\n${address()}`, `${name()}\n${address()}`);
    expect(r).toEqual({ outcome: 'connected to 127.0.0.1', reached: [1, 0] });
  });

  it('strict answers turned on after the grant refuse the name: nobody is dialled', async () => {
    const r = await reloadDuringLookup(`${name()}\n${address()}`, `answers strict\n${name()}\n${address()}`);
    console.log(`strict turned on mid-lookup: ${r.outcome}, reached ${r.reached.join('/')}`);
    expect(r).toEqual({ outcome: 'ERR_TAPS_POLICY_PROHIBITED', reached: [0, 0] });
  });

  it('a rule turned strict after the grant (per rule) refuses the name too', async () => {
    const r = await reloadDuringLookup(`${name()}\n${address()}`, `${name()} strict\n${address()}`);
    expect(r).toEqual({ outcome: 'ERR_TAPS_POLICY_PROHIBITED', reached: [0, 0] });
  });

  it('strict answers turned off after the grant: the allowed answer is dialled', async () => {
    const r = await reloadDuringLookup(`answers strict\n${name()}\n${address()}`, `${name()}\n${address()}`);
    expect(r).toEqual({ outcome: 'connected to 127.0.0.1', reached: [1, 0] });
  });

  it('the name rule removed after the grant: the name is refused, nobody is dialled', async () => {
    const r = await reloadDuringLookup(`${name()}\n${address()}`, address());
    expect(r).toEqual({ outcome: 'ERR_TAPS_POLICY_PROHIBITED', reached: [0, 0] });
  });

  it('the address rule removed while a strict query is out: refused, nobody is dialled', async () => {
    const r = await reloadDuringLookup(`answers strict\n${name()}\n${address()}\nallow tcp://127.0.0.2:${port}`, `answers strict\n${name()}\n${address()}`);
    expect(r).toEqual({ outcome: 'ERR_TAPS_POLICY_PROHIBITED', reached: [0, 0] });
  });
});

describe('the guard: one name, resolved across reloads', () => {
  it('strict turned on between authorizeLookup and resolve denies the name at resolve', async () => {
    const tenant = `reload-guard-${process.pid}-${n++}`;
    host.setPolicy(tenant, `allow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}`);
    const scope = await host.tenant(tenant);
    const checked = await scope.guard.authorizeLookup('tcp', 'mixed.test', port);
    host.setPolicy(tenant, `answers strict\nallow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}`);
    await expect(scope.guard.resolve(checked, 4, AbortSignal.timeout(5000))).rejects.toBeInstanceOf(PolicyDeniedError);
  });

  it("a strict verdict is not reused under the next revision: an answer it forbids refuses the name's later resolves", async () => {
    const tenant = `reload-guard-${process.pid}-${n++}`;
    const both = `answers strict\nallow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}\nallow tcp://127.0.0.2:${port}`;
    host.setPolicy(tenant, both);
    const scope = await host.tenant(tenant);
    const checked = await scope.guard.authorizeLookup('tcp', 'mixed.test', port);
    const first = await scope.guard.resolve(checked, 4, AbortSignal.timeout(5000));
    expect(first.map((a) => a.address)).toEqual(['127.0.0.1', '127.0.0.2']);
    host.setPolicy(tenant, `answers strict\nallow tcp://mixed.test:${port}\nallow tcp://127.0.0.1:${port}`);
    const err = await scope.guard.resolve(checked, 4, AbortSignal.timeout(5000)).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PolicyDeniedError);
    expect((err as PolicyDeniedError).message).toMatch(/strict answers: mixed\.test resolved to 127\.0\.0\.2/);
    // And back: the revision that allows both again gives the answers again.
    host.setPolicy(tenant, both);
    expect((await scope.guard.resolve(checked, 4, AbortSignal.timeout(5000))).map((a) => a.address)).toEqual(['127.0.0.1', '127.0.0.2']);
  });
});
