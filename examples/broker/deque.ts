/**
 * A double-ended queue on a growable ring buffer: O(1) `push`, `shift` and `unshift`
 * (`Array.prototype.shift` is O(n) on large arrays).
 * @module
 */

/** A FIFO that can also put items back at its head. */
export class Deque<T> implements Iterable<T> {
  private items: (T | undefined)[] = new Array(16);
  private head = 0;
  private size = 0;

  /** Number of items. */
  get length(): number {
    return this.size;
  }

  /** Add at the tail. */
  push(item: T): void {
    if (this.size === this.items.length) this.grow();
    this.items[(this.head + this.size) % this.items.length] = item;
    this.size++;
  }

  /** Add at the head. */
  unshift(item: T): void {
    if (this.size === this.items.length) this.grow();
    this.head = (this.head - 1 + this.items.length) % this.items.length;
    this.items[this.head] = item;
    this.size++;
  }

  /** Remove from the head. */
  shift(): T | undefined {
    if (this.size === 0) return undefined;
    const item = this.items[this.head];
    this.items[this.head] = undefined;
    this.head = (this.head + 1) % this.items.length;
    this.size--;
    return item;
  }

  /** Head to tail. */
  *[Symbol.iterator](): Iterator<T> {
    for (let i = 0; i < this.size; i++) yield this.items[(this.head + i) % this.items.length]!;
  }

  private grow(): void {
    this.items = [...this, ...new Array<T | undefined>(this.items.length)];
    this.head = 0;
  }
}
