/**
 * Loading `@fails-components/webtransport` without its noise, and the shapes
 * of what it gives us.
 *
 * The package's entry point always tries to import the optional native
 * HTTP/3 module and, when that is missing (as on these machines), prints
 * stack traces to stdout and stderr. So:
 * - WebTransport over HTTP/2 never loads the entry point. It loads only the
 *   package's protocol engine for HTTP/2 (`lib/session.js`: the W3C session and
 *   stream objects; `lib/http2/session.js` and `lib/http2/node/capsuleparser.js`:
 *   capsules, flow control and stream ids of draft-ietf-webtrans-http2), by
 *   file URL from the installed package directory, and does the HTTP/2 part
 *   (TLS socket, extended CONNECT of RFC 8441) itself. None of those files
 *   imports the native module or prints anything.
 * - WebTransport over HTTP/3 loads the entry point only after the native
 *   module was found on disk and loaded on its own, so the entry point's own
 *   import of it succeeds and stays quiet. Absent: never imported at all.
 *
 * Finding a package walks Node's node_modules lookup paths
 * (`require.resolve.paths`) for its `package.json`, which evaluates nothing.
 *
 * @example
 * const engine = await loadHttp2Engine();       // throws ERR_TAPS_UNAVAILABLE if the package is missing
 * const state = http3State();                   // { available: false, reason: 'native HTTP/3 transport not installed (…)' }
 */
import { existsSync } from 'node:fs';
import type { Http2Stream } from 'node:http2';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import type { ReadableStream, WritableStream } from 'node:stream/web';
import { pathToFileURL } from 'node:url';
import type { Availability } from '../../src/driver.js';
import { TapsError } from '../../src/errors.js';
import type { WebStreamPair } from '../kit/web-stream-channel.js';

export const PACKAGE = '@fails-components/webtransport';
export const NATIVE_HTTP3 = '@fails-components/webtransport-transport-http3-quiche';

/** One bidirectional WebTransport stream, as the W3C API shapes it. */
export type WtStream = WebStreamPair;

export interface WtCloseInfo {
  readonly closeCode?: number;
  readonly reason?: string;
}

/** A WebTransport session (the package's HttpWTSession, or its WebTransport object for HTTP/3). */
export interface WtSession {
  readonly ready: Promise<void>;
  readonly closed: Promise<WtCloseInfo>;
  readonly incomingBidirectionalStreams: ReadableStream<WtStream>;
  readonly incomingUnidirectionalStreams: ReadableStream<ReadableStream<Uint8Array>>;
  readonly datagrams: {
    readonly readable: ReadableStream<Uint8Array>;
    createWritable(): WritableStream<Uint8Array>;
    readonly maxDatagramSize: number;
  };
  createBidirectionalStream(): Promise<WtStream>;
  close(info?: { closeCode: number; reason: string }): void;
}

/** Flow-control windows and stream limits one side grants (draft-ietf-webtrans-http2 §5). */
export interface Windows {
  /** SETTINGS_WT_INITIAL_MAX_DATA: bytes the peer may send on all streams together. */
  readonly session: number;
  /** SETTINGS_WT_INITIAL_MAX_STREAM_DATA_BIDI/UNI: bytes per stream. */
  readonly stream: number;
  /** SETTINGS_WT_INITIAL_MAX_STREAMS_BIDI/UNI: streams the peer may open. */
  readonly streams: number;
}

export const WT_MAX_DATA = 0x2b61;
export const WT_MAX_STREAM_DATA_UNI = 0x2b62;
export const WT_MAX_STREAM_DATA_BIDI = 0x2b63;
export const WT_MAX_STREAMS_UNI = 0x2b64;
export const WT_MAX_STREAMS_BIDI = 0x2b65;
export const WT_SETTINGS: readonly number[] = Object.freeze([WT_MAX_DATA, WT_MAX_STREAM_DATA_UNI, WT_MAX_STREAM_DATA_BIDI, WT_MAX_STREAMS_UNI, WT_MAX_STREAMS_BIDI]);

/** The HTTP/2 SETTINGS both sides send: extended CONNECT (RFC 8441 §3) and the WebTransport windows. */
export function wtSettings(w: Windows): { enableConnectProtocol: true; customSettings: Record<number, number> } {
  return {
    enableConnectProtocol: true,
    customSettings: {
      [WT_MAX_DATA]: w.session,
      [WT_MAX_STREAM_DATA_UNI]: w.stream,
      [WT_MAX_STREAM_DATA_BIDI]: w.stream,
      [WT_MAX_STREAMS_UNI]: w.streams,
      [WT_MAX_STREAMS_BIDI]: w.streams,
    },
  };
}

export interface EngineSessionInit {
  /** The extended CONNECT stream (client: the request; server: the incoming stream, already answered 200). */
  readonly stream: Http2Stream;
  readonly isClient: boolean;
  /** What we granted in our SETTINGS. */
  readonly windows: Windows;
  /** The peer's SETTINGS (`customSettings`), if it sent them. */
  readonly remote: Readonly<Record<number, number>> | undefined;
  readonly header?: Readonly<Record<string, unknown>>;
  readonly peerAddress?: string;
}

export interface Http2Engine {
  /** The session state over one CONNECT stream. Ready when the 200 arrived (client) or at once (server). */
  session(init: EngineSessionInit): WtSession;
}

type Ctor = new (args: Record<string, unknown>) => Record<string, unknown>;

/** Where `name` is installed (its directory), searching as Node's resolver would from `from`; nothing is evaluated. */
export function packageDirectory(name: string, from: string | URL = import.meta.url): string | undefined {
  let paths: string[] | null;
  try {
    paths = createRequire(from).resolve.paths(name);
  } catch {
    return undefined;
  }
  for (const dir of paths ?? []) {
    const candidate = join(dir, name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
  }
  return undefined;
}

const ENGINE_FILES = ['lib/session.js', 'lib/http2/session.js', 'lib/http2/node/capsuleparser.js'] as const;

let h2State: Availability | undefined;
let h3State: Availability | undefined;

/** Whether the HTTP/2 engine can be loaded (checked on disk once, nothing loaded). */
export function http2State(): Availability {
  h2State ??= findHttp2();
  return h2State;
}

function findHttp2(): Availability {
  const dir = packageDirectory(PACKAGE);
  if (dir === undefined) return { available: false, reason: `${PACKAGE} is not installed` };
  const missing = ENGINE_FILES.filter((f) => !existsSync(join(dir, f)));
  if (missing.length > 0) return { available: false, reason: `${PACKAGE} at ${dir} lacks ${missing.join(', ')} (an unsupported version)` };
  return { available: true };
}

let engine: Promise<Http2Engine> | undefined;

/** Load the HTTP/2 engine once. Rejects with ERR_TAPS_UNAVAILABLE when it cannot be had. */
export function loadHttp2Engine(): Promise<Http2Engine> {
  engine ??= loadEngine();
  return engine;
}

async function loadEngine(): Promise<Http2Engine> {
  const state = http2State();
  const dir = packageDirectory(PACKAGE);
  if (!state.available || dir === undefined) {
    engine = undefined;
    throw new TapsError('ERR_TAPS_UNAVAILABLE', state.available ? `${PACKAGE} is not installed` : state.reason);
  }
  const load = async (file: string): Promise<Record<string, unknown>> => (await import(pathToFileURL(join(dir, file)).href)) as Record<string, unknown>;
  const [sessionJs, h2SessionJs, parserJs] = await Promise.all(ENGINE_FILES.map(load));
  const HttpWTSession = sessionJs?.['HttpWTSession'] as Ctor | undefined;
  const Http2WebTransportSession = h2SessionJs?.['Http2WebTransportSession'] as Ctor | undefined;
  const Http2CapsuleParser = parserJs?.['Http2CapsuleParser'] as Ctor | undefined;
  if (typeof HttpWTSession !== 'function' || typeof Http2WebTransportSession !== 'function' || typeof Http2CapsuleParser !== 'function') {
    engine = undefined;
    throw new TapsError('ERR_TAPS_UNAVAILABLE', `${PACKAGE} at ${dir} does not have the HTTP/2 engine classes this driver was written for (1.6.x)`);
  }
  const parent = Object.freeze({});
  return {
    session(init: EngineSessionInit): WtSession {
      const { stream, isClient, windows: w } = init;
      const r = init.remote ?? {};
      const native = new Http2WebTransportSession({
        stream,
        isclient: isClient,
        createParser: (nativesession: unknown) =>
          new Http2CapsuleParser({
            stream,
            nativesession,
            isclient: isClient,
            initialStreamSendWindowOffsetBidi: r[WT_MAX_STREAM_DATA_BIDI] ?? w.stream,
            initialStreamSendWindowOffsetUnidi: r[WT_MAX_STREAM_DATA_UNI] ?? w.stream,
            initialStreamReceiveWindowOffset: w.stream,
            streamShouldAutoTuneReceiveWindow: true,
            streamReceiveWindowSizeLimit: w.stream,
          }),
        initialBidirectionalSendStreams: r[WT_MAX_STREAMS_BIDI] ?? w.streams,
        initialBidirectionalReceiveStreams: w.streams,
        initialUnidirectionalSendStreams: r[WT_MAX_STREAMS_UNI] ?? w.streams,
        initialUnidirectionalReceiveStreams: w.streams,
        sendWindowOffset: r[WT_MAX_DATA] ?? w.session,
        // The window we advertised, exactly: the package's own server advertises 16 KiB but assumes
        // 15 MiB here, and a client then stalls after 16 KiB of a session's data.
        receiveWindowOffset: w.session,
        shouldAutoTuneReceiveWindow: true,
        receiveWindowSizeLimit: w.session,
      });
      let session: Record<string, unknown>;
      if (isClient) {
        session = new HttpWTSession({ parentobj: parent });
        (session['setSessionObj'] as (o: unknown, reliable: boolean) => void).call(session, native, true);
      } else {
        session = new HttpWTSession({ object: native, parentobj: parent, header: init.header, peerAddress: init.peerAddress });
      }
      const wt = session as unknown as WtSession;
      // Nobody may be waiting on these when a handshake fails: never an unhandled rejection.
      wt.ready.catch(() => {});
      wt.closed.catch(() => {});
      return wt;
    },
  };
}

/** Why the h3 stacks cannot run without the native module; the HTTP/3 path has never run in this project's tests. */
export const HTTP3_MISSING = `native HTTP/3 transport not installed (optional ${NATIVE_HTTP3}; the HTTP/3 path is unverified)`;

/** Whether the native HTTP/3 module is installed where the package would import it from (checked on disk once, nothing loaded). */
export function http3State(): Availability {
  h3State ??= findHttp3();
  return h3State;
}

function findHttp3(): Availability {
  const dir = packageDirectory(PACKAGE);
  if (dir === undefined) return { available: false, reason: `${PACKAGE} is not installed` };
  const from = pathToFileURL(join(dir, 'lib', 'index.node.js'));
  if (packageDirectory(NATIVE_HTTP3, from) === undefined) return { available: false, reason: HTTP3_MISSING };
  return { available: true };
}

/** The package's public API, for HTTP/3. */
export interface PublicApi {
  readonly WebTransport: new (url: string, options: Record<string, unknown>) => WtSession;
  readonly Http3Server: new (options: Record<string, unknown>) => {
    startServer(): void;
    stopServer(): void;
    readonly ready: Promise<void>;
    address(): { port: number; host: string; family: 'IPv4' | 'IPv6' } | null;
    sessionStream(path: string): ReadableStream<WtSession & { readonly peerAddress?: string }>;
  };
}

let publicApi: Promise<PublicApi> | undefined;

/**
 * Load the native module, then the package's entry point. Only called when
 * {@link http3State} said the module is there; a native module that fails to
 * load (e.g. a binary for another platform) rejects with ERR_TAPS_UNAVAILABLE.
 */
export function loadHttp3Api(): Promise<PublicApi> {
  publicApi ??= (async () => {
    const state = http3State();
    const dir = packageDirectory(PACKAGE);
    const nativeDir = dir === undefined ? undefined : packageDirectory(NATIVE_HTTP3, pathToFileURL(join(dir, 'lib', 'index.node.js')));
    if (!state.available || dir === undefined || nativeDir === undefined) {
      throw new TapsError('ERR_TAPS_UNAVAILABLE', state.available ? HTTP3_MISSING : state.reason);
    }
    try {
      // Load it first on its own: if it fails, the entry point (which would print the failure) is never evaluated.
      await import(NATIVE_HTTP3);
    } catch (err) {
      throw new TapsError('ERR_TAPS_UNAVAILABLE', `native HTTP/3 transport failed to load: ${(err as Error)?.message ?? String(err)}`, { cause: err });
    }
    const api = (await import(PACKAGE)) as unknown as PublicApi & { quicheLoaded?: Promise<unknown> };
    await api.quicheLoaded;
    return api;
  })();
  publicApi.catch(() => (publicApi = undefined));
  return publicApi;
}
