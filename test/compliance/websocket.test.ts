/**
 * The WebSocket drivers against the driver compliance suite: `ws` (over TCP)
 * and `wss` (over TLS, a CA-signed certificate trusted through `ca`), each
 * with its own listener as the echo server and a path on the endpoint.
 */
import { RemoteEndpoint } from '../../src/endpoints.js';
import { SecurityParameters } from '../../src/security.js';
import { wsDriver, wssDriver } from '../../transports/websocket/index.js';
import { testCertificate } from '../helpers/certs.js';
import { runDriverCompliance } from './suite.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca' });

runDriverCompliance({
  driver: wsDriver,
  attempt: (base) => ({ ...base, remote: RemoteEndpoint.from({ ipAddress: base.target.address, port: base.target.port, scheme: 'ws', path: '/echo' }) }),
});

runDriverCompliance({
  driver: wssDriver,
  serverSecurity: () => new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  security: () => new SecurityParameters({ ca: cert.caCert as string }),
  attempt: (base) => ({ ...base, remote: RemoteEndpoint.from({ hostName: 'localhost', ipAddress: base.target.address, port: base.target.port, scheme: 'wss', path: '/echo' }) }),
});
