/**
 * Test and tooling helpers over the decoder: a sink that collects whole frames,
 * {@link decodeAll}, and {@link concatBytes}. Not on any hot path.
 * @module
 */
import { FrameType } from '../constants.js';
import type { ControlFrame, Frame } from '../frames.js';
import { FrameDecoder } from './decode.js';
import type { FrameDecoderOptions, FrameSink } from './decode.js';

/** A sink that collects frames, assembling each DATA frame's pieces into a copy (tests, tooling). */
export class FrameCollector implements FrameSink {
  readonly frames: Frame[] = [];
  private data: Uint8Array | undefined;
  private fill = 0;
  onData(
    source: Uint8Array,
    start: number,
    stop: number,
    frameLength: number,
    first: boolean,
    last: boolean,
    end: boolean,
  ): void {
    if (first) {
      this.data = new Uint8Array(frameLength);
      this.fill = 0;
    }
    this.data!.set(source.subarray(start, stop), this.fill);
    this.fill += stop - start;
    if (last) this.frames.push({ type: FrameType.DATA, end, payload: this.data! });
  }
  onMessage(source: Uint8Array, start: number, stop: number): void {
    this.frames.push({ type: FrameType.DATA, end: true, payload: source.slice(start, stop) });
  }
  onControl(frame: ControlFrame): void {
    this.frames.push(frame);
  }
}

/**
 * Decodes a whole byte stream into frames (a test and tooling helper; DATA payloads are
 * copied). Bytes of a trailing incomplete frame are ignored.
 * @throws ProtocolError as {@link FrameDecoder.push}.
 */
export function decodeAll(bytes: Uint8Array, options: FrameDecoderOptions): Frame[] {
  const sink = new FrameCollector();
  new FrameDecoder(options).push(bytes, sink);
  return sink.frames;
}

/** Concatenates byte arrays into a new one (tests, tooling: the conformance runner, arbitraries). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let length = 0;
  for (const part of parts) length += part.length;
  const out = new Uint8Array(length);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}
