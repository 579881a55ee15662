/** The udp driver against the driver compliance suite (no handshake to stall). */
import { udpDriver } from '../../transports/udp/index.js';
import { runDriverCompliance } from './suite.js';

runDriverCompliance({ driver: udpDriver, stallServer: false });
