/**
 * The closing and draining periods of a QUIC connection (RFC 9000 §10.2),
 * and ending them early where that section allows it.
 *
 * After a connection sends CONNECTION_CLOSE (closing) or receives one
 * (draining), `@matrixai/quic` keeps it for quiche's closing timer, three
 * times the PTO (§10.2: "SHOULD persist for at least three times the
 * current PTO interval"), and `QUICConnection.stop()`, `QUICClient.destroy()`
 * and `QUICServer.stop()` all wait for that timer. On a path with delay or
 * loss that is seconds, during which the timer and the UDP socket keep the
 * process alive after the application closed everything.
 *
 * §10.2 also says: "Endpoints that have some alternative means to ensure
 * that late-arriving packets do not induce a response, such as those that
 * are able to close the UDP socket, MAY end these states earlier", and
 * "Servers that retain an open socket for accepting new connections SHOULD
 * NOT end the closing or draining state early". So the drivers end it:
 * - on a client, whose own UDP socket closes right after, as soon as its
 *   CONNECTION_CLOSE has been handed to the socket (./client.ts);
 * - on a listener, only once its owner stopped it (./server.ts): it accepts
 *   nothing more, its socket closes with its last connection, and the
 *   package answers no packet of a connection it does not know (it sends no
 *   stateless reset), so a late packet induces no response.
 *
 * The package has no call for this: the connection's closing timer
 * (`connTimeoutTimer`) is cancelled and its `closedP` resolved, both
 * package-internal (@matrixai/quic ~2.0.9), which is what the timer itself
 * does when quiche reports the connection closed. Without those internals
 * the full period is kept.
 *
 * @example
 * const stopped = connection.stop({ isApp: true, errorCode: 0, force: true });
 * await endClosingPeriod(engine, connection); // its CONNECTION_CLOSE left; stop() resolves now
 * await stopped;
 */
import type { QUICConnection } from '@matrixai/quic';
import type { QuicEngine } from './engine.js';

/** The package internals this module reaches (@matrixai/quic ~2.0.9). */
interface ClosingInternals {
  readonly conn: { isDraining(): boolean; isClosed(): boolean };
  readonly connTimeoutTimer?: { cancel(reason?: unknown): void };
  readonly resolveClosedP: () => void;
}

function internalsOf(connection: QUICConnection): ClosingInternals | undefined {
  const c = connection as unknown as Partial<ClosingInternals>;
  const ok = typeof c.conn?.isDraining === 'function' && typeof c.conn.isClosed === 'function' && typeof c.resolveClosedP === 'function';
  return ok ? (c as ClosingInternals) : undefined;
}

/**
 * Resolves once `connection` is closing with its CONNECTION_CLOSE handed to
 * the socket, draining (the peer's arrived), or gone; never rejects. Closing
 * starts with `stop()`, which sends the frame synchronously from its close
 * event; one turn of the event loop more lets the socket's send run (a
 * listener's socket looks the address up on the next tick).
 */
export function closeSent(engine: QuicEngine, connection: QUICConnection): Promise<void> {
  const c = internalsOf(connection);
  const name = engine.api.events.EventQUICConnectionClose.name;
  return new Promise<void>((resolve) => {
    let done = false;
    const finish = (): void => {
      if (done) return;
      done = true;
      connection.removeEventListener(name, finish);
      setImmediate(resolve);
    };
    if (c !== undefined && (c.conn.isDraining() || c.conn.isClosed())) return finish();
    if (c !== undefined) connection.addEventListener(name, finish);
    connection.closedP.then(finish, finish);
  });
}

/**
 * End `connection`'s closing or draining period once its CONNECTION_CLOSE
 * left (RFC 9000 §10.2, see the module comment): its pending `stop()`
 * resolves, and no timer of it is left. Only for a connection being
 * stopped, by an endpoint that sends nothing more for it.
 */
export async function endClosingPeriod(engine: QuicEngine, connection: QUICConnection): Promise<void> {
  await closeSent(engine, connection);
  const c = internalsOf(connection);
  if (c === undefined || !(c.conn.isDraining() || c.conn.isClosed())) return;
  c.connTimeoutTimer?.cancel();
  c.resolveClosedP();
}
