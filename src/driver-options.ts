/**
 * The types of `driverOptions` (a Preconnection's options per driver id), so
 * a misspelt or mistyped option of a driver this package ships is a compile
 * error. Types only: each driver still checks its options at run time and
 * throws naming the option. A custom driver's id takes any object; to type
 * it, merge an entry into {@link DriverOptionsById}:
 *
 * @example
 * declare module 'taps-node' {
 *   interface DriverOptionsById { mydriver: { readonly retries?: number } }
 * }
 * new Preconnection({ scope, remote, driverOptions: { tcp: { keepAlive: 30 }, quic: { alpn: ['h3'] } } });
 */

/** Options of the `tcp` driver (and of `tls`, which runs on its socket). */
export interface TcpDriverOptions {
  /** ms a graceful close may wait for the peer before the socket is destroyed (≥ 0). */
  readonly closeTimeout?: number | undefined;
  /** TCP keep-alive: `true`, or the idle time in seconds before the first probe. */
  readonly keepAlive?: true | number | undefined;
  /** Listener: the listen backlog. */
  readonly backlog?: number | undefined;
  /** Listener on `::`: accept IPv6 only. */
  readonly ipv6Only?: boolean | undefined;
}

/** Server-side TLS options shared by every TLS listener (tls, wss, webtransport-h2). */
export interface TlsListenerOptions {
  /** Ask clients for a certificate and verify it against `security.ca`. */
  readonly requestClientCertificate?: boolean | undefined;
  /** ms a TLS handshake may take (> 0): on the listener, and on the client for `tls` (default 10 s; then ERR_TAPS_TIMEOUT). */
  readonly handshakeTimeout?: number | undefined;
}

/** Options of the `tls` driver. */
export interface TlsDriverOptions extends TcpDriverOptions, TlsListenerOptions {}

/** Options of the `udp` driver. */
export interface UdpDriverOptions {
  /** The path MTU (576–65536) that decides the largest datagram sent in one packet. */
  readonly pathMtu?: number | undefined;
  /** SO_RCVBUF in bytes (default 4 MiB; also the property `udp.recvBufferSize`). */
  readonly recvBufferSize?: number | undefined;
  /** SO_SNDBUF in bytes. */
  readonly sendBufferSize?: number | undefined;
  /** Datagrams handed to the kernel per turn before `send()` waits. */
  readonly sendHighWater?: number | undefined;
  /** Listener: most peers demultiplexed at once (default 4096). */
  readonly maxPeers?: number | undefined;
  /** Listener: ms after which a silent peer's connection ends. */
  readonly idleTimeout?: number | undefined;
  /** Listener on `::`: accept IPv6 only. */
  readonly ipv6Only?: boolean | undefined;
}

/** Options of the `ws` and `wss` drivers. */
export interface WebSocketDriverOptions extends TlsListenerOptions {
  /** Request path of the opening handshake (default: the endpoint's). */
  readonly path?: string | undefined;
  /** Subprotocols offered (client) or accepted (listener). */
  readonly subprotocols?: readonly string[] | undefined;
  /** Extra opening-handshake headers. */
  readonly headers?: Readonly<Record<string, string>> | undefined;
  /** Largest message accepted, in bytes (default 16 MiB; also the property `ws.maxPayload`). */
  readonly maxPayload?: number | undefined;
  /** permessage-deflate (default false). */
  readonly perMessageDeflate?: boolean | undefined;
  /** ms the opening handshake may take. */
  readonly handshakeTimeout?: number | undefined;
  /** ms a closing handshake may take before the socket is destroyed. */
  readonly closeTimeout?: number | undefined;
}

/** Options of the `http`, `https` and `https2` drivers. */
export interface HttpDriverOptions {
  /** Default request path (default: the endpoint's, else `/`). */
  readonly path?: string | undefined;
  /** Redirects: returned as responses (`manual`, default), followed under policy, or an error. */
  readonly redirect?: 'manual' | 'follow' | 'error' | undefined;
  /** Most redirect hops followed. */
  readonly maxRedirections?: number | undefined;
  /** Largest response body buffered for one message, in bytes. */
  readonly maxBufferedBody?: number | undefined;
  /** Largest response accepted, in bytes (-1: no limit). */
  readonly maxResponseSize?: number | undefined;
  /** ms an idle kept-alive connection stays open. */
  readonly keepAliveTimeout?: number | undefined;
  /** HTTP/1.1 requests in flight on one connection. */
  readonly pipelining?: number | undefined;
  /** ms to wait for response headers. */
  readonly headersTimeout?: number | undefined;
  /** ms to wait between body chunks. */
  readonly bodyTimeout?: number | undefined;
}

/** Options of the `quic` driver. */
export interface QuicDriverOptions {
  /** ALPN protocols when `security.alpn` gives none (default `['taps']`). */
  readonly alpn?: readonly string[] | undefined;
  /** ms before a handshake nobody answers is given up (default 10000). */
  readonly connectTimeout?: number | undefined;
  /** QUIC max_idle_timeout in ms (default off). */
  readonly idleTimeout?: number | undefined;
  /** ms a stream's graceful close waits for the peer's FIN (default 5000). */
  readonly closeTimeout?: number | undefined;
  /** Send PINGs this often (ms) to keep an idle connection open. */
  readonly keepAliveInterval?: number | undefined;
  /** Largest UDP payload sent and accepted, in bytes. */
  readonly maxUdpPayload?: number | undefined;
}

/** Options of the WebTransport drivers. */
export interface WebTransportDriverOptions extends TlsListenerOptions {
  /** Path of the extended CONNECT (client: the endpoint's; listener: only this path). */
  readonly path?: string | undefined;
  /** Bytes the peer may have in flight on all streams (default 15 MiB). */
  readonly sessionWindow?: number | undefined;
  /** Bytes the peer may have in flight per stream (default 6 MiB). */
  readonly streamWindow?: number | undefined;
  /** Streams the peer may open, per direction kind (default 100). */
  readonly maxStreams?: number | undefined;
  /** ms a graceful stream close waits for the peer's FIN (default 2000). */
  readonly closeTimeout?: number | undefined;
}

/** The options of each driver id this package ships; merge entries for your own drivers. */
export interface DriverOptionsById {
  tcp: TcpDriverOptions;
  tls: TlsDriverOptions;
  udp: UdpDriverOptions;
  ws: WebSocketDriverOptions;
  wss: WebSocketDriverOptions;
  http: HttpDriverOptions;
  https: HttpDriverOptions;
  https2: HttpDriverOptions;
  quic: QuicDriverOptions;
  'webtransport-h2': WebTransportDriverOptions;
  'webtransport-h3': WebTransportDriverOptions;
  'webtransport-h3-datagram': WebTransportDriverOptions;
}

/** `driverOptions`: options per driver id, typed for the ids of {@link DriverOptionsById}, any object for others. */
export type DriverOptions = { readonly [K in keyof DriverOptionsById]?: DriverOptionsById[K] | undefined } & {
  readonly [id: string]: object | undefined;
};
