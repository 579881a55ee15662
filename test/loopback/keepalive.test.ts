/**
 * keepAliveTimeout (RFC 9622 §8.1.4) and the keepAlive selection property
 * (§6.2.10) as the kernel sees them: a real TCP connection to a loopback
 * server, and the client socket's timer read from /proc/net/tcp (what the
 * kernel armed, not what the library believes it asked for).
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Connection } from '../../src/connection/connection.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { scopeFor } from '../helpers/policy.js';

const scope = scopeFor();
let server: Server;
let port = 0;
const accepted: Socket[] = [];

beforeAll(async () => {
  server = createServer((s) => {
    s.on('error', () => {}); // the client aborts with a reset
    accepted.push(s);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  port = (server.address() as { port: number }).port;
});
afterAll(async () => {
  for (const s of accepted) s.destroy();
  await new Promise<void>((r) => server.close(() => r()));
});

async function connect(properties = TransportProperties.reliableMessage()): Promise<Connection> {
  const pre = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, properties, security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()], drivers: [tcpDriver] });
  return pre.initiate();
}

/** `st` of an established socket in /proc/net/tcp (include/net/tcp_states.h). */
const ESTABLISHED = '01';

/** 127.0.0.1:port as /proc/net/tcp prints it (address in host byte order, port in hex). */
function loopbackHex(p: number): string {
  return `0100007F:${p.toString(16).toUpperCase().padStart(4, '0')}`;
}

/**
 * The kernel's timer on the client socket from /proc/net/tcp: `tr` is the
 * timer kind (2: keep-alive) and `tm->when` the time left in clock ticks
 * (USER_HZ, 100 a second on Linux); undefined when no timer is armed.
 * `ss -o` prints the same (its text format changes between versions).
 */
function kernelTimer(conn: Connection): { kind: number; seconds: number } | undefined {
  const local = loopbackHex(conn.local.port);
  const remote = loopbackHex(port);
  // Only this connection's row: the same local port can also be held by an
  // earlier socket in TIME_WAIT (state 06), whose timer is not ours.
  const row = readFileSync('/proc/net/tcp', 'utf8')
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .find((f) => f[1] === local && f[2] === remote && f[3] === ESTABLISHED);
  if (row === undefined) throw new Error(`no established socket ${local} -> ${remote} in /proc/net/tcp`);
  const [kind, when] = row[5]!.split(':') as [string, string];
  return kind === '00' ? undefined : { kind: parseInt(kind, 16), seconds: parseInt(when, 16) / 100 };
}

/** Seconds left on the keep-alive timer. */
function keepAliveSeconds(timer: { kind: number; seconds: number } | undefined): number {
  if (timer?.kind !== 2) throw new Error(`no keep-alive timer armed: ${JSON.stringify(timer)}`);
  return timer.seconds;
}

describe('keep-alive as the kernel arms it (/proc/net/tcp)', () => {
  it('keepAliveTimeout is milliseconds: 7000 arms a 7 s timer, 1500 rounds up to 2 s, Infinity disarms it', async () => {
    const conn = await connect();
    try {
      expect(kernelTimer(conn)).toBeUndefined(); // off by default
      conn.setProperty('keepAliveTimeout', 7000);
      const seven = keepAliveSeconds(kernelTimer(conn));
      conn.setProperty('keepAliveTimeout', 1500);
      const two = keepAliveSeconds(kernelTimer(conn));
      console.log(`kernel keep-alive timer: 7000 ms -> ${seven} s left, 1500 ms -> ${two} s left`);
      expect(seven).toBeGreaterThan(2); // not the 1.5 s one, nor 7000 s
      expect(seven).toBeLessThanOrEqual(7);
      expect(two).toBeGreaterThan(0);
      expect(two).toBeLessThanOrEqual(2);
      conn.setProperty('keepAliveTimeout', Infinity);
      expect(kernelTimer(conn)).toBeUndefined();
      expect(conn.getProperty('keepAliveTimeout')).toBe(Infinity);
    } finally {
      conn.abort();
    }
  });

  it("keepAlive 'require' turns it on at connect (the system's period), and a keepAliveTimeout then replaces the period", async () => {
    const conn = await connect(TransportProperties.reliableMessage().require('keepAlive'));
    try {
      const system = Number(execFileSync('sysctl', ['-n', 'net.ipv4.tcp_keepalive_time'], { encoding: 'utf8' }));
      const left = keepAliveSeconds(kernelTimer(conn));
      console.log(`keepAlive require: ${left} s left of the system's ${system} s`);
      expect(left).toBeGreaterThan(system - 60);
      expect(left).toBeLessThanOrEqual(system);
      conn.setProperty('keepAliveTimeout', 3000);
      expect(keepAliveSeconds(kernelTimer(conn))).toBeLessThanOrEqual(3);
    } finally {
      conn.abort();
    }
  });

  it('without keepAlive in the selection no timer is armed', async () => {
    const conn = await connect();
    try {
      expect(kernelTimer(conn)).toBeUndefined();
    } finally {
      conn.abort();
    }
  });
});
