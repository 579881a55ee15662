/**
 * WebTransport over HTTP/2 on loopback: who is trusted and how failures read.
 * Pinned hashes right and wrong, the ≤ 14-day and validity rules of
 * `serverCertificateHashes`, CA verification against the checked name (SNI
 * included), and the typed errors for refused / wrong path / misconfigured.
 * Last, interoperation with the package's own client and server (its public
 * API, whose import noise this test silences), so our two halves are not
 * only checked against each other.
 */
import { createHash, X509Certificate } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { TransportChannel } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { SecurityParameters } from '../../src/security.js';
import { packageDirectory, PACKAGE, type WtSession, type WtStream } from '../../transports/webtransport/engine.js';
import { WebTransportError, webtransportH2Driver } from '../../transports/webtransport/index.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, refusedPort, type EchoServer } from '../compliance/harness.js';
import { DAY, testCertificate } from '../helpers/certs.js';
import { checked, connectAttempt, listenAttempt, scopeFor } from '../helpers/policy.js';

const good = testCertificate({ kind: 'ec', days: 10 });
const tooLong = testCertificate({ kind: 'ec', days: 30 });
const expired = testCertificate({ kind: 'ec', days: 10, notBefore: new Date(Date.now() - 30 * DAY) });
const caIssued = testCertificate({ kind: 'ec', days: 30, issuer: 'ca', names: ['localhost', 'chat.test'] });
const scope = scopeFor();
const serving = (c: { cert: string; key: string }): SecurityParameters => new SecurityParameters({ certificate: c.cert, key: c.key });

async function connect(port: number, security: SecurityParameters, init: { hostName?: string; path?: string } = {}): Promise<TransportChannel> {
  const hostName = init.hostName ?? 'localhost';
  const target = await checked(scope, { protocol: 'webtransport', address: '127.0.0.1', port, hostName });
  const base = connectAttempt(scope, target, { security });
  return scope.network.connect(webtransportH2Driver, { ...base, remote: RemoteEndpoint.from({ hostName, ipAddress: '127.0.0.1', port, scheme: 'webtransport', path: init.path ?? '/' }) });
}

async function roundTrip(ch: TransportChannel, text = 'hello'): Promise<string> {
  const rx = new Collector();
  ch.start(rx);
  ch.send(Buffer.from(text), {}, () => {});
  await rx.untilBytes(text.length);
  await ch.close();
  return rx.text();
}

/** Expect establishment to fail with `code` (and `message` fragment) and leave nothing open. */
async function refused(port: number, security: SecurityParameters, code: string, message: string, init: { hostName?: string; path?: string } = {}): Promise<unknown> {
  const before = handleCounts();
  const err = await connect(port, security, init).catch((e: unknown) => e);
  expect(err).toMatchObject({ code, message: expect.stringContaining(message) });
  expect(await extraHandles(before)).toEqual([]);
  return err;
}

describe('webtransport-h2: serverCertificateHashes (pinned SHA-256)', () => {
  const servers: EchoServer[] = [];
  const serve = async (c: { cert: string; key: string }): Promise<number> => {
    const s = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: serving(c) });
    servers.push(s);
    return s.port;
  };
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  it('the right hash is trusted; the channel reports the pinned certificate', async () => {
    const ch = await connect(await serve(good), new SecurityParameters({ pinnedServerCertificates: [good.fingerprint256] }));
    expect(ch.info).toMatchObject({ protocol: 'webtransport', httpVersion: '2', alpn: 'h2', peerCertificateFingerprint256: good.fingerprint256, serverName: 'localhost' });
    expect(await roundTrip(ch)).toBe('hello');
  });

  it('a wrong hash: ERR_TAPS_SECURITY_FAILED, nothing left open', async () => {
    await refused(await serve(good), new SecurityParameters({ pinnedServerCertificates: [tooLong.fingerprint256] }), 'ERR_TAPS_SECURITY_FAILED', 'matches no pinned certificate');
  });

  it('a pinned certificate valid for more than 14 days: ERR_TAPS_SECURITY_FAILED', async () => {
    await refused(await serve(tooLong), new SecurityParameters({ pinnedServerCertificates: [tooLong.fingerprint256] }), 'ERR_TAPS_SECURITY_FAILED', 'at most 14 days');
  });

  it('an expired pinned certificate: ERR_TAPS_SECURITY_FAILED', async () => {
    await refused(await serve(expired), new SecurityParameters({ pinnedServerCertificates: [expired.fingerprint256] }), 'ERR_TAPS_SECURITY_FAILED', 'not valid now');
  });

  it('without pins, the system roots do not know a self-signed certificate: ERR_TAPS_SECURITY_FAILED', async () => {
    await refused(await serve(good), new SecurityParameters(), 'ERR_TAPS_SECURITY_FAILED', 'TLS handshake');
  });
});

describe('webtransport-h2: CA verification against the checked name', () => {
  let server: EchoServer;
  beforeAll(async () => {
    server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: serving(caIssued) });
  });
  afterAll(async () => {
    await server.close();
  });

  it('a CA-issued certificate naming the checked host is trusted (the 14-day rule is for pins only); SNI carries the name', async () => {
    const ch = await connect(server.port, new SecurityParameters({ ca: caIssued.caCert as string }), { hostName: 'chat.test' });
    expect(ch.info).toMatchObject({ serverName: 'chat.test', authenticated: true });
    expect(await roundTrip(ch)).toBe('hello');
    // The listener saw the name in SNI.
    expect(server.channels.at(-1)?.info).toMatchObject({ serverName: 'chat.test' });
  });

  it('a name the certificate does not carry: ERR_TAPS_SECURITY_FAILED', async () => {
    await refused(server.port, new SecurityParameters({ ca: caIssued.caCert as string }), 'ERR_TAPS_SECURITY_FAILED', 'other.test', { hostName: 'other.test' });
  });
});

describe('webtransport-h2: typed establishment failures', () => {
  const pin = (): SecurityParameters => new SecurityParameters({ pinnedServerCertificates: [good.fingerprint256] });

  it('refused: ERR_TAPS_ESTABLISHMENT_FAILED with the ECONNREFUSED cause', async () => {
    const err = await refused(await refusedPort('127.0.0.1'), pin(), 'ERR_TAPS_ESTABLISHMENT_FAILED', 'connect');
    expect(err).toMatchObject({ cause: { code: 'ECONNREFUSED' } });
  });

  it('a path the listener does not serve: a WebTransportError with httpStatus 404', async () => {
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: serving(good), options: { path: '/chat' } });
    try {
      const err = await refused(server.port, pin(), 'ERR_TAPS_ESTABLISHMENT_FAILED', 'no WebTransport endpoint at /other (HTTP 404)', { path: '/other' });
      expect(err).toBeInstanceOf(WebTransportError);
      expect(err).toMatchObject({ httpStatus: 404 });
      expect(await roundTrip(await connect(server.port, pin(), { path: '/chat?room=1' }))).toBe('hello');
      expect(server.channels.at(-1)?.info).toMatchObject({ path: '/chat?room=1' });
    } finally {
      await server.close();
    }
  });

  it('security disabled, or a listener without a certificate: ERR_TAPS_INVALID_CONFIGURATION', async () => {
    await refused(1, SecurityParameters.disabled(), 'ERR_TAPS_INVALID_CONFIGURATION', 'security is disabled');
    const attempt = await listenAttempt(scope, 'webtransport', '127.0.0.1', 0, { security: new SecurityParameters() });
    await expect(scope.network.listen(webtransportH2Driver, attempt)).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_CONFIGURATION' });
  });
});

/** The package's public API, loaded once with its import noise (missing native HTTP/3 module) silenced. */
interface PublicApi {
  WebTransport: new (url: string, options: Record<string, unknown>) => WtSession;
  Http2Server: new (options: Record<string, unknown>) => {
    startServer(): void;
    stopServer(): void;
    ready: Promise<void>;
    address(): { port: number } | null;
    sessionStream(path: string): ReadableStream<WtSession>;
  };
}

async function loadPublicApi(): Promise<PublicApi> {
  const log = vi.spyOn(console, 'log').mockImplementation(() => {});
  const error = vi.spyOn(console, 'error').mockImplementation(() => {});
  try {
    const dir = packageDirectory(PACKAGE);
    if (dir === undefined) throw new Error(`${PACKAGE} is not installed`);
    const api = (await import(PACKAGE)) as PublicApi & { quicheLoaded: Promise<unknown> };
    await api.quicheLoaded;
    await new Promise((r) => setTimeout(r, 10));
    return api;
  } finally {
    log.mockRestore();
    error.mockRestore();
  }
}

async function echoStream(s: WtStream): Promise<void> {
  const reader = s.readable.getReader();
  const writer = s.writable.getWriter();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    await writer.write(value);
  }
  await writer.close();
}

describe('webtransport-h2: interoperates with the package itself', () => {
  const data = Buffer.alloc(1024 * 1024, 0x5a);

  it('our client ↔ the package’s Http2Server (with the session-window workaround)', async () => {
    const { Http2Server } = await loadPublicApi();
    const server = new Http2Server({ port: 0, host: '127.0.0.1', secret: 'test', cert: good.cert, privKey: good.key, initialSessionFlowControlWindow: 15 * 1024 * 1024 });
    const sessions = server.sessionStream('/echo');
    server.startServer();
    await server.ready;
    void (async () => {
      for await (const session of sessions) {
        void (async () => {
          await session.ready;
          for await (const s of session.incomingBidirectionalStreams) void echoStream(s).catch(() => {});
        })().catch(() => {});
      }
    })();
    try {
      const ch = await connect(server.address()!.port, new SecurityParameters({ pinnedServerCertificates: [good.fingerprint256] }), { path: '/echo' });
      const rx = new Collector();
      ch.start(rx);
      ch.send(data, { final: true }, () => {});
      await rx.untilEnd();
      expect(Buffer.compare(rx.all(), data)).toBe(0);
      expect(await rx.untilClosed()).toBeUndefined();
    } finally {
      server.stopServer();
    }
  });

  it('the package’s WebTransport client ↔ our listener', async () => {
    const { WebTransport } = await loadPublicApi();
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: serving(good) });
    const hash = createHash('sha256').update(new X509Certificate(good.cert).raw).digest();
    const wt = new WebTransport(`https://127.0.0.1:${server.port}/`, { forceReliable: true, serverCertificateHashes: [{ algorithm: 'sha-256', value: hash }] });
    try {
      await wt.ready;
      const s = await wt.createBidirectionalStream();
      const writer = s.writable.getWriter();
      const reading = (async () => {
        const chunks: Uint8Array[] = [];
        for await (const c of s.readable) chunks.push(c);
        return Buffer.concat(chunks);
      })();
      await writer.write(data);
      await writer.close();
      expect(Buffer.compare(await reading, data)).toBe(0);
      expect(server.channels.length).toBe(1);
    } finally {
      wt.close({ closeCode: 0, reason: '' });
      await wt.closed.catch(() => undefined);
      await server.close();
    }
  });
});
