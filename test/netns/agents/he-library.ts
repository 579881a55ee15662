/**
 * Happy Eyeballs library client: on `{ type: 'run', n }`, makes `n`
 * connections by name with the default properties and drivers (TLS and QUIC
 * race), each from a fresh Host so no run learns from another, sends one
 * HTTP request and reads the answer; then reports every run (`runs`). A
 * first connection, not counted, loads the drivers.
 */
import { Host, Preconnection, SecurityParameters, type CandidateRecord, type Connection } from '../../../src/index.js';
import { agentArgs, commands, emit } from './agent.js';
import { answered, request, type Attempt, type Run } from './he-client.js';

interface Args {
  readonly name: string;
  readonly port: number;
  readonly ca: string;
}

const args = agentArgs<Args>();
const policy = `allow *://${args.name}:${args.port}\nallow *://198.51.100.0/24:${args.port}\nallow *://[2001:db8::/32]:${args.port}`;

/** The candidates that were attempted, in the order they started. */
const attempts = (candidates: readonly CandidateRecord[]): Attempt[] =>
  candidates
    .filter((c) => c.startedAt !== undefined)
    .sort((a, b) => a.startedAt! - b.startedAt!)
    .map((c) => ({ stack: c.stack.join('/'), family: c.family!, startedAt: c.startedAt, endedAt: c.endedAt, fate: c.fate }));

async function once(): Promise<Run> {
  const host = new Host();
  host.setPolicy('lab', policy);
  const pre = new Preconnection({ scope: await host.tenant('lab'), remote: { hostName: args.name, port: args.port }, security: new SecurityParameters({ ca: [args.ca] }) });
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
    return { ok: false, code: e.code, error: e.message, attempts: attempts(e.report?.candidates ?? []) };
  } finally {
    await conn?.close().catch(() => conn?.abort());
  }
}

await once();
emit('ready');
for await (const cmd of commands()) {
  if (cmd.type !== 'run') continue;
  const runs: Run[] = [];
  for (let i = 0; i < Number(cmd['n']); i++) runs.push(await once());
  emit('runs', { runs });
}
