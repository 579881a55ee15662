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
 * byte it read; so does one whose channel says `receiveMetered`
 * (`countEveryRead`: the tls and wss channels), and the Connection does not
 * count its cleartext again. Otherwise the Connection counts the cleartext
 * it delivers and the socket only the rest, the TCP socket's count less the
 * TLS socket's (mid-session that difference also holds records read but not
 * decrypted yet, and a charge is never taken back: every stack of the
 * library's path counts every read). Sent: the channel charged the
 * cleartext, the socket charges the rest. Before the ClientHello the sent
 * budget must not be spent already (`check`): what cannot be charged first is
 * not sent once nothing is left.
 *
 * Whole-wire mode (`wholeWire`, for HTTP/2, ./h2-account.ts): the protocol
 * over TLS writes frames of its own nobody charges first, so the socket
 * charges everything its TCP socket carried beyond what this connection's
 * code charged before writing (`counting`, `prepay`), and everything it read
 * (its channels say `receiveMetered`). A charge made first that the wire
 * never carried in full (an HTTP/1.1 head counted for a shorter HPACK one)
 * is a credit the next bytes on the wire use up: the count is the wire, or
 * what was charged first when that is more. Several sockets of one
 * connection (an HTTP client's reconnects) may share one credit
 * (`WireCredit`): a request charged before it is known which socket carries
 * it is taken off whichever wire carries bytes next.
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
import type { ByteMeter } from '../../src/driver.js';
import { wireMeterFor, type WireMeter } from './account.js';
import { onLibraryPath } from './dial.js';
import { settleOnTraffic } from './socket-account.js';

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

/** A socket that charges its whole wire (see the module comment). */
export interface WireAccount extends TlsAccount {
  /** `n` bytes this connection charged before this account became whole-wire: they count as on this wire. */
  prepay(n: number): void;
  /** `meter` for this connection's own charges: settles first (the budget sees the wire so far), then charges. */
  counting(meter: ByteMeter | undefined): ByteMeter;
}

/** Bytes charged first, before the wire carried them, shared by the sockets of one connection (see the module comment). */
export interface WireCredit {
  /** Bytes charged first and not yet matched by bytes on a wire. */
  bytes: number;
}

const NOTHING: TlsAccount = Object.freeze({ settle: () => {}, settleSent: () => {} });

/** The account of each accounted TLS socket (kept with the socket, gone with it). */
const accounts = new WeakMap<TLSSocket, Account>();

/**
 * The account of `socket` (made by {@link tlsAccount}), switched to charge its whole wire from now on;
 * undefined when the socket has none (no budgets). With `credit`, what was charged first is taken from it
 * (shared with the connection's other sockets) instead of from the account's own `prepay`.
 */
export function wholeWire(socket: TLSSocket, credit?: WireCredit): WireAccount | undefined {
  const account = accounts.get(socket);
  account?.wholeWire(credit);
  return account;
}

/**
 * From now on charge every byte the TCP socket under `socket` reads, cleartext included (what was read and not
 * charged yet too): its channel says `receiveMetered` and the Connection counts none of it. False when `socket`
 * has no account. Counting it all at one counter keeps each byte once: a record read but not yet decrypted
 * would otherwise count as overhead here and again as cleartext.
 */
export function countEveryRead(socket: TLSSocket): boolean {
  const account = accounts.get(socket);
  account?.countEveryRead();
  return account !== undefined;
}

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
  // Each read settles, each write, and the close of both sockets (close_notify, a late ticket,
  // HTTP/2's GOAWAY go out after the TLS socket's close).
  settleOnTraffic(socket, account, true, raw);
  // The client's last flight (ChangeCipherSpec, Finished) reaches the TCP handle just after secureConnect.
  socket.once('secureConnect', () => setImmediate(() => account.settleSent()));
  return account;
}

class Account implements WireAccount {
  readonly #socket: TLSSocket;
  readonly #raw: Socket;
  readonly #meter: WireMeter;
  /** On the library's path a Connection counts the cleartext read: only the rest is charged here. */
  #cleartextCounted: boolean;
  /** Whole-wire mode: what the TCP socket wrote, less what was charged first (`#prepaid`), is charged here. */
  #whole = false;
  #prepaid = 0;
  /** A credit shared with other sockets (whole-wire mode), and the wire bytes already matched against it or charged. */
  #credit: WireCredit | undefined;
  #seen = 0;
  #sent = 0;
  #received = 0;

  constructor(socket: TLSSocket, raw: Socket, meter: WireMeter, cleartextCounted: boolean) {
    this.#socket = socket;
    this.#raw = raw;
    this.#meter = meter;
    this.#cleartextCounted = cleartextCounted;
  }

  /** From now on charge the whole wire (what was charged so far stays: the cleartext before was nobody's). */
  wholeWire(credit?: WireCredit): void {
    if (credit !== undefined) {
      this.settleSent();
      this.#seen = this.#sent;
      this.#credit = credit;
    }
    this.#whole = true;
    this.#cleartextCounted = false;
  }

  countEveryRead(): void {
    this.#cleartextCounted = false;
  }

  prepay(n: number): void {
    if (this.#credit !== undefined) this.#credit.bytes += n;
    else this.#prepaid += n;
  }

  counting(meter: ByteMeter | undefined): ByteMeter {
    return {
      sent: (n: number): void => {
        this.settleSent();
        if (meter === undefined) this.#meter.sent(n);
        else meter.sent(n);
        this.prepay(n);
      },
    };
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
    const wire = (this.#raw as unknown as Counted)._bytesDispatched;
    if (this.#credit !== undefined) return this.#settleShared(wire, this.#credit);
    const sent = wire - (this.#whole ? this.#prepaid : (this.#socket as unknown as Counted)._bytesDispatched) - this.#sent;
    if (sent > 0) {
      this.#sent += sent;
      this.#meter.sentAfter(sent);
    }
  }

  /** Whole-wire with a shared credit: the wire bytes new since the last settle, less what the credit covers. */
  #settleShared(wire: number, credit: WireCredit): void {
    const fresh = wire - this.#seen;
    if (fresh <= 0) return;
    this.#seen = wire;
    const covered = fresh < credit.bytes ? fresh : credit.bytes;
    credit.bytes -= covered;
    if (fresh > covered) {
      this.#sent += fresh - covered;
      this.#meter.sentAfter(fresh - covered);
    }
  }
}

/** A socket's byte counters: its handle's (what crossed it), kept by Node after the handle is gone. */
interface Counted {
  readonly _bytesDispatched: number;
  readonly bytesRead: number;
}
