/**
 * Rendezvous on loopback (RFC 9622 §7.3): two preconnections resolve their
 * candidates, exchange them, rendezvous with each other and carry datagrams;
 * a policy that denies the peer fails at once with every pair denied and not
 * a datagram sent; bad input throws at once. (Through NATs and a STUN server:
 * test/netns/rendezvous.test.ts.)
 */
import { createSocket } from 'node:dgram';
import { describe, expect, it } from 'vitest';
import { EstablishmentError, Host, LocalEndpoint, Preconnection, SecurityParameters, TransportProperties, type Connection, type NetworkScope } from '../../src/index.js';
import { udpDriver } from '../../transports/udp/index.js';

async function tenant(policy: string): Promise<NetworkScope> {
  const host = new Host();
  host.setPolicy('t', policy);
  return host.tenant('t');
}

const peer = (scope: NetworkScope): Preconnection =>
  new Preconnection({ scope, drivers: [udpDriver], local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });

describe('rendezvous on loopback', () => {
  it('two peers check each other, settle on one pair, emit rendezvousDone and carry datagrams both ways', async () => {
    const scope = await tenant('allow bind:udp://127.0.0.1:*\nallow udp://127.0.0.1:*');
    const a = peer(scope);
    const b = peer(scope);
    const done: Connection[] = [];
    a.on('rendezvousDone', (c) => done.push(c));
    const [ra, rb] = [await a.resolve(), await b.resolve()];
    expect(ra.local).toHaveLength(1);
    expect(ra.local[0]!.ipAddress).toBe('127.0.0.1');
    const t0 = performance.now();
    const [x, y] = await Promise.all([a.rendezvous({ remote: rb.local }), b.rendezvous({ remote: ra.local })]);
    console.log(`loopback rendezvous: ${(performance.now() - t0).toFixed(1)} ms`);
    expect(done).toEqual([x]);
    expect(x.remote).toMatchObject({ address: '127.0.0.1', port: rb.local[0]!.port });
    expect(y.remote).toMatchObject({ address: '127.0.0.1', port: ra.local[0]!.port });
    expect(x.report.candidates.find((c) => c.id === x.report.winner)).toMatchObject({ fate: 'won', driver: 'udp', port: rb.local[0]!.port });
    const got = new Promise<string>((r) => y.once('received', (m) => r(m.text())));
    const back = new Promise<string>((r) => x.once('received', (m) => r(m.text())));
    await x.send('from a');
    await y.send('from b');
    expect([await got, await back]).toEqual(['from a', 'from b']);
    await Promise.all([x.close(), y.close()]);
  });

  it('fails with a denial before any datagram when the policy denies every peer candidate', async () => {
    const watcher = createSocket('udp4');
    await new Promise<void>((r) => watcher.bind(0, '127.0.0.1', r));
    let datagrams = 0;
    watcher.on('message', () => datagrams++);
    const port = watcher.address().port;
    const a = peer(await tenant(`allow bind:udp://127.0.0.1:*\ndeny udp://127.0.0.1:${port}`));
    const errors: unknown[] = [];
    a.on('establishmentError', (e) => errors.push(e));
    const err = await a.rendezvous({ remote: [`127.0.0.1:${port}`] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EstablishmentError);
    expect((err as EstablishmentError).code).toBe('ERR_TAPS_POLICY_PROHIBITED');
    expect((err as EstablishmentError).report.candidates).toEqual([expect.objectContaining({ fate: 'denied', address: '127.0.0.1', port, code: 'denied' })]);
    expect(errors).toEqual([err]);
    await new Promise((r) => setImmediate(r));
    expect(datagrams).toBe(0);
    await new Promise<void>((r) => watcher.close(r));
  });

  it('gives up after its timeout when the peer never answers, every pair failed', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((r) => silent.bind(0, '127.0.0.1', r));
    let checks = 0;
    silent.on('message', () => checks++);
    const a = peer(await tenant('allow bind:udp://127.0.0.1:*\nallow udp://127.0.0.1:*'));
    const err = (await a.rendezvous({ remote: [`127.0.0.1:${silent.address().port}`], timeout: 300 }).catch((e: unknown) => e)) as EstablishmentError;
    expect(err.code).toBe('ERR_TAPS_TIMEOUT');
    expect(err.report.candidates).toEqual([expect.objectContaining({ fate: 'failed', code: 'ERR_TAPS_TIMEOUT' })]);
    expect(checks).toBeGreaterThan(0);
    await new Promise<void>((r) => silent.close(r));
  });

  it('refuses bad input at once and needs a datagram stack', async () => {
    const scope = await tenant('allow bind:udp://127.0.0.1:*');
    await expect(new Preconnection({ scope }).rendezvous({ remote: ['127.0.0.1:9'] })).rejects.toThrow(/needs a local endpoint/);
    await expect(peer(scope).rendezvous()).rejects.toThrow(TypeError);
    await expect(peer(scope).rendezvous({ remote: ['127.0.0.1:9'], timeout: -1 })).rejects.toThrow(RangeError);
    const reliable = new Preconnection({ scope, drivers: [udpDriver], local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }) });
    await expect(reliable.rendezvous({ remote: ['127.0.0.1:9'] })).rejects.toMatchObject({ code: 'ERR_TAPS_NO_CANDIDATES' });
  });
});
