/**
 * A real TCP proxy on loopback whose faults can be switched at runtime, for integration tests
 * and demos (`heartwire/testing/fault-proxy`).
 *
 * Put a {@link FaultProxy} between a client and a server (heartwire or plain sockets) to
 * reproduce what real networks do to TCP connections: a dead path (black hole) that senders
 * cannot see, added latency, a bandwidth cap, data delivered in tiny pieces, and connections
 * reset by RST. Every fault can be switched on and off while connections are open.
 *
 * @module
 */
import net from 'node:net';
import type {
  FaultDirection,
  FaultDirectionStats,
  FaultProxyEndpoint,
  FaultProxyOptions,
  FaultProxyStats,
} from './fault-proxy-types.js';
import {
  DIRECTIONS,
  type DirectionFaults,
  noFaults,
  Pipe,
  type PipeContext,
  resetSocket,
} from './fault-proxy-pipe.js';

export type {
  FaultDirection,
  FaultDirectionStats,
  FaultProxyEndpoint,
  FaultProxyOptions,
  FaultProxyStats,
} from './fault-proxy-types.js';

const DEFAULT_MAX_QUEUED_BYTES = 4 * 1024 * 1024;

/** A proxied connection: the accepted client leg and (unless held) the leg to the target. */
interface Connection {
  readonly client: net.Socket;
  readonly server: net.Socket | null;
  readonly clientToServer: Pipe;
  /** Null when the connection is held. */
  readonly serverToClient: Pipe | null;
}

function checkDirection(direction: FaultDirection | undefined): readonly FaultDirection[] {
  if (direction === undefined) return DIRECTIONS;
  if (!DIRECTIONS.includes(direction)) {
    throw new TypeError(`FaultProxy: direction must be 'client-to-server' or 'server-to-client'`);
  }
  return [direction];
}

/** Cancels the timers and discards the queues of both directions of `conn`. */
function drop(conn: Connection): void {
  conn.clientToServer.drop();
  conn.serverToClient?.drop();
}

/**
 * A TCP proxy with faults switchable at runtime. Each accepted connection gets its own
 * connection to the target; bytes are forwarded both ways, subject to the current faults.
 *
 * Behaviour common to all faults:
 *
 * - Both legs use `noDelay` (no Nagle delay added by the proxy) and `allowHalfOpen`: when one
 *   side ends its writing (FIN), the proxy ends the other leg once everything queued in that
 *   direction has been written. A side that closes abruptly (RST, or a socket error) makes the
 *   proxy reset the other leg, as the RST would have reached it through a real path.
 * - Data addressed to a side that has already closed is discarded and the sender is reset, as
 *   a real peer's kernel would answer with RST (unless the way back is black-holed).
 * - Socket errors on either leg never escape: they end up as `'close'` of that leg.
 * - Memory stays bounded: see {@link FaultProxyOptions.maxQueuedBytes}.
 * - Latency, bandwidth and slicing apply in that order: a chunk becomes eligible
 *   `latencyMs` after the proxy read it, is then paced by the bandwidth cap, and written in
 *   slices. Byte order is always preserved.
 *
 * @example
 * ```ts
 * import { connect, createServer } from 'heartwire';
 * import { FaultProxy } from 'heartwire/testing/fault-proxy';
 *
 * const server = createServer({ idleTimeout: 1000 }, (conn) => conn.handle(() => {}));
 * const { port: serverPort } = await server.listen(0);
 * const proxy = new FaultProxy({ target: { host: '127.0.0.1', port: serverPort } });
 * const { host, port } = await proxy.listen();
 * const conn = await connect({ host, port, idleTimeout: 1000 });
 * proxy.blackhole(); // both sides keep writing without errors; nothing arrives
 * const error = await conn.closed.catch((e: { code: string }) => e);
 * console.log('client:', (error as { code: string }).code); // → client: HEARTBEAT_TIMEOUT
 * await proxy.close();
 * await server.close();
 * ```
 */
export class FaultProxy {
  readonly #target: FaultProxyEndpoint;
  readonly #listenHost: string;
  readonly #listenPort: number;
  readonly #maxQueuedBytes: number;
  readonly #faults: Record<FaultDirection, DirectionFaults>;
  readonly #pipeContext: PipeContext;
  readonly #connections = new Set<Connection>();
  /** Every socket the proxy owns, until its `'close'` event, with a promise of that event. */
  readonly #sockets = new Map<net.Socket, Promise<void>>();
  #server: net.Server | undefined;
  #address: FaultProxyEndpoint | undefined;
  #refusing = false;
  #closing: Promise<void> | undefined;
  #accepted = 0;
  #refused = 0;
  #held = 0;

  /**
   * Creates a proxy; nothing is opened until {@link listen}.
   * @throws TypeError if `target` is malformed; RangeError if a port or `maxQueuedBytes` is
   *   out of range.
   */
  constructor(options: FaultProxyOptions) {
    const { target } = options;
    if (!target || typeof target.host !== 'string' || !Number.isInteger(target.port)) {
      throw new TypeError('FaultProxy: target must be { host: string, port: integer }');
    }
    if (target.port < 1 || target.port > 65535) throw new RangeError('FaultProxy: target.port out of range');
    this.#target = { host: target.host, port: target.port };
    this.#listenHost = options.listenHost ?? '127.0.0.1';
    this.#listenPort = options.listenPort ?? 0;
    if (!Number.isInteger(this.#listenPort) || this.#listenPort < 0 || this.#listenPort > 65535) {
      throw new RangeError('FaultProxy: listenPort out of range');
    }
    this.#maxQueuedBytes = options.maxQueuedBytes ?? DEFAULT_MAX_QUEUED_BYTES;
    if (!Number.isInteger(this.#maxQueuedBytes) || this.#maxQueuedBytes < 1) {
      throw new RangeError('FaultProxy: maxQueuedBytes must be a positive integer');
    }
    this.#faults = { 'client-to-server': noFaults(), 'server-to-client': noFaults() };
    this.#pipeContext = {
      faults: this.#faults,
      maxQueuedBytes: this.#maxQueuedBytes,
      closing: () => this.#closing !== undefined,
    };
  }

  /**
   * Starts listening.
   * @returns the address clients should connect to (the actual port when `listenPort` is 0).
   * @throws if the proxy is already listening or closed, or the address cannot be bound.
   */
  async listen(): Promise<FaultProxyEndpoint> {
    if (this.#closing) throw new Error('FaultProxy: closed');
    if (this.#server) throw new Error('FaultProxy: listen() was already called');
    const server = net.createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.#accept(socket));
    this.#server = server;
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      server.once('error', onError);
      server.listen(this.#listenPort, this.#listenHost, () => {
        server.off('error', onError);
        resolve();
      });
    });
    // Errors after listening (e.g. EMFILE on accept) must not crash the process.
    server.on('error', () => {});
    const address = server.address() as net.AddressInfo;
    this.#address = { host: address.address, port: address.port };
    return { ...this.#address };
  }

  /** The address the proxy listens on, or `undefined` before {@link listen} resolved. */
  get address(): FaultProxyEndpoint | undefined {
    return this.#address ? { ...this.#address } : undefined;
  }

  /**
   * Number of current connections: accepted and not yet fully closed, held ones included
   * (refused ones excluded).
   */
  get connections(): number {
    return this.#connections.size;
  }

  /** A snapshot of the byte and connection counters. */
  get stats(): FaultProxyStats {
    const direction = (d: FaultDirection): FaultDirectionStats => {
      let queuedBytes = 0;
      for (const c of this.#connections) {
        const pipe = d === 'client-to-server' ? c.clientToServer : c.serverToClient;
        queuedBytes += pipe?.queuedBytes ?? 0;
      }
      const f = this.#faults[d];
      return { forwardedBytes: f.forwardedBytes, discardedBytes: f.discardedBytes, queuedBytes };
    };
    return {
      acceptedConnections: this.#accepted,
      refusedConnections: this.#refused,
      heldConnections: this.#held,
      clientToServer: direction('client-to-server'),
      serverToClient: direction('server-to-client'),
    };
  }

  /** Whether `direction` is currently black-holed. */
  isBlackholed(direction: FaultDirection): boolean {
    return this.#faults[checkDirection(direction)[0]].blackholed;
  }

  /**
   * Stops forwarding in `direction` (default: both), like a path that silently drops every
   * packet behind the proxy. Both sockets stay open and the proxy keeps reading from them, so
   * their kernels keep acknowledging and senders see no error and no backpressure. Everything
   * read in a black-holed direction is discarded, and so is what was queued in it (delayed
   * data is lost in flight). Bytes the proxy had already handed to the receiving socket (at
   * most that socket's write buffer, about 16 KiB) are still delivered. A FIN received
   * meanwhile is held and forwarded after {@link heal}; an RST is held likewise.
   *
   * While any direction is black-holed, newly accepted connections are held: they stay open
   * and silent, are never connected to the target (not even after {@link heal}), and what
   * they send is discarded. That is the closest loopback gets to a SYN into a dead path. Only
   * {@link reset} or {@link close} end them, or the client itself.
   */
  blackhole(direction?: FaultDirection): void {
    for (const d of checkDirection(direction)) {
      this.#faults[d].blackholed = true;
      for (const pipe of this.#pipes(d)) {
        pipe.drop();
        pipe.updateFlow();
      }
    }
  }

  /**
   * Forwards `direction` (default: both) again. What was discarded stays lost; new data flows
   * at once. FINs and RSTs held by the black hole are delivered now.
   */
  heal(direction?: FaultDirection): void {
    for (const d of checkDirection(direction)) this.#faults[d].blackholed = false;
    for (const c of [...this.#connections]) this.#settle(c);
    this.#kickAll();
  }

  /**
   * Delays every chunk read in `direction` (default: both) by `ms` before it may be written.
   * Order is preserved. Applies to data read from now on (queued data keeps its delay).
   * @throws RangeError if `ms` is negative or not finite.
   */
  setLatency(ms: number, direction?: FaultDirection): void {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError('FaultProxy: latency must be a finite ms >= 0');
    for (const d of checkDirection(direction)) this.#faults[d].latencyMs = ms;
    this.#kickAll();
  }

  /**
   * Caps the rate of each connection in `direction` (default: both) at `bytesPerSecond`
   * (`undefined` removes the cap). The cap is applied per connection and paced in small
   * writes (about 20 ms worth each), without bursts after idle periods.
   * @throws RangeError if `bytesPerSecond` is not a positive finite number.
   */
  setBandwidth(bytesPerSecond: number | undefined, direction?: FaultDirection): void {
    if (bytesPerSecond !== undefined && !(Number.isFinite(bytesPerSecond) && bytesPerSecond > 0)) {
      throw new RangeError('FaultProxy: bandwidth must be a positive finite number of bytes per second');
    }
    for (const d of checkDirection(direction)) this.#faults[d].bytesPerSecond = bytesPerSecond;
    this.#kickAll();
  }

  /**
   * Delivers data in `direction` (default: both) in slices of at most `maxChunkBytes`, each
   * written separately with a `setImmediate` turn in between, so the receiver tends to see
   * many small reads (the kernel may still coalesce some). `undefined` switches slicing off.
   * @throws RangeError if `maxChunkBytes` is not a positive integer.
   */
  setSlicing(maxChunkBytes: number | undefined, direction?: FaultDirection): void {
    if (maxChunkBytes !== undefined && !(Number.isInteger(maxChunkBytes) && maxChunkBytes > 0)) {
      throw new RangeError('FaultProxy: maxChunkBytes must be a positive integer');
    }
    for (const d of checkDirection(direction)) this.#faults[d].maxChunkBytes = maxChunkBytes;
    this.#kickAll();
  }

  /**
   * While `refuse` is true, every new connection is accepted and at once reset (RST), so the
   * client sees `'connect'` and then ECONNRESET (a true ECONNREFUSED would need the port to be
   * closed, which another socket could then take). Current connections are not affected.
   */
  refuseNew(refuse = true): void {
    this.#refusing = refuse;
  }

  /**
   * Resets every current connection: both legs are closed with RST
   * (`socket.resetAndDestroy()`), so the client and the server each get ECONNRESET. Queued
   * data is discarded. The proxy keeps listening.
   */
  reset(): void {
    for (const c of this.#connections) {
      drop(c);
      resetSocket(c.client);
      if (c.server) resetSocket(c.server);
    }
  }

  /**
   * Stops listening and destroys every connection (both legs), clearing all timers.
   * Resolves once the listener and every socket have emitted `'close'`; after that the
   * proxy holds no handle. Calling it again returns the same promise.
   */
  close(): Promise<void> {
    if (this.#closing) return this.#closing;
    this.#closing = this.#doClose();
    return this.#closing;
  }

  async #doClose(): Promise<void> {
    const server = this.#server;
    const serverClosed = server
      ? new Promise<void>((resolve) => server.close(() => resolve()))
      : Promise.resolve();
    for (const c of this.#connections) drop(c);
    for (const socket of this.#sockets.keys()) socket.destroy();
    await Promise.all([serverClosed, ...this.#sockets.values()]);
  }

  // ---------------------------------------------------------------------------------------

  /** Registers a socket: error listener (errors never escape), close tracking. */
  #track(socket: net.Socket): void {
    socket.on('error', () => {
      // Reported through 'close' (hadError); never rethrown.
    });
    this.#sockets.set(
      socket,
      new Promise<void>((resolve) =>
        socket.once('close', () => {
          this.#sockets.delete(socket);
          resolve();
        }),
      ),
    );
  }

  #accept(client: net.Socket): void {
    this.#track(client);
    if (this.#closing) {
      client.destroy();
      return;
    }
    this.#accepted += 1;
    client.setNoDelay(true);
    if (this.#refusing) {
      this.#refused += 1;
      resetSocket(client);
      return;
    }
    const held = DIRECTIONS.some((d) => this.#faults[d].blackholed);
    let server: net.Socket | null = null;
    if (held) {
      this.#held += 1;
    } else {
      server = net.connect({
        host: this.#target.host,
        port: this.#target.port,
        allowHalfOpen: true,
        noDelay: true,
      });
      this.#track(server);
      server.setNoDelay(true);
    }
    const context = this.#pipeContext;
    const conn: Connection = {
      client,
      server,
      clientToServer: new Pipe('client-to-server', client, server, context),
      serverToClient: server ? new Pipe('server-to-client', server, client, context) : null,
    };
    this.#connections.add(conn);
    client.on('close', () => this.#settle(conn));
    server?.on('close', () => this.#settle(conn));
  }

  /** The pipes of every current connection in `direction`. */
  *#pipes(direction: FaultDirection): Generator<Pipe> {
    for (const c of this.#connections) {
      const pipe = direction === 'client-to-server' ? c.clientToServer : c.serverToClient;
      if (pipe) yield pipe;
    }
  }

  /** Re-evaluates every pipe after a fault setting changed. */
  #kickAll(): void {
    for (const d of DIRECTIONS) {
      for (const pipe of this.#pipes(d)) {
        pipe.cancelTimers();
        pipe.updateFlow();
        pipe.pump();
      }
    }
  }

  /**
   * Called when a leg closes and on heal: forgets fully closed connections, and passes an
   * abrupt close (RST or error) on to the other leg unless the path toward it is black-holed.
   */
  #settle(conn: Connection): void {
    const { client, server } = conn;
    const clientGone = client.destroyed;
    const serverGone = server === null || server.destroyed;
    if (clientGone && serverGone) {
      drop(conn);
      this.#connections.delete(conn);
      return;
    }
    if (server === null) return; // held: the client leg simply stays open
    const [gone, other, toward]: [net.Socket, net.Socket, FaultDirection] = clientGone
      ? [client, server, 'client-to-server']
      : [server, client, 'server-to-client'];
    if (!gone.destroyed) return; // both legs still open
    if (this.#faults[toward].blackholed) return; // the RST is lost for now; heal() retries
    // A clean close means both FINs passed: the other leg finishes by itself.
    const abrupt = gone.errored !== null || !gone.readableEnded;
    if (abrupt) {
      drop(conn);
      resetSocket(other);
    }
  }
}
