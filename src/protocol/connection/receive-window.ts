/**
 * The receive window (SPEC.md §7): `R` (credit bytes received), `L` (the limit granted), `C`
 * (credit released by the application), `W` (the window); when to grant, when to report
 * consumption, window tuning, room for an incomplete message, the pin watch, and reservations in
 * a shared memory budget.
 * @module
 */
import { dataFrameCost } from '../codec/wire.js';
import { FRAME_HEADER_SIZE, MAX_COUNTER, MESSAGE_CREDIT_OVERHEAD } from '../constants.js';
import type { FrameDecoder } from '../codec/decode.js';
import type { Liveness } from './liveness.js';
import { MIN_FRAGMENT } from './settings.js';
import type { Settings } from './settings.js';
import { Timer } from './timers.js';
import type { Timers } from './timers.js';

/** Queueing delay the receive window may add to the path, beyond its minimum RTT (window tuning). */
const QUEUE_TARGET_MS = 0.5;
/** Shortest interval over which window tuning measures the consumption rate. */
const RATE_INTERVAL_MS = 2;
/**
 * The window shrinks only when the average rate of the last complete period this long does not
 * need it either. One slow interval (a GC pause, a burst of other work in the process) must not
 * halve it: a smaller window means smaller reads and more CPU per message, which lowers the rate
 * further. An average, not a peak: the rate of a 2 ms interval in a bursty process can be several
 * times the sustained rate, and a window sized to it would only queue.
 */
const RATE_PERIOD_MS = 125;
/** RTT assumed for window tuning until a sample exists. */
const DEFAULT_RTT_MS = 1;
/** RTT above the minimum by more than this means queues are building: stop growing the window. */
const RTT_QUEUEING_MS = 4;
/** After this long without DATA, a grown receive window shrinks back to its initial size. */
const WINDOW_IDLE_SHRINK_MS = 2000;
/**
 * How often a connection holding an incomplete message under a shared budget samples whether the
 * message pins memory (see `checkPin`) and retries growth the budget refused.
 */
const PIN_CHECK_MS = 100;
/** Credit with which a sender can always send a frame of its message (SPEC.md §7 rule 5). */
const PIN_CREDIT = FRAME_HEADER_SIZE + MIN_FRAGMENT + MESSAGE_CREDIT_OVERHEAD;

export class ReceiveWindow {
  /** R, L, C and W of SPEC.md §7. */
  receivedCredit = 0;
  grantedLimit: number;
  releasedCredit = 0;
  window: number;
  /** Growth of the window beyond its initial size reserved in the shared budget. */
  private reservedExtra = 0;
  lastDataAt = 0;
  /** Messages consumed (a contiguous prefix), and that count as last sent in CREDIT or HEARTBEAT. */
  consumedCount = 0;
  private consumedReported = 0;
  /** `C` when `Consumed Messages` last went out (CREDIT or HEARTBEAT): `U = C − this`. */
  private releasedReported = 0;
  /**
   * Report consumption once `U` reaches this (SPEC.md §7 rule 5): a quarter of the peer's
   * `send_queue_limit`, or 0 if it stated none (then: when the application has drained).
   */
  private reportStep = 0;
  /** A CREDIT raising the limit is due. */
  creditDirty = false;
  /** A CREDIT is due to report consumption, without raising the limit (see `reportConsumption`). */
  consumedReportDue = false;
  /** This side sends CREDIT in its current state (the state row's, cached). */
  grants = false;
  /** The incomplete message, as credit sees it: its cost so far (0: none) and its payload bytes. */
  partialCost = 0;
  partialBytes = 0;
  /**
   * A frame of the incomplete message is still arriving (its credit was granted whole, so no
   * room needs to be made for it yet: see `ensurePartialRoom`).
   */
  frameInProgress = false;
  private pinSampledAt = 0;
  /** Time the incomplete message made no progress although its sender had credit, sampled. */
  private pinnedMs = 0;
  /** Cost of recent large messages (decaying), so the window keeps room for two in flight. */
  largeMessageCost = 0;
  /** Start of the current rate interval of window tuning, and `C` then. */
  private rateSince = 0;
  private rateReleased = 0;
  /** Average rate of the last complete period (`RATE_PERIOD_MS`); start of the current one, and `C` then. */
  private periodRate = 0;
  private periodSince = 0;
  private periodReleased = 0;

  constructor(
    private readonly settings: Settings,
    private readonly timers: Timers,
    private readonly liveness: Liveness,
    private readonly decoder: FrameDecoder,
    /** The limit to grant would reach 2^53: the engine closes with `LIMIT_REACHED` (SPEC.md §2). */
    private readonly limitReached: (now: number) => void,
  ) {
    this.window = settings.initialWindow;
    this.grantedLimit = settings.initialWindow;
    decoder.dataCredit = this.grantedLimit;
  }

  /** The handshake completed: the peer's send queue bound paces consumption reports. */
  open(now: number, peerSendQueueLimit: number | undefined): void {
    this.reportStep = Math.ceil((peerSendQueueLimit ?? 0) / 4);
    this.lastDataAt = now;
  }

  /** Credit bytes held for unconsumed input: `R − C`. */
  get heldBytes(): number {
    return this.receivedCredit - this.releasedCredit;
  }

  /** The largest limit we may grant now: `C + W` (SPEC.md §7 rule 4). */
  grantable(): number {
    return this.releasedCredit + this.window;
  }

  /** Grant everything we hold room for: `L = max(L, C + W)`. */
  raiseLimit(): void {
    this.grantedLimit = Math.max(this.grantedLimit, this.grantable());
    this.decoder.dataCredit = this.grantedLimit - this.receivedCredit;
  }

  /** `Consumed Messages` went out (CREDIT or HEARTBEAT): nothing is due any more. */
  reported(): void {
    this.consumedReported = this.consumedCount;
    this.releasedReported = this.releasedCredit;
    this.creditDirty = false;
    this.consumedReportDue = false;
  }

  /** Enough was consumed since the last report for another (see `reportConsumption`). */
  get reportStepReached(): boolean {
    return this.releasedCredit - this.releasedReported >= this.reportStep;
  }

  /**
   * Report consumption between grants (SPEC.md §7 rule 5), in a CREDIT that raises the limit
   * only if a grant is due anyway. The sender keeps each message until it learns it was
   * consumed, in a bounded send queue: if it stated its bound `Q`, report once `U ≥ Q / 4` (the
   * callers checked that), at most one CREDIT per `Q / 4` credit bytes consumed; if it did not,
   * report each time the application has consumed every message held (`drained`).
   */
  reportConsumption(drained: boolean): void {
    if (
      !this.creditDirty &&
      this.consumedCount > this.consumedReported &&
      (this.reportStep > 0 || drained) &&
      this.grants
    )
      this.consumedReportDue = true;
  }

  /** Grant more credit when a step (W / 4) of it can be granted. */
  maybeGrantCredit(now: number): void {
    if (!this.grants) return;
    const increase = this.grantable() - this.grantedLimit;
    if (increase < this.window / 4) return;
    if (this.grantable() > MAX_COUNTER) return this.limitReached(now);
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
    if (now - this.periodSince >= RATE_PERIOD_MS) {
      this.periodRate = (this.releasedCredit - this.periodReleased) / (now - this.periodSince);
      this.periodSince = now;
      this.periodReleased = this.releasedCredit;
    }
    const floor = Math.max(this.settings.initialWindow, Math.ceil(2 * this.largeMessageCost));
    const { rtt, minRtt } = this.liveness;
    const horizon = (minRtt ?? DEFAULT_RTT_MS) + QUEUE_TARGET_MS;
    const wanted = Math.max(floor, 2 * rate * horizon);
    const queueing = rtt !== undefined && minRtt !== undefined && rtt > minRtt + RTT_QUEUEING_MS;
    const sustainedWanted = 2 * this.periodRate * horizon;
    if (this.window < wanted && (!queueing || this.window < floor)) {
      this.growWindow(now);
    } else if (
      this.window > 2 * Math.max(wanted, sustainedWanted) &&
      minRtt !== undefined &&
      this.window / 2 >= floor
    ) {
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
  ensurePartialRoom(now: number): void {
    if (this.partialCost === 0) return;
    const nextFrame = Math.min(
      this.settings.maxFramePayload,
      this.settings.maxMessageBytes - this.partialBytes,
    );
    const target = this.partialCost + dataFrameCost(Math.max(0, nextFrame), true);
    while (this.window < target) {
      const before = this.window;
      this.growWindow(now);
      if (this.window === before) break;
    }
    if (this.heldBytes === this.partialCost && this.grantable() > this.grantedLimit) {
      if (this.grantable() > MAX_COUNTER) return this.limitReached(now);
      this.creditDirty = true;
    } else {
      this.maybeGrantCredit(now);
    }
  }

  /**
   * Credit was released (or messages dropped): make room for an incomplete message, or grant.
   * Then return reservations the window no longer needs.
   */
  afterRelease(now: number): void {
    if (this.partialCost > 0 && !this.frameInProgress) this.ensurePartialRoom(now);
    else this.maybeGrantCredit(now);
  }

  /** Double the window up to its maximum, reserving the growth in the shared budget first. */
  private growWindow(now: number): void {
    const target = Math.min(this.window * 2, this.settings.maxWindow);
    if (target <= this.window) return;
    const budget = this.settings.budget;
    if (budget === undefined) {
      this.window = target;
      return;
    }
    const missing = target - this.settings.initialWindow - this.reservedExtra;
    if (missing > 0) this.reservedExtra += budget.reserve(missing, this.reservedExtra, now);
    // Whole bytes, whatever a budget grants.
    this.window = Math.max(
      this.window,
      Math.floor(Math.min(target, this.settings.initialWindow + this.reservedExtra)),
    );
  }

  /** An incomplete message starts: sample its pin time while a shared budget can be short. */
  startPinWatch(now: number): void {
    if (this.settings.budget?.pinTimeoutMs === undefined) return;
    this.pinnedMs = 0;
    this.pinSampledAt = now;
    this.timers.set(Timer.PIN_CHECK, now + PIN_CHECK_MS);
  }

  /** The incomplete message completed: no more samples. */
  stopPinWatch(): void {
    this.timers.stop(Timer.PIN_CHECK);
  }

  /**
   * Sample the incomplete message (SPEC.md §7, "Shared memory"): time in which no DATA arrived
   * although the sender had credit for its next frame (or had a frame under way) counts as pinned.
   * While the budget is short, a message pinned for `pinTimeoutMs` is cut (`ENHANCE_YOUR_CALM`);
   * otherwise after the larger of that and the idle timeout. Room the budget refused before is
   * retried. Returns the message of the failure when the connection must fail, else `undefined`.
   */
  checkPin(now: number): string | undefined {
    const budget = this.settings.budget!;
    if (this.partialCost === 0) {
      this.timers.stop(Timer.PIN_CHECK);
      return undefined;
    }
    const couldSend = this.frameInProgress || this.grantedLimit - this.receivedCredit >= PIN_CREDIT;
    if (couldSend && this.lastDataAt <= this.pinSampledAt) this.pinnedMs += now - this.pinSampledAt;
    this.pinSampledAt = now;
    this.timers.set(Timer.PIN_CHECK, now + PIN_CHECK_MS);
    const pinTimeout = budget.pinTimeoutMs!;
    const short = budget.underPressure?.(now) ?? false;
    if (this.pinnedMs >= (short ? pinTimeout : Math.max(pinTimeout, this.liveness.localIdleTimeout))) {
      return `an incomplete message held ${this.partialCost} credit bytes without progress for ${Math.round(this.pinnedMs)} ms${short ? ' while memory is short' : ''}`;
    }
    if (!this.frameInProgress) this.ensurePartialRoom(now);
    return undefined;
  }

  /** When a grown window shrinks back: idle for a while, and no incomplete message needs it. */
  syncShrinkTimer(): void {
    this.timers.set(
      Timer.WINDOW_SHRINK,
      this.window <= this.settings.initialWindow || this.partialCost > 0
        ? undefined
        : this.lastDataAt + WINDOW_IDLE_SHRINK_MS,
    );
  }

  /** The shrink timer expired: back to the initial window. */
  shrink(): void {
    this.window = this.settings.initialWindow;
    this.returnReservation(false);
    this.syncShrinkTimer();
  }

  /** Return reservations the window no longer needs (all of them once `closed`). */
  returnReservation(closed: boolean): void {
    const budget = this.settings.budget;
    if (budget === undefined) return;
    const outstanding = closed ? 0 : Math.max(this.window, this.grantedLimit - this.releasedCredit);
    const needed = Math.max(0, outstanding - this.settings.initialWindow);
    if (this.reservedExtra > needed) {
      budget.release(this.reservedExtra - needed);
      this.reservedExtra = needed;
    }
  }

  /** Reservations beyond what the window needs: `returnReservation` would release some. */
  get overReserved(): boolean {
    return this.reservedExtra > 0 && this.reservedExtra > this.window - this.settings.initialWindow;
  }
}
