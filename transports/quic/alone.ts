/**
 * Reliable unordered messages of a `quic-dgram` connection: each arrives
 * alone on a unidirectional stream the peer opened (`flow (varint) | message`,
 * then FIN, ./datagram-wire.ts) and is handed whole to its flow, so one lost
 * packet delays only that message.
 *
 * - Streams are independent: such a message may arrive before the stream
 *   that opens its flow. It waits for that flow ({@link flowOpened}); one for
 *   a flow that already ended is dropped and counted (`unknownFlow`).
 * - What is being read and what waits count against one budget per
 *   connection, {@link ALONE_BUDGET} bytes (a peer may open many streams at
 *   once); a stream beyond it, or one that does not parse, is refused
 *   (STOP_SENDING) and counted (`malformed`). Never thrown.
 *
 * @example
 * const alone = new AloneMessages(mux.stats);
 * connection.on(stream) → alone.read(stream)           // unidirectional peer streams
 * alone.flowOpened(0, (m) => channel.alone(m));       // when flow 0's stream arrives
 */
import type { QUICStream } from '@matrixai/quic';
import type { DatagramStats } from './datagram-mux.js';
import { readVarint } from './datagram-wire.js';

/** Bytes of reliable unordered messages held per connection, being read or waiting for their flow. */
export const ALONE_BUDGET = 16 * 1024 * 1024;

type Sink = (message: Uint8Array) => void;

export class AloneMessages {
  readonly #stats: DatagramStats;
  readonly #sinks = new Map<number, Sink>();
  readonly #ended = new Set<number>();
  readonly #waiting = new Map<number, Uint8Array[]>();
  #held = 0;
  #closed = false;

  constructor(stats: DatagramStats) {
    this.#stats = stats;
  }

  /** `flow`'s stream arrived: its messages go to `sink`, those that waited first. */
  flowOpened(flow: number, sink: Sink): void {
    this.#sinks.set(flow, sink);
    const waiting = this.#waiting.get(flow);
    if (waiting === undefined) return;
    this.#waiting.delete(flow);
    for (const m of waiting) {
      this.#held -= m.byteLength;
      sink(m);
    }
  }

  /** `flow` is gone: its late messages are dropped. */
  flowEnded(flow: number): void {
    this.#sinks.delete(flow);
    this.#ended.add(flow);
  }

  /** The connection is gone: nothing more is held. */
  close(): void {
    this.#closed = true;
    this.#waiting.clear();
    this.#sinks.clear();
    this.#held = 0;
  }

  /** Read one peer-opened unidirectional stream to its end and deliver its message. */
  read(stream: QUICStream): void {
    void this.#read(stream);
  }

  async #read(stream: QUICStream): Promise<void> {
    const chunks: Uint8Array[] = [];
    let size = 0;
    const reader = stream.readable.getReader();
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        size += value.byteLength;
        this.#held += value.byteLength;
        if (this.#held > ALONE_BUDGET) throw new RangeError('over budget');
        chunks.push(value);
      }
    } catch {
      this.#held -= size;
      if (!this.#closed) this.#stats.malformed++;
      stream.cancel(Object.assign(new Error('refused'), { code: 0 }));
      return;
    }
    const whole = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
    const head = readVarint(whole, 0);
    if (head === undefined || this.#closed) {
      this.#held -= size;
      if (!this.#closed) this.#stats.malformed++;
      return;
    }
    const [flow, at] = head;
    const message = whole.subarray(at);
    // The header is not held: only the message counts from here on.
    this.#held -= size - message.byteLength;
    const sink = this.#sinks.get(flow);
    if (sink !== undefined) {
      this.#held -= message.byteLength;
      sink(message);
    } else if (this.#ended.has(flow)) {
      this.#held -= message.byteLength;
      this.#stats.unknownFlow++;
    } else {
      let list = this.#waiting.get(flow);
      if (list === undefined) this.#waiting.set(flow, (list = []));
      list.push(message);
    }
  }
}
