/**
 * Wire primitives of the frame codec (SPEC.md §2, §4): big-endian integers, the 6-byte header,
 * the checks an encoder applies before writing, and the credit cost of a DATA frame.
 * @module
 */
import {
  CREDIT_PAYLOAD_SIZE,
  EXTENSION_MUST_UNDERSTAND_FIRST,
  FLAG_END,
  FRAME_HEADER_SIZE,
  MESSAGE_CREDIT_OVERHEAD,
  FrameType,
  HEARTBEAT_PAYLOAD_SIZE,
  MAX_CONTROL_PAYLOAD,
  MAX_FRAME_PAYLOAD,
  PREAMBLE,
} from '../constants.js';
import { ProtocolError, UsageError } from '../errors.js';

/** Size of a whole CREDIT frame (header and payload): 22 bytes. */
export const CREDIT_FRAME_SIZE = FRAME_HEADER_SIZE + CREDIT_PAYLOAD_SIZE;
/** Size of a whole HEARTBEAT frame (header and payload): 42 bytes. */
export const HEARTBEAT_FRAME_SIZE = FRAME_HEADER_SIZE + HEARTBEAT_PAYLOAD_SIZE;

export const PREAMBLE_SIZE = PREAMBLE.length;
const TWO_POW_32 = 0x1_0000_0000;
/** A u64 whose high word is at least 2^21 is at least 2^53. */
const U64_HIGH_LIMIT = 0x20_0000;

// ---------------------------------------------------------------------------------------------
// Integers

export function readU32(bytes: Uint8Array, offset: number): number {
  return (
    bytes[offset] * 0x100_0000 + ((bytes[offset + 1] << 16) | (bytes[offset + 2] << 8) | bytes[offset + 3])
  );
}

export function putU32(target: Uint8Array, offset: number, value: number): void {
  target[offset] = value >>> 24;
  target[offset + 1] = value >>> 16;
  target[offset + 2] = value >>> 8;
  target[offset + 3] = value;
}

/** Writes a u64 known to be a safe non-negative integer. */
export function putU64(target: Uint8Array, offset: number, value: number): void {
  putU32(target, offset, Math.floor(value / TWO_POW_32));
  putU32(target, offset + 4, value >>> 0);
}

/**
 * Writes a 6-byte frame header without checking it: the hot-path form of
 * {@link writeFrameHeader}, for callers that produce only valid headers.
 * @internal
 */
export function putHeader(
  target: Uint8Array,
  offset: number,
  payloadLength: number,
  type: number,
  flags: number,
): void {
  putU32(target, offset, payloadLength);
  target[offset + 4] = type;
  target[offset + 5] = flags;
}

/**
 * Reads a big-endian u64 at `offset` of `bytes`.
 * @throws ProtocolError `PROTOCOL_ERROR` if the value is not below 2^53 (SPEC.md §2).
 */
export function readU64(bytes: Uint8Array, offset: number): number {
  const high = readU32(bytes, offset);
  if (high >= U64_HIGH_LIMIT) {
    throw new ProtocolError('PROTOCOL_ERROR', 'u64 field value is not below 2^53');
  }
  return high * TWO_POW_32 + readU32(bytes, offset + 4);
}

/**
 * Writes `value` as a big-endian u64 at `offset` of `target`.
 * @throws UsageError `INTERNAL_ERROR` if `value` is not an integer in [0, 2^53) or does not fit.
 */
export function writeU64(target: Uint8Array, offset: number, value: number): void {
  checkU64(value, 'u64 value');
  checkRoom(target, offset, 8);
  putU64(target, offset, value);
}

// ---------------------------------------------------------------------------------------------
// Encoder validation

export function misuse(message: string): never {
  throw new UsageError('INTERNAL_ERROR', message);
}

export function checkU32(value: number, what: string): void {
  if (value >>> 0 !== value) misuse(`${what} is not a u32: ${value}`);
}

export function checkU64(value: number, what: string): void {
  if (!Number.isSafeInteger(value) || value < 0) misuse(`${what} is not an integer in [0, 2^53): ${value}`);
}

export function checkRoom(target: Uint8Array, offset: number, size: number): void {
  if (offset >>> 0 !== offset || offset + size > target.length) {
    misuse(`no room for ${size} bytes at offset ${offset} of a ${target.length}-byte buffer`);
  }
}

/** Checks that a header describes a frame that a receiver can accept (SPEC.md §5, §10). */
export function checkEncodableHeader(payloadLength: number, type: number, flags: number): void {
  checkU32(payloadLength, 'payload length');
  if ((flags & 0xff) !== flags) misuse(`flags are not a u8: ${flags}`);
  switch (type) {
    case FrameType.DATA:
      if (payloadLength > MAX_FRAME_PAYLOAD) misuse(`DATA payload of ${payloadLength} bytes is too large`);
      if (payloadLength === 0 && (flags & FLAG_END) === 0) misuse('empty DATA frame without END');
      return;
    case FrameType.CREDIT:
      if (payloadLength !== CREDIT_PAYLOAD_SIZE)
        misuse(`CREDIT payload must be 16 bytes, not ${payloadLength}`);
      return;
    case FrameType.HEARTBEAT:
      if (payloadLength !== HEARTBEAT_PAYLOAD_SIZE)
        misuse(`HEARTBEAT payload must be 36 bytes, not ${payloadLength}`);
      return;
    default:
      if (!isControlType(type)) misuse(`invalid frame type: ${type}`);
      if (payloadLength > MAX_CONTROL_PAYLOAD)
        misuse(`control payload of ${payloadLength} bytes is too large`);
  }
}

/** Protobuf control types 0x10–0x15 and extension types 0x40–0xFF. */
export function isControlType(type: number): boolean {
  return (
    (type >= FrameType.HELLO && type <= FrameType.ERROR) ||
    (type >= EXTENSION_MUST_UNDERSTAND_FIRST && type <= 0xff)
  );
}

/** Credit cost of a DATA frame (SPEC.md §7): its wire size, plus the per-message overhead on END. */
export function dataFrameCost(payloadLength: number, end: boolean): number {
  return FRAME_HEADER_SIZE + payloadLength + (end ? MESSAGE_CREDIT_OVERHEAD : 0);
}

/** Two lowercase hex digits of a byte (error messages). */
export function hex(byte: number): string {
  return byte.toString(16).padStart(2, '0');
}
