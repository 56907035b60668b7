/**
 * `Connection`: a heartwire engine driven by a transport (a socket, or a simulated one) and one
 * timer, on a {@link Runtime} (Node's, or a simulation's virtual time).
 * @module
 */
import { EventEmitter } from 'node:events';
import { Engine } from '../protocol/engine.js';
import { AbortError, HeartwireError, UsageError } from '../protocol/errors.js';
import type { CloseInfo, GoAwayInfo, Negotiated, Role } from '../protocol/types.js';
import { iterate, runHandlers } from './consume.js';
import { publish } from './diagnostics.js';
import { validateEndOptions, validateHandleArguments } from './options.js';
import { payloadBytes } from './payload.js';
import type { Payload } from './payload.js';
import { nodeRuntime } from './runtime.js';
import type { Runtime, Transport } from './runtime.js';
import type { ConnectionEvents, ConnectionStats, EndOptions, HandleOptions } from './connection-types.js';
import { WaitingSends } from './send-queue.js';
import { TransportLoop } from './transport-loop.js';

let nextConnectionId = 1;

export type { ConnectionEvents, ConnectionStats, EndOptions, HandleOptions } from './connection-types.js';

/** What `send()` returns for a message accepted at once (one shared, already resolved promise). */
const ACCEPTED: Promise<void> = Promise.resolve();

/**
 * One heartwire connection over a socket. Created by `connect()` or by a `Server`.
 *
 * Sending: `await send(bytes)` (resolves once the message is accepted into the bounded send
 * queue, waiting while the queue is full) or the synchronous `write(bytes)` (returns false when
 * the caller should wait for `drain`). Every accepted message is in the delivery report.
 * Receiving: `for await (const msg of conn)`, or `handle(fn, { concurrency })`.
 * Ending: `end()` (client: half-close; server: GOAWAY with grace), then `await conn.closed`.
 */
export class Connection extends EventEmitter<ConnectionEvents> implements AsyncIterable<Uint8Array> {
  /** Process-unique id, included in diagnostics. */
  readonly id = nextConnectionId++;
  readonly role: Role;
  /** Resolves with the close info on a clean close; rejects with a typed error otherwise. */
  readonly closed: Promise<CloseInfo>;
  /** Resolves when the handshake completes; rejects if the connection closes first. */
  readonly opened: Promise<Negotiated>;

  /** @internal */
  readonly engine: Engine;
  private readonly socket: Transport;
  /** Time, deferred callbacks and timers: Node's, or a simulation's. */
  private readonly runtime: Runtime;
  /** Bytes between the socket and the engine. */
  private readonly transport: TransportLoop;
  private readonly defaultGrace: number;
  /** @internal Time of the last service pass: precise enough for the engine's bookkeeping in `write()`. */
  lastNow: number;
  /** `lastNow` was read by {@link turnNow} in this event-loop turn. */
  private clockRead = false;
  private readonly endClockTurn = (): void => {
    this.clockRead = false;
  };
  private flushScheduled = false;
  /** From the `open` event to the next turn of the event loop (see `emitDeferredGoAway`). */
  private opening = false;
  private deferredGoAway: GoAwayInfo | undefined;
  private closeInfo: CloseInfo | undefined;
  private closeEmitted = false;
  private resolveClosed!: (info: CloseInfo) => void;
  private rejectClosed!: (error: Error) => void;
  private resolveOpened!: (n: Negotiated) => void;
  private rejectOpened!: (error: Error) => void;
  /** `send()` callers waiting for room in the engine's send queue. */
  private readonly waiting = new WaitingSends();
  /** `write()` returned false: emit `drain` once the send queue is below its bound again. */
  private drainWanted = false;
  /** @internal Consumers waiting for a message or the end of the stream. */
  readers: (() => void)[] = [];
  /** @internal `handle()` is running. */
  handling = false;
  /** @internal Consumers running: `for await` loops and `handle()` (see `end()`'s `unread`). */
  consumers = 0;
  /** `end()` asked to discard what no consumer will read (`unread: 'discard'`, the default). */
  private discardUnread = false;
  private peerClosed = false;
  /** Server: the application called `end()` (GOAWAY) before the client closed. */
  private goAwayRequested = false;
  /**
   * `end()` (client) or the end of the stream (server) waits for the waiting `send()` callers'
   * messages to be accepted; no new message is accepted meanwhile.
   */
  private endWhenFlushed = false;

  /** @internal Created by `connect()` and `Server`. */
  constructor(
    role: Role,
    socket: Transport,
    engine: Engine,
    options: {
      socketBufferTarget?: number;
      defaultGrace?: number;
      maxSendQueue?: number;
      signal?: AbortSignal;
      runtime?: Runtime;
    },
  ) {
    super();
    this.role = role;
    this.socket = socket;
    this.engine = engine;
    const runtime = (this.runtime = options.runtime ?? nodeRuntime);
    const now = (): number => runtime.now();
    this.lastNow = now();
    this.defaultGrace = options.defaultGrace ?? 5000;
    this.closed = new Promise<CloseInfo>((resolve, reject) => {
      this.resolveClosed = resolve;
      this.rejectClosed = reject;
    });
    this.opened = new Promise<Negotiated>((resolve, reject) => {
      this.resolveOpened = resolve;
      this.rejectOpened = reject;
    });
    // Nobody is obliged to await these: never an unhandled rejection.
    this.closed.catch(() => {});
    this.opened.catch(() => {});

    this.transport = new TransportLoop(
      socket,
      engine,
      runtime,
      options.socketBufferTarget ?? 256 * 1024,
      () => this.service(),
    );
    const signal = options.signal;
    if (signal !== undefined) {
      const onAbort = (): void => this.abort(new AbortError('aborted by signal', signal.reason));
      if (signal.aborted) queueMicrotask(onAbort);
      else {
        signal.addEventListener('abort', onAbort, { once: true });
        void this.closed.finally(() => signal.removeEventListener('abort', onAbort)).catch(() => {});
      }
    }
    this.engine.start(now());
    this.service();
  }

  // ------------------------------------------------------------------ sending

  /**
   * Queue a message, synchronously. Returns true when more may be queued, false when the message
   * filled the send queue (`maxSendQueue`): it is queued (never dropped), and the caller should
   * wait for `drain` before writing more. Throws `UsageError`, queuing nothing: `SEND_QUEUE_FULL`
   * when the queue is full (the caller ignored false, or `send()` callers are waiting for room),
   * `CONNECTION_CLOSED` when the connection no longer accepts messages, `MESSAGE_TOO_LARGE`.
   * Every message `write()` queued is in the delivery report of `closed`.
   *
   * `payload`: a `Uint8Array`/`Buffer`, any other `ArrayBufferView` or an `ArrayBuffer` (sent as
   * its bytes, not copied: do not modify it afterwards, the send queue keeps it until the peer
   * has consumed it), or a string (sent as UTF-8). Anything else throws a `TypeError`
   * (`ERR_INVALID_ARG_TYPE`) synchronously.
   */
  write(message: Payload): boolean {
    const payload = payloadBytes(message);
    if (!this.waiting.empty) this.admitWaiting();
    if (this.waiting.empty && !this.endWhenFlushed) {
      if (this.engine.trySend(this.lastNow, payload)) {
        this.scheduleFlush();
        if (!this.engine.sendQueueFull) return true;
        this.drainWanted = true;
        return false;
      }
    }
    this.assertAccepting(payload);
    throw new UsageError(
      'SEND_QUEUE_FULL',
      'the send queue is full (maxSendQueue): wait for drain (write() returned false)',
    );
  }

  /**
   * Queue a message. Resolves once it is accepted into the send queue: at once (in a microtask)
   * while the queue is below its bound (`maxSendQueue`); otherwise the caller waits, in call
   * order, until the peer has consumed enough for the queue to take it (back-pressure: a peer
   * that grants no credit or consumes nothing makes this wait). An accepted message is in the
   * delivery report of `closed` whatever happens next. Rejects when the message is not accepted:
   * `CONNECTION_CLOSED`, `MESSAGE_TOO_LARGE`, or the connection's close error when it closes
   * while the caller waits. A rejected message was not sent and is in no report.
   *
   * `payload` as for `write()`. A payload of another type is a programming error: `send()` throws
   * the `TypeError` (`ERR_INVALID_ARG_TYPE`) synchronously rather than returning a rejection.
   */
  send(message: Payload): Promise<void> {
    const payload = payloadBytes(message);
    try {
      if (!this.waiting.empty) this.admitWaiting();
      if (this.waiting.empty && !this.endWhenFlushed && this.engine.trySend(this.lastNow, payload)) {
        this.scheduleFlush();
        return ACCEPTED;
      }
      this.assertAccepting(payload);
    } catch (error) {
      const rejected = Promise.reject(error as Error);
      rejected.catch(() => {});
      return rejected;
    }
    return this.waiting.wait(payload);
  }

  /** Throw what a message would be refused for, but a full send queue. */
  private assertAccepting(payload: Uint8Array): void {
    if (this.endWhenFlushed) throw new UsageError('CONNECTION_CLOSED', 'cannot send after end()');
    this.engine.assertSendable(payload);
  }

  /**
   * Accept the waiting `send()` callers' messages while the send queue has room, in order; then,
   * once nobody waits and the queue is below its bound, emit `drain` (if `write()` returned false)
   * and do the `end()` that waited for them.
   */
  private admitWaiting(): void {
    if (this.settleIfEngineClosed()) return; // never into a closed engine (the waiting reject)
    const engine = this.engine;
    const t = this.runtime.now();
    if (!this.waiting.admit(engine, t) || engine.state === 'closed') return;
    if (this.drainWanted && !engine.sendQueueFull) {
      this.drainWanted = false;
      queueMicrotask(() => this.emit('drain'));
    }
    if (this.endWhenFlushed) {
      this.endWhenFlushed = false;
      if (this.role === 'client') engine.close(t);
      else engine.finish(t);
    }
  }

  // ------------------------------------------------------------------ receiving

  /**
   * Messages in order; each message taken returns its credit to the peer. Ends when the peer ends
   * the stream cleanly; throws the close error otherwise. Breaking out of the loop stops the
   * iteration (messages not taken stay readable). While messages are ready, `next()` hands them
   * out at once, without waiting for the socket.
   */
  [Symbol.asyncIterator](): AsyncIterableIterator<Uint8Array> {
    return iterate(this);
  }

  /**
   * Take the next message synchronously, or `undefined` when none is ready (then wait for the
   * `readable` event). Its credit returns to the peer at once. The fastest way to consume:
   * `conn.on('readable', () => { for (let m = conn.read(); m; m = conn.read()) use(m); })`.
   */
  read(): Uint8Array | undefined {
    const message = this.engine.read(this.lastNow);
    if (message !== undefined && this.engine.mayTransmitAfterRead && this.engine.wantsToTransmit)
      this.scheduleFlush();
    return message;
  }

  /**
   * Consume messages with a handler, at most `concurrency` at once. Handlers start in message
   * order. A message's credit returns to the peer when its handler settles (returns, or its
   * promise settles), so a slow handler slows the peer down instead of growing memory. A handler
   * that throws or rejects is reported to `onError` (default: abort the connection with a
   * `HandlerError`, unless the error is the close error of this connection). Resolves when
   * the stream has ended and every handler has settled; rejects with the close error if the
   * connection closed uncleanly.
   *
   * Handlers run in lanes: each lane takes the next ready message, runs its handler (awaiting it
   * only if it returned a promise) and takes the next, until none is ready. At most `concurrency`
   * lanes run, in a p-queue when `concurrency` > 1; with a synchronous handler one lane runs a
   * whole batch of ready messages without a task or promise per message.
   */
  handle(handler: (message: Uint8Array) => unknown, options: HandleOptions = {}): Promise<void> {
    // Arguments are checked synchronously (TypeError / RangeError), like every option.
    validateHandleArguments(handler, options);
    return runHandlers(this, handler, options);
  }

  /**
   * @internal The time, read at most once per event-loop turn (`performance.now()` costs about
   * as much as taking a message): for handlers settling in a burst of microtasks, one reading
   * serves all.
   */
  turnNow(): number {
    if (!this.clockRead) {
      this.lastNow = this.runtime.now();
      this.clockRead = true;
      this.runtime.setImmediate(this.endClockTurn);
    }
    return this.lastNow;
  }

  /** @internal A `for await` loop or `handle()` ended (or broke off): after `end()`, nobody may read the rest. */
  consumerStopped(): void {
    this.consumers--;
    this.discardIfUnread();
  }

  /**
   * After `end()` with `unread: 'discard'`, when no consumer is running (no `for await` loop, no
   * `handle()`, no `readable` listener), drop what is unread so that the termination completes.
   */
  private discardIfUnread(): void {
    if (!this.discardUnread || this.consumers > 0 || this.listenerCount('readable') > 0) return;
    if (this.engine.state === 'closed') return;
    this.engine.discardUnread(this.runtime.now());
    this.service();
  }

  /** @internal The consumer saw the end of the stream: a server finishes; an unclean close throws. */
  endOfStream(): void {
    if (this.role === 'server' && this.peerClosed && this.engine.state === 'peer-closed') {
      this.endWhenFlushed = true;
      this.admitWaiting();
      this.service();
    }
    if (this.closeInfo !== undefined && !this.closeInfo.clean) throw this.closeInfo.error;
  }

  /** @internal */
  streamEnded(): boolean {
    if (this.engine.readableMessages > 0) return false;
    const state = this.engine.state;
    return state === 'closed' || this.peerClosed || state === 'close-acked' || state === 'fin-sent';
  }

  /** @internal */
  wakeReaders(): void {
    if (this.readers.length === 0) return;
    const readers = this.readers;
    this.readers = [];
    for (const wake of readers) wake();
  }

  // ------------------------------------------------------------------ ending

  /**
   * End the connection gracefully. Client: protocol half-close (CLOSE after everything queued),
   * then the server finishes and the connection closes cleanly. Server: GOAWAY with a grace
   * period (default `defaultGrace`); the client is expected to end, else it is force-closed at the
   * deadline. Resolves like `closed`. Never throws, except for invalid options (a `TypeError` or
   * `RangeError` naming the option, as every call checks its options): once the connection has
   * closed (even from inside a listener of an event that was queued before the close) it returns
   * the settled `closed` promise.
   *
   * Unread messages (a client, or a server after `peer-closed`): with `unread: 'discard'` (the
   * default), `end()` does not wait for messages nobody reads. When no consumer is running — no
   * `for await` loop (one that ended or was left with `break` does not count), no `handle()`, no
   * `readable` listener — at the next turn of the event loop after `end()`, or when the last one
   * stops later, every message not yet read is dropped, now and as it arrives; its credit returns
   * to the peer so that the peer can finish. The close then completes within a round trip or so
   * instead of waiting `closeTimeout`, and reports exactly: `CloseInfo.unread` counts the messages
   * dropped, which the peer reports as not processed (`delivery.notProcessed`; it sees a client's
   * drop as a `CANCELLED` close, SPEC.md §9.1). A consumer that keeps reading after `end()` (the
   * half-close pattern: `end()`, then read the replies until the loop ends) loses nothing. With
   * `unread: 'wait'`, `end()` waits for the application to read everything, bounded by
   * `closeTimeout` (then it rejects with `CLOSE_TIMEOUT`).
   */
  end(options: EndOptions = {}): Promise<CloseInfo> {
    validateEndOptions(options); // invalid options throw, synchronously (the only throw)
    // Never throws otherwise: after the close (even one not dispatched yet) it returns the settled `closed`.
    if (this.settleIfEngineClosed()) return this.closed;
    const t = this.runtime.now();
    if (this.role === 'client' || this.peerClosed) {
      this.endWhenFlushed = true;
      if (options.unread !== 'wait' && !this.discardUnread) {
        this.discardUnread = true;
        // A consumer started right after end() (the half-close pattern) still counts.
        this.runtime.setImmediate(() => this.discardIfUnread());
      }
    } else {
      this.goAwayRequested = true;
      this.engine.goAway(t, {
        graceMs: options.grace ?? this.defaultGrace,
        reason: options.reason,
        message: options.message,
        retryAfterMs: options.retryAfter,
        doNotReconnect: options.doNotReconnect,
        alternatives: options.alternatives,
      });
    }
    this.admitWaiting();
    this.service();
    return this.closed;
  }

  /**
   * @internal `Server.close()`: force-close this server connection `grace` ms from now, whatever
   * its state (SPEC.md §9.2): sends GOAWAY if the client has not closed yet; otherwise only the
   * deadline applies to the termination under way. An earlier deadline is never postponed.
   */
  shutdown(grace: number, goAway: Pick<EndOptions, 'message' | 'alternatives' | 'doNotReconnect'>): void {
    if (this.role !== 'server') return;
    this.engine.goAway(this.runtime.now(), { ...goAway, graceMs: grace, reason: 1 });
    this.service();
  }

  /** Close at once: send ERROR (default `CANCELLED`) and destroy the socket. Never throws; a no-op once closed. */
  abort(error?: HeartwireError): void {
    if (this.settleIfEngineClosed()) return;
    this.engine.abort(this.runtime.now(), error);
    this.service();
  }

  /**
   * @internal True when `error` is this connection's own close error (the one `closed` rejects
   * with), or says that this closed connection no longer accepts messages: an application that
   * stops on such an error has nothing more to report.
   */
  ownsCloseError(error: unknown): boolean {
    if (this.closeInfo === undefined && this.engine.state !== 'closed') return false;
    if (error === this.closeInfo?.error) return true;
    return error instanceof HeartwireError && error.code === 'CONNECTION_CLOSED';
  }

  // ------------------------------------------------------------------ inspection

  /** Counters and gauges: RTT, credit both ways, bytes, heartbeats, time blocked on credit. */
  stats(): ConnectionStats {
    return {
      ...this.engine.stats(this.runtime.now()),
      id: this.id,
      role: this.role,
      socketBufferedBytes: this.socket.writableLength,
      remoteAddress: this.socket.remoteAddress,
      remotePort: this.socket.remotePort,
    };
  }

  /** Values agreed in the handshake, once open. */
  get negotiated(): Negotiated | undefined {
    return this.engine.negotiated;
  }

  /**
   * Client: the server's GOAWAY once received (the `goaway` event's argument), else `undefined`.
   * A server that sheds load ends a connection right at open: check this after `connect()`.
   */
  get goAway(): GoAwayInfo | undefined {
    return this.engine.receivedGoAway;
  }

  /** Protocol state. */
  get state(): string {
    return this.engine.state;
  }

  /**
   * @internal The close info once the close is settled (its `close` event may already be past):
   * for a `ReconnectingClient` adopting a connection that closed as `connect()` resolved.
   */
  get settledClose(): CloseInfo | undefined {
    return this.closeInfo;
  }

  // ------------------------------------------------------------------ the driver

  /** @internal */
  scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    this.runtime.nextTick(() => {
      this.flushScheduled = false;
      this.service();
    });
  }

  /** A GOAWAY that arrived with the handshake, emitted once the caller has the connection. */
  private emitDeferredGoAway(): void {
    const goAway = this.deferredGoAway;
    if (goAway === undefined) return;
    this.deferredGoAway = undefined;
    this.emit('goaway', goAway);
  }

  /** Move everything the engine wants to do into the world: events, bytes, the timer. */
  private service(): void {
    const t = this.runtime.now();
    this.lastNow = t;
    this.transport.transmit(t);
    for (let event = this.engine.pollEvent(); event !== undefined; event = this.engine.pollEvent()) {
      // Events queued before the engine closed are dispatched after it closed: settle the close
      // first, so that a listener calling end()/abort() gets the settled `closed` and nothing is
      // moved into the dead engine. The `close` event itself stays last.
      if (this.closeInfo === undefined && this.engine.state === 'closed') this.settleIfEngineClosed();
      switch (event.type) {
        case 'open':
          this.resolveOpened(event.negotiated);
          publish('open', { connection: this, negotiated: event.negotiated });
          this.emit('open', event.negotiated);
          // Until the caller has the connection (connect() resolves in the microtasks after this
          // pass), a GOAWAY would reach no listener: it is emitted on the next turn instead.
          this.opening = true;
          this.runtime.setImmediate(() => {
            this.opening = false;
            this.emitDeferredGoAway();
          });
          break;
        case 'readable':
          this.wakeReaders();
          this.emit('readable');
          break;
        case 'writable':
          this.admitWaiting();
          break;
        case 'state':
          publish('state', { connection: this, from: event.from, to: event.to });
          break;
        case 'goaway':
          publish('goaway', { connection: this, goAway: event.goAway });
          if (this.opening) this.deferredGoAway = event.goAway;
          else this.emit('goaway', event.goAway);
          break;
        case 'peer-closed':
          this.peerClosed = true;
          this.emit('peer-closed');
          this.wakeReaders();
          // A server that sent GOAWAY with end() and consumes nothing (load shedding in the
          // connection handler) finishes when the client closes, as end() would now.
          if (
            this.goAwayRequested &&
            !this.handling &&
            this.consumers === 0 &&
            this.listenerCount('readable') === 0
          )
            void this.end().catch(() => {});
          break;
        case 'rtt':
          this.emit('rtt', event.rttMs);
          break;
        case 'credit-stall':
          this.emit('credit-stall', event.blockedMs);
          break;
        case 'credit-resumed':
          this.emit('credit-resumed', event.blockedMs);
          break;
        case 'end-transport':
          this.transport.transmit(t);
          this.socket.end();
          break;
        case 'closed':
          this.settleClose(event.info);
          if (!this.closeEmitted) {
            this.closeEmitted = true;
            publish('close', { connection: this, info: event.info });
            this.emitDeferredGoAway(); // `close` stays last
            this.emit('close', event.info);
          }
          break;
      }
    }
    this.transport.transmit(t);
    this.transport.reportBacklog(t);
    this.transport.armTimer();
  }

  /** True once the engine is closed; settles the close (promises, socket) the first time. */
  private settleIfEngineClosed(): boolean {
    if (this.closeInfo !== undefined) return true;
    const info = this.engine.closed;
    if (info === undefined) return false;
    this.settleClose(info);
    return true;
  }

  /** Everything a close does but the `close` event (emitted when the engine's event comes). */
  private settleClose(info: CloseInfo): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    const t = this.runtime.now();
    this.transport.close(info, t);
    const error = info.error ?? new UsageError('CONNECTION_CLOSED', 'connection closed');
    this.endWhenFlushed = false;
    this.waiting.rejectAll(error);
    // A handshake that completed resolves `opened` (its `open` event may still be queued).
    if (this.engine.negotiated === undefined) this.rejectOpened(error);
    if (info.clean) this.resolveClosed(info);
    else this.rejectClosed(error);
    this.wakeReaders();
  }

  // ------------------------------------------------------------------ explicit resource management

  /**
   * `await using conn = await connect(…)`: leaving the scope ends the connection gracefully
   * (`end()`, awaited: resolves within `closeTimeout`, or the grace for a server connection).
   * It never throws: an unclean close is reported by `closed` and the `close` event, as always.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.end().catch(() => {});
  }
}
