/**
 * The incremental frame decoder (SPEC.md §3, §4.1, §5, §10): the receive hot path. DATA, CREDIT
 * and HEARTBEAT frames are read with a few integer operations and no per-byte loops over payloads.
 * @module
 */
import {
  CREDIT_PAYLOAD_SIZE,
  FLAG_ECHO,
  FLAG_END,
  FRAME_HEADER_SIZE,
  FrameType,
  HEARTBEAT_PAYLOAD_SIZE,
  MAX_CONTROL_PAYLOAD,
  PREAMBLE,
} from '../constants.js';
import { FlowControlError, ProtocolError } from '../errors.js';
import type { ControlFrame } from '../frames.js';
import {
  decodeClose,
  decodeCloseAck,
  decodeErrorBody,
  decodeGoAway,
  decodeHello,
  decodeWelcome,
} from '../messages.js';
import { PREAMBLE_SIZE, dataFrameCost, hex, isControlType, readU32, readU64 } from './wire.js';

/** Receives the frames decoded by {@link FrameDecoder.push}, in order. */
export interface FrameSink {
  /**
   * Payload bytes of a DATA frame: `source[start, stop)`. A frame whose payload lies inside one
   * chunk comes in one call (`first` and `last` both true, also for an empty frame); a frame
   * spanning chunks comes in pieces, in order, each a range of the chunk being pushed. The
   * decoder never copies DATA payloads, never retains `source` and never modifies it: whether
   * the sink may keep views of it depends on the caller of `push`.
   * @param frameLength the frame's whole payload length (the same on every piece)
   * @param first the first piece of the frame (its header was just checked)
   * @param last the last piece of the frame
   * @param end the frame carries the END flag (the same on every piece)
   */
  onData(
    source: Uint8Array,
    start: number,
    stop: number,
    frameLength: number,
    first: boolean,
    last: boolean,
    end: boolean,
  ): void;
  /**
   * A whole message in one DATA frame inside one chunk: `source[start, stop)`, not empty, with
   * the END flag, at most {@link FrameDecoder.wholeMessageMax} bytes, within the credit. Only
   * called (and needed) when `wholeMessageMax` is set; the decoder has already taken `cost` (see
   * {@link dataFrameCost}) off its `dataCredit`. The same frame would otherwise come to `onData`.
   */
  onMessage?(source: Uint8Array, start: number, stop: number, cost: number): void;
  /** Every non-DATA frame, including `'extension'` frames for types 0x40–0xFF. */
  onControl(frame: ControlFrame): void;
}

/** Options of a {@link FrameDecoder}. */
export interface FrameDecoderOptions {
  /** Whether the stream starts with the 8-byte preamble (SPEC.md §3). */
  expectPreamble: boolean;
  /** Largest DATA payload accepted, in bytes (the local `max_frame_payload`). */
  maxDataPayload: number;
}

/**
 * Incremental frame decoder for one direction of a connection.
 *
 * Bytes are fed with {@link FrameDecoder.push} in chunks of any size. Every header is checked
 * against the limit for its type (and a DATA header against the remaining credit) before any of
 * its payload is passed on or buffered. DATA payloads are never copied: they go to the sink as
 * ranges of the chunks, a frame spanning chunks piece by piece. Other frames are handed over
 * once complete; the decoder buffers at most one header plus one control payload
 * ({@link MAX_CONTROL_PAYLOAD} bytes). Once `push` has thrown (a {@link ProtocolError}, or
 * whatever the sink threw), the decoder is poisoned: every later `push` throws the same error.
 */
export class FrameDecoder {
  /**
   * Largest DATA payload accepted, in bytes; a larger DATA header fails with
   * `FRAME_TOO_LARGE`. May be changed at any time; applies to headers decoded afterwards.
   */
  maxDataPayload: number;

  /**
   * Credit bytes (header + payload) the peer may still send; a DATA header beyond it fails with
   * `FLOW_CONTROL_ERROR` before any of its payload is passed on. Default unlimited; the engine
   * keeps it equal to `L − R`.
   */
  dataCredit = Number.POSITIVE_INFINITY;
  /**
   * Whether DATA frames are accepted in the receiver's current state (SPEC.md §4.1 check 3). When
   * false, a DATA header that passes the size check fails with `PROTOCOL_ERROR`, before the
   * empty-frame and credit checks. Default true; the engine keeps it equal to its own state.
   */
  dataAllowed = true;
  /**
   * DATA frames with END inside one chunk, of 1 to this many payload bytes, go to
   * {@link FrameSink.onMessage} (the per-message fast path); 0, the default, sends every DATA
   * frame to `onData`.
   */
  wholeMessageMax = 0;

  /** Preamble bytes verified so far (starts complete when no preamble is expected). */
  private preambleIndex: number;
  private readonly header = new Uint8Array(FRAME_HEADER_SIZE);
  /** Bytes of an incomplete header held in `header`. */
  private headerFill = 0;
  /** DATA frame in progress: payload bytes still to come (0 when none), its length and END flag. */
  private dataRemaining = 0;
  private dataLength = 0;
  private dataEnd = false;
  /** Buffer of the control frame whose payload is incomplete; `null` when none. */
  private payload: Uint8Array | null = null;
  private payloadFill = 0;
  private payloadType = 0;
  private payloadFlags = 0;
  /** Reused buffer for incomplete non-DATA payloads (at most 4096 bytes), allocated lazily. */
  private scratch: Uint8Array | null = null;
  private failure: { error: unknown } | null = null;

  constructor(options: FrameDecoderOptions) {
    this.maxDataPayload = options.maxDataPayload;
    this.preambleIndex = options.expectPreamble ? 0 : PREAMBLE_SIZE;
  }

  /** Whether the whole preamble has been received (always true when none is expected). */
  get preambleReceived(): boolean {
    return this.preambleIndex === PREAMBLE_SIZE;
  }

  /**
   * Bytes the decoder holds for an incomplete frame: a partial header, or the header and the
   * payload received so far of a control frame (DATA payloads are passed on, never held).
   */
  get bufferedBytes(): number {
    if (this.payload !== null) return FRAME_HEADER_SIZE + this.payloadFill;
    return this.dataRemaining > 0 ? 0 : this.headerFill;
  }

  /**
   * Decodes every frame (and DATA piece) in `chunk` and hands them to `sink` in order.
   * @throws ProtocolError on invalid input (`PROTOCOL_MISMATCH`, `FRAME_TOO_LARGE`,
   * `PROTOCOL_ERROR`), FlowControlError for DATA beyond `dataCredit`; rethrows what the sink
   * throws.
   */
  push(chunk: Uint8Array, sink: FrameSink): void {
    if (this.failure !== null) throw this.failure.error;
    try {
      this.consume(chunk, sink);
    } catch (error) {
      this.failure = { error };
      throw error;
    }
  }

  private consume(chunk: Uint8Array, sink: FrameSink): void {
    const length = chunk.length;
    let pos = this.preambleIndex < PREAMBLE_SIZE ? this.consumePreamble(chunk) : 0;
    if (pos < length && this.dataRemaining > 0) pos = this.continueData(chunk, pos, sink);
    while (pos < length) {
      if (this.payload !== null) {
        pos = this.fillPayload(chunk, pos, sink);
      } else if (this.headerFill === 0 && length - pos >= FRAME_HEADER_SIZE) {
        // The common case first: a run of whole one-frame messages, each inside this chunk.
        const wholeMax = this.dataAllowed ? Math.min(this.wholeMessageMax, this.maxDataPayload) : 0;
        while (pos + FRAME_HEADER_SIZE <= length) {
          const size = readU32(chunk, pos);
          const start = pos + FRAME_HEADER_SIZE;
          const cost = dataFrameCost(size, true);
          if (
            chunk[pos + 4] !== FrameType.DATA ||
            (chunk[pos + 5] & FLAG_END) === 0 ||
            size === 0 ||
            size > wholeMax ||
            start + size > length ||
            cost > this.dataCredit
          )
            break;
          this.dataCredit -= cost;
          sink.onMessage!(chunk, start, start + size, cost);
          pos = start + size;
        }
        if (length - pos < FRAME_HEADER_SIZE) continue;
        const payloadLength = readU32(chunk, pos);
        const type = chunk[pos + 4];
        const flags = chunk[pos + 5];
        pos += FRAME_HEADER_SIZE;
        const stop = pos + payloadLength;
        if (type === FrameType.DATA && stop <= length && payloadLength !== 0 && this.dataAllowed) {
          // The common case, checked inline: a valid DATA frame inside this chunk.
          const end = (flags & FLAG_END) !== 0;
          const cost = dataFrameCost(payloadLength, end);
          if (payloadLength <= this.maxDataPayload && cost <= this.dataCredit) {
            sink.onData(chunk, pos, stop, payloadLength, true, true, end);
            pos = stop;
            continue;
          }
        }
        pos = this.startFrame(payloadLength, type, flags, chunk, pos, sink);
      } else {
        pos = this.fillHeader(chunk, pos, sink);
      }
    }
  }

  /** Checks preamble bytes from the start of `chunk`; returns the position after them. */
  private consumePreamble(chunk: Uint8Array): number {
    const count = Math.min(chunk.length, PREAMBLE_SIZE - this.preambleIndex);
    for (let pos = 0; pos < count; pos++) {
      const index = this.preambleIndex;
      if (chunk[pos] !== PREAMBLE[index]) {
        // A TLS record (handshake 0x16 or alert 0x15, version 0x03 xx) means the peer speaks TLS.
        const tls = index === 0 && (chunk[pos] === 0x16 || chunk[pos] === 0x15) && chunk[pos + 1] === 0x03;
        throw new ProtocolError(
          'PROTOCOL_MISMATCH',
          `preamble byte ${index} is 0x${hex(chunk[pos])}, expected 0x${hex(PREAMBLE[index])}: not a heartwire peer` +
            (tls ? ' (the peer speaks TLS: use the tls option on both sides)' : ''),
        );
      }
      this.preambleIndex = index + 1;
    }
    return count;
  }

  /** Adds bytes to an incomplete header; starts the frame once the header is complete. */
  private fillHeader(chunk: Uint8Array, pos: number, sink: FrameSink): number {
    const take = Math.min(FRAME_HEADER_SIZE - this.headerFill, chunk.length - pos);
    this.header.set(chunk.subarray(pos, pos + take), this.headerFill);
    this.headerFill += take;
    pos += take;
    if (this.headerFill < FRAME_HEADER_SIZE) return pos;
    this.headerFill = 0;
    const header = this.header;
    return this.startFrame(readU32(header, 0), header[4], header[5], chunk, pos, sink);
  }

  /**
   * Handles a complete header whose payload starts at `chunk[pos]`: passes the frame on if its
   * payload is all there (DATA: whatever part of it is there), otherwise buffers what there is.
   * Returns the next position.
   */
  private startFrame(
    payloadLength: number,
    type: number,
    flags: number,
    chunk: Uint8Array,
    pos: number,
    sink: FrameSink,
  ): number {
    this.checkHeader(payloadLength, type, flags);
    const end = pos + payloadLength;
    if (type === FrameType.DATA) {
      const last = end <= chunk.length;
      const stop = last ? end : chunk.length;
      if (!last) {
        this.dataRemaining = end - chunk.length;
        this.dataLength = payloadLength;
        this.dataEnd = (flags & FLAG_END) !== 0;
      }
      sink.onData(chunk, pos, stop, payloadLength, true, last, (flags & FLAG_END) !== 0);
      return stop;
    }
    if (end <= chunk.length) {
      this.dispatch(type, flags, chunk, pos, end, sink);
      return end;
    }
    const buffer = this.scratchFor(payloadLength);
    buffer.set(chunk.subarray(pos));
    this.payload = buffer;
    this.payloadFill = chunk.length - pos;
    this.payloadType = type;
    this.payloadFlags = flags;
    return chunk.length;
  }

  /** Passes on the next piece of the DATA frame in progress; returns the next position. */
  private continueData(chunk: Uint8Array, pos: number, sink: FrameSink): number {
    const take = Math.min(this.dataRemaining, chunk.length - pos);
    this.dataRemaining -= take;
    sink.onData(chunk, pos, pos + take, this.dataLength, false, this.dataRemaining === 0, this.dataEnd);
    return pos + take;
  }

  /** Adds bytes to an incomplete control payload; dispatches the frame once it is complete. */
  private fillPayload(chunk: Uint8Array, pos: number, sink: FrameSink): number {
    const payload = this.payload!;
    const take = Math.min(payload.length - this.payloadFill, chunk.length - pos);
    payload.set(chunk.subarray(pos, pos + take), this.payloadFill);
    this.payloadFill += take;
    if (this.payloadFill === payload.length) {
      this.payload = null;
      this.payloadFill = 0;
      this.dispatch(this.payloadType, this.payloadFlags, payload, 0, payload.length, sink);
    }
    return pos + take;
  }

  private scratchFor(payloadLength: number): Uint8Array {
    this.scratch ??= new Uint8Array(MAX_CONTROL_PAYLOAD);
    return this.scratch.subarray(0, payloadLength);
  }

  /**
   * Rejects a header before any of its payload is passed on or buffered, with the error of the
   * first check that fails, in the order of SPEC.md §4.1 (type, size, DATA allowed, empty DATA,
   * credit).
   */
  private checkHeader(payloadLength: number, type: number, flags: number): void {
    switch (type) {
      case FrameType.DATA:
        if (payloadLength > this.maxDataPayload) {
          throw new ProtocolError(
            'FRAME_TOO_LARGE',
            `DATA frame of ${payloadLength} bytes exceeds max_frame_payload ${this.maxDataPayload}`,
          );
        }
        if (!this.dataAllowed) {
          throw new ProtocolError('PROTOCOL_ERROR', 'DATA frame not allowed in this state');
        }
        if (payloadLength === 0 && (flags & FLAG_END) === 0) {
          throw new ProtocolError('PROTOCOL_ERROR', 'empty DATA frame without END');
        }
        if (dataFrameCost(payloadLength, (flags & FLAG_END) !== 0) > this.dataCredit) {
          throw new FlowControlError(
            `DATA frame of ${payloadLength} bytes exceeds the remaining credit of ${this.dataCredit} bytes`,
          );
        }
        return;
      case FrameType.CREDIT:
        return checkFixedLength(payloadLength, CREDIT_PAYLOAD_SIZE, 'CREDIT');
      case FrameType.HEARTBEAT:
        return checkFixedLength(payloadLength, HEARTBEAT_PAYLOAD_SIZE, 'HEARTBEAT');
      default:
        if (!isControlType(type)) {
          throw new ProtocolError('PROTOCOL_ERROR', `unknown frame type 0x${hex(type)}`);
        }
        if (payloadLength > MAX_CONTROL_PAYLOAD) {
          throw new ProtocolError(
            'FRAME_TOO_LARGE',
            `frame type 0x${hex(type)} of ${payloadLength} bytes exceeds ${MAX_CONTROL_PAYLOAD}`,
          );
        }
    }
  }

  /** Hands the complete non-DATA frame whose payload is `bytes[start, end)` to the sink. */
  private dispatch(
    type: number,
    flags: number,
    bytes: Uint8Array,
    start: number,
    end: number,
    sink: FrameSink,
  ): void {
    switch (type) {
      case FrameType.CREDIT:
        sink.onControl({
          type: FrameType.CREDIT,
          creditLimit: readU64(bytes, start),
          consumedMessages: readU64(bytes, start + 8),
        });
        return;
      case FrameType.HEARTBEAT:
        sink.onControl({
          type: FrameType.HEARTBEAT,
          echo: (flags & FLAG_ECHO) !== 0,
          timestamp: readU32(bytes, start),
          echoTimestamp: readU32(bytes, start + 4),
          echoDelay: readU32(bytes, start + 8),
          receivedBytes: readU64(bytes, start + 12),
          creditLimit: readU64(bytes, start + 20),
          consumedMessages: readU64(bytes, start + 28),
        });
        return;
      default:
        sink.onControl(decodeControlPayload(type, flags, bytes.subarray(start, end)));
    }
  }
}

function checkFixedLength(payloadLength: number, expected: number, name: string): void {
  if (payloadLength === expected) return;
  throw new ProtocolError(
    payloadLength > expected ? 'FRAME_TOO_LARGE' : 'PROTOCOL_ERROR',
    `${name} payload must be ${expected} bytes, not ${payloadLength}`,
  );
}

/** Decodes a protobuf control payload, or copies an extension payload (types 0x40–0xFF). */
function decodeControlPayload(type: number, flags: number, payload: Uint8Array): ControlFrame {
  switch (type) {
    case FrameType.HELLO:
      return { type: FrameType.HELLO, hello: decodeHello(payload) };
    case FrameType.WELCOME:
      return { type: FrameType.WELCOME, welcome: decodeWelcome(payload) };
    case FrameType.GOAWAY:
      return { type: FrameType.GOAWAY, goAway: decodeGoAway(payload) };
    case FrameType.CLOSE:
      return { type: FrameType.CLOSE, close: decodeClose(payload) };
    case FrameType.CLOSE_ACK:
      return { type: FrameType.CLOSE_ACK, closeAck: decodeCloseAck(payload) };
    case FrameType.ERROR:
      return { type: FrameType.ERROR, error: decodeErrorBody(payload) };
    default:
      return { type: 'extension', frameType: type, flags, payload: payload.slice() };
  }
}
