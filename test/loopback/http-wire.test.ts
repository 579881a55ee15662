/**
 * The HTTP stacks charge what their TCP sockets carry, at the socket: one
 * Connection whose requests take a redirect hop to a second server and a
 * reconnect after the server closed the first socket (three sockets under one
 * Connection) is charged, each way, what the servers' TCP sockets read and
 * wrote: heads, bodies and, over TLS, every record, while the Connection is
 * open and at close. Plain http is exact;
 * https is exact but for the servers' answering close_notify alerts (24 bytes
 * each in TLS 1.3), which may arrive after the client's socket closed.
 */
import http from 'node:http';
import https from 'node:https';
import type { Socket } from 'node:net';
import { describe, expect, it } from 'vitest';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpDriver, httpsDriver } from '../../transports/http/index.js';
import { testCertificate } from '../helpers/certs.js';
import { quotaTenants } from '../helpers/tenants.js';

const cert = testCertificate({ kind: 'ec', names: ['127.0.0.1'] });
const { host, cleanups, tenant } = quotaTenants('hw', 'allow connect,redirect:http://@loopback:*\nallow connect,redirect:https://@loopback:*');

interface Counted {
  readonly port: number;
  /** What its TCP sockets read and wrote so far, and how many there were. */
  wireIn(): number;
  wireOut(): number;
  sockets(): number;
  closed(): boolean;
}

/** A server whose `route` answers each request; its TCP sockets' counters summed. */
async function server(secure: boolean, route: (url: string, res: http.ServerResponse) => void): Promise<Counted> {
  const raws: Socket[] = [];
  const handler = (req: http.IncomingMessage, res: http.ServerResponse): void => {
    req.resume();
    req.on('end', () => route(req.url ?? '/', res));
  };
  const s = secure ? https.createServer({ cert: cert.cert, key: cert.key }, handler) : http.createServer(handler);
  s.on('connection', (raw: Socket) => raws.push(raw));
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => new Promise<void>((r) => {
    for (const raw of raws) raw.destroy();
    s.close(() => r());
  }));
  const written = (raw: Socket): number => (raw as Socket & { _bytesDispatched: number })._bytesDispatched;
  return {
    port: (s.address() as { port: number }).port,
    wireIn: () => raws.reduce((n, raw) => n + raw.bytesRead, 0),
    wireOut: () => raws.reduce((n, raw) => n + written(raw), 0),
    sockets: () => raws.length,
    closed: () => raws.every((raw) => raw.destroyed),
  };
}

async function until(ready: () => boolean): Promise<void> {
  for (let i = 0; i < 200 && !ready(); i++) await new Promise((r) => setTimeout(r, 10));
}

describe('http and https charge their sockets\' wire: a redirect hop and a reconnect under one Connection', () => {
  it.each([['http', false], ['https', true]] as const)('%s: charged = what the servers\' TCP sockets read and wrote', async (scheme, secure) => {
    const cdn = await server(secure, (_url, res) => res.end(Buffer.alloc(5000, 0x63)));
    const api = await server(secure, (url, res) => {
      if (url === '/start') {
        res.writeHead(302, { location: `${scheme}://127.0.0.1:${cdn.port}/file` });
        return res.end('moved');
      }
      // The server closes this socket after the answer: the next request needs another one.
      if (url === '/close') res.setHeader('connection', 'close');
      res.end(Buffer.alloc(3000, 0x61));
    });
    const { id, scope } = await tenant('limit sent 1MiB per 60s\nlimit received 1MiB per 60s');
    const conn = await new Preconnection({
      scope, remote: `${scheme}://127.0.0.1:${api.port}/`, drivers: [secure ? httpsDriver : httpDriver], properties: TransportProperties.reliableMessage(),
      security: secure ? new SecurityParameters({ ca: cert.cert }) : SecurityParameters.disabled(), driverOptions: { [scheme]: { redirect: 'follow' } },
    }).initiate({ timeout: 5000 });
    cleanups.push(() => conn.abort());
    const got: number[] = [];
    for (const path of ['/start', '/close', '/again']) {
      await conn.send(new Uint8Array(100).fill(0x70), { fields: { method: 'POST', path } });
      got.push((await conn.receive({ signal: AbortSignal.timeout(5000) })).data.byteLength);
    }
    expect(got).toEqual([5000, 3000, 3000]);
    expect(api.sockets()).toBe(2);
    expect(cdn.sockets()).toBe(1);
    const wireIn = (): number => api.wireIn() + cdn.wireIn();
    const wireOut = (): number => api.wireOut() + cdn.wireOut();
    // As it goes, not at close: with the Connection still open every byte so far is charged, TLS records too.
    const closeNotify = secure ? 24 : 0;
    await until(() => host.usage(id).sent === wireIn() && wireOut() - host.usage(id).received <= closeNotify);
    console.log(`${scheme} (${process.version}) before close: charged ${host.usage(id).sent} sent / ${host.usage(id).received} received; the servers' TCP sockets read ${wireIn()} and wrote ${wireOut()}`);
    expect(host.usage(id).sent).toBe(wireIn());
    // Over TLS a socket already closed (the hop's, or the one the server closed after '/close') may end with
    // the server's close_notify (24 bytes) arriving after the client's socket closed: on the wire, never read.
    expect([0, closeNotify]).toContain(wireOut() - host.usage(id).received);
    await conn.close();
    await until(() => api.closed() && cdn.closed() && host.usage(id).sent === wireIn() && host.usage(id).received === wireOut());
    const u = host.usage(id);
    console.log(`${scheme} (${process.version}) redirect hop + reconnect, 3 sockets: charged ${u.sent} sent / ${u.received} received; the servers' TCP sockets read ${wireIn()} and wrote ${wireOut()}`);
    expect(u.sent).toBe(wireIn());
    const unread = wireOut() - u.received;
    if (!secure) expect(unread).toBe(0);
    // Each server socket's answering close_notify (24 bytes in TLS 1.3) may reach the client after its socket closed.
    else expect(unread % 24 === 0 && unread >= 0 && unread <= 24 * 3).toBe(true);
  });
});
