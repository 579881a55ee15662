/**
 * What a connection was made from stays what it was made from (RFC 9622 §6,
 * §7.4): clone() after the Preconnection was edited dials the original
 * endpoint with the original properties, and initiateWithSend sends the
 * first message with exactly the context the caller gave (RFC 9622 §9.2.5).
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { createScope } from '../../src/policy/chokepoint.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';

const scope = createScope({ tenant: 'snapshot', policy: { decide: () => ({ allow: true, rule: 'test' }) } });
const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A plain net server counting its accepted sockets. */
async function server(): Promise<{ port: number; accepted: Socket[] }> {
  const accepted: Socket[] = [];
  const srv: Server = createServer((s) => {
    accepted.push(s);
    s.on('error', () => {});
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  cleanups.push(() => new Promise<void>((r) => {
    for (const s of accepted) s.destroy();
    srv.close(() => r());
  }));
  return { port: (srv.address() as { port: number }).port, accepted };
}

describe('snapshots', () => {
  it('clone() reuses the original connection snapshot, not the edited Preconnection', async () => {
    const a = await server();
    const b = await server();
    const pre = new Preconnection({
      scope, drivers: [tcpDriver], remote: { ipAddress: '127.0.0.1', port: a.port },
      properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()],
    });
    const conn = await pre.initiate();
    cleanups.push(() => conn.abort());
    pre.remote = pre.remote!.withPort(b.port);
    pre.properties.set('preserveMsgBoundaries', 'prohibit');
    pre.framers = [];
    const clone: Connection = await conn.clone();
    cleanups.push(() => clone.abort());
    expect(clone.remote.port).toBe(a.port);
    expect(b.accepted).toHaveLength(0);
    expect(clone.transportProperties.preserveMsgBoundaries).toBe(true);
    expect(conn.groupedConnections()).toEqual([conn, clone]);
    const again = await clone.clone(); // a clone of a clone: still the first snapshot
    cleanups.push(() => again.abort());
    expect(again.remote.port).toBe(a.port);
  });

  it('initiateWithSend sends the first message with the caller\'s context only: never marked safelyReplayable for them', async () => {
    const a = await server();
    const pre = new Preconnection({
      scope, drivers: [tcpDriver], remote: { ipAddress: '127.0.0.1', port: a.port },
      properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()],
    });
    const contexts: unknown[] = [];
    const conn = await pre.initiateWithSend('hello');
    cleanups.push(() => conn.abort());
    conn.on('sent', (ctx) => contexts.push(ctx));
    await new Promise((r) => setTimeout(r, 20));
    expect(contexts).toHaveLength(1);
    expect(contexts[0]).not.toHaveProperty('safelyReplayable');
    await expect(pre.initiateWithSend('x', { msgPriority: -1 })).rejects.toThrow(RangeError);
  });
});
