/**
 * UDP by name agent: initiates an unreliable datagram connection to
 * `name:port` (a dual-stack name), sends one datagram a few times, and
 * reports (`result`) whether an echo came back, from which address, and the
 * selection's candidates, resolutions and soft errors — for a service that
 * answers on one family only. With `paired`, the Host's resolver asks the
 * system for both families at once and answers each query when both are in
 * (as a DNS client sending AAAA and A together does), so the A answer is
 * there when the UDP attempt wins.
 */
import { lookup } from 'node:dns/promises';
import { Host, Preconnection, SecurityParameters, TransportProperties, type Resolver } from '../../../src/index.js';
import { agentArgs, emit, errorFields } from './agent.js';

interface Args {
  readonly name: string;
  readonly port: number;
  readonly paired?: boolean;
}

const args = agentArgs<Args>();
const both = new Map<string, Promise<{ address: string; family: number }[]>>();
const paired: Resolver = async (name, family) => {
  let answers = both.get(name);
  if (answers === undefined) {
    answers = Promise.all([lookup(name, { family: 6, all: true }), lookup(name, { family: 4, all: true })]).then(([v6, v4]) => [...v6, ...v4]);
    both.set(name, answers);
  }
  return (await answers).filter((a) => a.family === family).map((a) => ({ address: a.address, family }));
};
const host = new Host(args.paired ? { resolver: paired } : {});
host.setPolicy('lab', `allow udp://${args.name}:${args.port}\nallow udp://198.51.100.0/24:${args.port}\nallow udp://[2001:db8::/32]:${args.port}`);
const pre = new Preconnection({
  scope: await host.tenant('lab'), remote: { hostName: args.name, port: args.port },
  properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled(),
});
try {
  const conn = await pre.initiate({ timeout: 5_000 });
  const softErrors: string[] = [];
  conn.on('softError', (e) => softErrors.push(e.code));
  let echo: string | undefined;
  conn.on('received', (m) => (echo ??= m.text()));
  // A few datagrams, 200 ms apart: the first may draw the ICMP error that should move the connection on.
  for (let i = 0; i < 5 && echo === undefined; i++) {
    await conn.send('ping').catch(() => {});
    await new Promise((r) => setTimeout(r, 200));
  }
  const candidates = conn.report.candidates.filter((c) => c.startedAt !== undefined).map((c) => ({ stack: c.stack.join('/'), family: c.family, fate: c.fate }));
  const resolutions = conn.report.resolutions.map((r) => ({ family: r.family, startedAt: r.startedAt, endedAt: r.endedAt, addresses: r.addresses }));
  emit('result', { echo, remote: conn.remote, softErrors, candidates, resolutions, winnerAt: conn.report.candidates.find((c) => c.startedAt !== undefined)?.endedAt });
  await conn.close();
} catch (err) {
  emit('error', errorFields(err));
}
