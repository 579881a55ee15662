/**
 * The HTTP drivers against the driver compliance suite: `http` (HTTP/1.1 over
 * TCP), `https` (HTTP/1.1 over TLS) and `https2` (HTTP/2 over TLS), each
 * against a Node echo server of its version (a request's body comes back as
 * its response). The drivers have no listener of their own.
 */
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import type { Socket } from 'node:net';
import { RemoteEndpoint } from '../../src/endpoints.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver, httpsDriver, https2Driver } from '../../transports/http/index.js';
import { testCertificate } from '../helpers/certs.js';
import type { ComplianceServer } from './suite.js';
import { runDriverCompliance } from './suite.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca' });

const echo = (req: http.IncomingMessage, res: http.ServerResponse): void => {
  res.writeHead(200, { 'content-type': 'application/octet-stream' });
  req.pipe(res);
};

function echoServer(kind: 'http' | 'https' | 'h2') {
  return async (address: string): Promise<ComplianceServer> => {
    const tls = { cert: cert.cert, key: cert.key };
    const server =
      kind === 'http'
        ? http.createServer(echo)
        : kind === 'https'
          ? https.createServer({ ...tls, ALPNProtocols: ['http/1.1'] }, echo)
          : http2.createSecureServer(tls, echo as never);
    const sockets = new Set<Socket>();
    const sessions = new Set<http2.ServerHttp2Session>();
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
    server.on('session', (s: http2.ServerHttp2Session) => {
      sessions.add(s);
      s.on('close', () => sessions.delete(s));
    });
    await new Promise<void>((r) => server.listen(0, address, () => r()));
    return {
      port: (server.address() as { port: number }).port,
      close: () =>
        new Promise<void>((r) => {
          for (const s of sessions) s.destroy();
          for (const s of sockets) s.destroy();
          server.close(() => r());
        }),
    };
  };
}

const withScheme = (scheme: 'http' | 'https') => (base: Parameters<NonNullable<Parameters<typeof runDriverCompliance>[0]['attempt']>>[0]) => ({
  ...base,
  remote: RemoteEndpoint.from({
    ...(base.target.hostName ? { hostName: base.target.hostName } : {}),
    ipAddress: base.target.address,
    port: base.target.port,
    scheme,
    path: '/echo',
  }),
});

runDriverCompliance({ driver: httpDriver, echoServer: echoServer('http'), attempt: withScheme('http') });

for (const [driver, kind] of [[httpsDriver, 'https'], [https2Driver, 'h2']] as const) {
  runDriverCompliance({
    driver,
    echoServer: echoServer(kind),
    security: () => new SecurityParameters({ ca: cert.caCert as string }),
    attempt: withScheme('https'),
  });
}
