/**
 * A listener a guest opens straight through `scope.network.listen` (with a
 * driver it holds, e.g. `connection.driver`) and starts with a handler of its
 * own: no `Listener` decides its peers, so the scope's network does. A peer
 * the tenant's `accept` rules refuse is aborted before the guest's handler
 * sees it (the peer's socket is closed, the handler counts nothing); a peer
 * they allow is handed over. Real TCP and UDP peers on loopback.
 */
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { NEVER_ABORTED, type Driver, type DriverListener, type TransportChannel } from '../../src/driver.js';
import { LocalEndpoint } from '../../src/endpoints.js';
import { Host, type DecisionRecord } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';

const records: DecisionRecord[] = [];
const host = new Host({ onDecision: (r) => records.push(r) });
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  host.close();
});

let n = 0;
async function rawListener(policy: string, driver: Driver): Promise<{ tenant: string; listener: DriverListener; handed: TransportChannel[] }> {
  const tenant = `direct-listen-${process.pid}-${n++}`;
  host.setPolicy(tenant, policy);
  const scope = await host.tenant(tenant);
  const target = await scope.guard.authorize({ use: 'bind', protocol: driver.protocol, address: '127.0.0.1', port: 0 });
  const listener = await scope.network.listen(driver, {
    signal: NEVER_ABORTED, target, local: new LocalEndpoint({ ipAddress: '127.0.0.1', port: 0 }), security: SecurityParameters.disabled(),
    properties: new TransportProperties(), options: {},
  } as never);
  cleanups.push(() => listener.close());
  const handed: TransportChannel[] = [];
  listener.start({ connection: (ch) => handed.push(ch), error: () => {} });
  cleanups.push(() => handed.forEach((ch) => ch.abort()));
  return { tenant, listener, handed };
}

/** A TCP peer of `port`; `closed` resolves when the listener's side closed it. */
function tcpPeer(port: number): { closed: Promise<void>; socket: ReturnType<typeof connect> } {
  const socket = connect(port, '127.0.0.1');
  socket.on('error', () => {});
  cleanups.push(() => void socket.destroy());
  return { socket, closed: new Promise((resolve) => socket.once('close', () => resolve())) };
}

async function until(ok: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !ok(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('a listener opened through scope.network.listen with a handler of its own', () => {
  it('tcp: a peer the accept rules refuse is closed unseen; an accepted one is handed over', async () => {
    const refused = await rawListener('allow bind:tcp://127.0.0.1:0\nallow accept:tcp://127.0.0.2:*', tcpDriver);
    await tcpPeer(refused.listener.local.port).closed; // the listener's side closed it
    expect(refused.handed).toHaveLength(0);
    const accepted = await rawListener('allow bind:tcp://127.0.0.1:0\nallow accept:tcp://127.0.0.1:*', tcpDriver);
    const peer = tcpPeer(accepted.listener.local.port);
    await until(() => accepted.handed.length === 1);
    console.log(`direct tcp listener: refused peer closed, handed ${refused.handed.length}; accepted peer handed ${accepted.handed.length}`);
    expect(accepted.handed).toHaveLength(1);
    expect(peer.socket.destroyed).toBe(false);
  });

  it('udp: datagrams from a peer the accept rules refuse reach no handler', async () => {
    const refused = await rawListener('allow bind:udp://127.0.0.1:0\nallow accept:udp://127.0.0.2:*', udpDriver);
    const peer = createSocket('udp4');
    await new Promise<void>((r) => peer.bind(0, '127.0.0.1', () => r()));
    cleanups.push(() => new Promise<void>((r) => peer.close(() => r())));
    peer.send('hello', refused.listener.local.port, '127.0.0.1');
    const denial = (): boolean => records.some((r) => r.tenant === refused.tenant && r.use === 'accept' && !r.allow);
    await until(denial);
    await new Promise((r) => setImmediate(r));
    expect(denial()).toBe(true);
    expect(refused.handed).toHaveLength(0);
  });
});
