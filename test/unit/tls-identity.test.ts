/**
 * The server identity check of every TLS client handshake (transports/kit/tls-options.ts): a name is
 * checked by Node's `tls.checkServerIdentity`, an IP address against the certificate's IP Address SANs by
 * OpenSSL, identically on Node 20, 22 and 24 (Node 22.23's own check rejects `::1` against its IP SAN).
 */
import { X509Certificate } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { describe, expect, it } from 'vitest';
import { checkIdentity } from '../../transports/kit/tls-options.js';
import { testCertificate } from '../helpers/certs.js';

/** The parts of a peer certificate the check reads, from a PEM certificate. */
function peerCert(pem: string): PeerCertificate {
  const x = new X509Certificate(pem);
  return { raw: x.raw, subjectaltname: x.subjectAltName, subject: { CN: 'localhost' } } as unknown as PeerCertificate;
}

const both = peerCert(testCertificate({ kind: 'ec', names: ['localhost', '127.0.0.1', '::1'] }).cert);
const v4only = peerCert(testCertificate({ kind: 'ec', names: ['localhost', '127.0.0.1'] }).cert);

describe('checkIdentity', () => {
  it('an IP identity matches its IP SAN, IPv6 in any spelling', () => {
    for (const ip of ['::1', '0:0:0:0:0:0:0:1', '0000::0001', '127.0.0.1']) expect(checkIdentity(ip, both), ip).toBeUndefined();
  });

  it('an IP not among the IP SANs fails with ERR_TLS_CERT_ALTNAME_INVALID, never matched against DNS names', () => {
    for (const ip of ['::1', '::2', '127.0.0.2']) {
      expect(checkIdentity(ip, v4only), ip).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID', host: ip });
    }
    const named = peerCert(testCertificate({ kind: 'ec', names: ['127.0.0.1.example'] }).cert);
    expect(checkIdentity('127.0.0.1', named)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });

  it('a name is checked as Node checks it', () => {
    expect(checkIdentity('localhost', both)).toBeUndefined();
    expect(checkIdentity('wrong.example', both)).toMatchObject({ code: 'ERR_TLS_CERT_ALTNAME_INVALID' });
  });
});
