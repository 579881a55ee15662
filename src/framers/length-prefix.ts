/**
 * The length-prefix framer: each message is preceded by its length as an
 * unsigned big-endian integer of 1, 2 or 4 bytes (RFC 9622 §9.1.2; the
 * framing TCP-based message protocols commonly use).
 *
 * Sending writes the header and the payload as two pieces, so a large
 * message is never copied. Receiving has a fast path: when no partial
 * message is held, whole messages in a chunk are handed out as views of it.
 * While the application reads partial messages, a message not complete in
 * the bytes at hand is handed over in pieces as they arrive (nothing of it
 * held, whatever its size, up to the 4 GiB a header can announce); a
 * message announced over the maximum is skipped and reported, and the next
 * header is read after it (the framing resynchronises). An announcement
 * past the skip limit ends the stream instead: bytes of another protocol
 * read as a length (an HTTP request line, a TLS ClientHello) announce
 * 0.3 to 1.4 GB, and skipping that would hold the connection until the peer
 * gives up.
 *
 * @example
 * const framer = lengthPrefixFramer({ headerBytes: 2 }); // messages up to 65535 bytes
 */
import { SendError, TapsError } from '../errors.js';
import { allocFrame, ChunkBuffer } from './buffer.js';
import type { Deframer, DeframerSink, MessageFramer } from './types.js';

/** Options of {@link lengthPrefixFramer}. */
export interface LengthPrefixOptions {
  /** Header size: 1, 2 or 4 bytes (default 4). */
  readonly headerBytes?: 1 | 2 | 4;
  /** Largest message in bytes (default 16 MiB, capped by what the header can express). */
  readonly maxMessageSize?: number;
  /**
   * Largest announced size that is skipped (reported as a ReceiveError, RFC 9622 §9.3.2.3) when it is over
   * `maxMessageSize`; a larger one fails the stream with `ERR_TAPS_DEFRAMING_FAILED`. Default: 16 × maxMessageSize,
   * capped by what the header can express. Irrelevant while the application receives partial messages: then any
   * size is handed over in pieces.
   */
  readonly maxSkip?: number;
}

const DEFAULT_MAX = 16 * 1024 * 1024;
/** By default a message up to this many times the maximum is skipped; a larger announcement ends the stream. */
const SKIP_FACTOR = 16;
/** Messages up to this size are sent as one buffer (a copy is cheaper than a second write). */
const COALESCE = 16 * 1024;

/** A framer that puts each message's length in front of it, so a byte stream (TCP, TLS) carries messages. */
export function lengthPrefixFramer(options: LengthPrefixOptions = {}): MessageFramer {
  if (typeof options !== 'object' || options === null) throw new TypeError('options must be an object');
  const headerBytes = options.headerBytes ?? 4;
  if (headerBytes !== 1 && headerBytes !== 2 && headerBytes !== 4) throw new RangeError(`options.headerBytes must be 1, 2 or 4, got ${String(headerBytes)}`);
  const ceiling = headerBytes === 4 ? 0xffff_ffff : 2 ** (8 * headerBytes) - 1;
  const max = options.maxMessageSize ?? Math.min(DEFAULT_MAX, ceiling);
  if (!Number.isInteger(max) || max < 0 || max > ceiling) {
    throw new RangeError(`options.maxMessageSize must be an integer 0..${ceiling} for a ${headerBytes}-byte header, got ${String(options.maxMessageSize)}`);
  }
  const maxSkip = options.maxSkip ?? Math.min(SKIP_FACTOR * max, ceiling);
  if (!Number.isInteger(maxSkip) || maxSkip < max || maxSkip > ceiling) {
    throw new RangeError(`options.maxSkip must be an integer ${max}..${ceiling} (from maxMessageSize to the header's ceiling), got ${String(options.maxSkip)}`);
  }

  const writeHeader = (into: Uint8Array, n: number): void => {
    if (headerBytes === 4) {
      into[0] = n >>> 24;
      into[1] = (n >>> 16) & 0xff;
      into[2] = (n >>> 8) & 0xff;
      into[3] = n & 0xff;
    } else if (headerBytes === 2) {
      into[0] = n >>> 8;
      into[1] = n & 0xff;
    } else into[0] = n;
  };

  return Object.freeze({
    name: 'length-prefix',
    maxMessageSize: max,
    frame(message: Uint8Array): Uint8Array | readonly Uint8Array[] {
      const n = message.byteLength;
      if (n > max) throw new SendError('ERR_TAPS_MESSAGE_TOO_LARGE', `message of ${n} bytes exceeds the framer's maximum of ${max}`);
      if (n <= COALESCE) {
        const out = allocFrame(headerBytes + n); // uninitialised: every byte is written below
        writeHeader(out, n);
        out.set(message, headerBytes);
        return out;
      }
      const header = Buffer.allocUnsafe(headerBytes);
      writeHeader(header, n);
      return [header, message];
    },
    createDeframer(): Deframer {
      return new LengthPrefixDeframer(headerBytes, max, maxSkip);
    },
  });
}

class LengthPrefixDeframer implements Deframer {
  readonly #headerBytes: number;
  readonly #max: number;
  readonly #maxSkip: number;
  readonly #held = new ChunkBuffer();
  #failed = false;
  /** Body bytes of the current message still to come while it is handed over in pieces or skipped (0: none). */
  #body = 0;
  /** Where the pieces of the current message go; undefined while it is skipped. */
  #part: ((piece: Uint8Array, end: boolean) => void) | undefined;

  constructor(headerBytes: number, max: number, maxSkip: number) {
    this.#headerBytes = headerBytes;
    this.#max = max;
    this.#maxSkip = maxSkip;
  }

  get buffered(): number {
    return this.#held.length;
  }

  push(chunk: Uint8Array, emit: (message: Uint8Array) => void, sink?: DeframerSink): void {
    if (this.#failed) throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', 'the deframer already failed');
    let rest: Uint8Array | undefined = chunk;
    while (rest !== undefined) {
      if (this.#body > 0) {
        const used = this.#continueBody(rest);
        if (used === rest.byteLength) return;
        rest = rest.subarray(used);
      }
      rest = this.#messages(rest, emit, sink);
    }
  }

  /**
   * Whole messages out of `chunk` (and what is held); returns the bytes after a header whose body does not come
   * whole (see #startBody), or undefined when the chunk is used up.
   */
  #messages(chunk: Uint8Array, emit: (message: Uint8Array) => void, sink: DeframerSink | undefined): Uint8Array | undefined {
    let offset = 0;
    const h = this.#headerBytes;
    // Fast path: nothing held, read whole messages straight out of the chunk.
    if (this.#held.length === 0) {
      while (chunk.byteLength - offset >= h) {
        const n = this.#length((i) => chunk[offset + i]!);
        const available = chunk.byteLength - offset - h;
        if (n > this.#max || (available < n && sink?.part !== undefined)) {
          this.#startBody(n, sink);
          return chunk.subarray(offset + h);
        }
        if (available < n) break;
        emit(chunk.subarray(offset + h, offset + h + n));
        offset += h + n;
      }
      if (offset === chunk.byteLength) return undefined;
      chunk = chunk.subarray(offset);
    }
    this.#held.push(chunk);
    while (this.#held.length >= h) {
      const n = this.#length((i) => this.#held.at(i));
      const available = this.#held.length - h;
      if (n > this.#max || (available < n && sink?.part !== undefined)) {
        this.#held.skip(h);
        this.#startBody(n, sink);
        return this.#held.take(this.#held.length);
      }
      if (available < n) return undefined;
      this.#held.skip(h);
      emit(this.#held.take(n));
    }
    return undefined;
  }

  end(): void {
    if (this.#held.length > 0 || this.#body > 0) {
      const held = this.#held.length + this.#body;
      this.#fail();
      throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', `the stream ended inside a message (${held} bytes of a partial message missing or held)`);
    }
  }

  /**
   * A message whose body does not come whole: handed over in pieces when the sink takes them, otherwise (over the
   * maximum) skipped and reported when the sink takes that and it is within the skip limit, otherwise the stream
   * cannot go on.
   */
  #startBody(n: number, sink: DeframerSink | undefined): void {
    this.#part = sink?.part;
    if (this.#part === undefined) {
      const error = new TapsError('ERR_TAPS_MESSAGE_TOO_LARGE', `the peer announced a message of ${n} bytes, over the maximum of ${this.#max}`);
      if (n > this.#maxSkip) {
        this.#fail();
        throw new TapsError(
          'ERR_TAPS_DEFRAMING_FAILED',
          `${error.message} and past the ${this.#maxSkip} bytes it would skip: the peer is not sending length-prefixed messages (another protocol's bytes read as a length look like this)`,
          { cause: error },
        );
      }
      if (sink?.skipped === undefined) {
        this.#fail();
        throw new TapsError('ERR_TAPS_DEFRAMING_FAILED', error.message);
      }
      sink.skipped(error);
    }
    this.#body = n;
    if (n === 0) this.#part?.(new Uint8Array(0), true);
  }

  /** Hand over (or skip) the current body's bytes at the front of `chunk`; returns how many it used. */
  #continueBody(chunk: Uint8Array): number {
    const n = Math.min(this.#body, chunk.byteLength);
    this.#body -= n;
    if (this.#part !== undefined && n > 0) this.#part(n === chunk.byteLength ? chunk : chunk.subarray(0, n), this.#body === 0);
    return n;
  }

  /** Unusable from now on; what was held is freed. */
  #fail(): void {
    this.#failed = true;
    this.#held.clear();
  }

  #length(byte: (i: number) => number): number {
    let n = 0;
    for (let i = 0; i < this.#headerBytes; i++) n = n * 256 + byte(i);
    return n;
  }
}
