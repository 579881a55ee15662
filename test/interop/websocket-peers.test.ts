/**
 * The library as a WebSocket server (a `ws:` or `wss:` listener) for clients nobody on the project wrote:
 * Python's `websockets` and headless Chromium. Each client sends a text and a binary message and prints
 * the type and content of each echo; the listener records the type of what it received and echoes text
 * as a string (which must go out as a text frame by default) and bytes as bytes. Chromium loads a tiny page
 * from a loopback HTTP server and reports its result back to it (and the test reads the DOM with `--dump-dom`); for `wss:` it
 * trusts exactly the listener's key (`--ignore-certificate-errors-spki-list`), nothing else.
 */
import { createHash, createPublicKey } from 'node:crypto';
import { createServer, type Server } from 'node:http';
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

const PYTHON = peer('python3', ['-c', 'import websockets']);
const CHROMIUM = peer('chromium');

const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost', '127.0.0.1', '::1'] });
const tmp = tempDir('websocket-peers');
writeFileSync(tmp.path('ca.pem'), cert.caCert!);
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

interface Echo {
  readonly listener: Listener;
  /** What the listener received: 'text:<message>' or 'binary:<bytes>'. */
  readonly received: string[];
}

const show = (binary: unknown, data: Uint8Array): string => (binary === true ? `binary:${[...data].join(',')}` : `text:${new TextDecoder().decode(data)}`);

/** A WebSocket echo listener on 127.0.0.1: text back as a string, bytes back as bytes. */
async function echoListener(scheme: 'ws' | 'wss'): Promise<Echo> {
  const listener = await new Preconnection({
    scope: await host.tenant('server'),
    local: { ipAddress: '127.0.0.1', port: 0, scheme },
    properties: TransportProperties.reliableMessage(),
    security: scheme === 'wss' ? new SecurityParameters({ certificate: cert.cert, key: cert.key }) : SecurityParameters.disabled(),
  }).listen();
  listeners.push(listener);
  const echo: Echo = { listener, received: [] };
  listener.on('connectionReceived', async (c: Connection) => {
    try {
      for await (const m of c) {
        const binary = m.context.fields?.['binary'];
        echo.received.push(show(binary, m.data));
        await (binary === true ? c.send(m.data) : c.send(m.text()));
      }
      await c.close();
    } catch {
      c.abort();
    }
  });
  return echo;
}

/** A Python websockets client: a text and a binary message; prints each echo's type and content. */
const PY_CLIENT = `
import asyncio, ssl, sys, websockets
async def main():
    ctx = ssl.create_default_context(cafile=sys.argv[2]) if sys.argv[1].startswith("wss:") else None
    async with websockets.connect(sys.argv[1], ssl=ctx, open_timeout=5) as ws:
        for m in ("hello from python", bytes([1, 2, 3])):
            await ws.send(m)
            r = await asyncio.wait_for(ws.recv(), 5)
            print(("text:" + r) if isinstance(r, str) else ("binary:" + ",".join(str(b) for b in r)), flush=True)
asyncio.run(main())
`;

describe.skipIf(PYTHON === undefined)('Python websockets · library as server', () => {
  it.each(['ws', 'wss'] as const)('%s: a text and a binary message echoed, each with its own frame type', async (scheme) => {
    const echo = await echoListener(scheme);
    const r = await run(PYTHON!, ['-c', PY_CLIENT, `${scheme}://localhost:${echo.listener.port}/echo`, tmp.path('ca.pem')]);
    expect(r.stderr).toBe('');
    expect(r.stdout.trim().split('\n')).toEqual(['text:hello from python', 'binary:1,2,3']);
    expect(echo.received).toEqual(['text:hello from python', 'binary:1,2,3']);
  });
});

/**
 * The page: open the socket named after '#', send text then binary, and report both echoes to the page
 * server (`/done`). Its last script (`/wait`) is answered only once that report came (or after 15 s), so the
 * page finishes loading, and `--dump-dom` prints it, after the exchange however slow the machine is.
 */
const PAGE = `<!doctype html><html><body><pre id=out>pending</pre><script>
const out = document.getElementById('out');
const ws = new WebSocket(location.hash.slice(1));
ws.binaryType = 'arraybuffer';
const log = [];
const report = (text) => { out.textContent = text; fetch('/done', { method: 'POST', body: text }); };
ws.onopen = () => { ws.send('hello from chromium'); ws.send(new Uint8Array([1, 2, 3]).buffer); };
ws.onmessage = (e) => {
  log.push(typeof e.data === 'string' ? 'text:' + e.data : 'binary:' + [...new Uint8Array(e.data)].join(','));
  if (log.length === 2) { report('done\\n' + log.join('\\n')); ws.close(1000); }
};
ws.onerror = () => report('error');
</script><script src="/wait"></script></body></html>`;

/** The base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's SPKI list wants it. */
function spkiHash(pem: string): string {
  return createHash('sha256').update(createPublicKey(pem).export({ type: 'spki', format: 'der' })).digest('base64');
}

async function pageServer(): Promise<{ server: Server; port: number; result: Promise<string> }> {
  let done!: (text: string) => void;
  const result = new Promise<string>((r) => (done = r));
  const server = createServer((req, res) => {
    if (req.url === '/done') {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        done(body);
        res.end();
      });
      return;
    }
    if (req.url === '/wait') {
      const timer = setTimeout(() => done('no report within 15 s'), 15_000);
      void result.then(() => {
        clearTimeout(timer);
        res.writeHead(200, { 'content-type': 'text/javascript', connection: 'close' });
        res.end('');
      });
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html', connection: 'close' });
    res.end(PAGE);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { server, port: (server.address() as { port: number }).port, result };
}

describe.skipIf(CHROMIUM === undefined)('headless Chromium · library as server', () => {
  it.each(['ws', 'wss'] as const)('%s: the page gets a text and a binary echo, each with its own frame type', async (scheme) => {
    const echo = await echoListener(scheme);
    const page = await pageServer();
    try {
      const profile = tmp.path(`chromium-${scheme}`);
      const url = `http://127.0.0.1:${page.port}/#${scheme}://localhost:${echo.listener.port}/echo`;
      const flags = ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', `--user-data-dir=${profile}`, '--virtual-time-budget=20000'];
      if (scheme === 'wss') flags.push(`--ignore-certificate-errors-spki-list=${spkiHash(cert.cert)}`);
      const started = performance.now();
      const r = await run(CHROMIUM!, [...flags, '--dump-dom', url], '', 60_000);
      console.log(`chromium ${scheme}: ${(performance.now() - started).toFixed(0)} ms`);
      const out = /<pre id="out">([\s\S]*?)<\/pre>/.exec(r.stdout)?.[1];
      expect(await page.result, r.stderr.slice(-1500)).toBe('done\ntext:hello from chromium\nbinary:1,2,3');
      expect(out).toBe('done\ntext:hello from chromium\nbinary:1,2,3');
      expect(echo.received).toEqual(['text:hello from chromium', 'binary:1,2,3']);
    } finally {
      await new Promise((r) => page.server.close(r));
    }
  });
});
