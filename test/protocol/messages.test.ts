import { expect } from 'chai';
import fc from 'fast-check';
import { ProtocolError, UsageError } from '../../src/protocol/errors.js';
import type { ErrorBody, GoAway, Hello, Welcome } from '../../src/protocol/frames.js';
import {
  decodeClose,
  decodeCloseAck,
  decodeErrorBody,
  decodeGoAway,
  decodeHello,
  decodeWelcome,
  encodeClose,
  encodeCloseAck,
  encodeErrorBody,
  encodeGoAway,
  encodeHello,
  encodeWelcome,
  truncateUtf8,
} from '../../src/protocol/messages.js';
import {
  arbitraryClose,
  arbitraryCloseAck,
  arbitraryErrorBody,
  arbitraryGoAway,
  arbitraryHello,
  arbitraryWelcome,
} from '../../src/testing/arbitraries.js';

const numRuns = Number(process.env.HEARTWIRE_PROPERTY_RUNS ?? 200);
const utf8 = new TextEncoder();

const hello: Hello = {
  versions: [1],
  extensions: [],
  idleTimeoutMs: 30_000,
  initialCredit: 65_536,
  maxFramePayload: 16_384,
  maxMessageSize: 1_048_576,
  applicationProtocols: [],
};
const welcome: Welcome = {
  version: 1,
  extensions: [],
  idleTimeoutMs: 30_000,
  initialCredit: 65_536,
  maxFramePayload: 16_384,
  maxMessageSize: 1_048_576,
  clientIdleTimeoutMs: 30_000,
  applicationProtocol: '',
};
const goAway: GoAway = {
  graceMs: 1000,
  reason: 1,
  consumedMessages: 3,
  retryAfterMs: 0,
  doNotReconnect: true,
  message: '',
};
const errorBody: ErrorBody = { code: 1, message: '', consumedMessages: 0, deliveredMessages: 0 };

/** Each message's codec, with a valid sample and the arbitrary of its values. */
const codecs = [
  { name: 'Hello', encode: encodeHello, decode: decodeHello, arbitrary: arbitraryHello() },
  { name: 'Welcome', encode: encodeWelcome, decode: decodeWelcome, arbitrary: arbitraryWelcome() },
  { name: 'GoAway', encode: encodeGoAway, decode: decodeGoAway, arbitrary: arbitraryGoAway() },
  { name: 'Close', encode: encodeClose, decode: decodeClose, arbitrary: arbitraryClose() },
  { name: 'CloseAck', encode: encodeCloseAck, decode: decodeCloseAck, arbitrary: arbitraryCloseAck() },
  { name: 'Error', encode: encodeErrorBody, decode: decodeErrorBody, arbitrary: arbitraryErrorBody() },
] as Array<{
  name: string;
  encode: (value: never) => Uint8Array;
  decode: (bytes: Uint8Array) => object;
  arbitrary: fc.Arbitrary<object>;
}>;

function thrown(action: () => void): unknown {
  try {
    action();
  } catch (error) {
    return error;
  }
  return undefined;
}

function expectDecodeError(action: () => void): void {
  const error = thrown(action);
  expect(error).to.be.instanceOf(ProtocolError);
  expect((error as ProtocolError).code).to.equal('PROTOCOL_ERROR');
}

function expectUsageError(action: () => void): void {
  const error = thrown(action);
  expect(error).to.be.instanceOf(UsageError);
  expect((error as UsageError).code).to.equal('INTERNAL_ERROR');
}

/** A varint field (wire type 0) with a 64-bit value, as protobuf encodes it. */
function varintField(field: number, value: bigint): Uint8Array {
  const bytes = [field << 3];
  do {
    const low = Number(value & 0x7fn);
    value >>= 7n;
    bytes.push(value === 0n ? low : low | 0x80);
  } while (value !== 0n);
  return Uint8Array.from(bytes);
}

describe('messages', () => {
  for (const { name, encode, decode, arbitrary } of codecs) {
    describe(name, () => {
      it('round-trips every encodable value', () => {
        fc.assert(
          fc.property(arbitrary, (value) => {
            expect(decode(encode(value as never))).to.deep.equal(value);
          }),
          { numRuns },
        );
      });

      it('decodes arbitrary bytes or throws ProtocolError PROTOCOL_ERROR, nothing else', () => {
        fc.assert(
          fc.property(fc.uint8Array({ maxLength: 64 }), (bytes) => {
            const error = thrown(() => decode(bytes));
            if (error !== undefined) {
              expect(error).to.be.instanceOf(ProtocolError);
              expect((error as ProtocolError).code).to.equal('PROTOCOL_ERROR');
            }
          }),
          { numRuns },
        );
      });

      it('decodes an empty payload to all defaults', () => {
        const decoded = decode(new Uint8Array(0)) as Record<string, unknown>;
        for (const [key, value] of Object.entries(decoded)) {
          if (Array.isArray(value)) expect(value, key).to.deep.equal([]);
          else expect(value, key).to.be.oneOf([0, '', false]);
        }
      });

      it('ignores unknown fields', () => {
        fc.assert(
          fc.property(arbitrary, (value) => {
            const encoded = encode(value as never);
            const unknown = Uint8Array.of(0xf8, 0x07, 0x2a, 0xfa, 0x07, 0x01, 0x00); // fields 127 (varint), 127 (bytes)
            const extended = new Uint8Array(encoded.length + unknown.length);
            extended.set(encoded);
            extended.set(unknown, encoded.length);
            expect(decode(extended)).to.deep.equal(value);
          }),
          { numRuns: Math.ceil(numRuns / 4) },
        );
      });
    });
  }

  describe('uint64 fields', () => {
    it('decodes values up to 2^53 - 1 exactly', () => {
      const bytes = new Uint8Array([...varintField(1, 2n ** 53n - 1n), ...varintField(2, 2n ** 32n)]);
      expect(decodeClose(bytes)).to.deep.equal({ sentMessages: 2 ** 53 - 1, consumedMessages: 2 ** 32 });
    });

    it('rejects values of 2^53 and above with PROTOCOL_ERROR', () => {
      for (const value of [2n ** 53n, 2n ** 64n - 1n]) {
        expectDecodeError(() => decodeClose(varintField(2, value)));
        expectDecodeError(() => decodeCloseAck(varintField(3, value)));
        expectDecodeError(() => decodeHello(varintField(4, value)));
        expectDecodeError(() => decodeWelcome(varintField(6, value)));
        expectDecodeError(() => decodeGoAway(varintField(3, value)));
        expectDecodeError(() => decodeErrorBody(varintField(4, value)));
      }
    });

    it('encoders reject values that are not integers in [0, 2^53)', () => {
      for (const bad of [-1, 1.5, 2 ** 53, Number.NaN]) {
        expectUsageError(() => encodeClose({ sentMessages: bad, consumedMessages: 0 }));
        expectUsageError(() => encodeHello({ ...hello, initialCredit: bad }));
        expectUsageError(() => encodeErrorBody({ ...errorBody, deliveredMessages: bad }));
      }
    });
  });

  describe('validation', () => {
    it('encoders reject u32 fields out of range and enums outside int32', () => {
      expectUsageError(() => encodeHello({ ...hello, idleTimeoutMs: 2 ** 32 }));
      expectUsageError(() => encodeHello({ ...hello, versions: [1, -1] }));
      expectUsageError(() => encodeWelcome({ ...welcome, clientIdleTimeoutMs: 0.5 }));
      expectUsageError(() => encodeGoAway({ ...goAway, reason: 2 ** 31 }));
      expectUsageError(() => encodeErrorBody({ ...errorBody, code: -(2 ** 31) - 1 }));
      expectUsageError(() => encodeGoAway({ ...goAway, doNotReconnect: 1 as unknown as boolean }));
      expectUsageError(() => encodeGoAway({ ...goAway, message: undefined as unknown as string }));
    });

    it('keeps unknown enum values as numbers', () => {
      expect(decodeGoAway(encodeGoAway({ ...goAway, reason: 99 })).reason).to.equal(99);
      expect(decodeErrorBody(encodeErrorBody({ ...errorBody, code: 4242 })).code).to.equal(4242);
    });

    it('rejects strings that are not valid UTF-8', () => {
      expectDecodeError(() => decodeGoAway(Uint8Array.of(0x32, 0x02, 0xc3, 0x28)));
      expectDecodeError(() => decodeHello(Uint8Array.of(0x12, 0x01, 0xff)));
    });

    it('rejects truncated and malformed payloads', () => {
      expectDecodeError(() => decodeClose(Uint8Array.of(0x08)));
      expectDecodeError(() => decodeWelcome(Uint8Array.of(0x42, 0x05, 0x61)));
      expectDecodeError(() => decodeErrorBody(Uint8Array.of(0x0b))); // start group
      expectDecodeError(() => decodeCloseAck(Uint8Array.of(0x0f))); // wire type 7
    });

    it('ignores a known field number with the wrong wire type, as an unknown field', () => {
      // field 1 (sent_messages) as a length-delimited field
      expect(decodeClose(Uint8Array.of(0x0a, 0x01, 0x05, 0x10, 0x02))).to.deep.equal({
        sentMessages: 0,
        consumedMessages: 2,
      });
    });

    it('returns fresh, mutable arrays', () => {
      const decoded = decodeHello(new Uint8Array(0));
      decoded.versions.push(1);
      decoded.extensions.push('x');
      expect(decodeHello(new Uint8Array(0)).versions).to.deep.equal([]);
    });
  });

  describe('strings', () => {
    it('truncateUtf8 keeps at most 256 UTF-8 bytes, cut at a code point boundary', () => {
      fc.assert(
        fc.property(
          fc.oneof(
            fc.string({ unit: 'binary', maxLength: 200 }),
            fc.string({ unit: 'grapheme', maxLength: 300 }),
          ),
          (text) => {
            const truncated = truncateUtf8(text);
            const length = utf8.encode(truncated).length;
            expect(length).to.be.at.most(256);
            expect(text.startsWith(truncated)).to.equal(true);
            if (truncated !== text) {
              const next = String.fromCodePoint(text.codePointAt(truncated.length)!);
              expect(length + utf8.encode(next).length).to.be.greaterThan(256);
            }
          },
        ),
        { numRuns },
      );
    });

    it('truncates at the boundary of 1-, 2-, 3- and 4-byte characters', () => {
      expect(truncateUtf8('a'.repeat(300))).to.equal('a'.repeat(256));
      expect(truncateUtf8('é'.repeat(200))).to.equal('é'.repeat(128));
      expect(truncateUtf8('€'.repeat(100))).to.equal('€'.repeat(85));
      expect(truncateUtf8('a' + '😀'.repeat(70))).to.equal('a' + '😀'.repeat(63));
      expect(truncateUtf8('abc', 2)).to.equal('ab');
    });

    it('replaces unpaired surrogates, which have no UTF-8 encoding', () => {
      expect(truncateUtf8('a\ud800b\udc00')).to.equal('a\ufffdb\ufffd');
      expect(decodeGoAway(encodeGoAway({ ...goAway, message: 'x\udbff' })).message).to.equal('x\ufffd');
    });

    it('encoders truncate every string field to 256 bytes', () => {
      const long = 'ü'.repeat(200);
      const expected = 'ü'.repeat(128);
      const decodedHello = decodeHello(
        encodeHello({ ...hello, extensions: [long], applicationProtocols: [long] }),
      );
      expect(decodedHello.extensions).to.deep.equal([expected]);
      expect(decodedHello.applicationProtocols).to.deep.equal([expected]);
      const decodedWelcome = decodeWelcome(
        encodeWelcome({ ...welcome, extensions: [long], applicationProtocol: long }),
      );
      expect(decodedWelcome.extensions).to.deep.equal([expected]);
      expect(decodedWelcome.applicationProtocol).to.equal(expected);
      expect(decodeGoAway(encodeGoAway({ ...goAway, message: long })).message).to.equal(expected);
      expect(decodeErrorBody(encodeErrorBody({ ...errorBody, message: long })).message).to.equal(expected);
    });
  });
});
