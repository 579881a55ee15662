/**
 * Happy Eyeballs reference client, Node alone (no library): on
 * `{ type: 'run', n, port }`, `n` times `tls.connect` by name with
 * `autoSelectFamily: true` (RFC 8305 over TCP, then TLS on the winner),
 * one HTTP request and its answer; reports every run (`runs`) with the
 * addresses Node attempted, in order.
 */
import type { TcpNetConnectOpts } from 'node:net';
import { connect, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { agentArgs, commands, emit } from './agent.js';
import { answered, request, type Run } from './he-client.js';

interface Args {
  readonly name: string;
  readonly port: number;
  readonly ca: string;
}

const args = agentArgs<Args>();
const familyOf = (address: string): 4 | 6 => (address.includes(':') ? 6 : 4);

function once(port: number): Promise<Run> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    let connectMs = 0;
    let text = '';
    // autoSelectFamily reaches net.connect underneath (Node ≥ 18.13); @types/node lists it for net only.
    const options: ConnectionOptions & TcpNetConnectOpts = { host: args.name, port, servername: args.name, ca: args.ca, autoSelectFamily: true };
    const socket: TLSSocket = connect(options);
    const attempts = (): Run['attempts'] =>
      (socket.autoSelectFamilyAttemptedAddresses ?? []).map((a) => ({ stack: 'tls/tcp', family: familyOf(a.slice(0, a.lastIndexOf(':'))) }));
    const guard = setTimeout(() => socket.destroy(new Error('no answer in 10 s')), 10_000);
    socket.once('secureConnect', () => {
      connectMs = performance.now() - t0;
      socket.write(request(args.name));
    });
    socket.setEncoding('utf8').on('data', (chunk: string) => {
      text += chunk;
      if (!answered.test(text)) return;
      clearTimeout(guard);
      const address = socket.remoteAddress!;
      resolve({
        ok: true, connectMs, responseMs: performance.now() - t0, served: answered.exec(text)![1], attempts: attempts(),
        winner: { stack: 'tls/tcp', family: familyOf(address), address },
      });
      socket.destroy();
    });
    socket.once('error', (err: Error & { code?: string }) => {
      clearTimeout(guard);
      resolve({ ok: false, failMs: performance.now() - t0, code: err.code, error: err.message, attempts: attempts() });
    });
  });
}

await once(args.port);
emit('ready');
for await (const cmd of commands()) {
  if (cmd.type !== 'run') continue;
  const runs: Run[] = [];
  for (let i = 0; i < Number(cmd['n']); i++) runs.push(await once(Number(cmd['port'])));
  emit('runs', { runs });
}
