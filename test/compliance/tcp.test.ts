/** The tcp driver against the driver compliance suite. */
import { tcpDriver } from '../../transports/tcp/index.js';
import { runDriverCompliance } from './suite.js';

runDriverCompliance({ driver: tcpDriver });
