/**
 * The `taps` CLI, run in-process through `main()` (and once as a real
 * process for the exit code): the race timeline over real loopback sockets,
 * `policy check` pinpointing errors, `policy explain`, and exit codes.
 *
 * The race: a name resolving (through `--resolve`) to ::1 and 127.0.0.1 with
 * one port. Nothing listens on [::1]:P, so that candidate is refused at once;
 * 127.0.0.1:P accepts TCP but starts TLS only after SLOW_MS, so that
 * candidate is slow and wins. A second race swaps the slow server for the
 * python blackhole (test/helpers/blackhole.ts): the IPv4 candidate then hangs
 * until the probe's timeout.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.js';
import { bufferIO } from '../cli/output.js';
import { blackhole, type Blackhole } from './helpers/blackhole.js';
import { testCertificate } from './helpers/certs.js';

const SLOW_MS = 300;
/** Keep the race to the tls stack whatever other drivers are installed (QUIC and WebTransport are multistreaming). */
const TLS_ONLY = ['--prohibit', 'multistreaming'];
const cert = testCertificate({ kind: 'ec' });
const dir = mkdtempSync(join(tmpdir(), 'taps-cli-'));

async function run(...argv: string[]) {
  const io = bufferIO();
  const code = await main(argv, io);
  return { code, out: io.stdout, err: io.stderr };
}

/** The timeline row of the `driver` candidate for `endpoint`. */
function row(out: string, endpoint: string, driver = 'tls'): string {
  const timeline = out.slice(out.indexOf('race timeline'));
  const line = timeline.split('\n').find((l) => l.includes(` ${driver} ${endpoint} `));
  if (line === undefined) throw new Error(`no timeline row for ${endpoint} in:\n${out}`);
  return line;
}

describe('taps probe: race timeline', () => {
  let server: Server;
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  let port = 0;

  beforeAll(async () => {
    const tls = createTlsServer({ cert: cert.cert, key: cert.key });
    tls.on('secureConnection', (s) => s.on('error', () => {}));
    tls.on('tlsClientError', () => {});
    server = createServer((socket) => {
      sockets.add(socket);
      socket.on('error', () => {});
      socket.on('close', () => sockets.delete(socket));
      // Accept TCP now, speak TLS only after SLOW_MS: a slow candidate.
      const t = setTimeout(() => {
        timers.delete(t);
        tls.emit('connection', socket);
      }, SLOW_MS);
      timers.add(t);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    port = (server.address() as { port: number }).port;
  });

  afterAll(async () => {
    for (const t of timers) clearTimeout(t);
    for (const s of sockets) s.destroy();
    await new Promise((resolve) => server.close(resolve));
  });

  it('shows the refused IPv6 candidate failing at once and the slow IPv4 one winning', async () => {
    const { code, out, err } = await run('probe', `game.test:${port}`, '--resolve', 'game.test=::1,127.0.0.1', '--pin', cert.fingerprint256, ...TLS_ONLY);
    expect(err).toBe('');
    expect(code).toBe(0);
    const refused = row(out, `[::1]:${port}`);
    const slow = row(out, `127.0.0.1:${port}`);
    expect(refused).toMatch(/✗\s+failed/);
    expect(refused).toMatch(/ECONNREFUSED/);
    expect(slow).toMatch(/─●\s+won/);
    // Both bars on one axis: the refused one is a point, the slow one spans most of it.
    const bar = (line: string) => (line.match(/[├─●✗]+/g) ?? []).join('').length;
    expect(bar(slow)).toBeGreaterThan(bar(refused) + 10);
    expect(out.indexOf(`[::1]:${port}`)).toBeLessThan(out.indexOf(`127.0.0.1:${port}`));
    expect(out).toMatch(/candidate tree/);
    expect(out).toMatch(/tls \(tls\/tcp\)\s+ranked #1/);
    expect(out).toMatch(/ {2}unsuitable: \d+ stacks are unencrypted and security is required .*: tcp\b/);
    expect(out).toMatch(/AAAA game\.test → ::1/);
    expect(out).toMatch(new RegExp(`connected: c\\d+ tls/tcp to 127\\.0\\.0\\.1:${port}`));
  });

  it('prints the same race as data with --json', async () => {
    const { code, out } = await run('probe', `game.test:${port}`, '--resolve', 'game.test=::1,127.0.0.1', '--pin', cert.fingerprint256, ...TLS_ONLY, '--json');
    expect(code).toBe(0);
    const doc = JSON.parse(out) as { ok: boolean; exitCode: number; report: { winner: string; candidates: { id: string; driver: string; address?: string; fate: string; startedAt?: number; endedAt?: number; error?: { code: string; message: string }; rankReason?: string }[] } };
    expect(doc.ok).toBe(true);
    const tls = doc.report.candidates.filter((c) => c.driver === 'tls');
    const v6 = tls.find((c) => c.address === '::1')!;
    const v4 = tls.find((c) => c.address === '127.0.0.1')!;
    expect(v6).toMatchObject({ fate: 'failed', error: { code: 'ERR_TAPS_ESTABLISHMENT_FAILED' } });
    expect(v6.error!.message).toMatch(/ECONNREFUSED/);
    expect(v4.fate).toBe('won');
    expect(doc.report.winner).toBe(v4.id);
    expect(v4.startedAt!).toBeGreaterThanOrEqual(v6.endedAt!);
    expect(v4.endedAt! - v4.startedAt!).toBeGreaterThanOrEqual(SLOW_MS - 5); // the server waited that long before TLS
    expect(v4.rankReason).toMatch(/encrypted/);
  });

  it('shows a blackholed candidate cut off by the timeout, the refusal as the error, and exits 1', async () => {
    let hole: Blackhole | undefined;
    try {
      hole = await blackhole('127.0.0.1');
      const { code, out } = await run('probe', `game.test:${hole.port}`, '--resolve', 'game.test=::1,127.0.0.1', '--pin', cert.fingerprint256, ...TLS_ONLY, '--timeout', '400', '--ascii');
      expect(code).toBe(1);
      expect(row(out, `[::1]:${hole.port}`)).toMatch(/x\s+failed .*ECONNREFUSED/);
      const hung = row(out, `127.0.0.1:${hole.port}`);
      expect(hung).toMatch(/\|-+[ox]\s+(cancelled|failed)/);
      // Something definitive happened (::1 refused): that is the code, and the timeout that ended the rest is named.
      expect(out).toMatch(/not connected: ERR_TAPS_ESTABLISHMENT_FAILED: .*ECONNREFUSED.*timed out after 400 ms/);
    } finally {
      await hole?.close();
    }
  });
});

describe('taps probe: policy and arguments', () => {
  it('denies a non-loopback address by default without sending anything (exit 3)', async () => {
    const { code, out } = await run('probe', '192.0.2.10:443');
    expect(code).toBe(3);
    expect(row(out, '192.0.2.10:443')).toMatch(/denied .*no rule allows connect tls:\/\/192\.0\.2\.10:443/);
    expect(out).toMatch(/not connected: ERR_TAPS_POLICY_PROHIBITED/);
  });

  it('uses a policy file and tenant when given', async () => {
    const file = join(dir, 'probe.policy');
    writeFileSync(file, 'tenant acme\nallow tcp://@loopback:1\n');
    const { code, out } = await run('probe', '127.0.0.1:2', '--security', 'disabled', '--policy', file, '--tenant', 'acme');
    expect(code).toBe(3);
    expect(out).toMatch(/tenant acme \(policy /);
    expect(row(out, '127.0.0.1:2', 'tcp')).toMatch(/denied/);
  });

  it('rejects bad arguments with one line, a short usage and exit 2', async () => {
    for (const argv of [[], ['probe'], ['probe', 'a:1', '--bogus'], ['probe', 'a:1', '--prefer', 'teleportation'], ['probe', 'a:1', '--policy', 'x'], ['frobnicate'], ['policy', 'lint', 'x'], ['probe', 'a:1', '--timeout', '-3']]) {
      const { code, err } = await run(...argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(err).toMatch(/^taps-node: [^\n]+\nusage: taps-node probe /);
      expect(err.split('\n').length, argv.join(' ')).toBeLessThan(8);
    }
    const help = await run('--help');
    expect(help.code).toBe(0);
    expect(help.out).toMatch(/exit codes:/);
  });

  it('says which name was meant: options, commands, subcommands, values, property names', async () => {
    const cases: [string[], string][] = [
      [['probe', 'a:1', '--jsn'], 'unknown option --jsn (did you mean --json?)'],
      [['probe', 'a:1', '--timout', '5'], 'unknown option --timout (did you mean --timeout?)'],
      [['prob', 'a:1'], 'unknown command "prob" (did you mean probe?)'],
      [['policy', 'chek', 'x'], 'unknown policy subcommand "chek" (did you mean check?)'],
      [['probe', 'a:1', '--racing', 'staggerd'], '(did you mean staggered?)'],
      [['probe', 'a:1', '--prefer', 'multistreeming'], '(did you mean multistreaming?)'],
    ];
    for (const [argv, meant] of cases) {
      const { code, err } = await run(...argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(err.split('\n')[0], argv.join(' ')).toContain(meant);
    }
  });

  it('--version prints the version of the package', async () => {
    const { code, out } = await run('--version');
    expect(code).toBe(0);
    expect(out).toBe(`${(JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version}\n`);
  });

  it('sets the process exit code when run as a program', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'cli/taps.ts', 'probe', '--bogus'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    expect(code).toBe(2);
    expect(stderr).toMatch(/^taps-node: unknown option --bogus\n/);
  });
});

describe('taps policy check / explain', () => {
  const good = join(dir, 'good.policy');
  const broken = join(dir, 'broken.policy');
  const brokenJson = join(dir, 'broken.json');
  beforeAll(() => {
    writeFileSync(good, 'tenant acme\nallow tls://*.example.com:443\nlimit connections 5\n\ntenant globex\nmode audit\nallow tcp://@loopback:8080\n');
    writeFileSync(broken, 'tenant acme\nallow tcp://api.example.com:443\nallow tcp://b.example.com:7000-6000\n');
    writeFileSync(brokenJson, '{\n  "tenants": {\n    "acme": {\n      "allow": [\n        "tcp://a.example.com:443",\n        "tcp://10.0.0.1/8:5432"\n      ]\n    }\n  }\n}\n');
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('accepts a valid file (exit 0)', async () => {
    const { code, out } = await run('policy', 'check', good);
    expect(code).toBe(0);
    expect(out).toMatch(/ok, 2 tenants/);
    expect(out).toMatch(/acme: 1 allow, 0 deny, mode enforce, limits: connections 5/);
    expect(out).toMatch(/globex: 1 allow, 0 deny, mode audit/);
  });

  it('pinpoints the error in a broken text file: line, column and a caret (exit 4)', async () => {
    const { code, err } = await run('policy', 'check', broken);
    expect(code).toBe(4);
    expect(err).toMatch(/^broken\.policy:3:27: port range "7000-6000" is reversed/);
    const lines = err.split('\n');
    const src = lines.findIndex((l) => l.includes('3 | allow tcp://b.example.com:7000-6000'));
    expect(src).toBeGreaterThan(0);
    const caretLine = lines[src + 1]!;
    // The caret sits under column 27 of the source line: the start of the reversed range.
    expect(caretLine.indexOf('^') - caretLine.indexOf('|') - 2).toBe(26);
    expect(lines[src]!.slice(lines[src]!.indexOf('|') + 2)[26]).toBe('7');
  });

  it('reports every error in a file, each with its line, column and caret', async () => {
    const many = join(dir, 'many.policy');
    writeFileSync(many, 'tenant acme\nallow tcp://a.example.com:70000\nallow tcp://ok.example.com:443\nfrobnicate everything\n\ntenant acme\nallow tcp://b.example.com:7000-6000\nmode sometimes\n');
    const { code, err } = await run('policy', 'check', many);
    expect(code).toBe(4);
    const located = [...err.matchAll(/^many\.policy:(\d+):\d+: /gm)].map((m) => Number(m[1]));
    expect(located).toEqual([2, 4, 6, 7, 8]);
    expect(err).toMatch(/many\.policy: invalid \(5 errors\)/);
    const data = JSON.parse((await run('policy', 'check', many, '--json')).out) as { errors: { line: number }[] };
    expect(data.errors.map((e) => e.line)).toEqual([2, 4, 6, 7, 8]);
  });

  it('pins a JSON path error to its line and column', async () => {
    const { code, err } = await run('policy', 'check', brokenJson);
    expect(code).toBe(4);
    expect(err).toMatch(/^broken\.json:6:16: host bits are set after the prefix \(did you mean 10\.0\.0\.0\/8\?\)/);
    expect(err).toMatch(/\n {4}\| {16}\^\n/);
    expect(err).toMatch(/ {2}6 \| {9}"tcp:\/\/10\.0\.0\.1\/8:5432"/);
  });

  it('reports an unreadable file as exit 4, and --json output as data', async () => {
    expect((await run('policy', 'check', join(dir, 'missing.policy'))).code).toBe(4);
    const { code, out } = await run('policy', 'check', broken, '--json');
    expect(code).toBe(4);
    expect(JSON.parse(out)).toMatchObject({ ok: false, error: { line: 3, column: 27 } });
  });

  it('explains an allow with its rule (exit 0) and a deny with its code (exit 3)', async () => {
    const allowed = await run('policy', 'explain', good, 'acme', 'tls://api.example.com:443');
    expect(allowed.code).toBe(0);
    expect(allowed.out).toMatch(/connect tls:\/\/api\.example\.com:443\n {4}decision: ALLOW\n {4}rule: tls:\/\/\*\.example\.com:443/);
    expect(allowed.out).toMatch(/lookup api\.example\.com .*\n {4}decision: ALLOW/);
    const denied = await run('policy', 'explain', good, 'acme', 'tcp://api.example.com:443');
    expect(denied.code).toBe(3);
    expect(denied.out).toMatch(/decision: DENY \(no-match\)\n {4}rule: \(no rule: default deny\)\n {4}reason: no rule allows connect tcp:\/\/api\.example\.com:443/);
    const byAddress = await run('policy', 'explain', good, 'acme', 'tls://api.example.com:443', '--address', '10.1.1.1');
    expect(byAddress.code).toBe(3); // a name grant never covers a private address
  });

  it('shows audit mode: allowed, but the policy would deny', async () => {
    const { code, out } = await run('policy', 'explain', good, 'globex', '127.0.0.1:9');
    expect(code).toBe(0);
    expect(out).toMatch(/decision: ALLOW \(audit mode: the policy would deny\)/);
  });

  it('explains a tenant missing from the file as a no-policy denial', async () => {
    const { code, out } = await run('policy', 'explain', good, 'initech', '127.0.0.1:8080');
    expect(code).toBe(3);
    expect(out).toMatch(/no policy in the file \(tenants: acme, globex\)/);
    expect(out).toMatch(/DENY \(no-policy\)/);
    expect((await run('policy', 'explain', broken, 'acme', '127.0.0.1:1')).code).toBe(4);
  });
});
