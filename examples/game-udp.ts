/**
 * `npm run example:game-udp` — an authoritative game server and a few
 * clients exchanging position updates at 60 Hz over raw UDP, through a lossy
 * relay on loopback.
 *
 * - Updates use the unreliable-datagram profile (RFC 9622 App. B.2.3): UDP
 *   wins the selection. Each carries a per-client sequence number; a client
 *   drops an update older than one it has already shown ("late"), and the
 *   server sends each with `msgLifetime` = one tick, so an update that could
 *   not leave before the next tick expires instead of queueing (RFC 9622
 *   §9.1.3.1) — on an uncongested socket that count stays 0.
 * - Inputs must arrive. `msgReliable: true` (§9.1.3.7) needs a stack with
 *   `perMsgReliability`; UDP has none, so that send fails at once with
 *   SendError ERR_TAPS_INVALID_MESSAGE_PROPERTIES (shown below). The example
 *   therefore sends inputs over a second connection asked for by properties
 *   (reliable-message + a length-prefix framer, security disabled): TCP to
 *   the same port number. On a stack with per-message reliability (e.g.
 *   SCTP-like or QUIC with datagrams) one connection would carry both.
 * - The relay (built with the library too) listens on [::1] at the server's
 *   port number and forwards to 127.0.0.1, dropping and delaying datagrams
 *   both ways. The clients' tenant policy allows only that port:
 *   `udp://@loopback:S` and `tcp://@loopback:S`.
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
  Host, Preconnection, SecurityParameters, TransportProperties, isTapsError, lengthPrefixFramer,
  type Connection, type Listener, type NetworkScope,
} from '../src/index.js';
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
const datagrams = () => ({ properties: TransportProperties.unreliableDatagram(), security: SecurityParameters.disabled() });
const reliable = () => ({ properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()] });

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

function serveUpdates(listener: Listener): void {
  listener.on('connectionReceived', (c) => {
    track(c);
    c.on('expired', () => expired++);
    c.on('received', (m) => {
      const msg = parse<{ t: string; id: number }>(m);
      if (msg?.t !== 'hello') return;
      const p = players.get(msg.id) ?? { x: 0, y: 0, seq: 0, sent: 0, inputs: 0 };
      p.conn = c; // the relay gives each client its own upstream peer
      players.set(msg.id, p);
    });
  });
}

function serveInputs(listener: Listener): void {
  listener.on('connectionReceived', (c) => {
    track(c);
    void (async () => {
      for await (const m of c) {
        const input = parse<{ id: number; seq: number; dx: number; dy: number }>(m);
        if (input === undefined) continue;
        const p = players.get(input.id) ?? { x: 0, y: 0, seq: 0, sent: 0, inputs: 0 };
        players.set(input.id, p);
        p.x += input.dx;
        p.y += input.dy;
        p.inputs++;
      }
    })().catch(() => {});
  });
}

// ── the lossy relay: [::1]:S ⇄ 127.0.0.1:S ───────────────────────────────
const relayTimers = new Set<NodeJS.Timeout>();
const relayStats = { forwarded: 0, dropped: 0 };
/** Forward one datagram, or drop it, after the simulated delay and jitter. */
function relay(data: Uint8Array, to: Connection): void {
  if (Math.random() < LOSS) return void relayStats.dropped++;
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
    void new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port }, ...datagrams() }).initiate({ timeout: 2000 }).then((up) => {
      upstream = track(up);
      for (const d of early.splice(0)) relay(d, up);
      up.on('received', (m) => relay(m.data, client));
    }, () => client.abort());
  });
}

// Bind the update port S, the input port tcp/S and the relay [::1]:S (retry if a port number is taken).
let bound: { S: number; listeners: Listener[] } | undefined;
for (let i = 0; i < 10 && !bound; i++) {
  const listeners: Listener[] = [];
  try {
    const updates = await new Preconnection({ scope: arena, local: { ipAddress: '127.0.0.1', port: 0 }, ...datagrams() }).listen();
    listeners.push(updates);
    const S = updates.port;
    listeners.push(await new Preconnection({ scope: arena, local: { ipAddress: '127.0.0.1', port: S }, ...reliable() }).listen());
    listeners.push(await new Preconnection({ scope: arena, local: { ipAddress: '::1', port: S }, ...datagrams() }).listen());
    bound = { S, listeners };
  } catch {
    for (const l of listeners) await l.stop();
  }
}
if (!bound) throw new Error('could not bind one port number on udp/127.0.0.1, tcp/127.0.0.1 and udp/[::1]');
const { S } = bound;
const [updateListener, inputListener, relayListener] = bound.listeners as [Listener, Listener, Listener];
serveUpdates(updateListener);
serveInputs(inputListener);
serveRelay(relayListener, arena, S);

const clientPolicy = `allow udp://@loopback:${S}\nallow tcp://@loopback:${S}`;
host.setPolicy('game', clientPolicy);
say(`server: updates on udp 127.0.0.1:${S}, inputs on tcp 127.0.0.1:${S}; relay on udp [::1]:${S} (loss ${(LOSS * 100).toFixed(0)}%, delay ${DELAY}±${JITTER} ms)`);
say(`clients' policy (tenant game): ${clientPolicy.replace('\n', ', ')}`);
say(`${CLIENTS} clients, ${RATE} Hz, ${DURATION_MS / 1000} s\n`);

// ── the clients (tenant "game": only the game's port) ─────────────────────
const game = await host.tenant('game');

// The policy allows only port S: anything else is refused before a packet leaves.
try {
  await new Preconnection({ scope: game, remote: { ipAddress: '127.0.0.1', port: S + 1 }, ...datagrams() }).initiate();
} catch (err) {
  say(`a client asking for port ${S + 1}: ${isTapsError(err) ? `${err.code}: ${err.message}` : String(err)}\n`);
}

interface ClientStats { id: number; onTime: number; late: number; last: number; inputsSent: number }
const timers = new Set<NodeJS.Timeout>();
async function client(id: number): Promise<ClientStats> {
  const stats: ClientStats = { id, onTime: 0, late: 0, last: -1, inputsSent: 0 };
  const updates = track(await new Preconnection({ scope: game, remote: { ipAddress: '::1', port: S }, ...datagrams() }).initiate({ timeout: 2000 }));
  const inputs = track(await new Preconnection({ scope: game, remote: { ipAddress: '127.0.0.1', port: S }, ...reliable() }).initiate({ timeout: 2000 }));
  if (id === 1) {
    say(`client 1: updates over ${updates.stack.join('/')}, inputs over ${inputs.stack.join('/')} (both chosen by properties)`);
    try {
      await updates.send(enc({ t: 'input', id, seq: 0, dx: 1, dy: 0 }), { msgReliable: true });
    } catch (err) {
      say(`client 1: an input sent with msgReliable on ${updates.stack.join('/')}: ${isTapsError(err) ? `${err.code}: ${err.message}` : String(err)}`);
      say('          → inputs go over the reliable connection instead\n');
    }
  }
  updates.on('received', (m) => {
    const u = parse<{ seq: number }>(m);
    if (u === undefined) return;
    if (u.seq <= stats.last) return void stats.late++; // stale: a newer update was already shown
    stats.last = u.seq;
    stats.onTime++;
  });
  const hello = setInterval(() => {
    if (stats.onTime > 0) return clearInterval(hello);
    updates.send(enc({ t: 'hello', id })).catch(() => {});
  }, 50);
  timers.add(hello);
  updates.send(enc({ t: 'hello', id })).catch(() => {});
  const input = setInterval(() => {
    stats.inputsSent++;
    inputs.send(enc({ id, seq: stats.inputsSent, dx: 1, dy: id % 2 ? 1 : -1 })).catch(() => {});
  }, 100);
  timers.add(input);
  return stats;
}

const stats = await Promise.all(Array.from({ length: CLIENTS }, (_, i) => client(i + 1)));

// ── the game loop: one update per client per tick, each living one tick ───
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
      p.conn.send(enc({ seq: p.seq, tick: ticks, players: state }), { msgLifetime: TICK_MS }).catch(() => {});
    }
    const next = start + (ticks + 1) * TICK_MS - performance.now();
    if (performance.now() - start >= DURATION_MS) return done();
    timers.add(setTimeout(step, Math.max(0, next)));
  };
  step();
});
for (const t of timers) clearInterval(t);
const end = performance.now();
await sleep(DELAY + JITTER + 50); // let what is in flight land
const seconds = (end - start) / 1000;

// ── results ───────────────────────────────────────────────────────────────
let totalSent = 0;
let totalOnTime = 0;
let totalLate = 0;
for (const s of stats) {
  const p = players.get(s.id);
  const sent = p?.sent ?? 0;
  const lost = Math.max(0, sent - s.onTime - s.late);
  totalSent += sent;
  totalOnTime += s.onTime;
  totalLate += s.late;
  const playing = Math.max(sent, 1) / RATE; // seconds of updates sent to this client
  say(`client ${s.id}: ${(s.onTime / playing).toFixed(1)} updates/s · sent ${sent}, on time ${s.onTime}, late ${s.late} (dropped as stale), lost ${lost} (${sent ? ((lost / sent) * 100).toFixed(1) : '0'}%) · inputs sent ${s.inputsSent}, applied ${p?.inputs ?? 0}`);
}
const lost = Math.max(0, totalSent - totalOnTime - totalLate);
say(`\ntotal over ${seconds.toFixed(1)} s · ${totalSent} sent, ${totalOnTime} on time, ${totalLate} late, ${lost} lost · relay dropped ${relayStats.dropped}, forwarded ${relayStats.forwarded} · expired by msgLifetime ${expired}`);

// ── shutdown ──────────────────────────────────────────────────────────────
for (const t of relayTimers) clearTimeout(t);
for (const c of everything) c.abort();
for (const l of bound.listeners) await l.stop();
host.close();
