/**
 * `npm run example:quick-start`: the README's quick start, run for real. The
 * part between the `quick-start` markers is copied verbatim into README.md
 * (test/docs.test.ts keeps the two equal); around it, a loopback TLS echo
 * server made with the library itself so the snippet has something to reach.
 */
import type { TenantScope } from '../src/index.js';
// (imports are hoisted: the server below uses the ones in the quick-start block)
import { selfSignedCertificate } from '../transports/tls/certificates.js';

const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1', '::1'], kind: 'ec' });
const caPem = cert.cert;
const server = await new Preconnection({
  scope: await createServerScope(),
  local: { ipAddress: '127.0.0.1', port: 0 },
  properties: TransportProperties.reliableMessage(),
  security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  framers: [lengthPrefixFramer()],
}).listen();
server.on('connectionReceived', async (c) => {
  for await (const m of c) await c.send(m.data);
  await c.close();
});
const port = server.port;

function createServerScope(): Promise<TenantScope> {
  const h = new Host();
  h.setPolicy('server', 'allow bind:tls://@loopback:*\nallow accept:tls://@loopback:*');
  return h.tenant('server');
}

// quick-start:begin
import { Host, Preconnection, SecurityParameters, TransportProperties, explainReport, isTapsError, lengthPrefixFramer } from '../src/index.js';

const host = new Host();                             // owns every tenant's policy
host.setPolicy('me', `allow tls://@loopback:${port}`); // localhost: the preset grants lookup and addresses
const pre = new Preconnection({
  scope: await host.tenant('me'),                    // the only way to carry a tenant: no scope, no network
  remote: { hostName: 'localhost', port },
  properties: TransportProperties.reliableMessage(), // reliable + ordered + message boundaries
  security: new SecurityParameters({ ca: caPem }),   // encrypted by default; never silently downgraded
  framers: [lengthPrefixFramer()],                   // lets TLS/TCP byte streams carry messages
});
try {
  await using conn = await pre.initiate({ signal: AbortSignal.timeout(5_000) });
  console.log(explainReport(conn.report));           // every candidate and its fate
  await conn.send('hello');
  for await (const msg of conn) { console.log(new TextDecoder().decode(msg.data)); break; }
} catch (err) {
  if (isTapsError(err)) console.error(err.code, err.message); // e.g. ERR_TAPS_POLICY_PROHIBITED
  else throw err;
}
// quick-start:end

await server.stop();
