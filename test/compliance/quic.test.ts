/**
 * The `quic` driver (@matrixai/quic) against the driver compliance suite on
 * 127.0.0.1 and ::1: its own listener as the echo server (an EC
 * certificate), the client trusting it through the CA and the checked name.
 * Each channel is one bidirectional stream of a QUIC connection.
 */
import { SecurityParameters } from '../../src/security.js';
import { quicDriver } from '../../transports/quic/index.js';
import { testCertificate } from '../helpers/certs.js';
import { runDriverCompliance } from './suite.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca' });

runDriverCompliance({
  driver: quicDriver,
  serverSecurity: () => new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  security: () => new SecurityParameters({ ca: cert.caCert as string }),
});
