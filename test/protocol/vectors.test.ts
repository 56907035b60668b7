/**
 * Checks the implementation's frame decoder (and encoders) against the test vectors of SPEC.md
 * §12, parsed from the spec itself so that the document and the code cannot drift apart. The
 * vectors are decoder-only (§12): no engine, no connection state.
 */
import { readFileSync } from 'node:fs';
import { expect } from 'chai';
import {
  decodeAll,
  encodeFrame,
  FrameCollector,
  FrameDecoder,
  type FrameSink,
} from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { ProtocolError } from '../../src/protocol/errors.js';
import type { Frame } from '../../src/protocol/frames.js';
import { concatBytes as concat } from '../../src/testing/arbitraries.js';

const SPEC_PATH = new URL('../../SPEC.md', import.meta.url);
const SECTION_HEADING = '## 12. Test vectors';
/** The receiver's `max_frame_payload` in every vector (§12 conventions). */
const MAX_DATA_PAYLOAD = 1024;

/** Every vector the spec must contain; the suite fails if one is missing. */
const REQUIRED_VALID = [
  'preamble',
  'data-end',
  'data-no-end',
  'empty-message',
  'credit',
  'credit-max',
  'heartbeat-echo',
  'heartbeat-no-echo',
  'hello',
  'hello-empty',
  'welcome',
  'welcome-alternatives',
  'goaway',
  'goaway-alternatives',
  'close',
  'close-ack',
  'error',
  'extension-ignorable',
  'extension-must-understand',
  'undefined-flag-bits',
  'unknown-protobuf-fields',
  'protobuf-fields-reordered',
  'protobuf-wire-type-mismatch',
  'hello-unpacked',
];
/** Valid vectors that are not the canonical encoding of their frames (`"canonical": false`). */
const REQUIRED_NON_CANONICAL = [
  'undefined-flag-bits',
  'unknown-protobuf-fields',
  'protobuf-fields-reordered',
  'protobuf-wire-type-mismatch',
  'hello-unpacked',
];
const REQUIRED_INVALID = [
  'bad-preamble-byte',
  'tls-client-hello',
  'oversized-data-header',
  'unknown-type-0x03',
  'empty-data-without-end',
  'credit-short',
  'heartbeat-long',
  'credit-long',
  'heartbeat-short',
  'control-too-large',
  'credit-counter-overflow',
  'malformed-protobuf',
  'protobuf-field-zero',
  'protobuf-u64-overflow',
  'invalid-utf8',
];

type JsonFrame = { type: string } & Record<string, unknown>;
interface Expectation {
  preamble?: boolean;
  canonical?: boolean;
  frames?: JsonFrame[];
  error?: string;
}
interface Vector {
  name: string;
  bytes: Uint8Array;
  expected: Expectation;
}

function hexToBytes(hex: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/.test(hex)) throw new Error(`bad hex string: ${hex}`);
  return Uint8Array.from(hex.match(/../g) ?? [], (pair) => parseInt(pair, 16));
}

/** Parses a `hex` block: whitespace is insignificant, `#` comments run to the end of the line. */
function parseHexBlock(block: string): Uint8Array {
  const digits = block
    .split('\n')
    .map((line) => line.replace(/#.*/, ''))
    .join('')
    .replace(/\s+/g, '')
    .toLowerCase();
  return hexToBytes(digits);
}

function onlyBlock(text: string, language: string, name: string): string {
  const blocks = [...text.matchAll(new RegExp('```' + language + '\\n([\\s\\S]*?)```', 'g'))];
  if (blocks.length !== 1)
    throw new Error(`vector ${name}: expected one ${language} block, found ${blocks.length}`);
  return blocks[0][1];
}

/** Extracts the vectors of §12: one `#### \`name\`` heading, one hex block and one json block each. */
function parseVectors(markdown: string): Vector[] {
  const start = markdown.indexOf(`\n${SECTION_HEADING}\n`);
  if (start < 0) throw new Error(`SPEC.md has no "${SECTION_HEADING}" section`);
  const rest = markdown.slice(start + SECTION_HEADING.length + 2);
  const next = rest.search(/^## /m);
  const section = next < 0 ? rest : rest.slice(0, next);
  return section
    .split(/^#### /m)
    .slice(1)
    .map((entry) => {
      const name = /^`([a-z0-9-]+)`/.exec(entry)?.[1];
      if (name === undefined) throw new Error(`vector heading without a \`name\`: ${entry.slice(0, 60)}`);
      return {
        name,
        bytes: parseHexBlock(onlyBlock(entry, 'hex', name)),
        expected: JSON.parse(onlyBlock(entry, 'json', name)) as Expectation,
      };
    });
}

const BODY_KEYS: Record<string, string> = {
  HELLO: 'hello',
  WELCOME: 'welcome',
  GOAWAY: 'goAway',
  CLOSE: 'close',
  CLOSE_ACK: 'closeAck',
  ERROR: 'error',
};

/** Converts the spec's JSON notation of a frame to the TypeScript frame shape. */
function toFrame(json: JsonFrame): Frame {
  const { type, ...fields } = json;
  switch (type) {
    case 'DATA':
      return {
        type: FrameType.DATA,
        end: fields.end as boolean,
        payload: hexToBytes(fields.payload as string),
      };
    case 'EXTENSION':
      return {
        type: 'extension',
        frameType: fields.frameType as number,
        flags: fields.flags as number,
        payload: hexToBytes(fields.payload as string),
      };
    case 'CREDIT':
    case 'HEARTBEAT':
      return { type: FrameType[type], ...fields } as Frame;
    default: {
      const bodyKey = BODY_KEYS[type];
      if (bodyKey === undefined) throw new Error(`unknown frame type name in SPEC.md: ${type}`);
      return { type: FrameType[type as keyof typeof FrameType], [bodyKey]: fields.body } as unknown as Frame;
    }
  }
}

const ignoringSink: FrameSink = { onData: () => {}, onControl: () => {} };

const vectors = parseVectors(readFileSync(SPEC_PATH, 'utf8'));

describe('SPEC.md §12 test vectors', () => {
  it('contains every required vector, each exactly once', () => {
    const names = vectors.map((vector) => vector.name);
    expect(new Set(names).size, 'duplicate vector names').to.equal(names.length);
    expect(names).to.include.members([...REQUIRED_VALID, ...REQUIRED_INVALID]);
    for (const name of REQUIRED_VALID) {
      expect(vectors.find((v) => v.name === name)!.expected.frames, name).to.be.an('array');
    }
    for (const name of REQUIRED_INVALID) {
      expect(vectors.find((v) => v.name === name)!.expected.error, name).to.be.a('string');
    }
    const nonCanonical = vectors.filter((v) => v.expected.canonical === false).map((v) => v.name);
    expect(nonCanonical).to.have.members(REQUIRED_NON_CANONICAL);
  });

  for (const vector of vectors) {
    const { name, bytes, expected } = vector;
    const options = { expectPreamble: expected.preamble === true, maxDataPayload: MAX_DATA_PAYLOAD };

    if (expected.frames !== undefined) {
      const frames = expected.frames.map(toFrame);

      it(`${name}: decodes to the listed frames`, () => {
        expect(decodeAll(bytes, options)).to.deep.equal(frames);
      });

      it(`${name}: decodes the same when fed byte by byte`, () => {
        const decoder = new FrameDecoder(options);
        const sink = new FrameCollector();
        for (let i = 0; i < bytes.length; i++) decoder.push(bytes.subarray(i, i + 1), sink);
        expect(sink.frames).to.deep.equal(frames);
        expect(decoder.bufferedBytes).to.equal(0);
      });

      if (expected.canonical === false) {
        it(`${name}: is not the canonical encoding of the listed frames`, () => {
          const encoded = concat([...(options.expectPreamble ? [PREAMBLE] : []), ...frames.map(encodeFrame)]);
          expect(encoded).to.not.deep.equal(bytes);
          // The canonical bytes decode to the same frames.
          expect(decodeAll(encoded, options)).to.deep.equal(frames);
        });
      } else {
        it(`${name}: the listed frames encode to exactly these bytes`, () => {
          const encoded = concat([...(options.expectPreamble ? [PREAMBLE] : []), ...frames.map(encodeFrame)]);
          expect(encoded).to.deep.equal(bytes);
        });
      }
    } else {
      it(`${name}: fails with ${expected.error} at its last byte`, () => {
        expect(bytes.length).to.be.greaterThan(0);
        const decoder = new FrameDecoder(options);
        for (let i = 0; i < bytes.length - 1; i++) decoder.push(bytes.subarray(i, i + 1), ignoringSink);
        let caught: unknown;
        try {
          decoder.push(bytes.subarray(bytes.length - 1), ignoringSink);
        } catch (error) {
          caught = error;
        }
        expect(caught).to.be.instanceOf(ProtocolError);
        expect((caught as ProtocolError).code).to.equal(expected.error);
      });

      it(`${name}: fails with ${expected.error} when decoded whole`, () => {
        expect(() => decodeAll(bytes, options))
          .to.throw(ProtocolError)
          .with.property('code', expected.error);
      });
    }
  }
});
