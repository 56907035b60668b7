/**
 * `createServer()` and `Server`: accept TCP or TLS connections and run heartwire on each.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { encodeRefusal } from '../protocol/codec.js';
import { Engine } from '../protocol/engine.js';
import { HandlerError, HeartwireError, WireErrorCode } from '../protocol/errors.js';
import { Connection } from './connection.js';
import { ConnectionLifecycle } from './lifecycle.js';
import { nodeEnvironment } from './environment.js';
import type { AcceptedTransport, Environment, Listener } from './environment.js';
import {
  InvalidOptionTypeError,
  checkAlternatives,
  engineOptions,
  listenTarget,
  validateServerCloseOptions,
  validateServerOptions,
} from './options.js';
import { DEFAULT_SERVER_MEMORY_BUDGET, SharedMemoryBudget } from '../protocol/budget.js';
import type { MemoryBudget } from '../protocol/types.js';
import type { ServerOptions } from './options.js';

/** Events of a {@link Server}, with their arguments. */
export interface ServerEvents {
  /**
   * A client completed the handshake; its {@link Connection} is open. A connection that fails
   * before this (handshake timeout, a peer that does not speak heartwire) is never reported.
   */
  connection: [Connection];
  /**
   * A connection was refused because `maxConnections` was reached, the server is closing, or
   * the server has no `'connection'` listener (nothing could read it; a process warning
   * `HEARTWIRE_NO_HANDLER` says so once): the client got ERROR `REFUSED` with the reason. When full, a new socket is refused only if every slot holds a
   * handshaken connection; otherwise the oldest connection still in the handshake is evicted to
   * make room for it (and reported here). For monitoring; nothing to do.
   */
  refused: [{ remoteAddress: string | undefined }];
  /**
   * A connection handler (a `'connection'` listener, sync or async) threw or rejected with
   * something other than the connection's own close error (see {@link Server}). The connection
   * was aborted with `error` (a `HandlerError`, code `INTERNAL_ERROR`, `cause` = what the handler
   * threw). With no listener, the first such failure is printed once as a process warning;
   * the process never crashes.
   */
  'handler-error': [HandlerError, Connection | undefined];
  /** The listening socket failed after `listen()` resolved (a failure during `listen()` only rejects it). Errors of single connections never come here: they close that connection. */
  error: [Error];
  /** After `close()`: the server stopped listening and every connection closed. */
  close: [];
}

/**
 * A heartwire server. Each accepted socket gets an engine; the `connection` event fires once the
 * handshake completes (a client that does not complete it within `handshakeTimeout` is cut).
 *
 * The server owns what its connection handlers return. A `'connection'` listener may be an
 * `async` function (`for await (const msg of conn) …`): when it rejects (or a plain listener
 * throws) with the connection's own close error (what `conn.closed` rejects with, or a
 * `CONNECTION_CLOSED` error from a closed connection) the rejection is swallowed, since `closed`
 * already reports it. Any other error aborts that connection with a {@link HandlerError}
 * (`code` `INTERNAL_ERROR`, `cause` = the original error; the peer gets a generic reason, not
 * the exception's text) and is emitted as `'handler-error'`. Nothing a client does can crash the
 * server's process through its handler.
 */
export class Server extends EventEmitter<ServerEvents> {
  private readonly options: ServerOptions;
  private readonly listener: Listener;
  private readonly env: Environment;
  /** Every connection not yet closed, including those still in the handshake. */
  readonly connections = new Set<Connection>();

  /**
   * The budget the connections' receive windows grow into: `memoryBudget` if given, else one of
   * `DEFAULT_SERVER_MEMORY_BUDGET` (256 MiB) for this server.
   */
  get memoryBudget(): MemoryBudget {
    return this.options.memoryBudget!;
  }
  private closing: Promise<void> | undefined;
  private warnedHandlerError = false;
  private warnedNoHandler = false;
  private listenPending = false;
  /** Connections still in the handshake, oldest first (see `accept()`). */
  private readonly handshaking = new Set<Connection>();
  /** Maximum connection age and load shedding (`maxConnectionAge`, `targetConnections`). */
  private readonly lifecycle: ConnectionLifecycle;
  private currentAlternatives: readonly string[];

  /**
   * Other endpoints of the service (the `alternatives` option, SPEC.md §9.5), sent in the WELCOME
   * of each new connection and in the GOAWAYs of `close()`, `maxConnectionAge` and load shedding.
   * Setting it (e.g. when cluster membership changes) affects what is sent from then on; it is
   * validated synchronously (`RangeError` `ERR_OUT_OF_RANGE`, `TypeError` `ERR_INVALID_ARG_TYPE`).
   */
  get alternatives(): readonly string[] {
    return this.currentAlternatives;
  }
  set alternatives(list: readonly string[]) {
    checkAlternatives('alternatives', list);
    this.currentAlternatives = Object.freeze([...list]);
  }

  constructor(
    options: ServerOptions = {},
    onConnection?: (connection: Connection) => unknown,
    /** @internal Node's sockets and time by default; a simulation's in `heartwire/testing`. */
    environment: Environment = nodeEnvironment,
  ) {
    // captureRejections: a rejected promise returned by a listener comes back to
    // [captureRejectionSymbol] below instead of becoming an unhandled rejection.
    super({ captureRejections: true });
    validateServerOptions(options);
    // Servers share one memory budget between their connections by default (SPEC.md §7, "Shared
    // memory"): window growth beyond each connection's initial window comes from it.
    this.options =
      options.memoryBudget === undefined
        ? { ...options, memoryBudget: new SharedMemoryBudget(DEFAULT_SERVER_MEMORY_BUDGET) }
        : options;
    this.env = environment;
    this.currentAlternatives = Object.freeze([...(options.alternatives ?? [])]);
    // Validates its options synchronously.
    this.lifecycle = new ConnectionLifecycle(
      { ...options, alternatives: () => this.currentAlternatives },
      environment.runtime.wheel,
      environment.random,
    );
    this.listener = environment.listener(options, (socket) => this.accept(socket));
    this.listener.on('error', (error) => {
      if (this.listenPending) return; // listen() rejects with it: its caller owns it
      if (this.listenerCount('error') > 0) this.emit('error', error);
      else
        this.env.warn(
          `heartwire server: ${String(error)} (listen to 'error' to handle it)`,
          'HEARTWIRE_SERVER_ERROR',
        );
    });
    if (onConnection !== undefined) this.on('connection', onConnection);
  }

  /**
   * Start listening on TCP `port` (default 0: any free port; a string of digits is a port too)
   * and `host` (default 127.0.0.1); resolves to the bound address. A failure (e.g. `EADDRINUSE`)
   * rejects the returned promise and nothing else: no `'error'` event, so
   * `try { await server.listen(port) }` catches it. Invalid arguments throw synchronously: any
   * other string is a `TypeError` (`ERR_INVALID_ARG_VALUE`), never a socket path (use `{ path }`).
   * A server that was closed cannot listen again: `listen()` after `close()` throws
   * (`ERR_SERVER_CLOSED`); create a new server.
   */
  listen(port?: number | string, host?: string): Promise<AddressInfo>;
  /**
   * Start listening on a Unix domain socket (`path`; the file must not exist, and is removed by
   * `close()`), with the same guarantees as TCP (keepalive and `TCP_NODELAY` are TCP-only and
   * skipped). Resolves to `{ path }`.
   */
  listen(options: { path: string }): Promise<{ path: string }>;
  listen(
    portOrOptions: number | string | { path: string } = 0,
    host = '127.0.0.1',
  ): Promise<AddressInfo | { path: string }> {
    const target = listenTarget(portOrOptions, host); // throws on invalid arguments
    if (this.closing !== undefined) {
      // It would listen, refuse every connection ("REFUSED"), and nothing could stop it.
      throw Object.assign(
        new Error(
          'server.listen() after server.close(): a closed server does not accept connections again; create a new one with createServer()',
        ),
        { code: 'ERR_SERVER_CLOSED' },
      );
    }
    return new Promise((resolve, reject) => {
      const onError = (error: Error): void => {
        this.listenPending = false;
        reject(error);
      };
      this.listenPending = true;
      this.listener.once('error', onError);
      const listening = (): void => {
        this.listenPending = false;
        this.listener.off('error', onError);
        const address = this.listener.address();
        resolve(typeof address === 'string' ? { path: address } : (address as AddressInfo));
      };
      try {
        if ('path' in target) this.listener.listen(target.path, listening);
        else this.listener.listen(target.port, target.host, listening);
      } catch (error) {
        this.listener.off('error', onError);
        onError(error as Error);
      }
    });
  }

  /** The bound TCP address, once listening (undefined on a Unix socket: see `listen()`). */
  address(): AddressInfo | undefined {
    const address = this.listener.address();
    return address === null || typeof address === 'string' ? undefined : address;
  }

  private accept(socket: AcceptedTransport): void {
    socket.on('error', () => {}); // the connection's own listener reports errors; never crash
    socket.allowHalfOpen = true; // the client's FIN is not the end of our stream (SPEC.md §9.1)
    if (this.closing !== undefined) {
      this.refuse(socket, 'the server is closing');
      return;
    }
    if (this.listenerCount('connection') === 0) {
      // Nothing could ever read, answer or end this connection: say so to both sides at once
      // instead of leaving the client's end() to wait for its close timeout.
      this.refuse(socket, "the server has no 'connection' handler");
      if (!this.warnedNoHandler) {
        this.warnedNoHandler = true;
        this.env.warn(
          "a connection was refused: the server has no 'connection' handler (pass one to createServer() or listen to 'connection' before listen())",
          'HEARTWIRE_NO_HANDLER',
        );
      }
      return;
    }
    if (this.connections.size >= (this.options.maxConnections ?? 10_000)) {
      // Full. Sockets that have not completed the handshake must not keep out clients that can:
      // the oldest of them makes room (it gets ERROR REFUSED if it sent the preamble). Only
      // when every slot holds a handshaken connection is the newcomer refused.
      const oldest = this.handshaking.values().next().value;
      if (oldest === undefined) {
        this.refuse(socket, 'connection limit reached');
        return;
      }
      this.emit('refused', { remoteAddress: oldest.stats().remoteAddress });
      oldest.abort(
        new HeartwireError(
          'REFUSED',
          'connection limit reached: a connection still in the handshake made room for a newer one',
        ),
      );
    }
    this.env.prepare(socket, this.options.idleTimeout);
    const engine = new Engine({
      ...engineOptions('server', { ...this.options, alternatives: this.currentAlternatives }),
      seed: this.env.seed(),
    });
    const connection = new Connection('server', socket, engine, {
      socketBufferTarget: this.options.socketBufferTarget,
      defaultGrace: this.options.defaultGrace,
      maxSendQueue: this.options.maxSendQueue,
      runtime: this.env.runtime,
    });
    this.connections.add(connection);
    this.handshaking.add(connection);
    connection.once('open', () => {
      this.handshaking.delete(connection);
      this.lifecycle.opened(connection); // arms the age timer, or sheds it (GOAWAY OVERLOADED)
      try {
        this.emit('connection', connection);
      } catch (error) {
        this.handlerFailed(error, 'connection', connection);
      }
    });
    connection.once('close', () => {
      this.handshaking.delete(connection);
      this.connections.delete(connection);
      this.lifecycle.closed(connection);
    });
  }

  /** @internal An async listener of this server rejected (EventEmitter `captureRejections`). */
  override [EventEmitter.captureRejectionSymbol](error: Error, event: unknown, ...args: unknown[]): void {
    const connection = event === 'connection' && args[0] instanceof Connection ? args[0] : undefined;
    this.handlerFailed(error, String(event), connection);
  }

  /** A handler failed: swallow the connection's own close error; otherwise abort and report. */
  private handlerFailed(error: unknown, event: string, connection: Connection | undefined): void {
    if (connection?.ownsCloseError(error)) return;
    const failure = new HandlerError(
      connection !== undefined ? 'the connection handler failed' : `a '${event}' listener failed`,
      error,
    );
    connection?.abort(failure);
    if (event !== 'handler-error' && this.listenerCount('handler-error') > 0) {
      this.emit('handler-error', failure, connection);
    } else if (!this.warnedHandlerError) {
      this.warnedHandlerError = true;
      this.env.warn(
        `${failure.message}: ${String(error)} (listen to 'handler-error' to handle these; further ones are not printed)`,
        'HEARTWIRE_HANDLER_ERROR',
      );
    }
  }

  /** Answer with the preamble and ERROR `REFUSED`, then close. */
  private refuse(socket: AcceptedTransport, reason: string): void {
    this.emit('refused', { remoteAddress: socket.remoteAddress });
    socket.end(encodeRefusal(WireErrorCode.REFUSED, reason));
    // Half-closed after the ERROR; read and discard what the client sends (at most 1 MiB, 1 s)
    // so that closing does not reset the connection before the client reads the ERROR (SPEC §11).
    let drained = 0;
    socket.on('data', (chunk: Uint8Array) => {
      drained += chunk.length;
      if (drained > 1024 * 1024) socket.destroy();
    });
    // Destroyed after 1 s in any case. The timer is not unref'd: `server.close()` waits for this
    // socket, and an unref'd timer as the last handle would let the process exit with the close
    // unsettled (exit code 13).
    const runtime = this.env.runtime;
    const timer = runtime.setTimeout(() => socket.destroy(), 1000);
    socket.once('close', () => runtime.clearTimeout(timer));
  }

  /**
   * Stop accepting, send GOAWAY (with `grace`, default 5 000 ms) to every connection, let clients
   * finish and close, and force-close those still open when the grace expires: the grace is a
   * hard deadline, also for connections whose client already sent CLOSE but has not finished
   * (unread messages, credit or its final FIN withheld). A connection force-closed gets ERROR
   * `GOAWAY_GRACE_EXPIRED` (or, after CLOSE_ACK, only the end of the stream) and its socket is
   * destroyed at most 1 000 ms later (a linger that lets the client read the ERROR). Resolves when the listener and every
   * connection are closed: within `grace` + 1 000 ms (+ the timer slack, ≤ 64 ms). Idempotent.
   * `alternatives` (default: the server's) go in the GOAWAYs: where clients move (SPEC.md §9.5);
   * `doNotReconnect: true` sets their `do_not_reconnect` (SPEC.md §9.2): clients should never come
   * back to this server, and go to the alternatives, if any, at once. Invalid options (a misspelt
   * one, a `grace` that is not a number ≥ 0, a `doNotReconnect` that is not a boolean) throw
   * synchronously.
   */
  close(
    options: {
      grace?: number;
      message?: string;
      alternatives?: readonly string[];
      doNotReconnect?: boolean;
    } = {},
  ): Promise<void> {
    validateServerCloseOptions(options); // throws synchronously, naming the option
    if (this.closing !== undefined) return this.closing;
    const alternatives = options.alternatives ?? this.currentAlternatives;
    this.lifecycle.stop();
    const grace = options.grace ?? this.options.defaultGrace ?? 5000;
    const listenerClosed = new Promise<void>((resolve) => {
      if (!this.listener.listening) resolve();
      else this.listener.close(() => resolve());
    });
    const all = [...this.connections].map((connection) => {
      if (connection.state === 'handshaking') connection.abort();
      else
        connection.shutdown(grace, {
          message: options.message ?? 'server shutting down',
          alternatives,
          doNotReconnect: options.doNotReconnect,
        });
      return connection.closed.then(
        () => undefined,
        () => undefined,
      );
    });
    this.closing = Promise.all([listenerClosed, ...all]).then(() => {
      this.emit('close');
    });
    return this.closing;
  }

  /**
   * `await using server = createServer(…)`: leaving the scope closes the server (`close()` with
   * the default grace, awaited). Never throws.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/**
 * Create a heartwire server; `onConnection` is added as a `connection` listener. It may be
 * async: the server owns the promise it returns (see {@link Server}: a rejection with the
 * connection's own close error is swallowed; any other error aborts that connection and is
 * emitted as `'handler-error'`). Options are validated synchronously: invalid ones throw a
 * `TypeError` (`ERR_INVALID_ARG_TYPE`) or `RangeError` (`ERR_OUT_OF_RANGE`) naming the option.
 */
export function createServer(
  options?: ServerOptions,
  onConnection?: (connection: Connection) => unknown,
): Server;
export function createServer(onConnection?: (connection: Connection) => unknown): Server;
export function createServer(
  a?: ServerOptions | ((connection: Connection) => unknown),
  b?: (connection: Connection) => unknown,
): Server {
  if (b !== undefined && typeof b !== 'function')
    throw new InvalidOptionTypeError(`The "onConnection" argument must be a function. Received ${typeof b}`);
  return typeof a === 'function' ? new Server({}, a) : new Server(a, b);
}
