/**
 * The quota accounting of WebTransport over HTTP/3 with a FAKE native module
 * (the real one is not installed here, so the path stays unverified on the
 * wire): a session takes a unit of `limit connections` before it is created
 * and gives it back when it closes or fails; none is created over the limit
 * or when the sent budget cannot take its CONNECT; a listener takes a unit of
 * `limit listeners` until it stops, and, bound by a guest calling the driver,
 * a unit per accepted session (one over the limit is closed at once). This
 * checks the bookkeeping only: what the fake does is not what a QUIC stack
 * does, and nothing here says the driver works.
 */
import { ReadableStream, WritableStream } from 'node:stream/web';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { NEVER_ABORTED, type ConnectAttempt, type ListenAttempt } from '../../src/driver.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { QuotaExceededError } from '../../src/errors.js';
import { Host, type TenantScope } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';

/** A session of the fake module: `ready` as told, `closed` once closed. */
class FakeSession {
  static made = 0;
  readonly ready: Promise<void>;
  readonly closed: Promise<{ closeCode: number; reason: string }>;
  readonly incomingBidirectionalStreams = new ReadableStream();
  readonly incomingUnidirectionalStreams = new ReadableStream();
  readonly datagrams = { readable: new ReadableStream<Uint8Array>(), createWritable: () => new WritableStream<Uint8Array>(), maxDatagramSize: 1200 };
  readonly peerAddress = '127.0.0.1:40000';
  closedByServer = false;
  #close!: (info: { closeCode: number; reason: string }) => void;

  constructor(ready: boolean) {
    FakeSession.made++;
    this.ready = ready ? Promise.resolve() : Promise.reject(new Error('Opening handshake failed.'));
    this.closed = new Promise((r) => (this.#close = r));
    if (!ready) this.#close({ closeCode: 1, reason: 'failed' });
  }

  createBidirectionalStream(): Promise<never> {
    return Promise.reject(new Error('not in this fake'));
  }

  close(info: { closeCode: number; reason: string } = { closeCode: 0, reason: '' }): void {
    this.closedByServer = true;
    this.#close(info);
  }
}

const fake = vi.hoisted(() => ({ ready: true, offered: [] as unknown[], push: undefined as ((s: unknown) => void) | undefined }));

vi.mock('../../transports/webtransport/engine.js', async (original) => ({
  ...(await original<typeof import('../../transports/webtransport/engine.js')>()),
  loadHttp3Api: async () => ({
    WebTransport: class {
      constructor() {
        return new FakeSession(fake.ready);
      }
    },
    Http3Server: class {
      readonly ready = Promise.resolve();
      stopped = false;
      startServer(): void {}
      stopServer(): void {
        this.stopped = true;
      }
      address(): { port: number; host: string; family: 'IPv4' } {
        return { port: 4433, host: '127.0.0.1', family: 'IPv4' };
      }
      sessionStream(): ReadableStream<unknown> {
        return new ReadableStream({ start: (c) => void (fake.push = (s) => c.enqueue(s)) });
      }
    },
  }),
}));

const { connectH3, listenH3 } = await import('../../transports/webtransport/h3.js');

const host = new Host();
afterAll(() => host.close());
let n = 0;
async function tenant(limits: string): Promise<{ id: string; scope: TenantScope }> {
  const id = `h3q-${process.pid}-${++n}`;
  host.setPolicy(id, `allow webtransport://127.0.0.1:*\nallow bind:webtransport://127.0.0.1:*\n${limits}`);
  return { id, scope: await host.tenant(id) };
}

const cert = testCertificate({ kind: 'ec', days: 10 });
const pinned = new SecurityParameters({ pinnedServerCertificates: ['ab'.repeat(32)] });

async function dial(scope: TenantScope): Promise<ConnectAttempt> {
  const target = await scope.guard.authorize({ use: 'connect', protocol: 'webtransport', address: '127.0.0.1', port: 4433 });
  return {
    signal: NEVER_ABORTED, target, remote: RemoteEndpoint.from({ ipAddress: '127.0.0.1', port: 4433 }), security: pinned,
    properties: new TransportProperties(), options: {}, guard: scope.guard,
  };
}

async function bind(scope: TenantScope): Promise<ListenAttempt> {
  const target = await scope.guard.authorize({ use: 'bind', protocol: 'webtransport', address: '127.0.0.1', port: 0 });
  return {
    signal: NEVER_ABORTED, target, local: LocalEndpoint.from({ ipAddress: '127.0.0.1', port: 0 }),
    security: new SecurityParameters({ certificate: cert.cert, key: cert.key }), properties: new TransportProperties(), options: {}, guard: scope.guard,
  };
}

const tick = (): Promise<void> => new Promise((r) => setImmediate(r));

describe('webtransport-h3 quotas (fake native module; unverified on the wire)', () => {
  it('a session holds a unit of limit connections until it closes; one over the limit is never created', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const made = FakeSession.made;
    const channel = await connectH3(await dial(scope), 'datagrams');
    expect(host.usage(id).connections).toBe(1);
    await expect(connectH3(await dial(scope), 'datagrams')).rejects.toBeInstanceOf(QuotaExceededError);
    expect(FakeSession.made).toBe(made + 1);
    await channel.close();
    await tick();
    expect(host.usage(id).connections).toBe(0);
  });

  it('a session whose handshake fails gives its unit back; a CONNECT the sent budget cannot take creates none', async () => {
    const { id, scope } = await tenant('limit connections 1');
    fake.ready = false;
    try {
      await expect(connectH3(await dial(scope), 'datagrams')).rejects.toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED' });
    } finally {
      fake.ready = true;
    }
    await tick();
    expect(host.usage(id).connections).toBe(0);
    const poor = await tenant('limit sent 10B per 60s');
    const made = FakeSession.made;
    await expect(connectH3(await dial(poor.scope), 'datagrams')).rejects.toBeInstanceOf(QuotaExceededError);
    expect(FakeSession.made).toBe(made);
    expect(host.usage(poor.id).connections).toBe(0);
  });

  it('a guest\'s lookalike grant takes a unit all the same; a session whose first stream fails gives its unit back', async () => {
    const { id, scope } = await tenant('limit connections 1');
    const lookalike = { ...(await dial(scope)), unit: Object.freeze({}) };
    const channel = await connectH3(lookalike, 'datagrams');
    expect(host.usage(id).connections).toBe(1);
    await expect(connectH3({ ...(await dial(scope)), unit: Object.freeze({}) }, 'datagrams')).rejects.toBeInstanceOf(QuotaExceededError);
    await channel.close();
    await tick();
    expect(host.usage(id).connections).toBe(0);
    await expect(connectH3(await dial(scope), 'streams')).rejects.toMatchObject({ code: 'ERR_TAPS_ESTABLISHMENT_FAILED', message: expect.stringMatching(/first stream/) });
    await tick();
    expect(host.usage(id).connections).toBe(0);
  });

  it('a listener holds a unit of limit listeners until it stops; bound directly, each session takes a unit and one over the limit is closed', async () => {
    const { id, scope } = await tenant('limit listeners 1\nlimit connections 1');
    const listener = await listenH3(await bind(scope), 'datagrams');
    expect(host.usage(id).listeners).toBe(1);
    await expect(listenH3(await bind(scope), 'datagrams')).rejects.toBeInstanceOf(QuotaExceededError);
    const accepted: unknown[] = [];
    listener.start({ connection: (ch) => accepted.push(ch), error: () => {} });
    const first = new FakeSession(true);
    const second = new FakeSession(true);
    fake.push!(first);
    fake.push!(second);
    await vi.waitFor(() => expect(second.closedByServer).toBe(true));
    expect(accepted).toHaveLength(1);
    expect(first.closedByServer).toBe(false);
    expect(host.usage(id).connections).toBe(1);
    first.close();
    await tick();
    expect(host.usage(id).connections).toBe(0);
    await listener.close();
    expect(host.usage(id).listeners).toBe(0);
  });
});
