/**
 * Path-monitor agent: a TCP and a UDP connection to an echo server and a
 * listener on this host's own address, each reporting `pathChange` and
 * `softError` as events. Commands: `echo` (one round trip on each connection).
 */
import { Host, PathMonitor, Preconnection, SecurityParameters, TransportProperties, lengthPrefixFramer, type Connection } from '../../../src/index.js';
import { agentArgs, commands, emit, errorFields } from './agent.js';

interface Args {
  readonly server: string;
  readonly tcpPort: number;
  readonly udpPort: number;
  readonly local: string;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', `allow tcp://${args.server}:${args.tcpPort}\nallow udp://${args.server}:${args.udpPort}\nallow bind:tcp://${args.local}:*`);
const scope = await host.tenant('lab');
const paths = new PathMonitor({ interval: 100 });

const watch = (name: string, conn: Connection): void => {
  conn.on('pathChange', (c) => emit('pathChange', { name, ...c }));
  conn.on('softError', (e) => emit('softError', { name, code: e.code, message: e.message }));
  conn.on('closed', () => emit('closed', { name }));
};

try {
  const tcp = await new Preconnection({
    scope, paths, remote: { ipAddress: args.server, port: args.tcpPort }, security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()],
  }).initiate({ timeout: 5_000 });
  const udp = await new Preconnection({
    scope, paths, remote: { ipAddress: args.server, port: args.udpPort }, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(),
  }).initiate({ timeout: 5_000 });
  const listener = await new Preconnection({ scope, paths, local: { ipAddress: args.local, port: 0 }, security: SecurityParameters.disabled() }).listen();
  listener.on('pathChange', (c) => emit('pathChange', { name: 'listener', ...c }));
  watch('tcp', tcp);
  watch('udp', udp);
  emit('ready', { tcp: tcp.local, udp: udp.local, listener: listener.localAddresses, watching: paths.watching });
  for await (const cmd of commands()) {
    if (cmd.type !== 'echo') continue;
    try {
      // The socat echo server returns the bytes as they came: the length prefix comes back with them.
      await tcp.send('ping');
      const t = await tcp.receive({ signal: AbortSignal.timeout(5_000) });
      await udp.send('ping');
      const u = await udp.receive({ signal: AbortSignal.timeout(5_000) });
      emit('echoed', { tcp: t.text(), udp: u.text() });
    } catch (err) {
      emit('echoFailed', errorFields(err));
    }
  }
  await tcp.close();
  await udp.close();
  await listener.stop();
  emit('done', { watching: paths.watching });
} catch (err) {
  emit('error', errorFields(err));
}
