/**
 * `npm run demo`: the main job in one minute. Starts loopback servers with the
 * library itself, then asks for connections by properties — not by protocol —
 * and prints which candidate won and why every other one did not.
 *
 * Nothing leaves the machine: every address is loopback, and the tenant's
 * policy allows only loopback ports the demo opened.
 */
import {
  Preconnection,
  SecurityParameters,
  TransportProperties,
  createScope,
  explainReport,
  isTapsError,
  lengthPrefixFramer,
  type EstablishmentError,
  type NetworkPolicy,
} from '../src/index.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';

const text = (b: Uint8Array): string => Buffer.from(b).toString();
const say = (s = ''): void => void process.stdout.write(`${s}\n`);

// The host's policy for this tenant: loopback only, and only the ports opened below.
const open = new Set<number>();
const policy: NetworkPolicy = {
  decide(req) {
    if (req.use === 'lookup') return req.host === 'localhost' ? { allow: true, rule: 'lookup localhost' } : { allow: false, code: 'no-match', reason: `may not look up ${req.host}`, rule: null };
    const loopback = req.address === '127.0.0.1' || req.address === '::1' || req.address === '::';
    if (!loopback) return { allow: false, code: 'no-match', reason: `${req.address} is not loopback`, rule: null };
    if (req.use === 'bind' || req.use === 'accept') return { allow: true, rule: `${req.use} loopback` };
    if (req.port !== undefined && open.has(req.port)) return { allow: true, rule: `${req.protocol}://loopback:${req.port}` };
    return { allow: false, code: 'no-match', reason: `port ${req.port} is not one of the demo's`, rule: null };
  },
};
const scope = createScope({ tenant: 'demo', policy });
const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1', '::1'], kind: 'ec' });

// 1. Servers, made with the same API: a message echo over QUIC and TLS on one port number, and a UDP echo.
const tlsServer = await new Preconnection({
  scope,
  local: { hostName: 'localhost', port: 0 }, // both loopbacks: localhost is ::1 and 127.0.0.1 (RFC 6761 §6.3)
  properties: TransportProperties.reliableMessage(),
  security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  framers: [lengthPrefixFramer()],
}).listen({ stacks: 'all' }); // every suitable stack: QUIC (udp) and TLS (tcp), sharing the port number
const accepted: { close(): Promise<void> }[] = [];
tlsServer.on('connectionReceived', async (c) => {
  accepted.push(c);
  try {
    for await (const m of c) await c.send(`echo: ${text(m.data)}`);
    await c.close(); // the client finished: close our side too
  } catch (err) {
    say(`a peer's connection failed: ${String(err)}`); // a bad peer ends its own connection, not the server
  }
});
open.add(tlsServer.port);

const udpServer = await new Preconnection({
  scope,
  local: { ipAddress: '127.0.0.1', port: 0 },
  properties: TransportProperties.unreliableDatagram(),
  security: SecurityParameters.disabled(),
}).listen();
udpServer.on('connectionReceived', async (c) => {
  accepted.push(c); // one connection per remote address; UDP has no end, so we close it below
  try {
    for await (const m of c) await c.send(m.data);
  } catch {
    // closed below, or failed: either way that peer's connection is over
  }
});
open.add(udpServer.port);
say(`servers: message echo over ${tlsServer.stacks.join(' and ')} on localhost:${tlsServer.port}, UDP echo on 127.0.0.1:${udpServer.port}\n`);

async function attempt(title: string, pre: Preconnection, message: string): Promise<void> {
  say(`── ${title}`);
  try {
    // Generous bounds: they stop a hang, they do not expect loopback to be fast.
    await using conn = await pre.initiate({ signal: AbortSignal.timeout(30_000) });
    say(explainReport(conn.report));
    await conn.send(message);
    const reply = await conn.receive({ signal: AbortSignal.timeout(30_000) });
    say(`  → sent "${message}", got "${text(reply.data)}"\n`);
  } catch (err) {
    if (!isTapsError(err)) throw err;
    say(`  ✗ ${err.code}: ${err.message}`);
    const report = (err as EstablishmentError).report;
    if (report) say(explainReport(report));
    say();
  }
}

// 2. Reliable messages, encrypted by default. Multistreaming is preferred by default (RFC 9622 §6.2), but
//    a QUIC stack is not raced blind ahead of TCP: TLS with a length-prefix framer is ranked first and wins,
//    and QUIC would start one attempt delay later only if TLS had not answered.
await attempt(
  'reliable-message to localhost (certificate pinned)',
  new Preconnection({
    scope,
    remote: { hostName: 'localhost', port: tlsServer.port },
    properties: TransportProperties.reliableMessage(),
    security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
    framers: [lengthPrefixFramer()],
  }),
  'hello over whatever won',
);

// 2b. The same, with multistreaming preferred explicitly: QUIC is ranked first and wins. The tenant's racing
//     cache remembers it, so its next default selection to this port ranks QUIC first too.
await attempt(
  'reliable-message, multistreaming preferred',
  new Preconnection({
    scope,
    remote: { hostName: 'localhost', port: tlsServer.port },
    properties: TransportProperties.reliableMessage().prefer('multistreaming'),
    security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
    framers: [lengthPrefixFramer()],
  }),
  'hello over QUIC',
);

// 3. Unreliable datagrams, security explicitly disabled: UDP wins, TCP is only "avoided" and never started.
await attempt(
  'unreliable-datagram to 127.0.0.1',
  new Preconnection({
    scope,
    remote: { ipAddress: '127.0.0.1', port: udpServer.port },
    properties: TransportProperties.unreliableDatagram(),
    security: SecurityParameters.disabled(),
  }),
  'a datagram',
);

// 4. The tenant's policy has the last word: a port it did not open is refused before any packet leaves.
await attempt(
  'reliable-inorder-stream to a port the policy does not allow',
  new Preconnection({
    scope,
    remote: { ipAddress: '127.0.0.1', port: 9 },
    properties: TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(),
  }),
  'never sent',
);

// Stopping a listener leaves the connections it delivered open (RFC 9622 §7.2); close them too.
await tlsServer.stop();
await udpServer.stop();
await Promise.all(accepted.map((c) => c.close()));
say('done.');
