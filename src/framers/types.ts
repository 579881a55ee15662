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
 * @example
 * const framer = lengthPrefixFramer({ maxMessageSize: 1 << 20 });
 * const wire = framer.frame(new TextEncoder().encode('hi')); // [00 00 00 02] 'hi'
 * const d = framer.createDeframer();
 * for (const piece of [wire].flat()) d.push(piece, (msg) => console.log(msg));
 */

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

/** The receiving half of a framer: fed bytes, it emits whole messages. */
export interface Deframer {
  /**
   * Feed received bytes; `emit` is called once per complete message, in
   * order. Throws TapsError ERR_TAPS_DEFRAMING_FAILED on malformed input or a
   * message over the maximum; after that the deframer is unusable.
   */
  push(chunk: Uint8Array, emit: (message: Uint8Array) => void): void;
  /** The stream ended: throws ERR_TAPS_DEFRAMING_FAILED if a partial message is left. */
  end(): void;
  /** Bytes held for an incomplete message (never more than the maximum plus a header). */
  readonly buffered: number;
}
