/**
 * `npm run example:game-udp` — an authoritative game server and a few
 * clients exchanging position updates at 60 Hz and inputs at 10 Hz, each
 * client on ONE encrypted connection, through a lossy relay on loopback.
 *
 * - Every connection asks for the unreliable-datagram profile (RFC 9622 App.
 *   B.2.3) with the default security (required): QUIC with datagrams
 *   (`quic-dgram`, RFC 9221) wins the selection — UDP is unencrypted, and a
 *   QUIC stream keeps no message boundaries.
 * - Updates are datagrams: unreliable, sent with `msgOrdered: true`, so the
 *   stack drops an update older than one already delivered ("late",
 *   RFC 9622 §9.1.3.3: the client never sees one out of order), and with
 *   `msgLifetime` = one tick, so an update that could not leave before the
 *   next tick expires instead of queueing (§9.1.3.1) — on an uncongested
 *   path that count stays 0.
 * - Inputs must arrive in order: `msgReliable: true, msgOrdered: true`
 *   (§9.1.3.7) puts them on the same connection's QUIC stream, retransmitted
 *   through the same loss. A message says which way it came
 *   (`context.msgReliable`); the server applies only those from the stream.
 * - The relay (built with the library too) listens on UDP [::1] at the
 *   server's port number and forwards to 127.0.0.1, dropping (while the
 *   match runs) and delaying datagrams both ways — QUIC packets here. The
 *   clients' tenant policy allows only that port: `quic://@loopback:S`.
 *
 * Options (flags win over environment variables):
 *   --clients n    GAME_CLIENTS   (default 3)
 *   --duration s   GAME_DURATION  (default 2)
 *   --loss p       GAME_LOSS      drop probability per datagram, 0..1 (default 0.05)
 *   --delay ms     GAME_DELAY     one-way delay added by the relay (default 20)
 *   --jitter ms    GAME_JITTER    ± random delay, reorders updates (default 10)
 *   --rate hz      GAME_RATE      server tick rate (default 60)
 */
import { parseArgs } from 'node:util';
import {
  Host, Preconnection, SecurityParameters, TransportProperties, isTapsError,
  type Connection, type Listener, type NetworkScope,
} from '../src/index.js';
import { selfSignedCertificate } from '../transports/tls/certificates.js';
import { say } from './lib/report.js';

// ── options ──────────────────────────────────────────────────────────────
const { values: v } = parseArgs({
  options: { clients: { type: 'string' }, duration: { type: 'string' }, loss: { type: 'string' }, delay: { type: 'string' }, jitter: { type: 'string' }, rate: { type: 'string' } },
});
function num(flag: string | undefined, env: string, fallback: number, min: number, max: number): number {
  const raw = flag ?? process.env[env];
  const n = raw === undefined ? fallback : Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) throw new RangeError(`${env.toLowerCase().replace('game_', '--')} must be a number from ${min} to ${max}, got ${raw}`);
  return n;
}
const CLIENTS = Math.floor(num(v.clients, 'GAME_CLIENTS', 3, 1, 32));
const DURATION_MS = num(v.duration, 'GAME_DURATION', 2, 0.2, 600) * 1000;
const LOSS = num(v.loss, 'GAME_LOSS', 0.05, 0, 1);
const DELAY = num(v.delay, 'GAME_DELAY', 20, 0, 5000);
const JITTER = num(v.jitter, 'GAME_JITTER', 10, 0, 5000);
const RATE = num(v.rate, 'GAME_RATE', 60, 1, 1000);
const TICK_MS = 1000 / RATE;

const enc = (o: unknown): string => JSON.stringify(o);
/** Parse a peer's JSON; garbage from the network is ignored, never thrown. */
const parse = <T>(m: { json(): unknown }): T | undefined => {
  try {
    return m.json() as T;
  } catch {
    return undefined;
  }
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const cert = selfSignedCertificate({ names: ['localhost', '127.0.0.1', '::1'], kind: 'ec' });
/** The game's connections: unreliable datagrams, encrypted (security required is the default). */
const game = (security: SecurityParameters) => ({ properties: TransportProperties.unreliableDatagram(), security });
const serverSecurity = new SecurityParameters({ certificate: cert.cert, key: cert.key });
const clientSecurity = new SecurityParameters({ pinnedServerCertificates: [cert.fingerprint256] });
/** The relay forwards UDP as it is: plain datagrams, no security of its own. */
const relayed = () => ({ properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
/** One input: reliable, in order, on the connection's stream. */
const INPUT = { msgReliable: true, msgOrdered: true } as const;

// ── the host: the game operator's tenant, and the clients' ────────────────
const host = new Host();
host.setPolicy('arena', 'allow bind:*://@loopback:*\nallow accept:*://@loopback:*\nallow udp://@loopback:*');
const arena = await host.tenant('arena');
const everything: Connection[] = [];
const track = (c: Connection): Connection => (everything.push(c), c);

// ── the authoritative server ──────────────────────────────────────────────
interface Player { x: number; y: number; conn?: Connection; seq: number; sent: number; inputs: number }
const players = new Map<number, Player>();
let expired = 0;

function serveGame(listener: Listener): void {
  listener.on('connectionReceived', (c) => {
    track(c);
    c.on('expired', () => expired++);
    c.on('received', (m) => {
      if (m.context.msgReliable !== true) return; // hellos and inputs come on the stream; nothing else is trusted to arrive
      const msg = parse<{ t: string; id: number; dx?: number; dy?: number }>(m);
      if (msg === undefined) return;
      const p = players.get(msg.id) ?? { x: 0, y: 0, seq: 0, sent: 0, inputs: 0 };
      players.set(msg.id, p);
      if (msg.t === 'hello') p.conn = c; // each client has its own QUIC connection through the relay
      else if (msg.t === 'input') {
        p.x += msg.dx ?? 0;
        p.y += msg.dy ?? 0;
        p.inputs++;
      }
    });
  });
}

// ── the lossy relay: [::1]:S ⇄ 127.0.0.1:S ───────────────────────────────
const relayTimers = new Set<NodeJS.Timeout>();
const relayStats = { forwarded: 0, dropped: 0 };
/**
 * Drops only during the match: a QUIC handshake through heavy loss waits out probe timeouts (about a second,
 * doubling), which would make the example slow to start, not show anything about the game traffic.
 */
let lossy = false;
/** Forward one datagram, or drop it while the match runs, after the simulated delay and jitter. */
function relay(data: Uint8Array, to: Connection): void {
  if (lossy && Math.random() < LOSS) return void relayStats.dropped++;
  const wait = Math.max(0, DELAY + (Math.random() * 2 - 1) * JITTER);
  const t = setTimeout(() => {
    relayTimers.delete(t);
    relayStats.forwarded++;
    to.send(data).catch(() => {});
  }, wait);
  relayTimers.add(t);
}
function serveRelay(listener: Listener, scope: NetworkScope, port: number): void {
  listener.on('connectionReceived', (client) => {
    track(client);
    // One upstream peer per client, so the server tells clients apart; hold what arrives before it is ready.
    let upstream: Connection | undefined;
    const early: Uint8Array[] = [];
    client.on('received', (m) => (upstream ? relay(m.data, upstream) : early.push(m.data)));
    void new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, ...relayed() }).initiate({ timeout: 2000 }).then((up) => {
      upstream = track(up);
      for (const d of early.splice(0)) relay(d, up);
      up.on('received', (m) => relay(m.data, client));
    }, () => client.abort());
  });
}

// Bind the game port S (QUIC on UDP 127.0.0.1) and the relay on UDP [::1]:S (retry if a port number is taken).
let bound: { S: number; listeners: Listener[] } | undefined;
for (let i = 0; i < 10 && !bound; i++) {
  const listeners: Listener[] = [];
  try {
    const server = await new Preconnection({ scope: arena, local: { ipAddress: '127.0.0.1', port: 0 }, ...game(serverSecurity) }).listen();
    listeners.push(server);
    const S = server.port;
    listeners.push(await new Preconnection({ scope: arena, local: { ipAddress: '::1', port: S }, ...relayed() }).listen());
    bound = { S, listeners };
  } catch {
    for (const l of listeners) await l.stop();
  }
}
if (!bound) throw new Error('could not bind one port number on udp/127.0.0.1 and udp/[::1]');
const { S } = bound;
const [gameListener, relayListener] = bound.listeners as [Listener, Listener];
serveGame(gameListener);
serveRelay(relayListener, arena, S);

const clientPolicy = `allow quic://@loopback:${S}`;
host.setPolicy('game', clientPolicy);
say(`server: ${gameListener.stacks.join(', ')} on udp 127.0.0.1:${S}; relay on udp [::1]:${S} (loss ${(LOSS * 100).toFixed(0)}%, delay ${DELAY}±${JITTER} ms)`);
say(`clients' policy (tenant game): ${clientPolicy}`);
say(`${CLIENTS} clients, ${RATE} Hz, ${DURATION_MS / 1000} s\n`);

// ── the clients (tenant "game": only the game's port) ─────────────────────
const clientScope = await host.tenant('game');

// The policy allows only port S: anything else is refused before a packet leaves.
try {
  await new Preconnection({ scope: clientScope, remote: { ipAddress: '127.0.0.1', port: S + 1 }, ...game(clientSecurity) }).initiate();
} catch (err) {
  say(`a client asking for port ${S + 1}: ${isTapsError(err) ? `${err.code}: ${err.message}` : String(err)}\n`);
}

interface ClientStats { id: number; conn: Connection; onTime: number; outOfOrder: number; last: number; inputsSent: number }
const timers = new Set<NodeJS.Timeout>();
async function client(id: number): Promise<ClientStats> {
  // localhost names the certificate's subject; the address is the relay's.
  const conn = track(await new Preconnection({ scope: clientScope, remote: { hostName: 'localhost', ipAddress: '::1', port: S }, ...game(clientSecurity) }).initiate({ timeout: 10_000 }));
  const stats: ClientStats = { id, conn, onTime: 0, outOfOrder: 0, last: -1, inputsSent: 0 };
  if (id === 1) {
    const rp = conn.transportProperties;
    say(`client 1: one connection over ${conn.stack.join('/')} (${conn.info['authenticated'] ? 'encrypted, server authenticated' : 'encrypted'}), chosen by properties`);
    say(`          updates: datagrams (reliability ${rp.reliability}, preserveOrder ${rp.preserveOrder}, at most ${conn.getProperty('singularTransmissionMsgMaxLen')} bytes); inputs: msgReliable on its stream (perMsgReliability ${rp.perMsgReliability})\n`);
  }
  conn.on('received', (m) => {
    if (m.context.msgReliable !== false) return;
    const u = parse<{ seq: number }>(m);
    if (u === undefined) return;
    if (u.seq <= stats.last) stats.outOfOrder++; // never: the stack drops late ordered datagrams
    stats.last = Math.max(stats.last, u.seq);
    stats.onTime++;
  });
  conn.send(enc({ t: 'hello', id }), INPUT).catch(() => {});
  const input = setInterval(() => {
    stats.inputsSent++;
    conn.send(enc({ t: 'input', id, seq: stats.inputsSent, dx: 1, dy: id % 2 ? 1 : -1 }), INPUT).catch(() => {});
  }, 100);
  timers.add(input);
  return stats;
}

const stats = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i + 1)));
// The match starts once the server has every player's hello (bounded, in case a client is gone): a hello
// still in flight when the loss starts could be retransmitted after the match, and that player sent nothing.
for (let waited = 0; waited < 5000 && stats.some((s) => players.get(s.id)?.conn === undefined); waited += 10) await sleep(10);

// ── the game loop: one update per client per tick, each living one tick ───
lossy = true;
const start = performance.now();
let ticks = 0;
await new Promise<void>((done) => {
  const step = (): void => {
    ticks++;
    const state = [...players].map(([id, p]) => ({ id, x: p.x, y: p.y }));
    for (const p of players.values()) {
      if (!p.conn) continue;
      p.seq++;
      p.sent++;
      p.conn.send(enc({ seq: p.seq, tick: ticks, players: state }), { msgLifetime: TICK_MS, msgOrdered: true }).catch(() => {});
    }
    const next = start + (ticks + 1) * TICK_MS - performance.now();
    if (performance.now() - start >= DURATION_MS) return done();
    timers.add(setTimeout(step, Math.max(0, next)));
  };
  step();
});
for (const t of timers) clearInterval(t);
lossy = false; // what is still in flight (retransmitted inputs, the closes) gets through
const end = performance.now();
// Let what is in flight land: updates once the delay passed, inputs once every one sent was applied (QUIC
// retransmits what the relay dropped; bounded, in case a client is gone).
await sleep(DELAY + JITTER + 50);
for (let waited = 0; waited < 2000 && stats.some((s) => (players.get(s.id)?.inputs ?? 0) < s.inputsSent); waited += 20) await sleep(20);
const seconds = (end - start) / 1000;

// ── results ───────────────────────────────────────────────────────────────
let totalSent = 0;
let totalOnTime = 0;
let totalLate = 0;
for (const s of stats) {
  const p = players.get(s.id);
  const sent = p?.sent ?? 0;
  const late = (s.conn.info['datagramStats'] as { stale: number } | undefined)?.stale ?? 0; // dropped by the stack: older than one delivered
  const lost = Math.max(0, sent - s.onTime - late);
  totalSent += sent;
  totalOnTime += s.onTime;
  totalLate += late;
  const playing = Math.max(sent, 1) / RATE; // seconds of updates sent to this client
  say(`client ${s.id}: ${(s.onTime / playing).toFixed(1)} updates/s · sent ${sent}, on time ${s.onTime}, late ${late} (dropped as stale), lost ${lost} (${sent ? ((lost / sent) * 100).toFixed(1) : '0'}%), out of order ${s.outOfOrder} · inputs sent ${s.inputsSent}, applied ${p?.inputs ?? 0}`);
}
const lost = Math.max(0, totalSent - totalOnTime - totalLate);
say(`\ntotal over ${seconds.toFixed(1)} s · ${totalSent} sent, ${totalOnTime} on time, ${totalLate} late, ${lost} lost · relay dropped ${relayStats.dropped}, forwarded ${relayStats.forwarded} · expired by msgLifetime ${expired}`);

// ── shutdown ──────────────────────────────────────────────────────────────
// Listeners first: a datagram still in flight must not open a new connection at the relay once the old are gone.
// Each listener's socket goes with its last connection, so the process ends here with nothing left open.
for (const l of bound.listeners) await l.stop();
for (const c of everything) c.abort();
for (const t of relayTimers) clearTimeout(t);
host.close();
