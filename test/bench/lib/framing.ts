/**
 * The bench's own minimal length-prefixed framing over a byte stream: the "practical limit"
 * that heartwire is compared with, also used inside the http2 and yamux streams.
 *
 * Wire format: a 4-byte big-endian header, bits 31–30 the kind (0 data, 1 ping, 2 pong),
 * bits 29–0 the payload length; then the payload. Ping and pong carry a 4-byte sequence number.
 *
 * Sending batches small frames: headers and payloads up to {@link COPY_THRESHOLD} bytes are
 * copied into a recycled 256 KiB buffer that is written in one call (one iovec per batch instead
 * of two per message); larger payloads are written as views (cork + writev), never copied.
 * Receiving hands out zero-copy views for frames inside one chunk and copies a frame exactly once
 * when it spans chunks.
 * @module
 */

/** Frame kinds (top two bits of the header). */
export const Kind = { DATA: 0, PING: 1, PONG: 2 } as const;
export type KindCode = (typeof Kind)[keyof typeof Kind];

/** Header size in bytes. */
export const HEADER_SIZE = 4;
/** Payloads up to this size are copied into the batch buffer. */
export const COPY_THRESHOLD = 2048;
/** Size of one batch buffer. */
export const BATCH_SIZE = 256 * 1024;
const LENGTH_MASK = 0x3fff_ffff;
/** Flushes up to this size are copied out instead of handing over the batch buffer. */
const SMALL_FLUSH = 4096;

/** The part of a `net.Socket`/`Duplex` the writer needs. */
export interface ByteSink {
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  cork(): void;
  uncork(): void;
}

/** Encode one frame into a fresh buffer (header + payload). */
export function encodeFrame(kind: KindCode, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_SIZE + payload.length);
  writeHeader(out, 0, kind, payload.length);
  out.set(payload, HEADER_SIZE);
  return out;
}

function writeHeader(target: Uint8Array, at: number, kind: number, length: number): void {
  const word = ((kind << 30) | length) >>> 0;
  target[at] = word >>> 24;
  target[at + 1] = (word >>> 16) & 0xff;
  target[at + 2] = (word >>> 8) & 0xff;
  target[at + 3] = word & 0xff;
}

/**
 * Batching frame writer. `write()` returns the sink's back-pressure verdict whenever it hands
 * bytes to the sink, `true` otherwise; call `flush()` before yielding to the event loop.
 */
export class BatchWriter {
  private readonly pool: Uint8Array[] = [];
  private batch: Uint8Array;
  private pos = 0;

  constructor(private readonly sink: ByteSink) {
    this.batch = new Uint8Array(BATCH_SIZE);
  }

  /** Queue one frame. Returns false when the caller should wait for the sink's `drain`. */
  write(kind: KindCode, payload: Uint8Array): boolean {
    const length = payload.length;
    if (length <= COPY_THRESHOLD) {
      writeHeader(this.batch, this.pos, kind, length);
      if (length > 0) this.batch.set(payload, this.pos + HEADER_SIZE);
      this.pos += HEADER_SIZE + length;
      // Flush as soon as the largest small frame might no longer fit.
      return this.pos > this.batch.length - HEADER_SIZE - COPY_THRESHOLD ? this.flush() : true;
    }
    this.flush();
    const header = new Uint8Array(HEADER_SIZE);
    writeHeader(header, 0, kind, length);
    this.sink.cork();
    this.sink.write(header);
    const ok = this.sink.write(payload);
    this.sink.uncork();
    return ok;
  }

  /** Hand the current batch to the sink. Returns the sink's verdict (true if nothing to write). */
  flush(): boolean {
    if (this.pos === 0) return true;
    if (this.pos <= SMALL_FLUSH) {
      // A small flush (a ping, the tail of a burst) is copied out, so that it does not pin a
      // whole batch buffer while it waits in the sink's queue.
      const chunk = this.batch.slice(0, this.pos);
      this.pos = 0;
      return this.sink.write(chunk);
    }
    const full = this.batch;
    const chunk = full.subarray(0, this.pos);
    this.batch = this.pool.pop() ?? new Uint8Array(BATCH_SIZE);
    this.pos = 0;
    // The buffer is reused once the sink is done with it.
    return this.sink.write(chunk, () => this.pool.push(full));
  }
}

/** Called for each frame. `payload` is valid until the call returns unless you keep it. */
export type FrameHandler = (kind: number, payload: Uint8Array) => void;

/** Incremental frame parser. */
export class FrameParser {
  private readonly headerScratch = new Uint8Array(HEADER_SIZE);
  private headerFill = 0;
  /** Frame being assembled across chunks. */
  private partial: Uint8Array | undefined;
  private partialFill = 0;
  private partialKind = 0;

  constructor(private readonly onFrame: FrameHandler) {}

  /** Feed one chunk of the byte stream. */
  push(chunk: Uint8Array): void {
    let i = 0;
    const n = chunk.length;
    if (this.partial !== undefined) {
      const need = this.partial.length - this.partialFill;
      const take = Math.min(need, n);
      this.partial.set(chunk.subarray(0, take), this.partialFill);
      this.partialFill += take;
      i = take;
      if (this.partialFill < this.partial.length) return;
      const done = this.partial;
      this.partial = undefined;
      this.onFrame(this.partialKind, done);
    }
    if (this.headerFill > 0) {
      while (this.headerFill < HEADER_SIZE && i < n) this.headerScratch[this.headerFill++] = chunk[i++]!;
      if (this.headerFill < HEADER_SIZE) return;
      this.headerFill = 0;
      const h = this.headerScratch;
      const word = ((h[0]! << 24) | (h[1]! << 16) | (h[2]! << 8) | h[3]!) >>> 0;
      i = this.begin(chunk, i, word >>> 30, word & LENGTH_MASK);
    }
    while (i < n) {
      if (n - i < HEADER_SIZE) {
        while (i < n) this.headerScratch[this.headerFill++] = chunk[i++]!;
        return;
      }
      const word = ((chunk[i]! << 24) | (chunk[i + 1]! << 16) | (chunk[i + 2]! << 8) | chunk[i + 3]!) >>> 0;
      i = this.begin(chunk, i + HEADER_SIZE, word >>> 30, word & LENGTH_MASK);
    }
  }

  /** A header was read; the payload starts at `i`. Returns the index after what was consumed. */
  private begin(chunk: Uint8Array, i: number, kind: number, length: number): number {
    const end = i + length;
    if (end <= chunk.length) {
      this.onFrame(kind, chunk.subarray(i, end));
      return end;
    }
    this.partial = new Uint8Array(length);
    this.partial.set(chunk.subarray(i), 0);
    this.partialFill = chunk.length - i;
    this.partialKind = kind;
    return chunk.length;
  }
}

/** A 4-byte big-endian sequence number payload for ping/pong. */
export function seqPayload(seq: number): Uint8Array {
  const out = new Uint8Array(4);
  writeHeader(out, 0, 0, seq & LENGTH_MASK);
  return out;
}

/** Read the sequence number of a ping/pong payload. */
export function readSeq(payload: Uint8Array): number {
  return ((payload[0]! << 24) | (payload[1]! << 16) | (payload[2]! << 8) | payload[3]!) >>> 0;
}
