/**
 * The path model of the simulations: one direction of a TCP connection as a bounded send buffer
 * drained at a bandwidth, a latency, random segmentation and in-order delivery, with lossless
 * partitions (held segments are resent on heal). Shared by {@link SimulatedNetwork} (engines) and
 * {@link Simulation} (connections and applications).
 * @module
 */
import type { VirtualClock, TimerId } from './clock.js';

/** Model of one direction of a TCP path. Times in ms, sizes in bytes. */
export interface PathParams {
  /** One-way delay from leaving the send buffer to arriving at the receiver. ≥ 0. */
  latencyMs: number;
  /** Rate at which bytes leave the sender's kernel send buffer, in bytes/ms (> 0; `Infinity` = no cap). */
  bandwidthBytesPerMs: number;
  /**
   * Capacity of the sender's kernel send buffer. The simulation passes the free room as
   * `maxDataBytes` to `pollTransmit`; control frames are always accepted, so the buffer may
   * exceed this by the size of the control frames.
   */
  sendBufferBytes: number;
  /** Largest segment delivered in one `receive` call; segment sizes are random in [1, this]. */
  maxChunkBytes: number;
}

/** Path parameters used when none are given: 5 ms, 1000 bytes/ms (8 Mbit/s), 64 KiB buffer, 1460-byte segments. */
export const DEFAULT_PATH_PARAMS: Readonly<PathParams> = Object.freeze({
  latencyMs: 5,
  bandwidthBytesPerMs: 1000,
  sendBufferBytes: 65_536,
  maxChunkBytes: 1460,
});

/** Which directions a partition affects. */
export type PartitionDirection = 'both' | 'client-to-server' | 'server-to-client';

/**
 * How a crash looks to the peer:
 * - `none`: the machine died. Nothing more is sent (unsent bytes are lost), nothing is
 *   acknowledged, no FIN or reset ever arrives; the peer's bytes pile up in its send buffer.
 * - `fin`: the process was killed and its kernel closed the socket: the bytes already in the
 *   send buffer still go out, then FIN. Bytes arriving afterwards are answered with a reset.
 * - `reset`: the socket was reset: unsent bytes are discarded and the peer receives a reset
 *   (`transportFailed`) after the bytes already in flight.
 */
export type CrashMode = 'none' | 'fin' | 'reset';

/** Throws a `RangeError` for invalid parameters; returns them otherwise. */
export function checkPathParams(p: PathParams): PathParams {
  const ok =
    p.latencyMs >= 0 &&
    Number.isFinite(p.latencyMs) &&
    p.bandwidthBytesPerMs > 0 &&
    p.sendBufferBytes >= 1 &&
    Number.isInteger(p.maxChunkBytes) &&
    p.maxChunkBytes >= 1;
  if (!ok) throw new RangeError(`invalid path parameters ${JSON.stringify(p)}`);
  return p;
}

/** What travels on a path: bytes, a FIN or a reset. */
export type Segment =
  { kind: 'data'; bytes: Uint8Array; arrival: number } | { kind: 'fin' | 'rst'; arrival: number };

/** Random segment size in [1, max], biased towards tiny segments. */
export function segmentSize(random: () => number, max: number): number {
  const r = random();
  const bound = r < 0.15 ? 1 : r < 0.35 ? Math.min(max, 16) : max;
  return 1 + Math.floor(random() * bound);
}

/**
 * One direction of a simulated TCP connection: bytes written go into the send buffer, leave it in
 * random-sized segments at the bandwidth, and arrive in order one latency later (`onArrive`).
 * A partition freezes the direction (nothing lost); on heal, held segments arrive one latency
 * later. `onDepart` is called whenever bytes left the buffer (the sender may write more).
 */
export class PathDirection {
  params: PathParams;
  #chunks: Uint8Array[] = [];
  #offset = 0;
  /** Bytes in the send buffer, not yet sent. */
  buffered = 0;
  finQueued = false;
  finSent = false;
  #serializing: TimerId | undefined;
  #flight: Segment[] = [];
  #deliveryTimer: TimerId | undefined;
  partitioned = false;
  /** The receiver died silently: nothing is acknowledged or delivered, ever. */
  blackholed = false;
  bytesWritten = 0;

  /**
   * `onArrive` gets each segment as it arrives; `onDepart` is called after bytes left the send
   * buffer. With `batch`, segments due at the same time arrive in one timer callback (the engine
   * simulation's behaviour); without, each in its own (each a task of the virtual event loop).
   */
  constructor(
    params: PathParams,
    private readonly clock: VirtualClock,
    private readonly random: () => number,
    private readonly onArrive: (segment: Segment) => void,
    private readonly onDepart: () => void,
    private readonly batch = false,
  ) {
    this.params = checkPathParams(params);
  }

  get stalled(): boolean {
    return this.partitioned || this.blackholed;
  }

  /** Segments that left the sender and have not arrived. */
  get inFlight(): number {
    return this.#flight.length;
  }

  /** Puts bytes into the send buffer (kept as given: copy them if the caller reuses them). */
  write(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    this.#chunks.push(bytes);
    this.buffered += bytes.length;
    this.bytesWritten += bytes.length;
    this.kick();
  }

  /** FIN after the buffered bytes. */
  end(): void {
    if (this.finQueued) return;
    this.finQueued = true;
    this.kick();
  }

  /** Drops the unsent contents of the send buffer (and a FIN not yet sent). */
  discard(): void {
    if (this.#serializing !== undefined) this.clock.cancel(this.#serializing);
    this.#serializing = undefined;
    this.#chunks = [];
    this.#offset = 0;
    this.buffered = 0;
    this.finQueued = this.finSent;
  }

  /** Discards what is unsent and sends a reset after what is in flight. */
  reset(): void {
    this.discard();
    this.#enqueue({ kind: 'rst', arrival: 0 });
  }

  /** Segments in flight that were sent before now are lost (the sender died during a partition). */
  dropHeld(): void {
    const now = this.clock.now;
    this.#flight = this.#flight.filter((seg) => seg.arrival > now);
  }

  setPartitioned(partitioned: boolean): void {
    if (this.partitioned === partitioned) return;
    this.partitioned = partitioned;
    if (partitioned) return;
    const now = this.clock.now;
    for (const seg of this.#flight) if (seg.arrival <= now) seg.arrival = now + this.params.latencyMs;
    this.#armDelivery();
    this.kick();
  }

  setParams(params: Partial<PathParams>): void {
    this.params = checkPathParams({ ...this.params, ...params });
    this.kick();
  }

  /** Starts sending the next segment (or the FIN) if the path is free. */
  kick(): void {
    if (this.#serializing !== undefined || this.stalled) return;
    if (this.buffered > 0) {
      const size = Math.min(this.buffered, segmentSize(this.random, this.params.maxChunkBytes));
      const rate = this.params.bandwidthBytesPerMs;
      const at = this.clock.now + (rate === Infinity ? 0 : size / rate);
      this.#serializing = this.clock.setTimer(at, () => this.#depart(size));
    } else if (this.finQueued && !this.finSent) {
      this.finSent = true;
      this.#enqueue({ kind: 'fin', arrival: 0 });
    }
  }

  #take(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let filled = 0; filled < n;) {
      const chunk = this.#chunks[0]!;
      const k = Math.min(n - filled, chunk.length - this.#offset);
      out.set(chunk.subarray(this.#offset, this.#offset + k), filled);
      filled += k;
      this.#offset += k;
      if (this.#offset === chunk.length) {
        this.#chunks.shift();
        this.#offset = 0;
      }
    }
    this.buffered -= n;
    return out;
  }

  #depart(size: number): void {
    this.#serializing = undefined;
    if (this.stalled) return; // held in the buffer until the partition heals
    this.#enqueue({ kind: 'data', bytes: this.#take(size), arrival: 0 });
    this.kick();
    this.onDepart();
  }

  #enqueue(seg: Segment): void {
    seg.arrival = this.clock.now + this.params.latencyMs;
    this.#flight.push(seg);
    if (this.#flight.length === 1) this.#armDelivery();
  }

  #armDelivery(): void {
    if (this.#deliveryTimer !== undefined) this.clock.cancel(this.#deliveryTimer);
    this.#deliveryTimer = undefined;
    if (this.#flight.length === 0 || this.stalled) return;
    this.#deliveryTimer = this.clock.setTimer(this.#flight[0]!.arrival, () => {
      this.#deliveryTimer = undefined;
      const now = this.clock.now;
      // Stalled meanwhile (a partition): held until the heal re-arms delivery.
      while (this.#flight.length > 0 && this.#flight[0]!.arrival <= now && !this.stalled) {
        this.onArrive(this.#flight.shift()!);
        if (!this.batch) break;
      }
      this.#armDelivery();
    });
  }
}
