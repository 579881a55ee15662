/**
 * A stack of message framers (RFC 9622 §9.1.2): "the last one added runs
 * first when framing outbound Messages, and last when parsing inbound data".
 * `framers[0]` (added first) is nearest the transport: a message is framed by
 * the last framer, its output framed as one message by the one before, and so
 * on; received bytes are deframed by `framers[0]`, each of its messages fed as
 * bytes to the next, and the last one's messages are the application's.
 *
 * Partial messages: only the top framer hands over pieces (its output is
 * what the application reads); the lower ones deliver whole messages to it.
 * A message any of them skips as over its maximum is reported all the same.
 *
 * @example
 * // NDJSON records, each line in a length-prefixed frame
 * const framer = framerStack([lengthPrefixFramer(), delimiterFramer()]);
 */
import type { Deframer, DeframerSink, MessageFramer } from './types.js';

/** One framer that runs `framers` as a stack (the first given nearest the transport). A single framer is returned as is. */
export function framerStack(framers: readonly MessageFramer[]): MessageFramer {
  if (!Array.isArray(framers) || framers.length === 0) throw new TypeError('framers must be a non-empty array of MessageFramer');
  if (framers.length === 1) return framers[0]!;
  const list = Object.freeze([...framers]);
  return Object.freeze({
    name: list.map((f) => f.name).reverse().join(' over '),
    maxMessageSize: Math.min(...list.map((f) => f.maxMessageSize)),
    frame(message: Uint8Array): Uint8Array | readonly Uint8Array[] {
      let out: Uint8Array | readonly Uint8Array[] = message;
      for (let i = list.length - 1; i >= 0; i--) out = list[i]!.frame(out instanceof Uint8Array ? out : Buffer.concat(out));
      return out;
    },
    createDeframer(): Deframer {
      return new StackDeframer(list.map((f) => f.createDeframer()));
    },
  });
}

class StackDeframer implements Deframer {
  readonly #levels: readonly Deframer[];

  constructor(levels: readonly Deframer[]) {
    this.#levels = levels;
  }

  get buffered(): number {
    return this.#levels.reduce((n, d) => n + d.buffered, 0);
  }

  push(chunk: Uint8Array, emit: (message: Uint8Array) => void, sink?: DeframerSink): void {
    this.#feed(0, chunk, emit, sink);
  }

  #feed(level: number, bytes: Uint8Array, emit: (message: Uint8Array) => void, sink: DeframerSink | undefined): void {
    const d = this.#levels[level]!;
    if (level === this.#levels.length - 1) return d.push(bytes, emit, sink);
    d.push(bytes, (m) => this.#feed(level + 1, m, emit, sink), sink?.skipped === undefined ? undefined : { skipped: sink.skipped });
  }

  end(): void {
    for (const d of this.#levels) d.end();
  }
}
