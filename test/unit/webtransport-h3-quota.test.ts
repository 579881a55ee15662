/**
 * The quota accounting of WebTransport over HTTP/3 with a FAKE native module
 * (the real one is not installed here, so the path stays unverified on the
 * wire): a session takes a unit of `limit connections` before it is created
 * and gives it back when it closes or fails; none is created over the limit
 * or when the sent budget cannot take its CONNECT; a listener takes a unit of
 * `limit listeners` until it stops, and, bound by a guest calling the driver,
 * a unit per accepted session (one over the limit is closed at once); its
 * channels charge each stream chunk and datagram they read (the native module
 * owns the UDP socket, so nothing below counts them), whoever reads them, and
 * end the session over the received budget. This
 * checks the bookkeeping only: what the fake does is not what a QUIC stack
 * does, and nothing here says the driver works.
 */
import { ReadableStream, WritableStream, type ReadableStreamDefaultController } from 'node:stream/web';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { NEVER_ABORTED, type ConnectAttempt, type ListenAttempt, type TransportChannel } from '../../src/driver.js';
import { LocalEndpoint, RemoteEndpoint } from '../../src/endpoints.js';
import { QuotaExceededError } from '../../src/errors.js';
import { meteringOf } from '../../src/policy/self-metered.js';
import { Host, type TenantScope } from '../../src/policy/index.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { testCertificate } from '../helpers/certs.js';

/** A session of the fake module: `ready` as told, `closed` once closed. */
class FakeSession {
  static made = 0;
  /** The last session the fake client made. */
  static last: FakeSession | undefined;
  readonly ready: Promise<void>;
  readonly closed: Promise<{ closeCode: number; reason: string }>;
  readonly incomingBidirectionalStreams = new ReadableStream();
  readonly incomingUnidirectionalStreams = new ReadableStream();
  /** What the "peer" sends: datagrams, and chunks on the session's first stream (when `fake.streams`). */
  dgram!: ReadableStreamDefaultController<Uint8Array>;
  stream: ReadableStreamDefaultController<Uint8Array> | undefined;
  readonly datagrams = { readable: new ReadableStream<Uint8Array>({ start: (c) => void (this.dgram = c) }), createWritable: () => new WritableStream<Uint8Array>(), maxDatagramSize: 1200 };
  readonly peerAddress = '127.0.0.1:40000';
  closedByServer = false;
  #close!: (info: { closeCode: number; reason: string }) => void;

  constructor(ready: boolean) {
    FakeSession.made++;
    FakeSession.last = this;
    this.ready = ready ? Promise.resolve() : Promise.reject(new Error('Opening handshake failed.'));
    this.closed = new Promise((r) => (this.#close = r));
    if (!ready) this.#close({ closeCode: 1, reason: 'failed' });
  }

  createBidirectionalStream(): Promise<{ readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }> {
    if (!fake.streams) return Promise.reject(new Error('not in this fake'));
    return Promise.resolve({ readable: new ReadableStream<Uint8Array>({ start: (c) => void (this.stream = c) }), writable: new WritableStream<Uint8Array>() });
  }

  close(info: { closeCode: number; reason: string } = { closeCode: 0, reason: '' }): void {
    this.closedByServer = true;
    this.#close(info);
  }
}

const fake = vi.hoisted(() => ({ ready: true, streams: false, offered: [] as unknown[], push: undefined as ((s: unknown) => void) | undefined }));

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

/** Read `channel` as a guest's driver would, privately: what it got, and how it ended. */
function readPrivately(channel: TransportChannel): { got: number[]; ended: Promise<Error | undefined> } {
  const got: number[] = [];
  const ended = new Promise<Error | undefined>((resolve) => channel.start({ data: (m) => got.push(m.byteLength), end: () => {}, drain: () => {}, closed: resolve }));
  return { got, ended };
}

describe('webtransport-h3 charges what its channels read (fake native module; unverified on the wire)', () => {
  it.each(['datagrams', 'streams'] as const)('%s: each read is charged once before it is delivered, the channel says so, and over the budget the session ends with the QuotaExceededError', async (mode) => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    fake.streams = mode === 'streams';
    let channel: TransportChannel;
    try {
      channel = await connectH3(await dial(scope), mode);
    } finally {
      fake.streams = false;
    }
    const session = FakeSession.last!;
    const peer = mode === 'datagrams' ? session.dgram : session.stream!;
    // Recorded by the library, so the Connection does not count these bytes again.
    expect(meteringOf(channel).receiveMetered).toBe(true);
    const { got, ended } = readPrivately(channel);
    peer.enqueue(new Uint8Array(600));
    await vi.waitFor(() => expect(got).toEqual([600]));
    expect(host.usage(id).received).toBe(600);
    peer.enqueue(new Uint8Array(600));
    peer.enqueue(new Uint8Array(600));
    const err = await ended;
    console.log(`webtransport-h3 ${mode} (fake module): ${got.length} chunk(s) delivered, ${host.usage(id).received} bytes counted, ended with ${(err as { code?: string } | undefined)?.code}`);
    expect(err).toBeInstanceOf(QuotaExceededError);
    expect(err).toMatchObject({ quota: 'bytes-received' });
    expect(got).toEqual([600]);
    expect(session.closedByServer).toBe(true);
    await tick();
    expect(host.usage(id).connections).toBe(0);
  });

  it('a listener\'s datagram channel charges what it reads too', async () => {
    const { id, scope } = await tenant('limit received 1KiB per 60s');
    const listener = await listenH3(await bind(scope), 'datagrams');
    const accepted: TransportChannel[] = [];
    listener.start({ connection: (ch) => accepted.push(ch), error: () => {} });
    const session = new FakeSession(true);
    fake.push!(session);
    await vi.waitFor(() => expect(accepted).toHaveLength(1));
    expect(meteringOf(accepted[0]).receiveMetered).toBe(true);
    const { got, ended } = readPrivately(accepted[0]!);
    session.dgram.enqueue(new Uint8Array(1000));
    session.dgram.enqueue(new Uint8Array(1000));
    expect(await ended).toBeInstanceOf(QuotaExceededError);
    expect(got).toEqual([1000]);
    expect(host.usage(id).received).toBeGreaterThan(1024);
    await listener.close();
  });
});
