/**
 * TLS on the wire against the tenant's byte budgets: the handshake, record
 * headers and tags, alerts and tickets, which no channel sees. The cleartext a
 * channel writes is charged before it is written (./meter.ts, the channels);
 * what TLS adds is learned afterwards from the TCP socket's own counters
 * (bytes written and read by the handle of the socket under the TLS one: Node's TLS
 * reads and writes that socket's handle directly, so nothing passes through
 * its JavaScript stream to be hooked) and charged as it is learned: when the
 * handshake ends (a handshake that spent the sent budget is refused with the
 * `QuotaExceededError`), after each write, on each read and at close. What
 * was sent is counted, never refused (it is gone): a budget it exceeded
 * refuses the next send.
 *
 * Received: a socket outside the library's path (./account.ts) charges every
 * byte it read; on the path the Connection counts the cleartext it delivers,
 * so the socket charges only the rest. Sent: the channel charged the
 * cleartext, the socket charges the rest. Before the ClientHello the sent
 * budget must not be spent already (`check`): what cannot be charged first is
 * not sent once nothing is left.
 *
 * Each charge is a subtraction of counters (no allocation per chunk or write).
 *
 * @example
 * checkBeforeHandshake(target);
 * const account = tlsAccount(tlsSocket, raw, target); // before the handshake
 * account.settle(); // at secureConnect; then checkBeforeHandshake(target) again
 */
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { wireMeterFor, type WireMeter } from './account.js';
import { onLibraryPath } from './dial.js';

/** Refuse to start a handshake when the sent budget of the scope that minted `target` is spent already. */
export function checkBeforeHandshake(target: unknown): void {
  wireMeterFor(undefined, target)?.check();
}

/** What TLS put on the wire and has not been charged yet, charged by `settle()` (see the module comment). */
export interface TlsAccount {
  /** Charge what the counters show now; throws QuotaExceededError when a budget is exceeded. */
  settle(): void;
  /** Charge what was sent beyond the cleartext (counted, never refused). */
  settleSent(): void;
}

const NOTHING: TlsAccount = Object.freeze({ settle: () => {}, settleSent: () => {} });

/**
 * Start charging TLS overhead of `socket` (over `raw`) to the budget of the scope that minted `target`;
 * from now on every read and write of `socket` settles, and a received budget exceeded destroys it.
 * `cleartextCounted`: a Connection counts the cleartext this socket delivers (the library's path: a dial
 * under its grant, a peer of the library's Listener), so only the rest is charged here.
 */
export function tlsAccount(socket: TLSSocket, raw: Socket, target: unknown, cleartextCounted = onLibraryPath(raw)): TlsAccount {
  const meter = wireMeterFor(undefined, target);
  if (meter === undefined) return NOTHING;
  const account = new Account(socket, raw, meter, cleartextCounted);
  accounts.set(socket, account);
  hook(socket, account);
  // The client's last flight (ChangeCipherSpec, Finished) reaches the TCP handle just after secureConnect.
  socket.once('secureConnect', () => setImmediate(() => account.settleSent()));
  return account;
}

const accounts = new WeakMap<TLSSocket, Account>();

/**
 * From now on charge every byte the TCP socket under `socket` reads, cleartext included (a protocol over it
 * reads more than its Connection counts: a WebSocket's frame headers). False when `socket` has no account.
 * Counting it all at one counter keeps each byte once: a record read but not yet decrypted would otherwise
 * count as overhead here and again as cleartext.
 */
export function countEveryRead(socket: TLSSocket): boolean {
  const account = accounts.get(socket);
  if (account === undefined) return false;
  account.countEveryRead();
  return true;
}

class Account implements TlsAccount {
  readonly #socket: TLSSocket;
  readonly #raw: Socket;
  readonly #meter: WireMeter;
  /** On the library's path a Connection counts the cleartext read: only the rest is charged here. */
  #cleartextCounted: boolean;
  #sent = 0;
  #received = 0;

  constructor(socket: TLSSocket, raw: Socket, meter: WireMeter, cleartextCounted: boolean) {
    this.#socket = socket;
    this.#raw = raw;
    this.#meter = meter;
    this.#cleartextCounted = cleartextCounted;
  }

  countEveryRead(): void {
    this.#cleartextCounted = false;
  }

  settle(): void {
    this.settleSent();
    const raw = this.#raw as unknown as Counted;
    const read = this.#cleartextCounted ? raw.bytesRead - (this.#socket as unknown as Counted).bytesRead : raw.bytesRead;
    const received = read - this.#received;
    if (received > 0) {
      this.#received += received;
      this.#meter.received(received);
    }
  }

  /** Charge what TLS wrote beyond the cleartext (counted, never refused). */
  settleSent(): void {
    // The handles' counters (`bytesWritten` would also walk the stream's write buffer): the cleartext written
    // was charged by whoever wrote it, TLS wrote the rest.
    const sent = (this.#raw as unknown as Counted)._bytesDispatched - (this.#socket as unknown as Counted)._bytesDispatched - this.#sent;
    if (sent > 0) {
      this.#sent += sent;
      this.#meter.sentAfter(sent);
    }
  }
}

/** A socket's byte counters: its handle's (what crossed it), kept by Node after the handle is gone. */
interface Counted {
  readonly _bytesDispatched: number;
  readonly bytesRead: number;
}

type WriteCallback = (err?: Error | null) => void;
interface Hookable {
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
  _write(chunk: unknown, encoding: BufferEncoding, cb: WriteCallback): void;
  _writev?(chunks: unknown[], cb: WriteCallback): void;
}

/** Settle before each cleartext chunk is delivered and after each write; once more when the socket closes. */
function hook(socket: TLSSocket, account: Account): void {
  const s = socket as unknown as Hookable;
  const push = s.push;
  const write = s._write;
  const writev = s._writev;
  s.push = function settledPush(this: TLSSocket, chunk: unknown, encoding?: BufferEncoding): boolean {
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
  // TLS encrypts and hands the record to the TCP handle within the write: its header and tag are charged at once.
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
  // The last records (close_notify, a late ticket): counted, nothing left to refuse.
  socket.once('close', () => {
    try {
      account.settle();
    } catch {
      /* counted; the socket is gone */
    }
  });
}
