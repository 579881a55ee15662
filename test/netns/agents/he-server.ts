/**
 * Happy Eyeballs server agent: a listener built with the default properties
 * on every address of its namespace (`[::]`, dual-stack), so TLS on TCP and
 * QUIC on UDP share `port`. Each connection gets one HTTP/1.1 answer naming
 * the stack that served it; each accepted connection is reported
 * (`accepted`: stack and peer address), so tests check what the server saw.
 */
import { Host, Preconnection, SecurityParameters } from '../../../src/index.js';
import { agentArgs, commands, emit, errorFields } from './agent.js';

interface Args {
  readonly port: number;
  readonly cert: string;
  readonly key: string;
}

const args = agentArgs<Args>();
const host = new Host();
host.setPolicy('lab', `allow bind:*://@unspecified:${args.port}\nallow accept:*://192.0.2.0/24:*\nallow accept:*://[2001:db8::/32]:*`);
const scope = await host.tenant('lab');
try {
  const listener = await new Preconnection({
    scope,
    local: { port: args.port },
    security: new SecurityParameters({ certificate: args.cert, key: args.key }),
  }).listen();
  listener.on('connectionReceived', async (c) => {
    emit('accepted', { stack: c.stack.join('/'), remote: c.remote.address });
    try {
      await c.receive({ signal: AbortSignal.timeout(5_000) });
      const text = `served by ${c.stack.join('/')}`;
      await c.send(`HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${text.length}\r\nconnection: close\r\n\r\n${text}`);
      await c.close();
    } catch {
      c.abort();
    }
  });
  emit('listening', { stacks: listener.stacks, addresses: listener.localAddresses });
  for await (const _ of commands()) {
    /* until exit */
  }
  await listener.stop();
  process.exit(0);
} catch (err) {
  emit('error', errorFields(err));
}
