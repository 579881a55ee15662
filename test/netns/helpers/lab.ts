/**
 * A lab of network namespaces for one test file: namespaces, veth links,
 * bridges, addresses, commands inside them, and agents (child Node processes
 * that run the library inside a namespace and report JSON events).
 *
 * Every namespace is named `tapspath-<pid>-<tag>-<name>` and deleted in
 * `destroy()` (call it in afterAll), on process exit, and — for namespaces a
 * crashed run of this machine left behind (their pid is gone) — when the next
 * lab is made. Addresses come from the documentation and benchmarking blocks
 * only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 198.18.0.0/15,
 * 233.252.0.0/24, 2001:db8::/32); nothing is routed out of the lab.
 *
 * @example
 * const lab = await Lab.open('mc');
 * const [a, b] = [lab.ns('a'), lab.ns('b')];
 * lab.link(a, 'a0', b, 'b0');
 * lab.addr(a, 'a0', '192.0.2.1/24');
 * const agent = lab.agent(a, 'multicast.ts', { role: 'send' });
 * await agent.next('ready');
 * await lab.destroy();
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const PREFIX = 'tapspath-';
/** `ip netns exec NS` bind-mounts the files of /etc/netns/NS over /etc: a namespace's own /etc/hosts lives there. */
const NETNS_ETC = '/etc/netns';

/**
 * Why this machine cannot run namespace tests (also: a program in `commands` missing, no /dev/net/tun when `tun`),
 * or undefined when it can. With TAPS_REQUIRE_PEERS=1 (.ci/run) it throws instead: in CI every tier runs.
 */
export function labUnavailable(needs: { readonly commands?: readonly string[]; readonly tun?: boolean } = {}): string | undefined {
  const reason = whyUnavailable(needs.commands ?? [], needs.tun ?? false);
  if (reason !== undefined && process.env['TAPS_REQUIRE_PEERS'] === '1') {
    throw new Error(`the real-network tier is required here (TAPS_REQUIRE_PEERS=1) but cannot run: ${reason}`);
  }
  return reason;
}

function whyUnavailable(commands: readonly string[], tun: boolean): string | undefined {
  if (process.platform !== 'linux') return `network namespaces need Linux (this is ${process.platform})`;
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'network namespaces need root';
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'pipe' });
  } catch (err) {
    return `\`ip netns\` does not work here: ${(err as Error).message}`;
  }
  const missing = commands.filter((c) => {
    try {
      execFileSync('sh', ['-c', `command -v ${c}`], { stdio: 'ignore' });
      return false;
    } catch {
      return true;
    }
  });
  if (missing.length > 0) return `${missing.join(', ')} not installed`;
  if (tun && !existsSync('/dev/net/tun')) return 'no /dev/net/tun (the delay relay needs a TUN device)';
  return undefined;
}

function ip(args: readonly string[]): string {
  return execFileSync('ip', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

/** Delete namespaces of this prefix (and their /etc/netns files) whose creating process is gone (a run that crashed before cleaning up). */
function sweepStale(): void {
  const names = ip(['netns', 'list']).split('\n').map((line) => line.split(' ')[0] ?? '');
  if (existsSync(NETNS_ETC)) names.push(...readdirSync(NETNS_ETC));
  for (const name of new Set(names)) {
    const m = new RegExp(`^${PREFIX}(\\d+)-`).exec(name);
    if (!m) continue;
    const pid = Number(m[1]);
    if (pid !== process.pid && !existsSync(`/proc/${pid}`)) deleteNamespace(name);
  }
}

function deleteNamespace(name: string): void {
  try {
    ip(['netns', 'del', name]);
  } catch {
    /* gone already */
  }
  rmSync(`${NETNS_ETC}/${name}`, { recursive: true, force: true });
}

const live = new Set<Lab>();
process.once('exit', () => {
  for (const lab of live) lab.destroySync();
});

/** One JSON event an agent printed. */
export interface AgentEvent {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** A child process running a script from test/netns/agents inside a namespace. */
export class Agent {
  readonly events: AgentEvent[] = [];
  readonly #child: ChildProcess;
  readonly #waiters: { type: string; resolve: (e: AgentEvent) => void }[] = [];
  #stderr = '';
  #buffer = '';
  readonly exited: Promise<number | null>;
  readonly name: string;

  constructor(ns: string, script: string, args: unknown, name: string) {
    this.name = name;
    const file = fileURLToPath(new URL(`../agents/${script}`, import.meta.url));
    this.#child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', file, JSON.stringify(args)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#child.stdout!.setEncoding('utf8').on('data', (chunk: string) => this.#read(chunk));
    // An agent that already ended closes its stdin: a late command then fails with EPIPE, which is no error here.
    this.#child.stdin!.on('error', () => {});
    this.#child.stderr!.setEncoding('utf8').on('data', (chunk: string) => {
      this.#stderr += chunk;
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
  }

  #read(chunk: string): void {
    this.#buffer += chunk;
    let nl: number;
    while ((nl = this.#buffer.indexOf('\n')) >= 0) {
      const line = this.#buffer.slice(0, nl).trim();
      this.#buffer = this.#buffer.slice(nl + 1);
      if (!line.startsWith('{')) continue;
      const event = JSON.parse(line) as AgentEvent;
      this.events.push(event);
      for (const w of [...this.#waiters]) {
        if (w.type === event.type) {
          this.#waiters.splice(this.#waiters.indexOf(w), 1);
          w.resolve(event);
        }
      }
    }
  }

  /** The first event of `type` not yet taken (waits for it). A hang guard rejects after `guardMs` with the agent's stderr. */
  next(type: string, guardMs = 20_000): Promise<AgentEvent> {
    const i = this.events.findIndex((e) => e.type === type && !taken.has(e));
    if (i >= 0) {
      taken.add(this.events[i]!);
      return Promise.resolve(this.events[i]!);
    }
    return new Promise((resolve, reject) => {
      const guard = setTimeout(() => {
        this.#waiters.splice(this.#waiters.indexOf(waiter), 1);
        reject(new Error(`agent ${this.name}: no '${type}' event (events: ${this.events.map((e) => e.type).join(', ')}); stderr:\n${this.#stderr}`));
      }, guardMs);
      const onExit = (): void => {
        clearTimeout(guard);
        reject(new Error(`agent ${this.name} exited before '${type}'; stderr:\n${this.#stderr}`));
      };
      this.#child.once('exit', onExit);
      const waiter = {
        type,
        resolve: (e: AgentEvent) => {
          clearTimeout(guard);
          this.#child.off('exit', onExit);
          taken.add(e);
          resolve(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }

  /** Send a command line (JSON) to the agent's stdin. */
  command(cmd: Record<string, unknown>): void {
    const stdin = this.#child.stdin!;
    if (stdin.writableEnded || stdin.destroyed) return;
    stdin.write(`${JSON.stringify(cmd)}\n`);
  }

  /** Ask the agent to end (`{ type: 'exit' }`), then wait; kill it if it does not. */
  async stop(): Promise<number | null> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return this.#child.exitCode;
    this.command({ type: 'exit' });
    this.#child.stdin!.end();
    const guard = setTimeout(() => this.#child.kill('SIGKILL'), 10_000);
    const code = await this.exited;
    clearTimeout(guard);
    return code;
  }

  get stderr(): string {
    return this.#stderr;
  }
}

const taken = new WeakSet<AgentEvent>();

export class Lab {
  readonly #tag: string;
  readonly #namespaces: string[] = [];
  readonly #agents: Agent[] = [];
  readonly #relays: ChildProcess[] = [];

  private constructor(tag: string) {
    this.#tag = tag;
  }

  /** A new lab; removes what crashed runs left behind first. */
  static open(tag: string): Lab {
    sweepStale();
    const lab = new Lab(tag);
    live.add(lab);
    return lab;
  }

  /**
   * Create a namespace (loopback up, IPv6 duplicate address detection off); returns its full name.
   *
   * DAD off for every interface made in it later (the `default` settings), link-local addresses included:
   * while an interface's link-local address is tentative (about 1.5 s after the link comes up) the kernel
   * has no source for a neighbour solicitation there, so a router namespace holds every IPv6 packet it
   * forwards out of that interface until its neighbour timer retries, a second later. The first IPv6
   * connections through the lab would stall for up to a second while IPv4 (ARP needs no such address) went
   * through (docs/testing.md). `addr()` also adds each address with `nodad`.
   */
  ns(name: string): string {
    const full = `${PREFIX}${process.pid}-${this.#tag}-${name}`;
    ip(['netns', 'add', full]);
    this.#namespaces.push(full);
    execFileSync('ip', ['netns', 'exec', full, 'sysctl', '-qw', 'net.ipv6.conf.all.accept_dad=0', 'net.ipv6.conf.default.accept_dad=0'], { stdio: 'ignore' });
    ip(['-n', full, 'link', 'set', 'lo', 'up']);
    return full;
  }

  /** A veth pair between two namespaces (both ends up). */
  link(nsA: string, ifA: string, nsB: string, ifB: string): void {
    ip(['-n', nsA, 'link', 'add', ifA, 'type', 'veth', 'peer', 'name', ifB, 'netns', nsB]);
    ip(['-n', nsA, 'link', 'set', ifA, 'up']);
    ip(['-n', nsB, 'link', 'set', ifB, 'up']);
  }

  /** A bridge in `ns` with these interfaces as ports (multicast snooping off: every port hears every group). */
  bridge(ns: string, name: string, ports: readonly string[]): void {
    ip(['-n', ns, 'link', 'add', name, 'type', 'bridge', 'mcast_snooping', '0']);
    for (const p of ports) ip(['-n', ns, 'link', 'set', p, 'master', name]);
    ip(['-n', ns, 'link', 'set', name, 'up']);
  }

  addr(ns: string, dev: string, cidr: string): void {
    ip(['-n', ns, 'addr', 'add', cidr, 'dev', dev, ...(cidr.includes(':') ? ['nodad'] : [])]);
  }

  /** `ip -n ns …` */
  ip(ns: string, ...args: string[]): string {
    return ip(['-n', ns, ...args]);
  }

  /** Run a command inside `ns`; its stdout. */
  run(ns: string, command: string, ...args: string[]): string {
    return execFileSync('ip', ['netns', 'exec', ns, command, ...args], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  }

  /**
   * The namespace's own /etc/hosts (`address name` lines), seen by every program started with `ip netns exec`
   * (agents, curl): names resolve through the system resolver as on a real host, with no DNS server.
   */
  hosts(ns: string, lines: readonly string[]): void {
    mkdirSync(`${NETNS_ETC}/${ns}`, { recursive: true });
    writeFileSync(`${NETNS_ETC}/${ns}/hosts`, `127.0.0.1 localhost\n::1 localhost\n${lines.join('\n')}\n`);
  }

  /**
   * A TUN device `dev` in `ns` whose packets come back out after `ms` milliseconds (test/netns/helpers/tun-delay.py:
   * this kernel has no netem). Route what should be delayed into `dev`; what the relay writes back is routed as
   * if it had arrived on `dev`. `set(ms)` changes the delay; the relay ends with the lab.
   */
  async delayer(ns: string, dev: string, ms: number): Promise<{ set(ms: number): void }> {
    ip(['-n', ns, 'tuntap', 'add', 'dev', dev, 'mode', 'tun']);
    ip(['-n', ns, 'link', 'set', dev, 'up']);
    const script = fileURLToPath(new URL('./tun-delay.py', import.meta.url));
    const child = spawn('ip', ['netns', 'exec', ns, 'python3', script, dev, String(ms)], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.#relays.push(child);
    let stderr = '';
    child.stderr!.setEncoding('utf8').on('data', (c: string) => (stderr += c));
    child.stdin!.on('error', () => {});
    await new Promise<void>((resolve, reject) => {
      child.stdout!.setEncoding('utf8').once('data', () => resolve());
      child.once('exit', (code) => reject(new Error(`tun-delay.py exited (${code}) before it was ready: ${stderr}`)));
    });
    return { set: (delay: number) => void child.stdin!.write(`delay ${delay}\n`) };
  }

  /** Wait until `ns` has a socket listening on `port` (`ss`), e.g. a server process just started there. */
  async listening(ns: string, proto: 'tcp' | 'udp', port: number): Promise<void> {
    for (let i = 0; i < 200; i++) {
      const out = this.run(ns, 'ss', proto === 'tcp' ? '-ltnH' : '-lunH');
      if (new RegExp(`:${port}\\s`).test(out)) return;
      await new Promise((r) => setTimeout(r, 25));
    }
    throw new Error(`nothing listens on ${proto} port ${port} in ${ns}`);
  }

  /** Start `test/netns/agents/<script>` inside `ns` with `args` (JSON). */
  agent(ns: string, script: string, args: unknown, name = script): Agent {
    const a = new Agent(ns, script, args, name);
    this.#agents.push(a);
    return a;
  }

  /** Stop every agent, then delete every namespace. */
  async destroy(): Promise<void> {
    await Promise.allSettled(this.#agents.map((a) => a.stop()));
    await Promise.allSettled(this.#relays.map((r) => {
      if (r.exitCode !== null || r.signalCode !== null) return undefined;
      const exited = new Promise((done) => r.once('exit', done));
      r.stdin!.end(); // end of input ends the relay
      const guard = setTimeout(() => r.kill('SIGKILL'), 5_000);
      return exited.finally(() => clearTimeout(guard));
    }));
    this.destroySync();
  }

  /** @internal Delete the namespaces now (also run at process exit). */
  destroySync(): void {
    for (const r of this.#relays) if (r.exitCode === null && r.signalCode === null) r.kill('SIGKILL');
    for (const ns of this.#namespaces.splice(0)) deleteNamespace(ns);
    live.delete(this);
  }
}

/** `/proc/net/igmp` lists a group as its four bytes in host (little-endian) order, in hex: 233.252.0.1 → `0100FCE9`. */
export function igmpGroupHex(group: string): string {
  return group
    .split('.')
    .reverse()
    .map((b) => Number(b).toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}
