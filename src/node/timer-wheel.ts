/**
 * A process-wide coarse timer: every connection's deadline goes into a bucket, and one Node timer
 * fires each bucket in turn. Thousands of idle connections then wake the process a few dozen
 * times a second in all, each wake serving a batch of them, instead of once per connection and
 * per heartbeat (each with its own event-loop iteration and, over loopback, its own wake-up of
 * the peer process).
 *
 * A timer states how late it may fire (`slack`, from `Engine.timerSlack`): its bucket is its
 * deadline rounded up to a multiple of the largest power of two not above the slack, so timers
 * of equal slack share buckets. Timers never fire early (by this process's clock).
 * @module
 */
import { performance } from 'node:perf_hooks';

/** Where the wheel gets time and its one underlying timer; replaceable in tests. */
export interface TimerSource {
  /** Monotonic time, ms. */
  now(): number;
  /** Call `fn` after `delayMs` (≥ 0). */
  set(delayMs: number, fn: () => void): unknown;
  clear(handle: unknown): void;
}

const nodeSource: TimerSource = {
  now: () => performance.now(),
  set: (delayMs, fn) => setTimeout(fn, delayMs),
  clear: (handle) => clearTimeout(handle as NodeJS.Timeout),
};

/** Largest bucket width, ms, whatever the slack. */
export const MAX_QUANTUM_MS = 64;

/** Bucket sentinels kept for reuse: enough for every 64 ms bucket of a 60 s horizon. */
const MAX_SPARE_SENTINELS = 1024;

/** A node of a bucket's circular list: a timer, or the bucket's sentinel. */
class Link {
  next: Link = this;
  prev: Link = this;
}

/** One timer of a {@link TimerWheel}; re-armed with `schedule`, reused for its owner's lifetime. */
export class WheelTimer extends Link {
  /** The deadline it was scheduled for, or `+∞` when not armed. */
  deadline = Number.POSITIVE_INFINITY;
  /** The bucket it sits in (the time it fires), or `+∞`. */
  firesAt = Number.POSITIVE_INFINITY;

  constructor(readonly callback: () => void) {
    super();
  }

  get armed(): boolean {
    return this.firesAt !== Number.POSITIVE_INFINITY;
  }
}

/** The bucket width for a timer that may fire `slack` ms late: a power of two in [1, 64]. */
export function quantumFor(slack: number): number {
  if (slack >= MAX_QUANTUM_MS) return MAX_QUANTUM_MS;
  let q = 1;
  while (q * 2 <= slack) q *= 2;
  return q;
}

/** A set of coarse timers served by one underlying timer. */
export class TimerWheel {
  private readonly buckets = new Map<number, Link>();
  /** Min-heap of bucket times; may hold times whose bucket has gone (skipped lazily). */
  private readonly heap: number[] = [];
  /** Sentinels of fired or emptied buckets, for reuse. */
  private readonly spare: Link[] = [];
  private handle: unknown;
  private armedAt = Number.POSITIVE_INFINITY;
  /** True while `fire` runs callbacks: it arms the underlying timer once, at the end. */
  private firing = false;
  /** Underlying timer firings so far (diagnostics and tests). */
  wakeups = 0;

  constructor(private readonly source: TimerSource = nodeSource) {}

  /** The wheel's clock (monotonic, ms): deadlines are on this scale. */
  now(): number {
    return this.source.now();
  }

  /** Timers armed. */
  get size(): number {
    let n = 0;
    for (const sentinel of this.buckets.values()) for (let l = sentinel.next; l !== sentinel; l = l.next) n++;
    return n;
  }

  /** Arm (or move) `timer` to fire at `deadline` or at most `slack` ms after it. */
  schedule(timer: WheelTimer, deadline: number, slack: number): void {
    const q = quantumFor(slack);
    const at = Math.ceil(deadline / q) * q;
    timer.deadline = deadline;
    if (timer.firesAt === at) return;
    if (timer.armed) this.unlink(timer);
    let sentinel = this.buckets.get(at);
    if (sentinel === undefined) {
      // Reused sentinels are old-generation objects: linking timers (old) to them then costs no
      // write barrier, and the young generation holds nothing that lives for seconds.
      sentinel = this.spare.pop() ?? new Link();
      this.buckets.set(at, sentinel);
      this.push(at);
    }
    timer.prev = sentinel.prev;
    timer.next = sentinel;
    sentinel.prev.next = timer;
    sentinel.prev = timer;
    timer.firesAt = at;
    if (at < this.armedAt && !this.firing) this.arm(at);
  }

  /** Disarm `timer` (harmless when not armed). */
  cancel(timer: WheelTimer): void {
    if (timer.armed) this.unlink(timer);
    timer.deadline = Number.POSITIVE_INFINITY;
  }

  private unlink(timer: WheelTimer): void {
    const at = timer.firesAt;
    timer.prev.next = timer.next;
    timer.next.prev = timer.prev;
    timer.next = timer;
    timer.prev = timer;
    timer.firesAt = Number.POSITIVE_INFINITY;
    // An emptied bucket goes (its heap entry is skipped when it comes up), and the underlying
    // timer moves on if it was armed for that bucket.
    const sentinel = this.buckets.get(at);
    if (sentinel !== undefined && sentinel.next === sentinel) {
      this.buckets.delete(at);
      this.recycle(sentinel);
      if (at === this.armedAt && !this.firing) {
        this.skipStale();
        if (this.heap.length > 0) this.arm(this.heap[0]!);
      }
    }
  }

  /** Fire every bucket that is due; timers scheduled meanwhile for a due time wait for the next pass. */
  private fire = (): void => {
    this.handle = undefined;
    this.armedAt = Number.POSITIVE_INFINITY;
    this.wakeups++;
    const now = this.source.now();
    const due: Link[] = [];
    while (this.heap.length > 0 && this.heap[0]! <= now) {
      const at = this.pop();
      const sentinel = this.buckets.get(at);
      if (sentinel === undefined) continue;
      this.buckets.delete(at);
      due.push(sentinel);
    }
    this.firing = true;
    let failed = false;
    let failure: unknown;
    for (const sentinel of due) {
      // A callback may cancel or re-arm any timer, this bucket's included: always take the head.
      for (let link = sentinel.next; link !== sentinel; link = sentinel.next) {
        const timer = link as WheelTimer;
        sentinel.next = timer.next;
        timer.next.prev = sentinel;
        timer.next = timer;
        timer.prev = timer;
        timer.firesAt = Number.POSITIVE_INFINITY;
        timer.deadline = Number.POSITIVE_INFINITY;
        try {
          timer.callback();
        } catch (error) {
          // Thrown once the batch is served, like an exception from a setTimeout callback.
          if (!failed) failure = error;
          failed = true;
        }
      }
      this.recycle(sentinel);
    }
    this.firing = false;
    this.skipStale();
    if (this.heap.length > 0) this.arm(this.heap[0]!);
    if (failed) throw failure;
  };

  private recycle(sentinel: Link): void {
    if (this.spare.length < MAX_SPARE_SENTINELS) this.spare.push(sentinel);
  }

  private arm(at: number): void {
    if (this.handle !== undefined) this.source.clear(this.handle);
    this.armedAt = at;
    this.handle = this.source.set(Math.max(0, Math.ceil(at - this.source.now())), this.fire);
  }

  private skipStale(): void {
    while (this.heap.length > 0 && !this.buckets.has(this.heap[0]!)) this.pop();
    if (this.heap.length === 0 && this.handle !== undefined) {
      this.source.clear(this.handle);
      this.handle = undefined;
      this.armedAt = Number.POSITIVE_INFINITY;
    }
  }

  private push(at: number): void {
    const heap = this.heap;
    let i = heap.length;
    heap.push(at);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (heap[parent]! <= at) break;
      heap[i] = heap[parent]!;
      i = parent;
    }
    heap[i] = at;
  }

  private pop(): number {
    const heap = this.heap;
    const top = heap[0]!;
    const last = heap.pop()!;
    if (heap.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= heap.length) break;
        const r = l + 1;
        const c = r < heap.length && heap[r]! < heap[l]! ? r : l;
        if (heap[c]! >= last) break;
        heap[i] = heap[c]!;
        i = c;
      }
      heap[i] = last;
    }
    return top;
  }
}

let shared: TimerWheel | undefined;

/** The process-wide wheel that connections use. */
export function sharedWheel(): TimerWheel {
  shared ??= new TimerWheel();
  return shared;
}
