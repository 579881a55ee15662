/**
 * `npm run example:multi-tenant` — a host runs guest code for two tenants
 * with different policies (docs/policy.md), all on loopback:
 *
 * - acme's policy comes from a policy file the host watches;
 * - globex's rules are granted by a JWT its issuer signed (verified with
 *   jose against the key the host trusts), under a policy in audit mode
 *   with a connection limit.
 *
 * It shows an allowed connection, a denied one with its decision record,
 * audit mode letting a would-be denial through (and recording it), a quota
 * being hit, a token presented by the wrong tenant, and a hot reload that
 * revokes a live connection the new revision forbids.
 *
 * The guest code (`guest()` below) receives only a scope: nothing it passes
 * can name or change its tenant.
 */
import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SignJWT } from 'jose';
import {
  Host, Preconnection, SecurityParameters, TransportProperties, isTapsError, lengthPrefixFramer,
  type Connection, type DecisionRecord, type Listener, type NetworkScope, type ReloadEvent,
} from '../src/index.js';
import { say } from './lib/report.js';

const ISSUER = 'https://issuer.example';
const issuerKey = generateKeyPairSync('ed25519');
const records: DecisionRecord[] = [];
const reloads: ((e: ReloadEvent) => void)[] = [];
const host = new Host({
  trustedIssuers: [{ issuer: ISSUER, keys: issuerKey.publicKey }],
  onDecision: (r) => records.push(r),
  onReload: (e) => reloads.shift()?.(e),
  reloadDebounceMs: 20,
});

// ── two echo services run by the host itself (tenant "ops") ──────────────
host.setPolicy('ops', 'allow bind:tcp://@loopback:*\nallow accept:tcp://@loopback:*');
const ops = await host.tenant('ops');
const accepted = new Set<Connection>();
async function echoService(): Promise<Listener> {
  const l = await new Preconnection({ scope: ops, local: { ipAddress: '127.0.0.1', port: 0 }, ...framed() }).listen();
  l.on('connectionReceived', (c) => {
    accepted.add(c);
    void (async () => {
      for await (const m of c) await c.send(m.data);
      await c.close();
    })().catch(() => {});
  });
  return l;
}
function framed() {
  return { properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()] };
}
const A = await echoService();
const B = await echoService();

// ── the tenants' policies ─────────────────────────────────────────────────
const dir = mkdtempSync(join(tmpdir(), 'taps-multi-tenant-'));
const policyFile = join(dir, 'tenants.policy');
writeFileSync(policyFile, `tenant acme\nallow tcp://@loopback:${A.port}\nlimit connections 5\n`);
await host.loadPolicyFile(policyFile, { watch: true });
host.setPolicy('globex', 'mode audit\nlimit connections 2');
const globexToken = await new SignJWT({ taps: { allow: [`tcp://@loopback:${A.port}`] } })
  .setProtectedHeader({ alg: 'EdDSA' })
  .setIssuer(ISSUER)
  .setSubject('globex')
  .setExpirationTime('5m')
  .sign(issuerKey.privateKey);
say(`services: A on 127.0.0.1:${A.port}, B on 127.0.0.1:${B.port}`);
say(`acme    (file ${policyFile}): allow tcp://@loopback:${A.port}, limit connections 5`);
say(`globex  (setPolicy + signed claims): mode audit, limit connections 2; the JWT from ${ISSUER} grants tcp://@loopback:${A.port}\n`);

// ── guest code: it gets a scope, never a tenant name ──────────────────────
const open: Connection[] = [];
async function guest(scope: NetworkScope, port: number): Promise<Connection> {
  const conn = await new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, ...framed() }).initiate({ timeout: 2000 });
  open.push(conn);
  await conn.send('ping');
  await conn.receive({ signal: AbortSignal.timeout(2000) });
  return conn;
}

const lastConnect = (): DecisionRecord | undefined => records.filter((r) => r.use === 'connect').at(-1);
const brief = (r: DecisionRecord | undefined): string =>
  r ? `record #${r.id}: tenant ${r.tenant}, ${r.use} ${r.protocol}://${r.address}:${r.port} → ${r.allow ? 'allow' : `deny (${r.code})`}, rule ${r.rule ?? 'none'}, mode ${r.mode}, revision ${r.revision}` : '(no record)';

async function step(title: string, run: () => Promise<unknown>): Promise<void> {
  say(`── ${title}`);
  try {
    await run();
  } catch (err) {
    if (!isTapsError(err)) throw err;
    say(`   ✗ ${err.code}: ${err.message}`);
  }
  say();
}

const acme = await host.tenant('acme');
const globex = await host.tenant('globex', { claims: globexToken });

let acmeToA: Connection | undefined;
await step('1. acme → A: allowed', async () => {
  acmeToA = await guest(acme, A.port);
  say(`   ✓ connected over ${acmeToA.stack.join('/')}; ${brief(lastConnect())}`);
});

await step('2. acme → B: denied, with its decision record', async () => {
  try {
    await guest(acme, B.port);
  } finally {
    const r = lastConnect();
    if (r) {
      const { request: _r, decision: _d, ...record } = r;
      say(`   decision record: ${JSON.stringify(record)}`);
    }
  }
});

await step('3. globex → A: allowed by its signed claims', async () => {
  const c = await guest(globex, A.port);
  say(`   ✓ connected over ${c.stack.join('/')}; ${brief(lastConnect())} (the rule granted by the JWT)`);
  say(`   claims: issuer ${globex.claims?.issuer}, subject ${globex.claims?.subject}, expires ${new Date(globex.claims?.expiresAt ?? 0).toISOString()}`);
});

await step('4. globex → B: audit mode lets it through and records the would-be denial', async () => {
  const c = await guest(globex, B.port);
  const r = lastConnect();
  say(`   ✓ connected over ${c.stack.join('/')}; ${brief(r)}`);
  say(`   the scope's decision: allow, reason "${c.report.candidates.find((x) => x.id === c.report.winner)?.decision?.reason}"`);
});

await step('5. globex → A again: the quota (limit connections 2) is hit', async () => {
  await guest(globex, A.port);
});

await step("6. acme presents globex's token: refused (the token names its tenant)", async () => {
  await host.tenant('acme', { claims: globexToken });
});

await step('7. hot reload: acme\'s file now allows B instead of A', async () => {
  const revoked = new Promise<string>((resolve) => acmeToA?.once('connectionError', (e) => resolve(`${e.code}: ${e.message}`)));
  const reloaded = new Promise<ReloadEvent | undefined>((resolve) => {
    reloads.push(resolve);
    setTimeout(() => resolve(undefined), 3000).unref();
  });
  writeFileSync(policyFile, `tenant acme\nallow tcp://@loopback:${B.port}\nlimit connections 5\n`);
  let event = await reloaded;
  if (event === undefined) {
    say('   (the file watcher did not fire here: reloading by hand)');
    event = { path: policyFile, revision: await host.loadPolicyFile(policyFile) };
  }
  if (event.error) throw event.error;
  say(`   reloaded: host revision ${event.revision}, tenants ${event.tenants?.join(', ') ?? 'acme'}`);
  say(`   acme's live connection to A: ${await revoked}`);
  const c = await guest(acme, B.port);
  say(`   ✓ acme → B now connects; ${brief(lastConnect())}`);
  try {
    await guest(acme, A.port);
  } catch (err) {
    say(`   acme → A after the reload: ${isTapsError(err) ? err.code : String(err)}; ${brief(lastConnect())}`);
  }
});

// ── shutdown ──────────────────────────────────────────────────────────────
for (const c of [...open, ...accepted]) c.abort();
await A.stop();
await B.stop();
host.close();
rmSync(dir, { recursive: true, force: true });
say(`${records.length} decision records in all.`);
