/**
 * Binding an HTTP-family server (WebSocket, WebTransport over HTTP/2) at a listen attempt's checked local
 * target, with the quotas every bind owes: a unit of `limit listeners` held until the server closes, and,
 * when the driver was called outside the library's path, a unit of `limit connections` per accepted peer
 * (over the limit the peer is dropped at once). Plain TCP and TLS listeners use `bindServer` in
 * ./socket-listener.ts, which also wraps each peer in a channel; these servers hand peers to their own
 * protocol code instead.
 */
import type net from 'node:net';
import type { ListenAttempt, SocketAddress } from '../../src/driver.js';
import { toTapsError } from '../../src/errors.js';
import { abortedError, whenAborted } from './abort.js';
import { holdUntilClose, listenUnit, type SocketUnit } from './account.js';
import { targetAddress } from './dial.js';
import { peerUnits } from './socket-listener.js';

/**
 * Listen on `server` at the attempt's target; resolves with the bound address. After that, a server error
 * goes to `onFail`. `what` names the listen in errors ("websocket listen").
 */
export function listenHttpServer(server: net.Server, attempt: ListenAttempt, what: string, onFail: (err: Error) => void): Promise<SocketAddress> {
  const { address, port, family } = targetAddress(attempt.target, what, 'tcp listen');
  const taken = listenUnit(attempt.unit, attempt.target);
  if (taken instanceof Promise) return taken.then((unit) => listenWith(server, attempt, what, onFail, address, port, family, unit));
  return listenWith(server, attempt, what, onFail, address, port, family, taken);
}

function listenWith(
  server: net.Server, attempt: ListenAttempt, what: string, onFail: (err: Error) => void,
  address: string, port: number, family: 4 | 6, unit: SocketUnit,
): Promise<SocketAddress> {
  const { signal } = attempt;
  holdUntilClose(server, unit);
  if (!unit.granted) admitPeersByUnit(server, attempt.target);
  return new Promise<SocketAddress>((resolve, reject) => {
    let stopListening = (): void => {};
    const onAbort = (): void => {
      unit.release();
      server.off('error', onError);
      server.close();
      reject(abortedError(signal, what));
    };
    const onError = (err: Error): void => {
      stopListening();
      unit.release();
      reject(toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED'));
    };
    server.once('error', onError);
    stopListening = whenAborted(signal, onAbort);
    server.listen({ host: address, port, ipv6Only: family === 6 }, () => {
      stopListening();
      server.off('error', onError);
      server.on('error', onFail);
      const a = server.address() as net.AddressInfo;
      resolve(Object.freeze({ address: a.address, port: a.port, family: a.family === 'IPv6' ? 6 : 4 }));
    });
  });
}

/** Opened outside the library's path: each accepted peer takes a unit of `limit connections` (its Listener would). */
function admitPeersByUnit(server: net.Server, target: unknown): void {
  const admit = peerUnits(target, false);
  server.prependListener('connection', (socket: net.Socket) => {
    if (!admit(socket)) {
      socket.on('error', () => {});
      socket.destroy();
    }
  });
}
