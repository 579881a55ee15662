/**
 * `npm run example:wasm-guest` — a WebAssembly guest that opens and uses
 * connections through host imports, bound to a tenant at instantiation.
 *
 * The guest (examples/wasm/guest.wat, compiled here with the `wabt` package)
 * imports `connect`, `send`, `close`, `log` and `arg` — none takes a tenant.
 * The host makes one import object per instance, closed over the scope of
 * the tenant that instance runs for (like the data of a wasmtime Store), so
 * the guest can never name, guess or switch a tenant: the same module with
 * the same arguments gets different answers in different instances, because
 * each instance's scope decides.
 *
 * Connections are asynchronous and WebAssembly calls are not: `connect`
 * returns a handle at once, and the host later calls the guest's exports
 * `on_ready`, `on_message` or `on_error` with that handle.
 */
import { readFile } from 'node:fs/promises';
import wabtInit from 'wabt';
import {
  Host, Preconnection, SecurityParameters, TransportProperties, isTapsError, lengthPrefixFramer,
  type Connection, type Listener, type NetworkScope,
} from '../src/index.js';
import { say } from './lib/report.js';

// The WebAssembly JS API, typed minimally here: the project's `lib` has no DOM types.
interface WasmApi {
  readonly Module: { new (bytes: Uint8Array): object; imports(module: object): { module: string; name: string; kind: string }[] };
  readonly Instance: new (module: object, imports: Record<string, Record<string, unknown>>) => { readonly exports: Record<string, unknown> };
}
const Wasm = (globalThis as unknown as { WebAssembly: WasmApi }).WebAssembly;

const framed = () => ({ properties: TransportProperties.reliableMessage(), security: SecurityParameters.disabled(), framers: [lengthPrefixFramer()] });
const utf8 = new TextEncoder();
const text = new TextDecoder();

// ── compile the guest from its source ─────────────────────────────────────
const wat = await readFile(new URL('./wasm/guest.wat', import.meta.url), 'utf8');
const wabt = await wabtInit();
const parsed = wabt.parseWat('guest.wat', wat);
const { buffer } = parsed.toBinary({});
parsed.destroy();
const guestModule = new Wasm.Module(buffer);
say(`compiled guest.wat: ${buffer.byteLength} bytes; imports ${Wasm.Module.imports(guestModule).map((i) => i.name).join(', ')} — no tenant anywhere\n`);

// ── the host: two services, two tenants ───────────────────────────────────
const host = new Host();
host.setPolicy('ops', 'allow bind:tcp://@loopback:*\nallow accept:tcp://@loopback:*');
const ops = await host.tenant('ops');
const served = new Set<Connection>();
async function service(name: string): Promise<Listener> {
  const l = await new Preconnection({ scope: ops, local: { ipAddress: '127.0.0.1', port: 0 }, ...framed() }).listen();
  l.on('connectionReceived', (c) => {
    served.add(c);
    void (async () => {
      for await (const m of c) await c.send(`service ${name} says: ${m.text()}`);
      await c.close(); // the guest finished sending: finish our side too
    })().catch(() => {});
  });
  return l;
}
const A = await service('A');
const B = await service('B');
host.setPolicy('alpha', `allow tcp://@loopback:${A.port}`);
host.setPolicy('beta', `allow tcp://@loopback:${B.port}`);
say(`service A on 127.0.0.1:${A.port} (tenant alpha may reach it), service B on 127.0.0.1:${B.port} (tenant beta may reach it)\n`);

interface GuestExports {
  readonly memory: { readonly buffer: ArrayBuffer };
  readonly inbox: { readonly value: number };
  readonly inbox_size: { readonly value: number };
  start(): void;
  on_ready(handle: number): void;
  on_message(handle: number, len: number): void;
  on_error(handle: number, len: number): void;
}

/**
 * Instantiate the guest for one tenant. `scope` is captured by the imports
 * and nothing else: the guest sees handles, bytes and its arguments.
 */
function instantiate(label: string, scope: NetworkScope, args: readonly string[]): Promise<void> {
  let guest!: GuestExports;
  const conns = new Map<number, Connection>();
  let nextHandle = 1;
  let outstanding = 0;
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const settle = (): void => {
    if (--outstanding === 0) finish();
  };
  const read = (ptr: number, len: number): string => text.decode(new Uint8Array(guest.memory.buffer, ptr, len));
  /** Copy bytes into the guest's inbox (truncated to its size) and return the length. */
  const toInbox = (bytes: Uint8Array): number => {
    const len = Math.min(bytes.byteLength, guest.inbox_size.value);
    new Uint8Array(guest.memory.buffer, guest.inbox.value, len).set(bytes.subarray(0, len));
    return len;
  };
  const fail = (handle: number, err: unknown): void => {
    const why = isTapsError(err) ? `${err.code}: ${err.message}` : String(err);
    guest.on_error(handle, toInbox(utf8.encode(`connection ${handle} failed: ${why}`)));
  };

  const imports = {
    taps: {
      arg(i: number, ptr: number, cap: number): number {
        const a = args[i];
        if (a === undefined) return -1;
        const bytes = utf8.encode(a).subarray(0, cap);
        new Uint8Array(guest.memory.buffer, ptr, bytes.byteLength).set(bytes);
        return bytes.byteLength;
      },
      connect(ptr: number, len: number): number {
        const handle = nextHandle++;
        outstanding++;
        let pre: Preconnection;
        try {
          pre = new Preconnection({ scope, remote: read(ptr, len), ...framed() });
        } catch (err) {
          queueMicrotask(() => (fail(handle, err), settle()));
          return handle;
        }
        pre.initiate({ timeout: 2000 }).then(
          (conn) => {
            conns.set(handle, conn);
            conn.on('received', (m) => guest.on_message(handle, toInbox(m.data)));
            conn.on('closed', () => (conns.delete(handle), settle()));
            conn.on('connectionError', () => (conns.delete(handle), settle())); // closed or connectionError, never both
            guest.on_ready(handle);
          },
          (err) => (fail(handle, err), settle()),
        );
        return handle;
      },
      send(handle: number, ptr: number, len: number): number {
        const conn = conns.get(handle);
        if (!conn) return -1;
        conn.send(new Uint8Array(guest.memory.buffer, ptr, len).slice()).catch((err) => fail(handle, err));
        return 0;
      },
      close(handle: number): void {
        void conns.get(handle)?.close().catch(() => {});
      },
      log(ptr: number, len: number): void {
        say(`  [${label}] ${read(ptr, len)}`);
      },
    },
  };
  guest = new Wasm.Instance(guestModule, imports).exports as unknown as GuestExports;
  outstanding++; // start() itself
  guest.start();
  settle();
  return finished;
}

const targets = [`127.0.0.1:${A.port}`, `127.0.0.1:${B.port}`];
for (const [label, tenant] of [['guest#1', 'alpha'], ['guest#2', 'beta']] as const) {
  say(`${label}: the same module, bound to tenant ${tenant} at instantiation; arguments ${targets.join(' ')}`);
  const timeout = AbortSignal.timeout(5000);
  await Promise.race([
    instantiate(label, await host.tenant(tenant), targets),
    new Promise((_, reject) => timeout.addEventListener('abort', () => reject(new Error(`${label} did not finish`)))),
  ]);
  say();
}

for (const c of served) c.abort();
await A.stop();
await B.stop();
host.close();
say('done.');
