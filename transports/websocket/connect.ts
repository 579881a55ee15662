/**
 * Client establishment for `ws:` and `wss:` (RFC 6455 §4.1): open our own
 * TCP/TLS socket to the checked target, then hand exactly that socket to ws
 * through `createConnection`, so ws never resolves or dials anything. The
 * opening handshake is part of establishment: the channel exists only after
 * the 101 upgrade. A server that never answers keeps the attempt pending
 * until the signal aborts (or `handshakeTimeout` passes); every path out
 * destroys the socket it opened.
 *
 * @example
 * const channel = await connectWebSocket(attempt, { secure: true });
 */
import type net from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { WebSocket } from 'ws';
import type { ConnectAttempt, TransportChannel } from '../../src/driver.js';
import { TapsError, toTapsError } from '../../src/errors.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { wireMeterFor } from '../kit/account.js';
import { onLibraryPath } from '../kit/dial.js';
import { meterWrites } from '../kit/meter.js';
import { authority, openSocket, tlsInfo } from '../kit/open-socket.js';
import { socketAccount } from '../kit/socket-account.js';
import { countEveryRead } from '../kit/tls-account.js';
import { WebSocketChannel } from './channel.js';
import { webSocketConfig } from './config.js';
import { loadWs } from './load.js';

export interface WebSocketFlavour {
  readonly secure: boolean;
}

export async function connectWebSocket(attempt: ConnectAttempt, flavour: WebSocketFlavour): Promise<TransportChannel> {
  throwIfAborted(attempt.signal, flavour.secure ? 'wss' : 'ws');
  const cfg = webSocketConfig(attempt.options, attempt.remote, attempt.properties);
  const { target, signal } = attempt;
  const scheme = flavour.secure ? 'wss' : 'ws';
  const tls = flavour.secure ? { security: attempt.security, alpn: ['http/1.1'] } : undefined;
  const ws$ = loadWs(); // in parallel with the handshake
  ws$.catch(() => {}); // observed below
  const { socket, raw } = await openSocket({ target, signal, local: attempt.local, tls, what: scheme, handshakeTimeout: cfg.handshakeTimeout, unit: attempt.unit });
  const url = `${scheme}://${authority(target, flavour.secure ? 443 : 80)}${cfg.path}`;
  // The upgrade request (its path and headers are the caller's) counts against the tenant's byte budget as
  // written; once open, the channel counts each frame it sends, and the socket's counters what ws writes by
  // itself (pongs, its close frame). On the library's path nothing under this socket counts what it reads (a
  // Connection would count only the messages): the socket's account counts all of it (the 101, frame
  // headers) — over TLS the TLS account, at the TCP socket — and the channel says receiveMetered. A socket
  // opened directly has every read counted at its TCP socket already.
  const wire = wireMeterFor(attempt.meter, target);
  const receiveMetered = wire !== undefined && onLibraryPath(raw) && (socket === raw || countEveryRead(socket as TLSSocket));
  const account = wire === undefined ? undefined : socketAccount(socket, wire, receiveMetered && socket === raw);
  const unmeter = account === undefined ? undefined : meterWrites(socket, account.meter);
  let ws: WebSocket;
  try {
    const { WebSocket } = await ws$;
    if (signal.aborted) {
      socket.destroy();
      throw abortedError(signal, `${scheme} connect to ${url}`);
    }
    ws = new WebSocket(url, [...cfg.subprotocols], {
      createConnection: () => socket,
      maxPayload: cfg.maxPayload,
      perMessageDeflate: cfg.perMessageDeflate,
      followRedirects: false,
      headers: { ...cfg.headers },
      // ws@8 takes closeTimeout (its type file does not list it yet).
      ...(cfg.closeTimeout === undefined ? {} : { closeTimeout: cfg.closeTimeout }),
    } as ConstructorParameters<typeof WebSocket>[2]);
  } catch (err) {
    socket.destroy();
    if (signal.aborted) throw abortedError(signal, `${scheme} connect to ${url}`);
    throw new TapsError('ERR_TAPS_INVALID_CONFIGURATION', `websocket refused ${url}: ${(err as Error).message}`, { cause: err });
  }
  // The channel is made inside 'open', before ws can emit anything else (a frame may follow the 101 at once).
  return upgraded(ws, socket, signal, cfg.handshakeTimeout, () => {
    unmeter?.();
    return new WebSocketChannel(ws, socket, { maxPayload: cfg.maxPayload, info: { url, path: cfg.path, ...tlsInfo(socket) }, raw, meter: account?.meter, receiveMetered });
  });
}

/** Wait for the 101 (and the subprotocol check ws does), or fail and release everything. */
function upgraded(
  ws: WebSocket,
  socket: net.Socket,
  signal: AbortSignal,
  timeout: number | undefined,
  open: () => WebSocketChannel,
): Promise<WebSocketChannel> {
  return new Promise<WebSocketChannel>((resolve, reject) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    let failure: TapsError | undefined;
    let stopListening = (): void => {};
    const cleanup = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      stopListening();
      ws.off('open', onOpen);
      ws.off('unexpected-response', onResponse);
      ws.off('close', onClose);
    };
    const fail = (err: TapsError): void => {
      failure ??= err;
      ws.terminate();
      socket.destroy();
    };
    const onOpen = (): void => {
      cleanup();
      ws.off('error', onError);
      resolve(open());
    };
    // ws always follows 'error' during the handshake with 'close' once the socket is gone.
    const onError = (err: Error): void => {
      failure ??= toTapsError(err, 'ERR_TAPS_ESTABLISHMENT_FAILED');
    };
    const onClose = (): void => {
      cleanup();
      ws.off('error', onError);
      ws.on('error', () => {});
      reject(failure ?? new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', 'the connection closed during the websocket handshake'));
    };
    const onResponse = (_req: unknown, res: { statusCode?: number; statusMessage?: string }): void => {
      fail(new TapsError('ERR_TAPS_ESTABLISHMENT_FAILED', `websocket upgrade refused: HTTP ${res.statusCode ?? '?'} ${res.statusMessage ?? ''}`.trim()));
    };
    const onAbort = (): void => fail(abortedError(signal, 'websocket handshake'));
    ws.once('open', onOpen);
    ws.on('error', onError);
    ws.once('unexpected-response', onResponse);
    ws.once('close', onClose);
    stopListening = whenAborted(signal, onAbort);
    if (timeout !== undefined) {
      timer = setTimeout(() => fail(new TapsError('ERR_TAPS_TIMEOUT', `websocket handshake took longer than ${timeout} ms`)), timeout);
    }
  });
}
