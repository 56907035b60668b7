/**
 * `heartwire conformance server --random N --seed S`: adversarial sequences after the handshake
 * (messages of random sizes, CREDIT, HEARTBEAT and ignorable extension frames, written in random
 * chunks, optionally ending with one invalid frame), each on a fresh connection, checked against
 * an oracle from SPEC.md; a failure is shrunk by fast-check to a minimal sequence and reported
 * with the seed that reproduces it.
 * @module
 */
import fc from 'fast-check';
import { FrameType, HEARTBEAT_TICKS_PER_MS } from '../protocol/constants.js';
import type { WireErrorName } from '../protocol/errors.js';
import { expectError } from './expect.js';
import type { ClientPeer } from './client-peer.js';
import { codeName } from './peer.js';
import type { CaseContext, ConformanceCase, Outcome } from './types.js';
import {
  closeFrame,
  concat,
  creditFrame,
  dataCost,
  dataFrame,
  extensionFrame,
  header,
  heartbeatFrame,
  pattern,
  rawFrame,
} from './wire.js';

/** One step of a sequence. */
export type Action =
  | { kind: 'message'; size: number }
  | { kind: 'credit'; raise: number }
  | { kind: 'heartbeat' }
  | { kind: 'extension'; type: number; length: number };

/** The invalid frame a sequence may end with, and the error SPEC.md requires for it. */
export const POISONS: Record<
  string,
  { section: string; code: WireErrorName; bytes: (peer: ClientPeer) => Uint8Array }
> = {
  'unknown-type': { section: '§5', code: 'PROTOCOL_ERROR', bytes: () => header(0, 0x03) },
  'credit-short': { section: '§10', code: 'PROTOCOL_ERROR', bytes: () => header(15, FrameType.CREDIT) },
  'heartbeat-long': { section: '§10', code: 'FRAME_TOO_LARGE', bytes: () => header(37, FrameType.HEARTBEAT) },
  'data-too-large': {
    section: '§4',
    code: 'FRAME_TOO_LARGE',
    bytes: (peer) => header(peer.welcome!.maxFramePayload + 1, FrameType.DATA, 1),
  },
  'empty-data-without-end': {
    section: '§5.1',
    code: 'PROTOCOL_ERROR',
    bytes: () => header(0, FrameType.DATA, 0),
  },
  'must-understand': { section: '§13', code: 'PROTOCOL_ERROR', bytes: () => extensionFrame(0x40) },
  'u64-overflow': {
    section: '§2',
    code: 'PROTOCOL_ERROR',
    bytes: () =>
      rawFrame(FrameType.CREDIT, 0, Uint8Array.of(0, 0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)),
  },
};

/** A generated sequence. */
export interface Sequence {
  actions: Action[];
  /** Sizes of the writes the bytes are cut into, used in turn (empty: one write). */
  chunks: number[];
  /** The invalid frame at the end, if any. */
  poison: keyof typeof POISONS | undefined;
}

export function arbitrarySequence(): fc.Arbitrary<Sequence> {
  const action: fc.Arbitrary<Action> = fc.oneof(
    {
      weight: 4,
      arbitrary: fc.integer({ min: 0, max: 3000 }).map((size): Action => ({ kind: 'message', size })),
    },
    {
      weight: 1,
      arbitrary: fc.integer({ min: 1, max: 100_000 }).map((raise): Action => ({ kind: 'credit', raise })),
    },
    { weight: 1, arbitrary: fc.constant<Action>({ kind: 'heartbeat' }) },
    {
      weight: 1,
      arbitrary: fc
        .record({ type: fc.integer({ min: 0x80, max: 0xff }), length: fc.integer({ min: 0, max: 64 }) })
        .map((e): Action => ({ kind: 'extension', ...e })),
    },
  );
  return fc.record({
    actions: fc.array(action, { maxLength: 12 }),
    chunks: fc.array(fc.integer({ min: 1, max: 300 }), { maxLength: 6 }),
    poison: fc.option(fc.constantFrom(...(Object.keys(POISONS) as (keyof typeof POISONS)[])), {
      nil: undefined,
      freq: 3,
    }),
  });
}

/** A sequence in a few words (for reports). */
export function describeSequence(s: Sequence): string {
  const actions = s.actions.map((a) =>
    a.kind === 'message'
      ? `message(${a.size})`
      : a.kind === 'credit'
        ? `credit(+${a.raise})`
        : a.kind === 'heartbeat'
          ? 'heartbeat'
          : `ext(0x${a.type.toString(16)}, ${a.length})`,
  );
  return `[${actions.join(', ')}]${s.poison === undefined ? ' then CLOSE' : ` then ${s.poison}`}; writes of ${s.chunks.length === 0 ? 'one piece' : `[${s.chunks.join(', ')}] bytes`}`;
}

/** Runs one sequence on a fresh connection; returns undefined when the oracle holds, else why not. */
async function runSequence(
  context: CaseContext,
  s: Sequence,
): Promise<{ section: string; why: string } | undefined> {
  const peer = await context.open({}, { heartbeats: false });
  peer.autoCredit = false;
  const w = peer.welcome!;
  const parts: Uint8Array[] = [];
  let credit = w.initialCredit - peer.sentCredit;
  let hbTicks = 0;
  const hbStep = Math.ceil((w.idleTimeoutMs / 3) * HEARTBEAT_TICKS_PER_MS);
  let messageNo = 0;
  for (const a of s.actions) {
    if (a.kind === 'message') {
      // Frames within the server's max_frame_payload; stop where the initial credit ends.
      const payload = pattern(a.size, ++messageNo);
      const frames: Uint8Array[] = [];
      let cost = 0;
      for (let offset = 0; ;) {
        const size = Math.min(w.maxFramePayload, payload.length - offset);
        const end = offset + size === payload.length;
        frames.push(dataFrame(payload.subarray(offset, offset + size), end));
        cost += dataCost(size, end);
        offset += size;
        if (end) break;
      }
      if (cost > credit) break;
      credit -= cost;
      parts.push(...frames);
      peer.sentCredit += cost;
      peer.sentMessages++;
    } else if (a.kind === 'credit') {
      peer.grantedLimit += a.raise;
      parts.push(creditFrame(peer.grantedLimit, 0));
    } else if (a.kind === 'heartbeat') {
      const fields = peer.heartbeatFields();
      hbTicks += hbStep;
      parts.push(
        heartbeatFrame({
          ...fields,
          echo: false,
          echoTimestamp: 0,
          echoDelay: 0,
          timestamp: (fields.timestamp + hbTicks) % 0x1_0000_0000,
        }),
      );
    } else {
      parts.push(extensionFrame(a.type, 0, pattern(a.length)));
    }
  }
  const poison = s.poison === undefined ? undefined : POISONS[s.poison]!;
  if (poison === undefined) peer.closeSent = true;
  parts.push(
    poison === undefined
      ? closeFrame({ sentMessages: peer.sentMessages, consumedMessages: 0 })
      : poison.bytes(peer),
  );
  const bytes = concat(...parts);
  for (let offset = 0, i = 0; offset < bytes.length; i++) {
    const size = s.chunks.length === 0 ? bytes.length : s.chunks[i % s.chunks.length]!;
    peer.send(bytes.subarray(offset, offset + size));
    offset += size;
    if (s.chunks.length > 0) await new Promise((resolve) => setImmediate(resolve));
  }
  peer.autoCredit = true;
  peer.startHeartbeats();
  if (poison !== undefined) {
    const outcome = await expectError(context, peer, [poison.code]);
    if (outcome.status !== 'pass')
      return { section: poison.section, why: `expected ${outcome.expected}; seen ${outcome.seen}` };
  } else {
    // CLOSE went with the stream: CLOSE_ACK with exact counts (the monitor checks them), FIN, close.
    const ack = await peer.until(
      () =>
        peer.closeAckAt !== undefined ? true : peer.error !== undefined || peer.ended ? false : undefined,
      context.options.timeoutMs,
    );
    if (ack !== true) {
      const seen =
        peer.error !== undefined
          ? `ERROR ${codeName(peer.error.code)} ("${peer.error.message.slice(0, 80)}")`
          : peer.ended
            ? 'the transport closed'
            : 'nothing';
      return { section: '§9.1', why: `expected CLOSE_ACK after a valid sequence; seen ${seen}` };
    }
    if (!(await peer.waitEnded(context.options.timeoutMs)))
      return { section: '§9.1', why: 'no close after CLOSE_ACK and our FIN' };
  }
  const v = peer.violations[0];
  if (v !== undefined) return { section: v.section, why: `violation: ${v.message}` };
  return undefined;
}

/** The `--random` case: `runs` sequences from `seed`, a failure shrunk and reported with the seed. */
export function randomCase(runs: number, seed: number): ConformanceCase {
  return {
    id: 'random/sequences',
    section: '§4',
    title: `${runs} random sequences (seed ${seed}): messages, CREDIT, HEARTBEAT, extension frames in random writes, then CLOSE or one invalid frame`,
    budgetMs: (o) => Math.max(60_000, runs * 4 * o.timeoutMs),
    async run(context): Promise<Outcome> {
      let last: { section: string; why: string } | undefined;
      const result = await fc.check(
        fc.asyncProperty(arbitrarySequence(), async (s) => {
          last = await runSequence(context, s);
          return last === undefined;
        }),
        { numRuns: runs, seed, endOnFailure: false, maxSkipsPerRun: 0 },
      );
      const expected =
        'every sequence: CLOSE_ACK with exact counts, or the ERROR its invalid frame requires; no violation';
      if (!result.failed)
        return { status: 'pass', expected, seen: `${result.numRuns} sequences passed (seed ${seed})` };
      const counterexample = result.counterexample?.[0];
      // Re-run the shrunk sequence once to report its own failure.
      if (counterexample !== undefined) last = await runSequence(context, counterexample);
      return {
        status: 'fail',
        expected,
        seen: `${last?.section ?? ''} ${last?.why ?? String(result.errorInstance)}; shrunk sequence (${result.numShrinks} shrinks): ${counterexample === undefined ? '?' : describeSequence(counterexample)}; reproduce with --random ${runs} --seed ${seed}`,
      };
    },
  };
}
