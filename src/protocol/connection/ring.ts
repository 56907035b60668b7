/**
 * The one FIFO of the engine: send queue, inbox, taken messages, control frames, events.
 * @module
 */

/** Smallest ring capacity, and the capacity from which an emptied ring returns to it. */
const RING_MIN_CAPACITY = 16;
const RING_SHRINK_CAPACITY = 1024;

/**
 * A FIFO on a power-of-two ring: O(1) push, shift and indexed access, no copying in steady
 * state. Capacity doubles as needed and returns to the minimum when the queue empties. Each item
 * may carry a number (its weight: the inbox keeps each message's credit cost there), so a queue
 * of pairs needs no object per item.
 */
export class Ring<T> {
  private items: (T | undefined)[] = new Array<T | undefined>(RING_MIN_CAPACITY).fill(undefined);
  private weights: number[] = new Array<number>(RING_MIN_CAPACITY).fill(0);
  /** Weight of the item `shift()` returned last. */
  shiftedWeight = 0;
  private head = 0;
  private size = 0;
  private mask = RING_MIN_CAPACITY - 1;
  get length(): number {
    return this.size;
  }
  push(item: T, weight = 0): void {
    if (this.size > this.mask) this.grow();
    const at = (this.head + this.size) & this.mask;
    this.items[at] = item;
    this.weights[at] = weight;
    this.size++;
  }
  peek(): T | undefined {
    return this.size === 0 ? undefined : this.items[this.head];
  }
  /** The item `index` places from the head (`index < length`). */
  at(index: number): T | undefined {
    return index < this.size ? this.items[(this.head + index) & this.mask] : undefined;
  }
  /** Replace the item `index` places from the head (`index < length`). */
  set(index: number, item: T): void {
    this.items[(this.head + index) & this.mask] = item;
  }
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.shiftedWeight = this.weights[this.head]!;
    this.items[this.head] = undefined;
    this.head = (this.head + 1) & this.mask;
    if (--this.size === 0 && this.mask >= RING_SHRINK_CAPACITY) this.clear();
    return item;
  }
  /** Drop the `count` oldest items (`count <= length`). */
  discard(count: number): void {
    for (let i = 0; i < count; i++) {
      this.items[this.head] = undefined;
      this.head = (this.head + 1) & this.mask;
    }
    this.size -= count;
    if (this.size === 0 && this.mask >= RING_SHRINK_CAPACITY) this.clear();
  }
  clear(): void {
    this.items = new Array<T | undefined>(RING_MIN_CAPACITY).fill(undefined);
    this.weights = new Array<number>(RING_MIN_CAPACITY).fill(0);
    this.head = 0;
    this.size = 0;
    this.mask = RING_MIN_CAPACITY - 1;
  }
  toArray(from = 0): T[] {
    const out: T[] = [];
    for (let i = from; i < this.size; i++) out.push(this.items[(this.head + i) & this.mask]!);
    return out;
  }
  private grow(): void {
    const capacity = (this.mask + 1) * 2;
    const items = new Array<T | undefined>(capacity).fill(undefined);
    const weights = new Array<number>(capacity).fill(0);
    for (let i = 0; i < this.size; i++) {
      const at = (this.head + i) & this.mask;
      items[i] = this.items[at];
      weights[i] = this.weights[at]!;
    }
    this.items = items;
    this.weights = weights;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
