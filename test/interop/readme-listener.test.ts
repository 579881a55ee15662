/**
 * The README's quick start server, run as written, reached by peers nobody on the project wrote.
 *
 * The server half of the README's quick start (everything before the client) runs in a child process
 * exactly as the README has it, with only its imports pointed at this checkout; the child then prints
 * the port and the certificate. `openssl s_client` verifies the certificate for `localhost`, sends one
 * length-prefixed message and gets it back framed; `curl` completes a verified TLS handshake with it
 * (an HTTP request is not a length-prefixed message, so no HTTP answer comes: curl says so, and never
 * "connection refused").
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), `taps-readme-listener-${process.pid}-`));

/** The README's quick start up to the client: the server, as a reader would paste it. */
function readmeServer(): string {
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const snippet = /## Quick start[\s\S]*?```js\n([\s\S]*?)```/.exec(readme)?.[1] ?? '';
  const server = snippet.split('// The client asks by properties')[0]!;
  expect(server).toContain('.listen();');
  return server
    .replaceAll("'taps-node'", JSON.stringify(pathToFileURL(join(root, 'src/index.ts')).href))
    .replaceAll("'taps-node/certificates'", JSON.stringify(pathToFileURL(join(root, 'transports/tls/certificates.ts')).href));
}

let child: ChildProcessWithoutNullStreams;
let port: number;
let caFile: string;
let childErr = '';

beforeAll(async () => {
  const file = join(dir, 'server.mts');
  writeFileSync(
    file,
    `${readmeServer()}
// Not part of the README: tell the test where the server is, and stop when the test closes stdin.
console.log(JSON.stringify({ port: server.port, stacks: server.stacks, cert }));
process.stdin.resume();
process.stdin.on('end', async () => { await server.stop(); host.close(); });
`,
  );
  child = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, stdio: ['pipe', 'pipe', 'pipe'] });
  child.stderr.on('data', (b: Buffer) => (childErr += b.toString()));
  let out = '';
  for await (const chunk of child.stdout) {
    out += (chunk as Buffer).toString();
    if (out.includes('\n')) break;
  }
  const info = JSON.parse(out.split('\n')[0]!) as { port: number; stacks: string[]; cert: string };
  console.log(`README server on 127.0.0.1:${info.port}, stacks ${info.stacks.join(', ')}`);
  port = info.port;
  caFile = join(dir, 'ca.pem');
  writeFileSync(caFile, info.cert);
}, 30_000);

afterAll(async () => {
  if (child.exitCode === null) {
    const exited = once(child, 'exit');
    child.stdin.end();
    await exited;
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Run a peer; `talk` gets its stdin and stdout and says when it is done. Killed after 10 s. */
function peer(cmd: string, args: readonly string[], talk?: (stdin: NodeJS.WritableStream, stdout: NodeJS.ReadableStream) => void): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], timeout: 10_000 });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (b: Buffer) => out.push(b));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout: Buffer.concat(out), stderr: err }));
    if (talk) talk(p.stdin, p.stdout);
    else p.stdin.end();
  });
}

describe('the README quick start server, reached by openssl and curl', () => {
  it('openssl s_client: the certificate verifies for localhost, and a length-prefixed message comes back framed', async () => {
    const body = Buffer.from('hello from openssl');
    const frame = Buffer.concat([Buffer.alloc(4), body]);
    frame.writeUInt32BE(body.length, 0);
    const r = await peer('openssl', ['s_client', '-brief', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost', '-CAfile', caFile, '-verify_return_error'], (stdin, stdout) => {
      stdin.write(frame);
      // Close once the echo is in: s_client then sends close_notify, and the README's server closes too.
      let got = 0;
      stdout.on('data', (b: Buffer) => {
        got += b.length;
        if (got >= frame.length) stdin.end();
      });
    });
    console.log(`openssl: exit ${r.code}\n${r.stderr.trim()}`);
    expect(r.stderr).toMatch(/Verification: OK/);
    expect(r.stderr).toMatch(/Peer certificate: CN ?= ?localhost/);
    expect(r.stdout.readUInt32BE(0)).toBe(body.length);
    expect(r.stdout.subarray(4).toString()).toBe('hello from openssl');
    expect(r.code).toBe(0);
  });

  it('curl: a verified TLS handshake with localhost; the HTTP request is not a framed message, so no HTTP answer comes', async () => {
    const r = await peer('curl', ['-sS', '-v', '--max-time', '3', '--cacert', caFile, '--resolve', `localhost:${port}:127.0.0.1`, `https://localhost:${port}/`]);
    console.log(`curl: exit ${r.code}\n${r.stderr.split('\n').filter((l) => /SSL|TLS|subject|curl:|Connected/.test(l)).join('\n')}`);
    expect(r.stderr).toMatch(/Connected to localhost/);
    expect(r.stderr).toMatch(/SSL certificate verify ok/);
    expect(r.stderr).toMatch(/subjectAltName: host "localhost" matched/);
    expect(r.stderr).not.toMatch(/Connection refused|Failed to connect/);
    // The request reached the server, which reads it as the start of a length-prefixed message: it waits for
    // the rest (28: curl's --max-time) or drops the connection (52: empty reply, 56: reset). Never refused (7).
    expect([28, 52, 56]).toContain(r.code);
    expect(r.stdout.length).toBe(0);
    // The server process is still there: one bad peer does not crash it.
    // What it printed is only its own handler's line for that peer (the README server catches a failed peer).
    expect(child.exitCode).toBe(null);
    for (const line of childErr.split('\n').filter(Boolean)) expect(line).toMatch(/^a peer's connection failed: TapsError/);
  });
});
