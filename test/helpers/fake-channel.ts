/**
 * A scriptable TransportChannel for unit tests of the Connection facade: no
 * sockets, everything the channel does is recorded and every event the driver
 * would raise is a method the test calls.
 *
 * - `sent` records each send (bytes, meta, whether its `done` ran). With
 *   `autoComplete` (default) `done()` runs at once; otherwise the test calls
 *   `complete()`. `pushBack = true` makes send() return false (backpressure)
 *   until the test calls `drain()`.
 * - `deliver()`, `end()`, `drain()`, `peerClosed()`, `peerStream()` raise the
 *   receiver's callbacks as a driver would.
 * - `close()` resolves and reports `closed()` on a microtask; `abort()` fails
 *   every send still outstanding, like a socket torn down.
 *
 * `fakeConnection()` wraps one in a Connection with a ManualClock and a
 * `fakeLease()` (counts bytes and releases, takes byte budgets, can be revoked).
 *
 * @example
 * const { conn, channel, clock, lease } = fakeConnection({ framing: 'message' });
 * channel.deliver('hi');
 * await conn.receive();
 */
import { Connection, type ConnectionInit } from '../../src/connection/connection.js';
import { NO_CAPABILITIES, type Capabilities, type ChannelReceiveMeta, type ChannelReceiver, type ChannelSendMeta, type Driver, type Framing, type SocketAddress, type TransportChannel } from '../../src/driver.js';
import { QuotaExceededError, TapsError } from '../../src/errors.js';
import type { MessageFramer } from '../../src/framers/index.js';
import type { Lease } from '../../src/policy/index.js';
import type { PolicyDecision } from '../../src/policy/types.js';
import { TransportProperties } from '../../src/properties.js';
import type { SelectionReport } from '../../src/report.js';
import { ManualClock } from './manual-clock.js';
import { selfMetered } from '../../src/policy/self-metered.js';

export interface SentRecord {
  readonly data: Uint8Array;
  readonly meta: ChannelSendMeta;
  readonly done: (err?: Error) => void;
  completed: boolean;
}

export interface FakeChannelOptions {
  readonly framing?: Framing;
  readonly maxMessageSize?: number;
  readonly singularTransmissionMsgMaxLen?: number;
  /** Give the channel setOption (recording into `options`); `reject` names options it refuses as not applicable. */
  readonly setOption?: boolean | { readonly reject: readonly string[] };
  /** Give the channel openStream (each call makes a new FakeChannel, pushed to `streams`). */
  readonly openStream?: boolean;
  readonly remote?: SocketAddress;
  /** Say the channel charges the tenant's budget itself (`TransportChannel.metered`). */
  readonly metered?: boolean;
  /** The same for the streams openStream makes (default: as `metered`). */
  readonly streamsMetered?: boolean;
  /** Say `done`s run in send order (`TransportChannel.completesInOrder`; `complete()` keeps that order). */
  readonly completesInOrder?: boolean;
}

export class FakeChannel implements TransportChannel {
  readonly framing: Framing;
  readonly local: SocketAddress = Object.freeze({ address: '127.0.0.1', port: 40000, family: 4 as const });
  readonly remote: SocketAddress;
  readonly maxMessageSize: number;
  readonly singularTransmissionMsgMaxLen: number | undefined;
  readonly info: Readonly<Record<string, unknown>> = Object.freeze({ fake: true });
  readonly setOption?: (name: string, value: unknown) => void;
  readonly openStream?: () => Promise<TransportChannel>;
  readonly metered: boolean;
  readonly completesInOrder: boolean;

  receiver: ChannelReceiver | undefined;
  readonly sent: SentRecord[] = [];
  autoComplete = true;
  pushBack = false;
  paused = false;
  pauseCalls = 0;
  resumeCalls = 0;
  closeCalls = 0;
  abortReason: Error | undefined;
  aborted = false;
  isClosed = false;
  readonly options = new Map<string, unknown>();
  readonly streams: FakeChannel[] = [];

  constructor(o: FakeChannelOptions = {}) {
    this.framing = o.framing ?? 'stream';
    this.maxMessageSize = o.maxMessageSize ?? (this.framing === 'stream' ? Infinity : 65507);
    this.singularTransmissionMsgMaxLen = o.singularTransmissionMsgMaxLen;
    this.remote = o.remote ?? Object.freeze({ address: '127.0.0.1', port: 9000, family: 4 as const });
    this.metered = o.metered === true;
    this.completesInOrder = o.completesInOrder === true;
    // It stands for a channel of the library's drivers: what it says it counts is believed (src/policy/self-metered.ts).
    selfMetered(this, this.metered, false);
    if (o.setOption) {
      const reject = typeof o.setOption === 'object' ? o.setOption.reject : [];
      this.setOption = (name, value) => {
        if (reject.includes(name)) throw new TapsError('ERR_TAPS_PROPERTY_NOT_APPLICABLE', `${name} does not apply to a fake channel`);
        this.options.set(name, value);
      };
    }
    if (o.openStream) {
      this.openStream = async () => {
        const metered = o.streamsMetered ?? o.metered;
        const ch = new FakeChannel({ framing: this.framing, maxMessageSize: this.maxMessageSize, setOption: o.setOption ?? false, openStream: true, metered, streamsMetered: metered });
        this.streams.push(ch);
        return ch;
      };
    }
  }

  start(receiver: ChannelReceiver): void {
    if (this.receiver) throw new TypeError('start() was already called');
    this.receiver = receiver;
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: (err?: Error) => void): boolean {
    const rec: SentRecord = { data, meta, done, completed: false };
    if (this.isClosed) {
      rec.completed = true;
      queueMicrotask(() => done(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the fake channel is closed')));
      return true;
    }
    this.sent.push(rec);
    if (this.autoComplete) {
      rec.completed = true;
      done();
    }
    return !this.pushBack;
  }

  /** Complete the oldest outstanding sends (all by default), optionally with an error. */
  complete(count = Infinity, err?: Error): void {
    for (const rec of this.sent) {
      if (count <= 0) break;
      if (rec.completed) continue;
      rec.completed = true;
      count--;
      rec.done(err);
    }
  }

  /** Bytes of every send, concatenated. */
  get wire(): Uint8Array {
    return Buffer.concat(this.sent.map((s) => s.data));
  }

  pause(): void {
    this.paused = true;
    this.pauseCalls++;
  }

  resume(): void {
    this.paused = false;
    this.resumeCalls++;
  }

  close(): Promise<void> {
    this.closeCalls++;
    if (this.isClosed) return Promise.resolve();
    this.isClosed = true;
    return new Promise((resolve) =>
      queueMicrotask(() => {
        this.receiver?.closed();
        resolve();
      }),
    );
  }

  abort(reason?: Error): void {
    if (this.aborted) return;
    this.aborted = true;
    this.abortReason = reason;
    const wasClosed = this.isClosed;
    this.isClosed = true;
    this.complete(Infinity, new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'the fake channel was aborted'));
    if (!wasClosed) queueMicrotask(() => this.receiver?.closed(new TapsError('ERR_TAPS_CONNECTION_ABORTED', 'aborted locally', { cause: reason })));
  }

  // ── what the driver would raise ──────────────────────────────────────

  deliver(chunk: Uint8Array | string, meta?: ChannelReceiveMeta): void {
    this.receiver!.data(typeof chunk === 'string' ? new TextEncoder().encode(chunk) : chunk, meta);
  }

  end(): void {
    this.receiver!.end();
  }

  /** The send side can take more (pushBack stays as the test set it). */
  drain(): void {
    this.receiver!.drain();
  }

  /** The peer or the network ended the channel. */
  peerClosed(error?: Error): void {
    this.isClosed = true;
    this.receiver!.closed(error);
  }

  /** A multistreaming peer opened a stream. */
  peerStream(): FakeChannel {
    const ch = new FakeChannel({ framing: this.framing });
    this.receiver!.stream!(ch);
    return ch;
  }

  softError(error: Error): void {
    this.receiver!.softError!(error);
  }
}

// ── a Connection over a FakeChannel ───────────────────────────────────
/** A lease that counts, can be given byte budgets, and can be revoked by the test. */
export interface FakeLease extends Lease {
  sentBytes: number;
  receivedBytes: number;
  releases: number;
  sendBudget: number;
  receiveBudget: number;
  revoke(decision: PolicyDecision & { allow: false }): void;
}

export function fakeLease(): FakeLease {
  const revokers: ((d: PolicyDecision & { allow: false }) => void)[] = [];
  const lease: FakeLease = {
    sentBytes: 0,
    receivedBytes: 0,
    releases: 0,
    sendBudget: Infinity,
    receiveBudget: Infinity,
    sent(n) {
      if (lease.sentBytes + n > lease.sendBudget) throw new QuotaExceededError('bytes-sent', `send budget of ${lease.sendBudget} bytes spent`);
      lease.sentBytes += n;
    },
    received(n) {
      lease.receivedBytes += n;
      if (lease.receivedBytes > lease.receiveBudget) throw new QuotaExceededError('bytes-received', `receive budget of ${lease.receiveBudget} bytes spent`);
    },
    release() {
      lease.releases++;
    },
    onRevoke(cb) {
      revokers.push(cb);
    },
    revoke(decision) {
      for (const cb of revokers.splice(0)) cb(decision);
    },
  };
  return lease;
}

export const EMPTY_REPORT: SelectionReport = Object.freeze({
  startedAt: 0, tenant: 'test', remote: 'fake', racing: 'staggered', attemptDelay: 250, resolutions: [], candidates: [],
}) as SelectionReport;

/** A driver description matching a FakeChannel (never connects by itself). */
export function fakeDriverFor(framing: Framing, capabilities: Partial<Capabilities> = {}): Driver {
  const stream = framing === 'stream';
  return {
    id: stream ? 'fake-tcp' : 'fake-udp',
    stack: [stream ? 'fake-tcp' : 'fake-udp'],
    protocol: stream ? 'tcp' : 'udp',
    ipProtocol: stream ? 'tcp' : 'udp',
    framing,
    security: 'none',
    capabilities: stream
      ? { ...NO_CAPABILITIES, reliable: true, ordered: true, congestionControl: true, fullChecksum: true, ...capabilities }
      : { ...NO_CAPABILITIES, messageBoundaries: true, ...capabilities },
    available: () => ({ available: true }),
    connect: () => Promise.reject(new TapsError('ERR_TAPS_UNAVAILABLE', 'fake driver does not connect')),
  };
}

export interface FakeConnectionOptions extends FakeChannelOptions {
  readonly capabilities?: Partial<Capabilities>;
  readonly framers?: readonly MessageFramer[];
  readonly properties?: TransportProperties;
  readonly inbox?: ConnectionInit['inbox'];
  readonly connectionProperties?: Record<string, unknown>;
  readonly clone?: ConnectionInit['clone'];
}

export interface FakeConnection {
  readonly conn: Connection;
  readonly channel: FakeChannel;
  readonly clock: ManualClock;
  readonly lease: FakeLease;
  readonly driver: Driver;
}

export function fakeConnection(o: FakeConnectionOptions = {}): FakeConnection {
  const clock = new ManualClock();
  const channel = new FakeChannel(o);
  const lease = fakeLease();
  const driver = fakeDriverFor(channel.framing, o.capabilities);
  const conn = new Connection({
    channel,
    driver,
    properties: o.properties ?? (channel.framing === 'stream' ? TransportProperties.reliableMessage() : TransportProperties.unreliableDatagram()),
    framers: o.framers ?? [],
    report: EMPTY_REPORT,
    lease,
    clock,
    inbox: o.inbox,
    connectionProperties: o.connectionProperties,
    clone: o.clone,
  });
  return { conn, channel, clock, lease, driver };
}
