/**
 * `taps-node probe --format svg|html|trace` on a real race, and the pictures
 * checked the way a person would see them: rendered by headless Chromium
 * (Debian's), the screenshot must not be blank and must show one bar per
 * candidate that started, in its fate's colour; the bars are also counted in
 * the DOM Chromium built (`--dump-dom`). The trace must be Trace Event JSON
 * with one complete event per started candidate.
 *
 * The race: a name resolving (through `--resolve`) to ::1, 127.0.0.1 and
 * 127.0.0.2 on one port, TLS only. Nothing listens on [::1]:P (refused:
 * failed); 127.0.0.1:P accepts TCP and never speaks TLS (still connecting when
 * another wins: cancelled); 127.0.0.2:P is a real TLS server (won), started
 * one attempt delay (100 ms) after 127.0.0.1.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { main } from '../cli/main.js';
import { bufferIO } from '../cli/output.js';
import { FATE_COLOURS } from '../cli/waterfall.js';
import { testCertificate } from './helpers/certs.js';
import { readPng } from './helpers/png.js';

const run = promisify(execFile);
const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = existsSync(CHROMIUM);
if (!HAVE_CHROMIUM) console.warn(`SKIPPED: the waterfall rendering tests need headless Chromium at ${CHROMIUM} (apt-get install chromium)`);

const cert = testCertificate({ kind: 'ec', names: ['race.test', '127.0.0.2'] });
const dir = mkdtempSync(join(tmpdir(), 'taps-waterfall-'));
const caFile = join(dir, 'ca.pem');
writeFileSync(caFile, cert.cert);

let silent: Server;
let tls: TlsServer;
const sockets = new Set<Socket>();
let port = 0;
const outputs: Record<'svg' | 'html' | 'trace', string> = { svg: '', html: '', trace: '' };

async function probe(format: string): Promise<string> {
  const io = bufferIO();
  const code = await main(['probe', `race.test:${port}`, '--resolve', 'race.test=::1,127.0.0.1,127.0.0.2', '--ca', caFile, '--attempt-delay', '100', '--prohibit', 'multistreaming', '--format', format], io);
  expect(code, io.stderr).toBe(0);
  return io.stdout;
}

beforeAll(async () => {
  silent = createServer((s) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
  port = (silent.address() as { port: number }).port;
  tls = createTlsServer({ cert: cert.cert, key: cert.key }, (s) => s.on('error', () => {}));
  tls.on('tlsClientError', () => {});
  await new Promise<void>((resolve, reject) => tls.once('error', reject).listen(port, '127.0.0.2', resolve));
  for (const f of ['svg', 'html', 'trace'] as const) outputs[f] = await probe(f);
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => silent.close(r));
  await new Promise((r) => tls.close(r));
  rmSync(dir, { recursive: true, force: true });
});

/** The started candidates of the race, from the trace (id → fate). */
function startedFromTrace(): Map<string, string> {
  const t = JSON.parse(outputs.trace) as { traceEvents: { ph: string; cat?: string; args?: { candidate?: string; fate?: string } }[] };
  return new Map(t.traceEvents.filter((e) => e.ph === 'X' && e.cat === 'candidate').map((e) => [e.args!.candidate!, e.args!.fate!]));
}

describe('probe --format trace', () => {
  it('is Trace Event JSON: a named track and a complete event per started candidate, attempt delays as instants', () => {
    const t = JSON.parse(outputs.trace) as { traceEvents: { name: string; ph: string; ts?: number; dur?: number; cat?: string; args?: Record<string, unknown> }[]; displayTimeUnit: string };
    expect(t.displayTimeUnit).toBe('ms');
    const started = startedFromTrace();
    console.log(`trace: ${[...started].map(([id, fate]) => `${id} ${fate}`).join(', ')}`);
    expect([...started.values()].sort()).toEqual(['cancelled', 'failed', 'won']);
    for (const e of t.traceEvents.filter((x) => x.ph === 'X')) {
      expect(e.ts).toBeGreaterThanOrEqual(0);
      expect(e.dur).toBeGreaterThanOrEqual(0);
    }
    expect(t.traceEvents.filter((e) => e.ph === 'M' && e.name === 'thread_name').length).toBeGreaterThanOrEqual(3 + 2); // 3 candidates, AAAA and A
    expect(t.traceEvents.some((e) => e.ph === 'i' && e.name === 'attempt delay ended')).toBe(true);
  });
});

describe.skipIf(!HAVE_CHROMIUM)('probe --format svg|html in headless Chromium', () => {
  const flags = (profile: string): string[] => [
    '--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync',
    `--user-data-dir=${join(dir, profile)}`, '--force-device-scale-factor=1', '--hide-scrollbars',
  ];

  async function screenshot(file: string, size: string): Promise<ReturnType<typeof readPng>> {
    const png = `${file}.png`;
    await run(CHROMIUM, [...flags(`shot-${size}-${file.endsWith('svg') ? 'svg' : 'html'}`), `--screenshot=${png}`, `--window-size=${size}`, `file://${file}`], { timeout: 60_000 });
    return readPng(readFileSync(png));
  }

  async function domBars(file: string): Promise<string[]> {
    const { stdout } = await run(CHROMIUM, [...flags(`dom-${file.endsWith('svg') ? 'svg' : 'html'}`), '--dump-dom', `file://${file}`], { timeout: 60_000, maxBuffer: 16 * 1024 * 1024 });
    return [...stdout.matchAll(/class="bar fate-([a-z]+)" data-candidate="(c\d+)"/g)].map((m) => `${m[2]} ${m[1]}`).sort();
  }

  /** Horizontal bands of pixels in exactly `colour`, within the plot area (not the legend below it). */
  function bands(img: ReturnType<typeof readPng>, colour: string, plotBottom: number): number {
    const want = [1, 3, 5].map((i) => parseInt(colour.slice(i, i + 2), 16));
    let count = 0;
    let inBand = false;
    for (let y = 0; y < Math.min(img.height, plotBottom); y++) {
      let hits = 0;
      for (let x = 300; x < Math.min(img.width, 940); x++) {
        const p = img.pixel(x, y);
        if (p[0] === want[0] && p[1] === want[1] && p[2] === want[2]) hits++;
      }
      const row = hits >= 3;
      if (row && !inBand) count++;
      inBand = row;
    }
    return count;
  }

  function notBlank(img: ReturnType<typeof readPng>): number {
    const seen = new Set<string>();
    for (let y = 0; y < img.height; y += 3) for (let x = 0; x < img.width; x += 3) seen.add(img.pixel(x, y).join(','));
    return seen.size;
  }

  it('the SVG renders with one bar per started candidate, coloured by fate (screenshot and DOM)', async () => {
    const file = join(dir, 'race.svg');
    writeFileSync(file, outputs.svg);
    const expected = [...startedFromTrace()].map(([id, fate]) => `${id} ${fate}`).sort();
    expect(await domBars(file)).toEqual(expected);
    const height = Number(/height="(\d+)"/.exec(outputs.svg)![1]);
    const img = await screenshot(file, `1100,${height + 20}`);
    const colours = notBlank(img);
    const seen = { won: bands(img, FATE_COLOURS.won, height - 34), failed: bands(img, FATE_COLOURS.failed, height - 34), cancelled: bands(img, FATE_COLOURS.cancelled, height - 34) };
    console.log(`svg screenshot ${img.width}x${img.height}: ${colours} distinct colours; bars seen ${JSON.stringify(seen)}`);
    expect(colours).toBeGreaterThan(5);
    expect(seen).toEqual({ won: 1, failed: 1, cancelled: 1 });
  }, 120_000);

  it('the HTML page renders the same bars and a table of every candidate', async () => {
    const file = join(dir, 'race.html');
    writeFileSync(file, outputs.html);
    const expected = [...startedFromTrace()].map(([id, fate]) => `${id} ${fate}`).sort();
    expect(await domBars(file)).toEqual(expected);
    const img = await screenshot(file, '1200,900');
    expect(notBlank(img)).toBeGreaterThan(5);
    // The SVG sits below the page's heading: bars are found within the page's first 600 px.
    const seen = { won: bands(img, FATE_COLOURS.won, 600), failed: bands(img, FATE_COLOURS.failed, 600), cancelled: bands(img, FATE_COLOURS.cancelled, 600) };
    expect(seen.won + seen.failed + seen.cancelled).toBeGreaterThanOrEqual(3);
    expect(outputs.html).toMatch(/<tr class="fate-won"><td>c\d+<\/td><td>tls\/tcp<\/td><td>127\.0\.0\.2:\d+<\/td>/);
  }, 120_000);
});
