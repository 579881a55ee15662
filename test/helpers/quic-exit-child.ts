/**
 * A process that opens a QUIC listener and a connection to it through the
 * library (real sockets, loopback), exchanges one message, closes both and
 * then has nothing left to do: it must exit by itself. Run by
 * test/loopback/quic-exit.test.ts as
 * `node --import tsx test/helpers/quic-exit-child.ts <quic|quic-dgram> <scenario>`.
 *
 * Scenarios (what the caller does once the echo came back):
 * - `close`: `await conn.close()`, the server side closes when it sees the end, then `await listener.stop()`;
 * - `stop-first`: `await listener.stop()` (the connection stays, RFC 9622 §7.2), then `await conn.close()`
 *   and the server side's close;
 * - `abort`: `conn.abort()` and the server side's `abort()`, then `await listener.stop()`;
 * - `peer-gone`: the client reaches the listener through a UDP relay, which closes after the echo: its
 *   port now refuses (ICMP port unreachable, reported to the client's connected socket on its next send)
 *   while the client sends, then aborts; `await listener.stop()`.
 * - `peer-lost`: as `peer-gone`, but the client keeps sending one message every 16 ms (a game's tick) and
 *   never aborts: the connection must end by itself (`connectionError`, transports/quic/peer-loss.ts), and
 *   then `await listener.stop()`. Its checkpoint also has the error's code and message.
 *
 * It prints one JSON line per checkpoint on stdout: the resources
 * `process.getActiveResourcesInfo()` lists then (stdio pipes and the
 * loader's file requests left out),
 * where each timer and UDP socket still open was created, and the time the
 * step took; and on exit how long the process lived after its last step.
 */
import { createHook } from 'node:async_hooks';
import { createSocket } from 'node:dgram';
import { writeSync } from 'node:fs';
import type { Connection } from '../../src/connection/connection.js';
import { createScope } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { quicDgramDriver, quicDriver } from '../../transports/quic/index.js';
import { selfSignedCertificate } from '../../transports/tls/certificates.js';

const stack = process.argv[2];
const scenario = process.argv[3];
if (stack !== 'quic' && stack !== 'quic-dgram') throw new RangeError(`stack must be quic or quic-dgram, got ${stack}`);
if (!['close', 'stop-first', 'abort', 'peer-gone', 'peer-lost'].includes(scenario ?? '')) throw new RangeError(`scenario must be close, stop-first, abort, peer-gone or peer-lost, got ${scenario}`);

const root = `${process.cwd()}/`;
/** Where each timer and UDP socket alive now was made (the first frames outside Node's internals). */
const made = new Map<number, { type: string; resource: object; site: string }>();
createHook({
  init(id, type, _trigger, resource) {
    if (type !== 'Timeout' && type !== 'UDPWRAP') return;
    const frames = (new Error().stack ?? '').split('\n').slice(2).filter((l) => !l.includes('node:') && !l.includes('async-init') && !l.includes('resources/'));
    made.set(id, { type, resource, site: frames.slice(0, 6).map((l) => l.trim().replace(/^at /, '').replace(root, '')).join(' < ') });
  },
  destroy(id) {
    made.delete(id);
  },
}).enable();

/**
 * Kinds that are not the library's: the stdio pipes the parent reads, and the file requests of the TypeScript
 * loader, which writes its cache of what it compiled in the background on a first run after a change.
 */
const NOT_OURS = new Set(['PipeWrap', 'TTYWrap', 'FSReqCallback', 'FSReqPromise', 'StatWatcher', 'FSEventWrap']);
/** Resources that would keep the process alive, without those. */
const resources = (): string[] => process.getActiveResourcesInfo().filter((r) => !NOT_OURS.has(r));
const sites = (): string[] =>
  [...made.values()]
    .filter((m) => m.type === 'UDPWRAP' || (m.resource as { _destroyed?: boolean; hasRef?(): boolean })._destroyed === false)
    .map((m) => `${m.type} ${m.site}`);
const out = (line: Record<string, unknown>): void => void writeSync(1, `${JSON.stringify(line)}\n`);
/** Two turns of the event loop: close callbacks of handles closed before this run. */
const settle = async (): Promise<void> => {
  for (let i = 0; i < 2; i++) await new Promise((r) => setImmediate(r));
};
let last = performance.now();
async function step(name: string, work: () => Promise<unknown> | unknown): Promise<void> {
  const t0 = performance.now();
  const told = await work();
  const ms = performance.now() - t0;
  await settle();
  last = performance.now();
  out({ step: name, ms: Math.round(ms), resources: resources(), sites: sites(), ...(typeof told === 'object' && told !== null ? told : {}) });
}

const scope = createScope({ tenant: 'exit', policy: { decide: () => ({ allow: true, rule: 'test' }) } });
const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1'], kind: 'ec' });
const properties = stack === 'quic' ? new TransportProperties({ multistreaming: 'require' }) : TransportProperties.unreliableDatagram();
const drivers = [stack === 'quic' ? quicDriver : quicDgramDriver];
const reliable = { msgReliable: true } as const;

const listener = await new Preconnection({
  scope,
  local: { ipAddress: '127.0.0.1', port: 0 },
  properties,
  security: new SecurityParameters({ certificate: cert.cert, key: cert.key }),
  drivers,
}).listen();
let served: Connection | undefined;
let serverDone!: Promise<void>;
const accepted = new Promise<void>((resolve) => {
  listener.on('connectionReceived', (c) => {
    served = c;
    serverDone = (async () => {
      try {
        for await (const m of c) await c.send(m.data, reliable);
        await c.close();
      } catch {
        // aborted: nothing more to serve
      }
    })();
    resolve();
  });
});
/** `peer-gone`: one UDP socket between client and listener, forwarding both ways. */
const relay = scenario === 'peer-gone' || scenario === 'peer-lost' ? createSocket('udp4') : undefined;
if (relay !== undefined) {
  let client: { address: string; port: number } | undefined;
  relay.on('message', (data, from) => {
    if (from.port === listener.port) {
      if (client) relay.send(data, client.port, client.address);
    } else {
      client = { address: from.address, port: from.port };
      relay.send(data, listener.port, '127.0.0.1');
    }
  });
  await new Promise<void>((resolve) => relay.bind(0, '127.0.0.1', resolve));
}
const conn = await new Preconnection({
  scope,
  remote: { hostName: 'localhost', ipAddress: '127.0.0.1', port: relay?.address().port ?? listener.port },
  properties,
  security: new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] }),
  drivers,
}).initiate({ timeout: 10_000 });
const echoed = new Promise<string>((resolve) => conn.once('received', (m) => resolve(Buffer.from(m.data).toString())));
await conn.send('ping', reliable);
await accepted;
out({ step: 'echo', echo: await echoed, stack: conn.stack.join('/') });

if (scenario === 'close') {
  await step('client closed', () => conn.close());
  await step('server closed', () => serverDone);
  await step('listener stopped', () => listener.stop());
} else if (scenario === 'stop-first') {
  await step('listener stopped', () => listener.stop());
  await step('client closed', () => conn.close());
  await step('server closed', () => serverDone);
} else if (scenario === 'peer-gone') {
  await step('relay closed', () => new Promise<void>((resolve) => relay!.close(resolve)));
  await step('sent into the void, aborted, listener stopped', async () => {
    // Several packets at once: the first draws the ICMP error, the next sends report it (ECONNREFUSED).
    for (let i = 0; i < 4; i++) conn.send(Buffer.alloc(16_000, i), reliable).catch(() => {});
    await new Promise((r) => setImmediate(r));
    await conn.send('more', reliable).catch(() => {});
    conn.abort();
    served?.abort();
    await listener.stop();
  });
} else if (scenario === 'peer-lost') {
  await step('relay closed', () => new Promise<void>((resolve) => relay!.close(resolve)));
  await step('peer lost', async () => {
    const ended = new Promise<{ code: string; message: string; softErrors: number }>((resolve) => {
      let softErrors = 0;
      conn.on('softError', () => softErrors++);
      conn.once('connectionError', (e) => resolve({ code: e.code, message: e.message, softErrors }));
      conn.once('closed', () => resolve({ code: 'closed without error', message: '', softErrors }));
    });
    const tick = setInterval(() => conn.send('tick', reliable).catch(() => {}), 16);
    const told = await ended;
    clearInterval(tick);
    return told;
  });
  await step('listener stopped', async () => {
    served?.abort();
    await listener.stop();
  });
} else {
  await step('aborted, listener stopped', async () => {
    conn.abort();
    served?.abort();
    await listener.stop();
  });
}
process.on('exit', () => out({ step: 'exit', ms: Math.round(performance.now() - last) }));
