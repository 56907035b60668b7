/**
 * The one FIFO of the engine: send queue, inbox, taken messages, control frames, events.
 * @module
 */

/** Capacity of a ring's first allocation, and the capacity from which an emptied ring drops it. */
const RING_MIN_CAPACITY = 16;
const RING_SHRINK_CAPACITY = 1024;
/**
 * The storage of every ring that holds nothing yet (never written: a push grows the ring first), so
 * that an idle connection's rings cost no arrays. Each has the elements kind of the arrays `grow`
 * makes (items: any value; weights: small integers), so the hot path sees one array map.
 */
const NO_ITEMS: never[] = emptyOfKind<never>(undefined as never);
const NO_WEIGHTS: number[] = emptyOfKind(0);

function emptyOfKind<T>(filler: T): T[] {
  const array = new Array<T>(1).fill(filler);
  array.length = 0;
  return array;
}

/**
 * A FIFO on a power-of-two ring: O(1) push, shift and indexed access, no copying in steady
 * state. Capacity doubles as needed and returns to the minimum when the queue empties. In a
 * weighted ring each item carries a number (the inbox keeps each message's credit cost there), so
 * a queue of pairs needs no object per item; other rings keep no weights.
 */
export class Ring<T> {
  private items: (T | undefined)[] = NO_ITEMS;
  /** The weight of each item, in a weighted ring (`NO_WEIGHTS` until the first push), else undefined. */
  private weights: number[] | undefined;
  /** Weight of the item `shift()` returned last. */
  shiftedWeight = 0;
  private head = 0;
  private size = 0;
  /** Capacity − 1 (capacities are powers of two); −1 while the ring has no storage. */
  private mask = -1;
  /** @param weighted whether items carry a weight (`push(item, weight)`, `shiftedWeight`) */
  constructor(weighted = false) {
    if (weighted) this.weights = NO_WEIGHTS;
  }
  get length(): number {
    return this.size;
  }
  push(item: T, weight = 0): void {
    if (this.size > this.mask) this.grow();
    const at = (this.head + this.size) & this.mask;
    this.items[at] = item;
    const weights = this.weights;
    if (weights !== undefined) weights[at] = weight;
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
    const weights = this.weights;
    if (weights !== undefined) this.shiftedWeight = weights[this.head]!;
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
  /** Drop every item and the storage (the next push allocates the minimum again). */
  clear(): void {
    this.items = NO_ITEMS;
    if (this.weights !== undefined) this.weights = NO_WEIGHTS;
    this.head = 0;
    this.size = 0;
    this.mask = -1;
  }
  toArray(from = 0): T[] {
    const out: T[] = [];
    for (let i = from; i < this.size; i++) out.push(this.items[(this.head + i) & this.mask]!);
    return out;
  }
  private grow(): void {
    const capacity = Math.max(RING_MIN_CAPACITY, (this.mask + 1) * 2);
    const items = new Array<T | undefined>(capacity).fill(undefined);
    for (let i = 0; i < this.size; i++) items[i] = this.items[(this.head + i) & this.mask];
    const old = this.weights;
    if (old !== undefined) {
      const weights = new Array<number>(capacity).fill(0);
      for (let i = 0; i < this.size; i++) weights[i] = old[(this.head + i) & this.mask]!;
      this.weights = weights;
    }
    this.items = items;
    this.head = 0;
    this.mask = capacity - 1;
  }
}
