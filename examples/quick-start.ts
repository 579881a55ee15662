/**
 * `npm run example:quick-start`: the README's quick start, run for real. The
 * part between the `quick-start` markers is copied verbatim into README.md
 * (test/docs.test.ts keeps the two equal, with the imports naming the
 * package), and it is plain JavaScript: test/package/packed.test.ts runs the
 * README's copy as `quick-start.mjs` against the packed package, as a reader
 * would paste it.
 */
// quick-start:begin
import { Host, Preconnection, SecurityParameters, TransportProperties, explainReport, isTapsError, lengthPrefixFramer } from '../src/index.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';

const host = new Host();                                   // owns every tenant's policy
host.setPolicy('server', 'allow bind:tls://@loopback:*\nallow accept:tls://@loopback:*');
host.setPolicy('me', 'allow tls://@loopback:*');           // localhost: the preset grants lookup and addresses

// A TLS echo server on loopback with a throwaway certificate (ECDSA P-256, 10 days).
const { cert, key } = selfSignedCertificate({ names: ['localhost'] });
const server = await new Preconnection({
  scope: await host.tenant('server'),
  local: { ipAddress: '127.0.0.1', port: 0 },
  properties: TransportProperties.reliableMessage(),
  security: new SecurityParameters({ certificate: cert, key }),
  framers: [lengthPrefixFramer()],
}).listen();
server.on('connectionReceived', async (c) => {
  try {
    for await (const msg of c) await c.send(msg.data);     // echo until the client closes
    await c.close();
  } catch (err) {
    console.error(`a peer's connection failed: ${err}`);   // it ends that connection, never the server
  }
});

// The client asks by properties, not by protocol.
const pre = new Preconnection({
  scope: await host.tenant('me'),                          // the only way to carry a tenant: no scope, no network
  remote: { hostName: 'localhost', port: server.port },
  properties: TransportProperties.reliableMessage(),       // reliable + ordered + message boundaries
  security: new SecurityParameters({ ca: cert }),          // encrypted by default; never silently downgraded
  framers: [lengthPrefixFramer()],                         // lets TLS/TCP byte streams carry messages
});
try {
  const conn = await pre.initiate({ signal: AbortSignal.timeout(5_000) });
  console.log(explainReport(conn.report));                 // every candidate and its fate
  await conn.send('hello');
  const reply = await conn.receive();
  console.log(new TextDecoder().decode(reply.data));       // hello
  await conn.close();
} catch (err) {
  if (isTapsError(err)) console.error(err.code, err.message); // e.g. ERR_TAPS_POLICY_PROHIBITED
  else throw err;
} finally {
  await server.stop();
  host.close();
}
// quick-start:end
