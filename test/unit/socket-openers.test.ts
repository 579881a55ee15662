/**
 * Every place a driver opens a socket takes its address from the kit's
 * `targetAddress` (transports/kit/dial.ts), which admits only a minted target
 * for a use and transport that socket serves (test/loopback/dial-brand.test.ts
 * shows it refusing). A static scan of transports/ and src/ (comments
 * removed by TypeScript): a file that calls an API opening a socket must call
 * `targetAddress` itself, so a new dial path cannot skip the brand.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Calls that open a socket or make a package open one: Node's net/tls/dgram, the QUIC and WebTransport packages. */
const OPENERS: readonly RegExp[] = [
  /\bnew\s+(?:net\.)?Socket\s*\(/,
  /\bnet\.connect\s*\(|\bcreateConnection\s*\(\s*\{/,
  /\btls\.connect\s*\(/,
  /\bcreateSocket\s*\(/,
  /\.listen\s*\(\s*\{/,
  /\.bind\s*\(\s*\{/,
  /\.connect\s*\(\s*port\b/, // dgram: connect(port, address)
  /\bcreateQUICClient\s*\(|\bnew\s+[\w.]*QUIC(?:Socket|Server)\s*\(/,
  /\bnew\s+[\w.]*(?:Http3Server|WebTransport)\s*\(/,
];

function code(file: string): string {
  return ts.transpileModule(readFileSync(file, 'utf8'), { compilerOptions: { removeComments: true, target: ts.ScriptTarget.ESNext } }).outputText;
}

function files(folder: string): string[] {
  return readdirSync(join(root, folder), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(root, folder, f));
}

/** Files that open sockets, and whether each takes the address from targetAddress. */
function openers(sources: readonly { file: string; text: string }[]): { file: string; branded: boolean }[] {
  return sources
    .filter(({ text }) => OPENERS.some((re) => re.test(text)))
    .map(({ file, text }) => ({ file: relative(root, file), branded: /\btargetAddress\s*\(/.test(text) }));
}

describe('socket openers', () => {
  it('every file that opens a socket takes the address from targetAddress', () => {
    const found = openers([...files('transports'), ...files('src')].map((file) => ({ file, text: code(file) })));
    // The scan sees the dial paths it must: TCP, TLS, UDP, QUIC, the listeners (the HTTP-family ones bind in kit/listen-http.ts).
    for (const must of ['transports/kit/dial.ts', 'transports/kit/tls-client.ts', 'transports/kit/socket-listener.ts', 'transports/udp/connect.ts', 'transports/udp/listener.ts', 'transports/quic/client.ts', 'transports/quic/server.ts', 'transports/kit/listen-http.ts']) {
      expect(found.map((f) => f.file), must).toContain(must);
    }
    const socketOnly = new Set(['transports/quic/socket.ts']); // made only by quic/client.ts, after its targetAddress
    expect(found.filter((f) => !f.branded && !socketOnly.has(f.file))).toEqual([]);
  });

  it('the scan flags an unbranded dial (the check can fail)', () => {
    const text = code(join(root, 'transports/kit/dial.ts')).replace(/targetAddress/g, 'plainAddress');
    expect(openers([{ file: join(root, 'transports/x.ts'), text }])).toEqual([{ file: 'transports/x.ts', branded: false }]);
    const commented = ts.transpileModule('// new Socket()\n/* createSocket({}) */\nexport const x = 1;', { compilerOptions: { removeComments: true } }).outputText;
    expect(openers([{ file: join(root, 'transports/y.ts'), text: commented }])).toEqual([]);
  });
});
