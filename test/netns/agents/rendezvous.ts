/**
 * Rendezvous agent: resolves its candidates (with the STUN server in
 * `stun`), prints them, waits for the peer's (`{ type: 'peer', candidates }`),
 * rendezvous, then sends one datagram to the peer and reports what it
 * receives. `policy` is the tenant's rule text.
 */
import { Host, LocalEndpoint, Preconnection, SecurityParameters, TransportProperties, type Connection } from '../../../src/index.js';
import { agentArgs, commands, emit, errorFields } from './agent.js';

interface Args {
  readonly name: string;
  readonly policy: string;
  readonly stun?: string;
  readonly timeout?: number;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', args.policy);
const scope = await host.tenant('lab');
const local = LocalEndpoint.from({ port: 0, ...(args.stun && { stunServer: args.stun }) });
const pre = new Preconnection({ scope, local, properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
let done = false;
pre.on('rendezvousDone', () => (done = true));
let conn: Connection | undefined;
try {
  const { local: candidates } = await pre.resolve();
  emit('candidates', { candidates: candidates.map((c) => ({ ipAddress: c.ipAddress, port: c.port })) });
  for await (const cmd of commands()) {
    if (cmd.type === 'peer') {
      const t0 = performance.now();
      try {
        conn = await pre.rendezvous({ remote: cmd['candidates'] as { ipAddress: string; port: number }[], timeout: args.timeout ?? 10_000 });
        conn.on('received', (m) => emit('received', { text: m.text(), from: conn!.remote }));
        emit('done', { event: done, ms: performance.now() - t0, local: conn.local, remote: conn.remote, candidates: conn.report.candidates });
        await conn.send(`hello from ${args.name}`);
      } catch (err) {
        emit('error', { ...errorFields(err), ms: performance.now() - t0 });
      }
    }
  }
  await conn?.close();
} catch (err) {
  emit('error', errorFields(err));
}
