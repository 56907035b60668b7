/**
 * SPEC.md §3 (preamble) and §6 (handshake and negotiation).
 * @module
 */
import { FrameType, MAX_FRAME_PAYLOAD, MAX_IDLE_TIMEOUT_MS, PREAMBLE } from '../../protocol/constants.js';
import type { WireErrorName } from '../../protocol/errors.js';
import type { Hello } from '../../protocol/frames.js';
import { describe, expectAlive, expectError, fail, info, pass } from '../expect.js';
import type { ClientPeer } from '../client-peer.js';
import type { CaseContext, ConformanceCase, Outcome } from '../types.js';
import { concat, creditFrame, defaultHello, helloFrame, pbBytes, pbVarint, rawFrame } from '../wire.js';

const utf8 = new TextEncoder();

/** The server must close after a bad preamble without sending a byte (local error, §3, §11). */
async function expectMismatch(context: CaseContext, bytes: Uint8Array, what: string): Promise<Outcome> {
  const peer = await context.connect();
  const prompt = Math.max(2 * context.options.toleranceMs, 100);
  peer.send(bytes);
  const expected = `${what}: PROTOCOL_MISMATCH at the first wrong byte: the transport closed within ${prompt} ms, nothing sent (no preamble, no WELCOME)`;
  const ended = await peer.waitEnded(context.options.timeoutMs);
  if (peer.bytesReceived > 0) return fail(expected, `${peer.bytesReceived} bytes sent: ${describe(peer)}`);
  if (!ended) return fail(expected, `connection still open after ${context.options.timeoutMs} ms`);
  const at = Math.min(peer.eofAt ?? Infinity, peer.closedAt ?? Infinity, Infinity);
  if (at > prompt) return fail(expected, `closed only after ${Math.round(at)} ms (not at the wrong byte)`);
  return pass(expected, `closed after ${Math.round(at)} ms without a byte`);
}

function preambleCase(id: string, title: string, bytes: number[]): ConformanceCase {
  return {
    id: `3/${id}`,
    section: '§3',
    title,
    run: (context) => expectMismatch(context, Uint8Array.from(bytes), title),
  };
}

/** A HELLO with `overrides` must be refused with ERROR `codes` (after the server's preamble). */
function refusedHello(
  id: string,
  title: string,
  overrides: Partial<Hello>,
  codes: WireErrorName[] = ['PROTOCOL_ERROR'],
): ConformanceCase {
  return {
    id: `6/${id}`,
    section: '§6',
    title,
    async run(context) {
      const peer = await context.connect();
      peer.sendHello(defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs, ...overrides }));
      const outcome = await expectError(context, peer, codes);
      if (outcome.status === 'pass' && !peer.preambleOk) {
        return fail(outcome.expected, `${outcome.seen}, but without the server's preamble first (§3)`);
      }
      return outcome;
    },
  };
}

/** A HELLO with `overrides` must be accepted; `check` judges the WELCOME. */
function acceptedHello(
  id: string,
  title: string,
  overrides: Partial<Hello>,
  check?: (peer: ClientPeer) => Outcome | undefined,
): ConformanceCase {
  return {
    id: `6/${id}`,
    section: '§6',
    title,
    async run(context) {
      const peer = await context.open(overrides);
      const verdict = check?.(peer);
      if (verdict !== undefined && verdict.status !== 'pass') return verdict;
      const alive = await expectAlive(context, peer, title);
      return verdict !== undefined && alive.status === 'pass' ? verdict : alive;
    },
  };
}

/** A first frame other than HELLO: the server answers with its preamble and ERROR PROTOCOL_ERROR. */
function wrongFirstFrame(id: string, title: string, frame: Uint8Array): ConformanceCase {
  return {
    id: `6/${id}`,
    section: '§6',
    title,
    async run(context) {
      const peer = await context.connect();
      peer.send(concat(PREAMBLE, frame));
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  };
}

export const handshakeCases: ConformanceCase[] = [
  {
    id: '3/preamble-and-welcome',
    section: '§3',
    title: 'a valid preamble and HELLO are answered by the preamble and WELCOME',
    async run(context) {
      const peer = await context.open();
      const first = peer.received[0];
      if (!peer.preambleOk || first?.frame.type !== FrameType.WELCOME) {
        return fail('preamble 89 48 57 49 52 45 0d 0a, then WELCOME', describe(peer));
      }
      return expectAlive(context, peer, 'preamble, then WELCOME as the first frame');
    },
  },
  {
    id: '3/server-waits-for-hello',
    section: '§3',
    title: 'the server sends nothing before it has the client preamble and the whole HELLO',
    async run(context) {
      const peer = await context.connect();
      const hello = helloFrame(defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs }));
      peer.send(PREAMBLE);
      await peer.sleep(150);
      peer.send(hello.subarray(0, hello.length - 1));
      await peer.sleep(150);
      const expected = 'no byte from the server until HELLO is complete; then preamble and WELCOME';
      if (peer.bytesReceived > 0)
        return fail(expected, `${peer.bytesReceived} bytes early: ${describe(peer)}`);
      peer.hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      peer.grantedLimit = peer.window = peer.hello.initialCredit;
      peer.send(hello.subarray(hello.length - 1));
      const welcome = await peer.until(
        () => peer.welcome ?? (peer.ended ? false : undefined),
        context.options.timeoutMs,
      );
      if (welcome === undefined || welcome === false) return fail(expected, describe(peer));
      return pass(expected, 'silent until the last HELLO byte, then WELCOME');
    },
  },
  preambleCase(
    'bad-third-byte',
    'the third preamble byte differs (vector bad-preamble-byte)',
    [0x89, 0x48, 0x58],
  ),
  {
    id: '3/bad-magic-then-hello',
    section: '§3',
    title: 'a wrong preamble (89 48 57 49 52 58 0d 0a) followed by a valid HELLO is not answered',
    run: (context) =>
      expectMismatch(
        context,
        concat(Uint8Array.of(0x89, 0x48, 0x57, 0x49, 0x52, 0x58, 0x0d, 0x0a), helloFrame(defaultHello())),
        'a wrong preamble, then HELLO',
      ),
  },
  preambleCase(
    'tls-client-hello',
    'a TLS ClientHello is rejected at its first byte (vector tls-client-hello)',
    [0x16],
  ),
  preambleCase(
    'http-request',
    'an HTTP request is rejected at its first byte',
    Array.from(utf8.encode('GET / HTTP/1.1\r\n')),
  ),
  preambleCase(
    'line-ending-conversion',
    'a preamble whose \\r\\n became \\n is rejected',
    [0x89, 0x48, 0x57, 0x49, 0x52, 0x45, 0x0a],
  ),
  {
    id: '3/byte-by-byte',
    section: '§3',
    title: 'preamble and HELLO written one byte at a time are accepted',
    async run(context) {
      const peer = await context.connect();
      const hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      const bytes = concat(PREAMBLE, helloFrame(hello));
      peer.hello = hello;
      peer.grantedLimit = peer.window = hello.initialCredit;
      for (const byte of bytes) {
        peer.send(Uint8Array.of(byte));
        await peer.sleep(1);
      }
      const welcome = await peer.until(
        () => peer.welcome ?? (peer.ended ? false : undefined),
        context.options.timeoutMs,
      );
      if (welcome === undefined || welcome === false) return fail('WELCOME', describe(peer));
      peer.startHeartbeats();
      return expectAlive(context, peer, 'WELCOME after a HELLO split into 1-byte writes');
    },
  },

  // §6: negotiation
  acceptedHello(
    'welcome-fields',
    'WELCOME fields are in range; extensions and application protocol are among those offered',
    { extensions: ['x-conformance-unknown'], applicationProtocols: ['conformance/1', 'conformance/2'] },
    (peer) => {
      const w = peer.welcome!;
      const ok = w.version === 1 && w.extensions.length === 0;
      return ok
        ? pass('version 1, no unknown extension accepted, fields in range', JSON.stringify(w))
        : fail('version 1, no unknown extension accepted, fields in range', JSON.stringify(w));
    },
  ),
  acceptedHello(
    'highest-common-version',
    'versions [1, 2, 999]: the server picks the highest version both speak',
    { versions: [999, 2, 1] },
    (peer) =>
      peer.welcome!.version === 1
        ? pass('version 1 (this document)', 'version 1')
        : info(
            'version 1 (this document)',
            `version ${peer.welcome!.version}: the server speaks a later version`,
          ),
  ),
  refusedHello('no-common-version', 'versions [2, 3]: ERROR UNSUPPORTED_VERSION', { versions: [2, 3] }, [
    'UNSUPPORTED_VERSION',
  ]),
  refusedHello('no-versions', 'versions []: ERROR UNSUPPORTED_VERSION', { versions: [] }, [
    'UNSUPPORTED_VERSION',
  ]),
  refusedHello(
    'hello-empty',
    'an empty HELLO (vector hello-empty): UNSUPPORTED_VERSION (versions are checked first)',
    { versions: [], idleTimeoutMs: 0, initialCredit: 0, maxFramePayload: 0, maxMessageSize: 0 },
    ['UNSUPPORTED_VERSION'],
  ),
  refusedHello(
    'validation-order',
    'idle_timeout_ms 0 and initial_credit 0: PROTOCOL_ERROR (checks in the order of §6 Validation)',
    { idleTimeoutMs: 0, initialCredit: 0, maxFramePayload: 0 },
  ),
  refusedHello('idle-timeout-0', 'idle_timeout_ms 0: PROTOCOL_ERROR', { idleTimeoutMs: 0 }),
  refusedHello('idle-timeout-99', 'idle_timeout_ms 99 (below 100): PROTOCOL_ERROR', { idleTimeoutMs: 99 }),
  refusedHello('idle-timeout-above-max', 'idle_timeout_ms 86 400 001: PROTOCOL_ERROR', {
    idleTimeoutMs: MAX_IDLE_TIMEOUT_MS + 1,
  }),
  acceptedHello('idle-timeout-100', 'idle_timeout_ms 100 (the minimum) is accepted and clamped into range', {
    idleTimeoutMs: 100,
  }),
  acceptedHello('idle-timeout-max', 'idle_timeout_ms 86 400 000 (the maximum) is accepted', {
    idleTimeoutMs: MAX_IDLE_TIMEOUT_MS,
  }),
  refusedHello('initial-credit-1023', 'initial_credit 1023 (below 1024): PROTOCOL_ERROR', {
    initialCredit: 1023,
  }),
  acceptedHello('initial-credit-1024', 'initial_credit 1024 (the minimum) is accepted', {
    initialCredit: 1024,
  }),
  refusedHello('max-frame-payload-1023', 'max_frame_payload 1023: PROTOCOL_ERROR', { maxFramePayload: 1023 }),
  refusedHello('max-frame-payload-above-max', 'max_frame_payload 16 777 217: PROTOCOL_ERROR', {
    maxFramePayload: MAX_FRAME_PAYLOAD + 1,
  }),
  acceptedHello('max-frame-payload-1024', 'max_frame_payload 1024 (the minimum) is accepted', {
    maxFramePayload: 1024,
  }),
  refusedHello('max-message-size-0', 'max_message_size 0: PROTOCOL_ERROR', { maxMessageSize: 0 }),
  {
    id: '6/application-protocol-unknown',
    section: '§6',
    title: 'an unknown application protocol: WELCOME with an empty one (or NO_APPLICATION_PROTOCOL)',
    async run(context) {
      const peer = await context.connect();
      peer.sendHello(
        defaultHello({
          idleTimeoutMs: context.options.idleTimeoutMs,
          applicationProtocols: ['conformance/none'],
        }),
      );
      const done = await peer.until(
        () => (peer.welcome !== undefined || peer.error !== undefined || peer.ended ? true : undefined),
        context.options.timeoutMs,
      );
      const expected = "application_protocol '' (none chosen), or ERROR NO_APPLICATION_PROTOCOL";
      if (done === undefined) return fail(expected, describe(peer));
      if (peer.welcome !== undefined) {
        return peer.welcome.applicationProtocol === ''
          ? pass(expected, "application_protocol ''")
          : fail(expected, `application_protocol '${peer.welcome.applicationProtocol}'`);
      }
      const outcome = await expectError(context, peer, ['NO_APPLICATION_PROTOCOL']);
      return outcome.status === 'pass'
        ? info(expected, `${outcome.seen} (the server requires one)`)
        : outcome;
    },
  },
  {
    id: '5.4/unknown-protobuf-fields',
    section: '§5.4',
    title: 'a HELLO with unknown protobuf fields is accepted (unknown fields MUST be ignored)',
    async run(context) {
      const hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      const peer = await context.connect();
      const body = Uint8Array.from([
        ...pbVarint(1, 1),
        ...pbVarint(3, hello.idleTimeoutMs),
        ...pbVarint(4, hello.initialCredit),
        ...pbVarint(5, hello.maxFramePayload),
        ...pbVarint(6, hello.maxMessageSize),
        ...pbVarint(100, 12345),
        ...pbBytes(101, utf8.encode('from a later version')),
      ]);
      peer.hello = hello;
      peer.grantedLimit = peer.window = hello.initialCredit;
      peer.send(concat(PREAMBLE, rawFrame(FrameType.HELLO, 0, body)));
      return welcomeThenAlive(context, peer, 'WELCOME despite fields 100 and 101');
    },
  },
  {
    id: '5.4/long-string-accepted',
    section: '§5.4',
    title: 'a HELLO string field longer than 256 bytes (a sender would truncate it) is accepted',
    async run(context) {
      const hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      const peer = await context.connect();
      const long = utf8.encode(`conformance/${'x'.repeat(300)}`);
      const body = Uint8Array.from([
        ...pbVarint(1, 1),
        ...pbVarint(3, hello.idleTimeoutMs),
        ...pbVarint(4, hello.initialCredit),
        ...pbVarint(5, hello.maxFramePayload),
        ...pbVarint(6, hello.maxMessageSize),
        ...pbBytes(7, long),
      ]);
      hello.applicationProtocols = [new TextDecoder().decode(long)];
      peer.hello = hello;
      peer.grantedLimit = peer.window = hello.initialCredit;
      peer.send(concat(PREAMBLE, rawFrame(FrameType.HELLO, 0, body)));
      return welcomeThenAlive(context, peer, 'WELCOME despite a 312-byte application protocol name');
    },
  },
  rawHello(
    '5.4/repeated-field-last-wins',
    'a HELLO with idle_timeout_ms twice (50, then 1000) is accepted: the last value wins',
    (h) => [...pbVarint(3, 50), ...pbVarint(3, h.idleTimeoutMs)],
    'accept',
  ),
  rawHello(
    '5.4/unknown-groups',
    'a HELLO with unknown group fields nested 3 deep is accepted',
    () => [0x9b, 0x01, 0x08, 0x01, 0xa3, 0x01, 0xab, 0x01, 0xac, 0x01, 0xa4, 0x01, 0x9c, 0x01],
    'accept',
  ),
  rawHello(
    '5.4/invalid-utf8',
    'a HELLO application protocol that is not valid UTF-8 (ff fe): PROTOCOL_ERROR',
    () => pbBytes(7, [0x63, 0xff, 0xfe]),
    'reject',
  ),
  {
    id: '12/non-canonical-hello',
    section: '§12',
    title: 'a HELLO in a non-canonical protobuf encoding (reversed fields, unpacked versions) is accepted',
    async run(context) {
      const hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      const peer = await context.connect();
      const body = Uint8Array.from([
        ...pbVarint(6, hello.maxMessageSize),
        ...pbVarint(5, hello.maxFramePayload),
        ...pbVarint(4, hello.initialCredit),
        ...pbVarint(3, hello.idleTimeoutMs),
        ...pbVarint(1, 7),
        ...pbVarint(1, 1),
      ]);
      hello.versions = [7, 1];
      peer.hello = hello;
      peer.grantedLimit = peer.window = hello.initialCredit;
      peer.send(concat(PREAMBLE, rawFrame(FrameType.HELLO, 0, body)));
      return welcomeThenAlive(context, peer, 'WELCOME for any valid encoding');
    },
  },
  wrongFirstFrame(
    'data-before-hello',
    'DATA before HELLO: ERROR PROTOCOL_ERROR',
    rawFrame(FrameType.DATA, 1, 3),
  ),
  wrongFirstFrame('credit-before-hello', 'CREDIT before HELLO: ERROR PROTOCOL_ERROR', creditFrame(65536, 0)),
  {
    id: '6/handshake-timeout',
    section: '§6',
    title: 'a client that stops mid-HELLO gets ERROR HANDSHAKE_TIMEOUT at the handshake timeout',
    budgetMs: (o) => Math.min(o.handshakeTimeoutMs, o.maxWaitMs) + 2 * o.timeoutMs,
    async run(context) {
      const { handshakeTimeoutMs, maxWaitMs, toleranceMs } = context.options;
      const expected = `ERROR HANDSHAKE_TIMEOUT about ${handshakeTimeoutMs} ms after the connection`;
      if (handshakeTimeoutMs > maxWaitMs) {
        return info(expected, `not run: the handshake timeout exceeds --max-wait ${maxWaitMs} ms`);
      }
      const peer = await context.connect();
      const hello = helloFrame(defaultHello());
      peer.send(concat(PREAMBLE, hello.subarray(0, 3)));
      const outcome = await expectError(context, peer, ['HANDSHAKE_TIMEOUT'], {
        within: handshakeTimeoutMs + toleranceMs + context.options.timeoutMs,
      });
      if (outcome.status !== 'pass') return outcome;
      const at = peer.received.find((r) => r.frame.type === FrameType.ERROR)?.at ?? 0;
      const slack = 2 * toleranceMs + handshakeTimeoutMs * 0.1;
      if (Math.abs(at - handshakeTimeoutMs) > slack) {
        return fail(expected, `ERROR HANDSHAKE_TIMEOUT after ${Math.round(at)} ms`);
      }
      return pass(expected, `ERROR HANDSHAKE_TIMEOUT after ${Math.round(at)} ms`);
    },
  },
];

/** A hand-encoded HELLO: the default fields plus `extra` bytes; accepted or PROTOCOL_ERROR. */
function rawHello(
  id: string,
  title: string,
  extra: (hello: Hello) => number[],
  verdict: 'accept' | 'reject',
): ConformanceCase {
  return {
    id,
    section: `§${id.split('/')[0]}`,
    title,
    async run(context) {
      const hello = defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs });
      const peer = await context.connect();
      const body = Uint8Array.from([
        ...pbVarint(1, 1),
        ...pbVarint(3, hello.idleTimeoutMs),
        ...pbVarint(4, hello.initialCredit),
        ...pbVarint(5, hello.maxFramePayload),
        ...pbVarint(6, hello.maxMessageSize),
        ...extra(hello),
      ]);
      peer.hello = hello;
      peer.grantedLimit = peer.window = hello.initialCredit;
      peer.send(concat(PREAMBLE, rawFrame(FrameType.HELLO, 0, body)));
      if (verdict === 'reject') return expectError(context, peer, ['PROTOCOL_ERROR']);
      return welcomeThenAlive(context, peer, title);
    },
  };
}

async function welcomeThenAlive(context: CaseContext, peer: ClientPeer, what: string): Promise<Outcome> {
  const welcome = await peer.until(
    () => peer.welcome ?? (peer.error !== undefined || peer.ended ? false : undefined),
    context.options.timeoutMs,
  );
  if (welcome === undefined || welcome === false) return fail(what, describe(peer));
  peer.startHeartbeats();
  return expectAlive(context, peer, what);
}
