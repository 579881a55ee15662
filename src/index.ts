/**
 * taps-node: IETF Transport Services (RFC 9621, 9622, 9623) for Node.js.
 *
 * Ask for a connection by what it needs; the library gathers candidate
 * stacks for every resolved address, checks each against the tenant's
 * policy, ranks and races them, and hands back one {@link Connection}.
 * Drivers are loaded lazily from `taps-node/node` (or registered by hand);
 * this module holds no socket code.
 *
 * @example
 * import { Host, Preconnection, TransportProperties, lengthPrefixFramer } from 'taps-node';
 * const host = new Host();
 * host.setPolicy('acme', 'allow tls://localhost:8443');
 * const pre = new Preconnection({
 *   scope: await host.tenant('acme'),
 *   remote: 'localhost:8443',
 *   properties: TransportProperties.reliableMessage(),
 *   framers: [lengthPrefixFramer()],
 * });
 * await using conn = await pre.initiate({ signal: AbortSignal.timeout(5000) });
 *
 * @module taps-node
 */
export { Preconnection, type PreconnectionInit, type InitiateOptions, type PreconnectionEvents, type ResolveOptions, type RendezvousOptions } from './preconnection.js';
export { Connection, type ConnectionEvents, type ConnectionInit, type ConnState } from './connection/connection.js';
export type { ConnectionPropertiesInit, SettableConnectionProperties } from './connection/properties.js';
export { Listener, type ListenerEvents, type ListenOptions } from './listener.js';
export { Message, PartialMessage, MESSAGE_PROPERTY_NAMES, type MessageContextInit, type ReceivedContext, type CapacityProfile } from './message.js';
export { lengthPrefixFramer, delimiterFramer, framerStack, type MessageFramer, type Deframer, type DeframerSink, type LengthPrefixOptions, type DelimiterOptions } from './framers/index.js';
export { TypedEmitter, type EventMap } from './events.js';
export * from './properties.js';
export { isMulticast } from './paths/multicast.js';
export { PathMonitor, systemPathMonitor, type PathChange, type PathMonitorOptions } from './paths/monitor.js';
export { localAddresses, type LocalAddress, type InterfaceSource, type TemporaryFlags } from './paths/interfaces.js';
export { RemoteEndpoint, LocalEndpoint, WELL_KNOWN_PORTS, type RemoteEndpointInit, type LocalEndpointInit, type LocalEndpointFields } from './endpoints.js';
export * from './security.js';
export * from './errors.js';
export { explainReport, candidateLabel, droppedGroups, type DroppedGroup, type SelectionReport, type CandidateRecord, type CandidateFate, type ResolutionRecord } from './report.js';
export { registerDriver, unregisterDriver, registeredDrivers, warmUp } from './registry.js';
export { SystemNetwork, DelegatingNetwork, type Network, type Resolver, type ResolvedAddress } from './network.js';
export { DEFAULT_RACING } from './selection/racing-options.js';
export { RacingCache, racingCacheOf, RACING_CACHE_DEFAULTS, type RacingCacheEntry, type RacingCacheOptions } from './selection/racing-cache.js';
export type { RacingOptions } from './selection/pipeline.js';
export type * from './driver.js';
export type * from './driver-options.js';
export { NEVER_ABORTED, NO_CAPABILITIES } from './driver.js';
export * from './policy/index.js';
export { systemClock, type Clock } from './clock.js';
export { connectionDuplex, connectionStreams } from './streams.js';
