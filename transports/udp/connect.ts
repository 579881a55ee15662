/**
 * A connected UDP socket to a checked target (RFC 9623 §5.2: "Connect" binds and
 * connects, so the OS filters datagrams to the one peer and reports ICMP
 * errors). Ready once a local port exists and the socket is connected
 * (RFC 9623 §4.2: "UDP once a route and port exist"); nothing is sent. A target that
 * is a multicast group gets its hop limit, interface and loopback set
 * (./multicast.ts) before it is ready: it sends to the group and receives nothing.
 *
 * @example
 * const channel = await connectUdp(attempt); // DatagramChannel
 */
import { createSocket, type Socket } from 'node:dgram';
import { debuglog } from 'node:util';
import type { ConnectAttempt } from '../../src/driver.js';
import { abortedError, throwIfAborted, whenAborted } from '../kit/abort.js';
import { localBinding, targetAddress } from '../kit/dial.js';
import { channelError, establishmentError } from '../kit/errors.js';
import { isMulticast } from '../../src/paths/multicast.js';
import { DatagramChannel, SOFT_ERRORS } from './channel.js';
import { prepareGroupSend } from './multicast.js';
import { bufferOptions, grantedBuffers, maxMessageSize, sendHighWater, setUdpOption, singularMax } from './socket.js';
import { meterFor } from '../kit/meter.js';
import { dialUnit, holdUntilClose, wireMeterFor, type WireMeter } from '../kit/account.js';
import { toTapsError } from '../../src/errors.js';

const log = debuglog('taps');

/** Bind (to the local endpoint or an ephemeral port) and connect. */
function openConnected(attempt: ConnectAttempt, socket: Socket, address: string, port: number, label: string): Promise<void> {
  const { signal } = attempt;
  const { localAddress, localPort } = localBinding(attempt.local);
  return new Promise<void>((resolve, reject) => {
    let stopListening = (): void => {};
    const cleanup = (): void => {
      stopListening();
      socket.off('error', onError);
    };
    const onError = (err: Error): void => {
      cleanup();
      reject(establishmentError(err, label));
    };
    const onAbort = (): void => {
      cleanup();
      reject(abortedError(signal, label));
    };
    stopListening = whenAborted(signal, onAbort);
    socket.once('error', onError);
    const connect = (): void => {
      if (signal.aborted) return;
      try {
        socket.connect(port, address, () => {
          cleanup();
          resolve();
        });
      } catch (err) {
        onError(err as Error);
      }
    };
    if (localAddress !== undefined || localPort !== undefined) {
      socket.bind({ address: localAddress, port: localPort ?? 0, exclusive: true }, connect);
    } else {
      connect();
    }
  });
}

/** Open a connected UDP socket to the attempt's checked target (bind checked too), as a channel. */
export async function connectUdp(attempt: ConnectAttempt): Promise<DatagramChannel> {
  throwIfAborted(attempt.signal, 'udp');
  const { address, port, family } = targetAddress(attempt.target, 'udp', 'udp');
  const label = `udp connect to ${family === 6 ? `[${address}]` : address}:${port}`;
  const singular = singularMax(address, family, attempt.options);
  const highWater = sendHighWater(attempt.options);
  const { socket, meter } = await connectedSocket(attempt, address, port, family, label);
  const local = socket.address();
  const remote = socket.remoteAddress();
  return channelOf(socket, meter, {
    local: { address: local.address, port: local.port, family },
    remote: { address: remote.address, port: remote.port, family },
    maxMessageSize: maxMessageSize(family),
    singularTransmissionMsgMaxLen: singular,
    info: grantedBuffers(socket),
    highWater,
    meter: meterFor(attempt),
    receiveMetered: meter !== undefined,
  });
}

/**
 * The socket, bound and connected (a multicast group's sending set up), holding a unit of `limit
 * connections` until it closes (the Connection's own on the library's path); a failure releases both.
 * Every datagram it reads is charged to `meter` (on the library's path too: its channel says receiveMetered).
 */
async function connectedSocket(attempt: ConnectAttempt, address: string, port: number, family: 4 | 6, label: string): Promise<{ socket: Socket; meter: WireMeter | undefined }> {
  const taken = dialUnit(attempt.unit, attempt.target);
  const unit = taken instanceof Promise ? await taken : taken;
  let socket: Socket;
  try {
    socket = createSocket({ type: family === 6 ? 'udp6' : 'udp4', ...bufferOptions(attempt.options, attempt.properties) });
  } catch (err) {
    unit.release();
    throw err;
  }
  holdUntilClose(socket, unit);
  // On the library's path too: a driver keeping this channel from its Connection (reading it itself) reads nothing uncounted.
  const meter = wireMeterFor(undefined, attempt.target);
  try {
    await openConnected(attempt, socket, address, port, label);
    if (isMulticast(address)) prepareGroupSend(socket, attempt.remote, attempt.local, family, attempt.properties);
  } catch (err) {
    socket.on('error', () => {});
    unit.release();
    try {
      socket.close();
    } catch {
      /* never bound: nothing to release */
    }
    throw err;
  }
  return { socket, meter };
}

/**
 * The channel over a connected socket: its reads (charged to `meter` first when given), ICMP errors as soft
 * errors (RFC 9622 §8.3.1), any other socket error ending it, and its release closing the socket.
 */
function channelOf(socket: Socket, meter: WireMeter | undefined, init: ConstructorParameters<typeof DatagramChannel>[1]): DatagramChannel {
  let released: (() => void) | undefined;
  const channel: DatagramChannel = new DatagramChannel(
    {
      send: (data, cb) => socket.send(data, cb),
      ordered: true,
      release: (done) => {
        released = done;
        try {
          socket.close();
        } catch {
          done();
        }
      },
      setOption: (name, value) => setUdpOption(socket, name, value),
    },
    init,
  );
  socket.on('message', (msg) => {
    if (meter !== undefined) {
      try {
        meter.received(msg.byteLength);
      } catch (err) {
        channel.fail(toTapsError(err, 'ERR_TAPS_QUOTA_EXCEEDED'));
        return;
      }
    }
    channel.deliver(msg);
  });
  socket.on('error', (err: NodeJS.ErrnoException) => {
    if (typeof err.code === 'string' && SOFT_ERRORS.has(err.code)) {
      channel.softError(err);
      return;
    }
    log('udp socket error %s: %s', err.code, err.message);
    channel.fail(channelError(err));
  });
  socket.once('close', () => {
    if (released) released();
    else channel.released();
  });
  return channel;
}
