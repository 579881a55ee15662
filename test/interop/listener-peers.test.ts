/**
 * Peers nobody on the project wrote reach a listener built with the defaults: `openssl s_client` sends a
 * length-prefixed message to a listener made like the README's quick start server (reliable messages,
 * the length-prefix framer, the default drivers) and gets its echo; `curl` gets an HTTP answer from a
 * listener with the default properties, on 127.0.0.1 and on a `[::]` listener over both loopbacks. Each
 * listener also has QUIC bound on the same port number (the default binds every allowed stack).
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { explainReport } from '../../src/index.js';
import type { Listener } from '../../src/listener.js';
import { createScope, type NetworkScope } from '../../src/policy/chokepoint.js';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';
import { peer } from './helpers/peers.js';

const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const dir = mkdtempSync(join(tmpdir(), 'taps-listener-peers-'));
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, cert.caCert as string);
const listeners: Listener[] = [];
afterAll(async () => {
  for (const l of listeners) await l.stop();
  rmSync(dir, { recursive: true, force: true });
});

/** Run a peer program with `input` on stdin; resolves with its exit code and output (killed after 10 s). */
function run(cmd: string, args: readonly string[], input: Buffer | string = ''): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    p.stdin.end(input);
  });
}

async function serverScope(): Promise<NetworkScope> {
  const host = new Host();
  host.setPolicy('server', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*');
  return host.tenant('server');
}

const OPENSSL = peer('openssl');
const CURL = peer('curl');

describe.skipIf(OPENSSL === undefined)('openssl s_client · library as server', () => {
  it('a length-prefixed message to the quick start server comes back framed', async () => {
    const listener = await new Preconnection({
      scope: await serverScope(),
      local: { ipAddress: '127.0.0.1', port: 0 },
      properties: TransportProperties.reliableMessage(),
      security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
      framers: [lengthPrefixFramer()],
    }).listen();
    listeners.push(listener);
    console.log(explainReport(listener.report));
    expect(listener.stacks).toContain('tls');
    expect(listener.stacks).toContain('quic');
    // One echo, then close: s_client (with -quiet it ignores its stdin's end) exits when the server closes.
    listener.on('connectionReceived', async (c) => {
      try {
        await c.send((await c.receive({ signal: AbortSignal.timeout(5000) })).data);
        await c.close();
      } catch {
        c.abort();
      }
    });
    const body = Buffer.from('hello from openssl');
    const header = Buffer.alloc(4);
    header.writeUInt32BE(body.length);
    // -quiet implies -ign_eof: s_client exits when the server closes, after the echo.
    const r = await run('openssl', ['s_client', '-connect', `127.0.0.1:${listener.port}`, '-servername', 'localhost', '-CAfile', caFile, '-verify_return_error', '-quiet'], Buffer.concat([header, body]));
    expect(r.stderr).not.toMatch(/verify error/);
    expect(r.stdout.readUInt32BE(0)).toBe(body.length);
    expect(r.stdout.subarray(4).toString()).toBe('hello from openssl');
  });
});

describe.skipIf(CURL === undefined)('curl · library as server', () => {
  /** A listener with the default properties (a byte stream) that answers every request with one HTTP response. */
  async function httpish(local: { ipAddress?: string; port: number }, scope: NetworkScope): Promise<Listener> {
    const listener = await new Preconnection({ scope, local, security: new SecurityParameters({ certificate: cert.cert, key: cert.key }) }).listen();
    listeners.push(listener);
    listener.on('connectionReceived', async (c) => {
      try {
        await c.receive({ signal: AbortSignal.timeout(5000) });
        const text = `served by ${c.stack.join('/')}`;
        await c.send(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`);
        await c.close();
      } catch {
        c.abort();
      }
    });
    return listener;
  }

  it('an HTTPS request to a listener with the default properties on 127.0.0.1 gets its answer over TLS', async () => {
    const listener = await httpish({ ipAddress: '127.0.0.1', port: 0 }, await serverScope());
    expect(listener.stacks).toEqual(['quic', 'tls']);
    const r = await run('curl', ['-sS', '--cacert', caFile, '--resolve', `localhost:${listener.port}:127.0.0.1`, `https://localhost:${listener.port}/`]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout.toString()).toBe('served by tls/tcp');
  });

  it('a listener on every interface (`[::]`, dual-stack) answers over ::1 and 127.0.0.1', async () => {
    const scope = createScope({ tenant: 'any', policy: { decide: () => ({ allow: true, rule: 'test' }) } });
    const listener = await httpish({ port: 0 }, scope);
    expect(listener.localAddresses.map((a) => a.address)).toEqual(['::', '::']);
    for (const address of ['::1', '127.0.0.1']) {
      const r = await run('curl', ['-sS', '--cacert', caFile, '--resolve', `localhost:${listener.port}:${address}`, `https://localhost:${listener.port}/`]);
      expect(r.stderr).toBe('');
      expect(r.stdout.toString()).toBe('served by tls/tcp');
    }
  });
});
