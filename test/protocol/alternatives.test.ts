/**
 * Alternative endpoints in WELCOME and GOAWAY (SPEC.md §9.5): syntax, the sender's bounds, the
 * receiver's filter, and what the engine hands the client.
 */
import { expect } from 'chai';
import fc from 'fast-check';
import {
  MAX_ALTERNATIVES,
  formatAlternative,
  parseAlternative,
  usableAlternatives,
} from '../../src/protocol/alternatives.js';
import { decodeAll, encodeFrame } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/constants.js';
import { UsageError } from '../../src/protocol/errors.js';
import { encodeGoAway } from '../../src/protocol/messages.js';
import protobuf from 'protobufjs/light.js';
import { descriptor } from '../../src/protocol/proto-descriptor.js';
import { Pair } from './pair.js';

const VALID = [
  '127.0.0.1:7000',
  'node-b.example:1',
  'node-c:65535',
  '[::1]:7001',
  '[fe80::1%eth0]:80',
  'unix:/run/hw.sock',
];
const INVALID = [
  '',
  '127.0.0.1',
  '127.0.0.1:0',
  '127.0.0.1:65536',
  '127.0.0.1:07000',
  'host:port',
  ':7000',
  '::1:7000',
  '[::1:7000',
  '[1.2.3.4]:7000',
  'tcp://127.0.0.1:7000',
  'user@host:7000',
  'unix:relative.sock',
  'unix:',
  'a:111111',
  `unix:/${'x'.repeat(251)}`, // 257 bytes
];

describe('alternative endpoints (SPEC.md §9.5)', () => {
  it('parses the three forms and formats them back', () => {
    expect(parseAlternative('127.0.0.1:7000')).to.deep.equal({ host: '127.0.0.1', port: 7000 });
    expect(parseAlternative('[::1]:7001')).to.deep.equal({ host: '::1', port: 7001 });
    expect(parseAlternative('unix:/run/hw.sock')).to.deep.equal({ path: '/run/hw.sock' });
    for (const entry of VALID) expect(formatAlternative(parseAlternative(entry)!)).to.equal(entry);
    expect(parseAlternative(`unix:/${'x'.repeat(250)}`)).to.not.equal(undefined); // 256 bytes
  });

  it('rejects everything else', () => {
    for (const entry of INVALID) expect(parseAlternative(entry), entry).to.equal(undefined);
  });

  it('a receiver keeps the valid entries, deduplicated, at most 8, in order', () => {
    const received = [
      'bad',
      VALID[0]!,
      VALID[0]!,
      ...INVALID,
      ...Array.from({ length: 12 }, (_, i) => `h${i}:${i + 1}`),
    ];
    const usable = usableAlternatives(received);
    expect(usable).to.have.length(MAX_ALTERNATIVES);
    expect(usable.slice(0, 2)).to.deep.equal([VALID[0], 'h0:1']);
    fc.assert(
      fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 30 }), (list) => {
        const kept = usableAlternatives(list);
        expect(kept.length).to.be.at.most(MAX_ALTERNATIVES);
        expect(new Set(kept).size).to.equal(kept.length);
        for (const entry of kept) expect(parseAlternative(entry)).to.not.equal(undefined);
      }),
    );
  });

  it('a sender refuses more than 8, or an invalid entry, instead of truncating (encoder: INTERNAL_ERROR)', () => {
    const goAway = {
      graceMs: 1,
      reason: 1,
      consumedMessages: 0,
      retryAfterMs: 0,
      doNotReconnect: false,
      message: '',
    };
    const nine = Array.from({ length: 9 }, (_, i) => `127.0.0.1:${7000 + i}`);
    expect(() => encodeGoAway({ ...goAway, alternatives: nine })).to.throw(
      UsageError,
      /GoAway.alternatives\[8\]/,
    );
    expect(() => encodeGoAway({ ...goAway, alternatives: ['a:1', 'nope'] })).to.throw(UsageError, /\[1\]/);
    expect(encodeGoAway({ ...goAway, alternatives: nine.slice(0, 8) }).length).to.be.greaterThan(8 * 14);
  });

  it('an old receiver (a GoAway without field 7) decodes the same frame, ignoring the alternatives', () => {
    const bytes = encodeFrame({
      type: FrameType.GOAWAY,
      goAway: {
        graceMs: 10,
        reason: 2,
        consumedMessages: 3,
        retryAfterMs: 0,
        doNotReconnect: false,
        message: 'm',
        alternatives: ['a:1'],
      },
    });
    // The descriptor without the new field, as a peer built before it has it.
    const old = JSON.parse(JSON.stringify(descriptor)) as typeof descriptor;
    const fields = (
      old as {
        nested: {
          heartwire: { nested: { v1: { nested: { GoAway: { fields: Record<string, unknown> } } } } };
        };
      }
    ).nested.heartwire.nested.v1.nested.GoAway.fields;
    delete fields.alternatives;
    const OldGoAway = protobuf.Root.fromJSON(old).lookupType('heartwire.v1.GoAway');
    const decoded = OldGoAway.toObject(OldGoAway.decode(bytes.subarray(6)), { longs: Number });
    expect(decoded).to.deep.equal({ graceMs: 10, reason: 2, consumedMessages: 3, message: 'm' });
    expect(decodeAll(bytes, { maxDataPayload: 1024, expectPreamble: false })[0]).to.have.nested.property(
      'goAway.alternatives[0]',
      'a:1',
    );
  });

  it('WELCOME carries the server option; the client sees it in `negotiated`', () => {
    const pair = new Pair({}, { alternatives: ['127.0.0.1:7001', 'unix:/tmp/b.sock'] });
    expect(pair.client.engine.negotiated?.alternatives).to.deep.equal(['127.0.0.1:7001', 'unix:/tmp/b.sock']);
    expect(pair.server.engine.negotiated?.alternatives).to.deep.equal(['127.0.0.1:7001', 'unix:/tmp/b.sock']);
    const plain = new Pair();
    expect(plain.client.engine.negotiated?.alternatives).to.deep.equal([]);
  });

  it('GOAWAY carries the goAway() alternatives, else the option; the client gets them in the goaway event', () => {
    const withOption = new Pair({}, { alternatives: ['127.0.0.1:7001'] });
    withOption.server.engine.goAway(0, { graceMs: 1000 });
    withOption.pump();
    expect(withOption.client.engine.receivedGoAway?.alternatives).to.deep.equal(['127.0.0.1:7001']);

    const explicit = new Pair({}, { alternatives: ['127.0.0.1:7001'] });
    explicit.server.engine.goAway(0, { graceMs: 1000, alternatives: ['[::1]:9', 'unix:/x'] });
    explicit.pump();
    const event = explicit.client.events.find((e) => e.type === 'goaway');
    expect(event).to.have.nested.property('goAway.alternatives').that.deep.equals(['[::1]:9', 'unix:/x']);
  });

  it('invalid options throw RangeError synchronously (engine option and goAway())', () => {
    expect(() => new Pair({}, { alternatives: ['nope'] })).to.throw(RangeError, /alternatives/);
    const pair = new Pair();
    const nine = Array.from({ length: 9 }, (_, i) => `h:${i + 1}`);
    expect(() => pair.server.engine.goAway(0, { graceMs: 1, alternatives: nine })).to.throw(
      RangeError,
      /entry 8/,
    );
    expect(pair.server.engine.state).to.equal('open'); // nothing sent
  });
});
