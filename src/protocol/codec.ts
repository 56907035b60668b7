/**
 * Frame codec (SPEC.md §3–§5, §10), one import for its users: wire primitives
 * (`codec/wire.ts`), encoders (`codec/encode.ts`), the incremental decoder (`codec/decode.ts`),
 * and test and tooling helpers (`codec/collect.ts`).
 * @module
 */
export {
  CREDIT_FRAME_SIZE,
  HEARTBEAT_FRAME_SIZE,
  dataFrameCost,
  putHeader,
  readU64,
  writeU64,
} from './codec/wire.js';
export {
  encodeControlFrame,
  encodeFrame,
  encodeRefusal,
  writeCreditFrame,
  writeFrameHeader,
  writeHeartbeatFrame,
} from './codec/encode.js';
export { FrameDecoder } from './codec/decode.js';
export type { FrameDecoderOptions, FrameSink } from './codec/decode.js';
export { FrameCollector, concatBytes, decodeAll } from './codec/collect.js';
