/**
 * Multicast agent: `receive` listens on a group (any-source, or source-specific
 * when `source` is given) and reports every datagram; `send` initiates to the
 * group and sends `count` numbered datagrams, then `end`. Both use the tenant
 * policy in `policy` (Host rule text).
 */
import { Host, Preconnection, SecurityParameters, TransportProperties, type Connection } from '../../../src/index.js';
import { agentArgs, commands, emit, errorFields } from './agent.js';

interface Args {
  readonly role: 'receive' | 'send';
  readonly policy: string;
  readonly group: string;
  readonly port: number;
  readonly source?: string;
  readonly interface?: string;
  readonly hopLimit?: number;
  readonly loopback?: boolean;
  readonly count?: number;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', args.policy);
const scope = await host.tenant('lab');
const properties = TransportProperties.unreliableDatagram();
if (args.loopback !== undefined) properties.set('udp.multicastLoopback', args.loopback);

if (args.role === 'receive') {
  const pre = new Preconnection({
    scope,
    local: { multicastGroup: args.group, port: args.port, ...(args.source && { multicastSource: args.source }), ...(args.interface && { interface: args.interface }) },
    properties,
    security: SecurityParameters.disabled(),
  });
  const connections: Connection[] = [];
  let received = 0;
  try {
    const listener = await pre.listen();
    listener.on('connectionReceived', (conn) => {
      connections.push(conn);
      conn.on('received', (msg) => {
        received++;
        emit('received', { from: conn.remote.address, text: msg.text() });
      });
      conn.send('reply').then(
        () => emit('replied'),
        (err: unknown) => emit('replyRefused', errorFields(err)),
      );
    });
    emit('listening', { local: listener.localAddresses, stacks: listener.stacks });
    for await (const cmd of commands()) {
      if (cmd.type === 'count') emit('count', { received });
      if (cmd.type === 'stop') {
        await listener.stop();
        for (const c of connections) await c.close();
        emit('stopped', { received });
      }
    }
  } catch (err) {
    emit('error', errorFields(err));
  }
} else {
  const pre = new Preconnection({
    scope,
    remote: { multicastGroup: args.group, port: args.port, ...(args.hopLimit !== undefined && { hopLimit: args.hopLimit }) },
    ...(args.interface && { local: { interface: args.interface } }),
    properties,
    security: SecurityParameters.disabled(),
  });
  try {
    const conn = await pre.initiate({ timeout: 5_000 });
    emit('ready', { local: conn.local, remote: conn.remote });
    for await (const cmd of commands()) {
      if (cmd.type !== 'send') continue;
      const count = Number(cmd['count'] ?? 10);
      for (let i = 1; i <= count; i++) {
        await conn.send(`m${i}`);
        await new Promise((r) => setTimeout(r, 20));
      }
      await conn.send('end');
      emit('sent', { count });
    }
    await conn.close();
  } catch (err) {
    emit('error', errorFields(err));
  }
}
