/**
 * A refused port over real loopback sockets. The QUIC driver's probe (an empty datagram, sent twice, before the
 * client is built) finds a closed UDP port by its ICMP port unreachable, and a QUIC server ignores it; with the probe
 * skipped (a fixed local port) the handshake's own connected socket still ends on the ICMP error. With the
 * default drivers, a name whose port is closed on TCP and UDP fails with ERR_TAPS_ESTABLISHMENT_FAILED naming
 * the refusal, after TLS and QUIC were each tried on ::1 and 127.0.0.1; a QUIC-only server on such a port
 * (TCP refused, UDP open) is still reached. Times are printed, not asserted (bench/first-use.ts judges them).
 */
import { createSocket } from 'node:dgram';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EstablishmentError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Host, type CheckedTarget } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { udpRefusal } from '../../transports/quic/probe.js';
import { testCertificate } from '../helpers/certs.js';
import { checked } from '../helpers/policy.js';
import { refusedPort } from '../helpers/ports.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const host = new Host();
host.setPolicy('me', 'allow *://@loopback:*\nallow bind:*://@loopback:*\nallow accept:*://@loopback:*');
const cleanups: (() => Promise<void> | void)[] = [];
beforeAll(async () => {
  // Loaded before the selections: what is raced is then every default stack, never one still loading.
  expect(await quicDriver.available()).toEqual({ available: true });
});
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  host.close();
});

describe.each([
  ['127.0.0.1', 4],
  ['::1', 6],
] as const)('the QUIC probe on %s', (address, family) => {
  it('a closed UDP port: the ICMP port unreachable comes back as ECONNREFUSED', async () => {
    const port = await refusedPort();
    const refusal = await udpRefusal(await checked(await host.tenant('me'), { protocol: 'quic', address, port }), address);
    expect((refusal as NodeJS.ErrnoException | undefined)?.code).toBe('ECONNREFUSED');
  });

  it('a target not minted by a guard opens nothing (TypeError)', async () => {
    const lookalike = { use: 'connect', protocol: 'quic', address, port: await refusedPort() } as unknown as CheckedTarget;
    await expect(udpRefusal(lookalike, address)).rejects.toThrow(TypeError);
  });

  it('an open UDP port: no refusal, and the peer got two empty datagrams from the local address', async () => {
    const server = createSocket(family === 6 ? 'udp6' : 'udp4');
    const got: { size: number; from: string }[] = [];
    server.on('message', (m, r) => got.push({ size: m.byteLength, from: r.address }));
    await new Promise<void>((r) => server.bind(0, address, () => r()));
    cleanups.push(() => new Promise<void>((r) => server.close(() => r())));
    const target = await checked(await host.tenant('me'), { protocol: 'quic', address, port: server.address().port });
    const refusal = await udpRefusal(target, address);
    expect(refusal).toBeUndefined();
    await new Promise((r) => setTimeout(r, 20)); // the datagram was sent; let the server read it
    expect(got).toEqual([{ size: 0, from: address }, { size: 0, from: address }]);
  });
});

it('a fixed local port skips the probe: the handshake ends on the ICMP error itself, not the connect timeout', async () => {
  const port = await refusedPort();
  const local = await refusedPort(); // free on UDP too
  const pre = new Preconnection({
    scope: await host.tenant('me'),
    remote: { ipAddress: '127.0.0.1', port },
    local: { ipAddress: '127.0.0.1', port: local },
    properties: new TransportProperties({ multistreaming: 'require' }),
    security: new SecurityParameters({ ca: cert.caCert as string }),
    driverOptions: { quic: { connectTimeout: 60_000 } },
  });
  const err = (await pre.initiate({ signal: AbortSignal.timeout(20_000) }).catch((e: unknown) => e)) as EstablishmentError;
  expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
  const q = err.report.candidates.find((c) => c.driver === 'quic' && c.fate === 'failed');
  expect(q?.reason).toMatch(/refused \(ICMP port unreachable\): ECONNREFUSED/);
});

describe('default drivers, default properties, localhost', () => {
  it('a port closed on TCP and UDP: ERR_TAPS_ESTABLISHMENT_FAILED naming ECONNREFUSED, TLS and QUIC each tried on ::1 and 127.0.0.1', async () => {
    const port = await refusedPort();
    const pre = new Preconnection({ scope: await host.tenant('me'), remote: { hostName: 'localhost', port } });
    const t0 = performance.now();
    const err = (await pre.initiate({ signal: AbortSignal.timeout(20_000) }).catch((e: unknown) => e)) as EstablishmentError;
    console.log(`refused localhost:${port} with the default drivers: ${(performance.now() - t0).toFixed(2)} ms`);
    expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(err.message).toMatch(/ECONNREFUSED/);
    const attempted = err.report.candidates.filter((c) => c.startedAt !== undefined);
    expect(attempted.map((c) => `${c.driver} ${c.address}`).sort()).toEqual(['quic 127.0.0.1', 'quic ::1', 'tls 127.0.0.1', 'tls ::1']);
    for (const c of attempted) {
      expect(c.fate).toBe('failed');
      expect(c.reason).toMatch(/ECONNREFUSED/);
    }
    expect(attempted.filter((c) => c.driver === 'quic').map((c) => c.reason)).toEqual([
      expect.stringMatching(/refused \(ICMP port unreachable\)/),
      expect.stringMatching(/refused \(ICMP port unreachable\)/),
    ]);
    // Each attempt's error is data (made without a stack, src/stackless.ts); the one the caller gets keeps its frames.
    for (const c of attempted) expect(c.error?.stack).toBe(`${c.error?.name}: ${c.error?.message}`);
    expect(err.stack!.split('\n').length).toBeGreaterThan(1);
  });

  it('a QUIC-only server on such a port (TCP refused, UDP open) is still reached over QUIC', async () => {
    const scope = await host.tenant('me');
    const listener = await new Preconnection({
      scope,
      local: { ipAddress: '::1', port: 0 },
      properties: new TransportProperties({ multistreaming: 'require' }),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
      framers: [lengthPrefixFramer()],
    }).listen();
    cleanups.push(() => listener.stop());
    listener.on('connectionReceived', (c) => void c.close().catch(() => {}));
    const conn = await new Preconnection({
      scope,
      remote: { hostName: 'localhost', port: listener.port },
      security: new SecurityParameters({ ca: cert.caCert as string }),
      framers: [lengthPrefixFramer()],
    }).initiate({ signal: AbortSignal.timeout(20_000) });
    try {
      const won = conn.report.candidates.find((c) => c.fate === 'won');
      expect(`${won?.driver} ${won?.address}`).toBe('quic ::1');
      expect(conn.report.candidates.filter((c) => c.driver === 'tls' && c.startedAt !== undefined).every((c) => c.fate === 'failed' || c.fate === 'cancelled')).toBe(true);
    } finally {
      await conn.close();
    }
  });
});
