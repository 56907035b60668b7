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
 * This class is the coordinator: the entry points, the order of transmission (SPEC.md §8,
 * "Priority"), received control frames checked against the state table and dispatched by type.
 * The work is done by the parts under `connection/`: `state.ts` (SPEC.md §9.3 as data),
 * `timers.ts` (every deadline), `handshake.ts`, `liveness.ts`, `send.ts`, `receive.ts`,
 * `receive-window.ts` and `termination.ts`.
 * @module
 */
import { FrameDecoder } from './codec/decode.js';
import { writeCreditFrame } from './codec/encode.js';
import { CREDIT_FRAME_SIZE, HEARTBEAT_FRAME_SIZE } from './codec/wire.js';
import { EXTENSION_IGNORABLE_FIRST, EXTENSION_MUST_UNDERSTAND_FIRST, FrameType } from './constants.js';
import {
  HeartwireError,
  ProtocolError,
  RemoteError,
  TimeoutError,
  TransportError,
  UsageError,
  WireErrorCode,
} from './errors.js';
import type { ControlFrame, ErrorBody } from './frames.js';
import type { Agreement } from './connection/handshake.js';
import { Handshake } from './connection/handshake.js';
import { Liveness } from './connection/liveness.js';
import { Receiver } from './connection/receive.js';
import { ReceiveWindow } from './connection/receive-window.js';
import { Ring } from './connection/ring.js';
import { Sender } from './connection/send.js';
import { checkAlternatives, resolveSettings } from './connection/settings.js';
import type { Settings } from './connection/settings.js';
import { EXTENSION_BIT, EndOfStream, StateMachine, frameBit } from './connection/state.js';
import { Termination } from './connection/termination.js';
import { TIMER_COUNT, Timer, Timers, timerBit } from './connection/timers.js';
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

const DATA_BIT = frameBit(FrameType.DATA);
const HEARTBEAT_BIT = frameBit(FrameType.HEARTBEAT);
const CREDIT_BIT = frameBit(FrameType.CREDIT);
const HEARTBEAT_TIMER = timerBit(Timer.HEARTBEAT);

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
  /** Received control frames by frame type, once the state table accepted them. */
  private readonly onFrame: ((frame: ControlFrame) => void)[] = [];
  /**
   * The largest message the application may send now: the peer's limit while `assertSendable`
   * would pass (state, close, finish), −1 otherwise. One field load per `trySend`.
   */
  private sendLimit = -1;
  private started = false;
  /** The state is `open` (cached from the row: `read()` asks after each message). */
  private open = false;
  /** Current time of the call being processed (frames carry no time of their own). */
  private now = 0;
  private bytesReceived = 0;
  private bytesSent = 0;

  /** Create an engine. Throws `RangeError` on invalid options. */
  constructor(options: EngineOptions) {
    const s = (this.settings = resolveSettings(options));
    this.machine = new StateMachine(s.role, (from, to) => this.moved(from, to));
    this.decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: s.maxFramePayload });
    this.decoder.wholeMessageMax = s.maxMessageBytes;
    this.decoder.dataAllowed = false;
    this.handshake = new Handshake(s, this.controlQueue);
    this.liveness = new Liveness(s, this.timers, this.events);
    this.send = new Sender(s, this.timers, this.events);
    this.window = new ReceiveWindow(s, this.timers, this.liveness, this.decoder, () =>
      this.fail(
        new ProtocolError('LIMIT_REACHED', 'the credit limit would reach 2^53 (SPEC.md §2)'),
        'local',
        true,
      ),
    );
    this.receiver = new Receiver(s, this.machine, this.window, this.decoder, this.events, this);
    this.termination = new Termination(
      s,
      this.machine,
      this.send,
      this.receiver,
      this.window,
      this.timers,
      this.controlQueue,
      this.events,
    );
    const on = this.onFrame;
    on[FrameType.CREDIT] = (f) => {
      if (f.type === FrameType.CREDIT && !this.send.onCredit(this.now, f.creditLimit, f.consumedMessages))
        this.liveness.countNoop(this.now);
    };
    on[FrameType.HEARTBEAT] = (f) => {
      if (f.type !== FrameType.HEARTBEAT) return;
      this.liveness.checkHeartbeatRate(this.now, f.timestamp);
      if (f.receivedBytes > this.send.sentCredit) {
        throw new ProtocolError(
          'PROTOCOL_ERROR',
          `peer claims ${f.receivedBytes} bytes received of ${this.send.sentCredit} sent`,
        );
      }
      this.send.onCredit(this.now, f.creditLimit, f.consumedMessages);
      this.liveness.onHeartbeat(this.now, f);
    };
    on[FrameType.HELLO] = (f) => {
      if (f.type === FrameType.HELLO) this.opened(this.handshake.onHello(f.hello));
    };
    on[FrameType.WELCOME] = (f) => {
      if (f.type === FrameType.WELCOME) this.opened(this.handshake.onWelcome(f.welcome));
    };
    on[FrameType.GOAWAY] = (f) => {
      if (f.type === FrameType.GOAWAY) this.termination.onGoAway(this.now, f.goAway);
    };
    on[FrameType.CLOSE] = (f) => {
      if (f.type === FrameType.CLOSE) this.termination.onClose(this.now, f.close);
    };
    on[FrameType.CLOSE_ACK] = (f) => {
      if (f.type === FrameType.CLOSE_ACK) this.termination.onCloseAck(this.now, f.closeAck);
    };
    on[FrameType.ERROR] = (f) => {
      if (f.type === FrameType.ERROR) this.onError(f.error);
    };
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
    this.now = now;
    this.receiver.now = now;
    this.liveness.lastReceivedAt = now;
    this.bytesReceived += bytes.length;
    try {
      if (this.receiver.receiveChunk(bytes)) this.termination.check();
    } catch (error) {
      if (this.machine.state === 'closed') return;
      if (error instanceof HeartwireError) {
        this.fail(error, 'remote', error.code !== 'PROTOCOL_MISMATCH');
      } else {
        this.fail(new UsageError('INTERNAL_ERROR', `internal error: ${String(error)}`), 'local', true);
      }
    }
  }

  /** The transport reported end-of-stream (FIN). */
  receiveEnd(now: number): void {
    if (this.machine.row.state === 'closed') return;
    this.now = now;
    if (this.endOfStreamIsClean()) return this.finishClean('remote');
    const state = this.machine.state;
    this.fail(
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
    this.now = now;
    // After the termination handshake, a reset loses nothing.
    if (this.endOfStreamIsClean()) return this.finishClean('transport');
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    this.fail(
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
    this.now = now;
    this.syncTimers();
    const timers = this.timers;
    for (let id = 0; id < TIMER_COUNT; id++) {
      if (!timers.due(id, now, mask)) continue;
      switch (id) {
        case Timer.HANDSHAKE:
          return this.timeout('HANDSHAKE_TIMEOUT', 'the handshake did not complete in time', 'local');
        case Timer.IDLE:
          if (!this.liveness.onIdleTimer(now)) break;
          return this.timeout(
            'HEARTBEAT_TIMEOUT',
            `no frame from the peer for ${Math.round(now - this.liveness.lastReceivedAt)} ms`,
            'transport',
          );
        case Timer.GRACE:
          return this.timeout(
            'GOAWAY_GRACE_EXPIRED',
            this.machine.state === 'going-away'
              ? 'the client did not close within the GOAWAY grace period'
              : 'the termination did not complete within the GOAWAY grace period',
            'local',
          );
        case Timer.CLOSE:
          return this.timeout('CLOSE_TIMEOUT', this.termination.closeTimeoutMessage(), 'local');
        case Timer.WRITE_STALL:
          return this.timeout(
            'WRITE_STALL',
            `the transport accepted no bytes for ${Math.round(now - this.liveness.backlogSince)} ms`,
            'transport',
          );
        case Timer.CREDIT_STALL:
          return this.timeout(
            'CREDIT_STALL',
            `blocked on the peer's credit for ${Math.round(now - this.send.blockedSince!)} ms`,
            'local',
          );
        case Timer.CREDIT_STALL_REPORT:
          this.send.reportStall(now);
          break;
        case Timer.HEARTBEAT:
          this.liveness.onHeartbeatTimer(now);
          break;
        case Timer.PIN_CHECK: {
          const pinned = this.window.checkPin(now);
          if (pinned !== undefined)
            return this.fail(new ProtocolError('ENHANCE_YOUR_CALM', pinned), 'remote', true);
          break;
        }
        case Timer.WINDOW_SHRINK:
          this.window.shrink();
          break;
      }
    }
  }

  private timeout(
    code: ConstructorParameters<typeof TimeoutError>[0],
    message: string,
    initiator: CloseInfo['initiator'],
  ): void {
    this.fail(new TimeoutError(code, message), initiator, true);
  }

  /**
   * Bring up to date the deadlines whose inputs change on the data path (each received chunk
   * moves the idle deadline, each DATA frame the window shrink): computed when a deadline is
   * asked for rather than per chunk. The others are armed where their inputs change.
   */
  private syncTimers(): void {
    this.liveness.syncIdleTimer();
    this.window.syncShrinkTimer();
  }

  /** The earliest time at which `handleTimeout` must be called, or `undefined` (no timer needed). */
  nextDeadline(): number | undefined {
    const mask = this.machine.row.timers;
    if (!this.started || mask === 0) return undefined;
    this.syncTimers();
    const next = this.timers.next(mask);
    return next === Number.POSITIVE_INFINITY ? undefined : next;
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
    this.now = now;
    if (payload.length > this.sendLimit) this.assertSendable(payload);
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
    this.now = now;
    const payload = this.receiver.read(now);
    if (payload !== undefined && !this.open) this.termination.check();
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
  takePayload(now: number): Uint8Array | undefined {
    this.now = now;
    return this.receiver.take();
  }

  /** Give back a message taken with `take()`. Releasing twice or an unknown seq is ignored. */
  release(now: number, seq: number): void {
    this.now = now;
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
    this.now = now;
    this.receiver.now = now;
    if (this.machine.state === 'closed' || this.receiver.discarding) return;
    this.receiver.discarding = true;
    if (this.receiver.dropInbox()) this.termination.check();
  }

  /** Client: start the termination handshake (CLOSE after all queued data). Idempotent. */
  close(now: number): void {
    this.now = now;
    if (this.settings.role !== 'client')
      throw new UsageError('INTERNAL_ERROR', 'only a client closes; a server uses goAway()');
    this.termination.close(now);
    this.updateSendOpen();
  }

  /**
   * Server: announce shutdown with a grace period (SPEC.md §9.2). The grace is a hard deadline
   * on the whole connection: when it expires the connection is force-closed
   * (`GOAWAY_GRACE_EXPIRED`), whether or not the client's CLOSE arrived. Only the first call sends
   * GOAWAY; a later call can only bring the deadline forward.
   */
  goAway(
    now: number,
    options: {
      graceMs: number;
      reason?: number;
      retryAfterMs?: number;
      doNotReconnect?: boolean;
      message?: string;
      /** Where clients should go (SPEC.md §9.5); default: the `alternatives` option. */
      alternatives?: readonly string[];
    },
  ): void {
    this.now = now;
    if (this.settings.role !== 'server') throw new UsageError('INTERNAL_ERROR', 'only a server sends GOAWAY');
    if (options.alternatives !== undefined) checkAlternatives('alternatives', options.alternatives);
    this.termination.goAway(now, options);
  }

  /** Server: after `peer-closed`, the application has sent everything; CLOSE_ACK follows once flushed. */
  finish(now: number): void {
    this.now = now;
    if (this.settings.role !== 'server')
      throw new UsageError('INTERNAL_ERROR', 'only a server calls finish()');
    this.termination.finish();
    this.updateSendOpen();
  }

  /** Abort: send ERROR (default CANCELLED) if the transport allows, and close. */
  abort(now: number, error?: HeartwireError): void {
    this.now = now;
    if (this.machine.state === 'closed') return;
    this.fail(error ?? new UsageError('CANCELLED', 'aborted by the application'), 'local', this.started);
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
    return this.window.creditDirty || this.window.consumedReportDue || this.machine.row.state !== 'open';
  }

  /** True if `pollTransmit` would return bytes (control frames, or DATA within credit). */
  get wantsToTransmit(): boolean {
    if (this.controlQueue.length > 0) return true;
    if (this.machine.state === 'closed') return false;
    const w = this.window;
    const t = this.termination;
    return (
      this.liveness.heartbeatDue ||
      w.creditDirty ||
      w.consumedReportDue ||
      t.closeFrameDue ||
      t.finalFrameDue ||
      this.send.hasDataToSend
    );
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
    this.now = now;
    const out: Uint8Array[] = [];
    const send = this.send;
    const w = this.window;
    const t = this.termination;
    for (let bytes = this.controlQueue.shift(); bytes !== undefined; bytes = this.controlQueue.shift())
      out.push(bytes);
    if (this.machine.state === 'closed' || this.handshake.negotiated === undefined) {
      this.account(now, out);
      return out;
    }
    send.begin(out, maxDataBytes, HEARTBEAT_FRAME_SIZE + CREDIT_FRAME_SIZE);
    const live = this.liveness;
    if (live.heartbeatDue && (this.machine.row.sends & HEARTBEAT_BIT) !== 0) {
      const target = send.room(HEARTBEAT_FRAME_SIZE);
      w.raiseLimit();
      live.writeHeartbeat(target, send.txPos, now, w.receivedCredit, w.grantedLimit, w.consumedCount);
      w.reported();
      send.txPos += HEARTBEAT_FRAME_SIZE;
    }
    live.heartbeatDue = false;
    if (w.creditDirty || w.consumedReportDue) {
      const target = send.room(CREDIT_FRAME_SIZE);
      // A consumption report alone repeats the limit granted (rule 3: it changes nothing).
      if (w.creditDirty) w.raiseLimit();
      writeCreditFrame(target, send.txPos, w.grantedLimit, w.consumedCount);
      w.reported();
      send.txPos += CREDIT_FRAME_SIZE;
    }
    send.writeData(maxDataBytes);
    send.end(now);
    t.check();
    if (t.closeFrameDue) {
      t.closeFrameDue = false;
      out.push(t.closeFrame());
      this.setState('close-sent');
    }
    if (t.finalFrameDue) {
      t.finalFrameDue = false;
      out.push(this.finalFrame());
    }
    this.account(now, out);
    return out;
  }

  /** The frame that ends this side's transmissions in the termination handshake. */
  private finalFrame(): Uint8Array {
    const t = this.termination;
    if (this.settings.role === 'server') {
      const frame = t.closeAckFrame();
      this.setState('close-ack-sent');
      return frame;
    }
    if (this.receiver.discardedCount > 0) {
      const frame = t.discardedFrame();
      this.finishClean('local');
      return frame;
    }
    const credit = t.finalCreditFrame();
    this.setState('fin-sent');
    this.emit({ type: 'end-transport' });
    return credit;
  }

  private account(now: number, out: Uint8Array[]): void {
    if (out.length === 0) return;
    for (const bytes of out) this.bytesSent += bytes.length;
    this.liveness.lastSentAt = now;
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

  /** @internal A control frame from the decoder (through the receiver), in the current state. */
  onControl(frame: ControlFrame): void {
    const row = this.machine.row;
    if (row.state === 'closed') return;
    if (frame.type === 'extension') {
      // Ignorable extension types change nothing (and count as such); others were not negotiated.
      if ((row.accepts & EXTENSION_BIT) === 0 || frame.frameType < EXTENSION_IGNORABLE_FIRST)
        this.rejectFrame(frame.frameType);
      return this.liveness.countNoop(this.now);
    }
    if ((row.accepts & frameBit(frame.type)) === 0) this.rejectFrame(frame.type);
    this.onFrame[frame.type]!(frame);
  }

  /** A frame the state table does not accept in the current state: `PROTOCOL_ERROR`. */
  private rejectFrame(type: number): never {
    const row = this.machine.row;
    if (row.accepts === 0) throw new ProtocolError('PROTOCOL_ERROR', 'frame after CLOSE_ACK');
    if (row.state === 'handshaking') {
      const expected = this.settings.role === 'client' ? 'WELCOME' : 'HELLO';
      throw new ProtocolError('PROTOCOL_ERROR', `expected ${expected} as first frame`);
    }
    if (type >= EXTENSION_MUST_UNDERSTAND_FIRST)
      throw new ProtocolError('PROTOCOL_ERROR', `frame type 0x${type.toString(16)} was not negotiated`);
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected ${frameName(type)} in state ${row.state}`);
  }

  /** The handshake completed: open every part with what it agreed. */
  private opened(agreement: Agreement): void {
    const now = this.now;
    const n = agreement.negotiated;
    this.send.start(agreement.peerInitialCredit, n.peerMaxFramePayload, n.peerMaxMessageBytes);
    this.window.open(now, agreement.peerSendQueueLimit);
    this.timers.stop(Timer.HANDSHAKE);
    this.liveness.open(now, n.localIdleTimeoutMs, n.peerIdleTimeoutMs);
    this.setState('open');
    this.emit({ type: 'open', negotiated: n });
    // The client's first RTT sample: HELLO to WELCOME.
    const helloSentAt = this.handshake.helloSentAt;
    if (this.settings.role === 'client' && helloSentAt !== undefined)
      this.liveness.recordRtt(now - helloSentAt);
    this.termination.opened(now);
  }

  private onError(body: ErrorBody): void {
    if (this.termination.plausibleCounts(body)) {
      if (body.consumedMessages > this.send.peerConsumed)
        this.send.onCredit(this.now, 0, body.consumedMessages);
      this.send.peerDelivered = body.deliveredMessages;
    }
    this.fail(new RemoteError(body.code, body.message), 'remote', false);
  }

  // ------------------------------------------------------------------ state and closing

  /** End-of-stream (or a reset) now ends the connection cleanly (SPEC.md §9.3). */
  private endOfStreamIsClean(): boolean {
    const eos = this.machine.row.endOfStream;
    return (
      eos === EndOfStream.CLEAN ||
      (eos === EndOfStream.CLEAN_IF_CONSUMED && this.send.peerConsumed === this.send.queuedCount)
    );
  }

  private finishClean(initiator: CloseInfo['initiator']): void {
    this.termination.cleanClose(initiator);
    this.enterClosed();
  }

  private fail(error: HeartwireError, initiator: CloseInfo['initiator'], sendError: boolean): void {
    if (this.machine.state === 'closed') return;
    if (
      sendError &&
      this.machine.row.sendsError &&
      this.handshake.readyForFrame(this.decoder.preambleReceived)
    ) {
      this.controlQueue.push(
        this.termination.errorFrame(error.wireCode ?? WireErrorCode.CANCELLED, error.message),
      );
    }
    this.termination.failedClose(error, initiator);
    this.enterClosed();
  }

  private enterClosed(): void {
    this.receiver.close();
    this.window.stopPinWatch();
    this.liveness.heartbeatDue = false;
    const w = this.window;
    w.creditDirty = false;
    w.consumedReportDue = false;
    this.termination.closeFrameDue = false;
    this.termination.finalFrameDue = false;
    this.send.close(this.now);
    this.setState('closed');
    w.returnReservation(true);
    this.emit({ type: 'closed', info: this.termination.closeInfo! });
  }

  private setState(to: ConnectionState): void {
    this.machine.move(to);
  }

  /** After each move of the state machine: what is cached from the row, and the `state` event. */
  private moved(from: ConnectionState, to: ConnectionState): void {
    const row = this.machine.row;
    const dataAllowed = (row.accepts & DATA_BIT) !== 0;
    this.receiver.setDataAllowed(dataAllowed);
    this.open = row.state === 'open';
    this.decoder.dataAllowed = dataAllowed;
    this.window.grants = (row.sends & CREDIT_BIT) !== 0;
    this.updateSendOpen();
    if ((row.timers & HEARTBEAT_TIMER) === 0) this.timers.stop(Timer.HEARTBEAT);
    this.emit({ type: 'state', from, to });
  }

  private updateSendOpen(): void {
    const row = this.machine.row;
    const t = this.termination;
    const open =
      row.acceptsMessages &&
      !t.closeRequested &&
      !(this.settings.role === 'server' && t.finishRequested && row.state === 'peer-closed');
    this.sendLimit = open ? this.send.peerMaxMessageBytes : -1;
  }

  private emit(event: EngineEvent): void {
    this.events.push(event);
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
    const send = this.send;
    const w = this.window;
    const live = this.liveness;
    const blockedNow = send.blockedSince === undefined || now === undefined ? 0 : now - send.blockedSince;
    return {
      state: this.machine.state,
      rttMs: live.rtt,
      smoothedRttMs: live.srtt,
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
      messagesReceived: this.receiver.receivedCount,
      messagesSent: send.writtenCount,
      heartbeatsReceived: live.heartbeatsReceived,
      heartbeatsSent: live.heartbeatsSent,
      sendCredit: Math.max(0, send.peerLimit - send.sentCredit),
      receiveCredit: Math.max(0, w.grantedLimit - w.receivedCredit),
      receiveWindow: w.window,
      heldBytes: w.heldBytes,
      queuedBytes: send.queuedBytes,
      sendQueueBytes: send.outboxBytes,
      creditBlockedMs: send.creditBlockedTotal + blockedNow,
      lastReceivedAt: this.started ? live.lastReceivedAt : undefined,
      lastSentAt: live.lastSentAt,
    };
  }

  /** Classification of this side's messages (SPEC.md §9.4). Exact at any time; final once closed. */
  deliveryReport(): DeliveryReport {
    return this.send.deliveryReport();
  }
}

function frameName(type: number): string {
  for (const [name, code] of Object.entries(FrameType)) if (code === type) return name;
  return `0x${type.toString(16)}`;
}
