/**
 * Every byte an HTTP session's sockets carry, against the tenant's byte
 * budgets, charged at the socket as it goes (docs/policy.md): each socket
 * undici is handed (the first, a reconnect, a redirect hop's) charges all it
 * reads there — over TLS the TLS account counts every byte its TCP socket
 * reads (../kit/tls-account.ts `countEveryRead`), over TCP the socket counts
 * each chunk — so response heads, HTTP/2 frames and TLS records count with
 * the bodies, once, and the session's channels say `receiveMetered` (the
 * Connection counts none of it again). A received budget exceeded mid-body
 * destroys the socket (HTTP/1.1) or the HTTP/2 session with the
 * `QuotaExceededError`: the transfer stops within one read of the budget.
 *
 * Sent: over HTTP/1.1 the request head and body are charged first as the
 * text undici writes (exact), TLS adds its records. Over HTTP/2 the wire
 * carries frames, HPACK and control frames instead: each socket charges its
 * whole wire, and what the channel charged first is a credit shared by the
 * session's sockets (../kit/tls-account.ts `WireCredit`) that the wire uses
 * up, so a request counts once, as frames or as its text, whichever is more.
 *
 * No allocation per chunk or write: the hooks and the session's meter are
 * made once per socket and once per session.
 *
 * @example
 * const wire = new SessionWire(target, meter, httpVersion === '2');
 * wire.adopt(socket); // each socket handed to undici
 * wire.followHttp2(socket, h2session, (err) => fail(err));
 */
import type net from 'node:net';
import type { Http2Session } from 'node:http2';
import type { TLSSocket } from 'node:tls';
import type { ByteMeter } from '../../src/driver.js';
import { meterReads, wireMeterFor, type WireMeter } from '../kit/account.js';
import { onLibraryPath } from '../kit/dial.js';
import { followHttp2 } from '../kit/h2-account.js';
import { countEveryRead, wholeWire, type WireAccount, type WireCredit } from '../kit/tls-account.js';

/** TCP sockets whose reads are charged already (by connectTcp off the library's path, or by a session here). */
const readsCharged = new WeakSet<net.Socket>();

export class SessionWire {
  /** True when every byte the session's sockets read is charged at the socket (the channels say receiveMetered). */
  readonly receiveMetered: boolean;
  /** What the session's requests are charged to before they are dispatched (over HTTP/2: with the credit). */
  readonly meter: ByteMeter | undefined;
  readonly #wire: WireMeter | undefined;
  readonly #credit: WireCredit = { bytes: 0 };
  /** The HTTP/2 account of the socket undici holds now: settled before each charge made first. */
  #current: WireAccount | undefined;

  constructor(target: unknown, meter: ByteMeter | undefined, http2: boolean) {
    this.#wire = wireMeterFor(meter, target);
    this.receiveMetered = this.#wire !== undefined;
    this.meter = meter === undefined || !http2 || this.#wire === undefined ? meter : this.#creditMeter(meter);
  }

  /** Charge first, and count it as a credit the HTTP/2 wire uses up (see the module comment). */
  #creditMeter(meter: ByteMeter): ByteMeter {
    const credit = this.#credit;
    return Object.freeze({
      sent: (n: number): void => {
        this.#current?.settleSent();
        meter.sent(n);
        credit.bytes += n;
      },
    });
  }

  /** From now on `socket` (TLS, or TCP) charges every byte it reads (idempotent: a socket handed on is adopted once). */
  adopt(socket: net.Socket): void {
    const wire = this.#wire;
    if (wire === undefined) return;
    if (typeof (socket as TLSSocket).encrypted === 'boolean' && (socket as TLSSocket).encrypted) {
      countEveryRead(socket as TLSSocket);
      return;
    }
    if (readsCharged.has(socket)) return;
    readsCharged.add(socket);
    // A socket outside the library's path charges every read already (../kit/dial.ts).
    if (onLibraryPath(socket)) meterReads(socket, wire);
  }

  /**
   * `socket` now carries the HTTP/2 session `session`: charge its whole wire on the session's events
   * (../kit/h2-account.ts); a received budget exceeded goes to `exceeded`, then the session is destroyed.
   */
  followHttp2(socket: net.Socket, session: Http2Session, exceeded: (err: Error) => void): void {
    const account = this.#wire === undefined ? undefined : wholeWire(socket as TLSSocket, this.#credit);
    if (account === undefined) return;
    this.#current = account;
    session.once('close', () => {
      if (this.#current === account) this.#current = undefined;
    });
    followHttp2(session, account, exceeded);
  }
}
