/**
 * Interface-constraint agent: initiates TCP to `server:port` with the given
 * selection properties (and local endpoint), reads the one line the server
 * answers (the source address it saw), and reports it with the candidates.
 */
import { Host, Preconnection, SecurityParameters, TransportProperties, delimiterFramer } from '../../../src/index.js';
import { agentArgs, commands, emit, errorFields } from './agent.js';

interface Args {
  readonly listen?: boolean;
  readonly server?: string;
  readonly port?: number;
  readonly properties?: Record<string, unknown>;
  readonly local?: Record<string, unknown>;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', args.listen ? 'allow bind:tcp://192.0.2.0/24:*\nallow bind:tcp://198.51.100.0/24:*\nallow bind:tcp://[::]:*' : `allow tcp://${args.server}:${args.port}`);
const scope = await host.tenant('lab');
const pre = new Preconnection({
  scope,
  ...(args.server && { remote: { ipAddress: args.server, port: args.port } }),
  ...(args.local && { local: args.local }),
  properties: new TransportProperties(args.properties ?? {}),
  security: SecurityParameters.disabled(),
  framers: [delimiterFramer()],
});
try {
  if (args.listen) {
    const listener = await pre.listen({ stacks: 'best' });
    emit('listening', { addresses: listener.localAddresses, candidates: listener.report.candidates });
    for await (const _ of commands()) {
      /* until exit */
    }
    await listener.stop();
    process.exit(0);
  }
  const conn = await pre.initiate({ timeout: 5_000 });
  const line = await conn.receive({ signal: AbortSignal.timeout(5_000) });
  emit('connected', { local: conn.local, serverSaw: line.text().trim(), candidates: conn.report.candidates });
  await conn.close();
} catch (err) {
  emit('error', errorFields(err));
}
