/**
 * What `write()` and `send()` accept as a message, and its bytes.
 * @module
 */
import { isAnyArrayBuffer } from 'node:util/types';

/**
 * A message to send: a `Uint8Array` (or `Buffer`) as is; any other `ArrayBufferView` (typed
 * array, `DataView`) or an `ArrayBuffer`/`SharedArrayBuffer` as its bytes (no copy); a string as
 * its UTF-8 encoding.
 */
export type Payload = ArrayBufferView | ArrayBufferLike | string;

const encoder = new TextEncoder();

/**
 * The bytes of a payload (see {@link Payload}); throws a `TypeError` with `code`
 * `ERR_INVALID_ARG_TYPE` for anything else. A `Uint8Array` costs one `instanceof` check.
 */
export function payloadBytes(payload: unknown): Uint8Array {
  if (payload instanceof Uint8Array) return payload;
  return otherPayloadBytes(payload);
}

function otherPayloadBytes(payload: unknown): Uint8Array {
  if (typeof payload === 'string') return encoder.encode(payload);
  if (ArrayBuffer.isView(payload))
    return new Uint8Array(payload.buffer, payload.byteOffset, payload.byteLength);
  if (isAnyArrayBuffer(payload)) return new Uint8Array(payload);
  const received =
    payload === null
      ? 'null'
      : typeof payload === 'object'
        ? `an instance of ${(payload as object).constructor?.name ?? 'Object'}`
        : `type ${typeof payload} (${String(payload).slice(0, 25)})`;
  const error = new TypeError(
    `The "payload" argument must be a Uint8Array, another ArrayBufferView, an ArrayBuffer or a string. Received ${received}`,
  ) as TypeError & { code: string };
  error.code = 'ERR_INVALID_ARG_TYPE';
  throw error;
}
