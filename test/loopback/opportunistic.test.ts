/**
 * Opportunistic security against a plaintext peer that accepts TCP and says
 * nothing (RFC 9621 §3.3, RFC 9622 §6.3): the TLS handshake times out, and
 * only then does the unencrypted group start and win.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { TapsError } from '../../src/errors.js';
import { lengthPrefixFramer } from '../../src/framers/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { tcpDriver } from '../../transports/tcp/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { silentTcpServer, type SilentServer } from '../helpers/fault-relay.js';
import { checked, connectAttempt, scopeFor } from '../helpers/policy.js';

const scope = scopeFor();
let server: SilentServer | undefined;
afterEach(async () => {
  await server?.close();
  server = undefined;
});

function preconnection(port: number, tls: Record<string, unknown>): Preconnection {
  return new Preconnection({
    scope,
    remote: { ipAddress: '127.0.0.1', port },
    properties: TransportProperties.reliableMessage(),
    security: SecurityParameters.opportunistic(),
    framers: [lengthPrefixFramer()],
    drivers: [tlsDriver, tcpDriver],
    driverOptions: { tls },
  });
}

describe('opportunistic security against a silent plaintext peer', () => {
  it('the TLS handshake times out (ERR_TAPS_TIMEOUT), then plain TCP is tried and wins', async () => {
    server = await silentTcpServer('127.0.0.1');
    const started = performance.now();
    const conn = await preconnection(server.port, { handshakeTimeout: 200 }).initiate();
    try {
      const fates = conn.report.candidates.map((c) => `${c.stack.join('/')} ${c.fate}${c.error ? ` ${(c.error as TapsError).code}` : ''}`);
      console.log(`fell back to ${conn.stack.join('/')} after ${(performance.now() - started).toFixed(0)} ms: ${fates.join(', ')}`);
      expect(conn.stack).toEqual(['tcp']);
      expect(fates).toEqual(['tls/tcp failed ERR_TAPS_TIMEOUT', 'tcp won']);
      const tls = conn.report.candidates[0]!;
      expect(tls.error?.message).toMatch(/did not finish within 200 ms: the peer sent nothing/);
      expect(server.accepted).toBe(2); // the TLS attempt's connection, then the plain one
      expect(server.received).toBeGreaterThan(0); // the ClientHello went out and was never answered
    } finally {
      conn.abort();
    }
  });

  it('handshakeTimeout must be a positive number of ms: the tls attempt throws a RangeError before any I/O', async () => {
    server = await silentTcpServer('127.0.0.1');
    const target = await checked(scope, { protocol: 'tls', address: '127.0.0.1', port: server.port });
    const attempt = connectAttempt(scope, target, { security: SecurityParameters.opportunistic(), options: { handshakeTimeout: 0 } });
    await expect(tlsDriver.connect(attempt)).rejects.toThrow(/options.handshakeTimeout must be a positive number of ms/);
    expect(server.accepted).toBe(0);
  });
});
