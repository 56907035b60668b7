/**
 * heartwire: a framed heartbeat protocol over TCP with credit-based flow control.
 *
 * - `createServer()` / `connect()`: Node transport (TCP or TLS); `ReconnectingClient` on top.
 * - `Engine`: the sans-IO protocol engine, for other transports and for testing.
 * - Errors are classes with stable `code` strings.
 *
 * Subpaths: `heartwire/testing` (virtual clock, simulated network, fault proxy, fast-check
 * arbitraries; needs the optional peer dependency `fast-check`) and `heartwire/wire` (wire
 * constants, frame types and the frame codec).
 * @packageDocumentation
 */
export { createServer, Server } from './node/server.js';
export type { ServerEvents } from './node/server.js';
export { connect } from './node/connect.js';
export type { Payload } from './node/payload.js';
export { Connection } from './node/connection.js';
export type { ConnectionEvents, ConnectionStats, EndOptions, HandleOptions } from './node/connection.js';
export type { ConnectionOptions, ConnectOptions, Endpoint, ServerOptions } from './node/options.js';
export type { LifecycleOptions } from './node/lifecycle.js';
export { channels as diagnosticsChannels } from './node/diagnostics.js';
export { ReconnectingClient } from './node/reconnect.js';
export type { ReconnectOptions, Disconnection, Move, ReconnectingClientEvents } from './node/reconnect.js';
export { applyKeepAlive } from './node/socket-options.js';
export { Engine } from './protocol/engine.js';
export type { GoAwayOptions } from './protocol/connection/termination.js';
export { SharedMemoryBudget } from './protocol/budget.js';
export type { SharedMemoryBudgetOptions } from './protocol/budget.js';
export * from './protocol/errors.js';
export type * from './protocol/types.js';
export { GoAwayReason } from './protocol/frames.js';
