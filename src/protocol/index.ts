/**
 * The sans-IO protocol core: no I/O, no clock, no timers (SPEC.md).
 * @module
 */
export { Engine } from './engine.js';
export { SharedMemoryBudget } from './budget.js';
export * from './errors.js';
export * from './constants.js';
export type * from './frames.js';
export { GoAwayReason } from './frames.js';
export type * from './types.js';
export { MAX_ALTERNATIVES, parseAlternative, formatAlternative } from './alternatives.js';
export type { AlternativeEndpoint } from './alternatives.js';
export { FrameDecoder, encodeFrame, decodeAll } from './codec.js';
export type { FrameSink, FrameDecoderOptions } from './codec.js';
