/**
 * `heartwire/wire`: the wire format of protocol version 1 (SPEC.md §3–§11): constants, frame
 * types, numeric error codes and the frame codec. For tools that read or write heartwire
 * frames themselves (proxies, conformance checks, other implementations); an application that
 * uses `connect()` and `createServer()` needs none of it.
 *
 * ```ts
 * import { FrameDecoder, FrameType, PREAMBLE } from 'heartwire/wire';
 * ```
 * @module
 */
export * from './protocol/constants.js';
export type * from './protocol/frames.js';
export { GoAwayReason } from './protocol/frames.js';
export { WireErrorCode, wireErrorName } from './protocol/errors.js';
export type { WireErrorName } from './protocol/errors.js';
export {
  FrameDecoder,
  encodeFrame,
  encodeControlFrame,
  writeFrameHeader,
  dataFrameCost,
  decodeAll,
} from './protocol/codec.js';
export type { FrameSink, FrameDecoderOptions } from './protocol/codec.js';
