/**
 * Frame encoders (SPEC.md §5): checked writers of headers, CREDIT and HEARTBEAT frames into a
 * caller's buffer, and encoders of whole frames into new buffers.
 * @module
 */
import {
  CREDIT_PAYLOAD_SIZE,
  EXTENSION_MUST_UNDERSTAND_FIRST,
  FLAG_ECHO,
  FLAG_END,
  FRAME_HEADER_SIZE,
  FrameType,
  HEARTBEAT_PAYLOAD_SIZE,
  PREAMBLE,
} from '../constants.js';
import type { ControlFrame, Frame, HeartbeatFrame } from '../frames.js';
import {
  encodeClose,
  encodeCloseAck,
  encodeErrorBody,
  encodeGoAway,
  encodeHello,
  encodeWelcome,
} from '../messages.js';
import {
  CREDIT_FRAME_SIZE,
  HEARTBEAT_FRAME_SIZE,
  PREAMBLE_SIZE,
  checkEncodableHeader,
  checkRoom,
  checkU32,
  checkU64,
  misuse,
  putHeader,
  putU32,
  putU64,
} from './wire.js';

/**
 * Writes a 6-byte frame header at `offset` of `target`.
 * @throws UsageError `INTERNAL_ERROR` if the header is invalid (unknown type, payload length
 * over the type's limit, empty DATA without END, flags not a u8) or does not fit.
 */
export function writeFrameHeader(
  target: Uint8Array,
  offset: number,
  payloadLength: number,
  type: number,
  flags: number,
): void {
  checkEncodableHeader(payloadLength, type, flags);
  checkRoom(target, offset, FRAME_HEADER_SIZE);
  putHeader(target, offset, payloadLength, type, flags);
}

/**
 * Writes a whole CREDIT frame ({@link CREDIT_FRAME_SIZE} = 22 bytes) at `offset` of `target`.
 * @throws UsageError `INTERNAL_ERROR` if a value is not in [0, 2^53) or the frame does not fit.
 */
export function writeCreditFrame(
  target: Uint8Array,
  offset: number,
  creditLimit: number,
  consumedMessages: number,
): void {
  checkU64(creditLimit, 'creditLimit');
  checkU64(consumedMessages, 'consumedMessages');
  checkRoom(target, offset, CREDIT_FRAME_SIZE);
  putHeader(target, offset, CREDIT_PAYLOAD_SIZE, FrameType.CREDIT, 0);
  putU64(target, offset + 6, creditLimit);
  putU64(target, offset + 14, consumedMessages);
}

/**
 * Writes a whole HEARTBEAT frame ({@link HEARTBEAT_FRAME_SIZE} = 42 bytes) at `offset` of
 * `target`. The echo fields are written as given, whether or not `echo` is set.
 * @throws UsageError `INTERNAL_ERROR` if a field is out of range or the frame does not fit.
 */
export function writeHeartbeatFrame(
  target: Uint8Array,
  offset: number,
  hb: Omit<HeartbeatFrame, 'type'>,
): void {
  checkU32(hb.timestamp, 'timestamp');
  checkU32(hb.echoTimestamp, 'echoTimestamp');
  checkU32(hb.echoDelay, 'echoDelay');
  checkU64(hb.receivedBytes, 'receivedBytes');
  checkU64(hb.creditLimit, 'creditLimit');
  checkU64(hb.consumedMessages, 'consumedMessages');
  checkRoom(target, offset, HEARTBEAT_FRAME_SIZE);
  putHeader(target, offset, HEARTBEAT_PAYLOAD_SIZE, FrameType.HEARTBEAT, hb.echo ? FLAG_ECHO : 0);
  putU32(target, offset + 6, hb.timestamp);
  putU32(target, offset + 10, hb.echoTimestamp);
  putU32(target, offset + 14, hb.echoDelay);
  putU64(target, offset + 18, hb.receivedBytes);
  putU64(target, offset + 26, hb.creditLimit);
  putU64(target, offset + 34, hb.consumedMessages);
}

function frameWithPayload(type: number, flags: number, payload: Uint8Array): Uint8Array {
  checkEncodableHeader(payload.length, type, flags);
  const out = new Uint8Array(FRAME_HEADER_SIZE + payload.length);
  putHeader(out, 0, payload.length, type, flags);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

/**
 * Encodes any non-DATA frame, header included, into a new buffer.
 * @throws UsageError `INTERNAL_ERROR` if a field is out of range, an extension frame type is
 * not in 0x40–0xFF, or the payload exceeds 4096 bytes.
 */
export function encodeControlFrame(frame: ControlFrame): Uint8Array {
  switch (frame.type) {
    case FrameType.CREDIT: {
      const out = new Uint8Array(CREDIT_FRAME_SIZE);
      writeCreditFrame(out, 0, frame.creditLimit, frame.consumedMessages);
      return out;
    }
    case FrameType.HEARTBEAT: {
      const out = new Uint8Array(HEARTBEAT_FRAME_SIZE);
      writeHeartbeatFrame(out, 0, frame);
      return out;
    }
    case FrameType.HELLO:
      return frameWithPayload(frame.type, 0, encodeHello(frame.hello));
    case FrameType.WELCOME:
      return frameWithPayload(frame.type, 0, encodeWelcome(frame.welcome));
    case FrameType.GOAWAY:
      return frameWithPayload(frame.type, 0, encodeGoAway(frame.goAway));
    case FrameType.CLOSE:
      return frameWithPayload(frame.type, 0, encodeClose(frame.close));
    case FrameType.CLOSE_ACK:
      return frameWithPayload(frame.type, 0, encodeCloseAck(frame.closeAck));
    case FrameType.ERROR:
      return frameWithPayload(frame.type, 0, encodeErrorBody(frame.error));
    case 'extension':
      if (!(frame.frameType >= EXTENSION_MUST_UNDERSTAND_FIRST && frame.frameType <= 0xff)) {
        misuse(`extension frame type must be in 0x40–0xFF: ${frame.frameType}`);
      }
      return frameWithPayload(frame.frameType, frame.flags, frame.payload);
    default:
      return misuse(`not a control frame: ${JSON.stringify((frame as { type: unknown }).type)}`);
  }
}

/**
 * Encodes a server's answer to a connection it refuses before the handshake (SPEC.md §11): the
 * preamble, then ERROR with `code` and `message` (cut to 256 UTF-8 bytes) and no messages
 * consumed or delivered.
 */
export function encodeRefusal(code: number, message: string): Uint8Array {
  const error = encodeControlFrame({
    type: FrameType.ERROR,
    error: { code, message, consumedMessages: 0, deliveredMessages: 0 },
  });
  const out = new Uint8Array(PREAMBLE_SIZE + error.length);
  out.set(PREAMBLE, 0);
  out.set(error, PREAMBLE_SIZE);
  return out;
}

/**
 * Encodes any frame, header included, into a new buffer.
 * @throws UsageError `INTERNAL_ERROR` on a frame that is invalid on the wire (see
 * {@link writeFrameHeader} and {@link encodeControlFrame}).
 */
export function encodeFrame(frame: Frame): Uint8Array {
  if (frame.type === FrameType.DATA)
    return frameWithPayload(FrameType.DATA, frame.end ? FLAG_END : 0, frame.payload);
  return encodeControlFrame(frame);
}
