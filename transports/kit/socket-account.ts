/**
 * Everything a socket carries against the tenant's byte budgets, for a socket
 * a protocol library reads and writes partly by itself: the HTTP server that
 * parses a WebSocket upgrade request straight from the socket's handle (no
 * JavaScript stream sees those bytes), ws answering a ping with a pong or a
 * close frame with its own. What the library's code writes is charged before
 * it is written through `meter` (refused whole when over, as ./meter.ts says);
 * the rest is learned from the socket's own counters (bytes its handle wrote
 * and read) and charged as it is learned: after each write, before each chunk
 * read is delivered, when `settle()` is called (an upgrade request, before it
 * is answered) and at close. What was sent is counted, never refused (it is
 * gone); a received budget exceeded destroys the socket with the
 * `QuotaExceededError`.
 *
 * Over TLS the socket is the TLS one: its counters are the cleartext, and
 * ./tls-account.ts counts what TLS adds (and every byte read at the TCP
 * socket, so `reads` is false there).
 *
 * Each charge is a subtraction of counters (no allocation per chunk or write).
 *
 * @example
 * const account = socketAccount(socket, wireMeter, true); // on accept
 * const unmeter = meterWrites(socket, account.meter);     // the 101, refused when over
 * account.settle();                                       // the upgrade request
 */
import type { Socket } from 'node:net';
import type { ByteMeter } from '../../src/driver.js';
import type { WireMeter } from './account.js';

/** What `socket` carried beyond what was charged through `meter`, charged by `settle()`. */
export interface SocketAccount {
  /** Charge through this what is about to be written (it counts as carried, not again at the counters). */
  readonly meter: ByteMeter;
  /** Charge what the counters show now; throws QuotaExceededError when the received budget is exceeded. */
  settle(): void;
}

/** A socket's byte counters: its handle's (what crossed it), kept by Node after the handle is gone. */
interface Counted {
  readonly _bytesDispatched: number;
  readonly bytesRead: number;
}

class Account implements SocketAccount {
  readonly meter: ByteMeter;
  readonly #socket: Counted;
  readonly #wire: WireMeter;
  readonly #reads: boolean;
  #sent = 0;
  #received = 0;

  constructor(socket: Socket, wire: WireMeter, reads: boolean) {
    this.#socket = socket as unknown as Counted;
    this.#wire = wire;
    this.#reads = reads;
    this.meter = Object.freeze({
      sent: (bytes: number): void => {
        wire.sent(bytes);
        this.#sent += bytes;
      },
    });
  }

  settle(): void {
    this.settleSent();
    if (!this.#reads) return;
    const received = this.#socket.bytesRead - this.#received;
    if (received > 0) {
      this.#received += received;
      this.#wire.received(received);
    }
  }

  /**
   * Charge what the socket wrote beyond what was charged first. A frame charged and not written yet (corked)
   * makes the difference negative for a moment: nothing is charged until the counter passes it.
   */
  settleSent(): void {
    const sent = this.#socket._bytesDispatched - this.#sent;
    if (sent > 0) {
      this.#sent += sent;
      this.#wire.sentAfter(sent);
    }
  }
}

type WriteCallback = (err?: Error | null) => void;
interface Hookable {
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
  _write(chunk: unknown, encoding: BufferEncoding, cb: WriteCallback): void;
  _writev?(chunks: unknown[], cb: WriteCallback): void;
}

/** What settles a socket's counters: everything (may throw over the received budget), and what was sent. */
export interface Settling {
  settle(): void;
  settleSent(): void;
}

/**
 * Settle `account` as `socket` carries bytes: on each chunk read, before it is delivered (`reads`; over the
 * budget the socket is destroyed with the error and the chunk is not delivered), after each write (the
 * handle counts a chunk as it takes it, within the write; under TLS the record reaches the TCP handle
 * within it too), and once more when `socket` — and `under`, the TCP socket under a TLS one, which closes
 * last — closes (counted; nothing left to refuse).
 */
export function settleOnTraffic(socket: Socket, account: Settling, reads: boolean, under?: Socket): void {
  const s = socket as unknown as Hookable;
  const push = s.push;
  const write = s._write;
  const writev = s._writev;
  if (reads) {
    s.push = function settledPush(this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
      if (chunk !== null && chunk !== undefined) {
        try {
          account.settle();
        } catch (err) {
          this.destroy(err as Error);
          return false;
        }
      }
      return push.call(this, chunk, encoding);
    };
  }
  s._write = function settledWrite(this: Hookable, chunk, encoding, cb) {
    write.call(this, chunk, encoding, cb);
    account.settleSent();
  };
  if (writev !== undefined) {
    s._writev = function settledWritev(this: Hookable, chunks, cb) {
      writev.call(this, chunks, cb);
      account.settleSent();
    };
  }
  const last = (): void => {
    try {
      account.settle();
    } catch {
      /* counted; the socket is gone */
    }
  };
  socket.once('close', last);
  under?.once('close', last);
}

/**
 * Count everything `socket` carries from now on against `wire` (see the module comment); `reads`: charge what
 * it reads too. Hook it before anything else wraps the socket's writes (./meter.ts `meterWrites`).
 */
export function socketAccount(socket: Socket, wire: WireMeter, reads: boolean): SocketAccount {
  const account = new Account(socket, wire, reads);
  settleOnTraffic(socket, account, reads);
  return account;
}
