/**
 * A memory budget shared by the receive windows of many connections (SPEC.md §7, "Shared memory").
 * @module
 */
import type { MemoryBudget } from './types.js';

/**
 * Capacity of the budget a server creates when given none (256 MiB): with the default 64 KiB
 * initial window, the receive windows of 10 000 connections then hold at most
 * 10 000 × 64 KiB + 256 MiB ≈ 881 MiB of credit.
 */
export const DEFAULT_SERVER_MEMORY_BUDGET = 256 * 1024 * 1024;
/** Default pin time after which an incomplete message is cut while memory is short (ms). */
export const DEFAULT_PIN_TIMEOUT_MS = 1000;
/** A refusal for lack of capacity counts as memory pressure for this long (ms). */
const PRESSURE_HOLD_MS = 1000;

/** Options of a {@link SharedMemoryBudget}. */
export interface SharedMemoryBudgetOptions {
  /**
   * Most bytes one connection may reserve. Default a quarter of the capacity. A connection whose
   * share is capped announces a `max_message_size` that fits its initial window plus this share.
   */
  maxShare?: number;
  /**
   * While memory is short (a reservation was refused for lack of capacity in the last second), an
   * incomplete message that made no progress for this long in all, although its sender had credit
   * for its next frame, is cut: the connection fails with `ENHANCE_YOUR_CALM`. Default 1 000 ms.
   */
  pinTimeout?: number;
}

/**
 * A fixed pool of bytes that receive windows grow into, shared fairly:
 *
 * - every connection keeps its initial window for itself (the guaranteed minimum, not taken from
 *   the pool), so the sum of all windows never exceeds `connections × initialWindow + capacity`;
 * - one connection reserves at most `maxShare` of the pool;
 * - while the pool is exhausted, a connection whose incomplete message pins its reservation
 *   without progress for `pinTimeout` is cut (`ENHANCE_YOUR_CALM`), so that peers holding
 *   unfinished messages cannot starve the others; connections waiting for room retry.
 */
export class SharedMemoryBudget implements MemoryBudget {
  private used = 0;
  private deniedAt = Number.NEGATIVE_INFINITY;
  /** Most bytes one connection may reserve. */
  readonly maxShare: number;
  /** See {@link SharedMemoryBudgetOptions.pinTimeout}. */
  readonly pinTimeoutMs: number;

  /**
   * @param capacity Bytes available for window growth across all connections.
   * @param options Per-connection cap and pin timeout.
   */
  constructor(
    readonly capacity: number,
    options: SharedMemoryBudgetOptions = {},
  ) {
    if (!Number.isFinite(capacity) || capacity < 0)
      throw new RangeError('heartwire: budget capacity must be ≥ 0');
    const maxShare = options.maxShare ?? capacity / 4;
    if (!(maxShare >= 0)) throw new RangeError('heartwire: budget maxShare must be ≥ 0');
    const pinTimeout = options.pinTimeout ?? DEFAULT_PIN_TIMEOUT_MS;
    if (!Number.isFinite(pinTimeout) || pinTimeout <= 0)
      throw new RangeError('heartwire: budget pinTimeout must be a finite number > 0');
    this.maxShare = Math.floor(Math.min(maxShare, capacity));
    this.pinTimeoutMs = pinTimeout;
  }

  /** Bytes currently reserved. */
  get reserved(): number {
    return this.used;
  }

  reserve(bytes: number, held = 0, now?: number): number {
    const share = Math.max(0, this.maxShare - held);
    const free = this.capacity - this.used;
    if (free < bytes && free < share && now !== undefined) this.deniedAt = now;
    const granted = Math.max(0, Math.min(bytes, free, share));
    this.used += granted;
    return granted;
  }

  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }

  underPressure(now: number): boolean {
    return now - this.deniedAt < PRESSURE_HOLD_MS;
  }
}
