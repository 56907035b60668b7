/**
 * SPEC.md §9 (termination: CLOSE/CLOSE_ACK, GOAWAY, crossing, state machines) and §9.4
 * (delivery accounting).
 * @module
 */
import { FrameType } from '../../protocol/constants.js';
import { describe, expectAlive, expectError, fail, info, pass } from '../expect.js';
import type { ClientPeer } from '../client-peer.js';
import type { CaseContext, ConformanceCase, Outcome } from '../types.js';
import { closeFrame, concat, dataFrame, header, heartbeatFrame, pattern } from '../wire.js';

/** Sends `count` small messages within credit. */
async function sendSome(context: CaseContext, peer: ClientPeer, count: number): Promise<void> {
  for (let i = 0; i < count; i++) await peer.sendMessage(pattern(50 + i, i), context.options.timeoutMs);
}

/** Waits for GOAWAY (the run must say when the server sends one). */
async function awaitGoAway(context: CaseContext, peer: ClientPeer): Promise<Outcome | undefined> {
  const within = context.options.goAwayWithinMs!;
  const got = await peer.until(
    () => (peer.goAway !== undefined ? true : peer.error !== undefined || peer.ended ? false : undefined),
    within + context.options.timeoutMs,
  );
  if (got !== true) return fail(`GOAWAY within ${within} ms (--goaway-within)`, describe(peer));
  return undefined;
}

const noGoAway = (expected: string): Outcome =>
  info(expected, 'not run: needs a server that sends GOAWAY (pass --goaway-within MS)');

export const terminationCases: ConformanceCase[] = [
  {
    id: '9.1/close-idle',
    section: '§9.1',
    title: 'CLOSE on an idle connection: CLOSE_ACK (0 delivered), then the server closes after our FIN',
    async run(context) {
      const peer = await context.open();
      return expectAlive(context, peer, 'CLOSE_ACK with sent = messages received, consumed = delivered = 0');
    },
  },
  {
    id: '9.1/close-after-messages',
    section: '§9.1',
    title:
      'CLOSE right behind 5 messages: the server consumes all 5, sends its last DATA, then CLOSE_ACK with exact counts',
    async run(context) {
      const peer = await context.open();
      await sendSome(context, peer, 5);
      const outcome = await expectAlive(
        context,
        peer,
        'CLOSE_ACK consumed = delivered = 5, sent = messages it sent',
      );
      if (outcome.status !== 'pass') return outcome;
      const ack = peer.find((r) => r.frame.type === FrameType.CLOSE_ACK)!;
      if (ack.frame.type !== FrameType.CLOSE_ACK) return outcome;
      const a = ack.frame.closeAck;
      return pass(
        outcome.expected,
        `CLOSE_ACK sent ${a.sentMessages}, consumed ${a.consumedMessages}, delivered ${a.deliveredMessages}; clean close`,
      );
    },
  },
  {
    id: '9.3/server-reads-after-close-ack',
    section: '§9.3',
    title:
      'after CLOSE_ACK the server keeps reading CREDIT and HEARTBEAT, sends nothing, and closes on our FIN',
    async run(context) {
      const peer = await context.open();
      peer.finishOnCloseAck = false;
      await sendSome(context, peer, 2);
      peer.sendClose();
      const expected =
        'CLOSE_ACK; then silence while we send CREDIT and HEARTBEAT; the transport closed after our FIN';
      const ack = await peer.until(
        () => (peer.closeAckAt !== undefined ? true : peer.ended ? false : undefined),
        context.options.timeoutMs,
      );
      if (ack !== true) return fail(expected, describe(peer));
      for (let i = 0; i < 3; i++) {
        peer.sendHeartbeat();
        peer.sendCredit();
        await peer.sleep(50);
      }
      if (peer.ended || peer.error !== undefined)
        return fail(expected, `closed before our FIN: ${describe(peer)}`);
      peer.sendCredit();
      peer.end();
      if (!(await peer.waitEnded(context.options.timeoutMs)))
        return fail(expected, 'still open after our FIN (§9.1 rule 4)');
      return pass(expected, 'silent after CLOSE_ACK; closed after our FIN');
    },
  },
  {
    id: '9.3/data-after-close',
    section: '§9.3',
    title: 'DATA after CLOSE: PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      peer.closeSent = true;
      peer.finishOnCloseAck = false;
      peer.send(concat(closeFrame({ sentMessages: 0, consumedMessages: 0 }), dataFrame(pattern(10), true)));
      return expectError(context, peer, ['PROTOCOL_ERROR'], { noErrorFrame: 'after-close-ack' });
    },
  },
  {
    id: '9.3/second-close',
    section: '§9.3',
    title: 'a second CLOSE: PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      peer.closeSent = true;
      peer.finishOnCloseAck = false;
      const close = closeFrame({ sentMessages: 0, consumedMessages: 0 });
      peer.send(concat(close, close));
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  },
  {
    id: '9.3/fin-without-close',
    section: '§9.3',
    title: 'end-of-stream without CLOSE is UNEXPECTED_EOF: the server closes, no CLOSE_ACK',
    async run(context) {
      const peer = await context.open();
      peer.end();
      const expected = 'the transport closed, no CLOSE_ACK';
      if (!(await peer.waitEnded(context.options.timeoutMs))) return fail(expected, describe(peer));
      if (peer.closeAckAt !== undefined) return fail(expected, 'CLOSE_ACK after a FIN without CLOSE');
      return pass(expected, describe(peer));
    },
  },
  {
    id: '9.1/close-count-mismatch',
    section: '§9.1',
    title: 'a CLOSE whose sent_messages does not match the messages received: PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      await sendSome(context, peer, 1);
      peer.closeSent = true;
      peer.finishOnCloseAck = false;
      peer.send(closeFrame({ sentMessages: 3, consumedMessages: 0 }));
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  },
  {
    id: '9.1/close-with-incomplete-message',
    section: '§9.1',
    title: 'CLOSE while a client message is incomplete (DATA without END): PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      peer.closeSent = true;
      peer.finishOnCloseAck = false;
      peer.send(concat(dataFrame(pattern(600), false), closeFrame({ sentMessages: 0, consumedMessages: 0 })));
      peer.noteDataSent(600, false);
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  },
  {
    id: '9.1/close-consumed-beyond-sent',
    section: '§9.1',
    title: 'CLOSE reporting more server messages consumed than the server sent: PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      peer.closeSent = true;
      peer.finishOnCloseAck = false;
      peer.send(closeFrame({ sentMessages: 0, consumedMessages: peer.messages.length + 3 }));
      return expectError(context, peer, ['PROTOCOL_ERROR']);
    },
  },
  {
    id: '11/error-then-half-close',
    section: '§11',
    title:
      'after sending ERROR the server half-closes and drains: FIN, no reset while the client still writes',
    async run(context) {
      const peer = await context.open();
      peer.stopHeartbeats();
      peer.send(header(0, 0x03));
      const expected = 'ERROR PROTOCOL_ERROR, then FIN; our writes for 300 ms after it cause no reset';
      const got = await peer.until(
        () =>
          peer.eofAt !== undefined || peer.closedAt !== undefined || peer.socketError !== undefined
            ? true
            : undefined,
        context.options.timeoutMs,
      );
      if (got === undefined || peer.error === undefined) return fail(expected, describe(peer));
      if (peer.eofAt === undefined) return fail(expected, `no FIN: ${describe(peer)}`);
      for (let i = 0; i < 6; i++) {
        peer.send(heartbeatFrame(peer.heartbeatFields()));
        await peer.sleep(50);
      }
      if (peer.socketError !== undefined)
        return fail(expected, `reset while draining: ${peer.socketError.message}`);
      peer.end();
      if (!(await peer.waitEnded(context.options.timeoutMs)) || peer.closedAt === undefined) {
        await peer.until(() => (peer.closedAt !== undefined ? true : undefined), context.options.timeoutMs);
      }
      if (peer.closedAt === undefined) return fail(expected, 'the server did not close after our FIN');
      return pass(
        expected,
        `ERROR ${peer.error.code}, FIN at ${Math.round(peer.eofAt)} ms, no reset; closed after our FIN`,
      );
    },
  },
  {
    id: '9.4/error-reports-counts',
    section: '§9.4',
    title: "an ERROR reports the client's messages consumed and delivered",
    budgetMs: (o) => 4 * o.timeoutMs + Math.min(o.maxWaitMs, 30_000),
    async run(context) {
      const peer = await context.open();
      await sendSome(context, peer, 2);
      const interval = peer.welcome!.clientIdleTimeoutMs / 3;
      const expected =
        'after 2 messages reported consumed, ERROR PROTOCOL_ERROR with consumed = delivered = 2';
      if (2 * interval > context.options.maxWaitMs)
        return info(expected, 'not run: heartbeat period above --max-wait');
      const consumed = await peer.until(
        () => (peer.peerConsumed >= 2 ? true : undefined),
        2.2 * interval + context.options.toleranceMs,
      );
      if (consumed === undefined)
        return fail(
          expected,
          `the server reported ${peer.peerConsumed} consumed within two heartbeat periods`,
        );
      peer.send(header(0, 0x03));
      const outcome = await expectError(context, peer, ['PROTOCOL_ERROR']);
      if (outcome.status !== 'pass') return outcome;
      const e = peer.error!;
      const seen = `ERROR consumed ${e.consumedMessages}, delivered ${e.deliveredMessages}`;
      return e.consumedMessages === 2 && e.deliveredMessages === 2
        ? pass(expected, seen)
        : fail(expected, seen);
    },
  },
  {
    id: '9.2/goaway-then-close',
    section: '§9.2',
    title: 'after GOAWAY the server keeps working; CLOSE while going away gets CLOSE_ACK (the crossing case)',
    budgetMs: (o) => (o.goAwayWithinMs ?? 0) + 4 * o.timeoutMs,
    async run(context) {
      const expected =
        'GOAWAY (grace_ms > 0); a message after it is consumed; CLOSE → CLOSE_ACK → clean close';
      if (context.options.goAwayWithinMs === undefined) return noGoAway(expected);
      const peer = await context.open();
      await sendSome(context, peer, 1);
      const missing = await awaitGoAway(context, peer);
      if (missing !== undefined) return missing;
      const g = peer.goAway!;
      if (g.graceMs === 0) return fail(expected, 'GOAWAY with grace_ms 0');
      await sendSome(context, peer, 1);
      const outcome = await expectAlive(context, peer, expected);
      if (outcome.status !== 'pass') return outcome;
      return pass(
        expected,
        `GOAWAY grace ${g.graceMs} ms, reason ${g.reason}, consumed ${g.consumedMessages}; then ${outcome.seen}`,
      );
    },
  },
  {
    id: '9.2/goaway-grace-expired',
    section: '§9.2',
    title: 'a client that does not CLOSE within the GOAWAY grace gets ERROR GOAWAY_GRACE_EXPIRED',
    budgetMs: (o) => (o.goAwayWithinMs ?? 0) + Math.min(o.maxWaitMs, 60_000) + 4 * o.timeoutMs,
    async run(context) {
      const expected = 'ERROR GOAWAY_GRACE_EXPIRED grace_ms after GOAWAY, not before';
      if (context.options.goAwayWithinMs === undefined) return noGoAway(expected);
      const peer = await context.open();
      const missing = await awaitGoAway(context, peer);
      if (missing !== undefined) return missing;
      const grace = peer.goAway!.graceMs;
      if (grace > context.options.maxWaitMs)
        return info(expected, `not run: grace ${grace} ms exceeds --max-wait`);
      const goAwayAt = peer.find((r) => r.frame.type === FrameType.GOAWAY)!.at;
      const outcome = await expectError(context, peer, ['GOAWAY_GRACE_EXPIRED'], {
        within: grace + context.options.toleranceMs + context.options.timeoutMs,
      });
      if (outcome.status !== 'pass') return outcome;
      const after = peer.find((r) => r.frame.type === FrameType.ERROR)!.at - goAwayAt;
      const seen = `ERROR GOAWAY_GRACE_EXPIRED ${Math.round(after)} ms after GOAWAY (grace ${grace} ms)`;
      if (
        after < grace - context.options.toleranceMs ||
        after > grace * 1.05 + 2 * context.options.toleranceMs
      ) {
        return fail(expected, seen);
      }
      return pass(expected, seen);
    },
  },
];
