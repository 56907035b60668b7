/**
 * A virtual clock for deterministic tests: time moves only when the test says so, and timers
 * fire in a fixed order. No real time is involved.
 * @module
 */

/** Identifies a timer set with {@link VirtualClock.setTimer}. */
export type TimerId = number;

/** Options of a {@link VirtualClock}. */
export interface VirtualClockOptions {
  /** Time the clock starts at, in ms. Default 0. */
  start?: number;
  /**
   * Runaway-loop guard: the clock throws when more than this many timers fire at one instant
   * (for example an engine whose deadline never moves past `now`). Default 100 000.
   */
  maxTimersPerInstant?: number;
  /** Called whenever a timer is set (a driver waiting for work wakes up). */
  onTimerSet?: () => void;
}

interface Timer {
  readonly id: TimerId;
  readonly at: number;
  readonly fn: () => void;
}

/**
 * A virtual clock with one-shot timers.
 *
 * - Time never goes backwards and moves only through {@link advanceTo}, {@link advanceBy} and
 *   {@link runUntil}. While a timer fires, {@link now} is the time the timer was set for.
 * - Timers due at the same time fire in the order they were set. A callback may set more timers,
 *   including at the current instant (they fire after the timers already due at that instant).
 * - A timer set in the past fires at the current time.
 *
 * @example
 * ```ts
 * import { VirtualClock } from 'heartwire/testing';
 *
 * const clock = new VirtualClock();
 * clock.setTimer(100, () => console.log('fired at', clock.now)); // → fired at 100
 * clock.advanceBy(150);
 * console.log('now', clock.now); // → now 150
 * ```
 */
export class VirtualClock {
  #now: number;
  readonly #maxPerInstant: number;
  /** Binary min-heap ordered by (at, id); cancelled timers are removed lazily. */
  readonly #heap: Timer[] = [];
  readonly #live = new Map<TimerId, Timer>();
  #nextId = 1;
  #running = false;
  #instant = Number.NaN;
  #firedAtInstant = 0;
  #fired = 0;
  readonly #onTimerSet: (() => void) | undefined;

  constructor(options: VirtualClockOptions = {}) {
    this.#now = options.start ?? 0;
    this.#maxPerInstant = options.maxTimersPerInstant ?? 100_000;
    this.#onTimerSet = options.onTimerSet;
    if (!Number.isFinite(this.#now)) throw new RangeError('VirtualClock: start must be finite');
  }

  /** The current virtual time, in ms. */
  get now(): number {
    return this.#now;
  }

  /** Number of timers fired so far. */
  get firedTimers(): number {
    return this.#fired;
  }

  /** Number of timers set and not yet fired or cancelled. */
  get pendingTimers(): number {
    return this.#live.size;
  }

  /**
   * Calls `fn` when the clock reaches `at` (absolute time, ms). A time in the past means "now".
   * Returns an id for {@link cancel}.
   */
  setTimer(at: number, fn: () => void): TimerId {
    if (!Number.isFinite(at)) throw new RangeError(`VirtualClock.setTimer: time must be finite, got ${at}`);
    const timer: Timer = { id: this.#nextId++, at: Math.max(at, this.#now), fn };
    this.#live.set(timer.id, timer);
    this.#push(timer);
    this.#onTimerSet?.();
    return timer.id;
  }

  /** Cancels a timer. Returns false if it had already fired or been cancelled. */
  cancel(id: TimerId): boolean {
    return this.#live.delete(id);
  }

  /** Time of the earliest pending timer, or `undefined` if there is none. */
  nextTimerAt(): number | undefined {
    return this.#peek()?.at;
  }

  /**
   * Moves time forward to `t`, firing every timer due at or before `t` in order (including
   * timers that callbacks set on the way). Throws if `t` is before {@link now}.
   */
  advanceTo(t: number): void {
    if (!(t >= this.#now)) throw new RangeError(`VirtualClock: cannot move from ${this.#now} to ${t}`);
    this.#run(() => {
      for (let next = this.#peek(); next !== undefined && next.at <= t; next = this.#peek()) this.#fire(next);
      this.#now = t;
    });
  }

  /** Moves time forward by `ms` (≥ 0). See {@link advanceTo}. */
  advanceBy(ms: number): void {
    this.advanceTo(this.#now + ms);
  }

  /**
   * Fires timers in order until `predicate()` returns true (checked before the first timer and
   * after each one) or until `limitMs` have passed. Returns whether the predicate became true;
   * on success the clock stays at the time of the timer that satisfied it, otherwise it ends at
   * `now + limitMs`.
   */
  runUntil(predicate: () => boolean, limitMs: number): boolean {
    const end = this.#now + limitMs;
    if (!(end >= this.#now)) throw new RangeError(`VirtualClock.runUntil: bad limit ${limitMs}`);
    let satisfied = false;
    this.#run(() => {
      satisfied = predicate();
      for (let next = this.#peek(); !satisfied && next !== undefined && next.at <= end; next = this.#peek()) {
        this.#fire(next);
        satisfied = predicate();
      }
      if (!satisfied) this.#now = end;
    });
    return satisfied;
  }

  #run(body: () => void): void {
    if (this.#running) throw new Error('VirtualClock: cannot advance time from inside a timer callback');
    this.#running = true;
    try {
      body();
    } finally {
      this.#running = false;
    }
  }

  #fire(timer: Timer): void {
    this.#pop();
    this.#live.delete(timer.id);
    this.#now = timer.at;
    this.#fired++;
    if (timer.at === this.#instant) {
      if (++this.#firedAtInstant > this.#maxPerInstant) {
        throw new Error(
          `VirtualClock: more than ${this.#maxPerInstant} timers fired at t=${timer.at} (runaway timer loop?)`,
        );
      }
    } else {
      this.#instant = timer.at;
      this.#firedAtInstant = 1;
    }
    timer.fn();
  }

  /** Earliest live timer, discarding cancelled ones from the top of the heap. */
  #peek(): Timer | undefined {
    const heap = this.#heap;
    while (heap.length > 0 && this.#live.get(heap[0].id) !== heap[0]) this.#pop();
    return heap[0];
  }

  static #before(a: Timer, b: Timer): boolean {
    return a.at < b.at || (a.at === b.at && a.id < b.id);
  }

  #push(timer: Timer): void {
    const heap = this.#heap;
    let i = heap.push(timer) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!VirtualClock.#before(heap[i], heap[parent])) break;
      [heap[i], heap[parent]] = [heap[parent], heap[i]];
      i = parent;
    }
  }

  #pop(): void {
    const heap = this.#heap;
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    for (let i = 0; ;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < heap.length && VirtualClock.#before(heap[l], heap[m])) m = l;
      if (r < heap.length && VirtualClock.#before(heap[r], heap[m])) m = r;
      if (m === i) break;
      [heap[i], heap[m]] = [heap[m], heap[i]];
      i = m;
    }
  }
}
