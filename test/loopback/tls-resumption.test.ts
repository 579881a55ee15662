/**
 * TLS session resumption on every TLS-over-TCP driver that dials through the
 * kit's one client handshake: https and https2 against Node's https and http2
 * servers, wss against the ws package's server, webtransport-h2 (pinned)
 * against our own listener. The second connect to the same server resumes —
 * seen by the client (`info.sessionReused`) and by the server
 * (`isSessionReused()` on its socket) — and still runs the peer checks on
 * the record of the full handshake: a verify callback that refuses fails the
 * resumed connect, pins still pass (the resumed socket shows no certificate
 * itself). Another tenant never gets this tenant's ticket.
 */
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeEach, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import type { Driver, TransportChannel } from '../../src/driver.js';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { createScope, type NetworkScope } from '../../src/policy/chokepoint.js';
import { SecurityParameters, type TrustContext } from '../../src/security.js';
import { httpsDriver, https2Driver } from '../../transports/http/index.js';
import { clearSessions } from '../../transports/tls/index.js';
import { wssDriver } from '../../transports/websocket/index.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { Collector, driverEchoServer } from '../compliance/harness.js';
import { testCertificate } from '../helpers/certs.js';
import { allowAll, checked, connectAttempt, scopeFor } from '../helpers/policy.js';
import { loopbackResolver } from '../helpers/resolver.js';

const cert = testCertificate({ kind: 'ec', days: 10, names: ['localhost', '127.0.0.1'] });
const trustCa = (extra: Record<string, unknown> = {}): SecurityParameters => new SecurityParameters({ ca: cert.cert, ...extra });
const cleanups: (() => Promise<unknown> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});
beforeEach(() => clearSessions());

/** A TLS server nobody on the project wrote, recording whether each handshake resumed a session. */
interface Peer {
  readonly port: number;
  readonly resumed: boolean[];
}

function track(server: https.Server | http2.Http2SecureServer, resumed: boolean[]): void {
  const sockets = new Set<Socket>();
  server.on('secureConnection', (s: TLSSocket) => {
    resumed.push(s.isSessionReused());
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on('session', (s: http2.ServerHttp2Session) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  cleanups.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sessions) s.destroy();
        for (const s of sockets) s.destroy();
        server.close(() => r());
      }),
  );
}

async function listening(server: https.Server | http2.Http2SecureServer): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return (server.address() as { port: number }).port;
}

/** Node's https (HTTP/1.1) or http2 server answering every request with its body. */
async function httpPeer(kind: 'h1' | 'h2'): Promise<Peer> {
  const resumed: boolean[] = [];
  const handler = (req: { on(e: string, f: (c?: Buffer) => void): void }, res: { end(b: Buffer): void }): void => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c!));
    req.on('end', () => res.end(Buffer.concat(chunks)));
  };
  const options = { cert: cert.cert, key: cert.key };
  const server = kind === 'h1' ? https.createServer({ ...options, ALPNProtocols: ['http/1.1'] }, handler as never) : http2.createSecureServer(options, handler as never);
  track(server, resumed);
  return { port: await listening(server), resumed };
}

/** The ws package's WebSocket server on Node's https server, echoing every message. */
async function wssPeer(): Promise<Peer> {
  const resumed: boolean[] = [];
  const server = https.createServer({ cert: cert.cert, key: cert.key });
  const wss = new WebSocketServer({ server });
  wss.on('connection', (ws) => ws.on('message', (data, binary) => ws.send(data, { binary })));
  track(server, resumed);
  cleanups.push(() => new Promise<void>((r) => wss.close(() => r())));
  return { port: await listening(server), resumed };
}

async function connect(scope: NetworkScope, driver: Driver, port: number, security: SecurityParameters): Promise<TransportChannel> {
  const target = await checked(scope, { protocol: driver.protocol, address: '127.0.0.1', port, hostName: 'localhost' });
  const scheme = driver.id === 'https2' ? 'https' : driver.id;
  const remote = RemoteEndpoint.from({ hostName: 'localhost', ipAddress: '127.0.0.1', port, scheme, path: '/' });
  const ch = await scope.network.connect(driver, { ...connectAttempt(scope, target, { security }), remote });
  cleanups.push(() => ch.abort());
  return ch;
}

/** One request/response or message round trip: by its end the server's session tickets have arrived. */
async function roundTrip(ch: TransportChannel): Promise<string> {
  const rx = new Collector();
  ch.start(rx);
  ch.send(Buffer.from('ping'), {}, () => {});
  await rx.until(() => rx.text() === 'ping', 'the echo');
  return rx.text();
}

describe.each([
  { name: 'https', driver: httpsDriver, peer: () => httpPeer('h1') },
  { name: 'https2', driver: https2Driver, peer: () => httpPeer('h2') },
  { name: 'wss', driver: wssDriver, peer: wssPeer },
])('$name resumes TLS sessions', ({ driver, peer }) => {
  it('the second connect to the same server resumes (client and server agree); another tenant does not', async () => {
    const server = await peer();
    const scope = scopeFor();
    const first = await connect(scope, driver, server.port, trustCa());
    expect(first.info['sessionReused']).toBe(false);
    expect(await roundTrip(first)).toBe('ping');
    const second = await connect(scope, driver, server.port, trustCa());
    expect(second.info).toMatchObject({ sessionReused: true, authenticated: true, peerCertificateFingerprint256: cert.fingerprint256 });
    expect(await roundTrip(second)).toBe('ping');
    const other = createScope({ tenant: 'another-tenant', policy: allowAll, resolver: loopbackResolver() });
    const foreign = await connect(other, driver, server.port, trustCa());
    expect(foreign.info['sessionReused']).toBe(false);
    expect(await roundTrip(foreign)).toBe('ping');
    // The server records a handshake once the client's Finished is in: after each round trip at the latest.
    expect(server.resumed).toEqual([false, true, false]);
  });

  it('a resumed handshake still asks the verify callback, with the certificate of the full handshake, and fails when it refuses', async () => {
    const server = await peer();
    const scope = scopeFor();
    const seen: TrustContext[] = [];
    let accept = true;
    const security = trustCa({ verify: (c: TrustContext) => (seen.push(c), accept) });
    expect(await roundTrip(await connect(scope, driver, server.port, security))).toBe('ping');
    const resumed = await connect(scope, driver, server.port, security);
    expect(resumed.info['sessionReused']).toBe(true);
    expect(await roundTrip(resumed)).toBe('ping');
    expect(server.resumed).toEqual([false, true]);
    accept = false;
    await expect(connect(scope, driver, server.port, security)).rejects.toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    expect(seen.map((c) => [c.certificate.fingerprint256, c.chainVerified])).toEqual([
      [cert.fingerprint256, true],
      [cert.fingerprint256, true],
      [cert.fingerprint256, true],
    ]);
  });

  it('sessionCacheLimit 0 turns resumption off', async () => {
    const server = await peer();
    const scope = scopeFor();
    for (let i = 0; i < 2; i++) {
      const ch = await connect(scope, driver, server.port, trustCa({ sessionCacheLimit: 0 }));
      expect(await roundTrip(ch)).toBe('ping');
      expect(ch.info['sessionReused']).toBe(false);
    }
    expect(server.resumed).toEqual([false, false]);
  });
});

describe('webtransport-h2 resumes TLS sessions', () => {
  it('with pinned certificates: the resumed connect checks the pin and the 14-day rule on the full handshake record', async () => {
    const scope = scopeFor();
    const server = await driverEchoServer(webtransportH2Driver, scope, '127.0.0.1', { security: new SecurityParameters({ certificate: cert.cert, key: cert.key }) });
    cleanups.push(() => server.close());
    const pinned = (): SecurityParameters => new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
    const first = await connect(scope, webtransportH2Driver, server.port, pinned());
    expect(first.info['sessionReused']).toBe(false);
    expect(await roundTrip(first)).toBe('ping');
    const second = await connect(scope, webtransportH2Driver, server.port, pinned());
    expect(second.info).toMatchObject({ sessionReused: true, authenticated: true, peerCertificateFingerprint256: cert.fingerprint256 });
    expect(await roundTrip(second)).toBe('ping');
    // The server side of the same handshakes, as our listener reports it.
    expect(server.channels.map((ch) => ch.info['sessionReused'])).toEqual([false, true]);
  });
});
