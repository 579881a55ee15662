/**
 * The delimiter framer: messages separated by a byte sequence (default a
 * newline), as in line-based protocols and NDJSON (RFC 9622 §9.1.2).
 *
 * The delimiter must not occur inside a message: sending one that contains
 * it is refused (ERR_TAPS_INVALID_MESSAGE_PROPERTIES) rather than silently
 * splitting it in two on the other side. An optional `stripCarriageReturn`
 * accepts `\r\n` line ends (and so refuses to send a message ending in `\r`,
 * which would not arrive intact).
 *
 * A message over the maximum is skipped up to the next delimiter and
 * reported (a ReceiveError, RFC 9622 §9.3.2.3) when the connection takes
 * that; the framing resynchronises at the delimiter. Messages are delivered
 * whole only: where one ends is known only when its delimiter arrives.
 *
 * @example
 * const lines = delimiterFramer(); // '\n', messages up to 1 MiB
 * const records = delimiterFramer({ delimiter: '\0', maxMessageSize: 4096 });
 */
import { SendError, TapsError } from '../errors.js';
import { ChunkBuffer } from './buffer.js';
import type { Deframer, DeframerSink, MessageFramer } from './types.js';

/** Options of {@link delimiterFramer}. */
export interface DelimiterOptions {
  /** The separator (string as UTF-8, or bytes), default `'\n'`. Non-empty. */
  readonly delimiter?: string | Uint8Array;
  /** Largest message without the delimiter, default 1 MiB. */
  readonly maxMessageSize?: number;
  /** With a `'\n'` delimiter, drop a `'\r'` before it on receive. */
  readonly stripCarriageReturn?: boolean;
}

/** A framer that ends each message with a delimiter (default `\n`), e.g. for line protocols. */
export function delimiterFramer(options: DelimiterOptions = {}): MessageFramer {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const raw = options.delimiter ?? '\n';
  if (typeof raw !== 'string' && !(raw instanceof Uint8Array)) throw new TypeError('options.delimiter must be a string or a Uint8Array');
  const delimiter = typeof raw === 'string' ? new TextEncoder().encode(raw) : Uint8Array.from(raw);
  if (delimiter.byteLength === 0) throw new RangeError('options.delimiter must not be empty');
  const max = options.maxMessageSize ?? 1024 * 1024;
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`options.maxMessageSize must be a non-negative integer, got ${String(options.maxMessageSize)}`);
  const stripCr = options.stripCarriageReturn === true;

  return Object.freeze({
    name: 'delimiter',
    maxMessageSize: max,
    frame(message: Uint8Array): Uint8Array {
      if (message.byteLength > max) throw new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${message.byteLength} bytes exceeds the framer's maximum of ${max}`);
      if (stripCr && message.byteLength > 0 && message[message.byteLength - 1] === 0x0d) {
        throw new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', "the message ends in '\\r', which stripCarriageReturn would remove on arrival");
      }
      const out = Buffer.allocUnsafe(message.byteLength + delimiter.byteLength);
      out.set(message, 0);
      out.set(delimiter, message.byteLength);
      // The first delimiter on the wire must be ours: one inside the message, or one its tail forms with
      // the start of ours (delimiter 'aba', message 'xab'), would split it on arrival.
      if (firstIndex(out, delimiter) !== message.byteLength) {
        throw new SendError('ERR_TAPS_INVALID_MESSAGE_PROPERTIES', 'the message contains the delimiter (or ends with part of it); it would not arrive as one message');
      }
      return out;
    },
    createDeframer(): Deframer {
      return new DelimiterDeframer(delimiter, max, stripCr);
    },
  });
}

function firstIndex(hay: Buffer, needle: Uint8Array): number {
  return needle.byteLength === 1 ? hay.indexOf(needle[0]!) : hay.indexOf(needle);
}

class DelimiterDeframer implements Deframer {
  readonly #delimiter: Uint8Array;
  readonly #max: number;
  readonly #stripCr: boolean;
  readonly #held = new ChunkBuffer();
  /** Offset in #held already searched for the delimiter. */
  #searched = 0;
  #failed = false;
  /** Inside a message over the maximum that was reported skipped: bytes are dropped up to the next delimiter. */
  #discarding = false;

  constructor(delimiter: Uint8Array, max: number, stripCr: boolean) {
    this.#delimiter = delimiter;
    this.#max = max;
    this.#stripCr = stripCr;
  }

  get buffered(): number {
    return this.#held.length;
  }

  push(chunk: Uint8Array, emit: (message: Uint8Array) => void, sink?: DeframerSink): void {
    if (this.#failed) throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', 'the deframer already failed');
    if (this.#discarding) {
      const rest = this.#discard(chunk);
      if (rest === undefined) return;
      chunk = rest;
    }
    const d = this.#delimiter;
    let offset = 0;
    if (this.#held.length === 0) {
      // Fast path: split the chunk itself.
      const buf = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
      for (;;) {
        const at = buf.indexOf(d, offset);
        if (at < 0) break;
        this.#emit(chunk.subarray(offset, at), emit, sink);
        offset = at + d.byteLength;
      }
      if (offset === chunk.byteLength) return;
      chunk = chunk.subarray(offset);
    }
    this.#held.push(chunk);
    for (;;) {
      const at = this.#held.indexOf(d, Math.max(0, this.#searched - d.byteLength + 1));
      if (at < 0) break;
      const msg = this.#held.take(at);
      this.#held.skip(d.byteLength);
      this.#searched = 0;
      this.#emit(msg, emit, sink);
    }
    this.#searched = this.#held.length;
    // Without a whole delimiter, at most a maximal message (plus the '\r' to strip) and all but one byte of the delimiter can be held.
    if (this.#held.length > this.#max + d.byteLength - 1 + (this.#stripCr ? 1 : 0)) {
      const why = `no delimiter within ${this.#max} bytes: message over the maximum`;
      if (sink?.skipped === undefined) {
        this.#fail();
        throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', why);
      }
      sink.skipped(new TapsError('ERR_TAPS_MESSAGE_TOO_LARGE', `${why}, skipped up to the next delimiter`));
      this.#discarding = true;
      this.#searched = 0;
      this.#keepTail();
    }
  }

  /** Drop bytes of a skipped message up to the next delimiter; returns what follows it, or undefined when none came yet. */
  #discard(chunk: Uint8Array): Uint8Array | undefined {
    this.#held.push(chunk);
    const at = this.#held.indexOf(this.#delimiter, 0);
    if (at < 0) {
      this.#keepTail();
      return undefined;
    }
    this.#held.skip(at + this.#delimiter.byteLength);
    this.#discarding = false;
    return this.#held.take(this.#held.length);
  }

  /** Keep only the bytes a delimiter split across chunks may begin with. */
  #keepTail(): void {
    const keep = Math.min(this.#held.length, this.#delimiter.byteLength - 1);
    this.#held.skip(this.#held.length - keep);
  }

  end(): void {
    if (this.#discarding) {
      this.#held.clear(); // the rest of a message already reported skipped
      return;
    }
    if (this.#held.length > 0) {
      const held = this.#held.length;
      this.#fail();
      throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', `the stream ended inside a message (${held} bytes without a delimiter)`);
    }
  }

  /** Unusable from now on; what was held is freed. */
  #fail(): void {
    this.#failed = true;
    this.#held.clear();
    this.#searched = 0;
  }

  #emit(msg: Uint8Array, emit: (message: Uint8Array) => void, sink: DeframerSink | undefined): void {
    if (this.#stripCr && msg.byteLength > 0 && msg[msg.byteLength - 1] === 0x0d) msg = msg.subarray(0, msg.byteLength - 1);
    if (msg.byteLength > this.#max) {
      if (sink?.skipped !== undefined) {
        sink.skipped(new TapsError('ERR_TAPS_MESSAGE_TOO_LARGE', `a message of ${msg.byteLength} bytes is over the maximum of ${this.#max}: skipped`));
        return;
      }
      this.#fail();
      throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', `a message of ${msg.byteLength} bytes is over the maximum of ${this.#max}`);
    }
    emit(msg);
  }
}
