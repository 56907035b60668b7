/**
 * Protobuf encoding of the control frame bodies (HELLO, WELCOME, GOAWAY, CLOSE, CLOSE_ACK,
 * ERROR; SPEC.md §5.4), via `protobufjs/light` and the descriptor generated from
 * `proto/heartwire.proto`.
 *
 * Decoders throw only {@link ProtocolError} (`PROTOCOL_ERROR`); encoders validate their input
 * and throw {@link UsageError} (`INTERNAL_ERROR`) on values that cannot go on the wire.
 * @module
 */
import protobuf from 'protobufjs/light.js';
import { MAX_COUNTER, MAX_STRING_BYTES } from './constants.js';
import { invalidAlternative } from './alternatives.js';
import { ProtocolError, UsageError } from './errors.js';
import type { Close, CloseAck, ErrorBody, GoAway, Hello, Welcome } from './frames.js';
import { descriptor } from './proto-descriptor.js';

const root = protobuf.Root.fromJSON(descriptor);
const HelloType = root.lookupType('heartwire.v1.Hello');
const WelcomeType = root.lookupType('heartwire.v1.Welcome');
const GoAwayType = root.lookupType('heartwire.v1.GoAway');
const CloseType = root.lookupType('heartwire.v1.Close');
const CloseAckType = root.lookupType('heartwire.v1.CloseAck');
const ErrorType = root.lookupType('heartwire.v1.Error');

/** A decoded uint64: a number, or a Long-like object when protobufjs has `long` available. */
type U64 = number | { low: number; high: number };
/** Decoded message fields, as protobufjs returns them. */
type Decoded = Record<string, unknown>;

const utf8Encoder = new TextEncoder();
const utf8Decoder = new TextDecoder();

// ---------------------------------------------------------------------------------------------
// Strings

/** Matches unpaired UTF-16 surrogates (in `u` mode a valid pair is one code point). */
const LONE_SURROGATE = /\p{Cs}/gu;

/**
 * Returns `text` as it goes on the wire: unpaired surrogates replaced by U+FFFD (they have no
 * UTF-8 encoding), then truncated so that its UTF-8 encoding is at most `maxBytes` bytes,
 * cut at a character (code point) boundary.
 */
export function truncateUtf8(text: string, maxBytes: number = MAX_STRING_BYTES): string {
  const wellFormed = text.replace(LONE_SURROGATE, '\uFFFD');
  // Fast path: every UTF-16 unit encodes to at most 3 bytes.
  if (wellFormed.length * 3 <= maxBytes) return wellFormed;
  const bytes = utf8Encoder.encode(wellFormed);
  if (bytes.length <= maxBytes) return wellFormed;
  let end = maxBytes;
  // Back up over continuation bytes (10xxxxxx) to the start of the cut character.
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--;
  return utf8Decoder.decode(bytes.subarray(0, end));
}

// ---------------------------------------------------------------------------------------------
// Validation (encode side)

function invalid(what: string, value: unknown): never {
  throw new UsageError('INTERNAL_ERROR', `cannot encode ${what}: ${String(value)}`);
}

function checkU32(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > 0xffffffff) invalid(what, value);
  return value;
}

function checkU64(value: number, what: string): number {
  if (!Number.isInteger(value) || value < 0 || value > MAX_COUNTER) invalid(what, value);
  return value;
}

function checkEnum(value: number, what: string): number {
  if (!Number.isInteger(value) || value < -0x80000000 || value > 0x7fffffff) invalid(what, value);
  return value;
}

function checkString(value: string, what: string): string {
  if (typeof value !== 'string') invalid(what, value);
  return truncateUtf8(value);
}

function checkStrings(values: readonly string[], what: string): string[] {
  if (!Array.isArray(values)) invalid(what, values);
  return values.map((value) => checkString(value, what));
}

/** Alternatives go on the wire whole or not at all: never truncated (SPEC.md §9.5). */
function checkAlternatives(values: readonly string[] | undefined, what: string): string[] {
  if (values === undefined) return [];
  if (!Array.isArray(values)) invalid(what, values);
  const bad = invalidAlternative(values);
  if (bad >= 0) invalid(`${what}[${bad}]`, values[bad]);
  return values.slice();
}

function checkU32s(values: readonly number[], what: string): number[] {
  if (!Array.isArray(values)) invalid(what, values);
  return values.map((value) => checkU32(value, what));
}

function checkBool(value: boolean, what: string): boolean {
  if (typeof value !== 'boolean') invalid(what, value);
  return value;
}

function encodeWith(type: protobuf.Type, fields: Decoded): Uint8Array {
  return type.encode(fields).finish();
}

// ---------------------------------------------------------------------------------------------
// Conversion (decode side)

const TWO_POW_32 = 0x1_0000_0000;
/** `high` word bound: values with `high >= 2^21` are at least 2^53. */
const U64_HIGH_LIMIT = 0x20_0000;

function toU64(value: unknown, what: string): number {
  if (typeof value === 'number') {
    if (value > MAX_COUNTER) throw new ProtocolError('PROTOCOL_ERROR', `${what} is not below 2^53`);
    return value;
  }
  const { low, high } = value as Exclude<U64, number>;
  const hi = high >>> 0;
  if (hi >= U64_HIGH_LIMIT) throw new ProtocolError('PROTOCOL_ERROR', `${what} is not below 2^53`);
  return hi * TWO_POW_32 + (low >>> 0);
}

/** An optional uint64 field: present in the result only if not 0 (proto3's default, "not stated"). */
function optionalU64<K extends string>(key: K, value: unknown, what: string): { [k in K]?: number } {
  const n = toU64(value, what);
  return n === 0 ? {} : ({ [key]: n } as { [k in K]?: number });
}

function decodeWith(type: protobuf.Type, bytes: Uint8Array): Decoded {
  try {
    return type.decode(bytes) as unknown as Decoded;
  } catch (cause) {
    const reason = cause instanceof Error ? cause.message : String(cause);
    throw new ProtocolError('PROTOCOL_ERROR', `malformed ${type.name} payload: ${reason}`);
  }
}

// ---------------------------------------------------------------------------------------------
// Messages

/** Encodes a HELLO body. */
export function encodeHello(hello: Hello): Uint8Array {
  return encodeWith(HelloType, {
    versions: checkU32s(hello.versions, 'Hello.versions'),
    extensions: checkStrings(hello.extensions, 'Hello.extensions'),
    idleTimeoutMs: checkU32(hello.idleTimeoutMs, 'Hello.idleTimeoutMs'),
    initialCredit: checkU64(hello.initialCredit, 'Hello.initialCredit'),
    maxFramePayload: checkU32(hello.maxFramePayload, 'Hello.maxFramePayload'),
    maxMessageSize: checkU64(hello.maxMessageSize, 'Hello.maxMessageSize'),
    applicationProtocols: checkStrings(hello.applicationProtocols, 'Hello.applicationProtocols'),
    sendQueueLimit: checkU64(hello.sendQueueLimit ?? 0, 'Hello.sendQueueLimit'),
  });
}

/** Decodes a HELLO body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeHello(bytes: Uint8Array): Hello {
  const m = decodeWith(HelloType, bytes);
  return {
    versions: (m.versions as number[]).slice(),
    extensions: (m.extensions as string[]).slice(),
    idleTimeoutMs: m.idleTimeoutMs as number,
    initialCredit: toU64(m.initialCredit, 'Hello.initialCredit'),
    maxFramePayload: m.maxFramePayload as number,
    maxMessageSize: toU64(m.maxMessageSize, 'Hello.maxMessageSize'),
    applicationProtocols: (m.applicationProtocols as string[]).slice(),
    ...optionalU64('sendQueueLimit', m.sendQueueLimit, 'Hello.sendQueueLimit'),
  };
}

/** Encodes a WELCOME body. */
export function encodeWelcome(welcome: Welcome): Uint8Array {
  return encodeWith(WelcomeType, {
    version: checkU32(welcome.version, 'Welcome.version'),
    extensions: checkStrings(welcome.extensions, 'Welcome.extensions'),
    idleTimeoutMs: checkU32(welcome.idleTimeoutMs, 'Welcome.idleTimeoutMs'),
    initialCredit: checkU64(welcome.initialCredit, 'Welcome.initialCredit'),
    maxFramePayload: checkU32(welcome.maxFramePayload, 'Welcome.maxFramePayload'),
    maxMessageSize: checkU64(welcome.maxMessageSize, 'Welcome.maxMessageSize'),
    clientIdleTimeoutMs: checkU32(welcome.clientIdleTimeoutMs, 'Welcome.clientIdleTimeoutMs'),
    applicationProtocol: checkString(welcome.applicationProtocol, 'Welcome.applicationProtocol'),
    sendQueueLimit: checkU64(welcome.sendQueueLimit ?? 0, 'Welcome.sendQueueLimit'),
    alternatives: checkAlternatives(welcome.alternatives, 'Welcome.alternatives'),
  });
}

/** Decodes a WELCOME body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeWelcome(bytes: Uint8Array): Welcome {
  const m = decodeWith(WelcomeType, bytes);
  return {
    version: m.version as number,
    extensions: (m.extensions as string[]).slice(),
    idleTimeoutMs: m.idleTimeoutMs as number,
    initialCredit: toU64(m.initialCredit, 'Welcome.initialCredit'),
    maxFramePayload: m.maxFramePayload as number,
    maxMessageSize: toU64(m.maxMessageSize, 'Welcome.maxMessageSize'),
    clientIdleTimeoutMs: m.clientIdleTimeoutMs as number,
    applicationProtocol: m.applicationProtocol as string,
    ...optionalU64('sendQueueLimit', m.sendQueueLimit, 'Welcome.sendQueueLimit'),
    alternatives: (m.alternatives as string[]).slice(),
  };
}

/** Encodes a GOAWAY body. */
export function encodeGoAway(goAway: GoAway): Uint8Array {
  return encodeWith(GoAwayType, {
    graceMs: checkU32(goAway.graceMs, 'GoAway.graceMs'),
    reason: checkEnum(goAway.reason, 'GoAway.reason'),
    consumedMessages: checkU64(goAway.consumedMessages, 'GoAway.consumedMessages'),
    retryAfterMs: checkU32(goAway.retryAfterMs, 'GoAway.retryAfterMs'),
    doNotReconnect: checkBool(goAway.doNotReconnect, 'GoAway.doNotReconnect'),
    message: checkString(goAway.message, 'GoAway.message'),
    alternatives: checkAlternatives(goAway.alternatives, 'GoAway.alternatives'),
  });
}

/** Decodes a GOAWAY body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeGoAway(bytes: Uint8Array): GoAway {
  const m = decodeWith(GoAwayType, bytes);
  return {
    graceMs: m.graceMs as number,
    reason: m.reason as number,
    consumedMessages: toU64(m.consumedMessages, 'GoAway.consumedMessages'),
    retryAfterMs: m.retryAfterMs as number,
    doNotReconnect: m.doNotReconnect as boolean,
    message: m.message as string,
    alternatives: (m.alternatives as string[]).slice(),
  };
}

/** Encodes a CLOSE body. */
export function encodeClose(close: Close): Uint8Array {
  return encodeWith(CloseType, {
    sentMessages: checkU64(close.sentMessages, 'Close.sentMessages'),
    consumedMessages: checkU64(close.consumedMessages, 'Close.consumedMessages'),
  });
}

/** Decodes a CLOSE body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeClose(bytes: Uint8Array): Close {
  const m = decodeWith(CloseType, bytes);
  return {
    sentMessages: toU64(m.sentMessages, 'Close.sentMessages'),
    consumedMessages: toU64(m.consumedMessages, 'Close.consumedMessages'),
  };
}

/** Encodes a CLOSE_ACK body. */
export function encodeCloseAck(closeAck: CloseAck): Uint8Array {
  return encodeWith(CloseAckType, {
    sentMessages: checkU64(closeAck.sentMessages, 'CloseAck.sentMessages'),
    consumedMessages: checkU64(closeAck.consumedMessages, 'CloseAck.consumedMessages'),
    deliveredMessages: checkU64(closeAck.deliveredMessages, 'CloseAck.deliveredMessages'),
  });
}

/** Decodes a CLOSE_ACK body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeCloseAck(bytes: Uint8Array): CloseAck {
  const m = decodeWith(CloseAckType, bytes);
  return {
    sentMessages: toU64(m.sentMessages, 'CloseAck.sentMessages'),
    consumedMessages: toU64(m.consumedMessages, 'CloseAck.consumedMessages'),
    deliveredMessages: toU64(m.deliveredMessages, 'CloseAck.deliveredMessages'),
  };
}

/** Encodes an ERROR body. */
export function encodeErrorBody(error: ErrorBody): Uint8Array {
  return encodeWith(ErrorType, {
    code: checkEnum(error.code, 'Error.code'),
    message: checkString(error.message, 'Error.message'),
    consumedMessages: checkU64(error.consumedMessages, 'Error.consumedMessages'),
    deliveredMessages: checkU64(error.deliveredMessages, 'Error.deliveredMessages'),
  });
}

/** Decodes an ERROR body; throws {@link ProtocolError} `PROTOCOL_ERROR` if malformed. */
export function decodeErrorBody(bytes: Uint8Array): ErrorBody {
  const m = decodeWith(ErrorType, bytes);
  return {
    code: m.code as number,
    message: m.message as string,
    consumedMessages: toU64(m.consumedMessages, 'Error.consumedMessages'),
    deliveredMessages: toU64(m.deliveredMessages, 'Error.deliveredMessages'),
  };
}
