/**
 * transports/tls/certificates.ts: certificates made at run time are valid
 * X.509 (checked by Node's parser and by real TLS handshakes on loopback).
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { SecurityParameters } from '../../src/security.js';
import { certificateAuthority, issueCertificate, selfSignedCertificate } from '../../transports/tls/certificates.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';
import { Collector, driverEchoServer } from '../compliance/harness.js';

const scope = scopeFor();

async function roundTrip(server: { cert: string; key: string }, client: SecurityParameters, address = '127.0.0.1'): Promise<string> {
  const s = await driverEchoServer(tlsDriver, scope, address, { security: new SecurityParameters({ certificate: server.cert, key: server.key }) });
  try {
    const target = await checked(scope, { protocol: 'tls', address, port: s.port, hostName: 'localhost' });
    const ch = await scope.network.connect(tlsDriver, connectAttempt(scope, target, { security: client }));
    const rx = new Collector();
    ch.start(rx);
    ch.send(Buffer.from('cert ok'), {}, () => {});
    await rx.untilBytes(7);
    await ch.close();
    return rx.text();
  } finally {
    await s.close();
  }
}

describe('runtime certificates', () => {
  it('selfSignedCertificate: EC P-256 by default, SAN with names and IPs, 10 days, pin-able', async () => {
    const c = selfSignedCertificate();
    const x = new X509Certificate(c.cert);
    expect(x.subject).toBe('CN=localhost');
    expect(x.subjectAltName).toBe('DNS:localhost, IP Address:127.0.0.1, IP Address:0:0:0:0:0:0:0:1');
    expect(x.publicKey.asymmetricKeyType).toBe('ec');
    expect(x.verify(x.publicKey)).toBe(true);
    expect(Date.parse(x.validTo) - Date.parse(x.validFrom)).toBe(10 * 24 * 3600 * 1000);
    expect(x.fingerprint256.replace(/:/g, '').toLowerCase()).toBe(c.fingerprint256);
    expect(Buffer.compare(x.raw, c.der)).toBe(0);
    expect(await roundTrip(c, new SecurityParameters({ pinnedServerCertificates: [c.fingerprint256] }), '::1')).toBe('cert ok');
  });

  it('certificateAuthority + issueCertificate: an RSA CA signs an EC leaf that TLS verifies by ca', async () => {
    const ca = certificateAuthority({ kind: 'rsa' });
    const leaf = issueCertificate(ca, { names: ['localhost', '127.0.0.1'], kind: 'ec', days: 3 });
    const x = new X509Certificate(leaf.cert);
    const cx = new X509Certificate(ca.cert);
    expect(cx.ca).toBe(true);
    expect(x.ca).toBe(false);
    expect(x.issuer).toBe(cx.subject);
    expect(x.checkIssued(cx)).toBe(true);
    expect(x.verify(cx.publicKey)).toBe(true);
    expect(await roundTrip(leaf, new SecurityParameters({ ca: ca.cert }))).toBe('cert ok');
  });

  it('rejects bad options with TypeError / RangeError', () => {
    expect(() => selfSignedCertificate({ names: [] })).toThrow(TypeError);
    expect(() => selfSignedCertificate({ days: 0 })).toThrow(RangeError);
    expect(() => selfSignedCertificate({ kind: 'dsa' as 'ec' })).toThrow(RangeError);
    expect(() => issueCertificate({ cert: 'x' } as never)).toThrow(TypeError);
  });
});
