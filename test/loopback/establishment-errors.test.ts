/**
 * The error a failed selection rejects with tells the truth, over real loopback sockets (::1 and 127.0.0.1,
 * a name answered by an injected resolver): a certificate that fails verification for the checked name is
 * ERR_TAPS_SECURITY_FAILED and ends the race (no other address or stack) unless the caller
 * opts in; a refusal is ERR_TAPS_ESTABLISHMENT_FAILED naming it even when a timeout ends what still ran; a
 * QUIC attempt left alone after every other candidate failed gets a bounded remainder, not its connect
 * timeout; ERR_TAPS_TIMEOUT only when nothing definitive happened.
 */
import { createSocket } from 'node:dgram';
import { createServer as createNetServer } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, describe, expect, it } from 'vitest';
import { EstablishmentError } from '../../src/errors.js';
import { createScope } from '../../src/policy/index.js';
import { Preconnection, type PreconnectionInit } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';
import { allowAll } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const other = testCertificate({ kind: 'ec', issuer: 'ca', names: ['other.test'] });
const drivers = [tcpDriver, tlsDriver, quicDriver];
const cleanups: (() => Promise<void> | void)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** A TLS server on both ::1 and 127.0.0.1 (one port) whose certificate names other.test only. */
async function wrongNameServer(): Promise<{ port: number; handshakes: () => number }> {
  let handshakes = 0;
  const make = () => createTlsServer({ cert: other.cert, key: other.key }, (s) => s.end());
  const v6 = make();
  await new Promise<void>((r) => v6.listen(0, '::1', r));
  const port = (v6.address() as { port: number }).port;
  const v4 = make();
  await new Promise<void>((r) => v4.listen(port, '127.0.0.1', r));
  for (const s of [v6, v4]) {
    s.on('connection', (sock) => {
      handshakes++;
      sock.on('error', () => {});
    });
    s.on('tlsClientError', () => {});
    cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  }
  return { port, handshakes: () => handshakes };
}

/** A port with nothing on TCP (refused) and, on UDP, a socket that reads and never answers (QUIC hangs). */
async function refusedTcpSilentUdp(address: string): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((r) => probe.listen(0, address, r));
  const port = (probe.address() as { port: number }).port;
  await new Promise<void>((r) => probe.close(() => r()));
  const udp = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  udp.on('message', () => {});
  await new Promise<void>((r) => udp.bind(port, address, () => r()));
  cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));
  return port;
}

function pre(port: number, over: Partial<PreconnectionInit> = {}, answers = { v6: ['::1'], v4: ['127.0.0.1'] }): Preconnection {
  const resolver = fakeResolver({ 'svc.test': answers });
  return new Preconnection({
    scope: createScope({ tenant: 'errors', policy: allowAll, resolver, racingCache: false }),
    remote: { hostName: 'svc.test', port },
    security: new SecurityParameters({ ca: other.caCert as string }),
    drivers,
    ...over,
  });
}

const caught = (p: Promise<unknown>): Promise<EstablishmentError> =>
  p.then(
    () => {
      throw new Error('expected a rejection');
    },
    (e: unknown) => e as EstablishmentError,
  );
const started = (e: EstablishmentError) => e.report.candidates.filter((c) => c.startedAt !== undefined);

describe('a certificate that fails verification for the checked name', () => {
  it('is ERR_TAPS_SECURITY_FAILED at the top, and ends the race: no second address is tried', async () => {
    const server = await wrongNameServer();
    // The longest attempt delay: the next address could then only start because the first one failed.
    const err = await caught(pre(server.port, { racing: { attemptDelay: 2000 } }).initiate({ signal: AbortSignal.timeout(8000) }));
    expect(err).toBeInstanceOf(EstablishmentError);
    expect(err.code).toBe('ERR_TAPS_SECURITY_FAILED');
    expect(err.message).toMatch(/svc\.test/);
    expect(started(err).map((c) => `${c.driver} ${c.address} ${c.fate}`)).toEqual(['tls ::1 failed']);
    expect(server.handshakes()).toBe(1);
    console.log(`certificate mismatch reported after ${err.report.endedAt} ms`);
  });

  it('with racing.continueOnSecurityFailure the race goes on to the other address (and still reports the security failure)', async () => {
    const server = await wrongNameServer();
    const err = await caught(pre(server.port, { racing: { continueOnSecurityFailure: true } }).initiate({ signal: AbortSignal.timeout(8000) }));
    expect(err.code).toBe('ERR_TAPS_SECURITY_FAILED');
    expect(started(err).filter((c) => c.driver === 'tls').map((c) => c.address)).toEqual(['::1', '127.0.0.1']);
  });
});

describe.each(['::1', '127.0.0.1'])('a refused port on %s', (address) => {
  const answers = address.includes(':') ? { v6: [address], v4: [] } : { v6: [], v4: [address] };

  it('is ERR_TAPS_ESTABLISHMENT_FAILED naming ECONNREFUSED', async () => {
    const port = await refusedTcpSilentUdp(address);
    await new Promise<void>((r) => setImmediate(r));
    const err = await caught(pre(port, { drivers: [tcpDriver, tlsDriver] }, answers).initiate({ signal: AbortSignal.timeout(8000) }));
    expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(err.message).toMatch(/ECONNREFUSED/);
  });

  it('with a caller timeout shorter than QUIC gives up, still ERR_TAPS_ESTABLISHMENT_FAILED naming the refusal, not ERR_TAPS_TIMEOUT', async () => {
    const port = await refusedTcpSilentUdp(address);
    const err = await caught(pre(port, { properties: new TransportProperties({ multistreaming: 'prefer' }) }, answers).initiate({ timeout: 400 }));
    expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(err.message).toMatch(/ECONNREFUSED/);
    expect(started(err).find((c) => c.driver === 'tls')!.fate).toBe('failed');
  });

  it('a QUIC attempt left alone after every other candidate failed gets a bounded remainder, not its connect timeout', async () => {
    const port = await refusedTcpSilentUdp(address);
    const t0 = performance.now();
    const err = await caught(pre(port, { properties: new TransportProperties({ multistreaming: 'prefer' }), racing: { attemptDelay: 50 } }, answers).initiate({ signal: AbortSignal.timeout(8000) }));
    const took = performance.now() - t0;
    expect(err.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(err.message).toMatch(/ECONNREFUSED/);
    const quic = started(err).find((c) => c.driver === 'quic')!;
    expect(quic.fate).toBe('cancelled');
    expect(quic.reason).toMatch(/remainder/);
    console.log(`refused TCP + silent UDP on ${address}: rejected after ${took.toFixed(0)} ms (QUIC's remainder: ${quic.reason})`);
  });

  it('ERR_TAPS_TIMEOUT when nothing definitive happened (every candidate silent)', async () => {
    const port = await refusedTcpSilentUdp(address);
    const err = await caught(pre(port, { drivers: [quicDriver] }, answers).initiate({ timeout: 200 }));
    expect(err.code).toBe('ERR_TAPS_TIMEOUT');
  });
});
