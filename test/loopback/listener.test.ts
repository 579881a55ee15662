/**
 * Listeners over real sockets: by default every stack the properties, security and policy allow is bound on
 * one port number (TLS on TCP and QUIC on UDP for reliable streams with security), so a plain TLS client
 * and a QUIC client both reach it; a stack that cannot bind makes listen() reject with the report and
 * nothing left bound, unless a partial bind is accepted; port 0 retries when the number is taken for the
 * other protocol; the report of a finished listen has no `pending` candidate.
 */
import { createSocket } from 'node:dgram';
import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import type { Driver, ListenAttempt } from '../../src/driver.js';
import { EstablishmentError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import type { Listener, ListenOptions } from '../../src/listener.js';
import { createScope } from '../../src/policy/chokepoint.js';
import type { NetworkPolicy } from '../../src/policy/types.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { udpDriver } from '../../transports/udp/index.js';
import { testCertificate } from '../helpers/certs.js';

const allow: NetworkPolicy = { decide: () => ({ allow: true, rule: 'test' }) };
const scope = createScope({ tenant: 'l', policy: allow });
const drivers: Driver[] = [tcpDriver, tlsDriver, udpDriver, quicDriver];
const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
const serverSecurity = new SecurityParameters({ certificate: cert.cert, key: cert.key });

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function server(init: { port?: number; drivers?: readonly Driver[]; policy?: NetworkPolicy; properties?: TransportProperties } = {}): Preconnection {
  return new Preconnection({
    scope: init.policy ? createScope({ tenant: 'l', policy: init.policy }) : scope,
    local: { ipAddress: '127.0.0.1', port: init.port ?? 0 },
    properties: init.properties ?? TransportProperties.reliableMessage(),
    security: serverSecurity,
    framers: [lengthPrefixFramer()],
    drivers: init.drivers ?? drivers,
  });
}

async function listen(pre: Preconnection, options?: ListenOptions): Promise<Listener> {
  const l = await pre.listen(options);
  cleanups.push(() => l.stop());
  return l;
}

/** A TCP port on 127.0.0.1 held by someone else for the test. */
async function takenTcpPort(port = 0): Promise<{ port: number; server: Server }> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => s.once('error', reject).listen(port, '127.0.0.1', resolve));
  cleanups.push(() => new Promise<void>((r) => s.close(() => r())));
  return { port: (s.address() as { port: number }).port, server: s };
}

/** Whether a UDP socket can bind `port` on 127.0.0.1 now (nothing is left bound there). */
async function udpFree(port: number): Promise<boolean> {
  const s = createSocket('udp4');
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('error', reject);
      s.bind(port, '127.0.0.1', () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    await new Promise<void>((r) => s.close(() => r())).catch(() => {});
  }
}

function echoEvery(l: Listener): void {
  l.on('connectionReceived', (c) => {
    void (async () => {
      for await (const m of c) await c.send(m.data);
      await c.close();
    })().catch(() => c.abort());
  });
}

describe('listen(): every allowed stack on one port number', () => {
  it('reliable messages with security bind TLS (tcp) and QUIC (udp) on one number; a TLS client and a QUIC client both get echoes', async () => {
    const l = await listen(server());
    echoEvery(l);
    expect(l.stacks).toEqual(['quic', 'tls']);
    expect(new Set(l.localAddresses.map((a) => a.port))).toEqual(new Set([l.port]));
    const bound = l.report.candidates.filter((c) => c.fate === 'won');
    expect(bound.map((c) => c.driver).sort()).toEqual(['quic', 'tls']);
    expect(l.report.candidates.some((c) => c.fate === 'pending')).toBe(false);
    expect(l.report.candidates.find((c) => c.driver === 'udp')).toMatchObject({ fate: 'unsuitable' });

    // A plain TLS client, framing by hand: 4-byte big-endian length, then the message.
    const tls = tlsConnect({ host: '127.0.0.1', port: l.port, ca: cert.caCert as string, servername: 'localhost' });
    const body = Buffer.from('over tls');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    tls.end(Buffer.concat([header, body]));
    const chunks: Buffer[] = [];
    for await (const c of tls) chunks.push(c as Buffer);
    expect(Buffer.concat(chunks).subarray(4).toString()).toBe('over tls');

    // A taps-node client that requires QUIC, to the same number.
    const conn = await new Preconnection({
      scope,
      remote: { ipAddress: '127.0.0.1', port: l.port },
      properties: TransportProperties.reliableMessage().require('multistreaming'),
      security: new SecurityParameters({ ca: cert.caCert as string, serverName: 'localhost' }),
      framers: [lengthPrefixFramer()],
      drivers,
    }).initiate({ signal: AbortSignal.timeout(5000) });
    await conn.send('over quic');
    expect(Buffer.from((await conn.receive({ signal: AbortSignal.timeout(5000) })).data).toString()).toBe('over quic');
    await conn.close();
  });

  it('the TCP port is taken: listen() rejects with the report naming EADDRINUSE, and QUIC is not left bound on UDP', async () => {
    const { port } = await takenTcpPort();
    const err = await server({ port }).listen().catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    const e = err as EstablishmentError;
    expect(e.code).toBe('ERR_TAPS_ESTABLISHMENT_FAILED');
    expect(e.message).toMatch(/tls 127\.0\.0\.1:\d+ failed: .*EADDRINUSE/);
    expect(e.message).toMatch(/allowPartialBind/);
    const tls = e.report.candidates.find((c) => c.driver === 'tls' && c.address !== undefined)!;
    expect(tls).toMatchObject({ fate: 'failed', code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    // QUIC bound first (ranked first), then was released when TLS failed.
    const quic = e.report.candidates.find((c) => c.driver === 'quic' && c.address !== undefined)!;
    expect(quic.fate).toBe('cancelled');
    expect(quic.reason).toMatch(/released/);
    expect(e.report.candidates.some((c) => c.fate === 'pending')).toBe(false);
    expect(await udpFree(port)).toBe(true);
  });

  it('allowPartialBind: true keeps the stacks that bound; the report says why the other did not', async () => {
    const { port } = await takenTcpPort();
    const l = await listen(server({ port }), { allowPartialBind: true });
    expect(l.stacks).toEqual(['quic']);
    expect(l.port).toBe(port);
    expect(l.report.candidates.find((c) => c.driver === 'tls' && c.address !== undefined)).toMatchObject({ fate: 'failed' });
    expect(l.report.candidates.find((c) => c.driver === 'tls' && c.address !== undefined)?.reason).toMatch(/EADDRINUSE/);
  });

  it("port 0: when the first bind's number is taken for the other protocol, every stack moves to a new number together", async () => {
    // A tls driver whose first bind has its UDP twin taken by someone else right after it bound: a real
    // EADDRINUSE for the QUIC bind that follows, on the number the kernel gave TLS.
    let squatted = 0;
    const squatter = createSocket('udp4');
    cleanups.push(() => new Promise<void>((r) => squatter.close(() => r())));
    const tlsThenSquat: Driver = {
      ...tlsDriver,
      listen: async (attempt: ListenAttempt) => {
        const bound = await tlsDriver.listen!(attempt);
        if (squatted++ === 0) await new Promise<void>((r) => squatter.bind(bound.local.port, '127.0.0.1', () => r()));
        return bound;
      },
    };
    // TLS first (multistreaming avoided), so TLS picks the number and QUIC follows it.
    const l = await listen(server({ drivers: [tlsThenSquat, quicDriver], properties: TransportProperties.reliableMessage().avoid('multistreaming') }));
    const first = squatter.address().port;
    expect(l.port).not.toBe(first);
    expect(l.stacks).toEqual(['tls', 'quic']);
    const [released, failed] = l.report.candidates.filter((c) => c.port === first);
    expect(released).toMatchObject({ driver: 'tls', fate: 'cancelled' });
    expect(released!.reason).toMatch(/port \d+ is taken for another protocol; trying another number \(1 of \d\)/);
    expect(failed).toMatchObject({ driver: 'quic', fate: 'failed' });
    expect(l.report.candidates.filter((c) => c.fate === 'won').map((c) => c.port)).toEqual([l.port, l.port]);
  });

  it('a stack the policy does not allow to bind is left out (denied), not a failure', async () => {
    const noQuic: NetworkPolicy = { decide: (q) => (q.protocol === 'quic' ? { allow: false, code: 'no-match', reason: 'no quic here', rule: 'deny quic' } : { allow: true, rule: 'ok' }) };
    const l = await listen(server({ policy: noQuic }));
    expect(l.stacks).toEqual(['tls']);
    expect(l.report.candidates.find((c) => c.driver === 'quic' && c.address !== undefined)).toMatchObject({ fate: 'denied', code: 'no-match' });
  });

  it("stacks: 'best' binds only the best stack; the rest are skipped with the reason", async () => {
    const l = await listen(server(), { stacks: 'best' });
    expect(l.stacks).toEqual(['quic']);
    expect(l.report.candidates.find((c) => c.driver === 'tls')).toMatchObject({ fate: 'skipped' });
    expect(l.report.candidates.find((c) => c.driver === 'tls')?.reason).toMatch(/quic ranks higher and was bound/);
  });

  it("a driver whose available() throws is recorded unavailable; listen() binds the others", async () => {
    const broken: Driver = { ...quicDriver, id: 'broken-quic', available: () => { throw new Error('native module exploded'); } };
    const l = await listen(server({ drivers: [tlsDriver, broken] }));
    expect(l.stacks).toEqual(['tls']);
    expect(l.report.candidates.find((c) => c.driver === 'broken-quic')).toMatchObject({ fate: 'unavailable', reason: 'availability check failed: native module exploded' });
  });

  it('a stack still loading is awaited only when its bind is allowed: a policy without QUIC binds TLS without waiting for it', async () => {
    // A QUIC driver whose module never finishes loading: were it awaited before the policy, listen() would hang.
    const neverLoads: Driver = { ...quicDriver, available: () => new Promise(() => {}) };
    const noQuic: NetworkPolicy = { decide: (q) => (q.protocol === 'quic' ? { allow: false, code: 'no-match', reason: 'no quic here', rule: 'deny quic' } : { allow: true, rule: 'ok' }) };
    const l = await listen(server({ drivers: [tlsDriver, neverLoads], policy: noQuic }));
    expect(l.stacks).toEqual(['tls']);
    expect(l.report.candidates.find((c) => c.driver === 'quic' && c.address !== undefined)).toMatchObject({ fate: 'denied' });
    expect(l.report.candidates.some((c) => c.fate === 'pending')).toBe(false);
  });

  it('a stack whose module fails to load is recorded unavailable when its turn comes; the others bind', async () => {
    const failsToLoad: Driver = { ...quicDriver, available: () => Promise.resolve({ available: false, reason: 'native module missing here' }) };
    const l = await listen(server({ drivers: [tlsDriver, failsToLoad] }));
    expect(l.stacks).toEqual(['tls']);
    expect(l.report.candidates.find((c) => c.driver === 'quic')).toMatchObject({ fate: 'unavailable', reason: 'native module missing here' });
  });

  it('stop() removes the listener from the caller signal (a long-lived signal keeps no stopped listener)', async () => {
    const controller = new AbortController();
    const before = getEventListeners(controller.signal, 'abort').length;
    const l = await server().listen({ signal: controller.signal });
    expect(getEventListeners(controller.signal, 'abort').length).toBe(before + 1);
    await l.stop();
    expect(getEventListeners(controller.signal, 'abort').length).toBe(before);
  });

  it('aborted while a stack binds: listen() rejects ERR_TAPS_ABORTED, the report has no pending candidate, QUIC is released', async () => {
    const controller = new AbortController();
    // The real tls driver, asked to bind after the caller gave up (QUIC, ranked first, is bound by then).
    const abortThenBind: Driver = { ...tlsDriver, listen: (attempt: ListenAttempt) => (controller.abort(new Error('caller gave up')), tlsDriver.listen!(attempt)) };
    const err = (await server({ drivers: [abortThenBind, quicDriver] }).listen({ signal: controller.signal }).catch((e: unknown) => e)) as EstablishmentError;
    expect(err).toBeInstanceOf(EstablishmentError);
    expect(err.code).toBe('ERR_TAPS_ABORTED');
    expect(err.report.candidates.filter((c) => c.fate === 'pending')).toEqual([]);
    const tls = err.report.candidates.find((c) => c.driver === 'tls' && c.address !== undefined)!;
    const quic = err.report.candidates.find((c) => c.driver === 'quic' && c.address !== undefined)!;
    expect(tls).toMatchObject({ fate: 'cancelled' });
    expect(tls.reason).toMatch(/aborted/);
    expect(quic).toMatchObject({ fate: 'cancelled' });
    expect(await udpFree(quic.port!)).toBe(true);
  });

  it('the caller signal still stops a running listener', async () => {
    const controller = new AbortController();
    const l = await server().listen({ signal: controller.signal });
    const stopped = new Promise<void>((r) => l.once('stopped', () => r()));
    controller.abort();
    await stopped;
    expect(await udpFree(l.port)).toBe(true);
  });

  it('bad options throw at once, naming the option', async () => {
    const pre = server();
    await expect(pre.listen({ stacks: 'some' as 'all' })).rejects.toThrow(RangeError);
    await expect(pre.listen({ stacks: 'some' as 'all' })).rejects.toThrow(/stacks/);
    await expect(pre.listen({ allowPartialBind: 'yes' as unknown as boolean })).rejects.toThrow(TypeError);
    await expect(pre.listen({ allowPartialBind: 'yes' as unknown as boolean })).rejects.toThrow(/allowPartialBind/);
    await expect(pre.listen({ connectionLimit: -1 })).rejects.toThrow(RangeError);
  });
});
