/**
 * QUIC DATAGRAM benchmark: the `quic-dgram` stack against what a user would
 * otherwise pick, side by side in one run (both ends in this process, over
 * loopback, through the library's Preconnection on both sides unless said).
 *
 * - 1 KiB messages delivered per second: datagrams on quic-dgram vs 1 KiB
 *   length-prefixed messages on a `quic` stream of the same package
 *   (alternating rounds, each sender honouring `drain`; the receiver's count
 *   comes back on a reliable message). Goal: datagrams ≥ 1× streams.
 * - one-datagram echo round trip: quic-dgram vs the `udp` driver (the price of
 *   encryption and of the package's JavaScript layer; reported, no goal).
 * - loss on loopback below the congestion window: 50,000 × 1 KiB datagrams
 *   sent as fast as the stack lets them (send() pushback honoured); goal 0.
 * - establishment of a datagram-capable connection: the quic-dgram driver
 *   (policy check, handshake, datagrams negotiated, first flow) vs
 *   `@matrixai/quic` used directly (handshake with datagrams, first stream),
 *   both to the package's own server; goal ≥ 0.9×.
 *
 *   npx tsx bench/quic-datagrams.ts      # table + bench/results/quic-datagrams.json
 *   npm run bench -- quic-dgram
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Connection } from '../src/connection/connection.js';
import type { Driver } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { lengthPrefixFramer } from '../src/framers/index.js';
import type { Listener } from '../src/listener.js';
import { createScope } from '../src/policy/index.js';
import { Preconnection } from '../src/preconnection.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { LOOPBACK_UDP_PAYLOAD, READ_CHUNK, DATAGRAM_RECV_QUEUE, DATAGRAM_SEND_QUEUE } from '../transports/quic/config.js';
import { CLIENT_CRYPTO, loadQuic, serverCrypto } from '../transports/quic/engine.js';
import { quicDgramDriver, quicDriver } from '../transports/quic/index.js';
import { udpDriver } from '../transports/udp/index.js';
import { testCertificate } from '../test/helpers/certs.js';
import { alternate, formatTable, median, row, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const KiB = Buffer.alloc(1024, 0x61);
const RATE_ROUNDS = 7;
const PER_ROUND = 10_000;
const LOSS_COUNT = 50_000;
const PINGS = 2_000;
const CONNECTS = 40;
const drivers: readonly Driver[] = [quicDriver, quicDgramDriver, udpDriver];

const drained = (c: Connection): Promise<void> => new Promise((r) => c.once('drain', () => r()));

/** A listener that counts the messages of each connection and answers `count?` (reliably) with the count; `ping` datagrams echo back. */
async function counter(pre: Preconnection): Promise<Listener> {
  const listener = await pre.listen();
  listener.on('connectionReceived', (c) => {
    let n = 0;
    c.on('received', (m) => {
      if (m.byteLength === 1024) n++;
      else if (m.text() === 'count?') {
        c.send(String(n), m.context.msgReliable === undefined ? {} : { msgReliable: true }).catch(() => {});
        n = 0;
      } else c.send(m.data, m.context.msgReliable === undefined ? {} : { msgReliable: false }).catch(() => {});
    });
  });
  return listener;
}

/** Send `count` KiB messages honouring pushback, then ask the peer how many it got: [delivered, seconds]. */
async function blast(conn: Connection, count: number, reliableAsk: boolean): Promise<[number, number]> {
  const t0 = performance.now();
  for (let i = 0; i < count; i++) {
    void conn.send(KiB).catch(() => {});
    if (conn.sendBlocked) await drained(conn);
  }
  const reply = conn.receive();
  await conn.send('count?', reliableAsk ? { msgReliable: true } : {});
  const got = Number((await reply).text());
  return [got, (performance.now() - t0) / 1000];
}

/** Median one-message echo round trip in µs (a lost datagram is sent again after 200 ms and not timed). */
async function echoRtt(conn: Connection, pings: number): Promise<number[]> {
  const rtts: number[] = [];
  const ping = Buffer.from('ping-64-bytes'.padEnd(64, '.'));
  while (rtts.length < pings) {
    const t0 = performance.now();
    const back = conn.receive({ signal: AbortSignal.timeout(200) });
    back.catch(() => {});
    await conn.send(ping, conn.driver.id === 'quic-dgram' ? { msgReliable: false } : {});
    const ok = await back.then(() => true, () => false);
    if (ok) rtts.push((performance.now() - t0) * 1000);
  }
  return rtts;
}

export async function run(): Promise<BenchRow[]> {
  const { api, logger } = await loadQuic();
  const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
  const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
  const serverSecurity = new SecurityParameters({ certificate: cert.cert, key: cert.key });
  const security = new SecurityParameters({ ca: cert.caCert as string });
  const local = { ipAddress: '127.0.0.1', port: 0 };
  const remote = (port: number) => ({ hostName: 'localhost', ipAddress: '127.0.0.1', port });
  const streams = new TransportProperties({ multistreaming: 'require' });
  const datagrams = TransportProperties.unreliableDatagram();
  const framers = [lengthPrefixFramer()];

  const dgListener = await counter(new Preconnection({ scope, local, properties: datagrams, security: serverSecurity, drivers }));
  const stListener = await counter(new Preconnection({ scope, local, properties: streams, security: serverSecurity, drivers, framers }));
  const udpListener = await counter(new Preconnection({ scope, local, properties: datagrams, security: SecurityParameters.disabled(), drivers }));
  const rawServer = new api.QUICServer({
    crypto: serverCrypto(),
    config: { cert: cert.cert, key: cert.key, verifyPeer: false, applicationProtos: ['taps'], maxSendUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, maxRecvUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, readableChunkSize: READ_CHUNK, enableDgram: [true, DATAGRAM_RECV_QUEUE, DATAGRAM_SEND_QUEUE] },
    logger,
  });
  await rawServer.start({ host: '127.0.0.1', port: 0 });
  const open: Connection[] = [];
  try {
    const dg = await new Preconnection({ scope, remote: remote(dgListener.port), properties: datagrams, security, drivers }).initiate();
    const st = await new Preconnection({ scope, remote: remote(stListener.port), properties: streams, security, drivers, framers }).initiate();
    const ud = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: udpListener.port }, properties: datagrams, security: SecurityParameters.disabled(), drivers }).initiate();
    open.push(dg, st, ud);
    if (dg.driver.id !== 'quic-dgram' || st.driver.id !== 'quic' || ud.driver.id !== 'udp') throw new Error(`unexpected stacks: ${dg.driver.id}, ${st.driver.id}, ${ud.driver.id}`);

    // 1 KiB delivered per second.
    const rates = await alternate(RATE_ROUNDS, async () => {
      const [got, s] = await blast(dg, PER_ROUND, true);
      return got / s;
    }, async () => {
      const [got, s] = await blast(st, PER_ROUND, false);
      if (got !== PER_ROUND) throw new Error(`stream lost messages: ${got}`);
      return got / s;
    });

    // Loss below the congestion window.
    const [delivered, lossSeconds] = await blast(dg, LOSS_COUNT, true);
    const lost = LOSS_COUNT - delivered;

    // Echo round trips.
    const rtt = await alternate(5, () => echoRtt(dg, PINGS / 5), () => echoRtt(ud, PINGS / 5));
    const oursRtt = median(rtt.ours.flat());
    const udpRtt = median(rtt.base.flat());

    // Establishment of a datagram-capable connection, against the package's server.
    const port = rawServer.port as number;
    const oursConnect = async (): Promise<number> => {
      const t0 = performance.now();
      const target = await scope.guard.authorize({ use: 'connect', protocol: 'quic', address: '127.0.0.1', port, hostName: 'localhost' });
      const ch = await quicDgramDriver.connect({ signal: new AbortController().signal, target, remote: RemoteEndpoint.from(remote(port)), security, properties: datagrams, options: {}, guard: scope.guard });
      const ms = performance.now() - t0;
      ch.abort();
      return ms;
    };
    const baseConnect = async (): Promise<number> => {
      const t0 = performance.now();
      const client = await api.QUICClient.createQUICClient({
        host: '127.0.0.1', port, localHost: '127.0.0.1', serverName: 'localhost', crypto: CLIENT_CRYPTO, logger,
        config: { verifyPeer: true, ca: cert.caCert as string, applicationProtos: ['taps'], maxSendUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, maxRecvUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, readableChunkSize: READ_CHUNK, enableDgram: [true, DATAGRAM_RECV_QUEUE, DATAGRAM_SEND_QUEUE] },
      });
      const native = (client.connection as unknown as { conn: { dgramMaxWritableLen(): number | null } }).conn;
      if (native.dgramMaxWritableLen() === null) throw new Error('the package server did not offer datagrams');
      client.connection.newStream('bidi');
      const ms = performance.now() - t0;
      await client.destroy({ force: true });
      return ms;
    };
    const connects = await alternate(CONNECTS, oursConnect, baseConnect);
    const perSecond = (ms: number[]): number[] => ms.slice(4).map((x) => 1000 / x);

    const rttRow = row('one-datagram echo RTT: quic-dgram vs udp driver', oursRtt, udpRtt, 'µs', 'report', `${PINGS} round trips of 64 B each, median (the price of TLS 1.3 and of the package's JavaScript layer)`);
    return [
      pairedRow('1 KiB delivered/s: quic-dgram datagrams vs quic stream messages', rates.ours, rates.base, 'msg/s', '≥ 1×', `${RATE_ROUNDS} alternating rounds of ${PER_ROUND}, one connection each, pushback honoured: medians ${median(rates.ours).toFixed(0)} vs ${median(rates.base).toFixed(0)} msg/s`),
      { ...rttRow, higherIsBetter: false },
      { ...row('loss on loopback below the congestion window (lost of 50,000 × 1 KiB)', lost, LOSS_COUNT, 'datagrams', '≤ 0×', `${delivered} delivered in ${lossSeconds.toFixed(1)} s (${(delivered / lossSeconds).toFixed(0)}/s), send() pushback honoured`), higherIsBetter: false },
      pairedRow('connect with datagrams (handshake + negotiation + first flow): quic-dgram vs @matrixai/quic', perSecond(connects.ours), perSecond(connects.base), 'conn/s', '≥ 0.9×', `${CONNECTS - 4} alternating connects: medians ${median(connects.ours.slice(4)).toFixed(2)} ms vs ${median(connects.base.slice(4)).toFixed(2)} ms (both verify the server against the same CA; ours also runs the policy check)`),
    ];
  } finally {
    for (const c of open) c.abort();
    await Promise.all([dgListener.stop(), stListener.stop(), udpListener.stop()]);
    await rawServer.stop({ force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'quic-dgram' })))}\n`);
  for (const r of rows) process.stdout.write(`${r.name}: ${r.note ?? ''}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'quic-datagrams.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
  process.exit(0);
}
