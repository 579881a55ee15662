/**
 * Closing the HTTP/2 connection under WebTransport sessions, shared by the
 * client (one connection per session) and the listener (when the last
 * session of a connection ends).
 *
 * @example
 * await closeHttp2(h2session, connectStream, 2000, [tlsSocket, tcpSocket]);
 */
import type { Http2Session, Http2Stream } from 'node:http2';
import type { Socket } from 'node:net';

/** How long a closed HTTP/2 connection may take to flush its last frames and FIN before its sockets are destroyed. */
export const FLUSH_GRACE_MS = 100;

/**
 * The bound of an aborted session's close: its HTTP/2 connection gets the flush grace, not `closeTimeout`.
 * When both ends abort at once, neither CONNECT stream ever reports its close, so a bound of `closeTimeout`
 * kept the sockets and a timer (and the process) for all of it.
 */
export function abortGrace(closeTimeout: number): number {
  return Math.min(FLUSH_GRACE_MS, closeTimeout);
}

/**
 * Close an HTTP/2 connection whose WebTransport sessions all ended: GOAWAY,
 * then, once the CONNECT stream is gone, end the session and release the
 * sockets as soon as our last bytes and FIN are flushed, or after
 * {@link FLUSH_GRACE_MS} (within `closeTimeout` in any case). Waiting for the
 * socket's own close is not enough on Node 20: a closed session whose last
 * stream ended with frames still queued is never destroyed, and when both
 * ends close at once the session's handle may never report its write done
 * (nor the peer's FIN). Nothing of the WebTransport session is lost by then:
 * its CONNECT stream has ended both ways. `sockets`: the TLS socket, then
 * the TCP socket under it.
 */
export function closeHttp2(h2: Http2Session, connectStream: Http2Stream, closeTimeout: number, sockets: readonly Socket[]): Promise<void> {
  return new Promise<void>((resolve) => {
    let done = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    let grace: ReturnType<typeof setTimeout> | undefined;
    const end = (): void => {
      if (done) return;
      done = true;
      if (timer !== undefined) clearTimeout(timer);
      if (grace !== undefined) clearTimeout(grace);
      if (!h2.destroyed) h2.destroy();
      for (const s of sockets) s.destroy();
      resolve();
    };
    if (Number.isFinite(closeTimeout)) timer = setTimeout(end, closeTimeout);
    h2.once('close', end);
    if (!h2.closed && !h2.destroyed) h2.close();
    const linger = (): void => {
      setImmediate(() => {
        if (!h2.destroyed) h2.destroy();
        const tls = sockets[0];
        if (tls === undefined || tls.destroyed || tls.writableFinished) return end();
        tls.once('finish', end);
        tls.once('close', end);
        if (!done) grace = setTimeout(end, Math.min(FLUSH_GRACE_MS, closeTimeout));
      });
    };
    if (connectStream.closed || connectStream.destroyed) linger();
    else connectStream.once('close', linger);
  });
}
