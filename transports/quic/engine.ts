/**
 * Lazy access to `@matrixai/quic` (quiche through a prebuilt N-API module) and
 * the pieces every connection needs from it: the server's HMAC crypto for
 * stateless retry, the client's random bytes, and a silent logger (the
 * package logs INFO lines to stdout by default; a library must not).
 *
 * Nothing loads at import: the first `loadQuic()` imports the package, and a
 * platform without its native module (linux-arm64, musl) makes the driver
 * report `{ available: false, reason }` instead of failing at import (STYLE:
 * optional native pieces load lazily, their absence is reported).
 *
 * @example
 * const state = await quicState();            // { available: true } here
 * const { QUICClient } = (await loadQuic()).api;
 */
import { createHmac, randomBytes, randomFillSync, timingSafeEqual } from 'node:crypto';
import type { Availability } from '../../src/driver.js';

type QuicApi = typeof import('@matrixai/quic');
type LoggerModule = typeof import('@matrixai/logger');

/** The loaded package and a logger that prints nothing. */
export interface QuicEngine {
  readonly api: QuicApi;
  readonly logger: InstanceType<LoggerModule['default']>;
}

let loading: Promise<QuicEngine> | undefined;
let state: Availability | undefined;

/** Import the package once; rejects (with the reason) where it cannot load. */
export function loadQuic(): Promise<QuicEngine> {
  loading ??= (async () => {
    const [api, loggerModule] = await Promise.all([import('@matrixai/quic'), import('@matrixai/logger')]);
    const Logger = loggerModule.default;
    return { api, logger: new Logger('taps-quic', loggerModule.LogLevel.SILENT) };
  })();
  return loading;
}

/** Whether the package was loaded (or failed to): `quicState()` then answers at once, loading nothing. */
export function quicLoaded(): boolean {
  return state !== undefined;
}

/**
 * Whether QUIC can run here; never throws, never prints. Synchronous once the package was loaded (or failed
 * to): a selection then races QUIC in its ranked place. While it loads the answer is a promise, and the
 * selection races the stacks that are ready and lets QUIC join when it is (src/selection/race.ts).
 */
export function quicState(): Availability | Promise<Availability> {
  if (state) return state;
  return loadQuic().then(
    () => (state = { available: true }),
    (err: unknown) => (state = { available: false, reason: `@matrixai/quic cannot load here: ${(err as Error)?.message ?? String(err)}` }),
  );
}

const toArrayBuffer = (b: Buffer): ArrayBuffer => b.buffer.slice(b.byteOffset, b.byteOffset + b.byteLength) as ArrayBuffer;

/** Client crypto: random bytes for connection ids. */
export const CLIENT_CRYPTO = Object.freeze({
  ops: Object.freeze({
    // randomFillSync, not webcrypto: `crypto.webcrypto` is a getter that loads Node's Web Crypto modules.
    randomBytes: async (data: ArrayBuffer): Promise<void> => void randomFillSync(new Uint8Array(data)),
  }),
});

/** Server crypto: a fresh HMAC-SHA256 key per listener, signing stateless-retry tokens (RFC 9000 §8.1.2). */
export function serverCrypto(): { key: ArrayBuffer; ops: { sign(key: ArrayBuffer, data: ArrayBuffer): Promise<ArrayBuffer>; verify(key: ArrayBuffer, data: ArrayBuffer, sig: ArrayBuffer): Promise<boolean> } } {
  const mac = (key: ArrayBuffer, data: ArrayBuffer): Buffer => createHmac('sha256', Buffer.from(key)).update(Buffer.from(data)).digest();
  return {
    key: toArrayBuffer(randomBytes(32)),
    ops: {
      sign: async (key, data) => toArrayBuffer(mac(key, data)),
      verify: async (key, data, sig) => {
        const want = mac(key, data);
        const got = Buffer.from(sig);
        return got.byteLength === want.byteLength && timingSafeEqual(got, want);
      },
    },
  };
}
