/**
 * `taps-node/udp`: the UDP driver (connected datagrams, listeners that
 * demultiplex by peer) and its datagram channel.
 *
 * @example
 * import { udpDriver } from 'taps-node/udp';
 * registerDriver(udpDriver);
 *
 * @module taps-node/udp
 */
export { udpDriver, UDP_CAPABILITIES } from './driver.js';
export { DatagramChannel, type DatagramIo, type DatagramChannelInit } from './channel.js';
export { UdpListener, listenUdp } from './listener.js';
export { connectUdp } from './connect.js';
export { DEFAULT_RECV_BUFFER, maxMessageSize } from './socket.js';
