/** The tls driver against the driver compliance suite (a CA-signed certificate, trusted through `ca`). */
import { SecurityParameters } from '../../src/security.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';
import { runDriverCompliance } from './suite.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca' });

runDriverCompliance({
  driver: tlsDriver,
  serverSecurity: () => new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  security: () => new SecurityParameters({ ca: cert.caCert as string }),
});
