/**
 * Wire constants of heartwire protocol version 1 (SPEC.md §3–§10).
 * @module
 */

/** The 8-byte connection preamble, `"\x89HWIRE\r\n"` (SPEC.md §3). */
export const PREAMBLE: Uint8Array = Uint8Array.of(0x89, 0x48, 0x57, 0x49, 0x52, 0x45, 0x0d, 0x0a);

/** The protocol version this implementation speaks. */
export const PROTOCOL_VERSION = 1;

/** Size of every frame header in bytes (SPEC.md §4). */
export const FRAME_HEADER_SIZE = 6;

/** Frame type codes (SPEC.md §5). */
export const FrameType = {
  DATA: 0x00,
  CREDIT: 0x01,
  HEARTBEAT: 0x02,
  HELLO: 0x10,
  WELCOME: 0x11,
  GOAWAY: 0x12,
  CLOSE: 0x13,
  CLOSE_ACK: 0x14,
  ERROR: 0x15,
} as const;
/** One of the frame type codes of {@link FrameType}. */
export type FrameTypeCode = (typeof FrameType)[keyof typeof FrameType];

/** DATA flag: last frame of a message. */
export const FLAG_END = 0x01;
/** HEARTBEAT flag: the echo fields are valid. */
export const FLAG_ECHO = 0x01;

/**
 * Credit charged per message on top of its wire bytes (on the DATA frame with END), so that the
 * receiver's per-message bookkeeping is covered by credit too (SPEC.md §7).
 */
export const MESSAGE_CREDIT_OVERHEAD = 256;

/** HEARTBEAT timestamps and echo delays count ticks of 0.1 ms (SPEC.md §5). */
export const HEARTBEAT_TICKS_PER_MS = 10;

/** Exact payload size of a CREDIT frame. */
export const CREDIT_PAYLOAD_SIZE = 16;
/** Exact payload size of a HEARTBEAT frame. */
export const HEARTBEAT_PAYLOAD_SIZE = 36;
/** Largest payload of a control frame (types 0x10–0xFF). */
export const MAX_CONTROL_PAYLOAD = 4096;
/** Smallest and largest `max_frame_payload` a peer may announce. */
export const MIN_FRAME_PAYLOAD = 1024;
export const MAX_FRAME_PAYLOAD = 16 * 1024 * 1024;
/** Smallest `initial_credit` a peer may announce. */
export const MIN_INITIAL_CREDIT = 1024;
/** Range of idle timeouts, in ms. */
export const MIN_IDLE_TIMEOUT_MS = 100;
export const MAX_IDLE_TIMEOUT_MS = 86_400_000;
/** Largest value of a u64 field (exclusive bound 2^53). */
export const MAX_COUNTER = Number.MAX_SAFE_INTEGER;
/** Longest string field, in UTF-8 bytes. */
export const MAX_STRING_BYTES = 256;
/** Heartbeats allowed per window of T/3 before ENHANCE_YOUR_CALM. */
export const MAX_HEARTBEATS_PER_WINDOW = 8;
/** No-op control frames allowed per window of T/3 before ENHANCE_YOUR_CALM. */
export const MAX_NOOP_CONTROL_PER_WINDOW = 64;

/** First and last frame type of must-understand extensions. */
export const EXTENSION_MUST_UNDERSTAND_FIRST = 0x40;
export const EXTENSION_MUST_UNDERSTAND_LAST = 0x7f;
/** First frame type of ignorable extensions (up to 0xFF). */
export const EXTENSION_IGNORABLE_FIRST = 0x80;
