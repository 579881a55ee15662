/**
 * One new attempt per attempt delay, over real loopback sockets: a name answered with ::1 and 127.0.0.1
 * (injected resolver), a TCP server on both that accepts and never speaks TLS, and UDP sockets on both that
 * read and never answer QUIC. Every candidate hangs, so the race starts all four, one at a time: a stack's
 * addresses (IPv6 first, families alternating, RFC 8305 §4) before the next stack, each at least one attempt
 * delay after the previous (RFC 8305 §5), never the next address and the next stack together.
 */
import { createSocket } from 'node:dgram';
import { createServer, type Socket } from 'node:net';
import { afterAll, expect, it } from 'vitest';
import { EstablishmentError } from '../../src/errors.js';
import { createScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { allowAll } from '../helpers/policy.js';
import { fakeResolver } from '../helpers/resolver.js';

const cleanups: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** One port number, silent on TCP (accepts, never answers) and on UDP, on ::1 and 127.0.0.1. */
async function silentEverywhere(): Promise<number> {
  const accepted: Socket[] = [];
  const tcp = createServer((s) => {
    s.on('error', () => {});
    accepted.push(s);
  });
  await new Promise<void>((r) => tcp.listen(0, '::', r));
  const port = (tcp.address() as { port: number }).port;
  cleanups.push(() => {
    for (const s of accepted) s.destroy();
    return new Promise<void>((r) => tcp.close(() => r()));
  });
  for (const [type, address] of [['udp6', '::1'], ['udp4', '127.0.0.1']] as const) {
    const udp = createSocket(type);
    udp.on('message', () => {});
    await new Promise<void>((r) => udp.bind(port, address, () => r()));
    cleanups.push(() => new Promise<void>((r) => udp.close(() => r())));
  }
  return port;
}

it('four hanging candidates start one per attempt delay: tls ::1, tls 127.0.0.1, quic ::1, quic 127.0.0.1', async () => {
  const port = await silentEverywhere();
  const delay = 100;
  const err = await new Preconnection({
    scope: createScope({ tenant: 'stagger', policy: allowAll, resolver: fakeResolver({ 'svc.test': { v6: ['::1'], v4: ['127.0.0.1'] } }), racingCache: false }),
    remote: { hostName: 'svc.test', port },
    properties: new TransportProperties(),
    security: new SecurityParameters({}),
    drivers: [tlsDriver, quicDriver],
    racing: { attemptDelay: delay },
  })
    .initiate({ timeout: 4 * delay + 1500 })
    .catch((e: unknown) => e as EstablishmentError);
  expect(err).toBeInstanceOf(EstablishmentError);
  expect((err as EstablishmentError).code).toBe('ERR_TAPS_TIMEOUT');
  const starts = (err as EstablishmentError).report.candidates
    .filter((c) => c.startedAt !== undefined)
    .sort((a, b) => a.startedAt! - b.startedAt!);
  expect(starts.map((c) => `${c.driver} ${c.address}`)).toEqual(['tls ::1', 'tls 127.0.0.1', 'quic ::1', 'quic 127.0.0.1']);
  // Timers never fire early: each start is at least one attempt delay after the previous (1 ms of rounding).
  for (let i = 1; i < starts.length; i++) expect(starts[i]!.startedAt! - starts[i - 1]!.startedAt!).toBeGreaterThanOrEqual(delay - 1);
  console.log(`starts: ${starts.map((c) => `${c.driver} ${c.address} @${c.startedAt!.toFixed(1)}`).join(', ')}`);
});
