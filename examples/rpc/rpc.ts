/**
 * Request/response over heartwire: many calls in flight on one connection, a deadline per
 * call (propagated to the server), cancellation with an `AbortSignal`, and GOAWAY handling that
 * moves new calls to another server while the calls in flight finish where they started.
 *
 * Each heartwire message is one JSON {@link RpcFrame}.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from '../../src/index.js';
import type { ConnectOptions, Connection, GoAwayInfo, Server, ServerOptions } from '../../src/index.js';

/** Error codes of failed calls (as in gRPC). */
export type RpcErrorCode =
  | 'DEADLINE_EXCEEDED'
  | 'CANCELLED'
  | 'UNAVAILABLE'
  | 'NOT_FOUND'
  | 'RESOURCE_EXHAUSTED'
  | 'INTERNAL'
  | 'BAD_REQUEST';

/** A failed call. */
export class RpcError extends Error {
  readonly code: RpcErrorCode;
  constructor(code: RpcErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'RpcError';
    this.code = code;
  }
}

/** The messages on the wire, one JSON object per heartwire message. */
export type RpcFrame =
  /** Client → server. `timeoutMs`: time left until the caller's deadline when sent. */
  | { type: 'request'; id: number; method: string; params: unknown; timeoutMs: number }
  /** Client → server: the caller gave up (abort or deadline); stop working on `id`. */
  | { type: 'cancel'; id: number }
  | { type: 'response'; id: number; result: unknown }
  | { type: 'error'; id: number; code: RpcErrorCode; message: string };

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const encodeFrame = (frame: RpcFrame): Uint8Array => encoder.encode(JSON.stringify(frame));
const decodeFrame = (bytes: Uint8Array): RpcFrame => JSON.parse(decoder.decode(bytes)) as RpcFrame;

/** What a handler gets besides the params. */
export interface RpcContext {
  /** Aborts when the caller cancels, the deadline passes, or the connection dies. */
  signal: AbortSignal;
  /** `performance.now()` value of the caller's deadline, as seen by this server. */
  deadline: number;
}

/** A method implementation; throw an {@link RpcError} to choose the error code. */
export type RpcHandler = (params: unknown, context: RpcContext) => unknown;

/** Options of an {@link RpcServer}: heartwire server options plus the concurrency per connection. */
export interface RpcServerOptions extends ServerOptions {
  /**
   * Calls run at once per connection (default 100). Further requests wait unread in heartwire's
   * window, so the client is slowed down instead of the server's memory growing; a cancel
   * waits behind them too.
   */
  maxConcurrent?: number;
}

/** An RPC server: `new RpcServer({ method: handler })`, `listen()`, `close({ grace })`. */
export class RpcServer {
  /** The heartwire server. */
  readonly server: Server;
  private readonly handlers: Record<string, RpcHandler>;

  constructor(handlers: Record<string, RpcHandler>, options: RpcServerOptions = {}) {
    this.handlers = handlers;
    const { maxConcurrent, ...serverOptions } = options; // heartwire refuses options it does not know
    const concurrency = maxConcurrent ?? 100;
    this.server = createServer(serverOptions, (conn) => this.serve(conn, concurrency));
  }

  /** Start listening; resolves to the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return this.server.listen(port, host);
  }

  /**
   * GOAWAY to every client: they send new calls elsewhere, calls in flight finish. Connections
   * still open after `grace` ms are closed. Resolves when all are closed.
   */
  close(options: { grace?: number } = {}): Promise<void> {
    return this.server.close({ grace: options.grace ?? 5000 });
  }

  private serve(conn: Connection, concurrency: number): void {
    const running = new Map<number, AbortController>();
    conn.on('close', () => {
      for (const controller of running.values())
        controller.abort(new RpcError('CANCELLED', 'connection closed'));
    });
    const reply = (frame: RpcFrame): void => {
      try {
        conn.write(encodeFrame(frame));
      } catch {
        // The connection is gone; the client learns it from heartwire.
      }
    };
    // handle(): after the client's CLOSE, the connection finishes only once every handler has
    // settled, so the answers to calls in flight still go out.
    const handler = async (bytes: Uint8Array): Promise<void> => {
      const frame = decodeFrame(bytes);
      if (frame.type === 'cancel') {
        running.get(frame.id)?.abort(new RpcError('CANCELLED', 'cancelled by the caller'));
        return;
      }
      if (frame.type !== 'request') return;
      const { id, method, params, timeoutMs } = frame;
      const controller = new AbortController();
      running.set(id, controller);
      const timer = setTimeout(
        () => controller.abort(new RpcError('DEADLINE_EXCEEDED', 'deadline exceeded')),
        timeoutMs,
      );
      try {
        const implementation = Object.hasOwn(this.handlers, method) ? this.handlers[method] : undefined;
        if (implementation === undefined) throw new RpcError('NOT_FOUND', `no method ${method}`);
        const result = await implementation(params, {
          signal: controller.signal,
          deadline: performance.now() + timeoutMs,
        });
        if (!controller.signal.aborted) reply({ type: 'response', id, result: result ?? null });
      } catch (error) {
        // The caller no longer waits for an aborted call: say nothing.
        if (controller.signal.aborted) return;
        const code = error instanceof RpcError ? error.code : 'INTERNAL';
        reply({ type: 'error', id, code, message: (error as Error).message });
      } finally {
        clearTimeout(timer);
        running.delete(id);
      }
    };
    conn.handle(handler, { concurrency, onError: () => {} }).catch(() => {});
  }
}

/** Options of an {@link RpcClient}. */
export interface RpcClientOptions extends Omit<ConnectOptions, 'host' | 'port' | 'endpoints'> {
  /** Servers, in order of preference. After a GOAWAY the client prefers the others. */
  endpoints: readonly { host: string; port: number }[];
  /** Deadline of a call without `timeout`, in ms. Default 10 000. */
  defaultTimeout?: number;
  /** Most calls in flight; more fail at once with `RESOURCE_EXHAUSTED`. Default 1 000. */
  maxInFlight?: number;
}

/** Events of an {@link RpcClient}. */
export interface RpcClientEvents {
  /** A connection to `endpoint` is open; new calls use it. */
  connected: [endpoint: string];
  /** The server at `endpoint` is going away: new calls go elsewhere, calls in flight finish there. */
  goaway: [endpoint: string, info: GoAwayInfo];
  /** The connection to `endpoint` closed (`error` undefined when clean). */
  disconnected: [endpoint: string, error: Error | undefined];
}

interface Call {
  id: number;
  method: string;
  params: unknown;
  deadline: number;
  resolve: (result: unknown) => void;
  reject: (error: RpcError) => void;
  channel: Channel | undefined;
  timer: NodeJS.Timeout;
  retried: boolean;
  settled: boolean;
  cleanup: () => void;
}

/** One connection and its calls in flight. */
interface Channel {
  conn: Connection;
  endpoint: string;
  calls: Map<number, Call>;
  /** GOAWAY received: no new calls; end once the calls in flight are done. */
  goingAway: boolean;
  ending: boolean;
}

/**
 * An RPC client. `call(method, params, { timeout, signal })` resolves with the result or rejects
 * with an {@link RpcError}. One connection carries every call; a GOAWAY makes the client open
 * a connection to another endpoint for new calls, while the old one finishes its calls and then
 * ends cleanly. If a connection dies, calls that heartwire reports as certainly not processed by
 * the server are retried once on a new connection; the others fail with `UNAVAILABLE`.
 */
export class RpcClient extends EventEmitter<RpcClientEvents> {
  private readonly options: RpcClientOptions;
  private current: Channel | undefined;
  private connecting: Promise<Channel> | undefined;
  private readonly channels = new Set<Channel>();
  /** Endpoints that sent GOAWAY, tried last. */
  private readonly avoid = new Set<string>();
  private nextId = 1;
  private inFlight = 0;
  private closed = false;

  constructor(options: RpcClientOptions) {
    super();
    if (options.endpoints.length === 0) throw new RangeError('RpcClient needs at least one endpoint');
    this.options = options;
  }

  /**
   * Call `method` with JSON `params`. Rejects with `DEADLINE_EXCEEDED` after `timeout` ms
   * (default `defaultTimeout`), with `CANCELLED` when `signal` aborts (the server is told to
   * stop in both cases), or with the server's error.
   */
  call<T = unknown>(
    method: string,
    params?: unknown,
    options: { timeout?: number; signal?: AbortSignal } = {},
  ): Promise<T> {
    const timeout = options.timeout ?? this.options.defaultTimeout ?? 10_000;
    const { signal } = options;
    return new Promise<T>((resolve, reject) => {
      if (this.closed) return reject(new RpcError('UNAVAILABLE', 'the client is closed'));
      if (signal?.aborted) return reject(new RpcError('CANCELLED', 'aborted before the call'));
      if (this.inFlight >= (this.options.maxInFlight ?? 1000)) {
        return reject(new RpcError('RESOURCE_EXHAUSTED', 'too many calls in flight'));
      }
      this.inFlight++;
      const onAbort = (): void => this.fail(call, new RpcError('CANCELLED', 'cancelled by the caller'));
      const call: Call = {
        id: this.nextId++,
        method,
        params,
        deadline: performance.now() + timeout,
        resolve: resolve as (result: unknown) => void,
        reject,
        channel: undefined,
        timer: setTimeout(
          () => this.fail(call, new RpcError('DEADLINE_EXCEEDED', `no answer within ${timeout} ms`)),
          timeout,
        ),
        retried: false,
        settled: false,
        cleanup: () => signal?.removeEventListener('abort', onAbort),
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      void this.send(call);
    });
  }

  /** End every connection gracefully (calls in flight finish first). */
  async close(): Promise<void> {
    this.closed = true;
    await Promise.all([...this.channels].map((channel) => channel.conn.end().catch(() => {})));
  }

  // ------------------------------------------------------------------ calls

  private async send(call: Call): Promise<void> {
    let channel: Channel;
    try {
      channel = await this.channel();
    } catch (error) {
      return this.fail(call, new RpcError('UNAVAILABLE', (error as Error).message, { cause: error }));
    }
    if (call.settled) return;
    const timeoutMs = Math.max(1, Math.round(call.deadline - performance.now()));
    try {
      channel.conn.write(
        encodeFrame({ type: 'request', id: call.id, method: call.method, params: call.params, timeoutMs }),
      );
    } catch (error) {
      return this.fail(call, new RpcError('UNAVAILABLE', (error as Error).message, { cause: error }));
    }
    call.channel = channel;
    channel.calls.set(call.id, call);
  }

  /** Settle a call with an error; tell the server to stop if it is working on it. */
  private fail(call: Call, error: RpcError): void {
    const channel = call.channel;
    if (!this.settle(call)) return;
    if (channel !== undefined && (error.code === 'CANCELLED' || error.code === 'DEADLINE_EXCEEDED')) {
      try {
        channel.conn.write(encodeFrame({ type: 'cancel', id: call.id }));
      } catch {
        // The connection is ending: the server's own deadline stops the call.
      }
    }
    call.reject(error);
  }

  /** Mark a call done; false if it already was. */
  private settle(call: Call): boolean {
    if (call.settled) return false;
    call.settled = true;
    this.inFlight--;
    clearTimeout(call.timer);
    call.cleanup();
    const channel = call.channel;
    if (channel !== undefined) {
      channel.calls.delete(call.id);
      if (channel.goingAway && channel.calls.size === 0) this.end(channel);
    }
    return true;
  }

  // ------------------------------------------------------------------ connections

  /** The connection for new calls, opened on demand. */
  private channel(): Promise<Channel> {
    if (this.current !== undefined) return Promise.resolve(this.current);
    this.connecting ??= this.open().finally(() => (this.connecting = undefined));
    return this.connecting;
  }

  private async open(): Promise<Channel> {
    const key = (e: { host: string; port: number }): string => `${e.host}:${e.port}`;
    // Endpoints that sent GOAWAY go last: new calls move to another server.
    const endpoints = [...this.options.endpoints].sort(
      (a, b) => Number(this.avoid.has(key(a))) - Number(this.avoid.has(key(b))),
    );
    // heartwire refuses options it does not know: only its own go to connect().
    const { defaultTimeout: _timeout, maxInFlight: _max, ...connectOptions } = this.options;
    const conn = await connect({ ...connectOptions, endpoints });
    const remote = conn.stats();
    const match = endpoints.find((e) => e.port === remote.remotePort) ?? endpoints[0]!; // the winner of connect()
    const channel: Channel = {
      conn,
      endpoint: key(match),
      calls: new Map(),
      goingAway: false,
      ending: false,
    };
    this.avoid.delete(channel.endpoint);
    this.channels.add(channel);
    this.current = channel;
    conn.on('goaway', (info) => this.onGoAway(channel, info));
    conn.on('close', (info) => this.onClose(channel, info.error, info.delivery.notProcessed));
    void this.read(channel);
    this.emit('connected', channel.endpoint);
    return channel;
  }

  private async read(channel: Channel): Promise<void> {
    try {
      for await (const bytes of channel.conn) {
        const frame = decodeFrame(bytes);
        const call = channel.calls.get(frame.id);
        if (call === undefined) continue; // answered after a timeout or cancel
        if (frame.type === 'response') {
          if (this.settle(call)) call.resolve(frame.result);
        } else if (frame.type === 'error') {
          this.fail(call, new RpcError(frame.code, frame.message));
        }
      }
    } catch {
      // An unclean close: onClose deals with the calls.
    }
  }

  private onGoAway(channel: Channel, info: GoAwayInfo): void {
    channel.goingAway = true;
    this.avoid.add(channel.endpoint);
    if (this.current === channel) this.current = undefined;
    this.emit('goaway', channel.endpoint, info);
    if (channel.calls.size === 0) return this.end(channel);
    // Calls still running near the end of the grace: CLOSE now. The server then answers them
    // before its CLOSE_ACK, within what is left of the grace (a hard deadline: calls still running
    // at its end are cut); only cancels can no longer be sent.
    const margin = Math.min(1000, info.graceMs / 4) + (channel.conn.stats().smoothedRttMs ?? 0);
    const timer = setTimeout(
      () => this.end(channel),
      Math.max(0, info.deadline - margin - performance.now()),
    );
    timer.unref();
    channel.conn.once('close', () => clearTimeout(timer));
  }

  private end(channel: Channel): void {
    if (channel.ending) return;
    channel.ending = true;
    void channel.conn.end().catch(() => {});
  }

  private onClose(channel: Channel, error: Error | undefined, notProcessed: Uint8Array[]): void {
    this.channels.delete(channel);
    if (this.current === channel) this.current = undefined;
    this.emit('disconnected', channel.endpoint, error);
    // Requests heartwire reports as never handed to the server's application: safe to retry.
    const safe = new Set(notProcessed.map((bytes) => decodeFrame(bytes).id));
    for (const call of [...channel.calls.values()]) {
      channel.calls.delete(call.id);
      call.channel = undefined;
      if (safe.has(call.id) && !call.retried && !this.closed) {
        call.retried = true;
        void this.send(call);
      } else {
        this.fail(
          call,
          new RpcError('UNAVAILABLE', `connection lost: ${error?.message ?? 'closed'}`, { cause: error }),
        );
      }
    }
  }
}
