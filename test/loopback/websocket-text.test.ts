/**
 * What a WebSocket peer receives from `conn.send()`: a string goes out as a text frame, bytes as a binary
 * frame, and a `text` field overrides either way (RFC 6455 §5.6). The peer is the `ws` package's own
 * server, which reports each frame's type; the library's echo listener reports what it received.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocketServer } from 'ws';
import { Host } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';

const host = new Host();
host.setPolicy('me', 'allow connect:ws://@loopback:*');
const frames: { binary: boolean; text: string }[] = [];
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    frames.push({ binary: isBinary, text: String(data) });
    ws.send(data, { binary: isBinary });
  });
});
await new Promise((r) => wss.once('listening', r));
const port = (wss.address() as { port: number }).port;
afterAll(async () => {
  for (const c of wss.clients) c.terminate();
  await new Promise((r) => wss.close(r));
  host.close();
});

describe('WebSocket text and binary frames from conn.send()', () => {
  it('a string is a text frame, bytes a binary frame, and fields.text decides when given', async () => {
    const conn = await new Preconnection({
      scope: await host.tenant('me'),
      remote: `ws://localhost:${port}/`,
      properties: TransportProperties.reliableMessage(),
      security: SecurityParameters.disabled(),
    }).initiate({ signal: AbortSignal.timeout(5000) });
    try {
      await conn.send('a string');
      await conn.send(new TextEncoder().encode('bytes'));
      await conn.send('a string sent as binary', { fields: { text: false } });
      await conn.send(new TextEncoder().encode('bytes sent as text'), { fields: { text: true } });
      await conn.send('a string with a context', { msgPriority: 1 });
      const echoed = [];
      for (let i = 0; i < 5; i++) echoed.push((await conn.receive({ signal: AbortSignal.timeout(5000) })).context.fields?.['binary']);
      expect(frames).toEqual([
        { binary: false, text: 'a string' },
        { binary: true, text: 'bytes' },
        { binary: true, text: 'a string sent as binary' },
        { binary: false, text: 'bytes sent as text' },
        { binary: false, text: 'a string with a context' },
      ]);
      expect(echoed).toEqual([false, true, true, false, false]);
    } finally {
      await conn.close();
    }
  });
});
