/**
 * Frame builders for the conformance runner: valid frames through the project's codec, and
 * invalid ones by hand (the codec refuses to encode them).
 * @module
 */
import { concatBytes, decodeAll, encodeControlFrame, encodeFrame } from '../protocol/codec.js';
import {
  FLAG_END,
  FRAME_HEADER_SIZE,
  FrameType,
  MESSAGE_CREDIT_OVERHEAD,
  PREAMBLE,
  PROTOCOL_VERSION,
} from '../protocol/constants.js';
import type { Close, Frame, Hello, HeartbeatFrame } from '../protocol/frames.js';
import { encodeHello } from '../protocol/messages.js';

export { PREAMBLE };

/** Credit cost of a DATA frame (SPEC.md §7). */
export function dataCost(payloadLength: number, end: boolean): number {
  return FRAME_HEADER_SIZE + payloadLength + (end ? MESSAGE_CREDIT_OVERHEAD : 0);
}

/** A 6-byte frame header, any values (no checks). */
export function header(payloadLength: number, type: number, flags = 0): Uint8Array {
  const out = new Uint8Array(FRAME_HEADER_SIZE);
  new DataView(out.buffer).setUint32(0, payloadLength >>> 0);
  out[4] = type & 0xff;
  out[5] = flags & 0xff;
  return out;
}

/** A whole frame built by hand: header and payload, no checks (for invalid frames). */
export function rawFrame(type: number, flags: number, payload: Uint8Array | number = 0): Uint8Array {
  const body = typeof payload === 'number' ? new Uint8Array(payload) : payload;
  return concat(header(body.length, type, flags), body);
}

/** Concatenates byte arrays (variadic {@link concatBytes}). */
export function concat(...parts: Uint8Array[]): Uint8Array {
  return concatBytes(parts);
}

/** The HELLO fields the runner sends unless a case overrides them. */
export function defaultHello(overrides: Partial<Hello> = {}): Hello {
  return {
    versions: [PROTOCOL_VERSION],
    extensions: [],
    idleTimeoutMs: 1000,
    initialCredit: 4 * 1024 * 1024,
    maxFramePayload: 65536,
    maxMessageSize: 1024 * 1024,
    applicationProtocols: [],
    ...overrides,
  };
}

/** A HELLO frame (valid protobuf; the field values may be out of range on purpose). */
export function helloFrame(hello: Hello): Uint8Array {
  return rawFrame(FrameType.HELLO, 0, encodeHello(hello));
}

/** A CREDIT frame. */
export function creditFrame(creditLimit: number, consumedMessages: number): Uint8Array {
  return encodeControlFrame({ type: FrameType.CREDIT, creditLimit, consumedMessages });
}

/** A HEARTBEAT frame. */
export function heartbeatFrame(hb: Omit<HeartbeatFrame, 'type'>): Uint8Array {
  return encodeControlFrame({ type: FrameType.HEARTBEAT, ...hb });
}

/** A DATA frame. */
export function dataFrame(payload: Uint8Array, end: boolean): Uint8Array {
  if (payload.length === 0 && !end) return rawFrame(FrameType.DATA, 0, payload);
  return encodeFrame({ type: FrameType.DATA, end, payload });
}

/** A CLOSE frame. */
export function closeFrame(close: Close): Uint8Array {
  return encodeControlFrame({ type: FrameType.CLOSE, close });
}

/** An ignorable or must-understand extension frame. */
export function extensionFrame(
  frameType: number,
  flags = 0,
  payload: Uint8Array = new Uint8Array(0),
): Uint8Array {
  return rawFrame(frameType, flags, payload);
}

/** `n` bytes of a recognisable pattern. */
export function pattern(n: number, seed = 0): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (i * 31 + seed * 7 + 1) & 0xff;
  return out;
}

// Protobuf by hand (non-canonical encodings, unknown fields).

/** A protobuf varint. */
export function varint(value: number): number[] {
  const out: number[] = [];
  let v = value;
  while (v >= 0x80) {
    out.push((v % 0x80) | 0x80);
    v = Math.floor(v / 0x80);
  }
  out.push(v);
  return out;
}

/** A varint field (wire type 0). */
export function pbVarint(field: number, value: number): number[] {
  return [...varint(field * 8), ...varint(value)];
}

/** A length-delimited field (wire type 2). */
export function pbBytes(field: number, bytes: Uint8Array | number[]): number[] {
  return [...varint(field * 8 + 2), ...varint(bytes.length), ...bytes];
}

/** Decodes one complete frame with the project's decoder (throws its errors). */
export function decodeOne(frame: Uint8Array, maxDataPayload: number): Frame {
  const frames = decodeAll(frame, { expectPreamble: false, maxDataPayload });
  return frames[0]!;
}

export { FLAG_END, FrameType };
