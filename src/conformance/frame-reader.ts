/**
 * The conformance runner's framing of a peer's byte stream: the preamble, then frames decoded
 * with the project's codec, each checked against the size we announced.
 * @module
 */
import {
  FRAME_HEADER_SIZE,
  MAX_CONTROL_PAYLOAD,
  MAX_FRAME_PAYLOAD,
  MIN_FRAME_PAYLOAD,
  PREAMBLE,
} from '../protocol/constants.js';
import { HeartwireError } from '../protocol/errors.js';
import type { Frame } from '../protocol/frames.js';
import { concat, decodeOne } from './wire.js';

/** A frame read from the stream, with its type byte, flags and payload length as on the wire. */
export interface ReadFrame {
  frame: Frame;
  type: number;
  flags: number;
  length: number;
}

/**
 * Buffers a peer's bytes and cuts them into frames. {@link next} throws a `HeartwireError`
 * (`PROTOCOL_MISMATCH` for a wrong preamble, `FRAME_TOO_LARGE`, or the codec's) once the stream
 * is invalid; the stream cannot be read further after that.
 */
export class FrameReader {
  /** The peer's preamble was complete and correct. */
  preambleOk = false;
  private chunks: Uint8Array[] = [];
  private buffered = 0;

  /** The role of the side whose bytes are read (named in a bad preamble's error). */
  private readonly peerRole: 'client' | 'server';

  constructor(peerRole: 'client' | 'server') {
    this.peerRole = peerRole;
  }

  /** Appends bytes received. */
  push(chunk: Uint8Array): void {
    this.chunks.push(chunk);
    this.buffered += chunk.length;
  }

  /**
   * The next complete frame, or `undefined` until more bytes arrive. `ourMax` is the largest DATA
   * payload we announced (larger frames are refused before they are buffered whole).
   */
  next(ourMax: number): ReadFrame | undefined {
    if (!this.preambleOk) {
      if (this.buffered < PREAMBLE.length) {
        const got = this.peek(this.buffered);
        if (got.some((b, i) => b !== PREAMBLE[i])) throw new BadPreamble(this.peerRole, got);
        return undefined;
      }
      const got = this.take(PREAMBLE.length);
      if (got.some((b, i) => b !== PREAMBLE[i])) throw new BadPreamble(this.peerRole, got);
      this.preambleOk = true;
    }
    if (this.buffered < FRAME_HEADER_SIZE) return undefined;
    const head = this.peek(FRAME_HEADER_SIZE);
    const length = new DataView(head.buffer, head.byteOffset, 6).getUint32(0);
    const type = head[4]!;
    const flags = head[5]!;
    if (length > Math.max(ourMax, MAX_CONTROL_PAYLOAD)) {
      throw new HeartwireError(
        'FRAME_TOO_LARGE',
        `frame type 0x${type.toString(16)} of ${length} bytes (our max_frame_payload ${ourMax})`,
      );
    }
    if (this.buffered < FRAME_HEADER_SIZE + length) return undefined;
    const bytes = this.take(FRAME_HEADER_SIZE + length);
    const frame = decodeOne(bytes.slice(), Math.min(Math.max(ourMax, MIN_FRAME_PAYLOAD), MAX_FRAME_PAYLOAD));
    return { frame, type, flags, length };
  }

  private take(n: number): Uint8Array {
    const all = this.chunks.length === 1 ? this.chunks[0]! : concat(...this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks.length > 1) this.chunks = [concat(...this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }
}

class BadPreamble extends HeartwireError {
  constructor(role: 'client' | 'server', got: Uint8Array) {
    super(
      'PROTOCOL_MISMATCH',
      `the ${role}'s preamble starts ${Array.from(got, (b) => b.toString(16).padStart(2, '0')).join(' ')}`,
    );
  }
}
