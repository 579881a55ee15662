/**
 * A QUIC echo peer in its own process, for test/loopback/quic-peer-lost.test.ts: a `quic` or `quic-dgram`
 * listener through the library on 127.0.0.1, every message echoed back reliably. It prints one JSON line,
 * `{ port, fingerprint }` (the SHA-256 pin of its self-signed certificate), and then serves until it is
 * killed: the test kills it with SIGKILL, as a crashed peer process goes, with nothing sent.
 * Run as `node --import tsx test/helpers/quic-peer-child.ts <quic|quic-dgram>`.
 */
import { writeSync } from 'node:fs';
import { createScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDgramDriver, quicDriver } from '../../transports/quic/index.js';
import { selfSignedCertificate } from '../../transports/tls/certificates.js';

const stack = process.argv[2];
if (stack !== 'quic' && stack !== 'quic-dgram') throw new RangeError(`stack must be quic or quic-dgram, got ${stack}`);

const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1'], kind: 'ec' });
const listener = await new Preconnection({
  scope: createScope({ tenant: 'peer', policy: { decide: () => ({ allow: true, rule: 'test' }) } }),
  local: { ipAddress: '127.0.0.1', port: 0 },
  properties: stack === 'quic' ? new TransportProperties({ multistreaming: 'require' }) : TransportProperties.unreliableDatagram(),
  security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  drivers: [stack === 'quic' ? quicDriver : quicDgramDriver],
}).listen();
listener.on('connectionReceived', (c) => {
  void (async () => {
    try {
      for await (const m of c) await c.send(m.data, { msgReliable: true });
    } catch {
      // the client went away
    }
  })();
});
writeSync(1, `${JSON.stringify({ port: listener.port, fingerprint: cert.fingerprint256 })}\n`);
