/**
 * `taps-node/tcp`: the TCP driver and the socket pieces other TCP-based
 * drivers reuse (the byte-stream channel, the checked connect, the listener,
 * the error mapping).
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * registerDriver(tcpDriver);
 *
 * @module taps-node/tcp
 */
export { tcpDriver } from './driver.js';
export { TCP_CAPABILITIES } from '../kit/tcp-options.js';
export { SocketChannel, DEFAULT_CLOSE_TIMEOUT, dialledAddress, type SocketChannelOptions } from '../kit/socket-channel.js';
export { connectTcp, targetAddress } from '../kit/dial.js';
export { SocketListener, bindServer } from '../kit/socket-listener.js';
export { establishmentError, channelError } from '../kit/errors.js';
export { abortedError } from '../kit/abort.js';
