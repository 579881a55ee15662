/**
 * Fault-injecting relays on loopback, for the fault suite (test/faults): a TCP
 * relay that misbehaves on the byte stream and a UDP relay that misbehaves
 * per datagram, each configured per test and per direction, with seeded
 * randomness so a failing run reproduces from its seed.
 *
 * TCP (per direction, `toServer` / `toClient`), applied to the chunks the
 * relay reads:
 * - `delayMs`: hold each chunk this long (a number or a `[min, max]` range);
 *   order is kept, as on a slow path.
 * - `split`: cut each chunk into pieces of 1..split bytes, written one per
 *   loop turn (the receiver sees arbitrary segment boundaries).
 * - `drop`, `duplicate`, `reorder`, `corrupt`: probability per chunk of
 *   dropping it, writing it twice, swapping it with the next one, or flipping
 *   one of its bits. On a byte stream each of these is a corruption a real
 *   TCP would never deliver: only an integrity-protected stack (TLS) can
 *   notice. `corruptAt`: flip the byte at that stream offset (exactly once).
 * - `stallAt`: forward that many bytes, then forward nothing more and stop
 *   reading (the sender sees backpressure) until `resume()`.
 * - `truncateAt`: forward that many bytes, then close both sides (FIN), as a
 *   middlebox that gives up. `resetAt`: forward that many bytes, then reset
 *   both sides (RST).
 *
 * UDP (per direction), per datagram: `drop`, `duplicate`, `reorder` (held
 * and sent after the next one), `corrupt` (one bit flipped), `truncate`
 * (cut to a random shorter length, at least 1), `delayMs` (per datagram, so
 * a range reorders too), `stallAfter` (drop everything after that many).
 * Empty datagrams pass untouched and uncounted (a client's flow-opening
 * probes).
 *
 * Every relay keeps `stats` per direction and a short `log` of the faults it
 * applied (first 200), for failure messages.
 *
 * @example
 * const relay = await faultyTcpRelay('127.0.0.1', server.port, { seed: 7, toServer: { split: 13, delayMs: [0, 2] } });
 * const pre = new Preconnection({ scope, remote: { ipAddress: '127.0.0.1', port: relay.port }, ... });
 * ...
 * await relay.close();
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, Socket, type Server } from 'node:net';

/** A small fast seeded PRNG (mulberry32): same seed, same sequence. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Delay = number | readonly [number, number];

export interface StreamFaults {
  readonly delayMs?: Delay;
  readonly split?: number;
  readonly drop?: number;
  readonly duplicate?: number;
  readonly reorder?: number;
  readonly corrupt?: number;
  readonly corruptAt?: number;
  readonly stallAt?: number;
  readonly truncateAt?: number;
  readonly resetAt?: number;
}

export interface TcpFaultPlan {
  readonly seed?: number;
  readonly toServer?: StreamFaults;
  readonly toClient?: StreamFaults;
}

export interface DirectionStats {
  bytes: number;
  units: number;
  dropped: number;
  duplicated: number;
  reordered: number;
  corrupted: number;
  truncated: number;
  delayed: number;
}

const emptyStats = (): DirectionStats => ({ bytes: 0, units: 0, dropped: 0, duplicated: 0, reordered: 0, corrupted: 0, truncated: 0, delayed: 0 });

export interface FaultRelay {
  readonly port: number;
  readonly seed: number;
  readonly stats: { readonly toServer: DirectionStats; readonly toClient: DirectionStats };
  /** Faults applied, in order (the first 200). */
  readonly log: string[];
  /** Connections (TCP) or peers (UDP) seen. */
  readonly connections: number;
  /** Lift every stall (TCP). */
  resume(): void;
  close(): Promise<void>;
}

function pickDelay(d: Delay | undefined, rnd: () => number): number {
  if (d === undefined) return 0;
  if (typeof d === 'number') return d;
  return d[0] + Math.floor(rnd() * (d[1] - d[0] + 1));
}

function flipBit(buf: Buffer, rnd: () => number, at?: number): Buffer {
  const copy = Buffer.from(buf);
  const i = at ?? Math.floor(rnd() * copy.length);
  copy[i] = copy[i]! ^ (1 << Math.floor(rnd() * 8));
  return copy;
}

const LOG_MAX = 200;

/**
 * One direction of one TCP connection: faults applied in read order, writes
 * in order at their due time, backpressure passed on to the reading side.
 */
class Pipe {
  readonly #from: Socket;
  readonly #to: Socket;
  readonly #f: StreamFaults;
  readonly #rnd: () => number;
  readonly #stats: DirectionStats;
  readonly #note: (s: string) => void;
  readonly #onCut: (kind: 'truncate' | 'reset') => void;
  readonly #queue: { due: number; data: Buffer }[] = [];
  #queued = 0;
  #offset = 0;
  #held: Buffer | undefined;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastDue = 0;
  #stalled = false;
  #stallBacklog: Buffer[] = [];
  #done = false;
  #ended = false;
  #waitingDrain = false;

  constructor(from: Socket, to: Socket, f: StreamFaults, rnd: () => number, stats: DirectionStats, note: (s: string) => void, onCut: (kind: 'truncate' | 'reset') => void) {
    this.#from = from;
    this.#to = to;
    this.#f = f;
    this.#rnd = rnd;
    this.#stats = stats;
    this.#note = note;
    this.#onCut = onCut;
    from.on('data', (d: Buffer) => this.#onData(d));
    from.on('end', () => {
      this.#ended = true;
      this.#maybeEnd();
    });
  }

  resume(): void {
    if (!this.#stalled) return;
    this.#stalled = false;
    const backlog = this.#stallBacklog;
    this.#stallBacklog = [];
    for (const b of backlog) this.#accept(b);
    this.#from.resume();
  }

  stop(): void {
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    if (this.#immediate !== undefined) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
    this.#queue.length = 0;
  }

  #onData(d: Buffer): void {
    if (this.#done) return;
    if (this.#stalled) {
      this.#stallBacklog.push(d);
      return;
    }
    this.#accept(d);
  }

  /** Apply offset-based faults, then per-chunk ones. */
  #accept(d: Buffer): void {
    const f = this.#f;
    const start = this.#offset;
    const end = start + d.length;
    if (f.stallAt !== undefined && f.stallAt >= start && f.stallAt < end && !this.#stalledOnce) {
      this.#stalledOnce = true;
      this.#forward(d.subarray(0, f.stallAt - start), start);
      this.#stalled = true;
      this.#from.pause();
      this.#note(`stall at ${f.stallAt}`);
      const rest = d.subarray(f.stallAt - start);
      if (rest.length > 0) this.#stallBacklog.push(rest);
      return;
    }
    for (const [at, kind] of [[f.truncateAt, 'truncate'], [f.resetAt, 'reset']] as const) {
      if (at !== undefined && at >= start && at < end) {
        this.#forward(d.subarray(0, at - start), start);
        this.#note(`${kind} at ${at}`);
        this.#done = true;
        // Let what is queued before the cut go out first.
        this.#afterFlush(() => this.#onCut(kind));
        return;
      }
    }
    this.#forward(d, start);
  }

  #stalledOnce = false;

  #forward(d: Buffer, start: number): void {
    if (d.length === 0) return;
    this.#offset = start + d.length;
    const f = this.#f;
    const rnd = this.#rnd;
    this.#stats.units++;
    if (f.corruptAt !== undefined && f.corruptAt >= start && f.corruptAt < start + d.length) {
      d = flipBit(d, rnd, f.corruptAt - start);
      this.#stats.corrupted++;
      this.#note(`corrupt byte ${f.corruptAt}`);
    }
    if (f.drop !== undefined && rnd() < f.drop) {
      this.#stats.dropped++;
      this.#note(`drop ${d.length} B at ${start}`);
      return;
    }
    if (f.corrupt !== undefined && rnd() < f.corrupt) {
      d = flipBit(d, rnd);
      this.#stats.corrupted++;
      this.#note(`corrupt a chunk at ${start}`);
    }
    const out: Buffer[] = [d];
    if (f.duplicate !== undefined && rnd() < f.duplicate) {
      out.push(d);
      this.#stats.duplicated++;
      this.#note(`duplicate ${d.length} B at ${start}`);
    }
    if (f.reorder !== undefined) {
      if (this.#held !== undefined) {
        out.push(this.#held);
        this.#held = undefined;
      } else if (rnd() < f.reorder) {
        this.#held = Buffer.concat(out);
        this.#stats.reordered++;
        this.#note(`reorder ${d.length} B at ${start}`);
        return;
      }
    }
    for (const piece of out) this.#schedule(piece);
  }

  #schedule(d: Buffer): void {
    const f = this.#f;
    const pieces: Buffer[] = [];
    if (f.split !== undefined && f.split > 0) {
      for (let i = 0; i < d.length; ) {
        const n = 1 + Math.floor(this.#rnd() * f.split);
        pieces.push(d.subarray(i, i + n));
        i += n;
      }
    } else pieces.push(d);
    const delay = pickDelay(f.delayMs, this.#rnd);
    if (delay > 0) this.#stats.delayed++;
    const now = performance.now();
    const due = Math.max(now + delay, this.#lastDue);
    this.#lastDue = due;
    for (const p of pieces) {
      this.#queue.push({ due, data: p });
      this.#queued += p.length;
    }
    this.#stats.bytes += d.length;
    // Pass backpressure on: a slow relay is a slow path, not an infinite buffer.
    if (this.#queued > 1 << 20) this.#from.pause();
    if (this.#timer === undefined && this.#immediate === undefined && !this.#waitingDrain) this.#pump();
  }

  #immediate: ReturnType<typeof setImmediate> | undefined;

  #pump = (): void => {
    this.#timer = undefined;
    this.#immediate = undefined;
    if (this.#done && this.#queue.length === 0) return;
    const split = this.#f.split !== undefined && this.#f.split > 0;
    while (this.#queue.length > 0 && !this.#waitingDrain) {
      const head = this.#queue[0]!;
      const wait = head.due - performance.now();
      if (wait > 0) {
        this.#timer = setTimeout(this.#pump, Math.ceil(wait));
        return;
      }
      this.#queue.shift();
      this.#queued -= head.data.length;
      if (this.#to.destroyed) return;
      const ok = this.#to.write(head.data);
      if (!ok) {
        this.#waitingDrain = true;
        this.#to.once('drain', () => {
          this.#waitingDrain = false;
          this.#pump();
        });
      }
      // One piece per loop turn when splitting, so the receiver reads them apart.
      if (split && this.#queue.length > 0 && !this.#waitingDrain) {
        this.#immediate = setImmediate(this.#pump);
        return;
      }
    }
    if (this.#queued < 256 * 1024 && !this.#stalled && !this.#waitingDrain && !this.#done) this.#from.resume();
    if (this.#queue.length === 0) {
      this.#flushWaiters();
      this.#maybeEnd();
    }
  };

  #flushCbs: (() => void)[] = [];
  #afterFlush(cb: () => void): void {
    if (this.#queue.length === 0) cb();
    else this.#flushCbs.push(cb);
  }
  #flushWaiters(): void {
    for (const cb of this.#flushCbs.splice(0)) cb();
  }

  #maybeEnd(): void {
    if (!this.#ended || this.#queue.length > 0 || this.#stalled || this.#done) return;
    if (this.#held !== undefined) {
      const h = this.#held;
      this.#held = undefined;
      this.#schedule(h);
      return;
    }
    this.#to.end();
  }
}

/** A TCP relay on `address` to `address`:`port` applying `plan` to every connection. */
export async function faultyTcpRelay(address: string, port: number, plan: TcpFaultPlan = {}): Promise<FaultRelay> {
  const seed = plan.seed ?? 1;
  const sockets = new Set<Socket>();
  const pipes = new Set<Pipe>();
  const stats = { toServer: emptyStats(), toClient: emptyStats() };
  const log: string[] = [];
  let connections = 0;
  const track = (s: Socket): void => {
    sockets.add(s);
    s.on('error', () => {});
    s.once('close', () => sockets.delete(s));
  };
  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    const n = connections++;
    const rnd = seeded(seed * 1000 + n);
    const note = (s: string): void => {
      if (log.length < LOG_MAX) log.push(`#${n} ${s}`);
    };
    track(client);
    client.pause();
    const upstream = new Socket({ allowHalfOpen: true });
    track(upstream);
    let cut = false;
    const onCut = (kind: 'truncate' | 'reset'): void => {
      if (cut) return;
      cut = true;
      for (const p of both) p.stop();
      if (kind === 'reset') {
        for (const s of [client, upstream]) if (!s.destroyed) s.resetAndDestroy();
      } else {
        // A middlebox that gives up: FIN both ways, then forget the connection.
        for (const s of [client, upstream]) {
          s.end();
          s.resume(); // read and discard, so the FIN exchange completes
          s.removeAllListeners('data');
        }
        setTimeout(() => {
          client.destroy();
          upstream.destroy();
        }, 50);
      }
    };
    const up = new Pipe(client, upstream, plan.toServer ?? {}, rnd, stats.toServer, (s) => note(`→server ${s}`), onCut);
    const down = new Pipe(upstream, client, plan.toClient ?? {}, rnd, stats.toClient, (s) => note(`→client ${s}`), onCut);
    const both = [up, down];
    for (const p of both) pipes.add(p);
    const gone = (): void => {
      for (const p of both) {
        p.stop();
        pipes.delete(p);
      }
    };
    // One side gone for good (reset or error): tear the other down the same way.
    client.once('close', (hadError) => {
      gone();
      if (hadError && !upstream.destroyed) upstream.resetAndDestroy();
      else if (!cut) upstream.destroySoon();
    });
    upstream.once('close', (hadError) => {
      gone();
      if (hadError && !client.destroyed) client.resetAndDestroy();
      else if (!cut) client.destroySoon();
    });
    upstream.connect(port, address, () => client.resume());
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  return {
    port: (server.address() as { port: number }).port,
    seed,
    stats,
    log,
    get connections() {
      return connections;
    },
    resume: () => {
      for (const p of pipes) p.resume();
    },
    close: async () => {
      for (const p of pipes) p.stop();
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

export interface DatagramFaults {
  readonly drop?: number;
  readonly duplicate?: number;
  readonly reorder?: number;
  readonly corrupt?: number;
  readonly truncate?: number;
  readonly delayMs?: Delay;
  /** Forward this many datagrams, then drop everything. */
  readonly stallAfter?: number;
}

export interface UdpFaultPlan {
  readonly seed?: number;
  readonly toServer?: DatagramFaults;
  readonly toClient?: DatagramFaults;
}

/** A UDP relay on `address` to `address`:`port` (one upstream socket per client) applying `plan`. */
export async function faultyUdpRelay(address: string, port: number, plan: UdpFaultPlan = {}): Promise<FaultRelay> {
  const seed = plan.seed ?? 1;
  const type = address.includes(':') ? 'udp6' : 'udp4';
  const front: UdpSocket = createSocket(type);
  const uppers = new Map<string, UdpSocket>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const stats = { toServer: emptyStats(), toClient: emptyStats() };
  const log: string[] = [];
  const rnd = seeded(seed);
  let closed = false;

  const direction = (f: DatagramFaults, st: DirectionStats, name: string, send: (b: Buffer) => void): ((msg: Buffer) => void) => {
    let held: Buffer | undefined;
    const note = (s: string): void => {
      if (log.length < LOG_MAX) log.push(`${name} ${s}`);
    };
    const out = (b: Buffer): void => {
      const delay = pickDelay(f.delayMs, rnd);
      if (delay <= 0) return send(b);
      st.delayed++;
      const t = setTimeout(() => {
        timers.delete(t);
        if (!closed) send(b);
      }, delay);
      timers.add(t);
    };
    return (msg) => {
      // Empty datagrams (the probes a client sends to open its flow) pass untouched and uncounted.
      if (msg.length === 0) return send(msg);
      const n = st.units++;
      st.bytes += msg.length;
      if (f.stallAfter !== undefined && n >= f.stallAfter) {
        st.dropped++;
        return;
      }
      if (f.drop !== undefined && rnd() < f.drop) {
        st.dropped++;
        note(`drop #${n}`);
        return;
      }
      let b = msg;
      if (f.truncate !== undefined && b.length > 1 && rnd() < f.truncate) {
        b = b.subarray(0, 1 + Math.floor(rnd() * (b.length - 1)));
        st.truncated++;
        note(`truncate #${n} to ${b.length}`);
      }
      if (f.corrupt !== undefined && b.length > 0 && rnd() < f.corrupt) {
        b = flipBit(b, rnd);
        st.corrupted++;
        note(`corrupt #${n}`);
      }
      const copies = f.duplicate !== undefined && rnd() < f.duplicate ? 2 : 1;
      if (copies === 2) {
        st.duplicated++;
        note(`duplicate #${n}`);
      }
      if (f.reorder !== undefined) {
        if (held !== undefined) {
          for (let i = 0; i < copies; i++) out(b);
          out(held);
          held = undefined;
          return;
        }
        if (rnd() < f.reorder) {
          held = b;
          st.reordered++;
          note(`reorder #${n}`);
          // Nothing follows: let it go after a while anyway.
          const t = setTimeout(() => {
            timers.delete(t);
            if (held === b && !closed) {
              held = undefined;
              send(b);
            }
          }, 20);
          timers.add(t);
          return;
        }
      }
      for (let i = 0; i < copies; i++) out(b);
    };
  };

  const toServer = new Map<string, (m: Buffer) => void>();
  front.on('error', () => {});
  front.on('message', (msg, rinfo) => {
    if (closed) return;
    const key = `${rinfo.address}|${rinfo.port}`;
    let fwd = toServer.get(key);
    if (!fwd) {
      const u = createSocket(type);
      u.on('error', () => {});
      const back = direction(plan.toClient ?? {}, stats.toClient, `→client ${key}`, (b) => {
        if (!closed) front.send(b, rinfo.port, rinfo.address);
      });
      u.on('message', (m) => {
        if (!closed) back(m);
      });
      uppers.set(key, u);
      fwd = direction(plan.toServer ?? {}, stats.toServer, `→server ${key}`, (b) => {
        if (!closed) u.send(b, port, address);
      });
      toServer.set(key, fwd);
    }
    fwd(msg);
  });
  await new Promise<void>((r) => front.bind(0, address, () => r()));
  return {
    port: front.address().port,
    seed,
    stats,
    log,
    get connections() {
      return uppers.size;
    },
    resume: () => {},
    close: async () => {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      await Promise.all([front, ...uppers.values()].map((s) => new Promise<void>((r) => s.close(() => r()))));
    },
  };
}

export interface SilentServer {
  readonly address: string;
  readonly port: number;
  /** Connections accepted. */
  readonly accepted: number;
  /** Bytes the peers sent (read and discarded). */
  readonly received: number;
  close(): Promise<void>;
}

/**
 * A TCP server that accepts, reads and discards, and never writes a byte:
 * a TLS server that never answers the ClientHello, an HTTP server that never
 * answers the upgrade.
 */
export async function silentTcpServer(address: string): Promise<SilentServer> {
  const sockets = new Set<Socket>();
  let accepted = 0;
  let received = 0;
  const server = createServer((s) => {
    accepted++;
    sockets.add(s);
    s.on('error', () => {});
    s.on('data', (d: Buffer) => (received += d.length));
    s.once('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, address, r));
  return {
    address,
    port: (server.address() as { port: number }).port,
    get accepted() {
      return accepted;
    },
    get received() {
      return received;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}
