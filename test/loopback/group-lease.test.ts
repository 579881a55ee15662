/**
 * A connection's quota lease when its group is made late or never (RFC 9622 §7.4 groups), over real
 * loopback TCP connections: a connection that never used a group feature gives its lease back itself at
 * close, exactly once; group features used after the close (members, closeGroup, abortGroup, clone) take
 * nothing and give nothing back twice; a clone adopted into a group made at clone() time holds its own unit.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { quotaTenants, type TestTenant } from '../helpers/tenants.js';

const { host, cleanups, tenant } = quotaTenants('glease', 'allow tcp://@loopback:*');
let server: Server;
let port = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  server = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
  cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
});

afterAll(() => {
  for (const s of sockets) s.destroy();
});

function dial(t: TestTenant): Promise<Connection> {
  return new Preconnection({
    scope: t.scope, remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(), security: SecurityParameters.disabled(), drivers: [tcpDriver],
  }).initiate();
}

const held = (t: TestTenant): number => host.usage(t.id).connections;

describe('a connection without a group gives its own lease back at close', () => {
  it('once: group features after the close neither take a unit nor give one back again, and the one unit serves the next connection', async () => {
    const t = await tenant('limit connections 1');
    const a = await dial(t);
    expect(held(t)).toBe(1);
    await a.close();
    expect(held(t)).toBe(0);
    // The group made now, after the close: it holds nothing of the lease the connection gave back.
    expect(a.groupedConnections()).toEqual([]);
    await a.closeGroup();
    a.abortGroup(new Error('after close'));
    await expect(a.clone()).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    a.abort();
    expect(held(t)).toBe(0);
    const b = await dial(t);
    expect(held(t)).toBe(1);
    // A third is over the limit: b's unit is still counted (no second release of a's freed it).
    await expect(dial(t)).rejects.toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    b.abort();
    expect(held(t)).toBe(0);
  });

  it('a clone made as a separate connection into a group made at clone(): each holds its own unit and gives it back once', async () => {
    const t = await tenant('limit connections 2');
    const a = await dial(t);
    const c = await a.clone();
    expect(held(t)).toBe(2);
    expect(new Set(a.groupedConnections())).toEqual(new Set([a, c]));
    await expect(a.clone()).rejects.toMatchObject({ code: 'ERR_TAPS_QUOTA_EXCEEDED' });
    await c.close();
    expect(held(t)).toBe(1);
    expect(a.groupedConnections()).toEqual([a]);
    await a.closeGroup();
    expect(held(t)).toBe(0);
    c.abortGroup();
    expect(c.groupedConnections()).toEqual([]);
    expect(held(t)).toBe(0);
  });
});
