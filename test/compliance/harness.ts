/**
 * Test plumbing for driver tests: a recording {@link ChannelReceiver}, an
 * echo handler and echo server built on a driver's own `listen`, handle
 * counting for leak checks, TCP/UDP relays that capture the bytes on the
 * wire, and a port that refuses connections. No timing thresholds: waits end
 * on events (the test timeout bounds them).
 *
 * @example
 * const server = await driverEchoServer(tcpDriver, scope, '127.0.0.1');
 * const rx = new Collector();
 * channel.start(rx);
 * channel.send(bytes, {}, () => {});
 * await rx.untilBytes(bytes.length);
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, Socket, type Server } from 'node:net';
import type { ChannelReceiver, Driver, DriverListener, TransportChannel } from '../../src/driver.js';
import type { NetworkScope } from '../../src/policy/index.js';
import type { SecurityParameters } from '../../src/security.js';
import { listenAttempt } from '../helpers/policy.js';

type Waiter = { check: () => boolean; resolve: () => void; reject: (e: Error) => void; what: string };

/** A ChannelReceiver that records everything; `until…()` resolve when a condition holds. */
export class Collector implements ChannelReceiver {
  readonly chunks: Uint8Array[] = [];
  bytes = 0;
  hasEnded = false;
  drains = 0;
  hasClosed = false;
  /** How many times `closed()` was called (the contract says exactly once). */
  closedCalls = 0;
  closeError: Error | undefined;
  readonly softErrors: Error[] = [];
  readonly streams: TransportChannel[] = [];
  /** How many callbacks arrived so far (any kind): {@link whileProgressing} watches it. */
  events = 0;
  #waiters: Waiter[] = [];

  data = (chunk: Uint8Array): void => {
    this.chunks.push(chunk);
    this.bytes += chunk.byteLength;
    this.#check();
  };
  end = (): void => {
    this.hasEnded = true;
    this.#check();
  };
  drain = (): void => {
    this.drains++;
    this.#check();
  };
  closed = (error?: Error): void => {
    this.closedCalls++;
    this.hasClosed = true;
    this.closeError = error;
    this.#check(true);
  };
  softError = (err: Error): void => {
    this.softErrors.push(err);
    this.#check();
  };
  stream = (channel: TransportChannel): void => {
    this.streams.push(channel);
    this.#check();
  };

  /** Everything received, concatenated. */
  all(): Buffer {
    return Buffer.concat(this.chunks.map((c) => Buffer.from(c.buffer, c.byteOffset, c.byteLength)));
  }
  text(): string {
    return this.all().toString('utf8');
  }

  until(check: () => boolean, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    if (this.hasClosed) return Promise.reject(new Error(`channel closed (${this.closeError?.message ?? 'cleanly'}) before ${what}`));
    return new Promise((resolve, reject) => this.#waiters.push({ check, resolve, reject, what }));
  }
  untilBytes(n: number): Promise<void> {
    return this.until(() => this.bytes >= n, `${n} bytes arrived`);
  }
  untilMessages(n: number): Promise<void> {
    return this.until(() => this.chunks.length >= n, `${n} messages arrived`);
  }
  untilEnd(): Promise<void> {
    return this.until(() => this.hasEnded, 'the end of input');
  }
  /** Resolves with the close error (undefined for a clean close). */
  async untilClosed(): Promise<Error | undefined> {
    if (!this.hasClosed) {
      await new Promise<void>((resolve) => this.#waiters.push({ check: () => this.hasClosed, resolve, reject: () => resolve(), what: 'close' }));
    }
    return this.closeError;
  }

  #check(closing = false): void {
    this.events++;
    for (const w of [...this.#waiters]) {
      if (w.check()) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.resolve();
      } else if (closing) {
        this.#waiters.splice(this.#waiters.indexOf(w), 1);
        w.reject(new Error(`channel closed (${this.closeError?.message ?? 'cleanly'}) before ${w.what}`));
      }
    }
  }
}

/** Start a channel that sends back everything it receives; closes when the peer ends. */
export function echo(channel: TransportChannel): void {
  let waiting = 0;
  channel.start({
    data(chunk) {
      const ok = channel.send(chunk, {}, () => {});
      if (!ok && waiting++ === 0) channel.pause();
    },
    end() {
      void channel.close();
    },
    drain() {
      if (waiting > 0) {
        waiting = 0;
        channel.resume();
      }
    },
    closed() {},
  });
}

export interface EchoServer {
  readonly address: string;
  readonly port: number;
  readonly listener: DriverListener;
  /** Channels the server accepted. */
  readonly channels: TransportChannel[];
  /** Close the listener and abort every accepted channel. */
  close(): Promise<void>;
}

/** An echo server made with the driver's own `listen` on `address`, port 0. */
export async function driverEchoServer(
  driver: Driver,
  scope: NetworkScope,
  address: string,
  init: { security?: SecurityParameters; options?: Record<string, unknown>; handler?: (ch: TransportChannel) => void } = {},
): Promise<EchoServer> {
  const attempt = await listenAttempt(scope, driver.protocol, address, 0, init);
  const listener = await scope.network.listen(driver, attempt);
  const channels: TransportChannel[] = [];
  listener.start({
    connection: (ch) => {
      channels.push(ch);
      (init.handler ?? echo)(ch);
    },
    error: () => {},
  });
  return {
    address,
    port: listener.local.port,
    listener,
    channels,
    close: async () => {
      await listener.close();
      for (const ch of channels) ch.abort();
    },
  };
}

/**
 * Await `work` with no limit on its total time, failing only if `rx` hears
 * nothing (no data, drain or close) for `quietMs`: a volume test takes as
 * long as the machine's load makes it, and a hang still fails, saying where.
 * Give the test itself no timeout (`it(name, fn, 0)`).
 */
export async function whileProgressing<T>(rx: Collector, work: Promise<T>, what: () => string, quietMs = 30_000): Promise<T> {
  let seen = rx.events;
  let timer: NodeJS.Timeout | undefined;
  const quiet = new Promise<never>((_, reject) => {
    timer = setInterval(() => {
      if (rx.events !== seen) seen = rx.events;
      else reject(new Error(`nothing arrived for ${quietMs} ms: ${what()}`));
    }, quietMs);
  });
  try {
    return await Promise.race([work, quiet]);
  } finally {
    clearInterval(timer);
  }
}

/** Poll `check` every few ms until it holds (bounded by the test timeout, never asserted on time). */
export async function waitFor(check: () => boolean): Promise<void> {
  while (!check()) await new Promise((r) => setTimeout(r, 2));
}

const COUNTED = new Set(['TCPWRAP', 'TCPSocketWrap', 'TCPServerWrap', 'UDPWRAP', 'TLSWRAP', 'Timeout', 'PipeWrap']);

/** Counts of socket, timer and pipe handles now open. */
export function handleCounts(): Map<string, number> {
  const m = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) if (COUNTED.has(r)) m.set(r, (m.get(r) ?? 0) + 1);
  return m;
}

/** Handles open now beyond `before` (after letting close callbacks run a few turns). */
export async function extraHandles(before: Map<string, number>): Promise<string[]> {
  let extra: string[] = [];
  for (let i = 0; i < 40; i++) {
    extra = [];
    for (const [k, n] of handleCounts()) if (n > (before.get(k) ?? 0)) extra.push(`${k}×${n - (before.get(k) ?? 0)}`);
    if (extra.length === 0) return extra;
    await new Promise((r) => setTimeout(r, 5));
  }
  // The poll's own timer is not a leak.
  return extra.filter((e) => !(e === 'Timeout×1'));
}

/** A TCP port on `address` that refuses connections (a listener bound then closed). */
export async function refusedPort(address: string): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, address, r));
  const { port } = server.address() as { port: number };
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

export interface Relay {
  readonly port: number;
  /** Every byte that went through, both directions. */
  captured(): Buffer;
  close(): Promise<void>;
}

/** A TCP relay on `address` to `address`:`port` that records the bytes on the wire. */
export async function tcpRelay(address: string, port: number): Promise<Relay> {
  const seen: Buffer[] = [];
  const sockets = new Set<Socket>();
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    track(client);
    const upstream = new Socket({ allowHalfOpen: true });
    track(upstream);
    upstream.connect(port, address);
    const pipe = (from: Socket, to: Socket): void => {
      from.on('data', (d: Buffer) => {
        seen.push(d);
        if (!to.write(d)) {
          from.pause();
          to.once('drain', () => from.resume());
        }
      });
      from.on('end', () => to.end());
      from.on('close', () => to.destroy());
    };
    pipe(client, upstream);
    pipe(upstream, client);
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  return {
    port: (server.address() as { port: number }).port,
    captured: () => Buffer.concat(seen),
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

/** A UDP relay on `address` to `address`:`port` (one upstream socket per client) that records the datagrams. */
export async function udpRelay(address: string, port: number): Promise<Relay> {
  const seen: Buffer[] = [];
  const type = address.includes(':') ? 'udp6' : 'udp4';
  const front: UdpSocket = createSocket(type);
  const uppers = new Map<string, UdpSocket>();
  front.on('message', (msg, rinfo) => {
    seen.push(msg);
    const key = `${rinfo.address}|${rinfo.port}`;
    let up = uppers.get(key);
    if (!up) {
      const u = createSocket(type);
      u.on('message', (back) => {
        seen.push(back);
        front.send(back, rinfo.port, rinfo.address);
      });
      u.on('error', () => {});
      uppers.set(key, u);
      up = u;
    }
    up.send(msg, port, address);
  });
  await new Promise<void>((r) => front.bind(0, address, () => r()));
  return {
    port: front.address().port,
    captured: () => Buffer.concat(seen),
    close: async () => {
      await Promise.all([front, ...uppers.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}
