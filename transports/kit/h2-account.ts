/**
 * TLS under HTTP/2 against the tenant's byte budgets. Node's HTTP/2 session
 * reads and writes the TLS socket's handle below JavaScript, so the hooks on
 * that socket (./tls-account.ts) never run once a session holds it; the
 * TCP socket's counters are still right, so the account is settled on the
 * session's own events instead:
 *
 * - each chunk a stream reads (DATA), before it is delivered: a received
 *   budget exceeded destroys the session with the `QuotaExceededError`
 *   and the chunk is not delivered;
 * - each stream write once HTTP/2 handed it to TLS (its completion);
 * - SETTINGS, PING, GOAWAY, a new stream, a frame error;
 * - every {@link SETTLE_INTERVAL_MS} while the session lives, for the
 *   frames HTTP/2 reads and answers with no event (WINDOW_UPDATE, a PING's
 *   or SETTINGS' acknowledgement, frames of unknown type);
 * - when the session and its socket close: the last asynchronous write is
 *   charged then, so what is charged at close is what the TCP socket carried.
 *
 * A stream's hooks are made once per stream (no allocation per chunk or write).
 *
 * @example
 * const account = wholeWire(tlsSocket);
 * if (account !== undefined) followHttp2(session, account);
 */
import type { ClientHttp2Session, Http2Session, Http2Stream } from 'node:http2';
import type { TlsAccount } from './tls-account.js';

/** How often a session's counters are read when none of its events did it (ms). */
export const SETTLE_INTERVAL_MS = 200;

type WriteCallback = (err?: Error | null) => void;
interface HookableStream {
  push(chunk: unknown, encoding?: BufferEncoding): boolean;
  _write(chunk: unknown, encoding: BufferEncoding, cb: WriteCallback): void;
  _writev?(chunks: unknown[], cb: WriteCallback): void;
  destroy(err?: Error): unknown;
}

/**
 * Settle `account` on the events of `session` (see the module comment) until it closes. A received budget
 * exceeded goes to `exceeded` (the session's channels fail with it), then the session is destroyed with it.
 */
export function followHttp2(session: Http2Session, account: TlsAccount, exceeded: (err: Error) => void = () => {}): void {
  const over = (err: Error): void => {
    if (session.destroyed) return;
    exceeded(err);
    session.destroy(err);
  };
  const settle = (): void => {
    try {
      account.settle();
    } catch (err) {
      over(err as Error);
    }
  };
  const timer = setInterval(settle, SETTLE_INTERVAL_MS);
  timer.unref();
  for (const event of ['remoteSettings', 'localSettings', 'ping', 'goaway', 'frameError'] as const) session.on(event, settle);
  session.on('stream', (stream: Http2Stream) => {
    settle();
    followStream(stream, account, over);
  });
  const client = session as ClientHttp2Session;
  if (typeof client.request === 'function' && session.type === 1) {
    const request = client.request;
    client.request = function followedRequest(this: ClientHttp2Session, ...args: Parameters<ClientHttp2Session['request']>) {
      const stream = request.apply(this, args);
      followStream(stream, account, over);
      return stream;
    } as ClientHttp2Session['request'];
  }
  session.once('close', () => {
    clearInterval(timer);
    try {
      account.settle();
    } catch {
      /* counted; the session is gone */
    }
  });
}

/** Settle before each chunk `stream` delivers and after each of its writes completes. */
function followStream(stream: Http2Stream, account: TlsAccount, over: (err: Error) => void): void {
  const s = stream as unknown as HookableStream;
  const push = s.push;
  s.push = function settledPush(this: HookableStream, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) {
      try {
        account.settle();
      } catch (err) {
        over(err as Error);
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
  // A Writable has one write outstanding at a time, always with the same callback: one wrapper per stream.
  let inner: WriteCallback | undefined;
  let after: WriteCallback = () => {};
  const settled = (cb: WriteCallback): WriteCallback => {
    if (cb !== inner) {
      inner = cb;
      after = (err) => {
        account.settleSent();
        cb(err);
      };
    }
    return after;
  };
  const write = s._write;
  s._write = function settledWrite(this: HookableStream, chunk, encoding, cb) {
    write.call(this, chunk, encoding, settled(cb));
  };
  const writev = s._writev;
  if (writev !== undefined) {
    s._writev = function settledWritev(this: HookableStream, chunks, cb) {
      writev.call(this, chunks, settled(cb));
    };
  }
}
