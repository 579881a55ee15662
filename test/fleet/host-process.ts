/**
 * One fleet host as its own process, driven by the fleet tests over IPC:
 * it opens a Fleet and a Host from the JSON in FLEET_HOST, then answers
 * `{ id, op, ... }` messages with `{ id, ok, value }` or `{ id, ok: false,
 * code, message }`, and reports what happens to its connections and
 * policies as `{ event, ... }` messages. Run with `node --import tsx`.
 */
import { Fleet } from '../../fleet/index.js';
import { isTapsError } from '../../src/errors.js';
import { Host, type RevokeMode } from '../../src/policy/host.js';
import { Preconnection } from '../../src/preconnection.js';
import { TransportProperties } from '../../src/properties.js';
import { SecurityParameters } from '../../src/security.js';
import type { Connection } from '../../src/connection/connection.js';
import { tcpDriver } from '../../transports/tcp/index.js';

interface Config {
  redis: string;
  name: string;
  leaseMs: number;
  onRevoke?: RevokeMode;
  fallback?: { share: number };
  spareIdleMs?: number;
}

const config = JSON.parse(process.env.FLEET_HOST ?? '{}') as Config;
const send = (m: unknown): void => {
  if (process.connected) process.send!(m);
};

// A fresh process on a loaded machine can miss Redis's connect deadline (1 s) once: a host joins on the
// first of a few tries, as a supervisor restarting it would; the last failure is the test's.
const join = async (tries: number): Promise<Fleet> => {
  try {
    return await openFleet();
  } catch (err) {
    if (tries <= 1 || (err as { code?: unknown }).code !== 'ERR_TAPS_FLEET_UNAVAILABLE') throw err;
    process.stderr.write(`fleet host ${config.name}: ${(err as Error).message}; trying again\n`);
    return join(tries - 1);
  }
};
const openFleet = (): Promise<Fleet> => Fleet.open({
  redis: config.redis,
  name: config.name,
  leaseMs: config.leaseMs,
  fallback: config.fallback,
  spareIdleMs: config.spareIdleMs,
  commandTimeoutMs: 300,
  maxReconnectDelayMs: 200,
  onPolicy: (e) => send({ event: 'policy', tenant: e.tenant, revision: e.revision, outcome: e.outcome }),
  onState: (s) => send({ event: 'state', up: s.up }),
});
const fleet = await join(4);
const host = new Host({ ...fleet.hostOptions(), onRevoke: config.onRevoke });
await fleet.attach(host);
const conns: Connection[] = [];

const codeOf = (err: unknown): string => (isTapsError(err) ? err.code : String((err as Error)?.message ?? err));

async function open(tenant: string, port: number): Promise<Connection> {
  const conn = await new Preconnection({
    scope: await host.tenant(tenant), remote: { ipAddress: '127.0.0.1', port }, properties: TransportProperties.reliableInorderStream(),
    security: SecurityParameters.disabled(), drivers: [tcpDriver],
  }).initiate();
  const index = conns.push(conn) - 1;
  conn.on('connectionError', (err: unknown) => send({ event: 'connectionError', index, code: codeOf(err) }));
  conn.on('closed', () => send({ event: 'closed', index }));
  return conn;
}

type Op = { id: number; op: string; tenant?: string; port?: number; count?: number; bytes?: number; index?: number };

const ops: Record<string, (m: Op) => Promise<unknown>> = {
  /** Open `count` connections at once; report how many opened and the codes of the refusals. */
  connect: async (m) => {
    const results = await Promise.allSettled([...Array(m.count ?? 1)].map(() => open(m.tenant ?? 'acme', m.port!)));
    return {
      opened: results.filter((r) => r.status === 'fulfilled').length,
      refused: results.flatMap((r) => (r.status === 'rejected' ? [codeOf(r.reason)] : [])),
    };
  },
  /** Send `bytes` on connection `index` (one message). */
  send: async (m) => {
    await conns[m.index ?? 0]!.send(new Uint8Array(m.bytes ?? 1));
    return true;
  },
  /** Send 1,000-byte messages on a new connection until refused ten times in a row; return the bytes sent. */
  pump: async (m) => {
    const conn = await open(m.tenant ?? 'acme', m.port!);
    let sent = 0;
    for (let refusals = 0; refusals < 10; ) {
      try {
        await conn.send(new Uint8Array(1000));
        sent += 1000;
        refusals = 0;
      } catch (err) {
        if (codeOf(err) !== 'ERR_TAPS_QUOTA_EXCEEDED') throw err;
        refusals++;
        await new Promise((r) => setTimeout(r, 10));
      }
    }
    conn.abort();
    return sent;
  },
  /** Abort every connection, then wait until the units went back (spares too). */
  closeAll: async () => {
    for (const c of conns.splice(0)) c.abort();
    await fleet.quotas.settled({ spares: false });
    return true;
  },
  dropSpares: async () => {
    await fleet.quotas.settled({ spares: false });
    return true;
  },
  held: async (m) => fleet.quotas.held(m.tenant ?? 'acme', 'connection'),
  revision: async (m) => fleet.revision(m.tenant ?? 'acme'),
  state: async (m) => conns.map((c) => c.state).slice(m.index ?? 0),
};

process.on('message', (raw) => {
  const m = raw as Op;
  const op = ops[m.op];
  if (op === undefined) return send({ id: m.id, ok: false, code: 'bad-op', message: m.op });
  op(m).then(
    (value) => send({ id: m.id, ok: true, value }),
    (err: unknown) => send({ id: m.id, ok: false, code: codeOf(err), message: String((err as Error)?.message ?? err) }),
  );
});
process.on('disconnect', () => {
  for (const c of conns) c.abort();
  void fleet.close().finally(() => process.exit(0));
});
send({ event: 'ready', hostId: fleet.hostId });
