/**
 * The name a connection presents (TLS SNI, the certificate check, HTTP Host)
 * is the checked name, or a `security.serverName` override the tenant may
 * reach as a name: an override it may not reach denies the candidate and no
 * ClientHello carries it. Against real TLS listeners on loopback that record
 * the server name of every ClientHello they see, on the `tls` and `https`
 * stacks, through a Host scope and a createScope scope.
 */
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import { createServer as createTlsServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Driver } from '../../src/driver.js';
import { EstablishmentError } from '../../src/errors.js';
import type { NetworkScope } from '../../src/network.js';
import { createScope, Host, type PolicyRequest } from '../../src/policy/index.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import { httpsDriver } from '../../transports/http/index.js';
import { tlsDriver } from '../../transports/tls/index.js';
import { testCertificate } from '../helpers/certs.js';
import { fakeResolver } from '../helpers/resolver.js';

const cert = testCertificate({ names: ['api.test', 'other.test', 'internal.svc'], issuer: 'ca' });
interface Seen { names: (string | undefined)[]; server: TlsServer | HttpsServer; port: number }
let tlsSeen: Seen;
let httpsSeen: Seen;

function record(server: TlsServer | HttpsServer): Seen {
  const seen: Seen = { names: [], server, port: 0 };
  // Every ClientHello, whether or not the handshake then succeeds.
  server.on('secureConnection', (s: TLSSocket) => void s.on('error', () => {}));
  server.on('tlsClientError', () => {});
  return seen;
}

beforeAll(async () => {
  const sni = (seen: () => Seen) => (name: string, cb: (err: Error | null) => void) => {
    seen().names.push(name || undefined);
    cb(null);
  };
  const t = createTlsServer({ key: cert.key, cert: cert.cert, SNICallback: sni(() => tlsSeen) }, (s) => s.end('hi'));
  tlsSeen = record(t);
  const h = createHttpsServer({ key: cert.key, cert: cert.cert, SNICallback: sni(() => httpsSeen) }, (_req, res) => res.end('hi'));
  httpsSeen = record(h);
  for (const s of [tlsSeen, httpsSeen]) {
    await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r));
    s.port = (s.server.address() as { port: number }).port;
  }
});

afterAll(async () => {
  for (const s of [tlsSeen, httpsSeen]) await new Promise<void>((r) => { s.server.close(() => r()); (s.server as HttpsServer).closeAllConnections?.(); });
});

const resolver = fakeResolver({ 'api.test': { v4: ['127.0.0.1'] }, 'other.test': { v4: ['127.0.0.1'] }, 'internal.svc': { v4: ['127.0.0.1'] } });

async function scopesFor(rules: string): Promise<NetworkScope[]> {
  const host = new Host({ resolver });
  const id = `sni${Math.random().toString(36).slice(2, 8)}`;
  host.setPolicy(id, rules);
  const h = await host.tenant(id);
  const b = createScope({ tenant: id, policy: { decide: (r: PolicyRequest) => h.guard.decideSync(r) }, resolver });
  return [h, b];
}

async function attempt(scope: NetworkScope, driver: Driver, port: number, remote: Record<string, unknown>, serverName?: string): Promise<string> {
  // No resumption: every connection shows its ClientHello to the server's SNI callback.
  const security = new SecurityParameters({ ca: cert.caCert!, sessionCacheLimit: 0, ...(serverName ? { serverName } : {}) });
  const properties = driver === tlsDriver ? TransportProperties.reliableInorderStream() : TransportProperties.reliableMessage();
  const scheme = driver === tlsDriver ? {} : { scheme: 'https' };
  const pre = new Preconnection({ scope, remote: { ...remote, ...scheme, port }, properties, security, drivers: [driver] });
  try {
    const conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
    const won = conn.report.candidates.find((c) => c.fate === 'won');
    conn.abort();
    return `connected as ${won?.hostName}`;
  } catch (err) {
    if (err instanceof EstablishmentError && err.code === 'ERR_TAPS_POLICY_PROHIBITED') return 'denied';
    return `failed: ${(err as Error).message}`;
  }
}

describe('SNI and the certificate name are names the tenant reaches', () => {
  for (const [label, driver, seen] of [['tls', tlsDriver, () => tlsSeen], ['https', httpsDriver, () => httpsSeen]] as const) {
    it(`${label}: an override the tenant may not reach as a name is refused; no ClientHello carries it`, async () => {
      const s = seen();
      // Only api.test is granted as a name; the loopback address itself is granted too (so only the name decides).
      for (const scope of await scopesFor(`allow ${driver.protocol}://api.test:${s.port}\nallow ${driver.protocol}://@loopback:${s.port}`)) {
        s.names.length = 0;
        expect(await attempt(scope, driver, s.port, { hostName: 'api.test' }, 'internal.svc')).toBe('denied');
        expect(await attempt(scope, driver, s.port, { ipAddress: '127.0.0.1' }, 'internal.svc')).toBe('denied');
        expect(s.names).toEqual([]);
        // Without an override, the checked name goes out.
        expect(await attempt(scope, driver, s.port, { hostName: 'api.test' })).toBe('connected as api.test');
        expect(s.names).toEqual(['api.test']);
      }
    });

    it(`${label}: an override the tenant may reach as a name is used for SNI and the certificate`, async () => {
      const s = seen();
      for (const scope of await scopesFor(`allow ${driver.protocol}://api.test:${s.port}\nallow ${driver.protocol}://other.test:${s.port}\nallow ${driver.protocol}://@loopback:${s.port}`)) {
        s.names.length = 0;
        expect(await attempt(scope, driver, s.port, { hostName: 'api.test' }, 'other.test')).toBe('connected as other.test');
        expect(s.names).toEqual(['other.test']);
      }
    });
  }

  it('the guard refuses to mint a target presenting a name the tenant may not reach, whoever asks', async () => {
    for (const scope of await scopesFor(`allow tls://@loopback:${tlsSeen.port}`)) {
      await expect(scope.guard.authorize({ use: 'connect', protocol: 'tls', address: '127.0.0.1', port: tlsSeen.port, hostName: 'internal.svc' })).rejects.toMatchObject({
        code: 'ERR_TAPS_POLICY_PROHIBITED',
      });
      // localhost: the @loopback preset grants its lookup, so it may be presented.
      await expect(scope.guard.authorize({ use: 'connect', protocol: 'tls', address: '127.0.0.1', port: tlsSeen.port, hostName: 'localhost' })).resolves.toMatchObject({ hostName: 'localhost' });
    }
  });
});
