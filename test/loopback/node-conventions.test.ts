/**
 * Connections and listeners the Node way, over real loopback TCP with a
 * length-prefix framer against an echo listener:
 * - `events.once` / `events.on` work and clean up (no "must be an instance
 *   of EventEmitter" when the iterator ends; no listener left behind);
 * - `connectionDuplex(conn)` in `stream.pipeline`, 2 MiB echoed intact, and
 *   it reads only on demand (an unread Duplex holds at most one message);
 * - `connectionStreams(conn)` as Web Streams, through `TextDecoderStream`;
 * - a signal from `AbortSignal.timeout()` ends `initiate()` and `receive()`
 *   with ERR_TAPS_TIMEOUT (its TimeoutError as `cause`), any other abort with
 *   ERR_TAPS_ABORTED, as docs/errors.md says.
 */
import { createHash, randomBytes } from 'node:crypto';
import { on, once, type EventEmitter } from 'node:events';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Host, Preconnection, SecurityParameters, TransportProperties, connectionDuplex, connectionStreams, lengthPrefixFramer, type Connection, type Listener } from '../../src/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';

const host = new Host();
host.setPolicy('t', 'allow tcp://@loopback:*\nallow bind:tcp://@loopback:*\nallow accept:tcp://@loopback:*');
const common = { properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()], drivers: [tcpDriver] };
let listener: Listener;
const accepted = new Set<Connection>();

beforeAll(async () => {
  listener = await new Preconnection({ ...common, scope: await host.tenant('t'), local: { ipAddress: '127.0.0.1', port: 0 } }).listen();
  listener.on('connectionReceived', async (c) => {
    accepted.add(c);
    c.on('closed', () => accepted.delete(c));
    try {
      for await (const m of c) await c.send(m.data);
      await c.close();
    } catch {
      /* a client that aborts resets the connection */
    }
  });
});
afterAll(async () => {
  for (const c of accepted) c.abort();
  await listener.stop();
  host.close();
});

async function connect(): Promise<Connection> {
  return new Preconnection({ ...common, scope: await host.tenant('t'), remote: { ipAddress: '127.0.0.1', port: listener.port } }).initiate({ timeout: 5000 });
}

describe('events.on / events.once', () => {
  it('work on connections and listeners and remove their listeners when done', async () => {
    // @types/node types these helpers for EventEmitter only: the cast is for the compiler, the run-time contract is met.
    const [[serverSide], conn] = await Promise.all([once(listener as unknown as EventEmitter, 'connectionReceived'), connect()]);
    expect(serverSide).toBeDefined();
    await conn.send('one');
    await conn.send('two');
    const got: string[] = [];
    const ac = new AbortController();
    for await (const [msg] of on(conn as unknown as EventEmitter, 'received', { signal: ac.signal })) {
      got.push(new TextDecoder().decode((msg as { data: Uint8Array }).data));
      if (got.length === 2) break; // ends the iterator: its cleanup must not throw
    }
    expect(got).toEqual(['one', 'two']);
    expect(conn.listenerCount('received')).toBe(0);
    const closed = once(conn as unknown as EventEmitter, 'closed');
    await conn.close();
    await closed;
    expect(conn.listenerCount('closed')).toBe(0);
  });

  it('a once() listener can be removed by the listener it wraps', async () => {
    const conn = await connect();
    const fn = () => {};
    conn.once('closed', fn);
    conn.removeListener('closed', fn);
    expect(conn.listenerCount('closed')).toBe(0);
    await conn.close();
  });
});

describe('connectionDuplex', () => {
  it('pipes 2 MiB through the connection and back intact', async () => {
    const conn = await connect();
    const chunks = Array.from({ length: 128 }, () => randomBytes(16 * 1024));
    const sent = createHash('sha256');
    for (const c of chunks) sent.update(c);
    const got = createHash('sha256');
    let bytes = 0;
    const duplex = connectionDuplex(conn);
    await pipeline(
      Readable.from(chunks),
      duplex,
      new Writable({
        write(chunk: Buffer, _e, cb) {
          got.update(chunk);
          bytes += chunk.length;
          cb();
        },
      }),
    );
    console.log(`duplex: ${bytes} bytes echoed`);
    expect(bytes).toBe(128 * 16 * 1024);
    expect(got.digest('hex')).toBe(sent.digest('hex'));
    expect(conn.state).toBe('closed');
  });

  it('reads only on demand: an unread Duplex holds at most one message, the rest waits in the connection', async () => {
    const conn = await connect();
    const duplex = connectionDuplex(conn);
    for (let i = 0; i < 50; i++) await new Promise<void>((resolve, reject) => duplex.write(Buffer.alloc(1024, i), (err) => (err ? reject(err) : resolve())));
    for (let i = 0; i < 50; i++) await new Promise((r) => setImmediate(r));
    expect(duplex.readableLength).toBeLessThanOrEqual(1024);
    let n = 0;
    for await (const chunk of duplex) {
      expect((chunk as Buffer)[0]).toBe(n);
      if (++n === 50) break; // destroys the duplex: aborts the connection
    }
    expect(n).toBe(50);
    expect(conn.state).toBe('closed');
  });
});

describe('connectionStreams', () => {
  it('Web Streams both ways, through TextDecoderStream', async () => {
    const conn = await connect();
    const { readable, writable } = connectionStreams(conn);
    const writer = writable.getWriter();
    for (const word of ['web ', 'streams ', 'work']) await writer.write(word);
    const texts: string[] = [];
    const reading = readable.pipeThrough(new TextDecoderStream()).pipeTo(new WritableStream({ write: (t) => void texts.push(t) }));
    await writer.close();
    await reading;
    expect(texts.join('')).toBe('web streams work');
    expect(conn.state).toBe('closed');
  });
});

describe('aborts and timeouts', () => {
  it('AbortSignal.timeout() is ERR_TAPS_TIMEOUT, an abort is ERR_TAPS_ABORTED: receive() and initiate()', async () => {
    const conn = await connect();
    const timedOut = (await conn.receive({ signal: AbortSignal.timeout(20) }).catch((e: unknown) => e)) as { code: string; cause: Error };
    const aborted = (await conn.receive({ signal: AbortSignal.abort() }).catch((e: unknown) => e)) as { code: string; cause: Error };
    expect([timedOut.code, timedOut.cause.name]).toEqual(['ERR_TAPS_TIMEOUT', 'TimeoutError']);
    expect([aborted.code, aborted.cause.name]).toEqual(['ERR_TAPS_ABORTED', 'AbortError']);
    await conn.close();
    // A name whose lookup never answers: only the signal can end the selection.
    const silent = new Host({ resolver: (_name, _family, signal) => new Promise((_, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true })) });
    silent.setPolicy('t', 'allow tcp://never.test:*');
    try {
      const pre = new Preconnection({ ...common, scope: await silent.tenant('t'), remote: { hostName: 'never.test', port: 9 } });
      const t = (await pre.initiate({ signal: AbortSignal.timeout(20) }).catch((e: unknown) => e)) as { code: string; cause: Error };
      const a = (await pre.initiate({ signal: AbortSignal.abort() }).catch((e: unknown) => e)) as { code: string; cause: Error };
      expect([t.code, t.cause.name]).toEqual(['ERR_TAPS_TIMEOUT', 'TimeoutError']);
      expect([a.code, a.cause.name]).toEqual(['ERR_TAPS_ABORTED', 'AbortError']);
    } finally {
      silent.close();
    }
  });
});
