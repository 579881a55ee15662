/**
 * QUIC benchmark: the `quic` driver against `@matrixai/quic` used
 * directly with the same settings (32 KiB UDP payloads and 64 KiB read
 * chunks on loopback, as the driver uses), both talking to one QUICServer of
 * the package in this process. Rounds alternate between the two clients.
 *
 * - stream throughput: 4 MiB up one bidirectional stream in 64 KiB writes,
 *   each side waiting for its own backpressure signal; the server counts and
 *   answers with the count at FIN; MiB/s. The absolute figure is the
 *   package's own ceiling (its JS layer), reported beside the ratio.
 * - connect time: policy check + handshake + first stream (ours), or
 *   handshake + first stream (the package); connects per second.
 * Goal for both: ours ≥ 0.9× the package.
 * - close: from the end of an exchange (the server's reply and FIN in) to
 *   the client's UDP socket released: the driver's close() against the
 *   package's `destroy()`, which waits out the closing period (three PTOs,
 *   RFC 9000 §10.2) that the driver ends once its CONNECTION_CLOSE left.
 *   Goal: ours ≤ 0.5× the package.
 *
 *   npx tsx bench/quic.ts   # table + bench/results/quic.json
 *   npx tsx bench/run.ts quic
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { QUICConnection, QUICStream } from '@matrixai/quic';
import type { ChannelReceiver, TransportChannel } from '../src/driver.js';
import { RemoteEndpoint } from '../src/endpoints.js';
import { createScope } from '../src/policy/index.js';
import { TransportProperties } from '../src/properties.js';
import { SecurityParameters } from '../src/security.js';
import { LOOPBACK_UDP_PAYLOAD, READ_CHUNK } from '../transports/quic/config.js';
import { CLIENT_CRYPTO, loadQuic, serverCrypto } from '../transports/quic/engine.js';
import { quicDriver } from '../transports/quic/index.js';
import { testCertificate } from '../test/helpers/certs.js';
import { alternate, formatTable, median, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';

const MiB = 1024 * 1024;
const BULK = 4 * MiB;
const CHUNK = 64 * 1024;
const BULK_ROUNDS = 20; // 12 left the median of per-pair ratios swinging 0.87-1.03 between runs on this VM
const CONNECTS = 40;
const CLOSES = 20;
const SETTINGS = { maxSendUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, maxRecvUdpPayloadSize: LOOPBACK_UDP_PAYLOAD, readableChunkSize: READ_CHUNK };

export async function run(): Promise<BenchRow[]> {
  const { api, logger } = await loadQuic();
  const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
  const ca = cert.caCert as string;
  const server = new api.QUICServer({ crypto: serverCrypto(), config: { cert: cert.cert, key: cert.key, verifyPeer: false, applicationProtos: ['taps'], ...SETTINGS }, logger });
  server.addEventListener(api.events.EventQUICServerConnection.name, (evt: Event) => {
    const conn = (evt as unknown as { detail: QUICConnection }).detail;
    conn.addEventListener(api.events.EventQUICConnectionStream.name, (e: Event) => {
      const s = (e as unknown as { detail: QUICStream }).detail;
      void (async () => {
        let n = 0;
        const r = s.readable.getReader();
        for (;;) {
          const { value, done } = await r.read();
          if (done) break;
          n += value.byteLength;
        }
        const w = s.writable.getWriter();
        await w.write(Buffer.from(String(n)));
        await w.close();
      })().catch(() => {});
    });
  });
  await server.start({ host: '127.0.0.1', port: 0 });
  const port = server.port as number;
  const scope = createScope({ tenant: 'bench', policy: { decide: () => ({ allow: true, rule: 'bench' }) } });
  const security = new SecurityParameters({ ca });
  const payload = Buffer.alloc(CHUNK, 0x61);

  const oursOpen = async (): Promise<TransportChannel> => {
    const target = await scope.guard.authorize({ use: 'connect', protocol: 'quic', address: '127.0.0.1', port, hostName: 'localhost' });
    return quicDriver.connect({ signal: new AbortController().signal, target, remote: RemoteEndpoint.from({ hostName: 'localhost', ipAddress: '127.0.0.1', port }), security, properties: new TransportProperties(), options: {}, guard: scope.guard });
  };
  const baseOpen = async () => {
    // The package verifies the server too (natively, against the same CA): equal security on both sides.
    const client = await api.QUICClient.createQUICClient({ host: '127.0.0.1', port, localHost: '127.0.0.1', serverName: 'localhost', crypto: CLIENT_CRYPTO, logger, config: { verifyPeer: true, ca, applicationProtos: ['taps'], ...SETTINGS } });
    return { client, stream: client.connection.newStream('bidi') };
  };

  const oursBulk = async (): Promise<number> => {
    const ch = await oursOpen();
    let reply = '';
    let drained: (() => void) | undefined;
    let ended!: () => void;
    const replied = new Promise<void>((resolve) => (ended = resolve));
    const closed = new Promise<void>((resolve) => {
      const rx: ChannelReceiver = { data: (b) => void (reply += Buffer.from(b).toString()), end: () => ended(), drain: () => drained?.(), closed: () => resolve() };
      ch.start(rx);
    });
    const t0 = performance.now();
    for (let sent = 0; sent < BULK; sent += CHUNK) {
      const last = sent + CHUNK >= BULK;
      if (!ch.send(payload, last ? { final: true } : {}, () => {})) await new Promise<void>((r) => (drained = r));
    }
    // Timed to the same point as the package: the server's count and FIN are in. Closing is not timed on either side.
    await replied;
    const dt = (performance.now() - t0) / 1000;
    await ch.close();
    await closed;
    if (Number(reply) !== BULK) throw new Error(`ours: the server counted ${reply}`);
    return BULK / MiB / dt;
  };
  const baseBulk = async (): Promise<number> => {
    const { client, stream } = await baseOpen();
    const t0 = performance.now();
    const w = stream.writable.getWriter();
    for (let sent = 0; sent < BULK; sent += CHUNK) {
      await w.ready;
      void w.write(payload);
    }
    await w.close();
    let reply = '';
    for await (const c of stream.readable) reply += Buffer.from(c).toString();
    const dt = (performance.now() - t0) / 1000;
    await client.destroy({ force: true });
    if (Number(reply) !== BULK) throw new Error(`package: the server counted ${reply}`);
    return BULK / MiB / dt;
  };
  const oursConnect = async (): Promise<number> => {
    const t0 = performance.now();
    const ch = await oursOpen();
    const ms = performance.now() - t0;
    ch.abort();
    return ms;
  };
  const baseConnect = async (): Promise<number> => {
    const t0 = performance.now();
    const { client } = await baseOpen();
    const ms = performance.now() - t0;
    await client.destroy({ force: true });
    return ms;
  };

  /** One message and its reply; then the time to release the client: close() resolves with its socket closed. */
  const oursClose = async (): Promise<number> => {
    const ch = await oursOpen();
    const ended = new Promise<void>((resolve) => ch.start({ data() {}, end: () => resolve(), drain() {}, closed() {} }));
    ch.send(payload, { final: true }, () => {});
    await ended;
    const t0 = performance.now();
    await ch.close();
    return performance.now() - t0;
  };
  const baseClose = async (): Promise<number> => {
    const { client, stream } = await baseOpen();
    const w = stream.writable.getWriter();
    await w.write(payload);
    await w.close();
    for await (const _ of stream.readable) void _;
    const t0 = performance.now();
    await client.destroy({ force: true });
    return performance.now() - t0;
  };

  try {
    const { ours, base } = await alternate(BULK_ROUNDS, oursBulk, baseBulk);
    const { ours: oursMs, base: baseMs } = await alternate(CONNECTS, oursConnect, baseConnect);
    const o = median(ours);
    const b = median(base);
    const om = median(oursMs.slice(4));
    const bm = median(baseMs.slice(4));
    const perSecond = (ms: number[]): number[] => ms.slice(4).map((x) => 1000 / x);
    const closes = await alternate(CLOSES, oursClose, baseClose);
    return [
      pairedRow('stream throughput up: quic driver vs @matrixai/quic', ours, base, 'MiB/s', '≥ 0.9×', `4 MiB in 64 KiB writes, ${BULK_ROUNDS} alternating rounds: medians ${o.toFixed(2)} vs ${b.toFixed(2)} MiB/s (the package's own ceiling)`),
      pairedRow('connect (handshake + first stream): quic driver vs @matrixai/quic', perSecond(oursMs), perSecond(baseMs), 'conn/s', '≥ 0.9×', `${CONNECTS - 4} alternating connects: medians ${om.toFixed(2)} ms vs ${bm.toFixed(2)} ms (both verify the server against the same CA; ours also runs the policy check)`),
      {
        ...pairedRow('close (reply in → client socket released): quic driver vs @matrixai/quic destroy()', closes.ours, closes.base, 'ms', '≤ 0.5×', `${CLOSES} alternating closes after one 64 KiB message and its reply (the package waits out three PTOs, RFC 9000 §10.2)`),
        higherIsBetter: false,
      },
    ];
  } finally {
    await server.stop({ force: true });
  }
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'quic' })))}\n`);
  for (const r of rows) process.stdout.write(`${r.name}: ${r.note ?? ''}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'quic.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
