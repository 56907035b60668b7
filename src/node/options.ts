/**
 * Options shared by `connect()` and `createServer()`, and their translation to engine options.
 * @module
 */
import type { ConnectionOptions as TlsConnectionOptions, TlsOptions } from 'node:tls';
import type { EngineOptions, MemoryBudget } from '../protocol/types.js';

/** Options of a connection, client or server side. Times in ms, sizes in bytes. */
export interface ConnectionOptions {
  /** Silence this side tolerates before it declares the peer dead (`HEARTBEAT_TIMEOUT`). Default 20 000. */
  idleTimeout?: number;
  /** Largest receive window (credit granted to the peer). Default 8 MiB; it starts at `initialReceiveWindow` and auto-tunes. */
  receiveWindow?: number;
  /** Receive window a connection starts with and shrinks back to when idle. Default 64 KiB (at most `receiveWindow`). */
  initialReceiveWindow?: number;
  /** Largest message this side accepts. Default 4 MiB (at most what fits `receiveWindow`). */
  maxMessageSize?: number;
  /** Largest DATA frame payload this side accepts. Default 64 KiB. */
  maxFramePayload?: number;
  /**
   * Bound of the send queue, which keeps every accepted message until the peer reports it
   * consumed (for the delivery report): messages are accepted while it holds less than this,
   * each counting its payload plus 64 bytes; then `write()` returns false and `send()` waits.
   * It also caps the bytes in flight (keep it above bandwidth × RTT). Default 4 MiB.
   */
  maxSendQueue?: number;
  /** Bound on the heartwire handshake (after TCP/TLS connect). Default 10 000. */
  handshakeTimeout?: number;
  /** Bound on the termination handshake. Default 30 000. */
  closeTimeout?: number;
  /** Fail with `WRITE_STALL` when the socket accepts no bytes for this long. Default: `idleTimeout`; 0 disables. */
  writeStallTimeout?: number;
  /** Fail with `CREDIT_STALL` when blocked on the peer's credit this long. Default 0 (never; a `credit-stall` event is emitted after 5 s). */
  creditStallTimeout?: number;
  /** Bytes kept in the socket's user-space buffer at most; more DATA waits in the engine so control frames stay prompt. Default 256 KiB. */
  socketBufferTarget?: number;
  /** Application protocols to negotiate (ALPN-like). */
  applicationProtocols?: readonly string[];
  /** Shared memory budget for receive-window growth (see `SharedMemoryBudget`). */
  memoryBudget?: MemoryBudget;
  /** Abort the connection (or the connect attempt) when this signal aborts. */
  signal?: AbortSignal;
}

/** Where a server listens: TCP `{ host, port }` or a Unix domain socket `{ path }`. */
export type Endpoint = { host: string; port: number } | { path: string };

/** Options of `connect()`. */
export interface ConnectOptions extends ConnectionOptions {
  /** Host to connect to (with `port`), unless `endpoints` is given. */
  host?: string;
  port?: number;
  /** Unix domain socket to connect to (instead of `host`/`port`), unless `endpoints` is given. */
  path?: string;
  /** Several endpoints (TCP or Unix) tried in staggered parallel; the first handshake wins. */
  endpoints?: readonly Endpoint[];
  /** Delay before starting the next endpoint while earlier ones are pending. Default 250. */
  attemptStagger?: number;
  /** Bound on each TCP (and TLS) connect attempt. Default 10 000. */
  connectTimeout?: number;
  /** Connect with TLS using these `node:tls` options (`true` for defaults). */
  tls?: TlsConnectionOptions | true;
  /** Local address to bind to. */
  localAddress?: string;
}

/** Options of `createServer()`. */
export interface ServerOptions extends ConnectionOptions {
  /** Serve TLS with these `node:tls` options (key and cert at least). */
  tls?: TlsOptions;
  /** Maximum simultaneous connections; beyond it new ones get ERROR `REFUSED`. Default 10 000. */
  maxConnections?: number;
  /** Range the server clamps the client's idle timeout to. Default [1000, 86 400 000]. */
  clientIdleTimeoutRange?: readonly [number, number];
  /** Grace period of the GOAWAY sent by `conn.end()` without an argument. Default 5 000. */
  defaultGrace?: number;
}

/** Translate user options to engine options. */
export function engineOptions(
  role: 'client' | 'server',
  options: ConnectionOptions & Pick<ServerOptions, 'clientIdleTimeoutRange'>,
): EngineOptions {
  const initial = options.initialReceiveWindow ?? Math.min(64 * 1024, options.receiveWindow ?? 64 * 1024);
  return {
    role,
    idleTimeoutMs: options.idleTimeout,
    initialWindowBytes: initial,
    maxWindowBytes: options.receiveWindow,
    maxMessageBytes: options.maxMessageSize,
    maxFramePayloadBytes: options.maxFramePayload,
    maxSendQueueBytes: options.maxSendQueue,
    handshakeTimeoutMs: options.handshakeTimeout,
    closeTimeoutMs: options.closeTimeout,
    writeStallTimeoutMs: options.writeStallTimeout,
    creditStallTimeoutMs: options.creditStallTimeout,
    clientIdleTimeoutRangeMs: options.clientIdleTimeoutRange,
    applicationProtocols: options.applicationProtocols,
    budget: options.memoryBudget,
    seed: (Math.random() * 0x1_0000_0000) >>> 0,
  };
}
