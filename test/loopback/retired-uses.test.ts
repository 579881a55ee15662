/**
 * `sendto` and `upgrade` are not uses: no path of the library sends a
 * datagram to a destination of its own choosing or upgrades an HTTP
 * connection, so a grant for either could only ever be a grant that nothing
 * checks. A policy naming one is refused whole (on reload the previous
 * revision stays), a request for one is denied, and neither opens anything:
 * the loopback listeners they name see zero datagrams and zero connections,
 * through `initiate()`, through the guard and through the scope's network.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { PolicyParseError } from '../../src/policy/grammar.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver } from '../../transports/websocket/index.js';

const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

async function udpListener(): Promise<{ port: number; datagrams: number }> {
  const l = { port: 0, datagrams: 0 };
  const socket = createSocket('udp4');
  socket.on('message', () => l.datagrams++);
  await new Promise<void>((r) => socket.bind(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => socket.close(() => r())));
  l.port = socket.address().port;
  return l;
}

async function tcpListener(): Promise<{ port: number; connections: number }> {
  const l = { port: 0, connections: 0 };
  const sockets = new Set<Socket>();
  const server = createServer((s) => {
    l.connections++;
    sockets.add(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => { for (const s of sockets) s.destroy(); server.close(() => r()); }));
  l.port = (server.address() as { port: number }).port;
  return l;
}

const settle = (): Promise<void> => new Promise((r) => setTimeout(r, 50));

describe('sendto and upgrade are not uses', () => {
  it('a policy granting sendto or upgrade is refused; the old revision stays and nothing reaches the listeners', async () => {
    const udp = await udpListener();
    const ws = await tcpListener();
    const host = new Host();
    cleanups.push(() => host.close());
    const revision = host.setPolicy('old', 'allow tcp://192.0.2.1:1');
    for (const rule of [`allow sendto:udp://127.0.0.1:${udp.port}`, `allow upgrade:ws://127.0.0.1:${ws.port}`, `allow connect,sendto,upgrade:*://@loopback:*`]) {
      expect(() => host.setPolicy('old', rule)).toThrow(PolicyParseError);
      expect(() => host.setPolicy(`new-${rule.length}`, { allow: [rule.slice('allow '.length)] })).toThrow(PolicyParseError);
    }
    expect(host.policy('old')?.revision).toBe(revision);
    const scope = await host.tenant('old');
    const udpConn = new Preconnection({
      scope, remote: { ipAddress: '127.0.0.1', port: udp.port }, drivers: [udpDriver], security: SecurityParameters.disabled(),
      properties: TransportProperties.unreliableDatagram(),
    }).initiate();
    await expect(udpConn).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    const wsConn = new Preconnection({
      scope, remote: `ws://127.0.0.1:${ws.port}/`, drivers: [wsDriver], security: SecurityParameters.disabled(), properties: TransportProperties.reliableMessage(),
    }).initiate();
    await expect(wsConn).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    // Asked directly, the guard denies them as malformed requests and mints nothing.
    await expect(scope.guard.authorize({ use: 'sendto' as never, protocol: 'udp', address: '127.0.0.1', port: udp.port })).rejects.toThrow();
    expect(await scope.guard.decide({ use: 'upgrade' as never, protocol: 'ws', url: `ws://127.0.0.1:${ws.port}/` })).toMatchObject({ allow: false, code: 'policy-error' });
    expect(scope.guard.decideSync({ use: 'sendto' as never, protocol: 'udp', address: '127.0.0.1', port: udp.port })).toMatchObject({ allow: false });
    await settle();
    expect(udp.datagrams).toBe(0);
    expect(ws.connections).toBe(0);
  });
});
