/**
 * The data path of a `FaultProxy`: one direction of one proxied connection, which reads
 * its source socket and writes its destination as the current faults allow (internal).
 * @module
 */
import type { Socket } from 'node:net';
import type { FaultDirection } from './fault-proxy-types.js';

export const DIRECTIONS: readonly FaultDirection[] = ['client-to-server', 'server-to-client'];
/** Under a bandwidth cap, each write carries at most this much time's worth of bytes. */
const BANDWIDTH_QUANTUM_MS = 20;

/** Fault settings of one direction, and its byte counters. */
export interface DirectionFaults {
  blackholed: boolean;
  latencyMs: number;
  bytesPerSecond: number | undefined;
  maxChunkBytes: number | undefined;
  forwardedBytes: number;
  discardedBytes: number;
}

/** Fault settings of one direction with no fault on. */
export function noFaults(): DirectionFaults {
  return {
    blackholed: false,
    latencyMs: 0,
    bytesPerSecond: undefined,
    maxChunkBytes: undefined,
    forwardedBytes: 0,
    discardedBytes: 0,
  };
}

/** The direction opposite `direction`. */
export function reverse(direction: FaultDirection): FaultDirection {
  return direction === 'client-to-server' ? 'server-to-client' : 'client-to-server';
}

/** Sends RST to the peer and destroys the socket; never throws. */
export function resetSocket(socket: Socket): void {
  if (socket.destroyed) return;
  try {
    socket.resetAndDestroy();
  } catch {
    socket.destroy();
  }
}

/** What every pipe of a proxy shares: the faults of both directions and the proxy's state. */
export interface PipeContext {
  readonly faults: Readonly<Record<FaultDirection, DirectionFaults>>;
  /** See `FaultProxyOptions.maxQueuedBytes`. */
  readonly maxQueuedBytes: number;
  /** The proxy is closing: nothing is written any more. */
  closing(): boolean;
}

interface QueuedChunk {
  data: Buffer;
  offset: number;
  /** `performance.now()` value before which the chunk must not be written (latency). */
  readyAt: number;
}

/** One direction of one connection: reads `source`, writes `dest`. */
export class Pipe {
  readonly direction: FaultDirection;
  readonly source: Socket;
  /** Null for a connection held since a black hole: its bytes go nowhere. */
  readonly dest: Socket | null;
  readonly #context: PipeContext;
  readonly #faults: DirectionFaults;
  readonly #queue: QueuedChunk[] = [];
  /** Bytes read and not yet forwarded. */
  queuedBytes = 0;
  /** The source sent FIN. */
  #sourceEnded = false;
  /** We called `dest.end()`. */
  #endForwarded = false;
  /** `performance.now()` value before which the bandwidth cap allows no further write. */
  #nextSendAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #immediate: NodeJS.Immediate | undefined;
  /** We paused `source` because the queue is over the cap. */
  #pausedForBackpressure = false;

  /** Creates the pipe and attaches the listeners that move data through it. */
  constructor(direction: FaultDirection, source: Socket, dest: Socket | null, context: PipeContext) {
    this.direction = direction;
    this.source = source;
    this.dest = dest;
    this.#context = context;
    const faults = context.faults[direction];
    this.#faults = faults;
    source.on('data', (chunk: Buffer) => {
      if (faults.blackholed || dest === null) {
        faults.discardedBytes += chunk.length;
        return;
      }
      this.#queue.push({ data: chunk, offset: 0, readyAt: performance.now() + faults.latencyMs });
      this.queuedBytes += chunk.length;
      this.updateFlow();
      this.pump();
    });
    source.on('end', () => {
      this.#sourceEnded = true;
      this.pump();
    });
    dest?.on('drain', () => this.pump());
    // When the destination closes, data still queued for it must be dealt with.
    dest?.on('close', () => this.pump());
  }

  cancelTimers(): void {
    if (this.#timer) clearTimeout(this.#timer);
    if (this.#immediate) clearImmediate(this.#immediate);
    this.#timer = undefined;
    this.#immediate = undefined;
  }

  discardQueue(): void {
    this.#faults.discardedBytes += this.queuedBytes;
    this.#queue.length = 0;
    this.queuedBytes = 0;
  }

  /** Cancels the timers and discards the queue. */
  drop(): void {
    this.cancelTimers();
    this.discardQueue();
  }

  /** Pauses or resumes reading the source: backpressure, except during a black hole. */
  updateFlow(): void {
    const shouldPause = !this.#faults.blackholed && this.queuedBytes > this.#context.maxQueuedBytes;
    if (shouldPause && !this.#pausedForBackpressure) {
      this.#pausedForBackpressure = true;
      this.source.pause();
    } else if (!shouldPause && this.#pausedForBackpressure) {
      this.#pausedForBackpressure = false;
      if (!this.source.destroyed) this.source.resume();
    }
  }

  /** Writes whatever the faults allow now, and schedules the rest. */
  pump(): void {
    if (this.#timer || this.#immediate || this.#context.closing()) return;
    const faults = this.#faults;
    const dest = this.dest;
    if (dest === null || faults.blackholed) return;
    for (;;) {
      if (dest.destroyed) {
        if (this.queuedBytes > 0) {
          // Data for a closed peer: its kernel would answer with RST (lost if the way back
          // is black-holed).
          this.discardQueue();
          this.updateFlow();
          if (!this.#context.faults[reverse(this.direction)].blackholed) resetSocket(this.source);
        }
        return;
      }
      const head = this.#queue[0];
      if (head === undefined) {
        if (this.#sourceEnded && !this.#endForwarded) {
          this.#endForwarded = true;
          dest.end();
        }
        return;
      }
      if (dest.writableNeedDrain) return; // 'drain' pumps again
      const now = performance.now();
      const rate = faults.bytesPerSecond;
      const waitUntil = Math.max(head.readyAt, rate === undefined ? 0 : this.#nextSendAt);
      if (waitUntil > now) {
        this.#timer = setTimeout(
          () => {
            this.#timer = undefined;
            this.pump();
          },
          Math.max(1, Math.ceil(waitUntil - now)),
        );
        return;
      }
      let size = head.data.length - head.offset;
      if (faults.maxChunkBytes !== undefined) size = Math.min(size, faults.maxChunkBytes);
      if (rate !== undefined) {
        size = Math.min(size, Math.max(1, Math.floor((rate * BANDWIDTH_QUANTUM_MS) / 1000)));
        this.#nextSendAt = Math.max(now, this.#nextSendAt) + (size * 1000) / rate;
      }
      const chunk = head.data.subarray(head.offset, head.offset + size);
      head.offset += size;
      if (head.offset >= head.data.length) this.#queue.shift();
      this.queuedBytes -= size;
      faults.forwardedBytes += size;
      dest.write(chunk);
      this.updateFlow();
      if (faults.maxChunkBytes !== undefined) {
        this.#immediate = setImmediate(() => {
          this.#immediate = undefined;
          this.pump();
        });
        return;
      }
    }
  }
}
