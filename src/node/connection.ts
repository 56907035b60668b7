/**
 * `Connection`: a heartwire engine driven by a real socket and one timer.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import PQueue from 'p-queue';
import { Engine } from '../protocol/engine.js';
import { HeartwireError, UsageError } from '../protocol/errors.js';
import type { CloseInfo, EngineStats, GoAwayInfo, Negotiated, Role } from '../protocol/types.js';
import { publish } from './diagnostics.js';
import { WheelTimer, sharedWheel } from './timer-wheel.js';

const now = (): number => performance.now();

let nextConnectionId = 1;

/** Statistics of a connection: the engine's counters plus the socket's. */
export interface ConnectionStats extends EngineStats {
  id: number;
  role: Role;
  /** Bytes waiting in the socket's user-space buffer. */
  socketBufferedBytes: number;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
}

/** Options of `handle()`. */
export interface HandleOptions {
  /** How many handlers may run at once. Default 1. */
  concurrency?: number;
  /** Called when a handler throws or rejects; default: abort the connection with that error. */
  onError?: (error: unknown, message: Uint8Array) => void;
}

/** A `send()` caller waiting for room in the send queue; its message is not accepted yet. */
interface WaitingSend {
  payload: Uint8Array;
  resolve: () => void;
  reject: (error: Error) => void;
}

/** What `send()` returns for a message accepted at once (one shared, already resolved promise). */
const ACCEPTED: Promise<void> = Promise.resolve();

/** Events of a {@link Connection}. */
export interface ConnectionEvents {
  /** The handshake completed. */
  open: [Negotiated];
  /** Client: the server announced shutdown; finish and call `end()` before `goAway.deadline`. */
  goaway: [GoAwayInfo];
  /** Server: the client half-closed; no messages follow those already received. */
  'peer-closed': [];
  /** Messages are ready for `read()` (emitted when the queue goes from empty to non-empty). */
  readable: [];
  /** A new RTT sample, in ms. */
  rtt: [number];
  /** Data has waited for the peer's credit this long (the peer is alive but not consuming). */
  'credit-stall': [number];
  'credit-resumed': [number];
  /** `write()` may be called again after it returned false. */
  drain: [];
  /** Always emitted exactly once, last. */
  close: [CloseInfo];
}

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

  private readonly engine: Engine;
  private readonly socket: Socket;
  private readonly socketBufferTarget: number;
  private readonly defaultGrace: number;
  /** The engine's one timer, in the process-wide coarse wheel (see timer-wheel.ts). */
  private readonly timer = new WheelTimer(() => {
    this.engine.handleTimeout(now());
    this.service();
  });
  /** Time of the last service pass: precise enough for the engine's bookkeeping in `write()`. */
  private lastNow = now();
  /** Bytes given to `socket.write()`, and of those, bytes the socket had flushed at the last report. */
  private bytesHandedOver = 0;
  private bytesFlushed = 0;
  private flushScheduled = false;
  private transportEnded = false;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (info: CloseInfo) => void;
  private rejectClosed!: (error: Error) => void;
  private resolveOpened!: (n: Negotiated) => void;
  private rejectOpened!: (error: Error) => void;
  /**
   * `send()` callers waiting for room in the engine's send queue, in call order (`waiting[waitHead]`
   * first). Their messages are not accepted: nothing here is in the delivery report.
   */
  private waiting: (WaitingSend | undefined)[] = [];
  private waitHead = 0;
  /** `write()` returned false: emit `drain` once the send queue is below its bound again. */
  private drainWanted = false;
  private readers: (() => void)[] = [];
  private handling = false;
  private peerClosed = false;
  /**
   * `end()` (client) or the end of the stream (server) waits for the waiting `send()` callers'
   * messages to be accepted; no new message is accepted meanwhile.
   */
  private endWhenFlushed = false;

  /** @internal Created by `connect()` and `Server`. */
  constructor(
    role: Role,
    socket: Socket,
    engine: Engine,
    options: {
      socketBufferTarget?: number;
      defaultGrace?: number;
      maxSendQueue?: number;
      signal?: AbortSignal;
    },
  ) {
    super();
    this.role = role;
    this.socket = socket;
    this.engine = engine;
    this.socketBufferTarget = options.socketBufferTarget ?? 256 * 1024;
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

    socket.setNoDelay(true);
    socket.on('data', (chunk: Buffer) => {
      // A plain Uint8Array view: the decoder's subarray() calls then avoid Buffer's slower species path.
      this.engine.receive(now(), new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
      this.service();
    });
    socket.on('end', () => {
      this.engine.receiveEnd(now());
      this.service();
    });
    socket.on('error', (error) => {
      this.engine.transportFailed(now(), error);
      this.service();
    });
    socket.on('close', () => {
      this.transportEnded = true;
      this.engine.transportFailed(now(), new Error('socket closed'));
      this.service();
    });
    socket.on('drain', () => this.service());
    const signal = options.signal;
    if (signal !== undefined) {
      const onAbort = (): void => this.abort(new UsageError('CANCELLED', 'aborted by signal'));
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
   */
  write(payload: Uint8Array): boolean {
    if (this.waitHead < this.waiting.length) this.admitWaiting();
    if (this.waitHead === this.waiting.length && !this.endWhenFlushed) {
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
   */
  send(payload: Uint8Array): Promise<void> {
    try {
      if (this.waitHead < this.waiting.length) this.admitWaiting();
      if (
        this.waitHead === this.waiting.length &&
        !this.endWhenFlushed &&
        this.engine.trySend(this.lastNow, payload)
      ) {
        this.scheduleFlush();
        return ACCEPTED;
      }
      this.assertAccepting(payload);
    } catch (error) {
      const rejected = Promise.reject(error as Error);
      rejected.catch(() => {});
      return rejected;
    }
    const promise = new Promise<void>((resolve, reject) => this.waiting.push({ payload, resolve, reject }));
    promise.catch(() => {});
    return promise;
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
    const engine = this.engine;
    const t = now();
    while (this.waitHead < this.waiting.length) {
      const next = this.waiting[this.waitHead]!;
      try {
        if (!engine.trySend(t, next.payload)) break;
      } catch (error) {
        this.waiting[this.waitHead++] = undefined;
        next.reject(error as Error);
        continue;
      }
      this.waiting[this.waitHead++] = undefined;
      next.resolve();
    }
    if (this.waitHead === this.waiting.length) {
      if (this.waitHead > 0) {
        this.waiting = [];
        this.waitHead = 0;
      }
    } else {
      if (this.waitHead > 1024 && this.waitHead * 2 > this.waiting.length) {
        this.waiting.splice(0, this.waitHead);
        this.waitHead = 0;
      }
      return;
    }
    if (this.waitHead !== 0 || engine.state === 'closed') return;
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

  /** Messages in order; each message taken returns its credit to the peer. Ends when the peer ends the stream cleanly; throws the close error otherwise. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const message = this.read();
      if (message !== undefined) {
        yield message;
        continue;
      }
      if (this.streamEnded()) {
        this.endOfStream();
        return;
      }
      await new Promise<void>((resolve) => this.readers.push(resolve));
    }
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
   * Consume messages with a handler, at most `concurrency` at once (p-queue). A message's credit
   * returns to the peer when its handler settles, so a slow handler slows the peer down instead of
   * growing memory. Resolves when the stream ends.
   */
  async handle(handler: (message: Uint8Array) => unknown, options: HandleOptions = {}): Promise<void> {
    if (this.handling) throw new UsageError('INTERNAL_ERROR', 'handle() is already running');
    this.handling = true;
    const concurrency = Math.max(1, Math.floor(options.concurrency ?? 1));
    const queue = new PQueue({ concurrency });
    const onError =
      options.onError ??
      ((error: unknown) =>
        this.abort(
          error instanceof HeartwireError
            ? error
            : new UsageError('CANCELLED', `handler failed: ${String(error)}`),
        ));
    let running = 0;
    try {
      for (;;) {
        while (running < concurrency) {
          const message = this.engine.take(now());
          if (message === undefined) break;
          running++;
          void queue.add(async () => {
            try {
              await handler(message.payload);
            } catch (error) {
              onError(error, message.payload);
            } finally {
              running--;
              this.engine.release(now(), message.seq);
              this.service();
              this.wakeReaders();
            }
          });
        }
        if (running === 0 && this.streamEnded()) break;
        await new Promise<void>((resolve) => this.readers.push(resolve));
      }
      await queue.onIdle();
      this.endOfStream();
    } finally {
      this.handling = false;
    }
  }

  /** The consumer saw the end of the stream: a server finishes; an unclean close throws. */
  private endOfStream(): void {
    if (this.role === 'server' && this.peerClosed && this.engine.state === 'peer-closed') {
      this.endWhenFlushed = true;
      this.admitWaiting();
      this.service();
    }
    if (this.closeInfo !== undefined && !this.closeInfo.clean) throw this.closeInfo.error;
  }

  private streamEnded(): boolean {
    if (this.engine.readableMessages > 0) return false;
    const state = this.engine.state;
    return state === 'closed' || this.peerClosed || state === 'close-acked' || state === 'fin-sent';
  }

  private wakeReaders(): void {
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
   * deadline. Resolves like `closed`.
   */
  end(
    options: { grace?: number; reason?: number; message?: string; retryAfter?: number } = {},
  ): Promise<CloseInfo> {
    const t = now();
    if (this.role === 'client' || this.peerClosed) this.endWhenFlushed = true;
    else
      this.engine.goAway(t, {
        graceMs: options.grace ?? this.defaultGrace,
        reason: options.reason,
        message: options.message,
        retryAfterMs: options.retryAfter,
      });
    this.admitWaiting();
    this.service();
    return this.closed;
  }

  /** Close at once: send ERROR (default `CANCELLED`) and destroy the socket. */
  abort(error?: HeartwireError): void {
    this.engine.abort(now(), error);
    this.service();
  }

  // ------------------------------------------------------------------ inspection

  /** Counters and gauges: RTT, credit both ways, bytes, heartbeats, time blocked on credit. */
  stats(): ConnectionStats {
    return {
      ...this.engine.stats(now()),
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

  /** Protocol state. */
  get state(): string {
    return this.engine.state;
  }

  // ------------------------------------------------------------------ the driver

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(() => {
      this.flushScheduled = false;
      this.service();
    });
  }

  /** Move everything the engine wants to do into the world: events, bytes, the timer. */
  private service(): void {
    const t = now();
    this.lastNow = t;
    this.transmit(t);
    for (let event = this.engine.pollEvent(); event !== undefined; event = this.engine.pollEvent()) {
      switch (event.type) {
        case 'open':
          this.resolveOpened(event.negotiated);
          publish('open', { connection: this, negotiated: event.negotiated });
          this.emit('open', event.negotiated);
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
          this.emit('goaway', event.goAway);
          break;
        case 'peer-closed':
          this.peerClosed = true;
          this.emit('peer-closed');
          this.wakeReaders();
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
          this.transmit(t);
          this.socket.end();
          break;
        case 'closed':
          this.onClosed(event.info);
          break;
      }
    }
    this.transmit(t);
    if (!this.socket.destroyed) this.reportBacklog(t);
    this.armTimer();
  }

  private transmit(t: number): void {
    if (this.socket.destroyed) {
      this.engine.pollTransmit(t, 0);
      return;
    }
    if (!this.engine.wantsToTransmit) return;
    const room = Math.max(0, this.socketBufferTarget - this.socket.writableLength);
    const chunks = this.engine.pollTransmit(t, room);
    if (chunks.length === 0) return;
    if (chunks.length > 1) this.socket.cork();
    const engine = this.engine;
    for (const chunk of chunks) {
      // A batch buffer goes back to the engine for reuse once the socket has written it.
      if (engine.isRecyclable(chunk)) this.socket.write(chunk, () => engine.transmitted(chunk));
      else this.socket.write(chunk);
      this.bytesHandedOver += chunk.length;
    }
    if (chunks.length > 1) this.socket.uncork();
  }

  /**
   * Tell the engine's write-stall watchdog how many bytes the socket still holds. Progress is
   * measured as bytes the socket flushed since the last report, not as a smaller backlog: a busy
   * socket refilled to the same level after every flush is making progress.
   */
  private reportBacklog(t: number): void {
    const backlog = this.socket.writableLength;
    const flushed = this.bytesHandedOver - backlog;
    if (flushed > this.bytesFlushed) {
      this.bytesFlushed = flushed;
      this.engine.transmitBacklog(t, 0);
    }
    this.engine.transmitBacklog(t, backlog);
  }

  private armTimer(): void {
    const deadline = this.engine.nextDeadline();
    const timer = this.timer;
    if (deadline === undefined) {
      if (timer.armed) sharedWheel().cancel(timer);
      return;
    }
    // Moving a wheel timer is cheap (and a no-op within its bucket); a timer left to fire early
    // would cost a wake-up for nothing.
    if (timer.armed && timer.deadline === deadline) return;
    sharedWheel().schedule(timer, deadline, this.engine.timerSlack);
  }

  /**
   * The connection closed: the waiting `send()` callers' messages were never accepted (they are in
   * no report); their promises reject with the close error.
   */
  private rejectWaiting(error: Error): void {
    const waiting = this.waiting;
    const head = this.waitHead;
    this.waiting = [];
    this.waitHead = 0;
    this.endWhenFlushed = false;
    for (let i = head; i < waiting.length; i++) waiting[i]!.reject(error);
  }

  private onClosed(info: CloseInfo): void {
    if (this.closeInfo !== undefined) return;
    this.closeInfo = info;
    const t = now();
    // Write what the engine still has (an ERROR frame), then close the socket.
    const last = this.socket.destroyed ? [] : this.engine.pollTransmit(t, 0);
    if (!this.socket.destroyed) {
      for (const chunk of last) this.socket.write(chunk);
      if (info.clean || info.initiator !== 'transport' || info.error?.code === 'HEARTBEAT_TIMEOUT') {
        this.socket.end();
        // Give the peer a moment to read our last frame, but never wait on a dead path.
        const linger = setTimeout(() => this.socket.destroy(), info.clean ? 5000 : 1000);
        linger.unref();
        this.socket.once('close', () => clearTimeout(linger));
      } else {
        this.socket.destroy();
      }
    }
    sharedWheel().cancel(this.timer);
    const error = info.error ?? new UsageError('CONNECTION_CLOSED', 'connection closed');
    this.rejectWaiting(error);
    this.rejectOpened(error);
    if (info.clean) this.resolveClosed(info);
    else this.rejectClosed(error);
    this.wakeReaders();
    publish('close', { connection: this, info });
    this.emit('close', info);
  }
}
