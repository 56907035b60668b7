/**
 * The sans-IO heartwire engine: one connection, client or server role. Bytes in, time in,
 * application calls in; bytes out, the next deadline and typed events out. No I/O, no clock,
 * no timers: the caller passes `now` (ms, monotonic) to every call that depends on time.
 *
 * How an adapter drives it (see `src/node/` and `src/testing/simnet.ts`):
 * 1. `start(now)` once the transport is connected;
 * 2. feed `receive(now, bytes)`, `receiveEnd(now)`, `transportFailed(now)` from the transport;
 * 3. after any call, write `pollTransmit(now, room)` to the transport, handle every
 *    `pollEvent()`, and arm one timer at `nextDeadline()` that calls `handleTimeout(now)`.
 *
 * This class is the coordinator: it creates the parts under `connection/` and routes each entry
 * point to them. `state.ts` (SPEC.md §9.3 as data), `lifecycle.ts` (what a move changes, opening,
 * closing), `control.ts` (received control frames, checked against the state table),
 * `transmit.ts` (the order of transmission, SPEC.md §8 "Priority"), `timers.ts` (every deadline)
 * and `deadlines.ts` (what each does when due), `handshake.ts`, `liveness.ts`, `send.ts`,
 * `receive.ts`, `receive-window.ts`, `termination.ts` and `stats.ts`.
 * @module
 */
import { FrameDecoder } from './codec/decode.js';
import { HeartwireError, ProtocolError, TransportError, UsageError } from './errors.js';
import type { ControlFrame } from './frames.js';
import { ControlFrames } from './connection/control.js';
import { Deadlines } from './connection/deadlines.js';
import { Handshake } from './connection/handshake.js';
import { Lifecycle } from './connection/lifecycle.js';
import { Liveness } from './connection/liveness.js';
import { Receiver } from './connection/receive.js';
import { ReceiveWindow } from './connection/receive-window.js';
import { Ring } from './connection/ring.js';
import { Sender } from './connection/send.js';
import { checkAlternatives, resolveSettings } from './connection/settings.js';
import type { Settings } from './connection/settings.js';
import { StateMachine } from './connection/state.js';
import { Stats } from './connection/stats.js';
import { Termination } from './connection/termination.js';
import type { GoAwayOptions } from './connection/termination.js';
import { Timer, Timers } from './connection/timers.js';
import { Transmitter } from './connection/transmit.js';
import type {
  CloseInfo,
  ConnectionState,
  DeliveryReport,
  EngineEvent,
  EngineOptions,
  EngineStats,
  GoAwayInfo,
  InboundMessage,
  Negotiated,
} from './types.js';

export { dataFrameCost } from './codec/wire.js';
export { seededRandom } from './connection/settings.js';
export { SEND_QUEUE_MESSAGE_OVERHEAD } from './connection/send.js';

/**
 * One heartwire connection as a pure state machine (SPEC.md). See the module documentation
 * for how to drive it.
 */
export class Engine {
  private readonly settings: Settings;
  private readonly decoder: FrameDecoder;
  /** The state and its row of the state table (SPEC.md §9.3). */
  private readonly machine: StateMachine;
  /** Every deadline (see `handleTimeout`). */
  private readonly timers = new Timers();
  private readonly events = new Ring<EngineEvent>();
  /** Control frames queued to go out first (preamble, handshake, GOAWAY, ERROR). */
  private readonly controlQueue = new Ring<Uint8Array>();
  private readonly handshake: Handshake;
  private readonly liveness: Liveness;
  private readonly send: Sender;
  private readonly window: ReceiveWindow;
  private readonly receiver: Receiver;
  private readonly termination: Termination;
  private readonly life: Lifecycle;
  private readonly control: ControlFrames;
  private readonly transmit: Transmitter;
  private readonly deadlines: Deadlines;
  private readonly counters: Stats;
  private started = false;

  /** Create an engine. Throws `RangeError` on invalid options. */
  constructor(options: EngineOptions) {
    const s = (this.settings = resolveSettings(options));
    this.machine = new StateMachine(s.role, (from, to) => this.life.moved(from, to));
    this.decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: s.maxFramePayload });
    this.decoder.wholeMessageMax = s.maxMessageBytes;
    this.decoder.dataAllowed = false;
    const { machine, timers, events, controlQueue } = this;
    const handshake = (this.handshake = new Handshake(s, controlQueue));
    const live = (this.liveness = new Liveness(s, timers, events));
    const send = (this.send = new Sender(s, timers, events));
    const w = (this.window = new ReceiveWindow(s, timers, live, this.decoder, (now) =>
      this.life.fail(
        now,
        new ProtocolError('LIMIT_REACHED', 'the credit limit would reach 2^53 (SPEC.md §2)'),
        'local',
        true,
      ),
    ));
    const r = (this.receiver = new Receiver(s, machine, w, this.decoder, events, this));
    const t = (this.termination = new Termination(s, machine, send, r, w, timers, controlQueue, events));
    const life = (this.life = new Lifecycle(
      s,
      machine,
      this.decoder,
      handshake,
      live,
      send,
      w,
      r,
      t,
      timers,
      controlQueue,
      events,
    ));
    this.control = new ControlFrames(s, machine, handshake, live, send, t, life);
    this.transmit = new Transmitter(s, machine, handshake, live, send, w, r, t, life, controlQueue, events);
    this.deadlines = new Deadlines(machine, timers, live, send, w, t, life);
    this.counters = new Stats(machine, live, send, w, r, this.transmit);
  }

  // ------------------------------------------------------------------ inputs

  /** Start the connection once the transport is connected (client: queues preamble + HELLO). */
  start(now: number): void {
    if (this.started) return;
    this.started = true;
    this.liveness.lastReceivedAt = now;
    this.timers.set(Timer.HANDSHAKE, now + this.settings.handshakeTimeoutMs);
    if (this.settings.role === 'client') this.handshake.sendHello(now);
  }

  /** Bytes received from the transport. */
  receive(now: number, bytes: Uint8Array): void {
    if (this.machine.row.state === 'closed' || bytes.length === 0) return;
    this.receiver.now = now;
    this.liveness.lastReceivedAt = now;
    this.counters.bytesReceived += bytes.length;
    try {
      if (this.receiver.receiveChunk(bytes)) this.termination.check();
    } catch (error) {
      if (this.machine.state === 'closed') return;
      if (error instanceof HeartwireError) {
        this.life.fail(now, error, 'local', error.code !== 'PROTOCOL_MISMATCH');
      } else {
        const internal = new UsageError('INTERNAL_ERROR', `internal error: ${String(error)}`);
        this.life.fail(now, internal, 'local', true);
      }
    }
  }

  /** The transport reported end-of-stream (FIN). */
  receiveEnd(now: number): void {
    if (this.machine.row.state === 'closed') return;
    if (this.life.endOfStreamIsClean()) return this.life.finishClean(now, 'remote');
    const state = this.machine.state;
    this.life.fail(
      now,
      new TransportError(
        'UNEXPECTED_EOF',
        `the peer ended the stream in state ${state} without the termination handshake`,
      ),
      'transport',
      false,
    );
  }

  /** The transport failed (reset, error) or was closed under us. */
  transportFailed(now: number, cause?: unknown): void {
    if (this.machine.row.state === 'closed') return;
    // After the termination handshake, a reset loses nothing.
    if (this.life.endOfStreamIsClean()) return this.life.finishClean(now, 'transport');
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    this.life.fail(
      now,
      new TransportError('TRANSPORT_ERROR', `transport failed${detail}`, { cause }),
      'transport',
      false,
    );
  }

  /**
   * Call when the deadline returned by `nextDeadline()` is reached (calling early is harmless).
   * Handles every due deadline the current state runs, in the order of the ids of `Timer`.
   */
  handleTimeout(now: number): void {
    const mask = this.machine.row.timers;
    if (!this.started || mask === 0) return;
    this.deadlines.handle(now, mask);
  }

  /** The earliest time at which `handleTimeout` must be called, or `undefined` (no timer needed). */
  nextDeadline(): number | undefined {
    const mask = this.machine.row.timers;
    if (!this.started || mask === 0) return undefined;
    return this.deadlines.next(mask);
  }

  /**
   * How late (ms) the adapter may call `handleTimeout` after `nextDeadline()`, so that it can
   * coalesce the timers of many connections (SPEC.md §8, "Timer slack"). Heartbeat periods are
   * drawn short by this much, so heartbeats sent that late still keep to [0.9 I, 1.1 I]; a
   * liveness failure is reported at most this much later.
   */
  get timerSlack(): number {
    return this.liveness.timerSlack;
  }

  /**
   * Report how many bytes the transport holds unsent (for the write-stall watchdog). A smaller
   * value, or 0, counts as progress; an adapter that can see bytes being flushed while the backlog
   * stays level reports 0 first (SPEC.md §8, "Write stall").
   */
  transmitBacklog(now: number, bytes: number): void {
    this.liveness.transmitBacklog(now, bytes);
  }

  // ------------------------------------------------------------------ application calls

  /**
   * Queue a message (accept it: from now on it is in the delivery report). Returns false, and
   * queues nothing, when the send queue is full (`sendQueueFull`): wait for the `writable`
   * event. The send queue holds every message until the peer reports it consumed, so it bounds
   * what this side retains, whatever the peer's credit: a message is accepted while the queue
   * is below `maxSendQueueBytes`, so it never exceeds that bound by more than one message.
   * Throws {@link UsageError} when the connection no longer accepts messages
   * (`CONNECTION_CLOSED`) or the message exceeds the peer's limit (`MESSAGE_TOO_LARGE`).
   */
  trySend(now: number, payload: Uint8Array): boolean {
    if (payload.length > this.life.sendLimit) this.assertSendable(payload);
    return this.send.queue(now, payload);
  }

  /**
   * Throw the {@link UsageError} that `trySend` would throw for this payload (connection not
   * accepting messages, message too large), without queuing anything.
   */
  assertSendable(payload: Uint8Array): void {
    this.termination.assertSendable(payload.length);
  }

  /** Take the next message and consume it at once (its credit returns to the peer). */
  read(now: number): Uint8Array | undefined {
    const payload = this.receiver.read(now);
    if (payload !== undefined && !this.life.open) this.termination.check();
    return payload;
  }

  /** Take the next message; its credit returns on `release(seq)`. */
  take(now: number): InboundMessage | undefined {
    const payload = this.takePayload(now);
    return payload === undefined ? undefined : { seq: this.receiver.deliveredCount, payload };
  }

  /**
   * `take()` without the wrapper object, for hot loops: the message's seq (for `release`) is
   * {@link lastTakenSeq} right after.
   */
  takePayload(_now: number): Uint8Array | undefined {
    return this.receiver.take();
  }

  /** Give back a message taken with `take()`. Releasing twice or an unknown seq is ignored. */
  release(now: number, seq: number): void {
    if (this.receiver.release(now, seq)) this.termination.check();
  }

  /**
   * The application will read no more: drop every message not yet taken, now and as they arrive
   * (SPEC.md §9.1, "Unread messages"). Their credit returns to the peer, so that it can finish, but
   * they are not counted consumed nor delivered: the peer learns exactly which messages were
   * discarded (a server from the client's ERROR `CANCELLED` sent after CLOSE_ACK instead of its
   * final CREDIT, a client from CLOSE_ACK's `delivered_messages`), and `CloseInfo.unread` counts
   * them. Messages taken and not yet released are still awaited. Idempotent.
   */
  discardUnread(now: number): void {
    this.receiver.now = now;
    if (this.machine.state === 'closed' || this.receiver.discarding) return;
    this.receiver.discarding = true;
    if (this.receiver.dropInbox()) this.termination.check();
  }

  /** Client: start the termination handshake (CLOSE after all queued data). Idempotent. */
  close(now: number): void {
    if (this.settings.role !== 'client')
      throw new UsageError('INTERNAL_ERROR', 'only a client closes; a server uses goAway()');
    this.termination.close(now);
    this.life.updateSendOpen();
  }

  /**
   * Server: announce shutdown with a grace period (SPEC.md §9.2). The grace is a hard deadline
   * on the whole connection: when it expires the connection is force-closed
   * (`GOAWAY_GRACE_EXPIRED`), whether or not the client's CLOSE arrived. Only the first call sends
   * GOAWAY; a later call can only bring the deadline forward.
   */
  goAway(now: number, options: GoAwayOptions): void {
    if (this.settings.role !== 'server') throw new UsageError('INTERNAL_ERROR', 'only a server sends GOAWAY');
    if (options.alternatives !== undefined) checkAlternatives('alternatives', options.alternatives);
    this.termination.goAway(now, options);
  }

  /** Server: after `peer-closed`, the application has sent everything; CLOSE_ACK follows once flushed. */
  finish(_now: number): void {
    if (this.settings.role !== 'server')
      throw new UsageError('INTERNAL_ERROR', 'only a server calls finish()');
    this.termination.finish();
    this.life.updateSendOpen();
  }

  /** Abort: send ERROR (default CANCELLED) if the transport allows, and close. */
  abort(now: number, error?: HeartwireError): void {
    if (this.machine.state === 'closed') return;
    const cancelled = error ?? new UsageError('CANCELLED', 'aborted by the application');
    this.life.fail(now, cancelled, 'local', this.started);
  }

  // ------------------------------------------------------------------ outputs

  /** Next event, or `undefined`. */
  pollEvent(): EngineEvent | undefined {
    return this.events.shift();
  }

  /**
   * Cheap check after `read()`: true if it may have given the engine something to transmit (a
   * credit grant, or progress of the termination); then ask {@link wantsToTransmit}. Reading
   * never makes DATA sendable.
   */
  get mayTransmitAfterRead(): boolean {
    return this.transmit.mayTransmitAfterRead;
  }

  /** True if `pollTransmit` would return bytes (control frames, or DATA within credit). */
  get wantsToTransmit(): boolean {
    return this.transmit.wantsToTransmit;
  }

  /**
   * Bytes to write, in the order of SPEC.md §8 ("Priority"): control frames, a heartbeat, a
   * credit, then DATA frames while fewer than `maxDataBytes` DATA bytes have been produced
   * (default unlimited; the last frame may go past it by at most one frame, so callers pass the
   * room they have, and 0 for control frames only), then the termination's frame. Returns an
   * empty array when nothing is pending. Views may point at payloads given to `trySend`: do not
   * modify those while they are being written.
   */
  pollTransmit(now: number, maxDataBytes = Number.POSITIVE_INFINITY): Uint8Array[] {
    return this.transmit.pollTransmit(now, maxDataBytes);
  }

  /**
   * Optional: the transport is done with `chunk`, one of the chunks `pollTransmit` returned
   * (written, or dropped). The engine then reuses the buffer behind it for later frames, which
   * saves an allocation per batch; a transport that never calls this loses nothing else.
   * Call it at most once per chunk, and never while the transport may still read the chunk.
   */
  transmitted(chunk: Uint8Array): void {
    this.send.transmitted(chunk);
  }

  /** Whether {@link transmitted} would recycle the buffer behind `chunk` (a batch of frames). */
  isRecyclable(chunk: Uint8Array): boolean {
    return this.send.isRecyclable(chunk);
  }

  // ------------------------------------------------------------------ received control frames

  /** @internal A control frame from the decoder (through the receiver): see `connection/control.ts`. */
  onControl(now: number, frame: ControlFrame): void {
    this.control.onControl(now, frame);
  }

  // ------------------------------------------------------------------ inspection

  /** Current state. */
  get state(): ConnectionState {
    return this.machine.state;
  }

  /** Values agreed in the handshake, `undefined` before it completes. */
  get negotiated(): Negotiated | undefined {
    return this.handshake.negotiated;
  }

  /** Messages whose last frame has been handed to the transport. */
  get writtenMessages(): number {
    return this.send.writtenCount;
  }

  /** Messages accepted by `trySend` so far (`delivery.queued`). */
  get acceptedMessages(): number {
    return this.send.queuedCount;
  }

  /** What the send queue holds, counted against `maxSendQueueBytes` (see `trySend`). */
  get sendQueueBytes(): number {
    return this.send.outboxBytes;
  }

  /** True when `trySend` would refuse a message because the send queue is at its bound. */
  get sendQueueFull(): boolean {
    return this.send.queueFull;
  }

  /** Messages ready to `read()`/`take()`. */
  get readableMessages(): number {
    return this.receiver.inbox.length;
  }

  /** The seq of the message last taken (messages handed to the application so far). */
  get lastTakenSeq(): number {
    return this.receiver.deliveredCount;
  }

  /** Client: the server's GOAWAY, once received (`undefined` before, and on a server). */
  get receivedGoAway(): GoAwayInfo | undefined {
    return this.termination.goAwayReceived;
  }

  /** How the connection closed, once closed. */
  get closed(): CloseInfo | undefined {
    return this.termination.closeInfo;
  }

  /** Credit bytes held for unconsumed input: `R − C` (SPEC.md §7). Never above the window. */
  get heldBytes(): number {
    return this.window.heldBytes;
  }

  /** The current receive window `W`. */
  get receiveWindow(): number {
    return this.window.window;
  }

  /** The largest credit limit granted so far (`L`). */
  get creditLimitGranted(): number {
    return this.window.grantedLimit;
  }

  /** Counters and gauges. */
  stats(now?: number): EngineStats {
    return this.counters.collect(this.started, now);
  }

  /** Classification of this side's messages (SPEC.md §9.4). Exact at any time; final once closed. */
  deliveryReport(): DeliveryReport {
    return this.send.deliveryReport();
  }
}
