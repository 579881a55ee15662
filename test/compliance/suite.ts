/**
 * The driver compliance suite: what every transport driver must do, checked
 * over real loopback sockets (STYLE §10, after js-libp2p's transport suite).
 * Each driver gets one test file that calls {@link runDriverCompliance}:
 *
 * ```ts
 * // test/compliance/tcp.test.ts
 * runDriverCompliance({ driver: tcpDriver });
 * // an encrypted driver says how to trust its echo server:
 * runDriverCompliance({
 *   driver: tlsDriver,
 *   serverSecurity: () => new SecurityParameters({ certificate: cert.cert, key: cert.key }),
 *   security: () => new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
 * });
 * ```
 *
 * Options (all but `driver` optional):
 * - `echoServer(address, scope)`: start a server speaking the driver's protocol
 *   on `address` that sends back every byte / message and closes its side when
 *   the peer ends; returns `{ port, close() }`. Default: the driver's own
 *   `listen` (with `serverSecurity`) and the harness's `echo`.
 * - `security()`: client SecurityParameters that trust the echo server.
 *   Default: `SecurityParameters.disabled()` for `security: 'none'` drivers;
 *   required for encrypted ones.
 * - `serverSecurity()`: SecurityParameters for the default echo server.
 * - `untrustedSecurity()`: client parameters that must NOT accept the server
 *   (encrypted drivers). Default `new SecurityParameters()` (system roots).
 * - `stallServer(address)`: something that accepts at the transport level but
 *   never completes establishment, for "abort during connect"; `false` when
 *   the driver has no handshake to stall (plain UDP). Default: the python
 *   blackhole (no SYN-ACK) for TCP-based drivers; a UDP socket that reads and
 *   ignores for UDP-based ones.
 * - `attempt(base)`: adjust the ConnectAttempt (e.g. a RemoteEndpoint with a
 *   URL scheme and path for ws/http drivers).
 * - `hostName`: the checked name for SNI / certificate checks (default
 *   'localhost' for encrypted drivers, none otherwise).
 * - `options`: client driver options. `families`: default both loopbacks.
 * - `largeBytes` (default 1 MiB), `orderedCount` (default 10 000),
 *   `closeBytes` (default 4 MiB), `abortBytes` (default 16 MiB; 1 MiB when
 *   unreliable).
 *
 * What is checked, for 127.0.0.1 and ::1: abort before connect (rejects
 * ERR_TAPS_ABORTED, no socket made); abort during connect (same, everything
 * released); only guard-minted targets are accepted by CheckedNetwork; small
 * and large transfers (1 MiB on streams; on message drivers the largest
 * allowed message, and ERR_TAPS_MESSAGE_TOO_LARGE above maxMessageSize);
 * close delivers pending data then ends (reliable drivers) vs abort drops it;
 * declared capabilities (reliable+ordered: 10k numbered chunks arrive complete
 * and in order; messageBoundaries: sizes kept; encrypted: the plaintext is not
 * on the wire and an untrusted peer is refused; unencrypted: it is on the
 * wire); `closed()` exactly once; no handle left open after close; no
 * listener left on a shared attempt signal once a connect or listen settled.
 */
import { createSocket } from 'node:dgram';
import { getEventListeners } from 'node:events';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ConnectAttempt, Driver, TransportChannel } from '../../src/driver.js';
import type { NetworkScope } from '../../src/policy/index.js';
import { SecurityParameters } from '../../src/security.js';
import { blackhole } from '../helpers/blackhole.js';
import { checked, connectAttempt, listenAttempt, scopeFor } from '../helpers/policy.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, tcpRelay, udpRelay, waitFor, whileProgressing } from './harness.js';

export interface ComplianceServer {
  readonly port: number;
  close(): Promise<void>;
}

export interface ComplianceOptions {
  readonly driver: Driver;
  readonly echoServer?: (address: string, scope: NetworkScope) => Promise<ComplianceServer>;
  readonly security?: () => SecurityParameters;
  readonly serverSecurity?: () => SecurityParameters;
  readonly untrustedSecurity?: () => SecurityParameters;
  readonly stallServer?: false | ((address: string) => Promise<ComplianceServer>);
  readonly attempt?: (base: ConnectAttempt) => ConnectAttempt;
  readonly hostName?: string;
  readonly options?: Record<string, unknown>;
  readonly families?: readonly ('127.0.0.1' | '::1')[];
  readonly largeBytes?: number;
  readonly orderedCount?: number;
  readonly closeBytes?: number;
  readonly abortBytes?: number;
}

const MARKER = Buffer.from('TAPS-COMPLIANCE-PLAINTEXT-MARKER:0123456789abcdef');

/** A UDP socket that reads and ignores everything: stalls a handshake over UDP (QUIC). */
async function silentUdp(address: string): Promise<ComplianceServer> {
  const s = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  s.on('message', () => {});
  await new Promise<void>((r) => s.bind(0, address, () => r()));
  return { port: s.address().port, close: () => new Promise<void>((r) => s.close(() => r())) };
}

/** Send `total` bytes in pieces of at most `piece` (messages for message drivers), honouring backpressure. */
async function sendAll(ch: TransportChannel, rx: Collector, total: number, piece: number, fill = 0x61): Promise<(Error | undefined)[]> {
  const results: (Error | undefined)[] = [];
  let sent = 0;
  let n = 0;
  while (sent < total) {
    const size = Math.min(piece, total - sent);
    const buf = Buffer.alloc(size, fill + (n++ % 26));
    sent += size;
    if (!ch.send(buf, {}, (e) => results.push(e))) {
      const drains = rx.drains;
      await rx.until(() => rx.drains > drains, 'drain');
    }
  }
  return results;
}

/** Register a test only when the driver declares what it checks (not registered at all otherwise, rather than skipped). */
function when(condition: boolean): typeof it | ((name: string, fn: () => Promise<void>, timeout?: number) => void) {
  return condition ? it : () => {};
}

export function runDriverCompliance(o: ComplianceOptions): void {
  const { driver } = o;
  const caps = driver.capabilities;
  const encrypted = caps.encrypted;
  const isStream = driver.framing === 'stream';
  const scope = scopeFor();
  const clientSecurity = o.security ?? (() => (driver.security === 'none' ? SecurityParameters.disabled() : new SecurityParameters()));
  const hostName = o.hostName ?? (encrypted ? 'localhost' : undefined);
  const largeBytes = o.largeBytes ?? 1024 * 1024;
  const orderedCount = o.orderedCount ?? 10_000;
  const closeBytes = o.closeBytes ?? 4 * 1024 * 1024;
  // Unreliable drivers have no send queue to drop worth flooding a shared echo server with.
  const abortBytes = o.abortBytes ?? (caps.reliable ? 16 * 1024 * 1024 : 1024 * 1024);
  const stall =
    o.stallServer === false
      ? undefined
      : (o.stallServer ??
        (driver.ipProtocol === 'tcp'
          ? async (address: string): Promise<ComplianceServer> => blackhole(address as '127.0.0.1' | '::1')
          : silentUdp));
  const startEcho =
    o.echoServer ??
    ((address: string, s: NetworkScope) => driverEchoServer(driver, s, address, o.serverSecurity ? { security: o.serverSecurity() } : {}));

  describe.each(o.families ?? (['127.0.0.1', '::1'] as const))(`driver compliance: ${driver.id} over %s`, (address) => {
    let server: ComplianceServer;
    beforeAll(async () => {
      server = await startEcho(address, scope);
    });
    afterAll(async () => {
      await server?.close();
    });

    const attemptFor = async (port: number, init: { signal?: AbortSignal; security?: SecurityParameters } = {}): Promise<ConnectAttempt> => {
      const target = await checked(scope, { protocol: driver.protocol, address, port, ...(hostName ? { hostName } : {}) });
      const base = connectAttempt(scope, target, { security: init.security ?? clientSecurity(), options: o.options ?? {}, ...(init.signal ? { signal: init.signal } : {}) });
      return o.attempt ? o.attempt(base) : base;
    };
    const connect = async (init: { port?: number; signal?: AbortSignal; security?: SecurityParameters } = {}) =>
      scope.network.connect(driver, await attemptFor(init.port ?? server.port, init));

    it('abort before connect: rejects with ERR_TAPS_ABORTED and makes no socket', async () => {
      const before = handleCounts();
      const ac = new AbortController();
      const reason = new Error('not now');
      ac.abort(reason);
      const err = await connect({ signal: ac.signal }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
      expect(await extraHandles(before)).toEqual([]);
    });

    when(stall !== undefined)('abort during connect: rejects with ERR_TAPS_ABORTED and releases everything', async () => {
      const hole = await (stall as (a: string) => Promise<ComplianceServer>)(address);
      try {
        const before = handleCounts();
        const ac = new AbortController();
        let settled = false;
        const p = connect({ port: hole.port, signal: ac.signal }).finally(() => (settled = true));
        p.catch(() => {});
        await new Promise((r) => setTimeout(r, 50));
        expect(settled).toBe(false);
        const reason = new Error('too slow');
        ac.abort(reason);
        expect(await p.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: reason });
        expect(await extraHandles(before)).toEqual([]);
      } finally {
        await hole.close();
      }
    });

    it('connects only to targets the guard minted (CheckedNetwork)', async () => {
      const real = await attemptFor(server.port);
      const lookalike = { ...real, target: { ...real.target } };
      await expect(scope.network.connect(driver, lookalike)).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
      const other = driver.protocol === 'tcp' ? 'udp' : 'tcp';
      const wrongProtocol = { ...real, target: await checked(scope, { protocol: other, address, port: server.port }) };
      await expect(scope.network.connect(driver, wrongProtocol)).rejects.toMatchObject({ code: 'ERR_TAPS_POLICY_PROHIBITED' });
    });

    it('echoes a small message, closes cleanly, calls closed() once, leaves no handle open', async () => {
      const before = handleCounts();
      const ch = await connect();
      expect(ch.framing).toBe(driver.framing);
      expect(ch.remote.family).toBe(address.includes(':') ? 6 : 4);
      const rx = new Collector();
      ch.start(rx);
      const done: (Error | undefined)[] = [];
      ch.send(Buffer.from('ping'), {}, (e) => done.push(e));
      await rx.untilBytes(4);
      expect(rx.text()).toBe('ping');
      expect(done).toEqual([undefined]);
      await ch.close();
      expect(await rx.untilClosed()).toBeUndefined();
      await new Promise((r) => setTimeout(r, 0));
      expect(rx.closedCalls).toBe(1);
      expect(await extraHandles(before)).toEqual([]);
    });

    it(isStream ? `moves ${largeBytes} bytes through the echo server intact` : 'carries the largest allowed message; a larger one fails with ERR_TAPS_MESSAGE_TOO_LARGE', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      if (isStream) {
        const data = Buffer.alloc(largeBytes);
        for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 8)) & 0xff;
        ch.send(data, {}, () => {});
        await whileProgressing(rx, rx.untilBytes(largeBytes), () => `${rx.bytes} of ${largeBytes} bytes back`);
        expect(Buffer.compare(rx.all(), data)).toBe(0);
      } else {
        const size = Math.min(ch.maxMessageSize, largeBytes);
        ch.send(Buffer.alloc(size, 0x5a), {}, () => {});
        await whileProgressing(rx, rx.untilMessages(1), () => `the ${size}-byte message did not come back`);
        expect(rx.chunks[0]?.byteLength).toBe(size);
        if (ch.maxMessageSize < largeBytes) {
          const errs: (Error | undefined)[] = [];
          ch.send(Buffer.alloc(largeBytes), {}, (e) => errs.push(e));
          await whileProgressing(rx, waitFor(() => errs.length === 1), () => 'the oversized send was never settled');
          expect(errs[0]).toMatchObject({ code: 'ERR_TAPS_MESSAGE_TOO_LARGE' });
        }
      }
      await ch.close();
    }, 0); // volume: as long as it progresses (whileProgressing)

    when(caps.reliable)('close() delivers everything sent before it, then the end', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      const piece = isStream ? 64 * 1024 : Math.min(ch.maxMessageSize, 64 * 1024);
      const transfer = async (): Promise<(Error | undefined)[]> => {
        const results = await sendAll(ch, rx, closeBytes, piece);
        await ch.close();
        await waitFor(() => results.length === Math.ceil(closeBytes / piece));
        return results;
      };
      // As long as it takes on a busy machine (4 MiB as HTTP requests is slow there); a stall still fails.
      const results = await whileProgressing(rx, transfer(), () => `${rx.bytes} of ${closeBytes} bytes back`);
      expect(results.every((e) => e === undefined)).toBe(true);
      expect(rx.bytes).toBe(closeBytes);
      expect(await rx.untilClosed()).toBeUndefined();
    }, 0);

    it('abort() drops what is pending and reports ERR_TAPS_CONNECTION_ABORTED once', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      const results: (Error | undefined)[] = [];
      const piece = isStream ? 64 * 1024 : Math.min(ch.maxMessageSize, 16 * 1024);
      const count = Math.ceil(abortBytes / piece);
      // No waiting for drain: everything queues, then abort drops the queue.
      for (let i = 0; i < count; i++) ch.send(Buffer.alloc(piece, 0x62), {}, (e) => results.push(e));
      ch.abort(new Error('enough'));
      expect(await rx.untilClosed()).toMatchObject({ code: 'ERR_TAPS_CONNECTION_ABORTED' });
      await waitFor(() => results.length === count);
      if (caps.reliable) expect(results.some((e) => e !== undefined)).toBe(true);
      expect(rx.bytes).toBeLessThan(abortBytes);
      const late: (Error | undefined)[] = [];
      ch.send(Buffer.from('x'), {}, (e) => late.push(e));
      await waitFor(() => late.length === 1);
      expect(late[0]).toBeInstanceOf(Error);
      ch.abort();
      await new Promise((r) => setTimeout(r, 0));
      expect(rx.closedCalls).toBe(1);
    });

    when(caps.reliable && caps.ordered)(`reliable + ordered: ${orderedCount} numbered chunks arrive complete and in order`, async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      const size = 16;
      let sent = 0;
      const transfer = async (): Promise<void> => {
        for (; sent < orderedCount; sent++) {
          const b = Buffer.alloc(size, 0x2e);
          b.writeUInt32BE(sent, 0);
          if (!ch.send(b, {}, () => {})) {
            const drains = rx.drains;
            await rx.until(() => rx.drains > drains, 'drain');
          }
        }
        await rx.untilBytes(orderedCount * size);
      };
      // As long as it takes (one request per chunk on HTTP is slow on a busy machine); a stall still fails.
      await whileProgressing(rx, transfer(), () => `${sent} of ${orderedCount} chunks sent, ${rx.bytes / size} back`);
      const all = rx.all();
      expect(all.length).toBe(orderedCount * size);
      let wrong = -1;
      for (let i = 0; i < orderedCount && wrong < 0; i++) if (all.readUInt32BE(i * size) !== i) wrong = i;
      expect(wrong).toBe(-1);
      if (!isStream) expect(rx.chunks.length).toBe(orderedCount);
      await ch.close();
    }, 0);

    when(caps.messageBoundaries)('messageBoundaries: every message arrives whole, with its own size', async () => {
      const ch = await connect();
      const rx = new Collector();
      ch.start(rx);
      // Every size the stack can carry in one message (a QUIC datagram holds about one packet).
      const sizes = [...new Set([1, 7, 100, 1000, 4096, 20_000, Math.min(ch.maxMessageSize, 60_000)].filter((n) => n <= ch.maxMessageSize))];
      const sendBatch = (): void => {
        for (const [i, n] of sizes.entries()) ch.send(Buffer.alloc(n, 0x41 + i), {}, () => {});
      };
      if (caps.reliable) {
        sendBatch();
        await rx.untilMessages(sizes.length);
        const got = rx.chunks.map((c) => c.byteLength);
        expect(caps.ordered ? got : [...got].sort((a, b) => a - b)).toEqual(caps.ordered ? sizes : [...sizes].sort((a, b) => a - b));
      } else {
        // Datagrams may be lost (an earlier test may still fill the server's buffer): resend until every size came back once.
        const seen = (): Set<number> => new Set(rx.chunks.map((c) => c.byteLength));
        for (let round = 0; round < 50 && seen().size < sizes.length; round++) {
          sendBatch();
          await Promise.race([rx.until(() => seen().size === sizes.length, 'every size'), new Promise((r) => setTimeout(r, 20))]);
        }
        expect([...seen()].sort((a, b) => a - b)).toEqual([...sizes].sort((a, b) => a - b));
      }
      // Whole messages only: each arrives with one of the sent sizes and the fill byte of that size.
      for (const c of rx.chunks) {
        const i = sizes.indexOf(c.byteLength);
        expect(i).toBeGreaterThanOrEqual(0);
        expect(new Set(c)).toEqual(new Set([0x41 + i]));
      }
      await ch.close();
    });

    it(encrypted ? 'encrypted: the plaintext never appears on the wire' : 'unencrypted: the plaintext is on the wire (the capability is not understated)', async () => {
      const relay = driver.ipProtocol === 'tcp' ? await tcpRelay(address, server.port) : await udpRelay(address, server.port);
      try {
        const ch = await connect({ port: relay.port });
        const rx = new Collector();
        ch.start(rx);
        ch.send(MARKER, {}, () => {});
        await rx.untilBytes(MARKER.length);
        expect(rx.all().includes(MARKER)).toBe(true);
        await ch.close();
        expect(relay.captured().includes(MARKER)).toBe(!encrypted);
        expect(relay.captured().length).toBeGreaterThan(0);
      } finally {
        await relay.close();
      }
    });

    it('leaves no listener on the attempt signal once the attempt settled (the selector shares one that never aborts); closes unstarted', async () => {
      const shared = new AbortController().signal;
      const ch = await connect({ signal: shared });
      expect(getEventListeners(shared, 'abort')).toEqual([]);
      // Closed without ever being started, while the echo of a message is on its way: it still closes promptly.
      ch.send(Buffer.from('unread echo'), {}, () => {});
      await ch.close();
      if (driver.ipProtocol === 'tcp') {
        const closed = createServer();
        const port = await new Promise<number>((r) => closed.listen(0, address, () => r((closed.address() as AddressInfo).port)));
        await new Promise((r) => closed.close(r));
        await expect(connect({ port, signal: shared })).rejects.toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
        expect(getEventListeners(shared, 'abort')).toEqual([]);
      }
      if (encrypted) {
        const untrusted = (o.untrustedSecurity ?? (() => new SecurityParameters()))();
        await expect(connect({ security: untrusted, signal: shared })).rejects.toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
        expect(getEventListeners(shared, 'abort')).toEqual([]);
      }
    });

    // Listeners built from the driver's own listen(): bound, or refused (the port is the echo server's), none stays on the signal.
    when(o.echoServer === undefined && typeof driver.listen === 'function')('leaves no listener on the listen attempt signal once bound or refused', async () => {
      const shared = new AbortController().signal;
      const init = { signal: shared, ...(o.serverSecurity ? { security: o.serverSecurity() } : {}) };
      const listener = await scope.network.listen(driver, await listenAttempt(scope, driver.protocol, address, 0, init));
      expect(getEventListeners(shared, 'abort')).toEqual([]);
      await listener.close();
      await expect(scope.network.listen(driver, await listenAttempt(scope, driver.protocol, address, server.port, init))).rejects.toMatchObject({ code: expect.stringMatching(/^ERR_TAPS_/) });
      expect(getEventListeners(shared, 'abort')).toEqual([]);
    });

    when(encrypted)('encrypted: a peer the client does not trust is refused with ERR_TAPS_SECURITY_FAILED', async () => {
      const untrusted = (o.untrustedSecurity ?? (() => new SecurityParameters()))();
      const err = await connect({ security: untrusted }).catch((e: unknown) => e);
      expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    });
  });
}
