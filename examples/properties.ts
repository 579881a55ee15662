/**
 * `npm run example:properties` — one echo service, reached with different
 * transport properties; for each, which stack won and why every other
 * candidate did not (RFC 9622 §6.2, RFC 9623 §4.1.3).
 *
 * The service runs on loopback and offers itself the way real services do:
 * TLS on TCP port P and plain datagrams on UDP port P (one port number, two
 * IP protocols), cleartext TCP on its own port, WebSocket over TLS and HTTPS
 * (HTTP/1.1 and HTTP/2) at URLs. Every request below asks by properties; the
 * library picks the stack. When a QUIC or WebTransport driver is installed
 * (transports/quic, transports/webtransport) and can listen, the example
 * serves it too and adds a "multistreaming required" case for it.
 *
 * Options: `--quiet` prints only the winners.
 */
import http2 from 'node:http2';
import { parseArgs } from 'node:util';
import {
  EstablishmentError, Host, Preconnection, SecurityParameters, TransportProperties, isTapsError, lengthPrefixFramer, registeredDrivers,
  type Connection, type Driver, type Listener, type ListenOptions, type MessageContextInit, type RacingOptions, type RemoteEndpointInit,
} from '../src/index.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';
import { rankReasons, say, whyNot, winnerLine } from './lib/report.js';

const { values: flags } = parseArgs({ options: { quiet: { type: 'boolean' } } });
const KNOWN = new Set(['tcp', 'tls', 'udp', 'ws', 'wss', 'http', 'https', 'https2']);
const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1'], kind: 'ec' });
const trustIt = { ca: cert.cert };
const serverIdentity = { certificate: cert.cert, key: cert.key };

// One host, two tenants: the service operator (binds and accepts on loopback) and the application.
const host = new Host({ resolver: async (name, family) => (name === 'localhost' && family === 4 ? [{ address: '127.0.0.1', family: 4 }] : []) });
host.setPolicy('service', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*');
const service = await host.tenant('service');

const listeners: Listener[] = [];
const accepted = new Set<Connection>();
async function echo(init: Omit<ConstructorParameters<typeof Preconnection>[0], 'scope'>, options: ListenOptions = {}): Promise<Listener> {
  const listener = await new Preconnection({ scope: service, ...init }).listen(options);
  listener.on('connectionReceived', (c) => {
    accepted.add(c);
    c.on('closed', () => accepted.delete(c));
    c.on('connectionError', () => accepted.delete(c)); // one of the two ends every connection
    void (async () => {
      for await (const m of c) await c.send(m.data);
      await c.close(); // the client finished: finish our side too
    })().catch(() => c.abort());
  });
  listeners.push(listener);
  return listener;
}

// TLS on TCP port P and UDP on the same port number P (retry if that UDP port is taken).
let tlsEcho: Listener | undefined;
for (let i = 0; i < 5 && tlsEcho === undefined; i++) {
  // multistreaming avoided and only the best stack: this listener is the TLS one (QUIC, when installed, gets its own below).
  const t = await echo({ local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableMessage().avoid('multistreaming'), security: serverIdentity, framers: [lengthPrefixFramer()] }, { stacks: 'best' });
  try {
    await echo({ local: { ipAddress: '127.0.0.1', port: t.port }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
    tlsEcho = t;
  } catch {
    await t.stop();
  }
}
if (tlsEcho === undefined) throw new Error('could not find a port free for both TCP and UDP');
const P = tlsEcho.port;
const plain = await echo({ local: { ipAddress: '127.0.0.1', port: 0 }, properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()] });
const wss = await echo({ local: { ipAddress: '127.0.0.1', port: 0, scheme: 'wss' }, properties: TransportProperties.reliableMessage(), security: serverIdentity });

// HTTPS, HTTP/2 and HTTP/1.1 on one port (the http drivers are clients only; Node's http2 server plays the service).
const sessions = new Set<http2.ServerHttp2Session>();
const h2 = http2.createSecureServer({ cert: cert.cert, key: cert.key, allowHTTP1: true }, (req, res) => {
  const body: Buffer[] = [];
  req.on('data', (c: Buffer) => body.push(c));
  req.on('end', () => res.end(Buffer.concat(body)));
});
h2.on('session', (s: http2.ServerHttp2Session) => (sessions.add(s), s.on('close', () => sessions.delete(s))));
await new Promise<void>((resolve) => h2.listen(0, '127.0.0.1', resolve));
const H = (h2.address() as { port: number }).port;

// Stacks beyond the built-in ones (QUIC, WebTransport) when installed: serve each that can listen.
const extras: { driver: Driver; remote: RemoteEndpointInit | string }[] = [];
for (const d of (await registeredDrivers()).filter((d) => !KNOWN.has(d.id) && typeof d.listen === 'function')) {
  try {
    const scheme = d.schemes?.[0];
    const l = await echo({ drivers: [d], local: { ipAddress: '127.0.0.1', port: 0, ...(scheme ? { scheme } : {}) }, properties: TransportProperties.reliableMessage(), security: serverIdentity, framers: [lengthPrefixFramer()] });
    extras.push({ driver: d, remote: scheme ? `${scheme}://localhost:${l.port}/echo` : `localhost:${l.port}` });
  } catch (err) {
    say(`(${d.id} is installed but could not serve here: ${(err as Error).message})`);
  }
}

const ports = [P, plain.port, wss.port, H, ...extras.map((e) => Number(String(e.remote).match(/:(\d+)/)?.[1]))];
host.setPolicy('app', `allow *://@loopback:${ports.join(',')}`);
const app = await host.tenant('app');

say(`the echo service: TLS on tcp/${P} and datagrams on udp/${P}, cleartext on tcp/${plain.port}, wss://localhost:${wss.port}/echo, https://localhost:${H}/echo`);
say(`the application's policy: allow *://@loopback:${ports.join(',')}`);
say(extras.length ? `also serving: ${extras.map((e) => `${e.driver.id} at ${String(e.remote)}`).join(', ')}\n` : '(no QUIC or WebTransport driver installed: among host:port stacks none is multistreaming)\n');

interface Case {
  readonly title: string;
  readonly remote: RemoteEndpointInit | string;
  readonly properties: TransportProperties;
  readonly security: ConstructorParameters<typeof SecurityParameters>[0] | SecurityParameters;
  readonly framed?: boolean;
  readonly context?: MessageContextInit;
  readonly racing?: RacingOptions['mode'];
}

const wrongPin = '00'.repeat(32);
const cases: Case[] = [
  { title: 'reliable message', remote: `localhost:${P}`, properties: TransportProperties.reliableMessage(), security: trustIt, framed: true },
  { title: 'unreliable datagram', remote: `localhost:${P}`, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() },
  { title: 'multistreaming preferred', remote: `https://localhost:${H}/echo`, properties: TransportProperties.reliableMessage().prefer('multistreaming'), security: trustIt, context: { fields: { method: 'POST' } }, racing: 'failover' },
  { title: 'encryption prohibited', remote: `localhost:${plain.port}`, properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framed: true },
  { title: 'a pinned certificate', remote: `localhost:${P}`, properties: TransportProperties.reliableInorderStream(), security: { pinnedServerCertificates: [cert.fingerprint256] }, framed: true },
  { title: 'a pinned certificate that does not match', remote: `localhost:${P}`, properties: TransportProperties.reliableInorderStream(), security: { pinnedServerCertificates: [wrongPin] }, framed: true },
  { title: 'reliable message at a WebSocket URL', remote: `wss://localhost:${wss.port}/echo`, properties: TransportProperties.reliableMessage(), security: trustIt },
  ...extras.map((e): Case => ({ title: `multistreaming required (${e.driver.id})`, remote: e.remote, properties: TransportProperties.reliableMessage().require('multistreaming'), security: trustIt, framed: true })),
];

const open: Connection[] = [];
for (const [i, c] of cases.entries()) {
  say(`── ${i + 1}. ${c.title} → ${String(c.remote)}`);
  const ranks = rankReasons();
  const pre = new Preconnection({
    scope: app,
    remote: c.remote,
    properties: c.properties,
    security: c.security instanceof SecurityParameters ? c.security : new SecurityParameters(c.security),
    framers: c.framed ? [lengthPrefixFramer()] : [],
    // udp/P answers datagrams, not QUIC: a QUIC candidate there waits for its connect timeout once TLS is out.
    driverOptions: { quic: { connectTimeout: 1000 } },
    // Failover: one candidate at a time in rank order, so the ranking alone picks the winner. Staggered
    // (the default) would start the next one after 250 ms and, on a busy machine, could let it win.
    ...(c.racing ? { racing: { mode: c.racing } } : {}),
  });
  try {
    // Generous bounds: they stop a hang, they do not expect loopback to be fast.
    const conn = await pre.initiate({ signal: AbortSignal.timeout(30_000), onProgress: ranks.onProgress });
    open.push(conn);
    say(`   ${winnerLine(conn.report, ranks.reasons)}`);
    if (!flags.quiet) for (const line of whyNot(conn.report, ranks.reasons)) say(`     ${line}`);
    await conn.send(`hello over ${conn.stack.join('/')}`, c.context);
    const reply = await conn.receive({ signal: AbortSignal.timeout(30_000) });
    say(`   echo: "${reply.text()}"`);
  } catch (err) {
    if (!isTapsError(err)) throw err;
    say(`   ✗ ${err.code}: ${err.message}`);
    if (err instanceof EstablishmentError && !flags.quiet) for (const line of whyNot(err.report, ranks.reasons)) say(`     ${line}`);
  }
  say();
}

for (const c of open) c.abort();
for (const l of listeners) await l.stop();
for (const c of accepted) c.abort(); // a UDP peer never says goodbye: the service lets go of it
for (const s of sessions) s.destroy();
await new Promise((resolve) => h2.close(resolve));
host.close();
say('done.');
