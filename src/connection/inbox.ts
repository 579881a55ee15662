/**
 * Received messages waiting for `receive()` / `for await`, with receive
 * backpressure (RFC 9622 §9.3.1: the application pulls, the transport waits),
 * and partial messages (§9.3.2.2).
 *
 * When more than `highWaterBytes` or `highWaterMessages` are queued the
 * channel is paused, so a peer that sends faster than the application reads
 * fills the kernel's buffers and then its own — never this process's memory.
 * Reading below half of both resumes it; a reader waiting for more always
 * resumes it.
 *
 * Partial messages: a message the deframer or the channel hands over in
 * pieces is the *open* message, after every queued one. A `receive()` with
 * a finite `minIncompleteLength` or `maxLength` takes pieces of it — at
 * least `min(minIncompleteLength, maxLength)` bytes, at most `maxLength` —
 * and a queued message longer than `maxLength` in pieces of that size. While
 * the last receive asked for pieces, the open message's bytes count towards
 * the high-water mark, so a message of any size streams through in a window;
 * otherwise it is assembled whole (as a deframer would hold it, bounded by
 * the framer's maximum) and queued or delivered when complete.
 */
import { TapsError, abortCode } from '../errors.js';
import { Message, PartialMessage, type ReceivedContext } from '../message.js';

export interface InboxLimits {
  readonly highWaterBytes: number;
  readonly highWaterMessages: number;
}

export const DEFAULT_INBOX_LIMITS: InboxLimits = Object.freeze({ highWaterBytes: 4 * 1024 * 1024, highWaterMessages: 4096 });

/** What the inbox pauses when full and resumes when drained (a TransportChannel). */
export interface FlowControl {
  pause(): void;
  resume(): void;
}

/** How much of a message one receive takes (RFC 9622 §9.3.1); Infinity, Infinity: whole messages only. */
export interface ReceiveLimits {
  readonly minIncompleteLength: number;
  readonly maxLength: number;
}

export const WHOLE: ReceiveLimits = Object.freeze({ minIncompleteLength: Infinity, maxLength: Infinity });

type Waiter = { resolve: (m: Message | undefined) => void; reject: (e: Error) => void; cleanup: () => void; limits: ReceiveLimits; noMore: (() => Error) | undefined };

/** The message being received in pieces: what is held of it, and whether some of it was handed out. */
interface Open {
  /** Made when the first piece is handed out (its pieces share it) or at the end, from the latest piece's facts. */
  context: ReceivedContext | undefined;
  make: () => ReceivedContext;
  readonly pieces: Uint8Array[];
  bytes: number;
  started: boolean;
}

export class Inbox {
  // Both made on first use: most connections deliver through the `received` event and never queue.
  #queue: Message[] | undefined;
  #head = 0;
  #bytes = 0;
  /** Bytes of the head message already handed out in pieces, and the context its pieces share. */
  #headOffset = 0;
  #headContext: ReceivedContext | undefined;
  #open: Open | undefined;
  /** The last receive asked for pieces: the open message is read in a window, not assembled. */
  #partialReader = false;
  #waiters: Waiter[] | undefined;
  #ended = false;
  #error: Error | undefined;
  #paused = false;
  readonly #limits: InboxLimits;
  readonly #flow: FlowControl;
  readonly #onPiece: ((piece: Message) => void) | undefined;

  /** `flow` is what to pause and resume: the connection's channel; `onPiece` is told of each piece handed to a reader. */
  constructor(limits: InboxLimits, flow: FlowControl, onPiece?: (piece: Message) => void) {
    this.#limits = limits;
    this.#flow = flow;
    this.#onPiece = onPiece;
  }

  /** Whole messages queued (a partly read one included). */
  get queued(): number {
    return this.#queue === undefined ? 0 : this.#queue.length - this.#head;
  }

  get hasWaiter(): boolean {
    return this.#waiters !== undefined && this.#waiters.length > 0;
  }

  /** A message is arriving in pieces. */
  get hasOpen(): boolean {
    return this.#open !== undefined;
  }

  /** Pieces are wanted from the deframer: the last receive asked for them, or a message is already arriving in pieces. */
  get wantsPieces(): boolean {
    return this.#partialReader || this.#open !== undefined;
  }

  /** Hand a whole message to a waiting reader, or queue it. */
  put(msg: Message): void {
    (this.#queue ??= []).push(msg);
    this.#bytes += msg.data.byteLength;
    this.#serve();
    this.#updateFlow();
  }

  /**
   * A piece of the message arriving in pieces (`end`: its last). Returns the whole message when it ended without
   * any of it handed out (the caller delivers it like any other), otherwise undefined.
   */
  part(piece: Uint8Array, end: boolean, context: () => ReceivedContext): Message | undefined {
    let open = this.#open;
    if (open === undefined) open = this.#open = { context: undefined, make: context, pieces: [], bytes: 0, started: false };
    else open.make = context;
    if (piece.byteLength > 0) {
      open.pieces.push(piece);
      open.bytes += piece.byteLength;
    }
    if (end) {
      this.#open = undefined;
      const data = open.pieces.length === 1 ? open.pieces[0]! : Buffer.concat(open.pieces, open.bytes);
      const ctx = (open.context ??= context());
      if (!open.started) return new Message(data, ctx);
      // Partly read: the rest is the head of the queue (nothing can be queued before an open message).
      (this.#queue ??= []).push(new Message(data, ctx));
      this.#bytes += data.byteLength;
      this.#headContext = ctx;
    }
    this.#serve();
    this.#updateFlow();
    return undefined;
  }

  /** No more messages will come; `error` set when the connection failed. */
  end(error?: Error): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#error = error;
    const waiters = this.#waiters ?? [];
    this.#waiters = undefined;
    for (const w of waiters) {
      w.cleanup();
      if (error) w.reject(error);
      else if (w.noMore) w.reject(w.noMore());
      else w.resolve(undefined);
    }
  }

  /**
   * The next message, or the next piece of one (see the module comment); rejects with the connection's error.
   * When the peer has finished: undefined, or a rejection with `noMore()` when given.
   */
  next(signal?: AbortSignal, limits: ReceiveLimits = WHOLE, noMore?: () => Error): Promise<Message | undefined> {
    this.#partialReader = limits.minIncompleteLength !== Infinity || limits.maxLength !== Infinity;
    const now = this.#takeFor(limits);
    if (now !== undefined) {
      if (now instanceof PartialMessage) this.#onPiece?.(now);
      return Promise.resolve(now);
    }
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : noMore ? Promise.reject(noMore()) : Promise.resolve(undefined);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters?.indexOf(w) ?? -1;
        if (i >= 0) this.#waiters!.splice(i, 1);
        reject(abortError(signal!));
      };
      const w: Waiter = { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort), limits, noMore };
      signal?.addEventListener('abort', onAbort, { once: true });
      (this.#waiters ??= []).push(w);
      this.#updateFlow(); // a waiting reader needs data to flow
    });
  }

  /** The oldest queued message, taken now (undefined when none). */
  take(): Message | undefined {
    return this.queued > 0 ? this.#takeFor(WHOLE) : undefined;
  }

  /** The peer sent nothing after the last queued message: mark it final (RFC 9622 §9.3.2.4). */
  markFinal(): void {
    if (this.queued === 0 || this.#open !== undefined) return;
    const queue = this.#queue!;
    const last = queue[queue.length - 1]!;
    if (last.context.final) return;
    const context = { ...last.context, final: true };
    queue[queue.length - 1] = new Message(last.data, context);
    if (this.queued === 1 && this.#headContext !== undefined) this.#headContext = context;
  }

  /** Resolve waiting readers, oldest first, while there is something for them. */
  #serve(): void {
    const waiters = this.#waiters;
    while (waiters !== undefined && waiters.length > 0) {
      const msg = this.#takeFor(waiters[0]!.limits);
      if (msg === undefined) return;
      const w = waiters.shift()!;
      w.cleanup();
      if (msg instanceof PartialMessage) this.#onPiece?.(msg);
      w.resolve(msg);
    }
  }

  /** What one receive with these limits gets now: a whole message, a piece of one, or undefined. */
  #takeFor(limits: ReceiveLimits): Message | undefined {
    const max = limits.maxLength;
    if (this.queued > 0) {
      const msg = this.#queue![this.#head]!;
      const size = msg.data.byteLength;
      if (this.#headContext === undefined && size <= max) return this.#shift(size);
      const context = (this.#headContext ??= { ...msg.context });
      const from = this.#headOffset;
      const n = Math.min(size - from, max);
      const end = from + n === size;
      this.#headOffset += n;
      if (end) this.#shift(size - from);
      else this.#consumed(n);
      return new PartialMessage(msg.data.subarray(from, from + n), context, end);
    }
    const open = this.#open;
    if (open === undefined || open.bytes === 0 || open.bytes < Math.min(limits.minIncompleteLength, max)) return undefined;
    open.started = true;
    // The first piece held alone when it is enough: a view, no copy.
    const first = open.pieces[0]!.byteLength;
    const data = takeBytes(open, Math.min(first >= limits.minIncompleteLength ? first : open.bytes, max));
    this.#updateFlow();
    return new PartialMessage(data, (open.context ??= open.make()), false);
  }

  /** Remove the head message; `rest` of its bytes were still counted. */
  #shift(rest: number): Message {
    const queue = this.#queue!;
    const msg = queue[this.#head]!;
    queue[this.#head] = undefined as unknown as Message;
    this.#head++;
    this.#headOffset = 0;
    this.#headContext = undefined;
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#consumed(rest);
    return msg;
  }

  #consumed(n: number): void {
    this.#bytes -= n;
    this.#updateFlow();
  }

  /**
   * Pause while more is held than the limits allow and nobody waits; resume below half of them, or as soon as
   * a reader waits (it waits because what is held is not enough for it).
   */
  #updateFlow(): void {
    const held = this.#bytes + (this.#partialReader && this.#open !== undefined ? this.#open.bytes : 0);
    const { highWaterBytes, highWaterMessages } = this.#limits;
    if (this.hasWaiter || (held <= highWaterBytes / 2 && this.queued <= highWaterMessages / 2)) {
      if (this.#paused) {
        this.#paused = false;
        this.#flow.resume();
      }
    } else if (!this.#paused && (held > highWaterBytes || this.queued > highWaterMessages)) {
      this.#paused = true;
      this.#flow.pause();
    }
  }
}

/** The first `n` bytes held of an open message (a view when they lie in its first piece). */
function takeBytes(open: Open, n: number): Uint8Array {
  const first = open.pieces[0]!;
  open.bytes -= n;
  if (first.byteLength === n) return open.pieces.shift()!;
  if (first.byteLength > n) {
    open.pieces[0] = first.subarray(n);
    return first.subarray(0, n);
  }
  const out = Buffer.allocUnsafe(n);
  let filled = 0;
  while (filled < n) {
    const piece = open.pieces[0]!;
    const want = Math.min(n - filled, piece.byteLength);
    out.set(want === piece.byteLength ? piece : piece.subarray(0, want), filled);
    filled += want;
    if (want === piece.byteLength) open.pieces.shift();
    else open.pieces[0] = piece.subarray(want);
  }
  return out;
}

function abortError(signal: AbortSignal): TapsError {
  const reason: unknown = signal.reason;
  const code = abortCode(reason);
  return new TapsError(code, `receive ${code === 'ERR_TAPS_TIMEOUT' ? 'timed out' : 'aborted'}: ${(reason as Error)?.message ?? String(reason)}`, { cause: reason });
}
