/**
 * Interface-constraint agent: initiates TCP to `server:port` with the given
 * selection properties (and local endpoint), reads the one line the server
 * answers (the source address it saw), and reports it with the candidates.
 */
import { Host, Preconnection, SecurityParameters, TransportProperties, delimiterFramer } from '../../../src/index.js';
import { agentArgs, emit, errorFields } from './agent.js';

interface Args {
  readonly server: string;
  readonly port: number;
  readonly properties?: Record<string, unknown>;
  readonly local?: Record<string, unknown>;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', `allow tcp://${args.server}:${args.port}`);
const scope = await host.tenant('lab');
const pre = new Preconnection({
  scope,
  remote: { ipAddress: args.server, port: args.port },
  ...(args.local && { local: args.local }),
  properties: new TransportProperties(args.properties ?? {}),
  security: SecurityParameters.disabled(),
  framers: [delimiterFramer()],
});
try {
  const conn = await pre.initiate({ timeout: 5_000 });
  const line = await conn.receive({ signal: AbortSignal.timeout(5_000) });
  emit('connected', { local: conn.local, serverSaw: line.text().trim(), candidates: conn.report.candidates });
  await conn.close();
} catch (err) {
  emit('error', errorFields(err));
}
