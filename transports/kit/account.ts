/**
 * The tenant's quotas at the socket: every socket a driver opens through the
 * kit counts whoever opened it, whether the library's selection or a guest
 * that called a driver directly with a minted target.
 *
 * - A unit: a dial takes a unit of `limit connections`, a bind one of
 *   `limit listeners`, from the scope that minted the target, held until the
 *   socket closes. A socket of the library's own path (a Preconnection's
 *   attempt, a Listener's bind) counts under the unit the library already took
 *   for it (the attempt's grant, see `takeSocketUnit`), so it is not counted
 *   twice.
 * - Received bytes: a socket opened outside the library's path charges every
 *   byte it reads (there is no Connection to count them); on the library's
 *   path the Connection counts what it delivers, and the socket only what the
 *   Connection never sees (TLS records and handshake, ./tls-account.ts).
 *   Received bytes are counted as they arrive, then the socket is destroyed
 *   with the `QuotaExceededError` once the budget is exceeded.
 *
 * Each chunk costs a counter add: the push hook is made once per socket.
 *
 * @example
 * const unit = await dialUnit(attempt.unit, attempt.target);
 * holdUntilClose(socket, unit);
 * if (!unit.granted) meterReads(socket, wireMeterFor(undefined, attempt.target));
 */
import type { Socket } from 'node:net';
import { takeSocketUnit, type SocketUnit, type WireMeter } from '../../src/policy/admission.js';

export { furtherGrant, takeSocketUnit, wireMeterFor, type SocketUnit, type WireMeter } from '../../src/policy/admission.js';

/** The connection unit a dial to `target` counts under (see the module comment); throws QuotaExceededError over the limit. */
export function dialUnit(unit: unknown, target: unknown): SocketUnit | Promise<SocketUnit> {
  return takeSocketUnit(unit, target, 'connection');
}

/** The listener unit a bind of `target` counts under; throws QuotaExceededError over `limit listeners`. */
export function listenUnit(unit: unknown, target: unknown): SocketUnit | Promise<SocketUnit> {
  return takeSocketUnit(unit, target, 'listener');
}

/**
 * Give `unit` back when `source` closes (a socket, a server, a UDP socket). `on`, not `once`: a unit's release
 * is idempotent, and `once` would wrap the listener and remove it again on every close.
 */
export function holdUntilClose(source: { on(event: 'close', listener: () => void): unknown }, unit: SocketUnit): void {
  source.on('close', unit.release);
}

type Push = (chunk: unknown, encoding?: BufferEncoding) => boolean;

/**
 * Charge every chunk `socket` reads to `meter` (as it is pushed to the stream's buffer, before anyone reads
 * it). Over the budget the socket is destroyed with the QuotaExceededError and the chunk is not delivered.
 */
export function meterReads(socket: Socket, meter: WireMeter): void {
  const s = socket as unknown as { push: Push };
  const push = s.push;
  s.push = function meteredPush(this: Socket, chunk: unknown, encoding?: BufferEncoding): boolean {
    if (chunk !== null && chunk !== undefined) {
      try {
        meter.received(typeof chunk === 'string' ? Buffer.byteLength(chunk, encoding) : (chunk as Uint8Array).byteLength);
      } catch (err) {
        this.destroy(err as Error);
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  };
}
