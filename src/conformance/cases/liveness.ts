/**
 * SPEC.md §8 (liveness: heartbeat schedule, echo, deadline, floods) and the HEARTBEAT layout
 * (§5.3).
 * @module
 */
import { FrameType, HEARTBEAT_TICKS_PER_MS } from '../../protocol/constants.js';
import type { HeartbeatFrame } from '../../protocol/frames.js';
import { describe, expectAlive, expectError, fail, info, pass } from '../expect.js';
import type { ClientPeer } from '../client-peer.js';
import type { Received } from '../peer.js';
import type { ConformanceCase } from '../types.js';
import { concat, creditFrame, extensionFrame, heartbeatFrame } from '../wire.js';

const U32 = 0x1_0000_0000;

function heartbeats(peer: ClientPeer, from = 0): (Received & { frame: HeartbeatFrame })[] {
  return peer.received
    .slice(from)
    .filter((r): r is Received & { frame: HeartbeatFrame } => r.frame.type === FrameType.HEARTBEAT);
}

/** How long to watch the heartbeat schedule: 7 periods of the clamped client idle timeout. */
const watchPeriods = 7;

/** `count` heartbeats in one write, their timestamps `stepTicks` apart. */
function heartbeatBurst(peer: ClientPeer, count: number, stepTicks: number): Uint8Array {
  const base = peer.heartbeatFields();
  const frames: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    frames.push(heartbeatFrame({ ...base, timestamp: (base.timestamp + i * stepTicks) % U32 }));
  }
  return concat(...frames);
}

export const livenessCases: ConformanceCase[] = [
  {
    id: '8/first-heartbeat',
    section: '§8',
    title: 'the server sends a HEARTBEAT right after WELCOME',
    async run(context) {
      const peer = await context.open();
      const welcomeAt = peer.received[0]!.at;
      const interval = peer.welcome!.clientIdleTimeoutMs / 3;
      const expected = `a HEARTBEAT within ${context.options.toleranceMs} ms of WELCOME (before the first period, ${Math.round(interval)} ms)`;
      const hb = await peer.until(() => heartbeats(peer)[0], interval * 1.1 + context.options.toleranceMs);
      if (hb === undefined) return fail(expected, `none within one period: ${describe(peer)}`);
      const delay = hb.at - welcomeAt;
      if (delay > context.options.toleranceMs)
        return fail(expected, `first HEARTBEAT ${Math.round(delay)} ms after WELCOME`);
      return pass(expected, `first HEARTBEAT ${delay.toFixed(1)} ms after WELCOME`);
    },
  },
  {
    id: '8/heartbeat-schedule',
    section: '§8',
    title: 'the server heartbeats every I = client_idle_timeout_ms / 3, each period within [0.9 I, 1.1 I]',
    budgetMs: (o) => Math.min(o.maxWaitMs, 30_000) + 2 * o.timeoutMs,
    async run(context) {
      const { toleranceMs, maxWaitMs } = context.options;
      const peer = await context.open();
      const interval = peer.welcome!.clientIdleTimeoutMs / 3;
      const watch = watchPeriods * interval;
      const lo = 0.9 * interval - toleranceMs;
      const hi = 1.1 * interval + toleranceMs;
      const expected = `periods within [${Math.round(0.9 * interval)}, ${Math.round(1.1 * interval)}] ms (±${toleranceMs} ms), no silence over ${Math.round(1.1 * interval)} ms`;
      if (watch > maxWaitMs)
        return info(expected, `not run: ${watchPeriods} periods exceed --max-wait ${maxWaitMs} ms`);
      const start = peer.received[0]!.at;
      await peer.sleep(watch);
      if (peer.ended || peer.error !== undefined) return fail(expected, describe(peer));
      const at = heartbeats(peer).map((r) => r.at);
      if (at.length < 3) return fail(expected, `${at.length} heartbeats in ${Math.round(watch)} ms`);
      // The first is the one right after WELCOME, the second comes at a random phase in [0, I).
      const gaps = at.slice(2).map((t, i) => t - at[i + 1]!);
      const silences = [
        at[0]! - start,
        ...at.slice(1).map((t, i) => t - at[i]!),
        peer.now() - at[at.length - 1]!,
      ];
      const bad = gaps.filter((g) => g < lo || g > hi);
      const longest = Math.max(...silences);
      const seen = `${at.length} heartbeats; periods ${gaps.map((g) => Math.round(g)).join(', ')} ms; longest silence ${Math.round(longest)} ms`;
      if (bad.length > 0 || longest > hi) return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '5.3/timestamp-ticks',
    section: '§5.3',
    title: 'HEARTBEAT timestamps count ticks of 0.1 ms',
    budgetMs: (o) => Math.min(o.maxWaitMs, 30_000) + 2 * o.timeoutMs,
    async run(context) {
      const peer = await context.open();
      const interval = peer.welcome!.clientIdleTimeoutMs / 3;
      const expected = 'timestamp differences / 10 ≈ the time between arrivals (within 10 % + tolerance)';
      if (3 * interval > context.options.maxWaitMs)
        return info(expected, 'not run: heartbeat period above --max-wait');
      const found = await peer.until(
        () => (heartbeats(peer).length >= 4 ? true : undefined),
        4 * interval + 4 * context.options.toleranceMs,
      );
      const hbs = heartbeats(peer);
      if (found === undefined) return fail(expected, `${hbs.length} heartbeats`);
      const first = hbs[0]!;
      const last = hbs[hbs.length - 1]!;
      const ticks = (last.frame.timestamp - first.frame.timestamp + U32) % U32;
      const ms = ticks / HEARTBEAT_TICKS_PER_MS;
      const elapsed = last.at - first.at;
      const seen = `${ticks} ticks (${ms.toFixed(1)} ms) over ${elapsed.toFixed(1)} ms`;
      if (Math.abs(ms - elapsed) > 0.1 * elapsed + context.options.toleranceMs) return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '5.3/echo',
    section: '§5.3',
    title: "the server echoes our HEARTBEAT's timestamp with a plausible delay",
    budgetMs: (o) => Math.min(o.maxWaitMs, 30_000) + 2 * o.timeoutMs,
    async run(context) {
      const peer = await context.open();
      const interval = peer.welcome!.clientIdleTimeoutMs / 3;
      const expected =
        'a HEARTBEAT with ECHO, Echo Timestamp = one of ours, Echo Delay ≤ the time it was held';
      if (2 * interval > context.options.maxWaitMs)
        return info(expected, 'not run: heartbeat period above --max-wait');
      const ours = new Map<number, number>();
      const hb = await peer.until(
        () => {
          for (const s of peer.sentHeartbeats) ours.set(s.timestamp, s.at);
          return heartbeats(peer).find((r) => r.frame.echo && ours.has(r.frame.echoTimestamp));
        },
        2.2 * interval + 2 * context.options.toleranceMs,
      );
      if (hb === undefined) {
        const echoes = heartbeats(peer).filter((r) => r.frame.echo);
        return fail(
          expected,
          echoes.length === 0
            ? 'no HEARTBEAT with ECHO'
            : `echo timestamps ${echoes.map((r) => r.frame.echoTimestamp).join(', ')} match none of ours`,
        );
      }
      const held = (hb.at - ours.get(hb.frame.echoTimestamp)!) * HEARTBEAT_TICKS_PER_MS;
      const seen = `Echo Delay ${hb.frame.echoDelay} ticks, ${Math.round(held)} ticks between our send and its arrival`;
      if (hb.frame.echoDelay > held + 10 * context.options.toleranceMs) return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '8/silent-client-timeout',
    section: '§8',
    title: "a silent client is failed (HEARTBEAT_TIMEOUT) at the server's idle timeout, not before",
    budgetMs: (o) => Math.min(o.maxWaitMs, 120_000) + 3 * o.timeoutMs,
    async run(context) {
      const { toleranceMs, maxWaitMs } = context.options;
      const peer = await context.open({}, { heartbeats: false });
      const t = peer.welcome!.idleTimeoutMs;
      const helloAt = 0; // the HELLO left when the connection started (within a millisecond)
      const lo = t - toleranceMs;
      const hi = t * 1.05 + toleranceMs;
      const expected = `the transport closed between ${Math.round(lo)} and ${Math.round(hi)} ms (T_s = ${t} ms), an ERROR if any HEARTBEAT_TIMEOUT`;
      if (t > maxWaitMs)
        return info(
          expected,
          `not run: the server's idle timeout ${t} ms exceeds --max-wait ${maxWaitMs} ms`,
        );
      const ended = await peer.waitEnded(hi + context.options.timeoutMs);
      if (!ended) return fail(expected, `still open after ${Math.round(peer.now())} ms`);
      const at =
        Math.min(
          peer.eofAt ?? Infinity,
          peer.closedAt ?? Infinity,
          peer.received.find((r) => r.frame.type === FrameType.ERROR)?.at ?? Infinity,
        ) - helloAt;
      const code =
        peer.error === undefined
          ? 'no ERROR'
          : `ERROR ${peer.error.code === 8 ? 'HEARTBEAT_TIMEOUT' : `code ${peer.error.code}`}`;
      const seen = `closed after ${Math.round(at)} ms, ${code}`;
      if (peer.error !== undefined && peer.error.code !== 8) return fail(expected, seen);
      if (at < lo || at > hi) return fail(expected, seen);
      return pass(expected, seen);
    },
  },
  {
    id: '8/any-byte-is-life',
    section: '§8',
    title:
      'any received byte is proof of life: one byte every T_s / 2 keeps a client without heartbeats alive',
    budgetMs: (o) => Math.min(o.maxWaitMs, 120_000) + 4 * o.timeoutMs,
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      const t = peer.welcome!.idleTimeoutMs;
      const frame = extensionFrame(0x80, 0, Uint8Array.of(1, 2));
      const total = (frame.length + 1) * (t / 2);
      const expected = `no HEARTBEAT_TIMEOUT over ${Math.round(total)} ms (${frame.length} bytes, one every ${t / 2} ms)`;
      if (total > context.options.maxWaitMs)
        return info(expected, `not run: takes over --max-wait ${context.options.maxWaitMs} ms`);
      for (const byte of frame) {
        await peer.sleep(t / 2);
        if (peer.ended || peer.error !== undefined) return fail(expected, describe(peer));
        peer.send(Uint8Array.of(byte));
      }
      await peer.sleep(t / 2);
      peer.startHeartbeats();
      return expectAlive(context, peer, expected);
    },
  },
  {
    id: '8/heartbeat-flood',
    section: '§8',
    title: '9 early heartbeats in a row (same timestamp): ENHANCE_YOUR_CALM',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      peer.send(heartbeatBurst(peer, 10, 0));
      return expectError(context, peer, ['ENHANCE_YOUR_CALM']);
    },
  },
  {
    id: '8/heartbeat-burst-8-allowed',
    section: '§8',
    title: '8 early heartbeats in a row are not a flood',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      peer.send(heartbeatBurst(peer, 9, 0));
      return expectAlive(context, peer, 'no ENHANCE_YOUR_CALM after 1 + 8 early heartbeats');
    },
  },
  {
    id: '8/heartbeat-flood-forged-timestamps',
    section: '§8',
    title: 'over 1000 heartbeats within T/3, timestamps spaced as agreed: ENHANCE_YOUR_CALM',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      const step = Math.ceil((peer.welcome!.idleTimeoutMs / 3) * HEARTBEAT_TICKS_PER_MS);
      peer.send(heartbeatBurst(peer, 1001, step));
      return expectError(context, peer, ['ENHANCE_YOUR_CALM']);
    },
  },
  {
    id: '8/noop-flood',
    section: '§8',
    title: '65 CREDIT frames that change nothing within T/3: ENHANCE_YOUR_CALM',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      const frame = creditFrame(peer.grantedLimit, 0);
      peer.send(concat(...Array.from({ length: 65 }, () => frame)));
      return expectError(context, peer, ['ENHANCE_YOUR_CALM']);
    },
  },
  {
    id: '8/noop-64-allowed',
    section: '§8',
    title: '64 CREDIT frames that change nothing are not a flood',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      const frame = creditFrame(peer.grantedLimit, 0);
      peer.send(concat(...Array.from({ length: 64 }, () => frame)));
      await peer.sleep(100);
      if (peer.error !== undefined || peer.ended)
        return fail('no ENHANCE_YOUR_CALM after 64 no-op CREDITs', describe(peer));
      peer.startHeartbeats();
      return expectAlive(context, peer, 'no ENHANCE_YOUR_CALM after 64 no-op CREDITs');
    },
  },
  {
    id: '8/extension-flood',
    section: '§8',
    title: '65 ignorable extension frames within T/3: ENHANCE_YOUR_CALM',
    async run(context) {
      const peer = await context.open({}, { heartbeats: false });
      const frame = extensionFrame(0x80);
      peer.send(concat(...Array.from({ length: 65 }, () => frame)));
      return expectError(context, peer, ['ENHANCE_YOUR_CALM']);
    },
  },
];

export { info };
