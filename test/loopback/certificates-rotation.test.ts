/**
 * Certificate rotation as docs/certificates.md describes it, over real TLS on
 * loopback: a listener whose `identityChallenge` serves the current
 * certificate switches to the next one without a restart; a client pinning
 * both hashes connects before and after the switch, a client pinning only the
 * old hash is refused after it. Also checks the fields rotation is scheduled
 * by (`notBefore`/`notAfter`).
 */
import { X509Certificate } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { EstablishmentError, Host, Preconnection, SecurityParameters, TransportProperties, lengthPrefixFramer, type Listener } from '../../src/index.js';
import { selfSignedCertificate, type GeneratedCertificate } from '../../transports/tls/certificates.js';
import { tlsDriver } from '../../transports/tls/index.js';

const host = new Host({
  resolver: async (name, family) => (name === 'rotating.test' && family === 4 ? [{ address: '127.0.0.1', family: 4 }] : []),
});
host.setPolicy('server', 'allow bind:tls://@loopback:*\nallow accept:tls://@loopback:*');
host.setPolicy('client', 'allow tls://rotating.test:*\nallow tls://@loopback:*');
const common = { properties: TransportProperties.reliableMessage(), framers: [lengthPrefixFramer()], drivers: [tlsDriver] };
const listeners: Listener[] = [];
afterAll(async () => {
  for (const l of listeners) await l.stop();
});

async function echoAt(current: () => GeneratedCertificate): Promise<Listener> {
  const listener = await new Preconnection({
    ...common,
    scope: await host.tenant('server'),
    local: { ipAddress: '127.0.0.1', port: 0 },
    security: new SecurityParameters({ identityChallenge: () => ({ certificate: current().cert, key: current().key }) }),
  }).listen();
  listener.on('connectionReceived', async (c) => {
    for await (const m of c) await c.send(m.data);
    await c.close();
  });
  listeners.push(listener);
  return listener;
}

/** Connect pinning `pins`; returns the fingerprint the server presented, or the error code. */
async function connectPinning(port: number, pins: string[]): Promise<string> {
  const pre = new Preconnection({
    ...common,
    scope: await host.tenant('client'),
    remote: { hostName: 'rotating.test', port },
    // No resumption: a resumed TLS session keeps the certificate verified when it was made.
    security: new SecurityParameters({ pinnedServerCertificates: pins, sessionCacheLimit: 0 }),
  });
  try {
    await using conn = await pre.initiate({ timeout: 5000 });
    await conn.send('ping');
    const echoed = await conn.receive();
    expect(new TextDecoder().decode(echoed.data)).toBe('ping');
    return String(conn.info['peerCertificateFingerprint256']);
  } catch (err) {
    if (!(err instanceof EstablishmentError)) throw err;
    return `${err.code} (${err.attempts.map((a) => a.code).join(', ')})`;
  }
}

describe('certificate rotation (docs/certificates.md)', () => {
  it('notBefore/notAfter match the certificate; EC by default, ≤ 14 days for WebTransport hashes', () => {
    const c = selfSignedCertificate({ days: 10 });
    const x = new X509Certificate(c.cert);
    expect(Math.floor(c.notBefore.getTime() / 1000)).toBe(Date.parse(x.validFrom) / 1000);
    expect(Math.floor(c.notAfter.getTime() / 1000)).toBe(Date.parse(x.validTo) / 1000);
    expect(x.publicKey.asymmetricKeyType).toBe('ec');
    expect(c.notAfter.getTime() - c.notBefore.getTime()).toBeLessThanOrEqual(14 * 24 * 3600 * 1000);
  });

  it('a listener switches to the next certificate without a restart; clients pinning both hashes keep working', async () => {
    const first = selfSignedCertificate({ names: ['rotating.test'] });
    const next = selfSignedCertificate({ names: ['rotating.test'] });
    let current = first;
    const listener = await echoAt(() => current);
    const both = [first.fingerprint256, next.fingerprint256];

    const before = await connectPinning(listener.port, both);
    const oldOnlyBefore = await connectPinning(listener.port, [first.fingerprint256]);
    current = next;
    const after = await connectPinning(listener.port, both);
    const oldOnlyAfter = await connectPinning(listener.port, [first.fingerprint256]);
    console.log(`rotation: before=${before.slice(0, 12)} after=${after.slice(0, 12)} old-pin-only after=${oldOnlyAfter}`);

    expect(before).toBe(first.fingerprint256);
    expect(oldOnlyBefore).toBe(first.fingerprint256);
    expect(after).toBe(next.fingerprint256);
    expect(oldOnlyAfter).toBe('ERR_TAPS_SECURITY_FAILED (ERR_TAPS_SECURITY_FAILED)');
  });
});
