/**
 * The library as a TLS server for clients nobody on the project wrote: `openssl s_client` (TLS 1.3, TLS
 * 1.2, with and without a client certificate where one is required), Python's `ssl` module (including a
 * client that checks another host name and must refuse), and curl offering h2 by ALPN to an HTTP/1.1
 * listener. Each listener echoes what it receives; each case asserts on what the client printed and on
 * what the library reported (`conn.info`, the connections it handed over).
 */
import { writeFileSync } from 'node:fs';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import type { Listener } from '../../src/listener.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';
import { peer } from './helpers/peers.js';
import { run, tempDir } from './helpers/process.js';

const OPENSSL = peer('openssl');
const PYTHON = peer('python3');
const CURL = peer('curl');

const server = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const client = testCertificate({ kind: 'ec', issuer: 'ca', names: ['interop-client'] });
const tmp = tempDir('tls-clients');
const files = { ca: tmp.path('ca.pem'), clientCert: tmp.path('client.pem'), clientKey: tmp.path('client-key.pem') };
writeFileSync(files.ca, server.caCert!);
writeFileSync(files.clientCert, client.cert);
writeFileSync(files.clientKey, client.key);

const host = new Host();
host.setPolicy('server', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*');
const listeners: Listener[] = [];
afterEach(async () => {
  for (const l of listeners.splice(0)) await l.stop();
});
afterAll(() => {
  host.close();
  tmp.remove();
});

interface Served {
  readonly listener: Listener;
  /** Connections handed to the application, with their info when they arrived. */
  readonly accepted: { info: Readonly<Record<string, unknown>>; stack: readonly string[] }[];
  readonly errors: Error[];
}

/**
 * A TLS echo listener on 127.0.0.1 (a byte stream; every chunk goes back). `reply` answers instead of
 * echoing (e.g. an HTTP response), then closes.
 */
async function serve(opts: { security?: Record<string, unknown>; requestClientCertificate?: boolean; reply?: (c: Connection) => string } = {}): Promise<Served> {
  const listener = await new Preconnection({
    scope: await host.tenant('server'),
    local: { ipAddress: '127.0.0.1', port: 0 },
    properties: TransportProperties.reliableInorderStream(),
    security: new SecurityParameters({ certificate: server.cert, key: server.key, ...opts.security }),
    ...(opts.requestClientCertificate ? { driverOptions: { tls: { requestClientCertificate: true } } } : {}),
  }).listen();
  listeners.push(listener);
  const served: Served = { listener, accepted: [], errors: [] };
  listener.on('error', (e: Error) => served.errors.push(e));
  listener.on('connectionReceived', async (c: Connection) => {
    served.accepted.push({ info: c.info, stack: c.stack });
    try {
      if (opts.reply) {
        await c.receive({ signal: AbortSignal.timeout(5000) });
        await c.send(opts.reply(c));
      } else {
        for await (const m of c) await c.send(m.data);
      }
      await c.close();
    } catch {
      c.abort();
    }
  });
  return served;
}

/** `openssl s_client` to the listener; `-ign_eof` so it waits for the echo before leaving. */
function sClient(port: number, args: readonly string[], input = 'hello from s_client\n'): ReturnType<typeof run> {
  return run(OPENSSL!, ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', files.ca, '-verify_return_error', '-ign_eof', ...args], input);
}

describe.skipIf(OPENSSL === undefined)('openssl s_client · library as server', () => {
  it('TLS 1.3: verified, echoed, and both ends agree on the version', async () => {
    const s = await serve();
    const r = await sClient(s.listener.port, ['-tls1_3']);
    expect(r.stdout).toMatch(/Verify return code: 0 \(ok\)/);
    expect(r.stdout).toMatch(/New, TLSv1\.3,/);
    expect(r.stdout).toContain('hello from s_client');
    expect(s.accepted).toHaveLength(1);
    expect(s.accepted[0]!.info).toMatchObject({ tlsVersion: 'TLSv1.3', serverName: 'localhost' });
  });

  it('TLS 1.2: a client that only speaks 1.2 is served with 1.2', async () => {
    const s = await serve();
    const r = await sClient(s.listener.port, ['-tls1_2']);
    expect(r.stdout).toMatch(/Protocol\s*: TLSv1\.2/);
    expect(r.stdout).toContain('hello from s_client');
    expect(s.accepted[0]!.info['tlsVersion']).toBe('TLSv1.2');
  });

  it('mTLS: a listener requiring a client certificate accepts one signed by its CA and says whose', async () => {
    const s = await serve({ security: { ca: server.caCert! }, requestClientCertificate: true });
    const r = await sClient(s.listener.port, ['-cert', files.clientCert, '-key', files.clientKey]);
    expect(r.stdout).toContain('hello from s_client');
    expect(s.accepted).toHaveLength(1);
    expect(s.accepted[0]!.info).toMatchObject({ authenticated: true, clientCertificateFingerprint256: client.fingerprint256 });
  });

  it('mTLS: without a client certificate the client is refused and nothing is handed over', async () => {
    const s = await serve({ security: { ca: server.caCert! }, requestClientCertificate: true });
    const r = await sClient(s.listener.port, []);
    // TLS 1.3: the server's alert comes after the client's Finished; s_client reports it on its next read.
    expect(`${r.stdout}\n${r.stderr}`).toMatch(/alert certificate required|alert handshake failure/);
    expect(r.stdout).not.toContain('hello from s_client');
    expect(s.accepted).toHaveLength(0);
  });
});

/** A Python `ssl` client: connect, send a line, print the version and the echo, or the exception's class and message. */
const PY_CLIENT = `
import socket, ssl, sys
port, name, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]
ctx = ssl.create_default_context(cafile=cafile)
try:
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname=name) as s:
            s.sendall(b"hello from python\\n")
            got = b""
            while not got.endswith(b"\\n"):
                chunk = s.recv(100)
                if not chunk:
                    break
                got += chunk
            print("version", s.version())
            print("echo", got.decode().strip())
except Exception as e:
    print("error", type(e).__name__, e)
`;

describe.skipIf(PYTHON === undefined)('Python ssl · library as server', () => {
  it('a client checking the listener by name gets TLS 1.3 and its echo', async () => {
    const s = await serve();
    const r = await run(PYTHON!, ['-c', PY_CLIENT, String(s.listener.port), 'localhost', files.ca]);
    expect(r.stdout).toContain('version TLSv1.3');
    expect(r.stdout).toContain('echo hello from python');
    expect(s.accepted[0]!.info['serverName']).toBe('localhost');
  });

  it('a client checking another host name refuses the certificate (hostname mismatch); nothing reaches the application', async () => {
    const s = await serve();
    const r = await run(PYTHON!, ['-c', PY_CLIENT, String(s.listener.port), 'not-this-host.test', files.ca]);
    expect(r.stdout).toMatch(/error SSLCertVerificationError .*[Hh]ostname mismatch/);
    expect(s.accepted).toHaveLength(0);
  });
});

describe.skipIf(CURL === undefined)('curl (ALPN) · library as server', () => {
  const http = (c: Connection): string => {
    const text = `alpn=${String(c.info['alpn'])}`;
    return `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`;
  };

  it('curl --http2 to a listener offering http/1.1 by ALPN: both settle on HTTP/1.1', async () => {
    const s = await serve({ security: { alpn: ['http/1.1'] }, reply: http });
    const port = s.listener.port;
    const r = await run(CURL!, ['-sS', '-v', '--http2', '--cacert', files.ca, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
    expect(r.stderr).toMatch(/ALPN[^\n]*offers h2/);
    expect(r.stderr).toMatch(/ALPN[^\n]*(server accepted|accepted) http\/1\.1|ALPN, server accepted to use http\/1\.1/);
    expect(r.stdout).toBe('alpn=http/1.1');
  });

  it('curl --http2 to a listener without ALPN: no protocol agreed, curl falls back to HTTP/1.1', async () => {
    const s = await serve({ reply: http });
    const port = s.listener.port;
    const r = await run(CURL!, ['-sS', '-v', '--http2', '--cacert', files.ca, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
    expect(r.stderr).toMatch(/ALPN[^\n]*offers h2/);
    expect(r.stderr).toMatch(/server did not agree (on|to) a protocol/);
    expect(r.stdout).toBe('alpn=undefined');
  });
});
