/**
 * A new user's first experiences with the defaults (default properties, security and driver set, QUIC
 * included, a name: `localhost`), measured side by side with what that user would otherwise write.
 * (bench/defaults.ts has the warm establishment and racing-cache rows.)
 *
 * - Refused port: `initiate()` to `localhost:P` where nothing listens on TCP or UDP, time until it rejects,
 *   against `net.connect({ host: 'localhost', autoSelectFamily: true })` until its ECONNREFUSED. Warm
 *   (the drivers are loaded by a first selection); alternating rounds.
 * - Cold start: a fresh `node` process that imports the library and makes its first default connection
 *   to a dual-stack TLS-only server on `localhost` (CA given), against a fresh process doing
 *   `tls.connect({ host: 'localhost', autoSelectFamily: true })`: in the child, from process start
 *   (`performance.now()`'s origin) to connected — the goal row — and, reported, the wall time from spawn
 *   to exit; alternating rounds.
 *
 *   npx tsx bench/first-use.ts     # table + bench/results/first-use.json
 *   npm run bench -- first-use
 */
import { spawn } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Host } from '../src/policy/host.js';
import { Preconnection } from '../src/preconnection.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';
import { formatTable, type BenchRow, RESULTS_DIR } from './harness.js';
import { pairedRow } from './paired.js';
import { refusedPort } from '../test/helpers/ports.js';

const REFUSED_ROUNDS = 30;
const COLD_ROUNDS = 7;
/**
 * Run from source (tsx): the child imports the sources the same way. Compiled (`npm run bench`): the child
 * imports the library as the package ships it, bundled (scripts/bundle.mjs into dist-bench/package).
 */
const FROM_SOURCE = import.meta.url.endsWith('.ts');
const LIBRARY = new URL(FROM_SOURCE ? '../src/index.ts' : '../package/src/index.js', import.meta.url).href;

async function refused(): Promise<BenchRow> {
  const port = await refusedPort();
  const host = new Host();
  host.setPolicy('me', 'allow *://@loopback:*');
  const pre = new Preconnection({ scope: await host.tenant('me'), remote: { hostName: 'localhost', port } });
  const oursOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const err = (await pre.initiate().then(
      () => undefined,
      (e: unknown) => e,
    )) as { code?: string; message?: string } | undefined;
    const ms = performance.now() - t0;
    if (err?.code !== 'ERR_TAPS_ESTABLISHMENT_FAILED' || !/ECONNREFUSED/.test(err.message ?? '')) throw new Error(`expected a refusal, got ${err?.code}: ${err?.message}`);
    return ms;
  };
  const baseOnce = async (): Promise<number> => {
    const t0 = performance.now();
    const socket = connect({ host: 'localhost', port, autoSelectFamily: true });
    const code = await new Promise<string | undefined>((resolve) => {
      socket.once('connect', () => resolve('connected'));
      socket.once('error', (e: NodeJS.ErrnoException) => resolve(e.code));
    });
    const ms = performance.now() - t0;
    socket.destroy();
    if (code !== 'ECONNREFUSED') throw new Error(`net.connect: expected ECONNREFUSED, got ${code}`);
    return ms;
  };
  const first = await oursOnce(); // loads the default drivers
  await baseOnce();
  const ours: number[] = [];
  const base: number[] = [];
  for (let i = 0; i < REFUSED_ROUNDS; i++) {
    if (i % 2 === 0) {
      ours.push(await oursOnce());
      base.push(await baseOnce());
    } else {
      base.push(await baseOnce());
      ours.push(await oursOnce());
    }
  }
  host.close();
  const us = (ms: number): number => ms * 1000;
  return pairedRow(
    'refused port, default drivers: initiate() to localhost vs net.connect({ autoSelectFamily }) until ECONNREFUSED',
    ours.map(us),
    base.map(us),
    'µs',
    '≤ 3×',
    `${ours.length} alternating rounds after a first selection that loaded the drivers (${first.toFixed(1)} ms); QUIC and TLS over ::1 and 127.0.0.1 all refused`,
  );
}

/** The child programs: ours imports the library and connects by default properties; the baseline uses tls.connect. */
function childScripts(port: number, caFile: string): { ours: string; base: string } {
  const report = `console.log(JSON.stringify({ connectedAt: performance.now() }));`;
  const ours = `
import { readFileSync } from 'node:fs';
import { Host, Preconnection, SecurityParameters } from ${JSON.stringify(LIBRARY)};
const host = new Host();
host.setPolicy('me', 'allow *://@loopback:*');
const pre = new Preconnection({ scope: await host.tenant('me'), remote: { hostName: 'localhost', port: ${port} }, security: new SecurityParameters({ ca: readFileSync(${JSON.stringify(caFile)}, 'utf8') }) });
const conn = await pre.initiate();
${report}
conn.abort();
host.close();
if (conn.stack[0] !== 'tls') throw new Error('expected tls, got ' + conn.stack.join('/'));
`;
  const base = `
import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
const socket = connect({ host: 'localhost', port: ${port}, autoSelectFamily: true, ca: readFileSync(${JSON.stringify(caFile)}, 'utf8') });
await new Promise((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
${report}
socket.destroy();
`;
  return { ours, base };
}

/** Spawn `node file`, return the wall time to exit and the child's own time from its start to connected. */
function runChild(file: string): Promise<{ wall: number; connectedAt: number }> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const args = FROM_SOURCE ? ['--import', 'tsx', file] : [file];
    const p = spawn(process.execPath, args, { cwd: fileURLToPath(new URL(FROM_SOURCE ? '..' : '../..', import.meta.url)), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (b: Buffer) => (out += b.toString()));
    p.stderr.on('data', (b: Buffer) => (err += b.toString()));
    p.on('error', reject);
    p.on('close', (code) => {
      const wall = performance.now() - t0;
      if (code !== 0) return reject(new Error(`${file} exited ${code}: ${err}`));
      resolve({ wall, connectedAt: (JSON.parse(out.trim().split('\n').at(-1)!) as { connectedAt: number }).connectedAt });
    });
  });
}

async function coldStart(): Promise<BenchRow[]> {
  const { cert, key } = selfSignedCertificate({ names: ['localhost'] });
  const server = createTlsServer({ cert, key }, (s) => s.on('error', () => {}));
  server.on('tlsClientError', () => {});
  await new Promise<void>((r) => server.listen(0, '::', r)); // dual-stack: ::1 and 127.0.0.1
  const { port } = server.address() as { port: number };
  const dir = await mkdtemp(join(tmpdir(), 'taps-bench-cold-'));
  try {
    const caFile = join(dir, 'ca.pem');
    await writeFile(caFile, cert);
    const scripts = childScripts(port, caFile);
    const oursFile = join(dir, 'ours.mjs');
    const baseFile = join(dir, 'base.mjs');
    await writeFile(oursFile, scripts.ours);
    await writeFile(baseFile, scripts.base);
    await runChild(oursFile); // the OS file cache, for both
    await runChild(baseFile);
    const ours: { wall: number; connectedAt: number }[] = [];
    const base: { wall: number; connectedAt: number }[] = [];
    for (let i = 0; i < COLD_ROUNDS; i++) {
      if (i % 2 === 0) {
        ours.push(await runChild(oursFile));
        base.push(await runChild(baseFile));
      } else {
        base.push(await runChild(baseFile));
        ours.push(await runChild(oursFile));
      }
    }
    const note = `${COLD_ROUNDS} alternating fresh processes${FROM_SOURCE ? ' (from source, through tsx)' : ' (compiled)'}; TLS-only server on [::]`;
    return [
      pairedRow('cold start: fresh process, import + first default connect to localhost TLS vs tls.connect, process start to connected', ours.map((r) => r.connectedAt), base.map((r) => r.connectedAt), 'ms', '≤ 1.5×', note),
      pairedRow('cold start: the same, spawn to exit (includes loading what the race did not need, e.g. QUIC)', ours.map((r) => r.wall), base.map((r) => r.wall), 'ms', 'report', note),
    ];
  } finally {
    await rm(dir, { recursive: true, force: true });
    await new Promise((r) => server.close(r));
  }
}

export async function run(): Promise<BenchRow[]> {
  return [await refused(), ...(await coldStart())];
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const rows = await run();
  process.stdout.write(`${formatTable(rows.map((r) => ({ ...r, suite: 'first-use' })))}\n`);
  for (const r of rows) if (r.note) process.stdout.write(`  ${r.name}: ${r.note}\n`);
  await mkdir(RESULTS_DIR, { recursive: true });
  await writeFile(join(RESULTS_DIR, 'first-use.json'), JSON.stringify({ node: process.version, date: new Date().toISOString(), rows }, null, 2));
}
