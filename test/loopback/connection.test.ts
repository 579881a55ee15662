/**
 * The Connection API over the real tcp, tls and udp drivers on 127.0.0.1 and
 * ::1: Preconnection.initiate() against Preconnection.listen(), messages both
 * ways through the framer, final, close and abort as the peer sees them,
 * receive backpressure end to end, UDP listeners (one connection per peer),
 * the listener's connection limit and stop(). The leak guard checks that no
 * socket or timer is left.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { TapsError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { Listener, ListenOptions } from '../../src/listener.js';
import { createScope } from '../../src/policy/index.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { testCertificate } from '../helpers/certs.js';

type Stack = 'tcp' | 'tls' | 'udp';
const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const scope = createScope({ tenant: 'loopback', policy: allow });
const drivers = [tcpDriver, tlsDriver, udpDriver];
const cert = testCertificate({ kind: 'ec' });
const TIMEOUT = 5000;

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function profile(stack: Stack) {
  switch (stack) {
    case 'tcp':
      return { properties: TransportProperties.reliableMessage(), server: SecurityParameters.disabled(), client: SecurityParameters.disabled(), framers: [lengthPrefixFramer()] };
    case 'tls':
      return {
        properties: TransportProperties.reliableMessage(),
        server: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
        client: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
        framers: [lengthPrefixFramer()],
      };
    case 'udp':
      return { properties: TransportProperties.unreliableDatagram(), server: SecurityParameters.disabled(), client: SecurityParameters.disabled(), framers: [] };
  }
}

/** A listener whose connections are handed to `handle` and aborted after the test. */
async function serve(stack: Stack, host: string, handle: (c: Connection) => Promise<void> | void, options: ListenOptions = {}): Promise<Listener> {
  const p = profile(stack);
  const pre = new Preconnection({ scope, local: { ipAddress: host, port: 0 }, properties: p.properties, security: p.server, framers: p.framers, drivers });
  const listener = await pre.listen(options);
  cleanups.push(() => listener.stop());
  listener.on('connectionReceived', (c) => {
    cleanups.push(() => c.abort());
    void (async () => {
      try {
        await handle(c);
      } catch {
        /* the test looks at what the client saw */
      }
    })();
  });
  return listener;
}

async function dial(stack: Stack, host: string, port: number): Promise<Connection> {
  const p = profile(stack);
  const pre = new Preconnection({ scope, remote: { ipAddress: host, port }, properties: p.properties, security: p.client, framers: p.framers, drivers });
  const conn = await pre.initiate({ signal: AbortSignal.timeout(TIMEOUT) });
  cleanups.push(() => conn.abort());
  return conn;
}

async function echo(c: Connection): Promise<void> {
  for await (const m of c) await c.send(m.data);
  await c.close();
}

const pattern = (n: number, seed: number): Uint8Array => {
  const b = Buffer.allocUnsafe(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed) & 0xff;
  return b;
};

/** Wait until `fn` is true (event-driven tests that need the other side to catch up). */
async function until(fn: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + TIMEOUT;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

describe.each(['127.0.0.1', '::1'])('Connection over loopback %s', (host) => {
  describe.each(['tcp', 'tls', 'udp'] as const)('%s', (stack) => {
    it('initiate() reaches listen(): messages of many sizes both ways, one `sent` per send, then close()', async () => {
      const listener = await serve(stack, host, echo);
      const conn = await dial(stack, host, listener.port);
      expect(conn.stack[0]).toBe(stack);
      expect(conn.remote).toMatchObject({ address: host, port: listener.port, family: host.includes(':') ? 6 : 4 });
      expect(conn.state).toBe('established');
      let sent = 0;
      conn.on('sent', () => sent++);
      const sizes = stack === 'udp' ? [0, 1, 1200, 8000, 60_000] : [0, 1, 1200, 70_000, 1 << 20];
      for (const [i, n] of sizes.entries()) {
        const payload = pattern(n, i);
        await conn.send(payload, stack === 'udp' ? { safelyReplayable: true } : { msgPriority: i });
        const got = await conn.receive({ signal: AbortSignal.timeout(TIMEOUT) });
        expect(got.byteLength).toBe(n);
        expect(Buffer.from(got.data).equals(Buffer.from(payload))).toBe(true);
      }
      expect(sent).toBe(sizes.length);
      await conn.close();
      expect(conn.state).toBe('closed');
      expect(conn.canSend).toBe(false);
    });

    it('an oversized message is refused without reaching the peer, and the connection stays usable', async () => {
      const listener = await serve(stack, host, echo);
      const conn = await dial(stack, host, listener.port);
      const max = conn.sendMsgMaxLen;
      expect(max).toBe(stack === 'udp' ? (host.includes(':') ? 65527 : 65507) : 16 * 1024 * 1024);
      await expect(conn.send(new Uint8Array(max + 1))).rejects.toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
      await conn.send('still fine');
      expect((await conn.receive({ signal: AbortSignal.timeout(TIMEOUT) })).text()).toBe('still fine');
      await conn.close();
    });
  });

  describe.each(['tcp', 'tls'] as const)('%s (a byte stream with the length-prefix framer)', (stack) => {
    it('a final message half-closes: the peer reads it, sees the end, and can still answer', async () => {
      const listener = await serve(stack, host, async (c) => {
        const got: string[] = [];
        for await (const m of c) got.push(m.text());
        await c.send(`got ${got.join(',')}`);
        await c.close();
      });
      const conn = await dial(stack, host, listener.port);
      let ended = 0;
      conn.on('receivedEnd', () => ended++);
      await conn.send('a');
      await conn.send('b');
      await conn.send('c', { final: true });
      expect(conn.canSend).toBe(false);
      const replies: string[] = [];
      for await (const m of conn) replies.push(m.text());
      expect(replies).toEqual(['got a,b,c']);
      expect(ended).toBe(1);
      await conn.close();
    });

    it('close() sends everything queued before the end; the peer counts every byte', async () => {
      let total = 0;
      let count = 0;
      let peerDone = false;
      const listener = await serve(stack, host, async (c) => {
        for await (const m of c) {
          total += m.byteLength;
          count++;
        }
        peerDone = true;
        await c.close();
      });
      const conn = await dial(stack, host, listener.port);
      const chunk = new Uint8Array(64 * 1024);
      const sends = Array.from({ length: 64 }, () => conn.send(chunk));
      await conn.close();
      await Promise.all(sends);
      await until(() => peerDone, 'the peer to see the end');
      expect(count).toBe(64);
      expect(total).toBe(64 * 64 * 1024);
    });

    it('abort() tears the connection down: the peer sees it fail, the local side ends quietly', async () => {
      let peerError: TapsError | undefined;
      let peerClosed = false;
      let accepted = false;
      let peerEnded = false;
      const listener = await serve(stack, host, (c) => {
        accepted = true;
        c.on('connectionError', (e) => (peerError = e));
        c.on('closed', () => (peerClosed = true));
        c.on('receivedEnd', () => (peerEnded = true));
      });
      const conn = await dial(stack, host, listener.port);
      await until(() => accepted, 'the server side');
      const localErrors: string[] = [];
      conn.on('connectionError', (e) => localErrors.push(e.code));
      const reading = conn[Symbol.asyncIterator]().next();
      conn.abort();
      expect(await reading).toEqual({ value: undefined, done: true });
      expect(localErrors).toEqual(['ERR_TAPS_CONNECTION_ABORTED']);
      if (stack === 'tcp') {
        await until(() => peerError !== undefined, 'the peer to see the reset');
        expect(peerError?.code).toBe('ERR_TAPS_CONNECTION_RESET');
        expect(peerClosed).toBe(false); // RFC 9622 §11: ConnectionError or Closed, never both
      } else {
        // TLS is destroyed without RST under Node 20 (see transports/kit/socket-channel.ts): the peer sees the stream end.
        await until(() => peerClosed || peerEnded || peerError !== undefined, 'the peer to see the end');
      }
    });
  });
});

describe('receive backpressure end to end (tcp)', () => {
  it('a reader that does not read stops the sender; reading lets everything through', async () => {
    const N = 48;
    const payload = new Uint8Array(1 << 20);
    let sent = 0;
    let sender: Connection | undefined;
    const listener = await serve('tcp', '127.0.0.1', async (c) => {
      sender = c;
      c.on('sent', () => sent++);
      for (let i = 0; i < N; i++) void c.send(payload);
      for await (const _ of c); // until the reader's FIN
      await c.close();
    });
    const conn = await dial('tcp', '127.0.0.1', listener.port);
    await until(() => sender !== undefined && sent > 0, 'the first sends');
    // Let the sender run until it stalls: the kernel's buffers and our inbox (4 MiB) are full, so the peer's writes wait.
    let last = -1;
    while (sent !== last) {
      last = sent;
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(sent).toBeLessThan(N);
    let received = 0;
    for await (const m of conn) {
      expect(m.byteLength).toBe(1 << 20);
      if (++received === N) break;
    }
    expect(received).toBe(N);
    await until(() => sent === N, 'every send to complete');
    await conn.close();
  });
});

describe('listeners', () => {
  it.each(['127.0.0.1', '::1'])('UDP on %s gives one connection per remote address, and answers go back to that peer', async (host) => {
    const accepted: Connection[] = [];
    const listener = await serve('udp', host, async (c) => {
      accepted.push(c);
      for await (const m of c) await c.send(`${c.remote.port}:${m.text()}`);
    });
    const a = await dial('udp', host, listener.port);
    const b = await dial('udp', host, listener.port);
    expect(a.local.port).not.toBe(b.local.port);
    for (let i = 0; i < 3; i++) {
      await a.send(`a${i}`);
      await b.send(`b${i}`);
    }
    const read = async (c: Connection): Promise<string[]> => {
      const out: string[] = [];
      for (let i = 0; i < 3; i++) out.push((await c.receive({ signal: AbortSignal.timeout(TIMEOUT) })).text());
      return out;
    };
    expect(await read(a)).toEqual([0, 1, 2].map((i) => `${a.local.port}:a${i}`));
    expect(await read(b)).toEqual([0, 1, 2].map((i) => `${b.local.port}:b${i}`));
    expect(accepted).toHaveLength(2);
    expect(new Set(accepted.map((c) => c.remote.port))).toEqual(new Set([a.local.port, b.local.port]));
  });

  it('a connection limit refuses extra TCP peers (reset) and reports them', async () => {
    const accepted: Connection[] = [];
    const listener = await serve('tcp', '127.0.0.1', (c) => void accepted.push(c), { connectionLimit: 1 });
    const refused: string[] = [];
    listener.on('refused', (_peer, reason) => refused.push(reason));
    const first = await dial('tcp', '127.0.0.1', listener.port);
    await until(() => accepted.length === 1, 'the first connection');
    // The kernel completes the handshake, then the listener resets it: before or after initiate() resolves.
    const second = await dial('tcp', '127.0.0.1', listener.port)
      .then((c) => c.receive({ signal: AbortSignal.timeout(TIMEOUT) }))
      .then(() => undefined, (e: TapsError) => e);
    expect(['ERR_TAPS_CONNECTION_RESET', 'ERR_TAPS_ESTABLISHMENT_FAILED']).toContain(second?.code);
    if (second?.code === 'ERR_TAPS_ESTABLISHMENT_FAILED') expect(second.message).toContain('ECONNRESET');
    await until(() => refused.length === 1, 'the refusal to be reported');
    expect(refused).toEqual(['connection limit reached']);
    expect(accepted).toHaveLength(1);
    expect(first.state).toBe('established');
    listener.setNewConnectionLimit(1);
    await dial('tcp', '127.0.0.1', listener.port);
    await until(() => accepted.length === 2, 'a connection after raising the limit');
  });

  it('a connection limit refuses extra UDP peers', async () => {
    const accepted: Connection[] = [];
    const listener = await serve('udp', '::1', (c) => void accepted.push(c), { connectionLimit: 1 });
    const refused: string[] = [];
    listener.on('refused', (peer) => refused.push(String(peer.port)));
    const first = await dial('udp', '::1', listener.port);
    await first.send('hello');
    await until(() => accepted.length === 1, 'the first peer');
    const second = await dial('udp', '::1', listener.port);
    await second.send('hello');
    await until(() => refused.length === 1, 'the second peer to be refused');
    expect(refused).toEqual([String(second.local.port)]);
    expect(accepted).toHaveLength(1);
    expect(accepted[0]!.remote.port).toBe(first.local.port);
  });

  it('stop(): no new connections; connections already made keep working', async () => {
    const listener = await serve('tcp', '127.0.0.1', echo);
    const conn = await dial('tcp', '127.0.0.1', listener.port);
    let stopped = 0;
    listener.on('stopped', () => stopped++);
    await listener.stop();
    await listener.stop(); // idempotent
    expect(stopped).toBe(1);
    await expect(dial('tcp', '127.0.0.1', listener.port)).rejects.toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    await conn.send('after stop');
    expect((await conn.receive({ signal: AbortSignal.timeout(TIMEOUT) })).text()).toBe('after stop');
    await conn.close();
  });

  it('for await over a listener yields connections and ends at stop()', async () => {
    const p = profile('tcp');
    const pre = new Preconnection({ scope, local: { ipAddress: '::1', port: 0 }, properties: p.properties, security: p.server, framers: p.framers, drivers });
    const listener = await pre.listen();
    cleanups.push(() => listener.stop());
    const client = await dial('tcp', '::1', listener.port);
    const seen: Connection[] = [];
    for await (const c of listener) {
      cleanups.push(() => c.abort());
      seen.push(c);
      break; // return() stops the listener
    }
    expect(seen).toHaveLength(1);
    await client.send('x');
    expect((await seen[0]!.receive({ signal: AbortSignal.timeout(TIMEOUT) })).text()).toBe('x');
    await Promise.all([client.close(), seen[0]!.close()]);
  });
});
