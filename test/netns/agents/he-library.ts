/**
 * Happy Eyeballs library client: on `{ type: 'run', n, port, shared }`,
 * makes `n` connections by name with the default properties and drivers
 * (TLS and QUIC race), sends one HTTP request on each and reads the answer;
 * then reports every run (`runs`). Each run has a fresh Host, so no run
 * learns from another, unless `shared` (one Host for the `n` runs, as an
 * application keeps one). Before the runs, `warmUp()` loads every driver
 * (QUIC's module included) and one connection, not counted, warms the code,
 * so no counted run pays for loading a module: a race loads QUIC's when its
 * turn comes, which would be during a counted run of some scenario.
 */
import { Host, Preconnection, SecurityParameters, warmUp, type CandidateRecord, type Connection } from '../../../src/index.js';
import { agentArgs, commands, emit } from './agent.js';
import { answered, request, type Attempt, type Run } from './he-client.js';

interface Args {
  readonly name: string;
  readonly port: number;
  readonly ca: string;
  /** The ports the tenant may reach on the server (a range). */
  readonly ports: string;
}

const args = agentArgs<Args>();
const policy = `allow *://${args.name}:${args.ports}\nallow *://198.51.100.0/24:${args.ports}\nallow *://[2001:db8::/32]:${args.ports}`;

function newHost(): Host {
  const host = new Host();
  host.setPolicy('lab', policy);
  return host;
}

/** The candidates that were attempted, in the order they started. */
const attempts = (candidates: readonly CandidateRecord[]): Attempt[] =>
  candidates
    .filter((c) => c.startedAt !== undefined)
    .sort((a, b) => a.startedAt! - b.startedAt!)
    .map((c) => ({ stack: c.stack.join('/'), family: c.family!, startedAt: c.startedAt, endedAt: c.endedAt, fate: c.fate }));

async function once(port: number, host = newHost()): Promise<Run> {
  const pre = new Preconnection({ scope: await host.tenant('lab'), remote: { hostName: args.name, port }, security: new SecurityParameters({ ca: [args.ca] }) });
  const t0 = performance.now();
  let conn: Connection | undefined;
  try {
    conn = await pre.initiate({ timeout: 10_000 });
    const connectMs = performance.now() - t0;
    await conn.send(request(args.name));
    let text = '';
    while (!answered.test(text)) text += (await conn.receive({ signal: AbortSignal.timeout(10_000) })).text();
    const responseMs = performance.now() - t0;
    const won = conn.report.candidates.find((c) => c.fate === 'won')!;
    return {
      ok: true, connectMs, responseMs, served: answered.exec(text)![1], attempts: attempts(conn.report.candidates),
      winner: { stack: won.stack.join('/'), family: won.family!, address: won.address!, startedAt: won.startedAt },
    };
  } catch (err) {
    const e = err as { code?: string; message?: string; report?: { candidates: readonly CandidateRecord[] } };
    return { ok: false, failMs: performance.now() - t0, code: e.code, error: e.message, attempts: attempts(e.report?.candidates ?? []) };
  } finally {
    await conn?.close().catch(() => conn?.abort());
  }
}

await warmUp();
await once(args.port);
emit('ready');
for await (const cmd of commands()) {
  if (cmd.type !== 'run') continue;
  const runs: Run[] = [];
  const shared = cmd['shared'] === true ? newHost() : undefined;
  for (let i = 0; i < Number(cmd['n']); i++) runs.push(await once(Number(cmd['port']), shared));
  emit('runs', { runs });
}
