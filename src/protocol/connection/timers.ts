/**
 * The deadlines of a connection as one table (after quinn-proto's `timer.rs`): an id per deadline,
 * its time in a `Float64Array` (+∞ when not armed), `next()` the earliest of those the current
 * state runs, `expired()` the ids due, in the order the engine handles them. A new deadline is a
 * new id here, the places that arm it, and one `case` in `Deadlines.handle` (`deadlines.ts`).
 * @module
 */

/**
 * Deadline ids, in the order `handleTimeout` handles them when several are due: failures first
 * (handshake, idle, grace, close, write stall, credit stall), then the work they would make moot.
 */
export const Timer = {
  /** The handshake must complete (SPEC.md §6). */
  HANDSHAKE: 0,
  /** The liveness deadline: `last received + T`, or the end of a stall-rule grace (SPEC.md §8). */
  IDLE: 1,
  /** Server: the GOAWAY grace period ends (SPEC.md §9.2). */
  GRACE: 2,
  /** The termination handshake must complete (SPEC.md §9.3). */
  CLOSE: 3,
  /** The transport accepted no bytes for the write-stall timeout (SPEC.md §8, "Write stall"). */
  WRITE_STALL: 4,
  /** Blocked on the peer's credit for `creditStallTimeoutMs` (off unless set). */
  CREDIT_STALL: 5,
  /** Blocked on the peer's credit for `creditStallReportMs`: emit `credit-stall` once. */
  CREDIT_STALL_REPORT: 6,
  /** The next heartbeat is due. */
  HEARTBEAT: 7,
  /** Sample whether an incomplete message pins memory under a shared budget (SPEC.md §7). */
  PIN_CHECK: 8,
  /** A grown receive window returns to its initial size after a while without DATA. */
  WINDOW_SHRINK: 9,
} as const;
export type TimerId = (typeof Timer)[keyof typeof Timer];
/** Number of timer ids. */
export const TIMER_COUNT = 10;
/** The bit of a timer id in a mask (see `StateRow.timers`). */
export function timerBit(id: TimerId): number {
  return 1 << id;
}

/** The table: each deadline's time, +∞ when not armed. */
export class Timers {
  private readonly at = new Float64Array(TIMER_COUNT).fill(Number.POSITIVE_INFINITY);

  /** Arm `id` at `time` (+∞ or `undefined` disarms it). */
  set(id: TimerId, time: number | undefined): void {
    this.at[id] = time ?? Number.POSITIVE_INFINITY;
  }

  stop(id: TimerId): void {
    this.at[id] = Number.POSITIVE_INFINITY;
  }

  /** The time `id` is armed at, +∞ when not armed. */
  get(id: TimerId): number {
    return this.at[id]!;
  }

  isArmed(id: TimerId): boolean {
    return this.at[id]! !== Number.POSITIVE_INFINITY;
  }

  /** Disarm every deadline. */
  stopAll(): void {
    this.at.fill(Number.POSITIVE_INFINITY);
  }

  /** The earliest deadline among the ids in `mask`, +∞ when none is armed. No allocation. */
  next(mask: number): number {
    let next = Number.POSITIVE_INFINITY;
    const at = this.at;
    for (let id = 0; id < TIMER_COUNT; id++) {
      if ((mask & (1 << id)) !== 0 && at[id]! < next) next = at[id]!;
    }
    return next;
  }

  /**
   * Whether `id` is in `mask` and due at `now`. The engine asks for each id in order, after the
   * handlers of the earlier ones ran (a handler may move a later deadline).
   */
  due(id: number, now: number, mask: number): boolean {
    return (mask & (1 << id)) !== 0 && now >= this.at[id]!;
  }
}
