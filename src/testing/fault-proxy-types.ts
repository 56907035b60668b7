/**
 * The options and counters of a `FaultProxy` (exported by `heartwire/testing/fault-proxy`).
 * @module
 */

/**
 * One direction of a proxied connection. `'client-to-server'` carries what the client (the
 * socket that connected to the proxy) sends to the target; `'server-to-client'` the reverse.
 */
export type FaultDirection = 'client-to-server' | 'server-to-client';

/** A TCP endpoint. */
export interface FaultProxyEndpoint {
  /** Host name or IP address (use an IP literal such as `'127.0.0.1'` to avoid DNS look-ups). */
  host: string;
  /** TCP port. */
  port: number;
}

/** Options of a {@link FaultProxy}. */
export interface FaultProxyOptions {
  /** Where the proxy connects for every connection it accepts. */
  target: FaultProxyEndpoint;
  /** Address the proxy listens on. Default `'127.0.0.1'`. */
  listenHost?: string;
  /** Port the proxy listens on. Default 0 (any free port; see {@link FaultProxy.listen}). */
  listenPort?: number;
  /**
   * Bytes that one direction of one connection may hold (delayed by latency, held back by the
   * bandwidth cap, or waiting for the receiving socket to drain) before the proxy stops
   * reading from the sender, so backpressure reaches it as it would through a real path.
   * Reading resumes once the queue is back at or below this size. Default 4 MiB.
   */
  maxQueuedBytes?: number;
}

/** Byte counters of one direction, summed over all connections, past and present. */
export interface FaultDirectionStats {
  /** Bytes written to the receiving side. */
  forwardedBytes: number;
  /**
   * Bytes read from the sending side and thrown away: read during a black hole, queued when a
   * black hole began, or addressed to a socket that was already closed.
   */
  discardedBytes: number;
  /** Bytes read and not yet forwarded (current connections only). */
  queuedBytes: number;
}

/** A snapshot of a {@link FaultProxy}'s counters. */
export interface FaultProxyStats {
  /** Connections accepted since {@link FaultProxy.listen}, including held and refused ones. */
  acceptedConnections: number;
  /** Connections reset on accept because of {@link FaultProxy.refuseNew}. */
  refusedConnections: number;
  /**
   * Connections accepted during a black hole (and so never connected to the target) since
   * {@link FaultProxy.listen}, including those already closed.
   */
  heldConnections: number;
  /** Counters of the client-to-server direction. */
  clientToServer: FaultDirectionStats;
  /** Counters of the server-to-client direction. */
  serverToClient: FaultDirectionStats;
}
