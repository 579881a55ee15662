/**
 * A driver that is still loading never delays the ones that are ready, in a fresh process (so QUIC's
 * native module is not loaded yet) with the default drivers, to a TLS-only server on `localhost` with
 * multistreaming preferred (QUIC ranks first): the first candidate to start is a TLS one, and it wins.
 * After `warmUp()` the same connect starts QUIC first, in its ranked place. With the default properties
 * (TLS ranks first) the TLS candidate wins before QUIC's turn comes, and QUIC's package is never loaded.
 * An esbuild bundle of the library follows the registry's literal `import()`s: the bundle alone lists the
 * optional stacks.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type Server } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { testCertificate } from '../helpers/certs.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), `taps-lazy-race-${process.pid}-`));
const cert = testCertificate({ kind: 'ec', issuer: 'ca', names: ['localhost'] });
let server: Server;
let port: number;

beforeAll(async () => {
  server = createServer({ cert: cert.cert, key: cert.key }, (s) => s.on('error', () => {}));
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '::', r)); // dual-stack: ::1 and 127.0.0.1
  port = (server.address() as { port: number }).port;
  writeFileSync(join(dir, 'ca.pem'), cert.caCert as string);
});

afterAll(async () => {
  await new Promise((r) => server.close(r));
  rmSync(dir, { recursive: true, force: true });
});

interface Row {
  id: string;
  driver: string;
  address?: string;
  fate: string;
  startedAt?: number;
}

/**
 * A fresh process: optionally warmUp(), then one connect (multistreaming preferred, or the default properties);
 * prints the leaf candidates and whether QUIC's package was loaded.
 */
async function freshConnect(warm: boolean, multistreaming: 'prefer' | 'default' = 'prefer'): Promise<{ rows: Row[]; warmed?: { ready: string[]; unavailable: Record<string, string> }; quicLoaded: boolean }> {
  const file = join(dir, `connect-${warm ? 'warm' : 'cold'}-${multistreaming}.mts`);
  writeFileSync(
    file,
    `import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { Host, Preconnection, SecurityParameters, TransportProperties, warmUp } from ${JSON.stringify(pathToFileURL(join(root, 'src/index.ts')).href)};
const warmed = ${warm} ? await warmUp() : undefined;
const host = new Host();
host.setPolicy('me', 'allow *://@loopback:*');
const conn = await new Preconnection({
  scope: await host.tenant('me'),
  remote: { hostName: 'localhost', port: ${port} },
  properties: ${multistreaming === 'prefer' ? "new TransportProperties().prefer('multistreaming')" : 'new TransportProperties()'},
  security: new SecurityParameters({ ca: readFileSync(${JSON.stringify(join(dir, 'ca.pem'))}, 'utf8') }),
}).initiate({ signal: AbortSignal.timeout(10_000) });
const rows = conn.report.candidates.filter((c) => c.address !== undefined).map(({ id, driver, address, fate, startedAt }) => ({ id, driver, address, fate, startedAt }));
const quicLoaded = Object.keys(createRequire(import.meta.url).cache).some((k) => k.includes('@matrixai/quic'));
console.log(JSON.stringify({ rows, warmed, quicLoaded }));
conn.abort();
host.close();
`,
  );
  const out = await new Promise<string>((resolve, reject) => {
    const p = spawn(process.execPath, ['--import', 'tsx', file], { cwd: root, timeout: 30_000 });
    let o = '';
    let e = '';
    p.stdout.on('data', (b: Buffer) => (o += b.toString()));
    p.stderr.on('data', (b: Buffer) => (e += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`child exited ${code}: ${e}`))));
  });
  return JSON.parse(out.trim().split('\n').at(-1)!) as { rows: Row[]; warmed?: { ready: string[]; unavailable: Record<string, string> }; quicLoaded: boolean };
}

/** The candidates that started, in the order they started. */
const startOrder = (rows: readonly Row[]): Row[] => rows.filter((r) => r.startedAt !== undefined).sort((a, b) => a.startedAt! - b.startedAt!);

describe('lazy loading never delays a candidate that is ready', () => {
  it('cold: QUIC ranks first but is still loading; a TLS candidate starts first and wins', async () => {
    const { rows } = await freshConnect(false);
    console.log(rows.map((r) => `${r.id} ${r.driver} ${r.address} ${r.fate} @${r.startedAt?.toFixed(1) ?? '-'}`).join('\n'));
    // Leaves are recorded in rank order: QUIC's first, as multistreaming is preferred.
    expect(rows[0]!.driver).toBe('quic');
    const started = startOrder(rows);
    expect(started[0]!.driver).toBe('tls');
    expect(rows.find((r) => r.fate === 'won')?.driver).toBe('tls');
  }, 40_000);

  it('after warmUp(): QUIC is ready and starts first, in its ranked place', async () => {
    const { rows, warmed } = await freshConnect(true);
    console.log(rows.map((r) => `${r.id} ${r.driver} ${r.address} ${r.fate} @${r.startedAt?.toFixed(1) ?? '-'}`).join('\n'));
    expect(warmed!.ready).toEqual(expect.arrayContaining(['tcp', 'tls', 'udp', 'quic']));
    expect(Object.keys(warmed!.unavailable).every((id) => id.startsWith('webtransport-h3'))).toBe(true);
    expect(rows[0]!.driver).toBe('quic');
    expect(startOrder(rows)[0]!.driver).toBe('quic');
    expect(rows.find((r) => r.fate === 'won')?.driver).toBe('tls'); // the server speaks TLS only
  }, 40_000);

  it('cold, default properties: TLS ranks first and wins before the turn of QUIC comes; its package never loads', async () => {
    const { rows, quicLoaded } = await freshConnect(false, 'default');
    console.log(rows.map((r) => `${r.id} ${r.driver} ${r.address} ${r.fate} @${r.startedAt?.toFixed(1) ?? '-'}`).join('\n'));
    expect(rows[0]!.driver).toBe('tls');
    expect(rows.some((r) => r.driver === 'quic')).toBe(true); // a candidate, ranked after TLS
    expect(startOrder(rows).map((r) => r.driver)).not.toContain('quic');
    expect(rows.find((r) => r.fate === 'won')?.driver).toBe('tls');
    expect(quicLoaded).toBe(false);
  }, 40_000);
});

describe('bundlers follow the registry', () => {
  it('an esbuild bundle of the library (packages left external) has the default drivers in it', async () => {
    const outfile = join(dir, 'bundle.mjs');
    await build({ entryPoints: [join(root, 'src/index.ts')], bundle: true, platform: 'node', format: 'esm', packages: 'external', outfile, logLevel: 'silent' });
    const probe = join(dir, 'probe.mjs');
    writeFileSync(probe, `import { registeredDrivers } from ${JSON.stringify(pathToFileURL(outfile).href)};\nconsole.log((await registeredDrivers()).map((d) => d.id).join(' '));\n`);
    const out = await new Promise<string>((resolve, reject) => {
      // Run from the temp folder: nothing of the source tree is reachable except through the bundle (packages resolve from the repository's node_modules).
      const p = spawn(process.execPath, [probe], { cwd: dir, env: { ...process.env, NODE_PATH: join(root, 'node_modules') }, timeout: 30_000 });
      let o = '';
      let e = '';
      p.stdout.on('data', (b: Buffer) => (o += b.toString()));
      p.stderr.on('data', (b: Buffer) => (e += b.toString()));
      p.on('close', (code) => (code === 0 ? resolve(o) : reject(new Error(`bundle probe exited ${code}: ${e}`))));
    });
    const ids = out.trim().split(' ');
    expect(ids).toEqual(expect.arrayContaining(['tcp', 'tls', 'udp', 'ws', 'wss', 'http', 'https', 'quic', 'webtransport-h2']));
  }, 40_000);
});
