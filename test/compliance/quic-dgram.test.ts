/**
 * The `quic-dgram` driver (QUIC DATAGRAM, RFC 9221, on @matrixai/quic)
 * against the driver compliance suite on 127.0.0.1 and ::1, and against the
 * unreliable-stack variant (./unreliable.ts) that the udp driver runs too.
 * Its echo server is its own listener; each channel is one flow of a QUIC
 * connection, whose messages go as datagrams unless they ask for more.
 */
import { SecurityParameters } from '../../src/security.js';
import { quicDgramDriver } from '../../transports/quic/index.js';
import { testCertificate } from '../helpers/certs.js';
import { runDriverCompliance } from './suite.js';
import { runUnreliableCompliance } from './unreliable.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca' });
const serverSecurity = (): SecurityParameters => new SecurityParameters({ certificate: cert.cert, key: cert.key });
const security = (): SecurityParameters => new SecurityParameters({ ca: cert.caCert as string });

runDriverCompliance({ driver: quicDgramDriver, serverSecurity, security });
runUnreliableCompliance({ driver: quicDgramDriver, serverSecurity, security });
