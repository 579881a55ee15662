/**
 * Received messages waiting for `receive()` / `for await`, with receive
 * backpressure (RFC 9622 §9.3.1: the application pulls, the transport waits).
 *
 * When more than `highWaterBytes` or `highWaterMessages` are queued the
 * channel is paused, so a peer that sends faster than the application reads
 * fills the kernel's buffers and then its own — never this process's memory.
 * Reading below half of both resumes it.
 */
import { TapsError, abortCode } from '../errors.js';
import { Message } from '../message.js';

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

type Waiter = { resolve: (m: Message | undefined) => void; reject: (e: Error) => void; cleanup: () => void };

export class Inbox {
  // Both made on first use: most connections deliver through the `received` event and never queue.
  #queue: Message[] | undefined;
  #head = 0;
  #bytes = 0;
  #waiters: Waiter[] | undefined;
  #ended = false;
  #error: Error | undefined;
  #paused = false;
  readonly #limits: InboxLimits;
  readonly #flow: FlowControl;

  /** `flow` is what to pause and resume: the connection's channel. */
  constructor(limits: InboxLimits, flow: FlowControl) {
    this.#limits = limits;
    this.#flow = flow;
  }

  get queued(): number {
    return this.#queue === undefined ? 0 : this.#queue.length - this.#head;
  }

  get hasWaiter(): boolean {
    return this.#waiters !== undefined && this.#waiters.length > 0;
  }

  /** Hand a message to a waiting reader, or queue it. */
  put(msg: Message): void {
    const w = this.#waiters?.shift();
    if (w !== undefined) {
      w.cleanup();
      w.resolve(msg);
      return;
    }
    (this.#queue ??= []).push(msg);
    this.#bytes += msg.data.byteLength;
    if (!this.#paused && (this.#bytes > this.#limits.highWaterBytes || this.queued > this.#limits.highWaterMessages)) {
      this.#paused = true;
      this.#flow.pause();
    }
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
      else w.resolve(undefined);
    }
  }

  /** The next message; undefined when the peer has finished; rejects with the connection's error. */
  next(signal?: AbortSignal): Promise<Message | undefined> {
    if (this.queued > 0) return Promise.resolve(this.#take());
    if (this.#ended) return this.#error ? Promise.reject(this.#error) : Promise.resolve(undefined);
    if (signal?.aborted) return Promise.reject(abortError(signal));
    return new Promise((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiters?.indexOf(w) ?? -1;
        if (i >= 0) this.#waiters!.splice(i, 1);
        reject(abortError(signal!));
      };
      const w: Waiter = { resolve, reject, cleanup: () => signal?.removeEventListener('abort', onAbort) };
      signal?.addEventListener('abort', onAbort, { once: true });
      (this.#waiters ??= []).push(w);
    });
  }

  /** The oldest queued message, taken now (undefined when none). */
  take(): Message | undefined {
    return this.queued > 0 ? this.#take() : undefined;
  }

  /** The peer sent nothing after the last queued message: mark it final (RFC 9622 §9.3.2.4). */
  markFinal(): void {
    if (this.queued === 0) return;
    const queue = this.#queue!;
    const last = queue[queue.length - 1]!;
    if (!last.context.final) queue[queue.length - 1] = new Message(last.data, { ...last.context, final: true });
  }

  /** Only while `queued > 0`. */
  #take(): Message {
    const queue = this.#queue!;
    const msg = queue[this.#head]!;
    queue[this.#head] = undefined as unknown as Message;
    this.#head++;
    if (this.#head > 1024 && this.#head * 2 > queue.length) {
      queue.splice(0, this.#head);
      this.#head = 0;
    }
    this.#bytes -= msg.data.byteLength;
    if (this.#paused && this.#bytes <= this.#limits.highWaterBytes / 2 && this.queued <= this.#limits.highWaterMessages / 2) {
      this.#paused = false;
      this.#flow.resume();
    }
    return msg;
  }
}

function abortError(signal: AbortSignal): TapsError {
  const reason: unknown = signal.reason;
  const code = abortCode(reason);
  return new TapsError(code, `receive ${code === 'ERR_TAPS_TIMEOUT' ? 'timed out' : 'aborted'}: ${(reason as Error)?.message ?? String(reason)}`, { cause: reason });
}
