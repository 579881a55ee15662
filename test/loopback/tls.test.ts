/**
 * The tls driver over real loopback sockets (127.0.0.1 and ::1): CA and name
 * verification, SNI, ALPN, pinning, the verification callback, expired and
 * self-signed certificates, versions, opportunistic mode, client
 * certificates, half-close, and a server that never speaks TLS.
 */
import { createServer, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { TransportChannel } from '../../src/driver.js';
import { SecurityParameters, type TrustContext } from '../../src/security.js';
import { clearSessions, tlsDriver } from '../../transports/tls/index.js';
import { createScope } from '../../src/policy/index.js';
import { DAY, testCertificate } from '../helpers/certs.js';
import { allowAll, checked, connectAttempt, listenAttempt, scopeFor } from '../helpers/policy.js';
import { loopbackResolver } from '../helpers/resolver.js';
import { Collector, driverEchoServer, extraHandles, handleCounts, waitFor, type EchoServer } from '../compliance/harness.js';

const scope = scopeFor();
const leaf = testCertificate({ issuer: 'ca' });
const self = testCertificate({ kind: 'ec' });
const expired = testCertificate({ issuer: 'ca', notBefore: new Date(Date.now() - 30 * DAY), days: 10 });
const trustCa = (extra: Record<string, unknown> = {}) => new SecurityParameters({ ca: leaf.caCert as string, ...extra });
const serverSecurity = (cert = leaf, extra: Record<string, unknown> = {}) => new SecurityParameters({ certificate: cert.cert, key: cert.key, ...extra });

describe.each(['127.0.0.1', '::1'])('tls over %s', (address) => {
  const servers: EchoServer[] = [];
  let main: EchoServer;
  const serve = async (security: SecurityParameters, options: Record<string, unknown> = {}) => {
    const s = await driverEchoServer(tlsDriver, scope, address, { security, options });
    servers.push(s);
    return s;
  };
  beforeAll(async () => {
    main = await serve(serverSecurity(leaf, { alpn: ['taps/1', 'echo'] }));
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
  });

  /** The server side of the latest connection to `server`. */
  const accepted = async (server: EchoServer, count: number) => {
    await waitFor(() => server.channels.length > count);
    return server.channels[count] as TransportChannel;
  };
  const connect = async (security: SecurityParameters, init: { port?: number; hostName?: string | null; signal?: AbortSignal } = {}) => {
    const hostName = init.hostName === null ? undefined : (init.hostName ?? 'localhost');
    const target = await checked(scope, { protocol: 'tls', address, port: init.port ?? main.port, ...(hostName ? { hostName } : {}) });
    return scope.network.connect(tlsDriver, connectAttempt(scope, target, { security, ...(init.signal ? { signal: init.signal } : {}) }));
  };
  const echoOnce = async (ch: TransportChannel, text = 'secret hello') => {
    const rx = new Collector();
    ch.start(rx);
    ch.send(Buffer.from(text), {}, () => {});
    await rx.untilBytes(text.length);
    expect(rx.text()).toBe(text);
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
  };

  it('verifies the CA chain and the name, sends SNI, negotiates TLS 1.3', async () => {
    const n = main.channels.length;
    const ch = await connect(trustCa());
    expect(ch.info).toMatchObject({ authenticated: true, tlsVersion: 'TLSv1.3', serverName: 'localhost', peerCertificateFingerprint256: leaf.fingerprint256 });
    expect((await accepted(main, n)).info['serverName']).toBe('localhost');
    await echoOnce(ch);
  });

  it('without a host name: no SNI, the certificate is checked against the IP', async () => {
    const n = main.channels.length;
    const ch = await connect(trustCa(), { hostName: null });
    expect(ch.info['serverName']).toBeUndefined();
    expect((await accepted(main, n)).info['serverName']).toBeUndefined();
    await echoOnce(ch);
  });

  it('negotiates ALPN (server preference among the client offer)', async () => {
    const n = main.channels.length;
    const ch = await connect(trustCa({ alpn: ['echo', 'other'] }));
    expect(ch.info['alpn']).toBe('echo');
    expect((await accepted(main, n)).info['alpn']).toBe('echo');
    await echoOnce(ch);
  });

  it('a wrong host name fails with ERR_TAPS_SECURITY_FAILED', async () => {
    const err = await connect(trustCa(), { hostName: 'wrong.example' }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED', cause: { code: 'ERR_TLS_CERT_ALTNAME_INVALID' } });
  });

  it('a self-signed certificate without a pin fails; with its pin it connects', async () => {
    const s = await serve(serverSecurity(self));
    const err = await connect(new SecurityParameters(), { port: s.port }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED', cause: { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' } });
    const ch = await connect(new SecurityParameters({ pinnedServerCertificates: [self.fingerprint256.toUpperCase().replace(/(..)(?!$)/g, '$1:')] }), { port: s.port });
    expect(ch.info).toMatchObject({ authenticated: true, peerCertificateFingerprint256: self.fingerprint256 });
    await echoOnce(ch);
  });

  it('a pin that matches nothing fails, even for a CA-valid certificate', async () => {
    const err = await connect(trustCa({ pinnedServerCertificates: [self.fingerprint256] })).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    expect((err as Error).message).toMatch(/matches no pinned certificate/);
  });

  it('an expired certificate fails, by CA and by pin', async () => {
    const s = await serve(serverSecurity(expired));
    const byCa = await connect(trustCa(), { port: s.port }).catch((e: unknown) => e);
    expect(byCa).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED', cause: { code: 'CERT_HAS_EXPIRED' } });
    const byPin = await connect(new SecurityParameters({ pinnedServerCertificates: [expired.fingerprint256] }), { port: s.port }).catch((e: unknown) => e);
    expect(byPin).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    expect((byPin as Error).message).toMatch(/not valid now/);
  });

  it('the verify callback sees the peer and decides (async true accepts, false and throw reject)', async () => {
    const s = await serve(serverSecurity(self, { alpn: ['echo'] }));
    const seen: TrustContext[] = [];
    const accept = async (ctx: TrustContext) => {
      seen.push(ctx);
      await new Promise((r) => setTimeout(r, 1));
      return true;
    };
    const ch = await connect(new SecurityParameters({ verify: accept, alpn: ['echo'] }), { port: s.port });
    expect(seen).toHaveLength(1);
    expect(seen[0]).toMatchObject({ hostName: 'localhost', alpn: 'echo', chainVerified: false, chainError: 'DEPTH_ZERO_SELF_SIGNED_CERT' });
    expect(seen[0]?.certificate.fingerprint256).toBe(self.fingerprint256);
    expect(Buffer.compare(Buffer.from(seen[0]!.certificate.raw), self.der)).toBe(0);
    await echoOnce(ch);

    const refused = await connect(new SecurityParameters({ verify: () => false }), { port: s.port }).catch((e: unknown) => e);
    expect(refused).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
    const boom = new Error('nope');
    const thrown = await connect(new SecurityParameters({ verify: () => { throw boom; } }), { port: s.port }).catch((e: unknown) => e);
    expect(thrown).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED', cause: boom });
    // CA-valid chain: the callback is told so.
    const ok: TrustContext[] = [];
    const ch2 = await connect(trustCa({ verify: (c: TrustContext) => (ok.push(c), true) }));
    expect(ok[0]).toMatchObject({ chainVerified: true });
    ch2.abort();
  });

  it('allowedProtocols: TLS 1.2 only negotiates 1.2; disjoint versions fail', async () => {
    const ch = await connect(trustCa({ allowedProtocols: ['tls1.2'] }));
    expect(ch.info['tlsVersion']).toBe('TLSv1.2');
    await echoOnce(ch);
    const s = await serve(serverSecurity(leaf, { allowedProtocols: ['tls1.2'] }));
    const err = await connect(trustCa({ allowedProtocols: ['tls1.3'] }), { port: s.port }).catch((e: unknown) => e);
    expect(err).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
  });

  it('opportunistic security encrypts without authenticating', async () => {
    const s = await serve(serverSecurity(self));
    const ch = await connect(SecurityParameters.opportunistic(), { port: s.port });
    expect(ch.info).toMatchObject({ authenticated: false, tlsVersion: 'TLSv1.3' });
    await echoOnce(ch);
  });

  it('client certificates: requested, verified against ca, reported on the accepted channel', async () => {
    const client = testCertificate({ issuer: 'ca', names: ['client.test'] });
    const s = await serve(serverSecurity(leaf, { ca: leaf.caCert }), { requestClientCertificate: true });
    const ch = await connect(trustCa({ certificate: client.cert, key: client.key }), { port: s.port });
    expect((await accepted(s, 0)).info).toMatchObject({ authenticated: true, clientCertificateFingerprint256: client.fingerprint256 });
    await echoOnce(ch);
    // Without a client certificate the server refuses the handshake (TLS 1.3 reports it after the client's Finished).
    const bare = await connect(trustCa(), { port: s.port }).then(
      async (c) => {
        const rx = new Collector();
        c.start(rx);
        c.send(Buffer.from('x'), {}, () => {});
        return rx.untilClosed();
      },
      (e: unknown) => e,
    );
    expect(bare).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED', cause: { code: 'ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED' } });
  });

  it('resumes sessions per tenant and settings, and still checks the peer on resumption', async () => {
    clearSessions();
    const first = await connect(trustCa());
    expect(first.info['sessionReused']).toBe(false);
    await echoOnce(first); // a round trip: the session tickets have arrived
    const seen: TrustContext[] = [];
    const second = await connect(trustCa());
    expect(second.info).toMatchObject({ sessionReused: true, authenticated: true, peerCertificateFingerprint256: leaf.fingerprint256 });
    await echoOnce(second);
    // Other settings (here a verify callback is not part of the key, ALPN is): no ticket for them yet.
    const third = await connect(trustCa({ alpn: ['echo'], verify: (c: TrustContext) => (seen.push(c), true) }));
    expect(third.info['sessionReused']).toBe(false);
    await echoOnce(third);
    const fourth = await connect(trustCa({ alpn: ['echo'], verify: (c: TrustContext) => (seen.push(c), true) }));
    expect(fourth.info['sessionReused']).toBe(true);
    expect(seen.map((c) => c.chainVerified)).toEqual([true, true]);
    await echoOnce(fourth);
    // Resumption off, and another tenant: full handshakes.
    const off = await connect(trustCa({ sessionCacheLimit: 0 }));
    expect(off.info['sessionReused']).toBe(false);
    off.abort();
    const other = createScope({ tenant: 'another-tenant', policy: allowAll, resolver: loopbackResolver() });
    const target = await checked(other, { protocol: 'tls', address, port: main.port, hostName: 'localhost' });
    const foreign = await other.network.connect(tlsDriver, connectAttempt(other, target, { security: trustCa() }));
    expect(foreign.info['sessionReused']).toBe(false);
    foreign.abort();
  });

  it('half-close over TLS: final, then the reply and the end arrive', async () => {
    const ch = await connect(trustCa());
    const rx = new Collector();
    ch.start(rx);
    ch.send(Buffer.from('bye'), { final: true }, () => {});
    await rx.untilEnd();
    expect(rx.text()).toBe('bye');
    await ch.close();
    expect(await rx.untilClosed()).toBeUndefined();
  });

  it('a server that accepts TCP but never speaks TLS stalls the connect until abort, then everything is released', async () => {
    const sockets = new Set<Socket>();
    const mute = createServer((s) => {
      sockets.add(s);
      s.on('error', () => {});
    });
    await new Promise<void>((r) => mute.listen(0, address, r));
    try {
      const before = handleCounts();
      const ac = new AbortController();
      let settled = false;
      const p = connect(trustCa(), { port: (mute.address() as { port: number }).port, signal: ac.signal }).finally(() => (settled = true));
      p.catch(() => {});
      await new Promise<void>((r) => (sockets.size > 0 ? r() : mute.once('connection', () => setTimeout(r, 50))));
      expect(settled).toBe(false);
      ac.abort(new Error('too slow'));
      expect(await p.catch((e: unknown) => e)).toMatchObject({ code: 'ERR_TAPS_ABORTED', cause: { message: 'too slow' } });
      expect(await extraHandles(before)).toEqual([]);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => mute.close(() => r()));
    }
  });

  it('a pre-shared key authenticates both sides without certificates', async () => {
    const psk = { identity: 'client-1', key: Buffer.from('00112233445566778899aabbccddeeff', 'hex') };
    const s = await serve(new SecurityParameters({ psk }));
    const ch = await connect(new SecurityParameters({ psk }), { port: s.port });
    expect(ch.info).toMatchObject({ authenticated: true, peerCertificateFingerprint256: undefined });
    await echoOnce(ch);
    const wrong = await connect(new SecurityParameters({ psk: { identity: 'client-1', key: Buffer.alloc(16, 1) } }), { port: s.port }).catch((e: unknown) => e);
    expect(wrong).toMatchObject({ code: 'ERR_TAPS_SECURITY_FAILED' });
  });

  it('identityChallenge picks the server certificate by SNI name', async () => {
    const other = testCertificate({ issuer: 'ca', names: ['other.test'] });
    const asked: (string | undefined)[] = [];
    const s = await serve(
      new SecurityParameters({
        identityChallenge: async ({ hostName }) => {
          asked.push(hostName);
          const c = hostName === 'other.test' ? other : leaf;
          return { certificate: c.cert, key: c.key };
        },
      }),
    );
    const a = await connect(trustCa(), { port: s.port, hostName: 'other.test' });
    expect(a.info['peerCertificateFingerprint256']).toBe(other.fingerprint256);
    await echoOnce(a);
    const b = await connect(trustCa(), { port: s.port });
    expect(b.info['peerCertificateFingerprint256']).toBe(leaf.fingerprint256);
    await echoOnce(b);
    expect(asked).toEqual(['other.test', 'localhost']);
  });

  it('closing the listener keeps the channels it handed out', async () => {
    const s = await driverEchoServer(tlsDriver, scope, address, { security: serverSecurity() });
    const ch = await connect(trustCa(), { port: s.port });
    await accepted(s, 0);
    await s.listener.close();
    await echoOnce(ch);
    await s.close();
  });

  it('a listener without certificate and key is a configuration error', async () => {
    const attempt = await listenAttempt(scope, 'tls', address, 0, { security: new SecurityParameters() });
    await expect(scope.network.listen(tlsDriver, attempt)).rejects.toMatchObject({ code: 'ERR_TAPS_INVALID_CONFIGURATION' });
  });
});
