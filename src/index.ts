/**
 * heartwire: a framed heartbeat protocol over TCP with credit-based flow control.
 *
 * - `createServer()` / `connect()`: Node transport (TCP or TLS).
 * - `Engine`: the sans-IO protocol engine, for other transports and for testing.
 * - Errors are classes with stable `code` strings.
 * @packageDocumentation
 */
export { createServer, Server } from './node/server.js';
export type { ServerEvents } from './node/server.js';
export { connect } from './node/connect.js';
export { Connection } from './node/connection.js';
export type { ConnectionEvents, ConnectionStats, HandleOptions } from './node/connection.js';
export type { ConnectionOptions, ConnectOptions, ServerOptions } from './node/options.js';
export { channels as diagnosticsChannels } from './node/diagnostics.js';
export * from './protocol/index.js';
export { ReconnectingClient } from './node/reconnect.js';
export type { ReconnectOptions, Disconnection, ReconnectingClientEvents } from './node/reconnect.js';
export { applyKeepAlive } from './node/socket-options.js';
