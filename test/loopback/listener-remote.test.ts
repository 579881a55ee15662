/**
 * A listener given a remote endpoint accepts only the peers it names
 * (RFC 9622 §7.2). Over loopback: the listener on 127.0.0.1 names
 * 127.0.0.2 (or a port, or a name that resolves to 127.0.0.2 through an
 * injected resolver); plain Node clients connect from 127.0.0.1 and
 * 127.0.0.2. A peer from elsewhere is refused before the application sees
 * it (a `refused` event, never a `connectionReceived`), though the tenant's
 * policy would accept it; the named peer is delivered.
 */
import { createSocket } from 'node:dgram';
import { connect, createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { RemoteEndpointInit } from '../../src/endpoints.js';
import type { Listener } from '../../src/listener.js';
import { Host } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { fakeResolver } from '../helpers/resolver.js';

let host: Host;
const resolver = fakeResolver({ 'peer.test': { v4: ['127.0.0.2'] } });

beforeAll(() => {
  host = new Host({ resolver });
  host.setPolicy('svc', 'allow bind:*://127.0.0.1:0\nallow accept:*://@loopback:*\nallow lookup:tcp://peer.test\nallow lookup:udp://peer.test');
});
afterAll(() => host.close());

interface Seen { delivered: string[]; refused: string[] }
async function listen(remote: RemoteEndpointInit, udp = false): Promise<{ listener: Listener; seen: Seen; conns: Connection[] }> {
  const scope = await host.tenant('svc');
  const listener = await new Preconnection({
    scope, local: { ipAddress: '127.0.0.1', port: 0 }, remote,
    properties: udp ? TransportProperties.unreliableDatagram() : TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(), drivers: [udp ? udpDriver : tcpDriver],
  }).listen();
  const seen: Seen = { delivered: [], refused: [] };
  const conns: Connection[] = [];
  listener.on('connectionReceived', (c) => {
    seen.delivered.push(c.remote.address);
    conns.push(c);
  });
  listener.on('refused', (peer, reason) => seen.refused.push(`${peer.address}: ${reason}`));
  return { listener, seen, conns };
}

/** A plain TCP client from `localAddress` (and `localPort`); resolves when the server side is settled. */
function tcpFrom(port: number, localAddress: string, localPort?: number): Promise<void> {
  return new Promise((resolve) => {
    const s: Socket = connect({ host: '127.0.0.1', port, localAddress, ...(localPort ? { localPort } : {}) });
    s.on('error', () => resolve());
    s.on('close', () => resolve());
    s.on('connect', () => setTimeout(() => s.destroy(), 50));
  });
}

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.2', r));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function until(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 5));
}

describe('a listener accepts only the peers its remote endpoint names', () => {
  it('by address: 127.0.0.2 is delivered, 127.0.0.1 is refused though the policy accepts it', async () => {
    const { listener, seen, conns } = await listen({ ipAddress: '127.0.0.2' });
    try {
      await tcpFrom(listener.port, '127.0.0.1');
      await tcpFrom(listener.port, '127.0.0.2');
      await until(() => seen.delivered.length + seen.refused.length === 2);
      expect(seen.delivered).toEqual(['127.0.0.2']);
      expect(seen.refused).toEqual([expect.stringMatching(/^127\.0\.0\.1: peer 127\.0\.0\.1:\d+ is not 127\.0\.0\.2/)]);
    } finally {
      for (const c of conns) c.abort();
      await listener.stop();
    }
  });

  it('by port, when the endpoint names one: another source port is refused', async () => {
    const p = await freePort();
    const { listener, seen, conns } = await listen({ ipAddress: '127.0.0.2', port: p });
    try {
      await tcpFrom(listener.port, '127.0.0.2');
      await tcpFrom(listener.port, '127.0.0.2', p);
      await until(() => seen.delivered.length + seen.refused.length === 2);
      expect(seen.delivered).toEqual(['127.0.0.2']);
      expect(conns[0]!.remote.port).toBe(p);
      expect(seen.refused).toEqual([expect.stringMatching(new RegExp(`is not from port ${p}`))]);
    } finally {
      for (const c of conns) c.abort();
      await listener.stop();
    }
  });

  it('by name: resolved through the tenant guard (lookup granted), only its addresses are delivered', async () => {
    const { listener, seen, conns } = await listen({ hostName: 'peer.test' });
    try {
      await tcpFrom(listener.port, '127.0.0.1');
      await tcpFrom(listener.port, '127.0.0.2');
      await until(() => seen.delivered.length + seen.refused.length === 2);
      expect(seen.delivered).toEqual(['127.0.0.2']);
      expect(seen.refused).toEqual([expect.stringMatching(/is not an address of peer\.test/)]);
      expect(resolver.queries.filter((q) => q.host === 'peer.test').length).toBe(2); // once per family, for both peers
    } finally {
      for (const c of conns) c.abort();
      await listener.stop();
    }
  });

  it('a name the tenant may not look up admits no peer', async () => {
    const { listener, seen } = await listen({ hostName: 'secret.test' });
    try {
      await tcpFrom(listener.port, '127.0.0.2');
      await until(() => seen.delivered.length + seen.refused.length === 1);
      expect(seen.delivered).toEqual([]);
      expect(seen.refused).toEqual([expect.stringMatching(/secret\.test could not be resolved/)]);
      expect(resolver.queries.some((q) => q.host === 'secret.test')).toBe(false);
    } finally {
      await listener.stop();
    }
  });

  it('UDP: a datagram from another address makes no connection', async () => {
    const { listener, seen, conns } = await listen({ ipAddress: '127.0.0.2' }, true);
    const senders = ['127.0.0.1', '127.0.0.2'].map((address) => ({ address, socket: createSocket('udp4') }));
    try {
      for (const { address, socket } of senders) {
        await new Promise<void>((r) => socket.bind(0, address, r));
        await new Promise<void>((r, j) => socket.send('hello', listener.port, '127.0.0.1', (e) => (e ? j(e) : r())));
      }
      await until(() => seen.delivered.length + seen.refused.length === 2);
      expect(seen.delivered).toEqual(['127.0.0.2']);
      expect(seen.refused).toEqual([expect.stringMatching(/^127\.0\.0\.1: peer 127\.0\.0\.1:\d+ is not 127\.0\.0\.2/)]);
    } finally {
      for (const c of conns) c.abort();
      for (const { socket } of senders) socket.close();
      await listener.stop();
    }
  });
});
