/**
 * `taps-node/tcp`: the TCP driver and the socket pieces other TCP-based
 * drivers reuse (the byte-stream channel, the checked connect, the listener,
 * the error mapping).
 *
 * @example
 * import { tcpDriver } from 'taps-node/tcp';
 * registerDriver(tcpDriver);
 */
export { tcpDriver, TCP_CAPABILITIES } from './driver.js';
export { SocketChannel, DEFAULT_CLOSE_TIMEOUT, dialledAddress, type SocketChannelOptions } from './channel.js';
export { connectTcp, targetAddress } from './connect.js';
export { SocketListener, bindServer } from './listener.js';
export { establishmentError, channelError, abortedError } from './errors.js';
