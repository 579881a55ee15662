/**
 * The byte budget against a message whose length lies (`limit sent`), over real loopback TCP and UDP: a
 * guest holding only its Connection sends a Uint8Array whose `byteLength` and `length` say 0, from a
 * subclass's getters or an own property on the instance. The wire carries every byte, so the budget
 * must be charged every byte: the send that does not fit is refused and the peer never receives it,
 * through the Connection and through the library's TCP, UDP and WebSocket channels held by a guest's own driver.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { Connection } from '../../src/connection/connection.js';
import type { ConnectAttempt, Driver } from '../../src/driver.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { wsDriver } from '../../transports/websocket/index.js';
import { quotaTenants } from '../helpers/tenants.js';

const { cleanups, tenant } = quotaTenants('slen', 'allow tcp://@loopback:*\nallow udp://@loopback:*\nallow ws://@loopback:*');
const BUDGET = 1024;
const SIZE = 800; // one fits the budget, two do not

let tcp: Server;
let udp: UdpSocket;
let ws: WebSocketServer;
let received = 0;
const sockets = new Set<Socket>();

beforeAll(async () => {
  tcp = createServer((s) => {
    sockets.add(s);
    s.on('data', (d: Buffer) => (received += d.length));
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r));
  udp = createSocket('udp4');
  udp.on('message', (m) => (received += m.length));
  await new Promise<void>((r) => udp.bind(0, '127.0.0.1', r));
  ws = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  ws.on('connection', (c) => c.on('message', (m: Buffer) => (received += m.length)));
  await new Promise<void>((r) => ws.once('listening', () => r()));
  cleanups.push(() => new Promise<void>((r) => tcp.close(() => r())), () => new Promise<void>((r) => udp.close(() => r())));
  cleanups.push(() => new Promise<void>((r) => {
    for (const c of ws.clients) c.terminate();
    ws.close(() => r());
  }));
});

afterAll(() => {
  for (const s of sockets) s.destroy();
});

/** A Uint8Array of `n` bytes saying it has none: a subclass's getters. */
class Shrunk extends Uint8Array {
  override get byteLength(): number {
    return 0;
  }
  override get length(): number {
    return 0;
  }
}

/** A plain Uint8Array of `n` bytes with own `byteLength` and `length` saying 0. */
function shrunkInstance(n: number): Uint8Array {
  const b = new Uint8Array(n).fill(0x78);
  Object.defineProperty(b, 'byteLength', { get: () => 0 });
  Object.defineProperty(b, 'length', { get: () => 0 });
  return b;
}

/** A Buffer of `n` bytes whose own `byteLength` says 0 (a stream writes a Buffer's memory as it is). */
function shrunkBuffer(n: number): Uint8Array {
  const b = Buffer.alloc(n, 0x78);
  Object.defineProperty(b, 'byteLength', { get: () => 0 });
  return b;
}

const LIARS: [string, (n: number) => Uint8Array][] = [
  ['a subclass whose byteLength and length getters say 0', (n) => new Shrunk(n).fill(0x78)],
  ['an instance with own byteLength and length properties saying 0', shrunkInstance],
  ['a Buffer with an own byteLength saying 0', shrunkBuffer],
];

async function dial(driver: Driver, port: number, limits: string): Promise<Connection> {
  const { scope } = await tenant(limits);
  const props = driver.id === udpDriver.id ? TransportProperties.unreliableDatagram() : driver.id === wsDriver.id ? TransportProperties.reliableMessage() : TransportProperties.reliableInorderStream();
  const remote = driver.id === wsDriver.id ? { url: `ws://127.0.0.1:${port}/` } : { ipAddress: '127.0.0.1', port };
  return new Preconnection({ scope, remote, properties: props, security: SecurityParameters.disabled(), drivers: [driver] }).initiate();
}

function portOf(driver: Driver): number {
  if (driver.id === udpDriver.id) return udp.address().port;
  return ((driver.id === wsDriver.id ? ws.address() : tcp.address()) as { port: number }).port;
}

async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setTimeout(r, 20));
}

describe('a message whose length lies is charged every byte it puts on the wire', () => {
  for (const [driverName, driver] of [['tcp', tcpDriver], ['udp', udpDriver]] as const) {
    for (const [what, make] of LIARS) {
      it(`${driverName}: ${what}`, async () => {
        const port = driver === udpDriver ? udp.address().port : (tcp.address() as { port: number }).port;
        const conn = await dial(driver, port, `limit sent ${BUDGET}B per 60s`);
        received = 0;
        const outcomes: string[] = [];
        try {
          for (let i = 0; i < 2; i++) {
            outcomes.push(await conn.send(make(SIZE)).then(() => 'sent', (e: { code?: string }) => e.code ?? 'error'));
          }
          await settle();
        } finally {
          conn.abort();
        }
        console.log(`${driverName} ${what}: ${outcomes.join(', ')}; the peer received ${received} bytes`);
        // The first is sent whole (the wire carries what the view holds), the second is over the budget.
        expect(outcomes).toEqual(['sent', 'ERR_TAPS_QUOTA_EXCEEDED']);
        expect(received).toBe(SIZE);
      });
    }
  }
});

describe("a guest driver sending on the library's channel itself", () => {
  for (const [driverName, inner] of [['tcp', tcpDriver], ['udp', udpDriver], ['ws', wsDriver]] as const) {
  for (const [what, make] of LIARS) {
    it(`${driverName}: ${what}: the channel charges what the socket sends`, async () => {
      const outcomes: string[] = [];
      let sends: Promise<void> | undefined;
      const sender: Driver = Object.freeze({
        ...inner,
        connect: async (a: ConnectAttempt) => {
          const ch = await inner.connect(a);
          const one = (): Promise<void> => new Promise<void>((r) => ch.send(make(SIZE), {}, (e) => r(void outcomes.push(e === undefined ? 'sent' : ((e as { code?: string }).code ?? 'error')))));
          sends = one().then(one);
          return ch;
        },
      });
      const conn = await dial(sender, portOf(inner), `limit sent ${BUDGET}B per 60s`);
      received = 0;
      try {
        await sends;
        await settle();
      } finally {
        conn.abort();
      }
      console.log(`guest driver, ${driverName}, ${what}: ${outcomes.join(', ')}; the peer received ${received} bytes`);
      expect(outcomes).toEqual(['sent', 'ERR_TAPS_QUOTA_EXCEEDED']);
      expect(received).toBe(SIZE);
    });
  }
  }
});
