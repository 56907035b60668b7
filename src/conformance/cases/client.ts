/**
 * The cases of `heartwire conformance client`: the runner plays the server. Each case gets one
 * fresh connection from the client under test.
 * @module
 */
import { FrameType } from '../../protocol/constants.js';
import type { WireErrorName } from '../../protocol/errors.js';
import type { Welcome } from '../../protocol/frames.js';
import type { ClientCase, ClientCaseContext } from '../client-runner.js';
import { defaultWelcome } from '../client-runner.js';
import { describe, expectError, fail, info, pass } from '../expect.js';
import type { Received } from '../peer.js';
import type { Outcome } from '../types.js';
import { closeFrame, concat, header, heartbeatFrame } from '../wire.js';

const U32 = 0x1_0000_0000;

/** A WELCOME with `overrides` must make the client fail with ERROR `codes`. */
function badWelcome(
  id: string,
  title: string,
  overrides: (c: ClientCaseContext) => Partial<Welcome>,
  codes: WireErrorName[] = ['PROTOCOL_ERROR'],
): ClientCase {
  return {
    id: `6/${id}`,
    section: '§6',
    title,
    async run(context) {
      await context.awaitHello();
      context.peer.sendWelcome(defaultWelcome(context.peer, overrides(context)));
      return expectError(context, context.peer, codes);
    },
  };
}

/** After the handshake, `bytes` must make the client fail with ERROR `codes`. */
function rejects(
  id: string,
  section: string,
  title: string,
  bytes: (c: ClientCaseContext) => Uint8Array,
  codes: WireErrorName[],
): ClientCase {
  return {
    id,
    section,
    title,
    async run(context) {
      await context.handshake({}, { heartbeats: false });
      context.peer.send(bytes(context));
      return expectError(context, context.peer, codes);
    },
  };
}

function heartbeatsOf(received: Received[]): Received[] {
  return received.filter((r) => r.frame.type === FrameType.HEARTBEAT);
}

/** GOAWAY, then waits for the client's CLOSE; an INFO outcome when the client does not close. */
async function goAwayAndClose(context: ClientCaseContext, expected: string): Promise<Outcome | undefined> {
  const { peer } = context;
  await context.handshake();
  await peer.sleep(100);
  peer.sendGoAway(3000);
  const closed = await peer.until(
    () => (peer.close !== undefined ? true : peer.error !== undefined || peer.ended ? false : undefined),
    3000 + context.options.toleranceMs,
  );
  if (closed === undefined)
    return info(
      expected,
      'no CLOSE within the 3000 ms grace (§9.2 rule 3 is a SHOULD; the client application decides)',
    );
  if (closed === false) return fail(expected, describe(peer));
  return undefined;
}

export const clientCases: ClientCase[] = [
  {
    id: '6/client-hello',
    section: '§6',
    title: 'the client sends the preamble and a valid HELLO at once, and nothing else before WELCOME',
    async run(context) {
      const { peer } = context;
      await context.awaitHello();
      const expected = 'preamble, HELLO with fields in range, then nothing until WELCOME';
      await peer.sleep(200);
      if (peer.received.length > 1) return fail(expected, `more before WELCOME: ${describe(peer)}`);
      const h = peer.hello!;
      peer.sendWelcome(defaultWelcome(peer));
      await peer.sleep(100);
      return pass(
        expected,
        `HELLO after ${Math.round(peer.helloAt!)} ms: versions [${h.versions.join(', ')}], idle ${h.idleTimeoutMs} ms, credit ${h.initialCredit}, frame ${h.maxFramePayload}, message ${h.maxMessageSize}`,
      );
    },
  },
  {
    id: '3/client-rejects-bad-preamble',
    section: '§3',
    title: 'a bad server preamble byte: the client closes at once (PROTOCOL_MISMATCH, no ERROR)',
    async run(context) {
      const { peer } = context;
      await context.awaitHello();
      const count = peer.received.length;
      peer.send(Uint8Array.of(0x89, 0x48, 0x58));
      const prompt = Math.max(2 * context.options.toleranceMs, 100);
      const sentAt = peer.now();
      const expected = `the transport closed within ${prompt} ms, no frame sent`;
      if (!(await peer.waitEnded(context.options.timeoutMs))) return fail(expected, describe(peer));
      const after = Math.min(peer.eofAt ?? Infinity, peer.closedAt ?? Infinity) - sentAt;
      if (peer.received.length > count)
        return fail(expected, `frames after the bad preamble: ${describe(peer)}`);
      if (after > prompt) return fail(expected, `closed after ${Math.round(after)} ms`);
      return pass(expected, `closed after ${Math.round(after)} ms`);
    },
  },
  badWelcome(
    'client-rejects-version',
    'WELCOME with version 2 (not offered): ERROR UNSUPPORTED_VERSION',
    () => ({ version: 2 }),
    ['UNSUPPORTED_VERSION'],
  ),
  badWelcome(
    'client-rejects-extension',
    'WELCOME accepting an extension not offered: PROTOCOL_ERROR',
    () => ({ extensions: ['x-conformance-never-offered'] }),
  ),
  badWelcome(
    'client-rejects-application-protocol',
    'WELCOME choosing an application protocol not offered: PROTOCOL_ERROR',
    () => ({ applicationProtocol: 'conformance/never-offered' }),
  ),
  badWelcome('client-rejects-idle-timeout', 'WELCOME idle_timeout_ms 50: PROTOCOL_ERROR', () => ({
    idleTimeoutMs: 50,
  })),
  badWelcome(
    'client-rejects-client-idle-timeout',
    'WELCOME client_idle_timeout_ms 50: PROTOCOL_ERROR',
    () => ({ clientIdleTimeoutMs: 50 }),
  ),
  badWelcome('client-rejects-initial-credit', 'WELCOME initial_credit 1023: PROTOCOL_ERROR', () => ({
    initialCredit: 1023,
  })),
  badWelcome('client-rejects-max-frame-payload', 'WELCOME max_frame_payload 1023: PROTOCOL_ERROR', () => ({
    maxFramePayload: 1023,
  })),
  {
    id: '8/client-first-heartbeat',
    section: '§8',
    title: "the client sends a HEARTBEAT on WELCOME, echoing the server's first HEARTBEAT",
    async run(context) {
      const { peer } = context;
      await context.handshake({}, { heartbeats: false });
      peer.sendHeartbeat();
      const ours = peer.sentHeartbeats[0]!;
      const expected = `a HEARTBEAT within ${context.options.toleranceMs} ms of WELCOME; one echoing our timestamp ${ours.timestamp}`;
      const first = await peer.until(() => heartbeatsOf(peer.received)[0], context.options.toleranceMs + 100);
      if (first === undefined) return fail(expected, `none: ${describe(peer)}`);
      const echo = await peer.until(
        () =>
          heartbeatsOf(peer.received).find(
            (r) =>
              r.frame.type === FrameType.HEARTBEAT &&
              r.frame.echo &&
              r.frame.echoTimestamp === ours.timestamp,
          ),
        context.options.toleranceMs + 100,
      );
      if (echo === undefined) return fail(expected, 'no HEARTBEAT echoing ours');
      return pass(
        expected,
        `first HEARTBEAT ${Math.round(first.at - ours.at)} ms after WELCOME, echoing ours`,
      );
    },
  },
  {
    id: '8/client-heartbeat-schedule',
    section: '§8',
    title: 'the client heartbeats every I = idle_timeout_ms (WELCOME) / 3, each period within [0.9 I, 1.1 I]',
    budgetMs: (o) => 3000 + 2 * o.timeoutMs,
    async run(context) {
      const { peer } = context;
      const { toleranceMs } = context.options;
      await context.handshake({ idleTimeoutMs: 600 });
      const interval = 200;
      await peer.sleep(7 * interval);
      const expected = `periods within [180, 220] ms (±${toleranceMs} ms), no silence over 220 ms`;
      if (peer.ended || peer.error !== undefined) return fail(expected, describe(peer));
      const at = heartbeatsOf(peer.received).map((r) => r.at);
      if (at.length < 3) return fail(expected, `${at.length} heartbeats in ${7 * interval} ms`);
      const gaps = at.slice(2).map((t, i) => t - at[i + 1]!);
      const longest = Math.max(...at.slice(1).map((t, i) => t - at[i]!), peer.now() - at[at.length - 1]!);
      const seen = `${at.length} heartbeats; periods ${gaps.map((g) => Math.round(g)).join(', ')} ms; longest silence ${Math.round(longest)} ms`;
      if (
        gaps.some((g) => g < 0.9 * interval - toleranceMs || g > 1.1 * interval + toleranceMs) ||
        longest > 1.1 * interval + toleranceMs
      )
        return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '8/client-idle-deadline',
    section: '§8',
    title:
      'the client uses the clamped client_idle_timeout_ms (1000) of WELCOME as its deadline on a silent server',
    budgetMs: (o) => 1000 + 3 * o.timeoutMs,
    async run(context) {
      const { peer } = context;
      const { toleranceMs } = context.options;
      await context.handshake({ clientIdleTimeoutMs: 1000 }, { heartbeats: false });
      const welcomeAt = peer.now();
      const expected = `the client closes between ${1000 - toleranceMs} and ${1050 + toleranceMs} ms after WELCOME (ERROR, if any, HEARTBEAT_TIMEOUT)`;
      if (!(await peer.waitEnded(1050 + toleranceMs + context.options.timeoutMs)))
        return fail(expected, describe(peer));
      const at =
        Math.min(
          peer.eofAt ?? Infinity,
          peer.closedAt ?? Infinity,
          peer.received.find((r) => r.frame.type === FrameType.ERROR)?.at ?? Infinity,
        ) - welcomeAt;
      const seen = `closed after ${Math.round(at)} ms${peer.error === undefined ? '' : `, ERROR code ${peer.error.code}`}`;
      if (peer.error !== undefined && peer.error.code !== 8) return fail(expected, seen);
      if (at < 1000 - toleranceMs || at > 1050 + toleranceMs) return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '7/client-respects-credit',
    section: '§7',
    title:
      "rule 1: the client's DATA stays within the credit granted (initial_credit 1024, then grants of 1024)",
    budgetMs: (o) => 4 * o.timeoutMs,
    async run(context) {
      const { peer } = context;
      await context.handshake({ initialCredit: 1024, maxFramePayload: 1024 });
      peer.autoCredit = false;
      const expected = 'more than 2048 credit bytes of DATA, every frame within the limit granted';
      const deadline = peer.now() + context.options.timeoutMs;
      while (
        peer.receivedCredit <= 2048 &&
        peer.now() < deadline &&
        !peer.ended &&
        peer.error === undefined
      ) {
        if (peer.grantedLimit - peer.receivedCredit < 600) {
          peer.grantedLimit = peer.receivedCredit + 1024;
          peer.sendCredit();
        }
        await peer.sleep(10);
      }
      if (peer.receivedCredit === 0)
        return info(expected, 'the client sent no DATA (this case needs a client that sends messages)');
      if (peer.receivedCredit <= 2048)
        return info(expected, `only ${peer.receivedCredit} credit bytes of DATA`);
      return pass(
        expected,
        `${peer.receivedCredit} credit bytes in ${peer.received.filter((r) => r.frame.type === FrameType.DATA).length} DATA frames, within credit`,
      );
    },
  },
  rejects(
    '7/client-flow-control-error',
    '§7',
    "rule 2: a DATA header beyond the client's initial_credit: FLOW_CONTROL_ERROR",
    (c) => header(c.peer.hello!.initialCredit - 6 + 1, FrameType.DATA, 0),
    ['FLOW_CONTROL_ERROR', 'FRAME_TOO_LARGE'],
  ),
  rejects(
    '8/client-heartbeat-flood',
    '§8',
    '10 heartbeats with one timestamp: ENHANCE_YOUR_CALM',
    (c) => {
      const base = c.peer.heartbeatFields();
      return concat(
        ...Array.from({ length: 10 }, () => heartbeatFrame({ ...base, timestamp: base.timestamp % U32 })),
      );
    },
    ['ENHANCE_YOUR_CALM'],
  ),
  rejects(
    '5/client-rejects-close',
    '§5',
    'a CLOSE from the server (client-only frame): PROTOCOL_ERROR',
    () => closeFrame({ sentMessages: 0, consumedMessages: 0 }),
    ['PROTOCOL_ERROR'],
  ),
  rejects(
    '13/client-rejects-must-understand',
    '§13',
    'a must-understand extension frame 0x40 not negotiated: PROTOCOL_ERROR',
    () => concat(header(1, 0x40), Uint8Array.of(1)),
    ['PROTOCOL_ERROR'],
  ),
  {
    id: '9.2/client-closes-on-goaway',
    section: '§9.2',
    title:
      'GOAWAY: the client sends CLOSE within the grace with exact counts, then the final CREDIT and FIN after CLOSE_ACK',
    budgetMs: (o) => 3000 + 3 * o.timeoutMs,
    async run(context) {
      const { peer } = context;
      const expected =
        'CLOSE (sent_messages exact) within the grace; after CLOSE_ACK a CREDIT consuming all our messages, then FIN';
      const early = await goAwayAndClose(context, expected);
      if (early !== undefined) return early;
      const count = peer.received.length;
      peer.sendCloseAck();
      if (!(await peer.waitEnded(context.options.timeoutMs)))
        return fail(expected, `no FIN after CLOSE_ACK: ${describe(peer)}`);
      const credit = peer.received.slice(count).find((r) => r.frame.type === FrameType.CREDIT);
      if (peer.eofAt === undefined)
        return fail(expected, `the transport was reset, not half-closed: ${describe(peer)}`);
      if (credit === undefined || credit.frame.type !== FrameType.CREDIT)
        return fail(expected, 'no final CREDIT before FIN (§9.1 rule 3)');
      if (credit.frame.consumedMessages !== peer.sentMessages)
        return fail(
          expected,
          `final CREDIT consumed ${credit.frame.consumedMessages} of ${peer.sentMessages}`,
        );
      return pass(
        expected,
        `CLOSE ${Math.round(peer.closeAt! - peer.received.find((r) => r.frame.type === FrameType.HELLO)!.at)} ms in (sent ${peer.close!.sentMessages}); final CREDIT; FIN`,
      );
    },
  },
  {
    id: '9.1/client-checks-close-ack',
    section: '§9.1',
    title: 'a CLOSE_ACK whose sent_messages does not match what the client received: PROTOCOL_ERROR',
    budgetMs: (o) => 3000 + 3 * o.timeoutMs,
    async run(context) {
      const { peer } = context;
      const expected = 'ERROR PROTOCOL_ERROR after CLOSE_ACK with sent_messages + 1';
      const early = await goAwayAndClose(context, expected);
      if (early !== undefined) return early;
      peer.sendCloseAck(1);
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  },
];
