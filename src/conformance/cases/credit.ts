/**
 * SPEC.md §7 (credit flow control, rules 1–6), §5.3 (credit fields of HEARTBEAT) and the
 * negotiated `max_message_size` (§6).
 * @module
 */
import { FrameType } from '../../protocol/constants.js';
import { describe, expectAlive, expectError, fail, info, pass } from '../expect.js';
import type { ClientPeer } from '../client-peer.js';
import type { CaseContext, ConformanceCase, Outcome } from '../types.js';
import { creditFrame, dataCost, header, heartbeatFrame, pattern } from '../wire.js';

/** Largest message the runner sends to test on-demand window growth. */
const MAX_TEST_MESSAGE = 16 * 1024 * 1024;

/** Waits until the server has echoed `count` messages; false if it did not (not an echo server?). */
async function echoed(peer: ClientPeer, count: number, timeoutMs: number): Promise<boolean> {
  const done = await peer.until(
    () => (peer.messages.length >= count ? true : peer.error !== undefined || peer.ended ? false : undefined),
    timeoutMs,
  );
  return done === true;
}

const NOT_ECHO = 'the server did not echo (this case needs an echo server, e.g. heartwire serve)';

export const creditCases: ConformanceCase[] = [
  {
    id: '7/rule1-exact-credit-accepted',
    section: '§7',
    title: 'rule 1: a DATA frame costing exactly the remaining credit is accepted',
    async run(context) {
      const peer = await context.open();
      const w = peer.welcome!;
      const size = w.initialCredit - dataCost(0, true);
      const expected = `a message of ${size} bytes (cost ${w.initialCredit} = initial_credit) accepted`;
      if (size > w.maxFramePayload || size > w.maxMessageSize) {
        return info(expected, `not run: initial_credit ${w.initialCredit} exceeds one frame or one message`);
      }
      // Only the initial limit is certain: the server may grant more but never less.
      const payload = pattern(size);
      peer.send(concatFrame(payload));
      peer.noteDataSent(size, true);
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '7/rule2-data-beyond-credit',
    section: '§7',
    title: 'rule 2: a DATA header beyond the granted credit gets FLOW_CONTROL_ERROR before its payload',
    async run(context) {
      const peer = await context.open();
      const w = peer.welcome!;
      const available = peer.peerLimit - peer.sentCredit;
      const size = available - 6 + 1; // one byte over, without END (no per-message overhead)
      const expected = `ERROR FLOW_CONTROL_ERROR for a DATA header of ${size} bytes with ${available} credit bytes left`;
      if (size > w.maxFramePayload) {
        return info(
          expected,
          `not run: the server's credit (${available}) exceeds one frame (${w.maxFramePayload})`,
        );
      }
      peer.send(header(size, FrameType.DATA, 0)); // the header only: the check comes first
      return expectError(context, peer, ['FLOW_CONTROL_ERROR']);
    },
  },
  {
    id: '7/rule1-server-respects-credit',
    section: '§7',
    title:
      'rule 1: the server never sends DATA beyond the credit granted (initial_credit 1024, then small grants)',
    budgetMs: (o) => 6 * o.timeoutMs,
    async run(context) {
      const peer = await context.open({ initialCredit: 1024, maxFramePayload: 1024 });
      peer.autoCredit = false;
      const payload = pattern(5000, 3);
      const expected =
        'the 5000-byte echo arrives within our small grants; every frame within credit (rule 1) and ≥ 512 bytes unless last (§5.1)';
      const sent = peer.sendMessage(payload, context.options.timeoutMs);
      // Grant 1024 more whenever the server has used most of what it has: rule 5 as a receiver.
      const deadline = peer.now() + 2 * context.options.timeoutMs;
      while (peer.messages.length === 0 && !peer.ended && peer.error === undefined && peer.now() < deadline) {
        if (peer.grantedLimit - peer.receivedCredit < 1024) {
          peer.grantedLimit = peer.receivedCredit + 1024;
          peer.sendCredit();
        }
        await peer.sleep(10);
      }
      if (!(await sent)) return fail(expected, `our message could not be sent: ${describe(peer)}`);
      if (peer.messages.length === 0) {
        return peer.receivedCredit === 0
          ? info(expected, NOT_ECHO)
          : fail(expected, `echo incomplete: ${describe(peer)}`);
      }
      const same =
        peer.messages[0]!.length === payload.length && peer.messages[0]!.every((b, i) => b === payload[i]);
      if (!same) return fail(expected, `the echo differs (${peer.messages[0]!.length} bytes)`);
      peer.autoCredit = true;
      const dataFrames = peer.received.filter((r) => r.frame.type === FrameType.DATA).length;
      const alive = await expectAlive(context, peer, expected);
      return alive.status === 'pass'
        ? pass(expected, `echo in ${dataFrames} DATA frames within credit`)
        : alive;
    },
  },
  {
    id: '7/rule3-limit-never-lowered',
    section: '§7',
    title: 'rule 3: a CREDIT with a lower limit leaves the limit unchanged',
    async run(context) {
      const peer = await context.open({ initialCredit: 65536 });
      peer.send(creditFrame(1024, 0));
      const payload = pattern(4000, 5);
      const expected =
        'after CREDIT(limit 1024) below our initial 65536, the server still sends a 4000-byte echo at once';
      if (!(await peer.sendMessage(payload, context.options.timeoutMs)))
        return fail(expected, describe(peer));
      if (!(await echoed(peer, 1, context.options.timeoutMs))) {
        return peer.receivedCredit === 0 && !peer.ended
          ? info(expected, NOT_ECHO)
          : fail(expected, describe(peer));
      }
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '7/rule5-credit-returned',
    section: '§7',
    title: 'rule 5: the server returns credit as it consumes, so 4 × initial_credit of messages go through',
    budgetMs: (o) => 6 * o.timeoutMs,
    async run(context) {
      const peer = await context.open();
      const w = peer.welcome!;
      const size = Math.max(
        1,
        Math.min(w.maxFramePayload, w.maxMessageSize, Math.floor(w.initialCredit / 8)),
      );
      const total = 4 * w.initialCredit;
      const count = Math.ceil(total / dataCost(size, true));
      const expected = `${count} messages of ${size} bytes (${total} credit bytes) sent within credit without stalling`;
      for (let i = 0; i < count; i++) {
        if (!(await peer.sendMessage(pattern(size, i), context.options.timeoutMs))) {
          return fail(
            expected,
            `blocked on credit after ${i} messages (limit ${peer.peerLimit}, sent ${peer.sentCredit}): ${describe(peer)}`,
          );
        }
      }
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '7/rule5-6-large-message',
    section: '§7',
    title: 'rules 5–6: a message larger than the initial credit gets room on demand while incomplete',
    budgetMs: (o) => 8 * o.timeoutMs,
    async run(context) {
      const peer = await context.open({ initialCredit: 64 * 1024 * 1024, maxMessageSize: MAX_TEST_MESSAGE });
      const w = peer.welcome!;
      const size = Math.min(w.maxMessageSize, MAX_TEST_MESSAGE, 4 * w.initialCredit);
      const expected = `a message of ${size} bytes (initial_credit ${w.initialCredit}) completes`;
      if (!(await peer.sendMessage(pattern(size, 9), 2 * context.options.timeoutMs))) {
        return fail(
          expected,
          `blocked on credit at ${peer.sentCredit} of ${dataCost(size, true)} credit bytes (limit ${peer.peerLimit}): ${describe(peer)}`,
        );
      }
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '6/max-message-size',
    section: '§6',
    title: "rule 6: a message of exactly the server's max_message_size gets through",
    budgetMs: (o) => 8 * o.timeoutMs,
    async run(context) {
      const peer = await context.open({ initialCredit: 64 * 1024 * 1024, maxMessageSize: MAX_TEST_MESSAGE });
      const m = peer.welcome!.maxMessageSize;
      const expected = `a message of max_message_size = ${m} bytes completes`;
      if (m > MAX_TEST_MESSAGE)
        return info(expected, `not run: max_message_size above ${MAX_TEST_MESSAGE} bytes`);
      if (!(await peer.sendMessage(pattern(m, 11), 2 * context.options.timeoutMs))) {
        return fail(
          expected,
          `blocked on credit at ${peer.sentCredit} of ${dataCost(m, true)} credit bytes (limit ${peer.peerLimit}): ${describe(peer)}`,
        );
      }
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '6/message-too-large',
    section: '§6',
    title: 'a message above max_message_size: MESSAGE_TOO_LARGE',
    budgetMs: (o) => 8 * o.timeoutMs,
    async run(context) {
      const peer = await context.open();
      const w = peer.welcome!;
      const m = w.maxMessageSize;
      const expected = `ERROR MESSAGE_TOO_LARGE for a message of ${m + 1} bytes (FLOW_CONTROL_ERROR if its last frame also exceeds the credit)`;
      if (m > MAX_TEST_MESSAGE)
        return info(expected, `not run: max_message_size above ${MAX_TEST_MESSAGE} bytes`);
      const payload = pattern(m + 1, 13);
      // Send within credit as long as possible; then the rest regardless.
      let offset = 0;
      while (offset < payload.length && !peer.ended && peer.error === undefined) {
        const remaining = payload.length - offset;
        let available = peer.peerLimit - peer.sentCredit - 6;
        if (available < Math.min(remaining, 512)) {
          const limit = peer.peerLimit;
          await peer.until(() => (peer.peerLimit > limit || peer.ended ? true : undefined), 300);
          available = Math.max(peer.peerLimit - peer.sentCredit - 6, Math.min(remaining, 512));
        }
        const size = Math.min(remaining, w.maxFramePayload, available);
        const end = offset + size === payload.length;
        peer.send(concatFrame(payload.subarray(offset, offset + size), end));
        peer.noteDataSent(size, end);
        offset += size;
      }
      return expectError(context, peer, ['MESSAGE_TOO_LARGE', 'FLOW_CONTROL_ERROR']);
    },
  },
  {
    id: '5.3/received-bytes-reported',
    section: '§5.3',
    title: "the server's HEARTBEAT reports exactly the credit bytes it received",
    budgetMs: (o) => 4 * o.timeoutMs + o.maxWaitMs,
    async run(context) {
      const peer = await context.open();
      for (let i = 0; i < 3; i++) await peer.sendMessage(pattern(100 + i, i), context.options.timeoutMs);
      const sent = peer.sentCredit;
      const period = (peer.welcome!.clientIdleTimeoutMs / 3) * 1.1 + context.options.toleranceMs;
      const expected = `a HEARTBEAT with Received Bytes = ${sent}`;
      if (2 * period > context.options.maxWaitMs)
        return info(expected, 'not run: heartbeat period above --max-wait');
      const from = peer.received.length;
      await peer.sleep(50);
      const hb = await peer.until(
        () => peer.find((r) => r.frame.type === FrameType.HEARTBEAT && r.frame.receivedBytes === sent, from),
        2 * period,
      );
      if (hb === undefined) {
        const last = [...peer.received].reverse().find((r) => r.frame.type === FrameType.HEARTBEAT);
        const seen =
          last?.frame.type === FrameType.HEARTBEAT
            ? `last HEARTBEAT says ${last.frame.receivedBytes}`
            : 'no HEARTBEAT';
        return fail(expected, seen);
      }
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '5.3/received-bytes-too-high',
    section: '§5.3',
    title: 'a HEARTBEAT claiming more bytes received than the server sent is a PROTOCOL_ERROR',
    async run(context) {
      const peer = await context.open();
      peer.stopHeartbeats();
      await peer.sleep(20);
      peer.send(
        heartbeatFrame({ ...peer.heartbeatFields(), receivedBytes: peer.receivedCredit + 1_000_000 }),
      );
      const outcome = await expectError(context, peer, ['PROTOCOL_ERROR']);
      if (outcome.status === 'fail' && peer.error === undefined && !peer.ended) {
        return info(outcome.expected, 'ignored (the SPEC says a sender "can detect" it)');
      }
      return outcome;
    },
  },
];

function concatFrame(payload: Uint8Array, end = true): Uint8Array {
  const out = new Uint8Array(6 + payload.length);
  new DataView(out.buffer).setUint32(0, payload.length);
  out[4] = FrameType.DATA;
  out[5] = end ? 1 : 0;
  out.set(payload, 6);
  return out;
}

export type { CaseContext, Outcome };
