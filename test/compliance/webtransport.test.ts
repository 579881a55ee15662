/**
 * The WebTransport-over-HTTP/2 driver against the driver compliance suite,
 * on 127.0.0.1 and ::1: its own listener as the echo server (a 10-day EC
 * certificate), the client trusting it by pinned hash as WebTransport's
 * `serverCertificateHashes` do; each channel is one bidirectional stream.
 * (The HTTP/3 drivers cannot run here: see test/loopback/webtransport.test.ts.)
 */
import { SecurityParameters } from '../../src/security.js';
import { webtransportH2Driver } from '../../transports/webtransport/index.js';
import { testCertificate } from '../helpers/certs.js';
import { runDriverCompliance } from './suite.js';

const cert = testCertificate({ kind: 'ec', days: 10 });

runDriverCompliance({
  driver: webtransportH2Driver,
  serverSecurity: () => new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  security: () => new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
});
