/**
 * Every example runs, ends by itself and prints what it is meant to show, so
 * the examples never rot. Each runs as its own process (`tsx examples/X.ts`,
 * what `npm run example:<name>` does) with short-duration settings.
 */
import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';

const TSX = 'node_modules/.bin/tsx';
const HANG_MS = 120_000;

interface Run {
  readonly code: number | null;
  readonly out: string;
  readonly err: string;
}

function run(file: string, args: readonly string[] = [], env: Record<string, string> = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(TSX, [file, ...args], { env: { ...process.env, ...env, NODE_DEBUG: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    // A bound against a hang, not a speed expectation (each example runs in a few seconds when the machine is idle).
    const timer = setTimeout(() => child.kill('SIGKILL'), HANG_MS);
    child.once('error', (e) => (clearTimeout(timer), reject(e)));
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

/** The text of the section whose `── ` heading contains `title`. */
function section(out: string, title: string): string {
  const parts = out.split('── ');
  const hit = parts.find((p) => p.startsWith(title) || p.split('\n')[0]!.includes(title));
  if (hit === undefined) throw new Error(`no section "${title}" in:\n${out}`);
  return hit;
}

describe('examples', { timeout: HANG_MS + 10_000 }, () => {
  it('demo', async () => {
    const r = await run('examples/demo.ts');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/message echo over quic and tls on localhost/);
    // The server listens on both loopbacks (localhost is ::1 and 127.0.0.1): IPv6 is ranked first (RFC 8305).
    // Defaults: QUIC is not raced blind, TLS is ranked first; preferred explicitly, QUIC is. Which one wins is a
    // race (on a busy machine the second starts after the attempt delay and may win): one wins, the echo returns.
    const ranked = (text: string): string[] => [...text.matchAll(/c\d+ ([\w/]+) (\[::1\]|127\.0\.0\.1):\d+ (\w+)/g)].map((m) => `${m[1]} ${m[2]}`);
    const wins = (text: string): number => text.match(/:\d+ won @/g)?.length ?? 0;
    const byDefault = section(r.out, 'reliable-message to localhost');
    expect(ranked(byDefault)).toEqual(['tls/tcp [::1]', 'tls/tcp 127.0.0.1', 'quic/udp [::1]', 'quic/udp 127.0.0.1']);
    expect(wins(byDefault)).toBe(1);
    expect(byDefault).toMatch(/got "echo: hello over whatever won"/);
    const preferred = section(r.out, 'reliable-message, multistreaming preferred');
    expect(ranked(preferred)).toEqual(['quic/udp [::1]', 'quic/udp 127.0.0.1', 'tls/tcp [::1]', 'tls/tcp 127.0.0.1']);
    expect(wins(preferred)).toBe(1);
    expect(preferred).toMatch(/got "echo: hello over QUIC"/);
    expect(r.out).toMatch(/udp 127\.0\.0\.1:\d+ won/);
    expect(r.out).toMatch(/ERR_TAPS_POLICY_PROHIBITED/);
    expect(r.out).toMatch(/done\.\n$/);
  });

  it('quick-start: the README snippet reaches a TLS echo by name under a policy', async () => {
    const r = await run('examples/quick-start.ts');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/tls\/tcp 127\.0\.0\.1:\d+ won/);
    expect(r.out).toMatch(/\nhello\n$/);
  });

  it('properties: the winner of each case and why the others lost', async () => {
    const r = await run('examples/properties.ts');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    const reliable = section(r.out, '1. reliable message');
    expect(reliable).toMatch(/won: tls \(tls\/tcp\) 127\.0\.0\.1:\d+/);
    expect(reliable).toMatch(/tcp\s+unsuitable: tcp is unencrypted and security is required/);
    expect(reliable).toMatch(/udp\s+unsuitable: udp is unencrypted/);
    expect(reliable).toMatch(/echo: "hello over tls\/tcp"/);
    const datagram = section(r.out, '2. unreliable datagram');
    expect(datagram).toMatch(/won: udp \(udp\)/);
    expect(datagram).toMatch(/tls\s+unsuitable: tls is encrypted and security is disabled/);
    expect(datagram).toMatch(/echo: "hello over udp"/);
    const streams = section(r.out, '3. multistreaming preferred');
    expect(streams).toMatch(/won: https2 \(h2\/tls\/tcp\).*prefers met: multistreaming/);
    expect(streams).toMatch(/https\s+not attempted 127\.0\.0\.1:\d+: ranked below the winner \(.*prefers missed: multistreaming/);
    expect(streams).toMatch(/echo: "hello over h2\/tls\/tcp"/);
    const clear = section(r.out, '4. encryption prohibited');
    expect(clear).toMatch(/won: tcp \(tcp\)/);
    expect(clear).toMatch(/echo: "hello over tcp"/);
    expect(section(r.out, '5. a pinned certificate →')).toMatch(/won: tls \(tls\/tcp\)[^]*echo: "hello over tls\/tcp"/);
    expect(section(r.out, '6. a pinned certificate that does not match')).toMatch(/tls\s+failed 127\.0\.0\.1:\d+: the server certificate .* matches no pinned certificate/);
    expect(section(r.out, '7. reliable message at a WebSocket URL')).toMatch(/won: wss \(websocket\/tls\/tcp\)[^]*echo: "hello over websocket\/tls\/tcp"/);
    expect(r.out).toMatch(/done\.\n$/);
  });

  it('game-udp: 60 Hz datagram updates and reliable inputs on one encrypted QUIC connection, through a lossy relay', async () => {
    const r = await run('examples/game-udp.ts', ['--duration', '0.6', '--loss', '0.2', '--delay', '5', '--jitter', '5'], { GAME_CLIENTS: '2' });
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/2 clients, 60 Hz, 0\.6 s/);
    expect(r.out).toMatch(/relay on udp \[::1\]:(\d+) \(loss 20%, delay 5±5 ms\)/);
    expect(r.out).toMatch(/server: quic-dgram on udp 127\.0\.0\.1:(\d+); relay on udp \[::1\]:\1/);
    expect(r.out).toMatch(/clients' policy \(tenant game\): allow quic:\/\/@loopback:(\d+)\n/);
    expect(r.out).toMatch(/a client asking for port \d+: ERR_TAPS_POLICY_PROHIBITED/);
    expect(r.out).toMatch(/one connection over quic-dgram\/quic\/udp \(encrypted, server authenticated\)/);
    expect(r.out).toMatch(/updates: datagrams \(reliability false, preserveOrder false, at most \d+ bytes\); inputs: msgReliable on its stream/);
    for (const id of [1, 2]) {
      const m = new RegExp(`client ${id}: ([\\d.]+) updates/s · sent (\\d+), on time (\\d+), late (\\d+) \\(dropped as stale\\), lost (\\d+) \\([\\d.]+%\\), out of order (\\d+) · inputs sent (\\d+), applied (\\d+)`).exec(r.out);
      expect(m, r.out).not.toBeNull();
      const [, , sent, onTime, late, lost, outOfOrder, inputsSent, applied] = m!.map(Number) as number[];
      expect(onTime).toBeGreaterThan(0);
      expect(onTime! + late! + lost!).toBe(sent);
      expect(outOfOrder).toBe(0);
      // Inputs are reliable: every one sent during the match reached the server, through the same 20% loss.
      expect(applied).toBe(inputsSent);
    }
    expect(r.out).toMatch(/total over [\d.]+ s · \d+ sent, \d+ on time, \d+ late, \d+ lost · relay dropped \d+, forwarded \d+ · expired by msgLifetime \d+/);
  });

  it('multi-tenant: allowed, denied with its record, audit, quota, claims and hot reload', async () => {
    const r = await run('examples/multi-tenant.ts');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(section(r.out, '1. acme → A')).toMatch(/✓ connected over tcp; record #\d+: tenant acme, connect tcp:\/\/127\.0\.0\.1:\d+ → allow/);
    const denied = section(r.out, '2. acme → B');
    expect(denied).toMatch(/decision record: \{"id":\d+,"tenant":"acme".*"allow":false,"code":"no-match"/);
    expect(denied).toMatch(/✗ ERR_TAPS_POLICY_PROHIBITED/);
    expect(section(r.out, '3. globex → A')).toMatch(/✓ connected .* → allow, rule tcp:\/\/@loopback:\d+, mode audit, .*granted by the JWT/);
    const audit = section(r.out, '4. globex → B');
    expect(audit).toMatch(/✓ connected .* → deny \(no-match\), rule none, mode audit/);
    expect(audit).toMatch(/reason "audit: would deny \(no-match\)/);
    expect(section(r.out, '5. globex → A again')).toMatch(/✗ ERR_TAPS_QUOTA_EXCEEDED: tenant globex already holds 2 connections \(limit 2\)/);
    expect(section(r.out, "6. acme presents globex's token")).toMatch(/✗ ERR_TAPS_POLICY_PROHIBITED: .*"sub"/);
    const reload = section(r.out, '7. hot reload');
    expect(reload).toMatch(/reloaded: host revision \d+/);
    expect(reload).toMatch(/acme's live connection to A: ERR_TAPS_POLICY_PROHIBITED: .*revision \d+ forbids this connection/);
    expect(reload).toMatch(/✓ acme → B now connects/);
    expect(reload).toMatch(/acme → A after the reload: ERR_TAPS_POLICY_PROHIBITED/);
  });

  it('wasm-guest: the same module bound to two tenants gets different answers', async () => {
    const r = await run('examples/wasm-guest.ts');
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/compiled guest\.wat: \d+ bytes; imports arg, connect, send, close, log/);
    expect(r.out).toMatch(/\[guest#1\] service A says: hello from a wasm guest/);
    expect(r.out).toMatch(/\[guest#1\] connection 2 failed: ERR_TAPS_POLICY_PROHIBITED/);
    expect(r.out).toMatch(/\[guest#2\] service B says: hello from a wasm guest/);
    expect(r.out).toMatch(/\[guest#2\] connection 1 failed: ERR_TAPS_POLICY_PROHIBITED/);
    expect(r.out).not.toMatch(/\[guest#1\] service B|\[guest#2\] service A/);
  });
});
