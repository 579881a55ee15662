/**
 * Message framers (RFC 9622 §9.1.2): turn messages into bytes on a stream
 * stack (TCP, TLS, a QUIC stream) and find them again on the other side.
 *
 * A framer is a stateless description; every connection gets its own
 * {@link Deframer} from `createDeframer()`. A stack that keeps message
 * boundaries itself (UDP, WebSocket) uses no framer. The Connection calls
 * `frame()` for each sent message and feeds every received chunk to the
 * deframer; a deframer error ends the connection with
 * ERR_TAPS_DEFRAMING_FAILED, never a crash.
 *
 * Partial messages (RFC 9622 §9.3.2.2): a deframer that can, hands a message
 * over in pieces through the {@link DeframerSink} the connection passes
 * while the application reads partial messages, so a message larger than
 * memory streams through; one that can resynchronise skips a message over
 * its maximum and reports it (`skipped`, a ReceiveError, §9.3.2.3) instead of
 * failing. Both are optional: a deframer that ignores the sink delivers whole
 * messages and fails on oversize ones, as before.
 *
 * @example
 * const framer = lengthPrefixFramer({ maxMessageSize: 1 << 20 });
 * const wire = framer.frame(new TextEncoder().encode('hi')); // [00 00 00 02] 'hi'
 * const d = framer.createDeframer();
 * for (const piece of [wire].flat()) d.push(piece, (msg) => console.log(msg));
 */
import type { TapsError } from '../errors.js';

/** A message framer (RFC 9622 §9.1.2): frames each outgoing message and makes a deframer per connection for what arrives. */
export interface MessageFramer {
  /** Short name for reports (`length-prefix`, `delimiter`). */
  readonly name: string;
  /** Largest message this framer sends or accepts, in bytes. */
  readonly maxMessageSize: number;
  /**
   * Wire bytes for one message: one buffer, or pieces written in order
   * (e.g. header then payload, so a large payload is never copied).
   * Throws SendError ERR_TAPS_MESSAGE_TOO_LARGE / ERR_TAPS_INVALID_MESSAGE_PROPERTIES.
   */
  frame(message: Uint8Array): Uint8Array | readonly Uint8Array[];
  /** A fresh deframer for one connection's incoming bytes. */
  createDeframer(): Deframer;
}

/** Where a deframer may hand over what is not one whole message (see the module comment). */
export interface DeframerSink {
  /**
   * Present while the application reads partial messages: a message not
   * complete in the bytes at hand may be handed over as pieces, in order and
   * without gaps, the last with `end` true; the deframer then holds none of
   * it. Once a message is handed over in pieces, all of it is.
   */
  readonly part?: ((piece: Uint8Array, end: boolean) => void) | undefined;
  /**
   * A message the deframer will not deliver (over its maximum) and skips to
   * resynchronise on the next one; the connection reports it as a
   * ReceiveError and stays open. Absent: throw as before.
   */
  readonly skipped?: ((error: TapsError) => void) | undefined;
}

/** The receiving half of a framer: fed bytes, it emits whole messages (or pieces, see {@link DeframerSink}). */
export interface Deframer {
  /**
   * Feed received bytes; `emit` is called once per complete message, in
   * order. Throws TapsError ERR_TAPS_DEFRAMING_FAILED on malformed input or a
   * message over the maximum it cannot skip; after that the deframer is unusable.
   */
  push(chunk: Uint8Array, emit: (message: Uint8Array) => void, sink?: DeframerSink): void;
  /** The stream ended: throws ERR_TAPS_DEFRAMING_FAILED if a partial message is left. */
  end(): void;
  /** Bytes held for an incomplete message (never more than the maximum plus a header). */
  readonly buffered: number;
}
