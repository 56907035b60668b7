import { expect } from 'chai';
import fc from 'fast-check';
import {
  CREDIT_FRAME_SIZE,
  dataFrameCost,
  decodeAll,
  encodeControlFrame,
  encodeFrame,
  encodeRefusal,
  FrameDecoder,
  type FrameDecoderOptions,
  type FrameSink,
  HEARTBEAT_FRAME_SIZE,
  readU64,
  writeCreditFrame,
  writeFrameHeader,
  writeHeartbeatFrame,
  writeU64,
} from '../../src/protocol/codec.js';
import { FrameType, MAX_CONTROL_PAYLOAD, MAX_COUNTER, PREAMBLE } from '../../src/protocol/constants.js';
import { HeartwireError, ProtocolError, UsageError } from '../../src/protocol/errors.js';
import type { ControlFrame, Frame, HeartbeatFrame } from '../../src/protocol/frames.js';
import {
  arbitraryChunkSplit,
  arbitraryFrame,
  arbitraryGarbage,
  arbitraryU64,
  FRAME_KINDS,
} from '../../src/testing/arbitraries.js';
import { concatBytes as concat } from '../../src/testing/arbitraries.js';

const numRuns = Number(process.env.HEARTWIRE_PROPERTY_RUNS ?? 200);
const MAX_DATA = 1024;
const options: FrameDecoderOptions = { expectPreamble: false, maxDataPayload: MAX_DATA };
const KINDS = FRAME_KINDS;

/**
 * Collects frames, assembling each DATA frame from its pieces and checking the piece contract:
 * pieces are non-empty ranges (but for an empty frame), `first` only on the first, `last` only on
 * the last, and `frameLength` and `end` the same on every piece.
 */
class Recorder implements FrameSink {
  readonly frames: Frame[] = [];
  /** Number of pieces each DATA frame came in. */
  readonly pieces: number[] = [];
  private data: Uint8Array | undefined;
  private fill = 0;
  private length = 0;
  private end = false;
  onData(
    source: Uint8Array,
    start: number,
    stop: number,
    frameLength: number,
    first: boolean,
    last: boolean,
    end: boolean,
  ): void {
    expect(first, 'first piece iff no frame in progress').to.equal(this.data === undefined);
    if (first) {
      this.data = new Uint8Array(frameLength);
      this.fill = 0;
      this.length = frameLength;
      this.end = end;
      this.pieces.push(0);
    } else {
      expect(stop, 'a later piece is not empty').to.be.greaterThan(start);
    }
    expect(frameLength).to.equal(this.length);
    expect(end).to.equal(this.end);
    expect(start).to.be.at.least(0);
    expect(stop).to.be.at.most(source.length);
    this.data!.set(source.subarray(start, stop), this.fill);
    this.fill += stop - start;
    this.pieces[this.pieces.length - 1]!++;
    expect(last, 'last piece iff the frame is complete').to.equal(this.fill === frameLength);
    if (last) {
      this.frames.push({ type: FrameType.DATA, end, payload: this.data! });
      this.data = undefined;
    }
  }
  onControl(frame: ControlFrame): void {
    expect(this.data, 'no control frame inside a DATA frame').to.equal(undefined);
    this.frames.push(frame);
  }
}

/** A {@link Recorder} that also takes the whole-message fast path, and checks its contract. */
class MessageRecorder extends Recorder {
  /** Credit the decoder took for the messages passed to `onMessage`. */
  messageCost = 0;
  messages = 0;
  constructor(private readonly wholeMessageMax: number) {
    super();
  }
  onMessage(source: Uint8Array, start: number, stop: number, cost: number): void {
    expect(stop - start, 'not empty').to.be.greaterThan(0);
    expect(stop - start).to.be.at.most(this.wholeMessageMax);
    expect(start).to.be.at.least(6);
    expect(stop).to.be.at.most(source.length);
    expect(cost).to.equal(dataFrameCost(stop - start, true));
    this.messageCost += cost;
    this.messages++;
    this.onData(source, start, stop, stop - start, true, true, true);
  }
}

const ignore: FrameSink = { onData: () => {}, onControl: () => {} };

/** Feeds chunks, checking the buffering bound after every push; returns the frames. */
function decodeChunks(chunks: readonly Uint8Array[], decoderOptions: FrameDecoderOptions): Frame[] {
  const decoder = new FrameDecoder(decoderOptions);
  const recorder = new Recorder();
  for (const chunk of chunks) {
    decoder.push(chunk, recorder);
    expect(decoder.bufferedBytes).to.be.at.most(
      6 + Math.max(decoderOptions.maxDataPayload, MAX_CONTROL_PAYLOAD),
    );
  }
  expect(decoder.bufferedBytes, 'bytes left over').to.equal(0);
  return recorder.frames;
}

function byteChunks(bytes: Uint8Array): Uint8Array[] {
  return Array.from(bytes, (_, i) => bytes.subarray(i, i + 1));
}

function thrown(action: () => void): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectProtocolError(action: () => void, code: string): ProtocolError {
  const error = thrown(action);
  expect(error).to.be.instanceOf(ProtocolError);
  expect((error as ProtocolError).code).to.equal(code);
  return error as ProtocolError;
}

function expectUsageError(action: () => void): void {
  const error = thrown(action);
  expect(error).to.be.instanceOf(UsageError);
  expect((error as UsageError).code).to.equal('INTERNAL_ERROR');
}

const heartbeat: Omit<HeartbeatFrame, 'type'> = {
  echo: true,
  timestamp: 0xfffffffe,
  echoTimestamp: 7,
  echoDelay: 9,
  receivedBytes: MAX_COUNTER,
  creditLimit: 2 ** 32,
  consumedMessages: 1,
};

describe('codec', () => {
  describe('round trip', () => {
    for (const kind of KINDS) {
      it(`decode(encode(frame)) equals frame for ${kind} frames`, () => {
        fc.assert(
          fc.property(arbitraryFrame({ kinds: [kind], maxDataPayload: MAX_DATA }), (frame) => {
            expect(decodeAll(encodeFrame(frame), options)).to.deep.equal([frame]);
          }),
          { numRuns },
        );
      });
    }

    it('round-trips sequences of frames of every type', () => {
      fc.assert(
        fc.property(fc.array(arbitraryFrame({ maxDataPayload: MAX_DATA }), { maxLength: 12 }), (frames) => {
          expect(decodeAll(concat(frames.map(encodeFrame)), options)).to.deep.equal(frames);
        }),
        { numRuns },
      );
    });

    it('encodeControlFrame agrees with encodeFrame', () => {
      fc.assert(
        fc.property(arbitraryFrame({ kinds: KINDS.filter((kind) => kind !== 'data') }), (frame) => {
          expect(encodeControlFrame(frame as ControlFrame)).to.deep.equal(encodeFrame(frame));
        }),
        { numRuns },
      );
    });
  });

  describe('chunking', () => {
    const streamArbitrary = fc
      .tuple(fc.boolean(), fc.array(arbitraryFrame({ maxDataPayload: MAX_DATA }), { maxLength: 10 }))
      .map(([withPreamble, frames]) => ({
        withPreamble,
        frames,
        bytes: concat([...(withPreamble ? [PREAMBLE] : []), ...frames.map(encodeFrame)]),
      }));

    it('decodes the same frames whole, byte by byte and under any chunk split', () => {
      fc.assert(
        fc.property(
          streamArbitrary.chain((stream) => fc.tuple(fc.constant(stream), arbitraryChunkSplit(stream.bytes))),
          ([{ withPreamble, frames, bytes }, chunks]) => {
            const decoderOptions = { expectPreamble: withPreamble, maxDataPayload: MAX_DATA };
            expect(decodeChunks([bytes], decoderOptions)).to.deep.equal(frames);
            expect(decodeChunks(byteChunks(bytes), decoderOptions)).to.deep.equal(frames);
            expect(decodeChunks(chunks, decoderOptions)).to.deep.equal(frames);
          },
        ),
        { numRuns },
      );
    });

    it('with wholeMessageMax, passes whole one-frame messages inside a chunk to onMessage and takes their credit', () => {
      fc.assert(
        fc.property(
          streamArbitrary.chain((stream) => fc.tuple(fc.constant(stream), arbitraryChunkSplit(stream.bytes))),
          fc.integer({ min: 1, max: MAX_DATA }),
          ([{ withPreamble, frames }, chunks], wholeMessageMax) => {
            const decoder = new FrameDecoder({ expectPreamble: withPreamble, maxDataPayload: MAX_DATA });
            decoder.wholeMessageMax = wholeMessageMax;
            decoder.dataCredit = 1e9;
            const recorder = new MessageRecorder(wholeMessageMax);
            for (const chunk of chunks) decoder.push(chunk, recorder);
            expect(recorder.frames).to.deep.equal(frames);
            // Only the fast path takes credit in the decoder (the sink accounts for the rest).
            expect(decoder.dataCredit).to.equal(1e9 - recorder.messageCost);
            // Taken whole: every DATA frame with END of 1..wholeMessageMax bytes when not split.
            if (chunks.length === 1) {
              const eligible = frames.filter(
                (f) =>
                  f.type === FrameType.DATA &&
                  f.end &&
                  f.payload.length > 0 &&
                  f.payload.length <= wholeMessageMax,
              ).length;
              expect(recorder.messages).to.equal(eligible);
            }
          },
        ),
        { numRuns },
      );
    });

    it('sends a whole message beyond the credit to the error path, not to onMessage', () => {
      const bytes = encodeFrame({ type: FrameType.DATA, end: true, payload: new Uint8Array(100) });
      const decoder = new FrameDecoder(options);
      decoder.wholeMessageMax = MAX_DATA;
      decoder.dataCredit = dataFrameCost(100, true) - 1;
      const recorder = new MessageRecorder(MAX_DATA);
      const error = thrown(() => decoder.push(bytes, recorder));
      expect((error as HeartwireError).code).to.equal('FLOW_CONTROL_ERROR');
      expect(recorder.messages).to.equal(0);
    });

    it('passes a DATA frame inside one chunk as a range of that chunk, in one call', () => {
      const bytes = concat([
        encodeFrame({ type: FrameType.DATA, end: true, payload: Uint8Array.of(1, 2, 3) }),
      ]);
      const seen: Array<{ source: Uint8Array; start: number; stop: number; first: boolean; last: boolean }> =
        [];
      new FrameDecoder(options).push(bytes, {
        onData: (source, start, stop, _length, first, last) =>
          seen.push({ source, start, stop, first, last }),
        onControl: () => {},
      });
      expect(seen).to.have.length(1);
      expect(seen[0]!.source).to.equal(bytes);
      expect(seen[0]).to.include({ start: 6, stop: 9, first: true, last: true });
    });

    it('passes a DATA frame spanning chunks piece by piece, without buffering or copying it', () => {
      const payload = Uint8Array.from({ length: 1000 }, (_, i) => i & 0xff);
      const bytes = encodeFrame({ type: FrameType.DATA, end: false, payload });
      const decoder = new FrameDecoder(options);
      const recorder = new Recorder();
      decoder.push(bytes.subarray(0, 3), recorder);
      expect(decoder.bufferedBytes).to.equal(3);
      decoder.push(bytes.subarray(3, 500), recorder);
      expect(decoder.bufferedBytes).to.equal(0);
      decoder.push(bytes.subarray(500, 501), recorder);
      decoder.push(bytes.subarray(501), recorder);
      expect(decoder.bufferedBytes).to.equal(0);
      expect(recorder.pieces).to.deep.equal([3]);
      expect((recorder.frames[0] as { payload: Uint8Array }).payload).to.deep.equal(payload);
    });

    it('tracks preambleReceived byte by byte', () => {
      const decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: MAX_DATA });
      for (let i = 0; i < PREAMBLE.length; i++) {
        expect(decoder.preambleReceived).to.equal(false);
        decoder.push(PREAMBLE.subarray(i, i + 1), ignore);
      }
      expect(decoder.preambleReceived).to.equal(true);
      expect(new FrameDecoder(options).preambleReceived).to.equal(true);
    });

    it('accepts empty chunks anywhere', () => {
      const frame: Frame = { type: FrameType.CREDIT, creditLimit: 5, consumedMessages: 6 };
      const bytes = encodeFrame(frame);
      const chunks = [
        new Uint8Array(0),
        bytes.subarray(0, 6),
        new Uint8Array(0),
        bytes.subarray(6),
        new Uint8Array(0),
      ];
      expect(decodeChunks(chunks, options)).to.deep.equal([frame]);
    });
  });

  describe('decoder errors', () => {
    it('rejects the first wrong preamble byte immediately, even alone', () => {
      const decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: MAX_DATA });
      decoder.push(Uint8Array.of(0x89), ignore);
      expectProtocolError(() => decoder.push(Uint8Array.of(0x47), ignore), 'PROTOCOL_MISMATCH');
      expectProtocolError(
        () =>
          new FrameDecoder({ expectPreamble: true, maxDataPayload: MAX_DATA }).push(
            Uint8Array.of(0x16),
            ignore,
          ),
        'PROTOCOL_MISMATCH',
      );
    });

    it('checks DATA length against maxDataPayload at the header, before any payload', () => {
      const header = new Uint8Array(6);
      writeFrameHeader(header, 0, MAX_DATA + 1, FrameType.DATA, 0);
      const decoder = new FrameDecoder(options);
      decoder.push(header.subarray(0, 5), ignore);
      expectProtocolError(() => decoder.push(header.subarray(5), ignore), 'FRAME_TOO_LARGE');
    });

    it('applies a changed maxDataPayload to later headers', () => {
      const frame = encodeFrame({ type: FrameType.DATA, end: true, payload: new Uint8Array(2000) });
      const decoder = new FrameDecoder(options);
      decoder.maxDataPayload = 2000;
      const recorder = new Recorder();
      decoder.push(frame, recorder);
      expect(recorder.frames).to.have.length(1);
      decoder.maxDataPayload = 1999;
      expectProtocolError(() => decoder.push(frame, recorder), 'FRAME_TOO_LARGE');
    });

    it('checks the length of every frame type at the header', () => {
      const cases: Array<[type: number, length: number, code: string | null]> = [
        [FrameType.DATA, 0, 'PROTOCOL_ERROR'], // no END flag in these headers
        [FrameType.CREDIT, 15, 'PROTOCOL_ERROR'],
        [FrameType.CREDIT, 17, 'FRAME_TOO_LARGE'],
        [FrameType.CREDIT, 0xffffffff, 'FRAME_TOO_LARGE'],
        [FrameType.HEARTBEAT, 0, 'PROTOCOL_ERROR'],
        [FrameType.HEARTBEAT, 37, 'FRAME_TOO_LARGE'],
        [FrameType.HELLO, 4097, 'FRAME_TOO_LARGE'],
        [FrameType.ERROR, 4097, 'FRAME_TOO_LARGE'],
        [0x40, 4097, 'FRAME_TOO_LARGE'],
        [0xff, 4097, 'FRAME_TOO_LARGE'],
        [0x40, 4096, null],
        [FrameType.HELLO, 4096, null],
        [FrameType.DATA, MAX_DATA, null],
      ];
      for (let type = 0x03; type <= 0x0f; type++) cases.push([type, 0, 'PROTOCOL_ERROR']);
      for (let type = 0x16; type <= 0x3f; type++) cases.push([type, 0, 'PROTOCOL_ERROR']);
      for (const [type, length, code] of cases) {
        const header = Uint8Array.of(length >>> 24, length >>> 16, length >>> 8, length, type, 0);
        const decoder = new FrameDecoder(options);
        if (code === null) {
          decoder.push(header, ignore);
          // A control frame's header is held until its payload is complete; DATA is passed on.
          expect(decoder.bufferedBytes, `type ${type}`).to.equal(type === FrameType.DATA ? 0 : 6);
        } else {
          expect(expectProtocolError(() => decoder.push(header, ignore), code).message).to.be.a('string');
        }
      }
    });

    it('rejects u64 fields of 2^53 or more', () => {
      const credit = encodeFrame({ type: FrameType.CREDIT, creditLimit: 0, consumedMessages: 0 });
      credit[6 + 8 + 1] = 0x20; // consumedMessages = 2^53
      expectProtocolError(() => decodeAll(credit, options), 'PROTOCOL_ERROR');
      const hb = encodeFrame({ type: FrameType.HEARTBEAT, ...heartbeat });
      hb[6 + 12] = 0x80; // receivedBytes high bit
      expectProtocolError(() => decodeAll(hb, options), 'PROTOCOL_ERROR');
    });

    it('is poisoned after an error: every later push throws the same error', () => {
      const decoder = new FrameDecoder(options);
      const error = expectProtocolError(
        () => decoder.push(Uint8Array.of(0, 0, 0, 0, 3, 0), ignore),
        'PROTOCOL_ERROR',
      );
      expect(
        thrown(() =>
          decoder.push(encodeFrame({ type: FrameType.DATA, end: true, payload: new Uint8Array(1) }), ignore),
        ),
      ).to.equal(error);
      expect(thrown(() => decoder.push(new Uint8Array(0), ignore))).to.equal(error);
    });

    it('propagates what the sink throws and is poisoned by it', () => {
      const failure = new Error('sink failed');
      const decoder = new FrameDecoder(options);
      const bytes = encodeFrame({ type: FrameType.CLOSE, close: { sentMessages: 1, consumedMessages: 2 } });
      const sink: FrameSink = {
        onData: () => {},
        onControl: () => {
          throw failure;
        },
      };
      expect(thrown(() => decoder.push(bytes, sink))).to.equal(failure);
      expect(thrown(() => decoder.push(bytes, ignore))).to.equal(failure);
    });

    for (const withPreamble of [false, true]) {
      it(`fails on garbage ${withPreamble ? 'after a valid preamble' : 'from the first byte'} only with ProtocolError, within the buffering bound`, () => {
        const garbage = arbitraryGarbage({ withPreamble });
        fc.assert(
          fc.property(
            garbage.chain((bytes) => arbitraryChunkSplit(bytes)),
            fc.boolean(),
            fc.constantFrom(64, 1024, 100_000),
            (chunks, expectPreamble, maxDataPayload) => {
              const decoder = new FrameDecoder({ expectPreamble, maxDataPayload });
              const bound = 6 + Math.max(maxDataPayload, MAX_CONTROL_PAYLOAD);
              let failure: unknown;
              for (const chunk of chunks) {
                try {
                  decoder.push(chunk, ignore);
                } catch (error) {
                  failure = error;
                  break;
                }
                expect(decoder.bufferedBytes).to.be.at.most(bound);
              }
              if (failure !== undefined) {
                expect(failure).to.be.instanceOf(ProtocolError);
                expect((failure as HeartwireError).code).to.be.oneOf([
                  'PROTOCOL_MISMATCH',
                  'PROTOCOL_ERROR',
                  'FRAME_TOO_LARGE',
                ]);
                expect(thrown(() => decoder.push(Uint8Array.of(0), ignore))).to.equal(failure);
              }
            },
          ),
          { numRuns },
        );
      });
    }
  });

  describe('encoders', () => {
    it('writeCreditFrame writes a whole CREDIT frame at an offset', () => {
      const target = new Uint8Array(CREDIT_FRAME_SIZE + 3);
      writeCreditFrame(target, 3, MAX_COUNTER, 12);
      const expected = encodeFrame({
        type: FrameType.CREDIT,
        creditLimit: MAX_COUNTER,
        consumedMessages: 12,
      });
      expect(target.subarray(3)).to.deep.equal(expected);
      expect(CREDIT_FRAME_SIZE).to.equal(22);
    });

    it('encodeRefusal writes the preamble and an ERROR with no messages consumed or delivered', () => {
      const bytes = encodeRefusal(15, 'connection limit reached');
      expect(bytes.subarray(0, PREAMBLE.length)).to.deep.equal(PREAMBLE);
      expect(decodeAll(bytes, { ...options, expectPreamble: true })).to.deep.equal([
        {
          type: FrameType.ERROR,
          error: { code: 15, message: 'connection limit reached', consumedMessages: 0, deliveredMessages: 0 },
        },
      ]);
    });

    it('writeHeartbeatFrame writes a whole HEARTBEAT frame at an offset', () => {
      const target = new Uint8Array(HEARTBEAT_FRAME_SIZE + 1);
      writeHeartbeatFrame(target, 1, heartbeat);
      expect(target.subarray(1)).to.deep.equal(encodeFrame({ type: FrameType.HEARTBEAT, ...heartbeat }));
      expect(decodeAll(target.subarray(1), options)).to.deep.equal([
        { type: FrameType.HEARTBEAT, ...heartbeat },
      ]);
      expect(HEARTBEAT_FRAME_SIZE).to.equal(42);
    });

    it('writeU64 and readU64 round-trip every value below 2^53', () => {
      fc.assert(
        fc.property(arbitraryU64(), fc.nat({ max: 8 }), (value, offset) => {
          const bytes = new Uint8Array(16);
          writeU64(bytes, offset, value);
          expect(readU64(bytes, offset)).to.equal(value);
          expect(new DataView(bytes.buffer).getBigUint64(offset)).to.equal(BigInt(value));
        }),
        { numRuns },
      );
    });

    it('readU64 rejects 2^53 and above with PROTOCOL_ERROR', () => {
      for (const value of [2n ** 53n, 2n ** 64n - 1n, 2n ** 63n]) {
        const bytes = new Uint8Array(8);
        new DataView(bytes.buffer).setBigUint64(0, value);
        expectProtocolError(() => readU64(bytes, 0), 'PROTOCOL_ERROR');
      }
    });

    it('rejects values that cannot go on the wire with UsageError INTERNAL_ERROR', () => {
      const buffer = new Uint8Array(64);
      for (const bad of [-1, 0.5, 2 ** 53, Number.NaN, Infinity]) {
        expectUsageError(() => writeU64(buffer, 0, bad));
        expectUsageError(() => writeCreditFrame(buffer, 0, bad, 0));
        expectUsageError(() => writeCreditFrame(buffer, 0, 0, bad));
        expectUsageError(() => writeHeartbeatFrame(buffer, 0, { ...heartbeat, creditLimit: bad }));
        expectUsageError(() => writeHeartbeatFrame(buffer, 0, { ...heartbeat, timestamp: bad }));
      }
      expectUsageError(() => writeHeartbeatFrame(buffer, 0, { ...heartbeat, echoDelay: 2 ** 32 }));
      expectUsageError(() => writeU64(buffer, 57, 1));
      expectUsageError(() => writeCreditFrame(buffer, 43, 1, 1));
      expectUsageError(() => writeHeartbeatFrame(buffer, 23, heartbeat));
      expectUsageError(() => writeFrameHeader(buffer, -1, 0, FrameType.DATA, 1));
    });

    it('writeFrameHeader validates the header against the limits of the type', () => {
      const buffer = new Uint8Array(6);
      writeFrameHeader(buffer, 0, 16 * 1024 * 1024, FrameType.DATA, 0);
      writeFrameHeader(buffer, 0, 4096, 0x80, 0xff);
      expectUsageError(() => writeFrameHeader(buffer, 0, 16 * 1024 * 1024 + 1, FrameType.DATA, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 0, FrameType.DATA, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 15, FrameType.CREDIT, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 35, FrameType.HEARTBEAT, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 4097, FrameType.HELLO, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 0, 0x03, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 0, 0x100, 0));
      expectUsageError(() => writeFrameHeader(buffer, 0, 0, FrameType.CLOSE, 0x100));
      expectUsageError(() => writeFrameHeader(buffer, 0, -1, FrameType.CLOSE, 0));
    });

    it('encodeFrame and encodeControlFrame reject frames that are invalid on the wire', () => {
      expectUsageError(() => encodeFrame({ type: FrameType.DATA, end: false, payload: new Uint8Array(0) }));
      expectUsageError(() =>
        encodeControlFrame({ type: 'extension', frameType: 0x3f, flags: 0, payload: new Uint8Array(0) }),
      );
      expectUsageError(() =>
        encodeControlFrame({ type: 'extension', frameType: 0x80, flags: 0, payload: new Uint8Array(4097) }),
      );
      expectUsageError(() =>
        encodeControlFrame({
          type: FrameType.HELLO,
          hello: {
            versions: [],
            extensions: Array.from({ length: 20 }, () => 'x'.repeat(256)),
            idleTimeoutMs: 0,
            initialCredit: 0,
            maxFramePayload: 0,
            maxMessageSize: 0,
            applicationProtocols: [],
          },
        }),
      );
      expectUsageError(() => encodeControlFrame({ type: FrameType.DATA } as unknown as ControlFrame));
    });
  });
});
