/**
 * One flow of a `quic-dgram` connection as a message {@link TransportChannel}:
 * per-message reliability and order on one QUIC connection (RFC 9622
 * §9.1.3.7, §9.1.3.3), in the wire form of ./datagram-wire.ts.
 *
 * | msgReliable | msgOrdered | goes as                                           | arrives                      |
 * |-------------|------------|---------------------------------------------------|------------------------------|
 * | false       | false      | one QUIC DATAGRAM                                 | maybe, in any order          |
 * | false       | true       | one QUIC DATAGRAM marked ordered                  | maybe; never after a newer one |
 * | true        | true       | a length-prefixed message on the flow's stream    | surely, in order             |
 * | true        | false      | alone on a new unidirectional stream              | surely, in any order         |
 *
 * Unset, both follow the connection's defaults (the selection properties,
 * src/provided.ts `messageDefaults`). Each received message says which way it
 * came (`meta.reliable`, `meta.ordered`).
 *
 * - Sizes: an unreliable message is at most the negotiated datagram size
 *   minus the header (`dgramMaxWritableLen`); a larger one fails with
 *   ERR_TAPS_MESSAGE_TOO_LARGE — never fragmented, never moved to a stream.
 *   A reliable one is at most {@link STREAM_MESSAGE_MAX}. `maxMessageSize` is
 *   the default path's; `singularTransmissionMsgMaxLen` the datagram's.
 * - The flow's bidirectional stream is a kit StreamChannel underneath: its
 *   FIN is the end, its close and abort are the channel's; `pause()` stops
 *   reading it (flow control) and holds datagrams, at most
 *   {@link HELD_DATAGRAMS}, dropping (and counting) the rest, as a full
 *   socket buffer would.
 * - No more streams than the peer allows: when it grants no unidirectional
 *   stream, a reliable unordered message goes on the ordered stream (order
 *   is allowed, only not promised).
 *
 * @example
 * const ch = new QuicMessageChannel(stream, host, { ...init, defaults: { reliable: false, ordered: false } });
 * ch.send(update, {}, done);                     // a datagram
 * ch.send(input, { reliable: true }, done);      // on the stream
 */
import type { QUICStream } from '@matrixai/quic';
import type { ByteMeter, ChannelReceiveMeta, ChannelReceiver, ChannelSendMeta, SocketAddress, TransportChannel } from '../../src/driver.js';
import { SendError, TapsError } from '../../src/errors.js';
import { ownBytes } from '../../src/own.js';
import { lengthPrefixFramer, type Deframer } from '../../src/framers/index.js';
import type { MessageDefaults } from '../../src/provided.js';
import { Inbox } from '../kit/inbox.js';
import { StreamChannel, type StreamGroup } from '../kit/web-stream-channel.js';
import type { DatagramMux, FlowSink } from './datagram-mux.js';
import { STREAM_VERSION, uniPrefix } from './datagram-wire.js';
import { selfMetered } from '../../src/policy/self-metered.js';

/** Largest message sent on a stream (the 4-byte length prefix allows more; this bounds what a peer can make us hold). */
export const STREAM_MESSAGE_MAX = 16 * 1024 * 1024;
/** Datagrams held while the receiver is paused or not started; more are dropped and counted. */
export const HELD_DATAGRAMS = 1024;

const framer = lengthPrefixFramer({ maxMessageSize: STREAM_MESSAGE_MAX });
const VERSION = Uint8Array.of(STREAM_VERSION);

type Done = (err?: Error) => void;

/** Received-message facts, one frozen object per way (no allocation per message). */
const VIA: Record<'datagram' | 'orderedDatagram' | 'stream' | 'uni', ChannelReceiveMeta> = {
  datagram: Object.freeze({ reliable: false, ordered: false }),
  orderedDatagram: Object.freeze({ reliable: false, ordered: true }),
  stream: Object.freeze({ reliable: true, ordered: true }),
  uni: Object.freeze({ reliable: true, ordered: false }),
};

/** What a flow needs from its connection group. */
export interface FlowHost {
  readonly mux: DatagramMux;
  release(channel: QuicMessageChannel): Promise<void>;
  openStream(): Promise<TransportChannel>;
  setOption(name: string, value: unknown, channel: QuicMessageChannel): boolean;
  aborting?(channel: QuicMessageChannel): void;
  /** A new unidirectional stream; throws when the peer allows no more. */
  openUni(): QUICStream;
  /** The tenant's byte budget (a client's connection): each message is charged before it is sent. */
  readonly meter?: ByteMeter | undefined;
  /** True when the connection's socket charges every datagram it reads (TransportChannel.receiveMetered). */
  readonly receiveMetered?: boolean | undefined;
}

export interface QuicMessageChannelInit {
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  readonly closeTimeout: number;
  readonly streamError: (err: unknown) => TapsError;
  readonly defaults: MessageDefaults;
}

export class QuicMessageChannel implements TransportChannel, FlowSink {
  readonly framing = 'message' as const;
  readonly local: SocketAddress;
  readonly remote: SocketAddress;
  readonly info: Readonly<Record<string, unknown>>;
  /** The flow id: the stream id of its bidirectional stream. */
  readonly flow: number;

  readonly #host: FlowHost;
  readonly #stream: StreamChannel;
  readonly #defaults: MessageDefaults;
  readonly #inbox = new Inbox();
  readonly #deframer: Deframer = framer.createDeframer();
  #versionSeen = false;
  /** Set by abort(): the end is delivered at once, queued messages dropped. */
  #aborted = false;
  /** The peer's protocol error that ended the flow. */
  #failure: Error | undefined;
  #finished = false;

  constructor(stream: QUICStream, host: FlowHost, init: QuicMessageChannelInit) {
    this.flow = stream.streamId as number;
    this.#host = host;
    selfMetered(this, host.meter !== undefined, host.receiveMetered === true);
    this.local = init.local;
    this.remote = init.remote;
    this.info = init.info;
    this.#defaults = init.defaults;
    this.#stream = new StreamChannel(stream, this.#streamGroup, {
      local: init.local,
      remote: init.remote,
      info: init.info,
      closeTimeout: init.closeTimeout,
      streamError: init.streamError,
      priority: false,
    });
    host.mux.attach(this.flow, this);
    // Each direction opens with the version byte (it also opens the stream at the peer at once).
    this.#stream.send(VERSION, {}, noop);
    this.#stream.start(this.#fromStream);
  }

  /** The largest unreliable message now (the negotiated datagram size minus the header). */
  get datagramMax(): number {
    return this.#host.mux.maxMessage(this.flow);
  }
  get maxMessageSize(): number {
    return this.#defaults.reliable ? STREAM_MESSAGE_MAX : this.datagramMax;
  }
  get singularTransmissionMsgMaxLen(): number {
    return this.datagramMax;
  }
  maxMessageSizeFor(reliable: boolean): number {
    return reliable ? STREAM_MESSAGE_MAX : this.datagramMax;
  }

  /** Messages are charged to the connection's byte budget here (see {@link FlowHost.meter}). */
  get metered(): boolean {
    return this.#host.meter !== undefined;
  }

  /** What arrives is charged at the connection's socket (see {@link FlowHost.receiveMetered}). */
  get receiveMetered(): boolean {
    return this.#host.receiveMetered === true;
  }

  /** Still open (the group routes peer streams to the oldest open channel). */
  get open(): boolean {
    return !this.#finished;
  }

  start(receiver: ChannelReceiver): void {
    this.#inbox.start(receiver);
  }

  send(data: Uint8Array, meta: ChannelSendMeta, done: Done): boolean {
    data = ownBytes(data); // counted as the socket sends it: a view whose length lies is copied (src/own.ts)
    if (this.#finished) {
      queueMicrotask(() => done(new SendError('ERR_TAPS_CONNECTION_ABORTED', 'the flow is closed')));
      return true;
    }
    const meter = this.#host.meter;
    if (meter !== undefined) {
      try {
        meter.sent(data.byteLength);
      } catch (err) {
        queueMicrotask(() => done(err as Error));
        return true;
      }
    }
    const reliable = meta.reliable ?? this.#defaults.reliable;
    const ordered = meta.ordered ?? this.#defaults.ordered;
    let ok: boolean;
    if (!reliable) ok = this.#sendDatagram(data, ordered, done);
    else if (!ordered && this.#sendAlone(data, done)) ok = true;
    else ok = this.#sendOnStream(data, done);
    if (meta.final === true) this.#stream.send(new Uint8Array(0), { final: true }, noop);
    return ok;
  }

  pause(): void {
    this.#inbox.pause();
    this.#stream.pause();
  }

  resume(): void {
    this.#inbox.resume();
    this.#stream.resume();
  }

  close(): Promise<void> {
    return this.#stream.close();
  }

  abort(reason?: Error): void {
    this.#stream.abort(reason);
  }

  openStream(): Promise<TransportChannel> {
    if (this.#finished) return Promise.reject(new TapsError('ERR_TAPS_INVALID_STATE', 'cannot open a stream: this flow is closed'));
    return this.#host.openStream();
  }

  setOption(name: string, value: unknown): void {
    this.#stream.setOption(name, value);
  }

  // ── the group's side ─────────────────────────────────────────────────

  /** A stream the peer opened in this connection: delivered to this channel's receiver. */
  peerStream(channel: TransportChannel): void {
    this.#inbox.stream(channel);
  }

  /** A soft error the connection's socket reported (RFC 9622 §8.3.1): the flow stays open. */
  softError(error: Error): void {
    if (!this.#finished) this.#inbox.softError(error);
  }

  /** The connection is gone under the flow. */
  sessionGone(error: Error): void {
    this.#stream.sessionGone(error);
  }

  /** A reliable unordered message of this flow (read whole from its unidirectional stream). */
  alone(message: Uint8Array): void {
    if (!this.#finished) this.#inbox.data(message, VIA.uni);
  }

  // ── FlowSink ─────────────────────────────────────────────────────────

  datagram(message: Uint8Array, ordered: boolean): void {
    if (this.#finished) return;
    if (!this.#inbox.flowing && this.#inbox.queued >= HELD_DATAGRAMS) {
      this.#host.mux.stats.held++;
      return;
    }
    this.#inbox.data(message, ordered ? VIA.orderedDatagram : VIA.datagram);
  }

  drain(): void {
    this.#inbox.drain();
  }

  // ── sending ──────────────────────────────────────────────────────────

  #sendDatagram(data: Uint8Array, ordered: boolean, done: Done): boolean {
    const max = this.datagramMax;
    if (data.byteLength > max) {
      const err = new SendError(
        'ERR_TAPS_MESSAGE_TOO_LARGE',
        `unreliable message of ${data.byteLength} bytes exceeds the largest QUIC DATAGRAM this connection can carry (${max} bytes of message, negotiated with the peer: RFC 9221); it is not fragmented nor sent on a stream`,
      );
      queueMicrotask(() => done(err));
      return true;
    }
    return this.#host.mux.send(this.flow, ordered, data, done);
  }

  #sendOnStream(data: Uint8Array, done: Done): boolean {
    let pieces: Uint8Array | readonly Uint8Array[];
    try {
      pieces = framer.frame(data);
    } catch (err) {
      queueMicrotask(() => done(err as Error));
      return true;
    }
    if (pieces instanceof Uint8Array) return this.#stream.send(pieces, {}, done);
    let left = pieces.length;
    let failure: Error | undefined;
    const one = (err?: Error): void => {
      failure ??= err;
      if (--left === 0) done(failure);
    };
    let ok = true;
    for (const piece of pieces) ok = this.#stream.send(piece, {}, one);
    return ok;
  }

  /** On a new unidirectional stream; false when the peer allows none now (the caller sends it on the stream). */
  #sendAlone(data: Uint8Array, done: Done): boolean {
    if (data.byteLength > STREAM_MESSAGE_MAX) {
      queueMicrotask(() => done(new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${data.byteLength} bytes exceeds ${STREAM_MESSAGE_MAX}`)));
      return true;
    }
    let uni: QUICStream;
    try {
      uni = this.#host.openUni();
    } catch {
      return false;
    }
    const writer = uni.writable.getWriter();
    writer.write(Buffer.concat([uniPrefix(this.flow), data])).then(
      () => done(),
      (err: unknown) => done(new SendError('ERR_TAPS_SEND_FAILED', 'the unidirectional stream failed before the message was sent', { cause: err })),
    );
    writer.close().catch(() => {});
    return true;
  }

  // ── the flow's stream ────────────────────────────────────────────────

  readonly #emit = (message: Uint8Array): void => this.#inbox.data(message, VIA.stream);

  /** What the underlying StreamChannel delivers: the version byte, then length-prefixed messages. */
  readonly #fromStream: ChannelReceiver = {
    data: (chunk) => {
      if (!this.#versionSeen) {
        if (chunk[0] !== STREAM_VERSION) {
          this.#fail(new TapsError('ERR_TAPS_PROTOCOL_FAILED', `the peer's stream does not begin with the quic-dgram version byte ${STREAM_VERSION} (got ${chunk[0]})`));
          return;
        }
        this.#versionSeen = true;
        chunk = chunk.subarray(1);
        if (chunk.byteLength === 0) return;
      }
      try {
        this.#deframer.push(chunk, this.#emit);
      } catch (err) {
        this.#fail(err as Error);
      }
    },
    end: () => {
      try {
        this.#deframer.end();
      } catch (err) {
        this.#fail(err as Error);
        return;
      }
      this.#inbox.end();
    },
    drain: () => this.#inbox.drain(),
    closed: (error) => {
      this.#finished = true;
      this.#host.mux.detach(this.flow);
      if (this.#failure !== undefined) this.#inbox.closedNow(this.#failure);
      else if (error !== undefined && this.#aborted) this.#inbox.closedNow(error);
      else this.#inbox.closedAfterQueue(error);
    },
  };

  /** The peer broke the wire form: reset the stream, end with `error` (ERR_TAPS_PROTOCOL_FAILED / ERR_TAPS_DEFRAMING_FAILED). */
  #fail(error: Error): void {
    this.#failure ??= error;
    this.#stream.abort(error);
  }

  /** The StreamChannel's group is this flow: its release is the flow's. */
  readonly #streamGroup: StreamGroup = {
    release: () => this.#host.release(this),
    openStream: () => this.#host.openStream(),
    setOption: (name, value) => this.#host.setOption(name, value, this),
    aborting: () => {
      this.#aborted = true;
      this.#host.aborting?.(this);
    },
  };
}

const noop = (): void => {};
