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
 * @module
 */
import {
  FrameDecoder,
  dataFrameCost,
  encodeControlFrame,
  putHeader,
  writeCreditFrame,
  writeFrameHeader,
  writeHeartbeatFrame,
} from './codec.js';
import type { FrameSink } from './codec.js';
import {
  FLAG_END,
  FRAME_HEADER_SIZE,
  FrameType,
  CREDIT_PAYLOAD_SIZE,
  HEARTBEAT_PAYLOAD_SIZE,
  EXTENSION_IGNORABLE_FIRST,
  EXTENSION_MUST_UNDERSTAND_FIRST,
  MAX_COUNTER,
  HEARTBEAT_TICKS_PER_MS,
  MESSAGE_CREDIT_OVERHEAD,
  MAX_FRAME_PAYLOAD,
  MAX_HEARTBEATS_PER_WINDOW,
  MAX_IDLE_TIMEOUT_MS,
  MAX_NOOP_CONTROL_PER_WINDOW,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PREAMBLE,
} from './constants.js';
import {
  FlowControlError,
  HeartwireError,
  ProtocolError,
  RemoteError,
  TimeoutError,
  TransportError,
  UsageError,
  WireErrorCode,
} from './errors.js';
import type { ControlFrame, GoAway, HeartbeatFrame, Hello, Welcome } from './frames.js';
import { Ring } from './connection/ring.js';
import { EXTENSION_BIT, EndOfStream, StateMachine, frameBit } from './connection/state.js';
import { TIMER_COUNT, Timer, Timers, timerBit } from './connection/timers.js';
import { MIN_FRAGMENT, U32, resolveSettings } from './connection/settings.js';
import type { Settings } from './connection/settings.js';
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

const CREDIT_FRAME_SIZE = FRAME_HEADER_SIZE + CREDIT_PAYLOAD_SIZE;
const HEARTBEAT_FRAME_SIZE = FRAME_HEADER_SIZE + HEARTBEAT_PAYLOAD_SIZE;
/** Payloads up to this size are copied into the batch buffer; larger ones are written as views. */
const COPY_THRESHOLD = 2048;
/** Size of the scratch buffers that batch headers and small payloads. */
const BATCH_SIZE = 64 * 1024;
/**
 * Batch buffers written and ready for reuse (see `Engine.transmitted`), shared by the engines of
 * a process so that its memory stays bounded however many connections were once busy.
 */
const BATCH_POOL_MAX = 32;
const batchPool: Uint8Array[] = [];
/** A call expected to write at least this many bytes takes a full-size, recycled batch. */
const POOLED_BATCH_MIN = 4096;
/** Heartbeats stamped closer together than this fraction of the period count as early. */
const EARLY_HEARTBEAT_FRACTION = 0.45;
/** Heartbeats arriving in one window of T/3, whatever their timestamps, beyond which a peer floods. */
const MAX_HEARTBEAT_ARRIVALS_PER_WINDOW = 1000;
/** Queueing delay the receive window may add to the path, beyond its minimum RTT (window tuning). */
const QUEUE_TARGET_MS = 0.5;
/** Shortest interval over which window tuning measures the consumption rate. */
const RATE_INTERVAL_MS = 2;
/** RTT assumed for window tuning until a sample exists. */
const DEFAULT_RTT_MS = 1;
/** RTT above the minimum by more than this means queues are building: stop growing the window. */
const RTT_QUEUEING_MS = 4;
/** After this long without DATA, a grown receive window shrinks back to its initial size. */
const WINDOW_IDLE_SHRINK_MS = 2000;
/**
 * How often a connection holding an incomplete message under a shared budget samples whether the
 * message pins memory (see `Engine.checkPin`) and retries growth the budget refused.
 */
const PIN_CHECK_MS = 100;
/** Credit with which a sender can always send a frame of its message (SPEC.md §7 rule 5). */
const PIN_CREDIT = FRAME_HEADER_SIZE + MIN_FRAGMENT + MESSAGE_CREDIT_OVERHEAD;
/** Timer lateness beyond which a liveness deadline is not trusted (our own process stalled). */
const LATE_TIMER_TOLERANCE_MS = 250;
/**
 * Timer slack (see `Engine.timerSlack`): this fraction of the shortest period the engine times
 * (heartbeat interval, a third of the idle timeout), and never more than `MAX_TIMER_SLACK_MS`,
 * which is far below `LATE_TIMER_TOLERANCE_MS`.
 */
const TIMER_SLACK_FRACTION = 1 / 100;
const MAX_TIMER_SLACK_MS = 64;
/** Incomplete messages are assembled in blocks of this size (fragments below a quarter of it are packed). */
const PARTIAL_BLOCK_SIZE = 16 * 1024;
/**
 * Received messages up to this size are copied out of the read chunk; larger ones are views of it
 * (measured: a view saves 15 % of the receive path at 64 B). A chunk of frames this small is less
 * than 3/4 DATA (`n / (n + 6) < 3/4` for `n < 18`), so views of it would be copied by the unpin
 * rule anyway.
 */
const COPY_RECEIVED_MAX = 3 * FRAME_HEADER_SIZE - 1;
/**
 * What a message counts in the send queue on top of its payload bytes (its share of the queue's
 * bookkeeping), so the queue's bound also bounds how many messages it holds (SPEC.md §9.4).
 */
export const SEND_QUEUE_MESSAGE_OVERHEAD = 64;

export { dataFrameCost };
export { seededRandom } from './connection/settings.js';

const WRITABLE: EngineEvent = { type: 'writable' };
const DATA_BIT = frameBit(FrameType.DATA);
const HEARTBEAT_BIT = frameBit(FrameType.HEARTBEAT);
const CREDIT_BIT = frameBit(FrameType.CREDIT);
const HEARTBEAT_TIMER = timerBit(Timer.HEARTBEAT);

/**
 * One heartwire connection as a pure state machine (SPEC.md). See the module documentation
 * for how to drive it.
 */
export class Engine implements FrameSink {
  private readonly settings: Settings;
  private readonly decoder: FrameDecoder;
  /** The state and its row of the state table (SPEC.md §9.3). */
  private readonly machine: StateMachine;
  /** Every deadline (see `handleTimeout`). */
  private readonly timers = new Timers();
  /** Received control frames by frame type, once the state table accepted them. */
  private readonly onFrame: ((frame: ControlFrame) => void)[] = [];
  private negotiatedValues: Negotiated | undefined;
  private readonly events = new Ring<EngineEvent>();
  private started = false;

  // --- outbound: control lane ---
  private readonly controlQueue = new Ring<Uint8Array>();
  private heartbeatDue = false;
  private creditDirty = false;
  /** A CREDIT is due to report consumption, without raising the limit (see `reportConsumption`). */
  private consumedReportDue = false;
  /** `C` when `Consumed Messages` last went out (CREDIT or HEARTBEAT): `U = C − this`. */
  private releasedReported = 0;
  /**
   * Report consumption once `U` reaches this (SPEC.md §7 rule 5): a quarter of the peer's
   * `send_queue_limit`, or 0 if it stated none (then: when the application has drained).
   */
  private reportStep = 0;
  private closeFrameDue = false;
  /** The frame that ends our transmissions is due: CLOSE_ACK (server) or the final CREDIT (client). */
  private finalFrameDue = false;
  private preambleSent = false;

  // --- outbound: data lane and delivery accounting ---
  /**
   * The send queue: messages `peerConsumed + 1` … `queuedCount`, oldest first, kept until the
   * peer reports them consumed (the delivery report needs the payloads of the others). One
   * queue, one bound: `sendQueueBytes` (payloads + SEND_QUEUE_MESSAGE_OVERHEAD each) is below
   * `maxSendQueueBytes` whenever a message is accepted.
   */
  private readonly outbox = new Ring<Uint8Array>();
  /** What the messages in `outbox` count against `maxSendQueueBytes`. */
  private outboxBytes = 0;
  /** State of the `pollTransmit` call under way: output, batch buffer, its unwritten start and fill. */
  private txOut: Uint8Array[] | undefined;
  private txBatch: Uint8Array | undefined;
  private txStart = 0;
  private txPos = 0;
  private txEstimate = 0;
  /** Batch buffers out with the transport: chunks not yet reported written (see `transmitted`). */
  private readonly batchesOut = new WeakMap<ArrayBufferLike, number>();
  /** Payload bytes of the message at `sendIndex` already framed. */
  private sendOffset = 0;
  /** Index in `outbox` of the message being transmitted. */
  private sendIndex = 0;
  private queuedCount = 0;
  /** Messages whose last frame was handed to the transport. */
  private writtenCount = 0;
  /** Payload bytes queued and not yet framed. */
  private queuedBytes = 0;
  /** The send queue reached its bound: emit `writable` once it is below it again. */
  private writableWanted = false;
  /** S: credit bytes sent. P: highest limit granted by the peer. */
  private sentCredit = 0;
  private peerLimit = 0;
  private peerMaxFramePayload = MIN_FRAME_PAYLOAD;
  private peerMaxMessageBytes = 0;
  private peerConsumed = 0;
  /** Set when the peer's final frame (CLOSE_ACK or ERROR) said how many messages it delivered. */
  private peerDelivered: number | undefined;
  private blockedSince: number | undefined;
  private stallReported = false;
  private creditBlockedTotal = 0;

  // --- inbound ---
  /** R, L, C and W of SPEC.md §7. */
  private receivedCredit = 0;
  private grantedLimit = 0;
  private releasedCredit = 0;
  private window: number;
  private reservedExtra = 0;
  private lastDataAt = 0;
  private partial: Uint8Array[] = [];
  /** Block being filled with small fragments of the incomplete message. */
  private partialBlock: Uint8Array | undefined;
  private partialBlockFill = 0;
  private partialBytes = 0;
  private partialCost = 0;
  /**
   * A frame of the incomplete message is still arriving (its credit was granted whole, so no
   * room needs to be made for it yet: see `ensurePartialRoom`).
   */
  private frameInProgress = false;
  private pinSampledAt = 0;
  /** Time the incomplete message made no progress although its sender had credit, sampled. */
  private pinnedMs = 0;
  /** Cost of recent large messages (decaying), so the window keeps room for two in flight. */
  private largeMessageCost = 0;
  /** Start of the current rate interval of window tuning, and `C` then. */
  private rateSince = 0;
  private rateReleased = 0;
  /** Of the chunk being decoded: its DATA bytes, and how many messages and pieces are views of it. */
  private chunkDataBytes = 0;
  private chunkViews = 0;
  /** The one-frame message being assembled (its frame spans chunks), and the bytes in it so far. */
  private assembly: Uint8Array | undefined;
  private assemblyFill = 0;
  /** Messages received complete, waiting for the application, each with its credit cost as weight. */
  private readonly inbox = new Ring<Uint8Array>();
  /** DATA frames are accepted in the current state: the state row's, cached for the fast path. */
  private dataAllowed = false;
  /** The application may send: what `assertSendable` checks, but the message size. */
  private sendOpen = false;
  private inboxWasEmpty = true;
  /** Messages received complete. */
  private receivedCount = 0;
  /** Messages handed to the application (take/read). */
  private deliveredCount = 0;
  /** `discardUnread()` was called: messages not taken are dropped as they arrive. */
  private discarding = false;
  /** Messages received complete and dropped unread by `discardUnread()`. */
  private discardedCount = 0;
  /** Contiguous prefix of released messages. */
  private consumedCount = 0;
  /** `consumedCount` as last sent in a CREDIT or HEARTBEAT. */
  private consumedReported = 0;
  /**
   * Messages handed out by `take()` and not yet consumed, in delivery order: each one's credit
   * cost, or `-1 - cost` once released (numbers, not objects: no allocation per message).
   */
  private readonly taken = new Ring<number>();

  // --- liveness ---
  private localIdleTimeout: number;
  private heartbeatInterval = 0;
  private lastReceivedAt = 0;
  private lastSentAt: number | undefined;
  private livenessGraceUntil = 0;
  /**
   * The liveness deadline (`lastReceivedAt + T`) the stall grace was granted for, −1 if none: the
   * grace is granted once per deadline, so a side whose peer stays silent fails when it ends.
   */
  private livenessGraceFor = -1;
  private peerTimestamp: number | undefined;
  private peerTimestampAt = 0;
  private lastEchoUsed: number | undefined;
  private rtt: number | undefined;
  private minRtt: number | undefined;
  /** Client: when HELLO was queued (a first RTT sample when WELCOME arrives). */
  private helloSentAt: number | undefined;
  private srtt: number | undefined;
  private rttVar = 0;
  private floodWindowStart = 0;
  private heartbeatsInWindow = 0;
  /** Consecutive heartbeats whose timestamps were closer than allowed. */
  private earlyHeartbeats = 0;
  private noopsInWindow = 0;
  private backlog = 0;
  private backlogSince = 0;

  // --- termination ---
  private closeRequested = false;
  private finishRequested = false;
  private goAwaySent = false;
  private pendingGoAway: Parameters<Engine['goAway']>[1] | undefined;
  /** Who started the termination handshake, for `CloseInfo.initiator` of a clean close. */
  private terminationInitiator: CloseInfo['initiator'] | undefined;
  private goAwayReceived: GoAwayInfo | undefined;
  private closeInfo: CloseInfo | undefined;

  // --- statistics ---
  private bytesReceived = 0;
  private bytesSent = 0;
  private heartbeatsReceived = 0;
  private heartbeatsSent = 0;

  /** Create an engine. Throws `RangeError` on invalid options. */
  constructor(options: EngineOptions) {
    this.settings = resolveSettings(options);
    this.machine = new StateMachine(this.settings.role);
    const on = this.onFrame;
    on[FrameType.CREDIT] = (f) => {
      if (f.type === FrameType.CREDIT && !this.onCredit(f.creditLimit, f.consumedMessages)) this.countNoop();
    };
    on[FrameType.HEARTBEAT] = (f) => {
      if (f.type === FrameType.HEARTBEAT) this.onHeartbeat(f);
    };
    on[FrameType.HELLO] = (f) => {
      if (f.type === FrameType.HELLO) this.onHello(f.hello);
    };
    on[FrameType.WELCOME] = (f) => {
      if (f.type === FrameType.WELCOME) this.onWelcome(f.welcome);
    };
    on[FrameType.GOAWAY] = (f) => {
      if (f.type === FrameType.GOAWAY) this.onGoAway(f.goAway);
    };
    on[FrameType.CLOSE] = (f) => {
      if (f.type === FrameType.CLOSE) this.onClose(f.close.sentMessages, f.close.consumedMessages);
    };
    on[FrameType.CLOSE_ACK] = (f) => {
      if (f.type === FrameType.CLOSE_ACK)
        this.onCloseAck(f.closeAck.sentMessages, f.closeAck.consumedMessages, f.closeAck.deliveredMessages);
    };
    on[FrameType.ERROR] = (f) => {
      if (f.type === FrameType.ERROR) this.onError(f.error);
    };
    this.window = this.settings.initialWindow;
    this.grantedLimit = this.settings.initialWindow;
    this.localIdleTimeout = this.settings.idleTimeoutMs;
    this.decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: this.settings.maxFramePayload });
    this.decoder.wholeMessageMax = this.settings.maxMessageBytes;
    this.decoder.dataCredit = this.grantedLimit;
    this.decoder.dataAllowed = false;
  }

  // ------------------------------------------------------------------ inputs

  /** Start the connection once the transport is connected (client: queues preamble + HELLO). */
  start(now: number): void {
    if (this.started) return;
    this.started = true;
    this.lastReceivedAt = now;
    this.timers.set(Timer.HANDSHAKE, now + this.settings.handshakeTimeoutMs);
    if (this.settings.role === 'client') {
      const hello: Hello = {
        versions: [...this.settings.versions],
        extensions: [...this.settings.extensions],
        idleTimeoutMs: this.settings.idleTimeoutMs,
        initialCredit: this.settings.initialWindow,
        maxFramePayload: this.settings.maxFramePayload,
        maxMessageSize: this.settings.maxMessageBytes,
        applicationProtocols: [...this.settings.applicationProtocols],
        sendQueueLimit: this.settings.maxSendQueueBytes,
      };
      this.controlQueue.push(PREAMBLE);
      this.controlQueue.push(encodeControlFrame({ type: FrameType.HELLO, hello }));
      this.preambleSent = true;
      this.helloSentAt = now;
    }
  }

  /** Bytes received from the transport. */
  receive(now: number, bytes: Uint8Array): void {
    if (this.machine.row.state === 'closed' || bytes.length === 0) return;
    this.now = now;
    this.lastReceivedAt = now;
    this.bytesReceived += bytes.length;
    this.chunkDataBytes = 0;
    this.chunkViews = 0;
    // The application cannot read while we decode: messages from this chunk are pushed after these.
    const inboxBefore = this.inbox.length;
    try {
      this.decoder.push(bytes, this);
      this.settleMessages();
      if (this.discarding && this.inbox.length > 0) this.dropInbox();
      if (this.chunkViews > 0 && this.chunkDataBytes * 4 < bytes.length * 3) {
        this.unpinChunk(bytes.buffer, inboxBefore);
      }
    } catch (error) {
      this.settleMessages();
      if (this.isClosed()) return;
      if (error instanceof HeartwireError) {
        const sendError = error.code !== 'PROTOCOL_MISMATCH';
        this.fail(error, 'remote', sendError);
      } else {
        this.fail(new UsageError('INTERNAL_ERROR', `internal error: ${String(error)}`), 'local', true);
      }
    }
  }

  /** The transport reported end-of-stream (FIN). */
  receiveEnd(now: number): void {
    if (this.machine.row.state === 'closed') return;
    this.now = now;
    const state = this.machine.state;
    if (this.endOfStreamIsClean()) {
      this.finishClean('remote');
      return;
    }
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
    if (this.endOfStreamIsClean()) {
      // The termination handshake is complete; a reset now loses nothing.
      this.finishClean('transport');
      return;
    }
    const detail = cause instanceof Error ? `: ${cause.message}` : '';
    this.fail(
      new TransportError('TRANSPORT_ERROR', `transport failed${detail}`, { cause }),
      'transport',
      false,
    );
  }

  /**
   * Call when the deadline returned by `nextDeadline()` is reached (calling early is harmless).
   * Handles every due deadline of the current state, in the order of the ids of {@link Timer}.
   */
  handleTimeout(now: number): void {
    if (!this.started) return;
    const mask = this.machine.row.timers;
    if (mask === 0) return;
    this.now = now;
    this.syncTimers();
    const timers = this.timers;
    for (let id = 0; id < TIMER_COUNT; id++) {
      if (!timers.due(id, now, mask)) continue;
      switch (id) {
        case Timer.HANDSHAKE:
          return this.fail(
            new TimeoutError('HANDSHAKE_TIMEOUT', 'the handshake did not complete in time'),
            'local',
            true,
          );
        case Timer.IDLE:
          if (this.onIdleTimeout(now)) return;
          break;
        case Timer.GRACE:
          return this.fail(
            new TimeoutError(
              'GOAWAY_GRACE_EXPIRED',
              this.machine.state === 'going-away'
                ? 'the client did not close within the GOAWAY grace period'
                : 'the termination did not complete within the GOAWAY grace period',
            ),
            'local',
            true,
          );
        case Timer.CLOSE:
          return this.fail(
            new TimeoutError('CLOSE_TIMEOUT', 'the termination handshake did not complete in time'),
            'local',
            true,
          );
        case Timer.WRITE_STALL:
          return this.fail(
            new TimeoutError(
              'WRITE_STALL',
              `the transport accepted no bytes for ${Math.round(now - this.backlogSince)} ms`,
            ),
            'transport',
            true,
          );
        case Timer.CREDIT_STALL:
          return this.fail(
            new TimeoutError(
              'CREDIT_STALL',
              `blocked on the peer's credit for ${Math.round(now - this.blockedSince!)} ms`,
            ),
            'local',
            true,
          );
        case Timer.CREDIT_STALL_REPORT:
          this.stallReported = true;
          timers.stop(Timer.CREDIT_STALL_REPORT);
          this.emit({ type: 'credit-stall', blockedMs: now - this.blockedSince! });
          break;
        case Timer.HEARTBEAT:
          this.heartbeatDue = true;
          timers.set(Timer.HEARTBEAT, now + this.heartbeatPeriod());
          break;
        case Timer.PIN_CHECK:
          if (this.checkPin(now)) return;
          break;
        case Timer.WINDOW_SHRINK:
          this.window = this.settings.initialWindow;
          this.returnReservation();
          this.syncTimers();
          break;
      }
    }
  }

  /**
   * The liveness deadline passed (SPEC.md §8). If our own timer fired late, this process was
   * stalled and the peer's bytes may be waiting unread: grant one heartbeat period for them to
   * be read, and probe now. Once per deadline: if nothing arrives meanwhile, the deadline stays
   * and we fail at the grace's end, however late that timer fires (the stall rule). Returns true
   * when the connection failed.
   */
  private onIdleTimeout(now: number): boolean {
    const deadline = this.lastReceivedAt + this.localIdleTimeout;
    if (deadline !== this.livenessGraceFor && now - deadline > LATE_TIMER_TOLERANCE_MS) {
      this.livenessGraceFor = deadline;
      this.livenessGraceUntil = now + this.heartbeatInterval;
      this.heartbeatDue = true;
      this.syncTimers();
      return false;
    }
    this.fail(
      new TimeoutError(
        'HEARTBEAT_TIMEOUT',
        `no frame from the peer for ${Math.round(now - this.lastReceivedAt)} ms`,
      ),
      'transport',
      true,
    );
    return true;
  }

  /**
   * Bring up to date the deadlines whose inputs change on the data path (each received chunk
   * moves the liveness deadline, each DATA frame the window shrink): computed here, when a
   * deadline is asked for, rather than stored per chunk. The other deadlines are armed where
   * their inputs change.
   */
  private syncTimers(): void {
    const liveness = this.lastReceivedAt + this.localIdleTimeout;
    this.timers.set(Timer.IDLE, liveness === this.livenessGraceFor ? this.livenessGraceUntil : liveness);
    this.timers.set(
      Timer.WINDOW_SHRINK,
      this.window <= this.settings.initialWindow || this.partialCost > 0
        ? undefined
        : this.lastDataAt + WINDOW_IDLE_SHRINK_MS,
    );
  }

  /** The earliest time at which `handleTimeout` must be called, or `undefined` (no timer needed). */
  nextDeadline(): number | undefined {
    if (!this.started) return undefined;
    const mask = this.machine.row.timers;
    if (mask === 0) return undefined;
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
    const base =
      this.heartbeatInterval === 0
        ? this.settings.handshakeTimeoutMs
        : Math.min(this.heartbeatInterval, this.localIdleTimeout / 3);
    return Math.min(MAX_TIMER_SLACK_MS, base * TIMER_SLACK_FRACTION);
  }

  /** The next heartbeat period: uniform in [0.9 I, 1.1 I − slack] (SPEC.md §8). */
  private heartbeatPeriod(): number {
    const interval = this.heartbeatInterval;
    return 0.9 * interval + (0.2 * interval - this.timerSlack) * this.settings.random();
  }

  /**
   * Report how many bytes the transport holds unsent (for the write-stall watchdog). A smaller
   * value, or 0, counts as progress; an adapter that can see bytes being flushed while the backlog
   * stays level reports 0 first (SPEC.md §8, "Write stall").
   */
  transmitBacklog(now: number, bytes: number): void {
    if (bytes <= 0) {
      this.backlog = 0;
    } else if (this.backlog === 0 || bytes < this.backlog) {
      this.backlog = bytes;
      this.backlogSince = now;
    } else {
      this.backlog = bytes;
    }
    const timeout = this.settings.writeStallTimeoutMs;
    this.timers.set(
      Timer.WRITE_STALL,
      this.backlog === 0 || timeout === undefined ? undefined : this.backlogSince + timeout,
    );
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
    if (!this.sendOpen || payload.length > this.peerMaxMessageBytes) this.assertSendable(payload);
    const max = this.settings.maxSendQueueBytes;
    let bytes = this.outboxBytes;
    if (bytes >= max) {
      this.writableWanted = true;
      return false;
    }
    if (this.queuedCount >= MAX_COUNTER) {
      throw new UsageError(
        'LIMIT_REACHED',
        'the message counter reached 2^53 - 1 (SPEC.md §2): no more messages on this connection',
      );
    }
    this.outbox.push(payload);
    this.queuedCount++;
    this.queuedBytes += payload.length;
    bytes += payload.length + SEND_QUEUE_MESSAGE_OVERHEAD;
    this.outboxBytes = bytes;
    if (bytes >= max) this.writableWanted = true;
    // Only a sender short of credit can become blocked by queuing more.
    if (this.blockedSince === undefined && this.creditAvailable() < dataFrameCost(1, true))
      this.updateBlocked(now);
    return true;
  }

  /**
   * Throw the {@link UsageError} that `trySend` would throw for this payload (connection not
   * accepting messages, message too large), without queuing anything.
   */
  assertSendable(payload: Uint8Array): void {
    const state = this.machine.state;
    if (this.closeRequested) throw new UsageError('CONNECTION_CLOSED', 'cannot send after end()');
    if (state === 'handshaking') {
      throw new UsageError('NOT_OPEN', 'the handshake has not completed: wait for the open event');
    }
    if (!this.machine.row.acceptsMessages) {
      // The close error says why (a peer's ERROR, a heartbeat timeout, …): keep it as the cause.
      throw new UsageError(
        'CONNECTION_CLOSED',
        this.closeInfo?.error === undefined
          ? `cannot send in state ${state}`
          : `cannot send: the connection closed (${this.closeInfo.error.code})`,
        { cause: this.closeInfo?.error },
      );
    }
    if (this.settings.role === 'server' && this.finishRequested && state === 'peer-closed') {
      throw new UsageError(
        'CONNECTION_CLOSED',
        'cannot send: the client closed and this connection finished (its consumer reached the end of the stream)',
      );
    }
    const limit = this.peerMaxMessageBytes;
    if (payload.length > limit) {
      throw new UsageError(
        'MESSAGE_TOO_LARGE',
        `message of ${payload.length} bytes exceeds the limit of ${limit}`,
      );
    }
  }

  /** Messages whose last frame has been handed to the transport. */
  get writtenMessages(): number {
    return this.writtenCount;
  }

  /** Messages accepted by `trySend` so far (`delivery.queued`). */
  get acceptedMessages(): number {
    return this.queuedCount;
  }

  /** What the send queue holds, counted against `maxSendQueueBytes` (see `trySend`). */
  get sendQueueBytes(): number {
    return this.outboxBytes;
  }

  /** True when `trySend` would refuse a message because the send queue is at its bound. */
  get sendQueueFull(): boolean {
    return this.outboxBytes >= this.settings.maxSendQueueBytes;
  }

  /** Take the next message and consume it at once (its credit returns to the peer). */
  read(now: number): Uint8Array | undefined {
    if (this.taken.length > 0) {
      // Messages taken earlier are still out: keep the release order through take/release.
      const message = this.take(now);
      if (message === undefined) return undefined;
      this.release(now, message.seq);
      return message.payload;
    }
    // Fast path: take and release at once, without bookkeeping objects.
    const payload = this.inbox.shift();
    if (payload === undefined) return undefined;
    this.now = now;
    if (this.inbox.length === 0) this.inboxWasEmpty = true;
    this.deliveredCount++;
    this.consumedCount++;
    this.releasedCredit += this.inbox.shiftedWeight;
    if (this.partialCost > 0 && !this.frameInProgress) this.ensurePartialRoom(now);
    else if (this.grantable() - this.grantedLimit >= this.window / 4) this.maybeGrantCredit(now);
    else if (this.releasedCredit - this.releasedReported >= this.reportStep) this.reportConsumption();
    if (this.reservedExtra > 0 && this.reservedExtra > this.window - this.settings.initialWindow)
      this.returnReservation();
    if (this.machine.state !== 'open') this.checkTermination();
    return payload;
  }

  /** Take the next message; its credit returns on `release(seq)`. */
  take(now: number): InboundMessage | undefined {
    const payload = this.takePayload(now);
    return payload === undefined ? undefined : { seq: this.deliveredCount, payload };
  }

  /**
   * `take()` without the wrapper object, for hot loops: the message's seq (for `release`) is
   * {@link lastTakenSeq} right after.
   */
  takePayload(now: number): Uint8Array | undefined {
    this.now = now;
    const payload = this.inbox.shift();
    if (payload === undefined) return undefined;
    this.deliveredCount++;
    this.taken.push(this.inbox.shiftedWeight);
    if (this.inbox.length === 0) this.inboxWasEmpty = true;
    return payload;
  }

  /** The seq of the message last taken (messages handed to the application so far). */
  get lastTakenSeq(): number {
    return this.deliveredCount;
  }

  /** Give back a message taken with `take()`. Releasing twice or an unknown seq is ignored. */
  release(now: number, seq: number): void {
    this.now = now;
    const index = seq - this.consumedCount - 1;
    const cost = index >= 0 ? this.taken.at(index) : undefined;
    if (cost === undefined || cost < 0) return;
    this.taken.set(index, -1 - cost);
    // Credit returns in message order: the released prefix is consumed.
    for (let head = this.taken.peek(); head !== undefined && head < 0; head = this.taken.peek()) {
      this.taken.shift();
      this.consumedCount++;
      this.releasedCredit += -1 - head;
    }
    if (this.partialCost > 0 && !this.frameInProgress) this.ensurePartialRoom(now);
    else this.maybeGrantCredit(now);
    if (this.releasedCredit - this.releasedReported >= this.reportStep) this.reportConsumption();
    if (this.reservedExtra > this.window - this.settings.initialWindow) this.returnReservation();
    this.checkTermination();
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
    if (this.machine.state === 'closed' || this.discarding) return;
    this.discarding = true;
    this.dropInbox();
  }

  /** Drop the inbox (see `discardUnread`): credit released, nothing counted consumed. */
  private dropInbox(): void {
    let count = 0;
    for (let payload = this.inbox.shift(); payload !== undefined; payload = this.inbox.shift()) {
      this.releasedCredit += this.inbox.shiftedWeight;
      count++;
    }
    if (count === 0) return;
    this.inboxWasEmpty = true;
    this.discardedCount += count;
    if (this.partialCost > 0 && !this.frameInProgress) this.ensurePartialRoom(this.now);
    else this.maybeGrantCredit(this.now);
    if (this.reservedExtra > this.window - this.settings.initialWindow) this.returnReservation();
    this.checkTermination();
  }

  /** Client: start the termination handshake (CLOSE after all queued data). Idempotent. */
  close(now: number): void {
    this.now = now;
    if (this.settings.role !== 'client')
      throw new UsageError('INTERNAL_ERROR', 'only a client closes; a server uses goAway()');
    if (this.closeRequested || this.machine.state === 'closed') return;
    this.closeRequested = true;
    this.updateSendOpen();
    this.terminationInitiator ??= this.goAwayReceived === undefined ? 'local' : 'remote';
    this.timers.set(Timer.CLOSE, now + this.settings.closeTimeoutMs);
    if (this.machine.state === 'open') {
      this.setState('closing');
      this.checkTermination();
    }
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
    },
  ): void {
    this.now = now;
    if (this.settings.role !== 'server') throw new UsageError('INTERNAL_ERROR', 'only a server sends GOAWAY');
    if (this.machine.state === 'closed') return;
    const graceMs = Math.max(0, Math.min(Math.floor(options.graceMs), 0xffff_ffff));
    if (this.machine.state === 'handshaking') {
      // Sent right after WELCOME; the grace counts from then.
      this.pendingGoAway = { ...options, graceMs };
      return;
    }
    // The deadline also bounds a termination handshake under way (the client already closed;
    // no GOAWAY is sent then).
    const deadline = now + graceMs;
    if (deadline < this.timers.get(Timer.GRACE)) this.timers.set(Timer.GRACE, deadline);
    if (this.goAwaySent) return;
    this.goAwaySent = true;
    if (this.machine.state !== 'open') return;
    this.terminationInitiator ??= 'local';
    this.controlQueue.push(
      encodeControlFrame({
        type: FrameType.GOAWAY,
        goAway: {
          graceMs,
          reason: options.reason ?? 1,
          consumedMessages: this.consumedCount,
          retryAfterMs: options.retryAfterMs ?? 0,
          doNotReconnect: options.doNotReconnect ?? false,
          message: options.message ?? '',
        },
      }),
    );
    this.setState('going-away');
  }

  /** Server: after `peer-closed`, the application has sent everything; CLOSE_ACK follows once flushed. */
  finish(now: number): void {
    this.now = now;
    if (this.settings.role !== 'server')
      throw new UsageError('INTERNAL_ERROR', 'only a server calls finish()');
    this.finishRequested = true;
    this.updateSendOpen();
    this.checkTermination();
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
    return this.creditDirty || this.consumedReportDue || this.machine.state !== 'open';
  }

  /** True if `pollTransmit` would return bytes (control frames, or DATA within credit). */
  get wantsToTransmit(): boolean {
    if (this.controlQueue.length > 0) return true;
    if (this.machine.state === 'closed') return false;
    if (
      this.heartbeatDue ||
      this.creditDirty ||
      this.consumedReportDue ||
      this.closeFrameDue ||
      this.finalFrameDue
    )
      return true;
    return (
      this.negotiatedValues !== undefined && this.sendIndex < this.outbox.length && this.creditAvailable() > 0
    );
  }

  /**
   * Bytes to write: all pending control frames, then DATA frames while fewer than `maxDataBytes`
   * DATA bytes have been produced (default unlimited; the last frame may go past it by at most one
   * frame, so callers pass the room they have, and 0 for control frames only). Returns an empty array when nothing is pending. Views may point
   * at payloads given to `trySend`: do not modify those while they are being written.
   */
  pollTransmit(now: number, maxDataBytes = Number.POSITIVE_INFINITY): Uint8Array[] {
    this.now = now;
    const out: Uint8Array[] = [];
    this.txOut = out;
    this.txBatch = undefined;
    this.txStart = 0;
    this.txPos = 0;
    // Size the batch to what this call can write at most, so a lone small frame does not allocate
    // (and pin, while the socket holds it) a whole BATCH_SIZE buffer.
    const pending = this.outbox.length - this.sendIndex;
    const averagePayload = pending === 0 ? 0 : this.queuedBytes / pending;
    this.txEstimate =
      HEARTBEAT_FRAME_SIZE +
      CREDIT_FRAME_SIZE +
      Math.min(
        maxDataBytes,
        pending * (2 * FRAME_HEADER_SIZE + (averagePayload <= COPY_THRESHOLD ? averagePayload : 0)),
      );

    for (let bytes = this.controlQueue.shift(); bytes !== undefined; bytes = this.controlQueue.shift())
      out.push(bytes);
    if (this.machine.state === 'closed' || this.negotiatedValues === undefined) {
      this.account(now, out);
      return out;
    }

    if (this.heartbeatDue && (this.machine.row.sends & HEARTBEAT_BIT) !== 0) {
      const target = this.room(HEARTBEAT_FRAME_SIZE);
      this.raiseLimit();
      const echo = this.peerTimestamp !== undefined;
      writeHeartbeatFrame(target, this.txPos, {
        echo,
        timestamp: Math.floor(now * HEARTBEAT_TICKS_PER_MS) % U32,
        echoTimestamp: echo ? this.peerTimestamp! : 0,
        echoDelay: echo
          ? Math.min(
              Math.max(0, Math.floor((now - this.peerTimestampAt) * HEARTBEAT_TICKS_PER_MS)),
              0xffff_ffff,
            )
          : 0,
        receivedBytes: this.receivedCredit,
        creditLimit: this.grantedLimit,
        consumedMessages: this.consumedCount,
      });
      this.consumedReported = this.consumedCount;
      this.releasedReported = this.releasedCredit;
      this.txPos += HEARTBEAT_FRAME_SIZE;
      this.heartbeatsSent++;
      this.creditDirty = false;
      this.consumedReportDue = false;
    }
    this.heartbeatDue = false;
    if (this.creditDirty || this.consumedReportDue) {
      const target = this.room(CREDIT_FRAME_SIZE);
      // A consumption report alone repeats the limit granted (rule 3: it changes nothing).
      if (this.creditDirty) this.raiseLimit();
      writeCreditFrame(target, this.txPos, this.grantedLimit, this.consumedCount);
      this.consumedReported = this.consumedCount;
      this.releasedReported = this.releasedCredit;
      this.txPos += CREDIT_FRAME_SIZE;
      this.creditDirty = false;
      this.consumedReportDue = false;
    }

    // DATA frames, within the peer's credit and the caller's budget.
    let budget = maxDataBytes;
    const outbox = this.outbox;
    const smallMax = Math.min(COPY_THRESHOLD, this.peerMaxFramePayload);
    while (this.sendIndex < outbox.length && budget > 0) {
      if (this.sendOffset === 0) {
        // The common case: a run of small messages, each whole, copied into the batch behind its
        // header (the loop keeps its state in locals; fields are written back before room()).
        const first = this.sendIndex;
        const count = outbox.length;
        const limit = this.peerLimit;
        let index = first;
        let sent = this.sentCredit;
        let bytes = 0;
        // (typed explicitly: TypeScript would narrow the field to its assignment above)
        let target = this.txBatch as Uint8Array | undefined;
        let at = this.txPos;
        while (index < count && budget > 0) {
          const payload = outbox.at(index)!;
          const length = payload.length;
          const cost = dataFrameCost(length, true);
          if (length > smallMax || sent + cost > limit) break;
          const frameSize = FRAME_HEADER_SIZE + length;
          if (target === undefined || at + frameSize > target.length) {
            this.txPos = at;
            target = this.room(frameSize);
            at = this.txPos;
          }
          putHeader(target, at, length, FrameType.DATA, FLAG_END);
          if (length > 0) target.set(payload, at + FRAME_HEADER_SIZE);
          at += frameSize;
          sent += cost;
          bytes += length;
          budget -= frameSize;
          index++;
        }
        this.txPos = at;
        this.sentCredit = sent;
        this.queuedBytes -= bytes;
        this.writtenCount += index - first;
        this.sendIndex = index;
        if (index === count || budget <= 0) break;
      }
      const payload = outbox.at(this.sendIndex)!;
      const length = payload.length;
      const remaining = length - this.sendOffset;
      const credit = this.creditAvailable();
      const size = this.nextFrameSize(remaining, credit);
      if (size < 0) break;
      const end = size === remaining && dataFrameCost(size, true) <= credit;
      const target = this.room(FRAME_HEADER_SIZE + (size <= COPY_THRESHOLD ? size : 0));
      writeFrameHeader(target, this.txPos, size, FrameType.DATA, end ? FLAG_END : 0);
      this.txPos += FRAME_HEADER_SIZE;
      const chunk =
        this.sendOffset === 0 && size === length
          ? payload
          : payload.subarray(this.sendOffset, this.sendOffset + size);
      if (size <= COPY_THRESHOLD) {
        target.set(chunk, this.txPos);
        this.txPos += size;
      } else {
        this.flushBatch();
        out.push(chunk);
      }
      this.sendOffset += size;
      this.sentCredit += dataFrameCost(size, end);
      this.queuedBytes -= size;
      budget -= FRAME_HEADER_SIZE + size;
      if (end) {
        this.sendIndex++;
        this.sendOffset = 0;
        this.writtenCount++;
      }
    }
    this.flushBatch();
    this.txOut = undefined;
    this.txBatch = undefined;
    this.updateBlocked(now);

    this.checkTermination();
    if (this.closeFrameDue) {
      this.closeFrameDue = false;
      out.push(
        encodeControlFrame({
          type: FrameType.CLOSE,
          close: { sentMessages: this.queuedCount, consumedMessages: this.consumedCount },
        }),
      );
      this.setState('close-sent');
    }
    if (this.finalFrameDue) {
      this.finalFrameDue = false;
      out.push(this.finalFrame());
    }
    this.account(now, out);
    return out;
  }

  /** The batch buffer, with room for `bytes` more at `txPos` (a new buffer when it is full). */
  private room(bytes: number): Uint8Array {
    let batch = this.txBatch;
    if (batch === undefined || this.txPos + bytes > batch.length) {
      this.flushBatch();
      const size = Math.max(Math.min(BATCH_SIZE, this.txEstimate), bytes);
      if (size >= POOLED_BATCH_MIN && size <= BATCH_SIZE) {
        // Full-size batches are recycled once the transport reports them written (`transmitted`).
        batch = batchPool.pop() ?? new Uint8Array(BATCH_SIZE);
        this.batchesOut.set(batch.buffer, 0);
      } else {
        batch = new Uint8Array(size);
      }
      this.txEstimate = BATCH_SIZE;
      this.txBatch = batch;
      this.txStart = 0;
      this.txPos = 0;
    }
    return batch;
  }

  /** Append the batch's unwritten bytes to the output. */
  private flushBatch(): void {
    const batch = this.txBatch;
    if (batch !== undefined && this.txPos > this.txStart) {
      this.txOut!.push(batch.subarray(this.txStart, this.txPos));
      this.txStart = this.txPos;
      const out = this.batchesOut.get(batch.buffer);
      if (out !== undefined) this.batchesOut.set(batch.buffer, out + 1);
    }
  }

  /**
   * Optional: the transport is done with `chunk`, one of the chunks `pollTransmit` returned
   * (written, or dropped). The engine then reuses the buffer behind it for later frames, which
   * saves an allocation per batch; a transport that never calls this loses nothing else.
   * Call it at most once per chunk, and never while the transport may still read the chunk.
   */
  transmitted(chunk: Uint8Array): void {
    const buffer = chunk.buffer;
    const out = this.batchesOut.get(buffer);
    if (out === undefined) return;
    if (out > 1) {
      this.batchesOut.set(buffer, out - 1);
      return;
    }
    this.batchesOut.delete(buffer);
    if (batchPool.length < BATCH_POOL_MAX) batchPool.push(new Uint8Array(buffer, 0, BATCH_SIZE));
  }

  /** Whether {@link transmitted} would recycle the buffer behind `chunk` (a batch of frames). */
  isRecyclable(chunk: Uint8Array): boolean {
    return this.batchesOut.has(chunk.buffer);
  }

  /** The frame that ends this side's transmissions in the termination handshake. */
  private finalFrame(): Uint8Array {
    if (this.settings.role === 'client' && this.discardedCount > 0) {
      // Messages were dropped unread: instead of the final CREDIT (whose count would read as a
      // client that died before finishing), ERROR CANCELLED tells the server exactly which of its
      // messages were delivered; ours are all accounted by CLOSE_ACK (SPEC.md §9.1).
      const frame = encodeControlFrame({
        type: FrameType.ERROR,
        error: {
          code: WireErrorCode.CANCELLED,
          message: `the client discarded ${this.discardedCount} unread messages`,
          consumedMessages: this.consumedCount,
          deliveredMessages: this.deliveredCount,
        },
      });
      this.finishClean('local');
      return frame;
    }
    if (this.settings.role === 'client') {
      const credit = new Uint8Array(CREDIT_FRAME_SIZE);
      writeCreditFrame(credit, 0, this.grantedLimit, this.consumedCount);
      this.setState('fin-sent');
      this.emit({ type: 'end-transport' });
      return credit;
    }
    const frame = encodeControlFrame({
      type: FrameType.CLOSE_ACK,
      closeAck: {
        sentMessages: this.queuedCount,
        consumedMessages: this.consumedCount,
        deliveredMessages: this.deliveredCount,
      },
    });
    this.setState('close-ack-sent');
    return frame;
  }

  private account(now: number, out: Uint8Array[]): void {
    if (out.length === 0) return;
    for (const bytes of out) this.bytesSent += bytes.length;
    this.lastSentAt = now;
  }

  // ------------------------------------------------------------------ inspection

  /** Server after CLOSE_ACK: the client's final CREDIT reported every message consumed. */
  private peerConsumedAll(): boolean {
    return this.peerConsumed === this.queuedCount;
  }

  private isClosed(): boolean {
    return this.machine.state === 'closed';
  }

  /** Current state. */
  get state(): ConnectionState {
    return this.machine.state;
  }

  /** Values agreed in the handshake, `undefined` before it completes. */
  get negotiated(): Negotiated | undefined {
    return this.negotiatedValues;
  }

  /** Messages ready to `read()`/`take()`. */
  get readableMessages(): number {
    return this.inbox.length;
  }

  /** Client: the server's GOAWAY, once received (`undefined` before, and on a server). */
  get receivedGoAway(): GoAwayInfo | undefined {
    return this.goAwayReceived;
  }

  /** How the connection closed, once closed. */
  get closed(): CloseInfo | undefined {
    return this.closeInfo;
  }

  /** Credit bytes held for unconsumed input: `R − C` (SPEC.md §7). Never above the window. */
  get heldBytes(): number {
    return this.receivedCredit - this.releasedCredit;
  }

  /** The current receive window `W`. */
  get receiveWindow(): number {
    return this.window;
  }

  /** The largest credit limit granted so far (`L`). */
  get creditLimitGranted(): number {
    return this.grantedLimit;
  }

  /** Counters and gauges. */
  stats(_now?: number): EngineStats {
    const blockedNow = this.blockedSince === undefined || _now === undefined ? 0 : _now - this.blockedSince;
    return {
      state: this.machine.state,
      rttMs: this.rtt,
      smoothedRttMs: this.srtt,
      bytesReceived: this.bytesReceived,
      bytesSent: this.bytesSent,
      messagesReceived: this.receivedCount,
      messagesSent: this.writtenCount,
      heartbeatsReceived: this.heartbeatsReceived,
      heartbeatsSent: this.heartbeatsSent,
      sendCredit: Math.max(0, this.peerLimit - this.sentCredit),
      receiveCredit: Math.max(0, this.grantedLimit - this.receivedCredit),
      receiveWindow: this.window,
      heldBytes: this.heldBytes,
      queuedBytes: this.queuedBytes,
      sendQueueBytes: this.outboxBytes,
      creditBlockedMs: this.creditBlockedTotal + blockedNow,
      lastReceivedAt: this.started ? this.lastReceivedAt : undefined,
      lastSentAt: this.lastSentAt,
    };
  }

  /** Classification of this side's messages (SPEC.md §9.4). Exact at any time; final once closed. */
  deliveryReport(): DeliveryReport {
    const consumed = this.peerConsumed;
    const certain =
      this.peerDelivered === undefined ? this.writtenCount : Math.min(this.peerDelivered, this.writtenCount);
    const notProcessedFrom = Math.max(certain, consumed) + 1;
    const payloads = this.outbox.toArray();
    const split = notProcessedFrom - consumed - 1;
    return {
      queued: this.queuedCount,
      consumed,
      notProcessedFrom,
      unknown: payloads.slice(0, split),
      notProcessed: payloads.slice(split),
    };
  }

  // ------------------------------------------------------------------ frame handling (FrameSink)

  /** Current time of the call being processed (frames carry no time of their own). */
  private now = 0;

  /** Messages queued by `onMessage` whose accounting `settleMessages` has not done yet. */
  private unsettledCount = 0;
  private unsettledCost = 0;

  /**
   * @internal A whole message in one frame from the decoder (see {@link FrameSink.onMessage}),
   * the per-message fast path: queue it; its credit, count and `readable` event are settled once
   * per chunk, or before the next frame of another kind (`settleMessages`).
   */
  onMessage(source: Uint8Array, start: number, stop: number, cost: number): void {
    if (!this.dataAllowed || this.partialCost !== 0) {
      // Not open for DATA, or the frame ends a multi-frame message: the general path decides.
      this.decoder.dataCredit += cost;
      this.onData(source, start, stop, stop - start, true, true, true);
      return;
    }
    this.queueWhole(source, start, stop, cost);
    this.unsettledCount++;
    this.unsettledCost += cost;
  }

  /**
   * Queue a whole message inside the chunk being decoded: a view of the chunk, which the
   * transport never reuses (a tiny one is copied, see COPY_RECEIVED_MAX).
   */
  private queueWhole(source: Uint8Array, start: number, stop: number, cost: number): void {
    const length = stop - start;
    if (length <= COPY_RECEIVED_MAX) {
      this.inbox.push(source.slice(start, stop), cost);
    } else {
      this.inbox.push(source.subarray(start, stop), cost);
      this.chunkViews++;
    }
    this.chunkDataBytes += length;
  }

  /** Account the messages `onMessage` queued: credit received, count, `readable`. */
  private settleMessages(): void {
    const count = this.unsettledCount;
    if (count === 0) return;
    this.unsettledCount = 0;
    this.receivedCredit += this.unsettledCost; // the decoder has taken it off its dataCredit already
    this.unsettledCost = 0;
    this.lastDataAt = this.now;
    this.receivedCount += count - 1;
    this.messageReceived();
  }

  /** @internal DATA frame bytes from the decoder (see {@link FrameSink.onData}). */
  onData(
    source: Uint8Array,
    start: number,
    stop: number,
    frameLength: number,
    first: boolean,
    last: boolean,
    end: boolean,
  ): void {
    this.settleMessages();
    if (first) {
      if (!this.dataAllowed) {
        if (this.machine.state === 'closed') return; // an ERROR earlier in the same chunk closed us
        throw new ProtocolError('PROTOCOL_ERROR', `DATA not allowed in state ${this.machine.state}`);
      }
      // The decoder checked the header against the credit; the whole frame is accounted now.
      const cost = dataFrameCost(frameLength, end);
      const received = this.receivedCredit + cost;
      if (received > this.grantedLimit) {
        throw new FlowControlError(
          `peer sent ${received} credit bytes beyond the limit of ${this.grantedLimit}`,
        );
      }
      this.receivedCredit = received;
      this.decoder.dataCredit = this.grantedLimit - received;
      this.lastDataAt = this.now;
      if (end && this.partialCost === 0) {
        if (frameLength > this.settings.maxMessageBytes) {
          throw new ProtocolError(
            'MESSAGE_TOO_LARGE',
            `message exceeds ${this.settings.maxMessageBytes} bytes`,
          );
        }
        if (last) {
          // A whole message in one frame inside one chunk whose header came in the chunk before.
          this.queueWhole(source, start, stop, cost);
          this.messageReceived();
          return;
        }
        // A one-frame message spanning chunks: assembled in a buffer of its exact size.
        const message = new Uint8Array(frameLength);
        message.set(source.subarray(start, stop));
        this.chunkDataBytes += stop - start;
        this.assembly = message;
        this.assemblyFill = stop - start;
        this.startPinWatch();
        this.partialBytes = frameLength;
        this.partialCost = cost;
        this.frameInProgress = true;
        return;
      }
      if (this.partialCost === 0) this.startPinWatch();
      this.partialBytes += frameLength;
      this.partialCost += cost;
      if (this.partialBytes > this.settings.maxMessageBytes) {
        throw new ProtocolError(
          'MESSAGE_TOO_LARGE',
          `message exceeds ${this.settings.maxMessageBytes} bytes`,
        );
      }
    } else if (this.machine.state === 'closed') {
      return;
    } else if (this.assembly !== undefined) {
      this.lastDataAt = this.now;
      this.assembly.set(source.subarray(start, stop), this.assemblyFill);
      this.chunkDataBytes += stop - start;
      this.assemblyFill += stop - start;
      if (!last) return;
      const message = this.assembly;
      this.assembly = undefined;
      this.frameInProgress = false;
      this.partialMessageReceived(message);
      return;
    }
    if (!first) this.lastDataAt = this.now;
    this.appendPartial(source, start, stop);
    if (!last) {
      this.frameInProgress = true;
      return;
    }
    this.frameInProgress = false;
    if (!end) {
      this.ensurePartialRoom(this.now);
      return;
    }
    this.partialMessageReceived(this.takePartial());
  }

  /**
   * The chunk just decoded was mostly not DATA (control frames): copy the messages and pieces
   * that are views of it, so that a peer cannot make a few small messages pin large chunks of
   * other bytes. Chunks kept by views are then at least 3/4 DATA (docs/IMPLEMENTATION.md, "Memory").
   */
  private unpinChunk(buffer: ArrayBufferLike, inboxBefore: number): void {
    const inbox = this.inbox;
    for (let i = Math.max(0, inboxBefore); i < inbox.length; i++) {
      const payload = inbox.at(i)!;
      if (payload.buffer === buffer) inbox.set(i, payload.slice());
    }
    const parts = this.partial;
    for (let i = 0; i < parts.length; i++) {
      if (parts[i]!.buffer === buffer) parts[i] = parts[i]!.slice();
    }
  }

  /**
   * A message that spanned chunks or frames completed: queue it, and remember its cost for
   * window tuning (large messages, decaying).
   */
  private partialMessageReceived(message: Uint8Array): void {
    const cost = this.partialCost;
    this.largeMessageCost = Math.max(cost, this.largeMessageCost * 0.875);
    this.inbox.push(message, cost);
    this.partialBytes = 0;
    this.partialCost = 0;
    this.timers.stop(Timer.PIN_CHECK);
    this.messageReceived();
  }

  private messageReceived(): void {
    this.receivedCount++;
    if (this.inboxWasEmpty) {
      this.inboxWasEmpty = false;
      this.emit({ type: 'readable' });
    }
  }

  /**
   * Keep a piece of an incomplete message. Large pieces are kept as views of the chunk (the one
   * copy is made when the message completes); small pieces are packed into blocks, so a peer
   * that splits a message into tiny frames or tiny segments cannot make per-piece overhead
   * exceed the credit it spent (docs/IMPLEMENTATION.md, "Memory").
   */
  private appendPartial(source: Uint8Array, start: number, stop: number): void {
    const length = stop - start;
    if (length === 0) return;
    this.chunkDataBytes += length;
    if (length >= PARTIAL_BLOCK_SIZE / 4) {
      this.partial.push(source.subarray(start, stop));
      this.chunkViews++;
      this.partialBlock = undefined;
      return;
    }
    let block = this.partialBlock;
    if (block === undefined || this.partialBlockFill + length > block.length) {
      block = new Uint8Array(PARTIAL_BLOCK_SIZE);
      this.partialBlock = block;
      this.partialBlockFill = 0;
      this.partial.push(block.subarray(0, 0));
    }
    block.set(source.subarray(start, stop), this.partialBlockFill);
    this.partialBlockFill += length;
    this.partial[this.partial.length - 1] = block.subarray(0, this.partialBlockFill);
  }

  /** Assemble the pieces of the message that just completed (one copy). */
  private takePartial(): Uint8Array {
    const parts = this.partial;
    const block = this.partialBlock;
    this.partial = [];
    this.partialBlock = undefined;
    if (parts.length === 1) {
      const only = parts[0]!;
      // A large piece is a view of a chunk: keep it. Pieces packed in a block are copied out, so
      // that the message does not pin the whole block.
      return only.length >= PARTIAL_BLOCK_SIZE / 4 && only.buffer !== block?.buffer ? only : only.slice();
    }
    const message = new Uint8Array(this.partialBytes);
    let offset = 0;
    for (const part of parts) {
      message.set(part, offset);
      offset += part.length;
    }
    return message;
  }

  /** @internal Control frame from the decoder. */
  onControl(frame: ControlFrame): void {
    this.settleMessages();
    const row = this.machine.row;
    if (row.state === 'closed') return;
    if (frame.type === 'extension') {
      // Ignorable extension types change nothing (and count as such); others were not negotiated.
      if ((row.accepts & EXTENSION_BIT) === 0 || frame.frameType < EXTENSION_IGNORABLE_FIRST)
        this.rejectFrame(frame.frameType);
      return this.countNoop();
    }
    if ((row.accepts & frameBit(frame.type)) === 0) this.rejectFrame(frame.type);
    this.onFrame[frame.type]!(frame);
  }

  /** A frame the state table does not accept in the current state: `PROTOCOL_ERROR`. */
  private rejectFrame(type: number): never {
    const row = this.machine.row;
    if (row.accepts === 0) throw new ProtocolError('PROTOCOL_ERROR', 'frame after CLOSE_ACK');
    if (row.state === 'handshaking') {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `expected ${this.settings.role === 'client' ? 'WELCOME' : 'HELLO'} as first frame`,
      );
    }
    if (type >= EXTENSION_MUST_UNDERSTAND_FIRST)
      throw new ProtocolError('PROTOCOL_ERROR', `frame type 0x${type.toString(16)} was not negotiated`);
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected ${frameName(type)} in state ${row.state}`);
  }

  /** Client: the server's GOAWAY (once). */
  private onGoAway(goAway: GoAway): void {
    if (this.goAwayReceived !== undefined) throw new ProtocolError('PROTOCOL_ERROR', 'unexpected GOAWAY');
    this.onCredit(0, goAway.consumedMessages);
    this.goAwayReceived = {
      graceMs: goAway.graceMs,
      reason: goAway.reason,
      retryAfterMs: goAway.retryAfterMs,
      doNotReconnect: goAway.doNotReconnect,
      message: goAway.message,
      deadline: this.now + goAway.graceMs,
    };
    this.emit({ type: 'goaway', goAway: this.goAwayReceived });
  }

  /** Checks HELLO in the order of SPEC.md §6 ("Validation"), versions first, and answers it. */
  private onHello(hello: Hello): void {
    const s = this.settings;
    const common = hello.versions.filter((v) => s.versions.includes(v));
    if (common.length === 0) {
      throw new ProtocolError('UNSUPPORTED_VERSION', `no common version in [${hello.versions.join(', ')}]`);
    }
    checkRange('idle_timeout_ms', hello.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    checkRange('initial_credit', hello.initialCredit, MIN_INITIAL_CREDIT, MAX_COUNTER);
    checkRange('max_frame_payload', hello.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
    checkRange('max_message_size', hello.maxMessageSize, 1, MAX_COUNTER);
    const applicationProtocol =
      hello.applicationProtocols.find((p) => s.applicationProtocols.includes(p)) ?? '';
    if (applicationProtocol === '' && s.requireApplicationProtocol) {
      throw new ProtocolError('NO_APPLICATION_PROTOCOL', 'no common application protocol');
    }
    const [lo, hi] = s.clientIdleRange;
    const clientIdle = Math.min(
      Math.max(hello.idleTimeoutMs, lo, MIN_IDLE_TIMEOUT_MS),
      hi,
      MAX_IDLE_TIMEOUT_MS,
    );
    const welcome: Welcome = {
      version: Math.max(...common),
      extensions: hello.extensions.filter((e) => s.extensions.includes(e)),
      idleTimeoutMs: s.idleTimeoutMs,
      initialCredit: s.initialWindow,
      maxFramePayload: s.maxFramePayload,
      maxMessageSize: s.maxMessageBytes,
      clientIdleTimeoutMs: clientIdle,
      applicationProtocol,
      sendQueueLimit: s.maxSendQueueBytes,
    };
    this.controlQueue.push(PREAMBLE);
    this.controlQueue.push(encodeControlFrame({ type: FrameType.WELCOME, welcome }));
    this.preambleSent = true;
    this.open(welcome.version, welcome.extensions, applicationProtocol, s.idleTimeoutMs, clientIdle, hello);
  }

  /** Checks WELCOME in the order of SPEC.md §6 ("Validation"), version first. */
  private onWelcome(welcome: Welcome): void {
    const s = this.settings;
    if (!s.versions.includes(welcome.version)) {
      throw new ProtocolError(
        'UNSUPPORTED_VERSION',
        `server chose version ${welcome.version}, which was not offered`,
      );
    }
    if (welcome.extensions.some((e) => !s.extensions.includes(e))) {
      throw new ProtocolError('PROTOCOL_ERROR', 'server accepted an extension that was not offered');
    }
    checkRange('idle_timeout_ms', welcome.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    checkRange('initial_credit', welcome.initialCredit, MIN_INITIAL_CREDIT, MAX_COUNTER);
    checkRange('max_frame_payload', welcome.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
    checkRange('max_message_size', welcome.maxMessageSize, 1, MAX_COUNTER);
    checkRange(
      'client_idle_timeout_ms',
      welcome.clientIdleTimeoutMs,
      MIN_IDLE_TIMEOUT_MS,
      MAX_IDLE_TIMEOUT_MS,
    );
    if (welcome.applicationProtocol !== '' && !s.applicationProtocols.includes(welcome.applicationProtocol)) {
      throw new ProtocolError('PROTOCOL_ERROR', 'server chose an application protocol that was not offered');
    }
    if (welcome.applicationProtocol === '' && s.requireApplicationProtocol) {
      throw new ProtocolError('NO_APPLICATION_PROTOCOL', 'the server chose no application protocol');
    }
    this.open(
      welcome.version,
      welcome.extensions,
      welcome.applicationProtocol,
      welcome.clientIdleTimeoutMs,
      welcome.idleTimeoutMs,
      welcome,
    );
  }

  private open(
    version: number,
    extensions: string[],
    applicationProtocol: string,
    localIdle: number,
    peerIdle: number,
    peer: { initialCredit: number; maxFramePayload: number; maxMessageSize: number; sendQueueLimit?: number },
  ): void {
    const now = this.now;
    this.reportStep = Math.ceil((peer.sendQueueLimit ?? 0) / 4);
    this.localIdleTimeout = localIdle;
    this.heartbeatInterval = peerIdle / 3;
    this.peerLimit = peer.initialCredit;
    this.peerMaxFramePayload = peer.maxFramePayload;
    this.peerMaxMessageBytes = peer.maxMessageSize;
    this.timers.stop(Timer.HANDSHAKE);
    this.floodWindowStart = now;
    this.lastDataAt = now;
    this.timers.set(
      Timer.HEARTBEAT,
      now + (this.heartbeatInterval - this.timerSlack) * this.settings.random(),
    );
    // Both sides heartbeat at once: the server's idle deadline has run since HELLO, and the
    // client echoes the server's first heartbeat, so both have an RTT sample one round trip in.
    this.heartbeatDue = true;
    this.negotiatedValues = {
      version,
      extensions,
      applicationProtocol,
      localIdleTimeoutMs: localIdle,
      peerIdleTimeoutMs: peerIdle,
      heartbeatIntervalMs: this.heartbeatInterval,
      peerMaxFramePayload: peer.maxFramePayload,
      peerMaxMessageBytes: peer.maxMessageSize,
    };
    this.setState('open');
    this.emit({ type: 'open', negotiated: this.negotiatedValues });
    // The client's first RTT sample: HELLO to WELCOME.
    if (this.settings.role === 'client' && this.helloSentAt !== undefined)
      this.recordRtt(now - this.helloSentAt);
    if (this.closeRequested) {
      this.setState('closing');
      this.checkTermination();
    }
    if (this.pendingGoAway !== undefined) this.goAway(now, this.pendingGoAway);
  }

  /** Apply a credit limit and a consumed count from the peer. Returns whether anything changed. */
  private onCredit(limit: number, consumed: number): boolean {
    let changed = false;
    if (limit > this.peerLimit) {
      this.peerLimit = limit;
      changed = true;
      this.updateBlocked(this.now);
    }
    if (consumed > this.peerConsumed) {
      if (consumed > this.writtenCount) {
        throw new ProtocolError(
          'PROTOCOL_ERROR',
          `peer reports ${consumed} messages consumed of ${this.writtenCount} sent`,
        );
      }
      const count = consumed - this.peerConsumed;
      const outbox = this.outbox;
      let bytes = this.outboxBytes;
      for (let i = 0; i < count; i++) bytes -= outbox.at(i)!.length + SEND_QUEUE_MESSAGE_OVERHEAD;
      this.outboxBytes = bytes;
      outbox.discard(count);
      this.sendIndex -= count;
      this.peerConsumed = consumed;
      changed = true;
      if (this.writableWanted && bytes < this.settings.maxSendQueueBytes) {
        this.writableWanted = false;
        this.emit(WRITABLE);
      }
    }
    return changed;
  }

  private onHeartbeat(frame: HeartbeatFrame): void {
    this.heartbeatsReceived++;
    // Floods are judged on the sender's clock (its timestamps), so heartbeats sent at the agreed
    // rate but held back by the path and delivered together are never mistaken for a flood.
    const gap = this.peerTimestamp === undefined ? U32 : (frame.timestamp - this.peerTimestamp + U32) % U32;
    const earliest = (this.localIdleTimeout / 3) * EARLY_HEARTBEAT_FRACTION * HEARTBEAT_TICKS_PER_MS;
    this.earlyHeartbeats = gap < earliest ? this.earlyHeartbeats + 1 : 0;
    if (this.earlyHeartbeats > MAX_HEARTBEATS_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'heartbeats far more often than negotiated');
    }
    this.rollFloodWindow();
    if (++this.heartbeatsInWindow > MAX_HEARTBEAT_ARRIVALS_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'heartbeats arriving far more often than negotiated');
    }
    if (frame.receivedBytes > this.sentCredit) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `peer claims ${frame.receivedBytes} bytes received of ${this.sentCredit} sent`,
      );
    }
    this.onCredit(frame.creditLimit, frame.consumedMessages);
    this.peerTimestamp = frame.timestamp;
    this.peerTimestampAt = this.now;
    if (frame.echo && frame.echoTimestamp !== this.lastEchoUsed) {
      this.lastEchoUsed = frame.echoTimestamp;
      const ticks =
        (((Math.floor(this.now * HEARTBEAT_TICKS_PER_MS) - frame.echoTimestamp - frame.echoDelay) % U32) +
          U32) %
        U32;
      if (ticks < U32 / 2) this.recordRtt(ticks / HEARTBEAT_TICKS_PER_MS);
    }
  }

  private recordRtt(sample: number): void {
    this.rtt = sample;
    this.minRtt = this.minRtt === undefined ? sample : Math.min(this.minRtt, sample);
    if (this.srtt === undefined) {
      this.srtt = sample;
      this.rttVar = sample / 2;
    } else {
      this.rttVar = 0.75 * this.rttVar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.emit({ type: 'rtt', rttMs: sample, smoothedRttMs: this.srtt });
  }

  private onClose(sentMessages: number, consumed: number): void {
    if (sentMessages !== this.receivedCount || this.partialCost > 0) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `CLOSE after ${sentMessages} messages, but ${this.receivedCount} arrived complete`,
      );
    }
    this.onCredit(0, consumed);
    this.terminationInitiator ??= 'remote';
    this.timers.set(Timer.CLOSE, this.now + this.settings.closeTimeoutMs);
    this.setState('peer-closed');
    this.emit({ type: 'peer-closed' });
    this.checkTermination();
  }

  private onCloseAck(sentMessages: number, consumed: number, delivered: number): void {
    if (sentMessages !== this.receivedCount || this.partialCost > 0) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `CLOSE_ACK after ${sentMessages} messages, but ${this.receivedCount} arrived`,
      );
    }
    if (delivered > this.writtenCount || consumed > delivered) {
      throw new ProtocolError('PROTOCOL_ERROR', 'CLOSE_ACK reports more messages than were sent');
    }
    this.onCredit(0, consumed);
    this.peerDelivered = delivered;
    this.setState('close-acked');
    this.checkTermination();
  }

  private onError(body: {
    code: number;
    message: string;
    consumedMessages: number;
    deliveredMessages: number;
  }): void {
    if (body.deliveredMessages <= this.writtenCount && body.consumedMessages <= body.deliveredMessages) {
      if (body.consumedMessages > this.peerConsumed) this.onCredit(0, body.consumedMessages);
      this.peerDelivered = body.deliveredMessages;
    }
    this.fail(new RemoteError(body.code, body.message), 'remote', false);
  }

  private countNoop(): void {
    this.rollFloodWindow();
    if (++this.noopsInWindow > MAX_NOOP_CONTROL_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'too many control frames that change nothing');
    }
  }

  private rollFloodWindow(): void {
    const length = this.localIdleTimeout / 3;
    if (this.now - this.floodWindowStart >= length) {
      this.floodWindowStart = this.now;
      this.heartbeatsInWindow = 0;
      this.noopsInWindow = 0;
    }
  }

  // ------------------------------------------------------------------ credit

  private creditAvailable(): number {
    return this.peerLimit - this.sentCredit;
  }

  /** Grant everything we hold room for: `L = max(L, C + W)`. */
  private raiseLimit(): void {
    this.grantedLimit = Math.max(this.grantedLimit, this.grantable());
    this.decoder.dataCredit = this.grantedLimit - this.receivedCredit;
  }

  /** The largest limit we may grant now: `C + W` (SPEC.md §7 rule 4). */
  private grantable(): number {
    return this.releasedCredit + this.window;
  }

  /**
   * Report consumption between grants (SPEC.md §7 rule 5), in a CREDIT that raises the limit
   * only if a grant is due anyway. The sender keeps each message until it learns it was
   * consumed, in a bounded send queue: if it stated its bound `Q`, report once `U ≥ Q / 4` (the
   * callers checked that), at most one CREDIT per `Q / 4` credit bytes consumed; if it did not,
   * report each time the application has consumed every message held.
   */
  private reportConsumption(): void {
    if (
      !this.creditDirty &&
      this.consumedCount > this.consumedReported &&
      (this.reportStep > 0 || (this.inbox.length === 0 && this.taken.length === 0)) &&
      this.negotiatedValues !== undefined &&
      this.sendsCredit()
    )
      this.consumedReportDue = true;
  }

  private maybeGrantCredit(now: number): void {
    if (this.negotiatedValues === undefined || !this.sendsCredit()) return;
    const increase = this.grantable() - this.grantedLimit;
    if (increase < this.window / 4) return;
    this.tuneWindow(now);
    this.creditDirty = true;
  }

  /**
   * Receive window auto-tuning (docs/IMPLEMENTATION.md, "Window tuning"), at most once per
   * `RATE_INTERVAL_MS`: from the consumption rate `r` over the interval and the horizon
   * `h = min RTT + QUEUE_TARGET_MS`, the window wanted is `2·r·h` (and room for two recent large
   * messages). While the window limits the sender, `r ≈ W / RTT`, so the window grows whenever
   * the loop is faster than `2h`; once the rate no longer follows, the window settles near
   * `2·C·h`, which keeps what it adds to the path's queues near the target.
   */
  private tuneWindow(now: number): void {
    const elapsed = now - this.rateSince;
    if (elapsed < RATE_INTERVAL_MS) return;
    const rate = (this.releasedCredit - this.rateReleased) / elapsed;
    this.rateSince = now;
    this.rateReleased = this.releasedCredit;
    // A slow application needs no check of its own: it consumes at a low rate, so it is not
    // granted a larger window (reads in bursts, which hold most of the window at grant time, must
    // not stop the growth).
    const floor = Math.max(this.settings.initialWindow, Math.ceil(2 * this.largeMessageCost));
    const wanted = Math.max(floor, 2 * rate * ((this.minRtt ?? DEFAULT_RTT_MS) + QUEUE_TARGET_MS));
    const queueing =
      this.rtt !== undefined && this.minRtt !== undefined && this.rtt > this.minRtt + RTT_QUEUEING_MS;
    if (this.window < wanted && (!queueing || this.window < floor)) {
      this.growWindow();
    } else if (this.window > 2 * wanted && this.minRtt !== undefined && this.window / 2 >= floor) {
      // More window than the rate needs would only queue. Grants shrink as consumption catches
      // up; `L − C` never exceeds a window granted before. Whole bytes: a maximum may be odd.
      this.window = Math.floor(this.window / 2);
    }
  }

  /**
   * A message can only be consumed once complete: keep room in the window for the incomplete
   * message plus its next frame, and when it is all we hold (the application consumed everything
   * else), grant that room even below the usual step, or sender and receiver would wait for each
   * other forever.
   */
  private ensurePartialRoom(now: number): void {
    if (this.partialCost === 0) return;
    const nextFrame = Math.min(
      this.settings.maxFramePayload,
      this.settings.maxMessageBytes - this.partialBytes,
    );
    const target = this.partialCost + dataFrameCost(Math.max(0, nextFrame), true);
    while (this.window < target) {
      const before = this.window;
      this.growWindow();
      if (this.window === before) break;
    }
    if (this.heldBytes === this.partialCost && this.grantable() > this.grantedLimit) {
      this.creditDirty = true;
    } else {
      this.maybeGrantCredit(now);
    }
  }

  /** Double the window up to its maximum, reserving the growth in the shared budget first. */
  private growWindow(): void {
    const target = Math.min(this.window * 2, this.settings.maxWindow);
    if (target <= this.window) return;
    const budget = this.settings.budget;
    if (budget === undefined) {
      this.window = target;
      return;
    }
    const missing = target - this.settings.initialWindow - this.reservedExtra;
    if (missing > 0) this.reservedExtra += budget.reserve(missing, this.reservedExtra, this.now);
    // Whole bytes, whatever a budget grants.
    this.window = Math.max(
      this.window,
      Math.floor(Math.min(target, this.settings.initialWindow + this.reservedExtra)),
    );
  }

  /** An incomplete message starts: sample its pin time while a shared budget can be short. */
  private startPinWatch(): void {
    if (this.settings.budget?.pinTimeoutMs === undefined) return;
    this.pinnedMs = 0;
    this.pinSampledAt = this.now;
    this.timers.set(Timer.PIN_CHECK, this.now + PIN_CHECK_MS);
  }

  /**
   * Sample the incomplete message (SPEC.md §7, "Shared memory"): time in which no DATA arrived
   * although the sender had credit for its next frame (or had a frame under way) counts as pinned.
   * While the budget is short, a message pinned for `pinTimeoutMs` is cut (`ENHANCE_YOUR_CALM`);
   * otherwise after the larger of that and the idle timeout. Room the budget refused before is
   * retried. Returns true when the connection failed.
   */
  private checkPin(now: number): boolean {
    const budget = this.settings.budget!;
    if (this.partialCost === 0) {
      this.timers.stop(Timer.PIN_CHECK);
      return false;
    }
    const couldSend = this.frameInProgress || this.grantedLimit - this.receivedCredit >= PIN_CREDIT;
    if (couldSend && this.lastDataAt <= this.pinSampledAt) this.pinnedMs += now - this.pinSampledAt;
    this.pinSampledAt = now;
    this.timers.set(Timer.PIN_CHECK, now + PIN_CHECK_MS);
    const pinTimeout = budget.pinTimeoutMs!;
    const short = budget.underPressure?.(now) ?? false;
    if (this.pinnedMs >= (short ? pinTimeout : Math.max(pinTimeout, this.localIdleTimeout))) {
      this.fail(
        new ProtocolError(
          'ENHANCE_YOUR_CALM',
          `an incomplete message held ${this.partialCost} credit bytes without progress for ${Math.round(this.pinnedMs)} ms${short ? ' while memory is short' : ''}`,
        ),
        'remote',
        true,
      );
      return true;
    }
    if (!this.frameInProgress) this.ensurePartialRoom(now);
    return false;
  }

  /** Return budget reservations beyond what the window and the outstanding grant need. */
  private returnReservation(): void {
    const budget = this.settings.budget;
    if (budget === undefined) return;
    const outstanding =
      this.machine.state === 'closed' ? 0 : Math.max(this.window, this.grantedLimit - this.releasedCredit);
    const needed = Math.max(0, outstanding - this.settings.initialWindow);
    if (this.reservedExtra > needed) {
      budget.release(this.reservedExtra - needed);
      this.reservedExtra = needed;
    }
  }

  /**
   * Payload size of the next DATA frame of a message with `remaining` bytes left, or −1 when it
   * must wait. The frame finishes the message (END) when credit allows; otherwise it carries at
   * least `min(remaining, MIN_FRAGMENT)` bytes, so a message is never cut into tiny frames whose
   * headers would outgrow the receiver's window (SPEC.md §5.1, §7 rule 7).
   */
  private nextFrameSize(remaining: number, credit: number): number {
    if (remaining <= this.peerMaxFramePayload && dataFrameCost(remaining, true) <= credit) return remaining;
    const size = Math.min(remaining, this.peerMaxFramePayload, credit - FRAME_HEADER_SIZE);
    return size > 0 && size >= Math.min(remaining, MIN_FRAGMENT) ? size : -1;
  }

  private updateBlocked(now: number): void {
    const next = this.sendIndex < this.outbox.length ? this.outbox.at(this.sendIndex)! : undefined;
    const blocked =
      this.negotiatedValues !== undefined &&
      next !== undefined &&
      this.nextFrameSize(next.length - this.sendOffset, this.creditAvailable()) < 0;
    if (blocked && this.blockedSince === undefined) {
      this.blockedSince = now;
      this.armCreditStall();
    } else if (!blocked && this.blockedSince !== undefined) {
      const blockedMs = now - this.blockedSince;
      this.creditBlockedTotal += blockedMs;
      this.blockedSince = undefined;
      this.armCreditStall();
      if (this.stallReported) {
        this.stallReported = false;
        this.emit({ type: 'credit-resumed', blockedMs });
      }
    }
  }

  /** Arm (or stop) the credit-stall deadlines for `blockedSince`. */
  private armCreditStall(): void {
    const since = this.blockedSince;
    const s = this.settings;
    this.timers.set(
      Timer.CREDIT_STALL,
      since === undefined || s.creditStallTimeoutMs <= 0 ? undefined : since + s.creditStallTimeoutMs,
    );
    this.timers.set(
      Timer.CREDIT_STALL_REPORT,
      since === undefined || this.stallReported ? undefined : since + s.creditStallReportMs,
    );
  }

  // ------------------------------------------------------------------ liveness helpers

  /** End-of-stream (or a reset) now ends the connection cleanly (SPEC.md §9.3). */
  private endOfStreamIsClean(): boolean {
    const eos = this.machine.row.endOfStream;
    return eos === EndOfStream.CLEAN || (eos === EndOfStream.CLEAN_IF_CONSUMED && this.peerConsumedAll());
  }

  /** This side sends CREDIT in the current state (and so reports consumption). */
  private sendsCredit(): boolean {
    return (this.machine.row.sends & CREDIT_BIT) !== 0;
  }

  // ------------------------------------------------------------------ termination

  /** Advance the termination handshake when its conditions hold (SPEC.md §9.1). */
  private checkTermination(): void {
    const state = this.machine.state;
    const allSent = this.sendIndex >= this.outbox.length;
    const allConsumed = this.inbox.length === 0 && this.taken.length === 0;
    if (state === 'closing' && allSent && !this.closeFrameDue) {
      this.closeFrameDue = true;
    } else if (state === 'close-acked' && allConsumed && !this.finalFrameDue) {
      this.finalFrameDue = true;
    } else if (
      state === 'peer-closed' &&
      this.finishRequested &&
      allSent &&
      allConsumed &&
      !this.finalFrameDue
    ) {
      this.finalFrameDue = true;
    }
  }

  private finishClean(initiator: CloseInfo['initiator']): void {
    this.closeInfo = {
      clean: true,
      initiator: this.terminationInitiator ?? initiator,
      delivery: this.deliveryReport(),
      unread: this.discardedCount + this.inbox.length,
    };
    this.enterClosed();
  }

  private fail(error: HeartwireError, initiator: CloseInfo['initiator'], sendError: boolean): void {
    if (this.machine.state === 'closed') return;
    if (sendError && this.canSendFrames()) {
      this.controlQueue.push(
        encodeControlFrame({
          type: FrameType.ERROR,
          error: {
            code: error.wireCode ?? WireErrorCode.CANCELLED,
            message: error.message,
            consumedMessages: this.consumedCount,
            deliveredMessages: this.deliveredCount,
          },
        }),
      );
    }
    this.closeInfo = {
      clean: false,
      initiator,
      error,
      delivery: this.deliveryReport(),
      unread: this.discardedCount + this.inbox.length,
    };
    this.enterClosed();
  }

  /** True when our side has a usable stream for one more frame (after our preamble). */
  private canSendFrames(): boolean {
    if (!this.machine.row.sendsError) return false;
    if (this.preambleSent) return true;
    // A server sends its preamble only when it answers HELLO; it can still answer a peer that
    // sent a valid preamble with its own preamble and an ERROR frame.
    if (this.settings.role === 'server' && this.decoder.preambleReceived) {
      this.controlQueue.push(PREAMBLE);
      this.preambleSent = true;
      return true;
    }
    return false;
  }

  private enterClosed(): void {
    // Everything not handed to the application is discarded unprocessed (SPEC.md §9.4).
    this.inbox.clear();
    this.assembly = undefined;
    this.partial = [];
    this.partialBlock = undefined;
    this.timers.stop(Timer.PIN_CHECK);
    this.heartbeatDue = false;
    this.creditDirty = false;
    this.consumedReportDue = false;
    this.closeFrameDue = false;
    this.finalFrameDue = false;
    if (this.blockedSince !== undefined) {
      this.creditBlockedTotal += this.now - this.blockedSince;
      this.blockedSince = undefined;
      this.armCreditStall();
    }
    this.setState('closed');
    this.returnReservation();
    this.emit({ type: 'closed', info: this.closeInfo! });
  }

  private setState(to: ConnectionState): void {
    const from = this.machine.state;
    if (!this.machine.move(to)) return;
    const row = this.machine.row;
    this.dataAllowed = (row.accepts & DATA_BIT) !== 0;
    this.decoder.dataAllowed = this.dataAllowed;
    this.updateSendOpen();
    if ((row.timers & HEARTBEAT_TIMER) === 0) this.timers.stop(Timer.HEARTBEAT);
    this.emit({ type: 'state', from, to });
  }

  private updateSendOpen(): void {
    const row = this.machine.row;
    this.sendOpen =
      row.acceptsMessages &&
      !this.closeRequested &&
      !(this.settings.role === 'server' && this.finishRequested && row.state === 'peer-closed');
  }

  private emit(event: EngineEvent): void {
    this.events.push(event);
  }
}

function checkRange(field: string, value: number, min: number, max: number): void {
  if (!(value >= min && value <= max)) {
    throw new ProtocolError('PROTOCOL_ERROR', `${field} = ${value} is outside [${min}, ${max}]`);
  }
}

function frameName(type: number): string {
  for (const [name, code] of Object.entries(FrameType)) if (code === type) return name;
  return `0x${type.toString(16)}`;
}
