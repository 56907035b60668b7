/**
 * A memory budget shared by the receive windows of many connections (SPEC.md §7).
 * @module
 */
import type { MemoryBudget } from './types.js';

/**
 * A fixed pool of bytes that receive windows grow into. Each connection keeps its initial
 * window for itself; growth beyond it is reserved here first, so the sum of all windows never
 * exceeds `connections × initialWindow + capacity`.
 */
export class SharedMemoryBudget implements MemoryBudget {
  private used = 0;
  /** @param capacity Bytes available for window growth across all connections. */
  constructor(readonly capacity: number) {
    if (!Number.isFinite(capacity) || capacity < 0)
      throw new RangeError('heartwire: budget capacity must be ≥ 0');
  }
  /** Bytes currently reserved. */
  get reserved(): number {
    return this.used;
  }
  reserve(bytes: number): number {
    const granted = Math.max(0, Math.min(bytes, this.capacity - this.used));
    this.used += granted;
    return granted;
  }
  release(bytes: number): void {
    this.used = Math.max(0, this.used - bytes);
  }
}
