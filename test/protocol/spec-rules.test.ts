/**
 * The receiver rules that SPEC.md states exactly (issue 12, item 4): the order of the checks on a
 * frame (§4.1), handshake validation (§6), credit (§7), flood windows (§8), termination checks
 * (§9) and the bounds of protobuf decoding (§5.4). Engines are driven with hand-built frames on
 * an explicit clock, so each test pins one rule.
 */
import { expect } from 'chai';
import { decodeAll, encodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import type { Frame, Hello, Welcome } from '../../src/protocol/frames.js';
import { decodeClose, decodeGoAway } from '../../src/protocol/messages.js';
import type { EngineOptions } from '../../src/protocol/types.js';
import { concatBytes as concat } from '../../src/testing/arbitraries.js';
import { Pair } from './pair.js';

const HELLO: Hello = {
  versions: [1],
  extensions: [],
  idleTimeoutMs: 3000,
  initialCredit: 65536,
  maxFramePayload: 65536,
  maxMessageSize: 1 << 20,
  applicationProtocols: [],
};
const WELCOME: Welcome = {
  version: 1,
  extensions: [],
  idleTimeoutMs: 3000,
  initialCredit: 65536,
  maxFramePayload: 65536,
  maxMessageSize: 1 << 20,
  clientIdleTimeoutMs: 3000,
  applicationProtocol: '',
};

const data = (length: number, end: boolean): Uint8Array =>
  encodeFrame({ type: FrameType.DATA, end, payload: new Uint8Array(length).fill(7) });
const hello = (fields: Partial<Hello> = {}): Uint8Array =>
  encodeControlFrame({ type: FrameType.HELLO, hello: { ...HELLO, ...fields } });
const welcome = (fields: Partial<Welcome> = {}): Uint8Array =>
  encodeControlFrame({ type: FrameType.WELCOME, welcome: { ...WELCOME, ...fields } });
const credit = (creditLimit: number, consumedMessages: number): Uint8Array =>
  encodeControlFrame({ type: FrameType.CREDIT, creditLimit, consumedMessages });
const heartbeat = (timestamp: number): Uint8Array =>
  encodeControlFrame({
    type: FrameType.HEARTBEAT,
    echo: false,
    timestamp,
    echoTimestamp: 0,
    echoDelay: 0,
    receivedBytes: 0,
    creditLimit: 0,
    consumedMessages: 0,
  });
const close = (sentMessages: number, consumedMessages = 0): Uint8Array =>
  encodeControlFrame({ type: FrameType.CLOSE, close: { sentMessages, consumedMessages } });

/** A server engine that has received the preamble and `hello` (its answer is discarded). */
function server(options: Partial<EngineOptions> = {}, helloFields: Partial<Hello> = {}): Engine {
  const engine = new Engine({ role: 'server', idleTimeoutMs: 3000, seed: 2, ...options });
  engine.start(0);
  engine.receive(0, concat([PREAMBLE, hello(helloFields)]));
  engine.pollTransmit(0);
  return engine;
}

/** A client engine that has sent HELLO and received the preamble and `welcome`. */
function client(options: Partial<EngineOptions> = {}, welcomeFields: Partial<Welcome> = {}): Engine {
  const engine = new Engine({ role: 'client', idleTimeoutMs: 3000, seed: 1, ...options });
  engine.start(0);
  engine.pollTransmit(0);
  engine.receive(0, concat([PREAMBLE, welcome(welcomeFields)]));
  return engine;
}

/** The frames an engine transmits now (after its preamble, if `preamble`). */
function transmitted(engine: Engine, now: number, preamble = false): Frame[] {
  return decodeAll(concat(engine.pollTransmit(now)), { expectPreamble: preamble, maxDataPayload: 1 << 24 });
}

function errorOf(engine: Engine): string | undefined {
  return engine.closed?.error?.code;
}

describe('SPEC.md receiver rules', () => {
  describe('§4.1 order of the checks on a DATA header', () => {
    it('size before credit: a DATA frame over max_frame_payload and over the credit is FRAME_TOO_LARGE', () => {
      const s = server({ maxFramePayloadBytes: 1024, initialWindowBytes: 1024, maxWindowBytes: 8192 });
      s.receive(1, data(1025, true).subarray(0, 6));
      expect(errorOf(s)).to.equal('FRAME_TOO_LARGE');
    });

    it('state before credit: DATA after CLOSE, beyond the credit, is PROTOCOL_ERROR', () => {
      const s = server({ initialWindowBytes: 1024, maxWindowBytes: 8192 });
      s.receive(1, close(0));
      expect(s.state).to.equal('peer-closed');
      s.receive(2, data(1000, true).subarray(0, 6)); // cost 1262 > 1024
      expect(errorOf(s)).to.equal('PROTOCOL_ERROR');
    });

    it('a client rejects DATA before WELCOME, even beyond its credit, as PROTOCOL_ERROR (§6)', () => {
      const c = new Engine({ role: 'client', initialWindowBytes: 1024, maxWindowBytes: 8192 });
      c.start(0);
      c.pollTransmit(0);
      c.receive(1, concat([PREAMBLE, data(1000, true).subarray(0, 6)]));
      expect(errorOf(c)).to.equal('PROTOCOL_ERROR');
    });

    it('a server rejects DATA as the first frame as PROTOCOL_ERROR', () => {
      const s = new Engine({ role: 'server' });
      s.start(0);
      s.receive(1, concat([PREAMBLE, data(10, true)]));
      expect(errorOf(s)).to.equal('PROTOCOL_ERROR');
    });

    it('a server accepts DATA that follows HELLO at once, within the credit it granted (§6)', () => {
      const s = new Engine({ role: 'server', initialWindowBytes: 4096 });
      s.start(0);
      s.receive(0, concat([PREAMBLE, hello(), data(100, true)]));
      expect(s.state).to.equal('open');
      expect(s.read(0)).to.have.length(100);
    });

    it('credit includes MESSAGE_OVERHEAD on END (§7 rule 2): the same frame passes without END', () => {
      const options = { initialWindowBytes: 1024, maxWindowBytes: 8192 };
      const withoutEnd = server(options);
      withoutEnd.receive(1, data(1000, false)); // cost 1006 ≤ 1024
      expect(withoutEnd.state).to.equal('open');
      const withEnd = server(options);
      withEnd.receive(1, data(1000, true).subarray(0, 6)); // cost 1262 > 1024, on the header alone
      expect(errorOf(withEnd)).to.equal('FLOW_CONTROL_ERROR');
    });

    it('credit before message size; a message over max_message_size is MESSAGE_TOO_LARGE on its header', () => {
      const options = { initialWindowBytes: 1024, maxWindowBytes: 8192, maxMessageBytes: 500 };
      const both = server(options);
      both.receive(1, data(900, true).subarray(0, 6)); // over the credit and over 500 bytes
      expect(errorOf(both)).to.equal('FLOW_CONTROL_ERROR');
      const tooLarge = server(options);
      tooLarge.receive(1, data(600, true).subarray(0, 6));
      expect(errorOf(tooLarge)).to.equal('MESSAGE_TOO_LARGE');
      // The error names the size and whose limit it is (the receiver's own).
      expect(tooLarge.closed!.error!.message).to.equal(
        "message of 600 bytes exceeds this side's (the receiver's) maxMessageSize of 500 bytes",
      );
      const fragments = server(options);
      fragments.receive(1, data(300, false));
      expect(fragments.state).to.equal('open');
      fragments.receive(2, data(201, true).subarray(0, 6)); // 501 bytes in all
      expect(errorOf(fragments)).to.equal('MESSAGE_TOO_LARGE');
      expect(fragments.closed!.error!.message).to.equal(
        "message of 501 bytes exceeds this side's (the receiver's) maxMessageSize of 500 bytes",
      );
      const unfinished = server(options);
      unfinished.receive(1, data(300, false));
      unfinished.receive(2, data(201, false).subarray(0, 6)); // at least 501 bytes
      expect(unfinished.closed!.error!.message).to.equal(
        "message of at least 501 bytes exceeds this side's (the receiver's) maxMessageSize of 500 bytes",
      );
    });

    it('MIN_FRAGMENT is not verified by a receiver (§5.1): small fragments are accepted', () => {
      const s = server();
      s.receive(1, concat([data(1, false), data(2, false), data(3, true)]));
      expect(s.read(1)).to.have.length(6);
    });
  });

  describe('§6 handshake validation', () => {
    const answer = (helloFields: Partial<Hello>, options: Partial<EngineOptions> = {}): Frame[] => {
      const s = new Engine({ role: 'server', ...options });
      s.start(0);
      s.receive(0, concat([PREAMBLE, hello(helloFields)]));
      return transmitted(s, 0, true);
    };
    const errorCode = (frames: Frame[]): number | undefined =>
      frames[0]?.type === FrameType.ERROR ? frames[0].error.code : undefined;

    it('checks versions first: an empty HELLO is answered with ERROR UNSUPPORTED_VERSION', () => {
      const s = new Engine({ role: 'server' });
      s.start(0);
      s.receive(0, concat([PREAMBLE, Uint8Array.of(0, 0, 0, 0, 0x10, 0)])); // HELLO, empty payload
      expect(errorOf(s)).to.equal('UNSUPPORTED_VERSION');
      expect(errorCode(answer({ versions: [], idleTimeoutMs: 0 }))).to.equal(5);
    });

    it('then the fields in field-number order, each PROTOCOL_ERROR', () => {
      const cases: [Partial<Hello>, string][] = [
        [{ idleTimeoutMs: 99, initialCredit: 0, maxFramePayload: 0, maxMessageSize: 0 }, 'idle_timeout_ms'],
        [{ initialCredit: 1023, maxFramePayload: 0, maxMessageSize: 0 }, 'initial_credit'],
        [{ maxFramePayload: 1023, maxMessageSize: 0 }, 'max_frame_payload'],
        [{ maxFramePayload: 16 * 1024 * 1024 + 1 }, 'max_frame_payload'],
        [{ maxMessageSize: 0 }, 'max_message_size'],
      ];
      for (const [fields, field] of cases) {
        const frames = answer(fields);
        expect(errorCode(frames), field).to.equal(1);
        expect(frames[0]!.type === FrameType.ERROR && frames[0].error.message, field).to.contain(field);
      }
      expect(errorCode(answer({ idleTimeoutMs: 100, initialCredit: 1024, maxFramePayload: 1024 }))).to.equal(
        undefined,
      );
    });

    it('a server that requires an application protocol answers ERROR NO_APPLICATION_PROTOCOL', () => {
      const options = { applicationProtocols: ['b/1'], requireApplicationProtocol: true };
      expect(errorCode(answer({ applicationProtocols: ['a/1'] }, options))).to.equal(6);
      // The protocol check comes last.
      expect(errorCode(answer({ applicationProtocols: ['a/1'], maxMessageSize: 0 }, options))).to.equal(1);
      const frames = answer({ applicationProtocols: ['a/1', 'b/1'] }, options);
      expect(frames[0]!.type === FrameType.WELCOME && frames[0].welcome.applicationProtocol).to.equal('b/1');
    });

    it('a client checks WELCOME: version first, then extensions, then the fields', () => {
      expect(errorOf(client({}, { version: 7, idleTimeoutMs: 0 }))).to.equal('UNSUPPORTED_VERSION');
      expect(errorOf(client({}, { version: 0 }))).to.equal('UNSUPPORTED_VERSION');
      const extension = client({}, { extensions: ['x-unoffered'], idleTimeoutMs: 0 });
      expect(errorOf(extension)).to.equal('PROTOCOL_ERROR');
      expect(extension.closed!.error!.message).to.contain('extension');
      const cases: [Partial<Welcome>, string][] = [
        [{ idleTimeoutMs: 0, initialCredit: 0 }, 'idle_timeout_ms'],
        [{ initialCredit: 0, maxFramePayload: 0 }, 'initial_credit'],
        [{ maxFramePayload: 0, maxMessageSize: 0 }, 'max_frame_payload'],
        [{ maxMessageSize: 0, clientIdleTimeoutMs: 0 }, 'max_message_size'],
        [{ clientIdleTimeoutMs: 0, applicationProtocol: 'zz' }, 'client_idle_timeout_ms'],
        [{ applicationProtocol: 'zz' }, 'application protocol'],
      ];
      for (const [fields, what] of cases) {
        const c = client({}, fields);
        expect(errorOf(c), what).to.equal('PROTOCOL_ERROR');
        expect(c.closed!.error!.message, what).to.contain(what);
      }
    });

    it('a client that requires an application protocol fails on an empty one with NO_APPLICATION_PROTOCOL', () => {
      const pair = new Pair({ applicationProtocols: ['a/1'], requireApplicationProtocol: true }, {});
      expect(pair.client.engine.closed?.error?.code).to.equal('NO_APPLICATION_PROTOCOL');
      const remote = pair.server.engine.closed?.error;
      expect(remote?.code).to.equal('NO_APPLICATION_PROTOCOL');
      expect(remote).to.have.property('remote', true);
      // Without the requirement, the same handshake opens with no protocol.
      const open = new Pair({ applicationProtocols: ['a/1'] }, {});
      expect(open.client.engine.negotiated?.applicationProtocol).to.equal('');
    });
  });

  describe('§7 credit', () => {
    /** A client whose peer granted 1024 bytes, after a first message of `first` bytes went out. */
    function clientWithCredit(first: number): Engine {
      const c = client({}, { initialCredit: 1024 });
      c.trySend(0, new Uint8Array(first));
      transmitted(c, 0);
      return c;
    }

    it('a sender is blocked when P − S < 6 + min(r, 512): 517 blocks a 1000-byte message, 518 sends 512', () => {
      const blocked = clientWithCredit(1024 - 262 - 517); // 517 credit bytes left
      blocked.trySend(0, new Uint8Array(1000));
      expect(transmitted(blocked, 0).filter((f) => f.type === FrameType.DATA)).to.deep.equal([]);
      expect(blocked.stats(100).creditBlockedMs).to.equal(100);

      const sends = clientWithCredit(1024 - 262 - 518); // 518 left
      sends.trySend(0, new Uint8Array(1000));
      const frames = transmitted(sends, 0).filter((f) => f.type === FrameType.DATA);
      expect(frames.map((f) => f.type === FrameType.DATA && [f.payload.length, f.end])).to.deep.equal([
        [512, false],
      ]);
      expect(sends.stats(100).creditBlockedMs).to.equal(100); // now blocked with 0 left
    });

    it('with r < 512 bytes left, 6 + r sends them all without END; the empty END frame then needs 262', () => {
      const blocked = clientWithCredit(1024 - 262 - 105); // 105 left
      blocked.trySend(0, new Uint8Array(100));
      expect(transmitted(blocked, 0).filter((f) => f.type === FrameType.DATA)).to.deep.equal([]);
      expect(blocked.stats(10).creditBlockedMs).to.equal(10);

      const partly = clientWithCredit(1024 - 262 - 106); // 106 left
      partly.trySend(0, new Uint8Array(100));
      const frames = transmitted(partly, 0).filter((f) => f.type === FrameType.DATA);
      expect(frames.map((f) => f.type === FrameType.DATA && [f.payload.length, f.end])).to.deep.equal([
        [100, false],
      ]);
      expect(partly.stats(10).creditBlockedMs).to.equal(10);
      partly.receive(20, credit(1024 + 262, 0)); // exactly the cost of the empty END frame
      const end = transmitted(partly, 20).filter((f) => f.type === FrameType.DATA);
      expect(end.map((f) => f.type === FrameType.DATA && [f.payload.length, f.end])).to.deep.equal([
        [0, true],
      ]);
    });

    it('rule 6: holding only an incomplete message, a receiver grants R + 6 + m + 256 at once', () => {
      // Window 4096, frames of at most 1024: after three fragments of 1000 bytes R = 3018, and the
      // next frame may carry min(1024, 10 000 − 3000) bytes: the limit must reach 3018 + 1286.
      const s = server({
        initialWindowBytes: 4096,
        maxWindowBytes: 64 * 1024,
        maxFramePayloadBytes: 1024,
        maxMessageBytes: 10_000,
      });
      s.receive(1, concat([data(1000, false), data(1000, false), data(1000, false)]));
      expect(s.state).to.equal('open');
      expect(s.readableMessages).to.equal(0);
      const limits = transmitted(s, 1).flatMap((f) => (f.type === FrameType.CREDIT ? [f.creditLimit] : []));
      expect(Math.max(0, ...limits)).to.be.at.least(3018 + 6 + 1024 + 256);
    });
  });

  describe('§8 flood windows', () => {
    it('the 9th early heartbeat in a row is ENHANCE_YOUR_CALM; a heartbeat on time resets the count', () => {
      // T = 3000 ms: a heartbeat is early when stamped less than 0.45 × 1000 ms = 4500 ticks after
      // the previous one. The first heartbeat is never early.
      const s = server();
      let t = 1;
      for (let i = 0; i < 9; i++) s.receive(1, heartbeat(t++)); // 8 early
      expect(s.state).to.equal('open');
      s.receive(1, heartbeat((t += 4500))); // on time: resets
      for (let i = 0; i < 8; i++) s.receive(1, heartbeat(t++));
      expect(s.state).to.equal('open');
      s.receive(1, heartbeat(t)); // the 9th early one in a row
      expect(errorOf(s)).to.equal('ENHANCE_YOUR_CALM');
    });

    it('windows are fixed, not sliding: 40 + 40 no-op frames 600 ms apart across a window boundary pass', () => {
      const s = server();
      for (let i = 0; i < 40; i++) s.receive(500, credit(0, 0));
      for (let i = 0; i < 40; i++) s.receive(1100, credit(0, 0)); // a new window (from 0) began at 1000
      expect(s.state).to.equal('open');
    });

    it('a new window starts at the first frame that arrives after the previous one ended', () => {
      // Windows of T/3 = 1000 ms. The first starts at the handshake (t = 0); the next at 1500, when
      // the first frame after t = 1000 arrives, so it runs to 2500 (not to 2000).
      const s = server();
      s.receive(1, credit(0, 0));
      for (let i = 0; i < 64; i++) s.receive(1500, credit(0, 0));
      expect(s.state).to.equal('open');
      s.receive(2400, credit(0, 0)); // the 65th in the window [1500, 2500)
      expect(errorOf(s)).to.equal('ENHANCE_YOUR_CALM');
    });
  });

  describe('§9 counts and termination checks', () => {
    it('a consumed count above the messages sent is PROTOCOL_ERROR (§5.2)', () => {
      const s = server();
      s.receive(1, credit(0, 1));
      expect(errorOf(s)).to.equal('PROTOCOL_ERROR');
    });

    it('an ERROR with impossible counts is reported with the counts ignored (§9.4)', () => {
      const withCounts = (consumedMessages: number, deliveredMessages: number): Engine => {
        const c = client();
        c.trySend(0, new Uint8Array(1));
        c.trySend(0, new Uint8Array(1));
        transmitted(c, 0);
        c.receive(
          1,
          encodeControlFrame({
            type: FrameType.ERROR,
            error: { code: 1, message: '', consumedMessages, deliveredMessages },
          }),
        );
        return c;
      };
      expect(withCounts(1, 1).closed!.delivery).to.include({ consumed: 1, notProcessedFrom: 2 });
      expect(withCounts(1, 5).closed!.delivery).to.include({ consumed: 0, notProcessedFrom: 3 });
      expect(withCounts(2, 1).closed!.delivery).to.include({ consumed: 0, notProcessedFrom: 3 });
    });

    it('CLOSE is checked: sent_messages must match, no message may be incomplete (§9.1)', () => {
      const mismatch = server();
      mismatch.receive(1, close(1));
      expect(errorOf(mismatch)).to.equal('PROTOCOL_ERROR');
      const incomplete = server();
      incomplete.receive(1, concat([data(600, false), close(0)]));
      expect(errorOf(incomplete)).to.equal('PROTOCOL_ERROR');
      const incompleteCounted = server();
      incompleteCounted.receive(1, concat([data(600, false), close(1)]));
      expect(errorOf(incompleteCounted)).to.equal('PROTOCOL_ERROR');
      const consumed = server();
      consumed.receive(1, close(0, 1)); // claims a server message consumed: none was sent
      expect(errorOf(consumed)).to.equal('PROTOCOL_ERROR');
      const ok = server();
      ok.receive(1, concat([data(600, false), data(0, true), close(1)]));
      expect(ok.state).to.equal('peer-closed');
    });

    it("the client's last frame is the final CREDIT: its current limit and every server message consumed", () => {
      const pair = new Pair();
      const clientBytes: Uint8Array[] = [];
      const poll = pair.client.engine.pollTransmit.bind(pair.client.engine);
      pair.client.engine.pollTransmit = (now: number, max?: number): Uint8Array[] => {
        const out = poll(now, max);
        clientBytes.push(...out);
        return out;
      };
      pair.server.engine.trySend(0, new Uint8Array(3));
      pair.server.engine.trySend(0, new Uint8Array(4));
      pair.client.engine.close(0);
      pair.pump();
      pair.server.engine.finish(0);
      pair.pump();
      while (pair.client.engine.read(0));
      pair.pump();
      expect(pair.client.engine.closed?.clean).to.equal(true);
      expect(pair.server.engine.closed?.clean).to.equal(true);
      const frames = decodeAll(concat(clientBytes), { expectPreamble: false, maxDataPayload: 1 << 24 });
      expect(frames.at(-1)).to.deep.equal({
        type: FrameType.CREDIT,
        creditLimit: pair.client.engine.creditLimitGranted,
        consumedMessages: 2,
      });
    });
  });

  describe('§5.4 protobuf payloads', () => {
    it('accepts a string field longer than 256 bytes as received', () => {
      const text = 'x'.repeat(300);
      const payload = concat([Uint8Array.of(0x32, 0xac, 0x02), new TextEncoder().encode(text)]);
      expect(decodeGoAway(payload).message).to.equal(text);
    });

    it('accepts unknown groups nested 100 levels deep', () => {
      const depth = 100;
      const payload = concat([
        new Uint8Array(depth).fill(0x7b), // field 15, start group
        new Uint8Array(depth).fill(0x7c), // field 15, end group
        Uint8Array.of(0x08, 0x03),
      ]);
      expect(decodeClose(payload)).to.deep.equal({ sentMessages: 3, consumedMessages: 0 });
    });
  });
});
