/**
 * transports/quic/verify.ts without sockets: the server verifier the quic
 * driver hands the package, including its memory of leaves that already
 * verified (same certificate, same name, while the chain is valid).
 */
import { X509Certificate } from 'node:crypto';
import { describe, expect, it, vi } from 'vitest';
import { createScope } from '../../src/policy/index.js';
import { SecurityParameters } from '../../src/security.js';
import { serverVerifier } from '../../transports/quic/verify.js';
import { DAY, testCertificate } from '../helpers/certs.js';

const scope = createScope({ tenant: 't', policy: { decide: () => ({ allow: true, rule: 'test' }) } });
const der = (pem: string): Uint8Array => new Uint8Array(new X509Certificate(pem).raw);
const target = (hostName?: string) =>
  scope.guard.authorize({ use: 'connect', protocol: 'quic', address: '127.0.0.1', port: 4433, ...(hostName ? { hostName } : {}) });

describe('quic server verifier', () => {
  const leaf = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1'] });
  const security = new SecurityParameters({ ca: [leaf.caCert!] });

  it('accepts a chain to the CA for the checked name, again and again', async () => {
    const v = serverVerifier(security, await target('localhost'));
    expect(await v.callback([der(leaf.cert)], [])).toBeUndefined();
    expect(await v.callback([der(leaf.cert)], [])).toBeUndefined();
    expect(v.failure()).toBeUndefined();
  });

  it('a remembered leaf is still refused for another name', async () => {
    await serverVerifier(security, await target('localhost')).callback([der(leaf.cert)], []);
    const v = serverVerifier(security, await target('other.example'));
    expect(await v.callback([der(leaf.cert)], [])).toBeGreaterThan(0x100);
    expect(v.failure()?.message).toMatch(/not valid for other\.example/);
  });

  it('a remembered leaf is refused once it has expired', async () => {
    const v = serverVerifier(security, await target('localhost'));
    expect(await v.callback([der(leaf.cert)], [])).toBeUndefined();
    vi.useFakeTimers({ now: Date.now() + 40 * DAY, toFake: ['Date'] });
    try {
      const later = serverVerifier(security, await target('localhost'));
      expect(await later.callback([der(leaf.cert)], [])).toBe(0x100 + 45); // certificate_expired
    } finally {
      vi.useRealTimers();
    }
  });

  it('another CA never benefits from what this one verified', async () => {
    await serverVerifier(security, await target('localhost')).callback([der(leaf.cert)], []);
    const stranger = testCertificate({ kind: 'rsa', issuer: 'self', names: ['localhost'] });
    const v = serverVerifier(new SecurityParameters({ ca: [stranger.cert] }), await target('localhost'));
    expect(await v.callback([der(leaf.cert)], [])).toBe(0x100 + 48); // unknown_ca
  });
});
