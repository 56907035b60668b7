/**
 * Liveness (SPEC.md §8): the heartbeat schedule and its jitter, timer slack, the idle deadline
 * and the stall rule, RTT samples, flood limits on received heartbeats and no-op control frames,
 * and the write-stall watchdog.
 * @module
 */
import {
  HEARTBEAT_TICKS_PER_MS,
  MAX_HEARTBEATS_PER_WINDOW,
  MAX_NOOP_CONTROL_PER_WINDOW,
} from '../constants.js';
import { writeHeartbeatFrame } from '../codec/encode.js';
import { ProtocolError } from '../errors.js';
import type { HeartbeatFrame } from '../frames.js';
import type { EngineEvent } from '../types.js';
import type { Ring } from './ring.js';
import { U32 } from './settings.js';
import type { Settings } from './settings.js';
import { Timer } from './timers.js';
import type { Timers } from './timers.js';

/** Heartbeats stamped closer together than this fraction of the period count as early. */
const EARLY_HEARTBEAT_FRACTION = 0.45;
/** Heartbeats arriving in one window of T/3, whatever their timestamps, beyond which a peer floods. */
const MAX_HEARTBEAT_ARRIVALS_PER_WINDOW = 1000;
/** Timer lateness beyond which a liveness deadline is not trusted (our own process stalled). */
const LATE_TIMER_TOLERANCE_MS = 250;
/**
 * Timer slack (see `Liveness.timerSlack`): this fraction of the shortest period the engine times
 * (heartbeat interval, a third of the idle timeout), and never more than `MAX_TIMER_SLACK_MS`,
 * which is far below `LATE_TIMER_TOLERANCE_MS`.
 */
const TIMER_SLACK_FRACTION = 1 / 100;
const MAX_TIMER_SLACK_MS = 64;

export class Liveness {
  /** T: our idle timeout as negotiated. */
  localIdleTimeout: number;
  /** I: our heartbeat interval, a third of the peer's idle timeout (0 before the handshake). */
  heartbeatInterval = 0;
  lastReceivedAt = 0;
  lastSentAt: number | undefined;
  /** A heartbeat is due (the schedule, a probe of the stall rule, or the first after the handshake). */
  heartbeatDue = false;
  private graceUntil = 0;
  /**
   * The liveness deadline (`lastReceivedAt + T`) the stall grace was granted for, −1 if none: the
   * grace is granted once per deadline, so a side whose peer stays silent fails when it ends.
   */
  private graceFor = -1;
  private peerTimestamp: number | undefined;
  private peerTimestampAt = 0;
  private lastEchoUsed: number | undefined;
  rtt: number | undefined;
  minRtt: number | undefined;
  srtt: number | undefined;
  private rttVar = 0;
  private floodWindowStart = 0;
  private heartbeatsInWindow = 0;
  /** Consecutive heartbeats whose timestamps were closer than allowed. */
  private earlyHeartbeats = 0;
  private noopsInWindow = 0;
  /** Bytes the transport holds unsent, and since when it made no progress (write stall). */
  private backlog = 0;
  backlogSince = 0;
  heartbeatsReceived = 0;
  heartbeatsSent = 0;

  constructor(
    private readonly settings: Settings,
    private readonly timers: Timers,
    private readonly events: Ring<EngineEvent>,
  ) {
    this.localIdleTimeout = settings.idleTimeoutMs;
  }

  /**
   * The handshake completed: T and I are known. Both sides heartbeat at once (the server's idle
   * deadline has run since HELLO, and the client echoes the server's first heartbeat, so both
   * have an RTT sample one round trip in); the next one is drawn within the first period.
   */
  open(now: number, localIdle: number, peerIdle: number): void {
    this.localIdleTimeout = localIdle;
    this.heartbeatInterval = peerIdle / 3;
    this.floodWindowStart = now;
    this.timers.set(
      Timer.HEARTBEAT,
      now + (this.heartbeatInterval - this.timerSlack) * this.settings.random(),
    );
    this.heartbeatDue = true;
  }

  /** See `Engine.timerSlack`. */
  get timerSlack(): number {
    const base =
      this.heartbeatInterval === 0
        ? this.settings.handshakeTimeoutMs
        : Math.min(this.heartbeatInterval, this.localIdleTimeout / 3);
    return Math.min(MAX_TIMER_SLACK_MS, base * TIMER_SLACK_FRACTION);
  }

  /** The heartbeat timer expired: one is due, and the next is drawn. */
  onHeartbeatTimer(now: number): void {
    this.heartbeatDue = true;
    this.timers.set(Timer.HEARTBEAT, now + this.heartbeatPeriod());
  }

  /** The next heartbeat period: uniform in [0.9 I, 1.1 I − slack] (SPEC.md §8). */
  private heartbeatPeriod(): number {
    const interval = this.heartbeatInterval;
    return 0.9 * interval + (0.2 * interval - this.timerSlack) * this.settings.random();
  }

  /** Set the idle deadline in the timer table: `lastReceivedAt + T`, or the end of its grace. */
  syncIdleTimer(): void {
    const deadline = this.lastReceivedAt + this.localIdleTimeout;
    this.timers.set(Timer.IDLE, deadline === this.graceFor ? this.graceUntil : deadline);
  }

  /**
   * The idle deadline passed. If our own timer fired late, this process was stalled and the
   * peer's bytes may be waiting unread: grant one heartbeat period for them to be read, and probe
   * now. Once per deadline: if nothing arrives meanwhile, the deadline stays and we fail at the
   * grace's end, however late that timer fires (SPEC.md §8, stall rule). Returns true when the
   * connection must fail with `HEARTBEAT_TIMEOUT`.
   */
  onIdleTimer(now: number): boolean {
    const deadline = this.lastReceivedAt + this.localIdleTimeout;
    if (deadline !== this.graceFor && now - deadline > LATE_TIMER_TOLERANCE_MS) {
      this.graceFor = deadline;
      this.graceUntil = now + this.heartbeatInterval;
      this.heartbeatDue = true;
      this.syncIdleTimer();
      return false;
    }
    return true;
  }

  /**
   * Write a HEARTBEAT (`HEARTBEAT_FRAME_SIZE` bytes) at `at` of `target`: our timestamp, the echo
   * of the peer's last one with the time it waited here, and the credit fields given.
   */
  writeHeartbeat(
    target: Uint8Array,
    at: number,
    now: number,
    receivedBytes: number,
    creditLimit: number,
    consumedMessages: number,
  ): void {
    const echo = this.peerTimestamp !== undefined;
    writeHeartbeatFrame(target, at, {
      echo,
      timestamp: Math.floor(now * HEARTBEAT_TICKS_PER_MS) % U32,
      echoTimestamp: echo ? this.peerTimestamp! : 0,
      echoDelay: echo
        ? Math.min(
            Math.max(0, Math.floor((now - this.peerTimestampAt) * HEARTBEAT_TICKS_PER_MS)),
            0xffff_ffff,
          )
        : 0,
      receivedBytes,
      creditLimit,
      consumedMessages,
    });
    this.heartbeatsSent++;
  }

  /**
   * A HEARTBEAT arrived: count it against the flood limits. Floods are judged on the sender's
   * clock (its timestamps), so heartbeats sent at the agreed rate but held back by the path and
   * delivered together are never mistaken for a flood. Throws `ENHANCE_YOUR_CALM`.
   */
  checkHeartbeatRate(now: number, timestamp: number): void {
    this.heartbeatsReceived++;
    const gap = this.peerTimestamp === undefined ? U32 : (timestamp - this.peerTimestamp + U32) % U32;
    const earliest = (this.localIdleTimeout / 3) * EARLY_HEARTBEAT_FRACTION * HEARTBEAT_TICKS_PER_MS;
    this.earlyHeartbeats = gap < earliest ? this.earlyHeartbeats + 1 : 0;
    if (this.earlyHeartbeats > MAX_HEARTBEATS_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'heartbeats far more often than negotiated');
    }
    this.rollFloodWindow(now);
    if (++this.heartbeatsInWindow > MAX_HEARTBEAT_ARRIVALS_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'heartbeats arriving far more often than negotiated');
    }
  }

  /** A HEARTBEAT was accepted: keep its timestamp to echo, and take an RTT sample from its echo. */
  onHeartbeat(now: number, frame: HeartbeatFrame): void {
    this.peerTimestamp = frame.timestamp;
    this.peerTimestampAt = now;
    if (frame.echo && frame.echoTimestamp !== this.lastEchoUsed) {
      this.lastEchoUsed = frame.echoTimestamp;
      const ticks =
        (((Math.floor(now * HEARTBEAT_TICKS_PER_MS) - frame.echoTimestamp - frame.echoDelay) % U32) + U32) %
        U32;
      if (ticks < U32 / 2) this.recordRtt(ticks / HEARTBEAT_TICKS_PER_MS);
    }
  }

  recordRtt(sample: number): void {
    this.rtt = sample;
    this.minRtt = this.minRtt === undefined ? sample : Math.min(this.minRtt, sample);
    if (this.srtt === undefined) {
      this.srtt = sample;
      this.rttVar = sample / 2;
    } else {
      this.rttVar = 0.75 * this.rttVar + 0.25 * Math.abs(this.srtt - sample);
      this.srtt = 0.875 * this.srtt + 0.125 * sample;
    }
    this.events.push({ type: 'rtt', rttMs: sample, smoothedRttMs: this.srtt });
  }

  /** A control frame that changed nothing: count it (SPEC.md §10). Throws `ENHANCE_YOUR_CALM`. */
  countNoop(now: number): void {
    this.rollFloodWindow(now);
    if (++this.noopsInWindow > MAX_NOOP_CONTROL_PER_WINDOW) {
      throw new ProtocolError('ENHANCE_YOUR_CALM', 'too many control frames that change nothing');
    }
  }

  private rollFloodWindow(now: number): void {
    const length = this.localIdleTimeout / 3;
    if (now - this.floodWindowStart >= length) {
      this.floodWindowStart = now;
      this.heartbeatsInWindow = 0;
      this.noopsInWindow = 0;
    }
  }

  /** See `Engine.transmitBacklog`: arms the write-stall deadline. */
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
}
