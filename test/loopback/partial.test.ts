/**
 * A 1 GiB message through a length-prefix framer in partial mode (RFC 9622
 * §9.3.1, §9.3.2.2) over a real TCP connection: the peer (a plain `net`
 * server) writes one 4-byte header announcing 2^30 bytes, streams the body,
 * then a small message; the Connection reads it with
 * `receive({ minIncompleteLength, maxLength })` and holds a window of it, not
 * the message. RSS growth is printed, never asserted (that is a benchmark's
 * job); the test asserts every byte arrived in order and the next message
 * came whole after it. Then two Connections over loopback: a message sent in
 * pieces (§9.2.3) arrives as one, and a framer stack (§9.1.2) on both sides
 * keeps messages intact.
 */
import { createServer, type Server, type Socket } from 'node:net';
import type { Connection } from '../../src/connection/connection.js';
import type { MessageFramer } from '../../src/framers/index.js';
import { delimiterFramer } from '../../src/framers/index.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { scopeFor } from '../helpers/policy.js';

const GIB = 2 ** 30;
const MIB = 2 ** 20;
/** One MiB the peer writes again and again: byte i is i % 251, so a byte's value tells its place. */
const block = Buffer.alloc(MIB, 0).map((_, i) => i % 251);

let server: Server;
let port = 0;
const peers: Socket[] = [];

/** Write `n` bytes of `block` repeated, respecting the socket's backpressure. */
async function stream(socket: Socket, n: number): Promise<void> {
  for (let sent = 0; sent < n; sent += MIB) {
    if (!socket.write(block.subarray(0, Math.min(MIB, n - sent)))) await new Promise((r) => socket.once('drain', r));
  }
}

beforeAll(async () => {
  server = createServer((s) => {
    peers.push(s);
    s.on('error', () => {});
    void (async () => {
      const header = Buffer.alloc(4);
      header.writeUInt32BE(GIB, 0);
      s.write(header);
      await stream(s, GIB);
      s.write(Buffer.from([0, 0, 0, 4, 0x64, 0x6f, 0x6e, 0x65])); // 'done'
    })();
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of peers) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

describe('partial receive of a 1 GiB message (length-prefix framer)', () => {
  it('streams through in a window: every byte in order, then the next message whole', async () => {
    const pre = new Preconnection({
      scope: scopeFor(),
      remote: { ipAddress: '127.0.0.1', port },
      properties: TransportProperties.reliableMessage(),
      security: SecurityParameters.disabled(),
      framers: [lengthPrefixFramer({ maxMessageSize: 2 ** 32 - 1 })],
      drivers: [tcpDriver],
    });
    const conn = await pre.initiate();
    try {
      const rss0 = process.memoryUsage.rss();
      let peak = rss0;
      let got = 0;
      let pieces = 0;
      let misplaced = 0;
      const started = performance.now();
      for (;;) {
        const piece = await conn.receive({ minIncompleteLength: 64 * 1024, maxLength: MIB });
        const d = piece.data;
        if (d[0] !== (got % MIB) % 251 || d[d.byteLength - 1] !== ((got + d.byteLength - 1) % MIB) % 251) misplaced++;
        got += d.byteLength;
        pieces++;
        if (pieces % 256 === 0) peak = Math.max(peak, process.memoryUsage.rss());
        if (piece.endOfMessage) break;
      }
      const seconds = (performance.now() - started) / 1000;
      peak = Math.max(peak, process.memoryUsage.rss());
      console.log(
        `1 GiB in ${pieces} pieces, ${seconds.toFixed(1)} s (${(GIB / MIB / seconds).toFixed(0)} MiB/s); ` +
          `RSS ${(rss0 / MIB).toFixed(0)} MiB at start, peak growth ${((peak - rss0) / MIB).toFixed(1)} MiB`,
      );
      expect(got).toBe(GIB);
      expect(misplaced).toBe(0);
      const next = await conn.receive();
      expect([next.text(), next.partial]).toEqual(['done', false]);
    } finally {
      conn.abort();
    }
  }, 300_000);
});

describe('partial sends and framer stacks between two Connections over loopback TCP', () => {
  /** A listener and a client with the same framers; the accepted connection comes back too. */
  async function pair(framers: MessageFramer[]): Promise<{ client: Connection; server: Connection; stop(): Promise<void> }> {
    const common = { scope: scopeFor(), properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers, drivers: [tcpDriver] };
    const listener = await new Preconnection({ ...common, local: { ipAddress: '127.0.0.1', port: 0 } }).listen();
    try {
      const accepted = new Promise<Connection>((r) => listener.once('connectionReceived', r));
      const client = await new Preconnection({ ...common, remote: { ipAddress: '127.0.0.1', port: listener.port } }).initiate();
      const server = await accepted;
      return {
        client,
        server,
        stop: async () => {
          client.abort();
          server.abort();
          await listener.stop();
        },
      };
    } catch (err) {
      await listener.stop();
      throw err;
    }
  }

  it('pieces sent with endOfMessage false arrive as one message; the reader may take it in pieces', async () => {
    const { client, server, stop } = await pair([lengthPrefixFramer()]);
    try {
      await Promise.all([client.send('hel', { endOfMessage: false }), client.send('lo ', { endOfMessage: false }), client.send('world'), client.send('next')]);
      const first = await server.receive({ maxLength: 4 });
      const rest = await server.receive();
      const next = await server.receive();
      expect([first.text(), first.endOfMessage, rest.text(), rest.endOfMessage, next.text(), next.partial]).toEqual(['hell', false, 'o world', true, 'next', false]);
    } finally {
      await stop();
    }
  });

  it('framers [lengthPrefix, delimiter] on both sides: each line in its own length-prefixed frame, messages intact', async () => {
    const { client, server, stop } = await pair([lengthPrefixFramer(), delimiterFramer()]);
    try {
      await client.send('one');
      await client.send('two');
      const got = [await server.receive(), await server.receive()].map((m) => m.text());
      expect(got).toEqual(['one', 'two']);
    } finally {
      await stop();
    }
  });
});
