/** The udp driver against the driver compliance suite (no handshake to stall) and the unreliable-stack variant. */
import { udpDriver } from '../../transports/udp/index.js';
import { runDriverCompliance } from './suite.js';
import { runUnreliableCompliance } from './unreliable.js';

runDriverCompliance({ driver: udpDriver, stallServer: false });
runUnreliableCompliance({ driver: udpDriver });
