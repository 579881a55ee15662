/**
 * The udp driver over real loopback sockets (127.0.0.1 and ::1, port 0):
 * connected datagrams, message boundaries and size limits, the listener's
 * per-peer demultiplexing, soft errors from ICMP, and a 50k-datagram blast
 * with the default 4 MiB receive buffer.
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransportChannel } from '../../src/driver.js';
import { TransportProperties } from '../../src/properties.js';
import { udpDriver, type DatagramChannel } from '../../transports/udp/index.js';
import { checked, connectAttempt, listenAttempt, scopeFor } from '../helpers/policy.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, waitFor, type EchoServer } from '../compliance/harness.js';

const scope = scopeFor();
const BLAST = 50_000;

async function closedUdpPort(address: string): Promise<number> {
  const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  const { port } = s.address();
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe.each(['127.0.0.1', '::1'])('udp over %s', (address) => {
  const family = address.includes(':') ? 6 : 4;
  let server: EchoServer;
  beforeAll(async () => {
    server = await driverEchoServer(udpDriver, scope, address);
  });
  afterAll(async () => {
    await server.close();
  });

  const connect = async (port = server.port, init: Parameters<typeof connectAttempt>[2] = {}) =>
    scope.network.connect(udpDriver, connectAttempt(scope, await checked(scope, { protocol: 'udp', address, port }), init));

  it('connects, echoes datagrams and keeps their boundaries', async () => {
    const ch = await connect();
    expect(ch.framing).toBe('message');
    expect(ch.remote).toEqual({ address, port: server.port, family });
    expect(ch.maxMessageSize).toBe(family === 6 ? 65527 : 65507);
    expect(ch.singularTransmissionMsgMaxLen).toBe(ch.maxMessageSize); // loopback MTU 65536
    expect(ch.info['recvBufferSize']).toBeGreaterThanOrEqual(4 * 1024 * 1024);
    const rx = new Collector();
    ch.start(rx);
    const sizes = [1, 100, 1400, 8000, 30000, ch.maxMessageSize];
    for (const [i, n] of sizes.entries()) ch.send(Buffer.alloc(n, i + 1), {}, () => {});
    await rx.untilMessages(sizes.length);
    expect(rx.chunks.map((c) => c.byteLength).sort((a, b) => a - b)).toEqual(sizes);
    for (const c of rx.chunks) expect(new Set(c).size).toBe(1);
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
    expect(rx.hasEnded).toBe(false);
  });

  it('a message over the limit fails with ERR_TAPS_MESSAGE_TOO_LARGE; the channel stays usable', async () => {
    const ch = await connect();
    const rx = new Collector();
    ch.start(rx);
    const errs: (Error | undefined)[] = [];
    ch.send(Buffer.alloc(ch.maxMessageSize + 1), {}, (e) => errs.push(e));
    ch.send(Buffer.alloc(1024 * 1024), {}, (e) => errs.push(e));
    await waitFor(() => errs.length === 2);
    expect(errs).toMatchObject([{ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' }, { code: 'ERR_TAPS_MESSAGE_TOO_LARGE' }]);
    ch.send(Buffer.from('ok'), {}, () => {});
    await rx.untilMessages(1);
    ch.abort();
    expect(await rx.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
  });

  it('pathMtu sets singularTransmissionMsgMaxLen (Ethernet: 1472 / 1452)', async () => {
    const ch = await connect(server.port, { options: { pathMtu: 1500 } });
    expect(ch.singularTransmissionMsgMaxLen).toBe(family === 6 ? 1452 : 1472);
    ch.abort();
  });

  it('the udp.recvBufferSize property sizes the receive buffer', async () => {
    const ch = await connect(server.port, { properties: new TransportProperties({ 'udp.recvBufferSize': 256 * 1024 }) });
    expect(ch.info['recvBufferSize']).toBe(512 * 1024); // Linux doubles the request
    ch.abort();
  });

  it('ICMP port unreachable is a soft error, not a failure', async () => {
    const ch = await connect(await closedUdpPort(address));
    const rx = new Collector();
    ch.start(rx);
    ch.send(Buffer.from('anyone?'), {}, () => {});
    await rx.until(() => rx.softErrors.length > 0, 'a soft error');
    expect(rx.softErrors[0]).toMatchObject({ cause: { code: 'ECONNREFUSED' } });
    expect(rx.hasClosed).toBe(false);
    const sent: (Error | undefined)[] = [];
    ch.send(Buffer.from('still?'), {}, (e) => sent.push(e));
    await waitFor(() => sent.length === 1);
    expect(sent).toEqual([undefined]);
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
  });

  it('a final message ends sending', async () => {
    const ch = await connect();
    ch.start(new Collector());
    const errs = new Map<string, Error | undefined>();
    ch.send(Buffer.from('last'), { final: true }, (e) => errs.set('last', e));
    ch.send(Buffer.from('more'), {}, (e) => errs.set('more', e));
    await waitFor(() => errs.size === 2);
    expect(errs.get('last')).toBeUndefined();
    expect(errs.get('more')).toMatchObject({ code: 'ERR_TAPS_INVALID_STATE' });
    await ch.close();
  });

  it('the listener makes one channel per peer, buffers datagrams before start(), and closes its socket after the last channel', async () => {
    const before = handleCounts();
    const listener = await scope.network.listen(udpDriver, await listenAttempt(scope, 'udp', address));
    const a = await connect(listener.local.port);
    const b = await connect(listener.local.port);
    a.start(new Collector());
    b.start(new Collector());
    a.send(Buffer.from('a1'), {}, () => {});
    a.send(Buffer.from('a2'), {}, () => {});
    b.send(Buffer.from('b1'), {}, () => {});
    const peers: TransportChannel[] = [];
    await new Promise((r) => setTimeout(r, 20));
    listener.start({ connection: (c) => peers.push(c), error: () => {} });
    expect(peers.map((p) => p.remote.port).sort()).toEqual([a.local.port, b.local.port].sort());
    const rxA = new Collector();
    const peerA = peers.find((p) => p.remote.port === a.local.port) as TransportChannel;
    const peerB = peers.find((p) => p.remote.port === b.local.port) as TransportChannel;
    peerA.start(rxA);
    await rxA.untilMessages(2);
    expect(rxA.chunks.map((c) => Buffer.from(c).toString())).toEqual(['a1', 'a2']);
    // Replies go to the right peer.
    const rxB = new Collector();
    b.abort();
    const b2 = await connect(listener.local.port);
    b2.start(rxB);
    peerA.send(Buffer.from('to a'), {}, () => {});
    await listener.close();
    // Closing a peer channel keeps the shared socket for the other.
    await peerB.close();
    a.abort();
    await peerA.close();
    b2.abort();
    expect(await extraHandles(before)).toEqual([]);
  });

  it('idleTimeout closes a quiet peer channel with ERR_TAPS_TIMEOUT', async () => {
    const listener = await scope.network.listen(udpDriver, await listenAttempt(scope, 'udp', address, 0, { options: { idleTimeout: 30 } }));
    const rx = new Collector();
    listener.start({ connection: (c) => c.start(rx), error: () => {} });
    const ch = await connect(listener.local.port);
    ch.start(new Collector());
    ch.send(Buffer.from('hi'), {}, () => {});
    expect(await rx.untilClosed()).toMatchObject({ code: 'ERR_TAPS_TIMEOUT' });
    await listener.close();
    ch.abort();
  });

  it(`a ${BLAST}-datagram blast arrives without loss with the default 4 MiB receive buffer`, async () => {
    const listener = await scope.network.listen(udpDriver, await listenAttempt(scope, 'udp', address));
    const rx = new Collector();
    let peer: TransportChannel | undefined;
    listener.start({ connection: (c) => { peer = c; c.start(rx); }, error: () => {} });
    const ch = (await connect(listener.local.port)) as DatagramChannel;
    const msg = Buffer.alloc(512, 7);
    const started = performance.now();
    let sent = 0;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (sent < BLAST) {
          sent++;
          // false: wait for drain (sends not yet handed to the OS above the high-water mark).
          if (!ch.send(msg, {}, () => {})) return;
        }
        resolve();
      };
      const crx = new Collector();
      crx.drain = pump;
      ch.start(crx);
      pump();
    });
    await rx.untilMessages(BLAST);
    const seconds = (performance.now() - started) / 1000;
    console.log(`udp blast over ${address}: ${rx.chunks.length}/${BLAST} datagrams of 512 B in ${seconds.toFixed(2)} s (${Math.round(BLAST / seconds)}/s), dropped in queue: ${(peer as DatagramChannel).dropped}`);
    expect(rx.chunks.length).toBe(BLAST);
    await listener.close();
    await peer?.close();
    ch.abort();
  });
});

