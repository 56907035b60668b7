/**
 * Model-based tests: two real engines joined by the simulated network (src/testing/simnet.ts)
 * on the virtual clock, driven by random schedules (src/testing/faults.ts plus bursts of tiny
 * messages), with randomized engine options (idle timeouts 300…5000 ms, windows 1 KiB…1 MiB,
 * max frame payload 1…64 KiB; the server keeps the client's idle timeout), randomized paths (latency, bandwidth, send buffer, segmentation) and applications
 * that read at once or take and release after a delay, pausing for any length.
 *
 * Invariants, checked after every schedule step AND after every timer the simulation fires
 * (each segment leaving a send buffer or arriving, each engine deadline, each delayed release):
 *
 * I1 Memory: for each side, `0 ≤ heldBytes ≤ max(receiveWindow seen so far)` and
 *    `heldBytes ≤ max(initialWindowBytes, maxWindowBytes)`; the window itself never exceeds
 *    that option. `heldBytes` is `R − C` of SPEC §7 (complete + incomplete unconsumed messages,
 *    in credit bytes); the decoder's overhead (≤ one partial control frame, 6 + 4096 bytes,
 *    SPEC §10) is not part of it and not checked here.
 * I0 Order, identity and errors: what an application received is exactly a prefix of what the
 *    peer's engine accepted (seq 1, 2, … and identical payloads); a close between two correct
 *    engines carries no protocol error (only fault/deadline codes, see FAULT_ERRORS); the engine
 *    refuses only sends after close or above the peer's max message size (the applications
 *    send only once open, so NOT_OPEN is an error too).
 * I5 Accounting: while open, `deliveryReport().consumed` ≤ messages the peer application
 *    consumed (per the simulation's record). At close, for the side's report: `queued` = messages
 *    its engine accepted; `consumed` ≤ the peer application's consumed prefix;
 *    `consumed < notProcessedFrom ≤ queued + 1`; `unknown`/`notProcessed` are exactly the
 *    payloads of messages `consumed+1 … notProcessedFrom−1` / `notProcessedFrom … queued`; the
 *    peer application never receives (read or take) a message ≥ `notProcessedFrom`, from the
 *    close until the end of the run (so a message it consumed is never listed as not processed);
 *    on a clean close `consumed === queued`.
 *
 * Per property:
 * - chaos: I0, I1, I5 under everything (partitions one/both ways healed or not, crashes
 *   none/fin/reset, aborts, latency/bandwidth changes, termination by client, by server and
 *   both at random moments), and every connection ends within a bound once terminated.
 * - I2 live network (SPEC §8 condition, see `liveBounds`: latency ≤ T/10, full send buffer
 *   drains within T/10, T = min(T_c, T_s)): no close other than a clean one, whatever the
 *   applications do (consumers paused for any length, messages held for up to a minute, credit
 *   exhausted for any length).
 * - I3 a silent, never-healed partition (both ways) is detected on both sides (HEARTBEAT_TIMEOUT
 *   or WRITE_STALL, locally) within `T_own + d_max` of the partition (SPEC §8 detection bound;
 *   d_max = latency + full send buffer / bandwidth; this is tighter than the brief's
 *   `T + 1.1·T/3 + latency`), while idle, while sending, and while the receiver is stalled.
 * - I4 clean termination by the client, by the server (GOAWAY, the client app closes in reaction)
 *   or both (same instant or different moments), with healed short partitions, pauses and path
 *   changes: every message the applications sent before it is delivered in order, both sides
 *   close clean with `consumed === queued`, with the right initiator.
 * - I6 progress: with a live network and consuming applications, every accepted message is
 *   delivered and consumed within a bound (bytes / bandwidth + credit round trips + holds), and
 *   the sender learns it (`deliveryReport().consumed === queued`) within a heartbeat period more.
 *
 * Known engine bugs: each has a skipped `BUG:` property at the end of this file (with the
 * minimal counterexample and the diagnosis) that fails on the current engine; until they are
 * fixed, the properties above steer around them (KNOWN_BUGS in model-helpers.ts: large send
 * queues, message sizes ≤ (receiver's initialWindowBytes − 262) / 7, creditStallReportMs 10^9,
 * two precisely delimited tolerances in the chaos property). HEARTWIRE_MODEL_EXPOSE_BUGS=1
 * turns every workaround off.
 *
 * Runs per property: HEARTWIRE_PROPERTY_RUNS (npm run test:long: 2000), default 100. A failure
 * prints the seed/path to replay (HEARTWIRE_PROPERTY_SEED / HEARTWIRE_PROPERTY_PATH), the
 * counterexample, the state of both sides, the tail of the trace (HEARTWIRE_TRACE_LINES,
 * default 150) and a file with the full trace. HEARTWIRE_MODEL_STATS=1 prints what the runs
 * covered (full windows, credit stalls, how each side ended).
 */
import fc from 'fast-check';
import { FRAME_HEADER_SIZE, MESSAGE_CREDIT_OVERHEAD } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import type { Side } from '../../src/testing/simnet.js';
import {
  CoverageStats,
  Model,
  SIDES,
  arbitraryModelConfig,
  arbitrarySchedule,
  checkProperty,
  fail,
  liveBounds,
  liveConfig,
  maxTransitMs,
  other,
  propertyRuns,
  runModel,
  type ModelConfig,
  type ModelStep,
} from './model-helpers.js';

const FOREVER_MS = 1_000_000_000;

/** Engines whose close timeout never interferes (for properties that expect clean closes). */
function withoutCloseTimeout(config: ModelConfig): ModelConfig {
  return {
    ...config,
    client: { ...config.client, closeTimeoutMs: FOREVER_MS },
    server: { ...config.server, closeTimeoutMs: FOREVER_MS },
  };
}

/** Idle timeouts of both sides (the client's is kept by the server's policy range). */
function idle(config: ModelConfig, side: Side): number {
  return config[side].idleTimeoutMs!;
}

/**
 * Generous bound on the time the messages still queued need to be delivered and consumed on a
 * live network. Per direction: credit bytes (payload + 6 per frame + MESSAGE_CREDIT_OVERHEAD
 * per message) / bandwidth, plus one round trip (data out, credit back, each at most
 * `maxTransitMs`, plus the longest hold of a taking consumer) per `(W − 2·262) / 2` credit
 * bytes, W the receiver's initial window (a blocked sender gets at least W − 262 of credit back
 * once its data is consumed, and wastes at most 262 on an END frame that does not fit), plus slack.
 */
function progressBoundMs(model: Model): number {
  let total = 2000 + 2 * Math.max(idle(model.config, 'client'), idle(model.config, 'server'));
  for (const from of SIDES) {
    const to = other(from);
    const s = model.side(from);
    const frame = model.config[to].maxFramePayloadBytes!;
    const pending = [...s.sent.slice(model.side(to).delivered.length), ...s.outbox];
    let cost = 0;
    for (const p of pending) {
      cost +=
        p.length + MESSAGE_CREDIT_OVERHEAD + FRAME_HEADER_SIZE * Math.max(1, Math.ceil(p.length / frame));
    }
    const consumer = model.config.consumers[to];
    const hold = consumer.kind === 'take' ? Math.max(...consumer.holdMs) : 0;
    const rtt = maxTransitMs(model.net, from) + maxTransitMs(model.net, to) + hold;
    const window = model.config[to].initialWindowBytes!;
    const perRound = Math.max(64, (window - 2 * (FRAME_HEADER_SIZE + MESSAGE_CREDIT_OVERHEAD)) / 2);
    total += cost / model.net.path(from).bandwidthBytesPerMs + (Math.ceil(cost / perRound) + 2) * rtt;
  }
  return Math.ceil(total);
}

function assertProgress(model: Model, what: string): void {
  const allDelivered = () =>
    SIDES.every((from) => {
      const s = model.side(from);
      return s.outbox.length === 0 && model.peerConsumed(from) === s.sent.length;
    });
  const bound = progressBoundMs(model);
  const start = model.now;
  if (!model.runUntil(allDelivered, bound)) {
    fail(`I6 ${what}: messages still not delivered and consumed ${bound} ms after t=${start}`);
  }
  // The senders learn it: a CREDIT at once, or the next heartbeat (≤ 1.1·T_peer/3 + transit).
  const learnt = () =>
    SIDES.every((from) => model.engines[from].deliveryReport().consumed === model.side(from).sent.length);
  const more =
    (1.1 * Math.max(idle(model.config, 'client'), idle(model.config, 'server'))) / 3 +
    2 * Math.max(maxTransitMs(model.net, 'client'), maxTransitMs(model.net, 'server')) +
    1;
  if (!model.runUntil(learnt, more)) {
    fail(`I6 ${what}: a sender did not learn within ${more} ms that all its messages were consumed`);
  }
}

describe('model: two engines over the simulated network', function () {
  this.timeout(Math.max(60_000, propertyRuns(0) * 3000));

  // ----------------------------------------------------------------------------------------------
  it('chaos: memory bound, order, accounting and termination under any faults', () => {
    const finalAction = fc.oneof(
      fc.constant<ModelStep>({ kind: 'close' }),
      fc.constant<ModelStep>({ kind: 'close-when-flushed' }),
      fc.record({ kind: fc.constant('go-away' as const), graceMs: fc.integer({ min: 0, max: 10_000 }) }),
      fc.record({
        kind: fc.constant('close-and-go-away' as const),
        graceMs: fc.integer({ min: 0, max: 10_000 }),
      }),
      fc.record({ kind: fc.constant('abort' as const), side: fc.constantFrom<Side>('client', 'server') }),
      fc.record({
        kind: fc.constant('crash' as const),
        side: fc.constantFrom<Side>('client', 'server'),
        notifyPeer: fc.constantFrom('none' as const, 'fin' as const, 'reset' as const),
      }),
    );
    // Terminal events are rare inside the schedule (so most runs get far) and certain at its end.
    const steps = arbitrarySchedule({
      weights: { crash: 0.1, close: 0.1, 'go-away': 0.1, 'close-and-go-away': 0.05 },
    });
    const abortStep = fc.record({
      kind: fc.constant('abort' as const),
      side: fc.constantFrom<Side>('client', 'server'),
    });
    const insertedAbort = fc.oneof(
      { arbitrary: fc.constant(undefined), weight: 4 },
      { arbitrary: fc.tuple(fc.nat(), abortStep), weight: 1 },
    );
    const schedule = fc
      .tuple(steps, insertedAbort, fc.integer({ min: 0, max: 5000 }))
      .map(([s, abort, pause]): ModelStep[] => {
        const at = abort === undefined ? 0 : abort[0] % (s.length + 1);
        const withAbort = abort === undefined ? s : [...s.slice(0, at), abort[1], ...s.slice(at)];
        return [...withAbort, { kind: 'advance', ms: pause }];
      });
    const stats = new CoverageStats('chaos');
    checkProperty(
      'chaos',
      fc.property(
        arbitraryModelConfig(),
        schedule,
        finalAction,
        fc.boolean(),
        (config, schedule, last, resume) => {
          runModel(
            config,
            {},
            (model) => {
              model.start();
              for (const step of schedule) model.apply(step);
              if (resume) for (const side of SIDES) model.net.resumeConsumer(side);
              model.apply(last);
              model.tick();
              // Every connection ends once terminated: close timeout 30 s, grace ≤ 10 s, idle ≤ 5 s,
              // handshake 10 s.
              if (!model.runUntil(() => model.net.done, 200_000))
                fail('the connection did not end within 200 s');
              model.advance(1000); // late deliveries must not contradict the reports
            },
            stats,
          );
        },
      ),
      propertyRuns(100),
      stats,
    );
  });

  // ----------------------------------------------------------------------------------------------
  it('I2: no liveness failure on a live network, whatever the applications do', () => {
    const steps = arbitrarySchedule(
      {
        maxAdvanceMs: 10_000,
        maxSteps: 40,
        weights: {
          partition: 0,
          heal: 0,
          crash: 0,
          'pause-consumer': 2,
          'resume-consumer': 0.7,
          close: 0.15,
          'go-away': 0.15,
          'close-and-go-away': 0.05,
        },
      },
      2,
    );
    const config = arbitraryModelConfig({ maxHoldMs: 60_000 }).map((c) => withoutCloseTimeout(liveConfig(c)));
    const stats = new CoverageStats('I2');
    checkProperty(
      'I2 no false liveness failure',
      fc.property(config, steps, (config, schedule) => {
        const live = liveBounds(config);
        // Only a clean close is acceptable: any error (HEARTBEAT_TIMEOUT, WRITE_STALL, …) fails at once.
        runModel(
          config,
          { live, allowedErrors: new Set(), graceMs: FOREVER_MS },
          (model) => {
            model.start();
            for (const step of schedule) model.apply(step);
            model.advance(3 * Math.max(idle(config, 'client'), idle(config, 'server')));
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  });

  // ----------------------------------------------------------------------------------------------
  it('I3: a silent partition is detected on both sides within T + d_max', () => {
    const prefix = arbitrarySchedule(
      {
        maxSteps: 15,
        weights: { partition: 0, heal: 0, crash: 0, close: 0, 'go-away': 0, 'close-and-go-away': 0 },
      },
      1,
    );
    const mode = fc.constantFrom('idle' as const, 'sending' as const, 'stalled' as const);
    const modeArgs = fc.record({
      side: fc.constantFrom<Side>('client', 'server'),
      count: fc.integer({ min: 1, max: 30 }),
      bytes: fc.oneof(fc.integer({ min: 0, max: 64 }), fc.integer({ min: 0, max: 200 * 1024 })),
      delayFraction: fc.double({ min: 0, max: 1, noNaN: true }),
    });
    const stats = new CoverageStats('I3');
    checkProperty(
      'I3 partition detection',
      fc.property(arbitraryModelConfig(), prefix, mode, modeArgs, (raw, schedule, mode, args) => {
        const config = liveConfig(raw);
        const live = liveBounds(config);
        let partitionAt: number | undefined;
        const allowed = new Set(['HEARTBEAT_TIMEOUT', 'WRITE_STALL']);
        runModel(
          config,
          {
            live,
            allowedErrors: allowed,

            extraCheck: (m) => {
              for (const side of SIDES) {
                const s = m.side(side);
                if (s.closedAt !== undefined && (partitionAt === undefined || s.closedAt < partitionAt)) {
                  fail(`${side} closed at ${s.closedAt}, before the partition (live network)`);
                }
              }
            },
          },
          (model) => {
            model.start();
            for (const step of schedule) model.apply(step);
            const open = () => SIDES.every((s) => model.engines[s].negotiated !== undefined);
            if (!model.runUntil(open, 10 * live.idleMs)) fail('I3: the handshake did not complete');
            const sender = args.side;
            const receiver = other(sender);
            if (mode === 'idle') {
              for (const side of SIDES) model.net.resumeConsumer(side);
              model.runUntil(
                () =>
                  SIDES.every(
                    (s) =>
                      model.side(s).outbox.length === 0 &&
                      model.peerConsumed(s) === model.side(s).sent.length,
                  ),
                progressBoundMs(model),
              );
              model.advance(args.delayFraction * live.idleMs);
            } else {
              if (mode === 'stalled') model.net.pauseConsumer(receiver);
              for (let i = 0; i < args.count; i++) {
                model.apply({ kind: 'send', side: sender, bytes: args.bytes });
                if (mode === 'sending') model.apply({ kind: 'send', side: receiver, bytes: args.bytes >> 1 });
              }
              if (mode === 'stalled') {
                // Until the sender is blocked on credit (or has sent everything it has).
                const sending = model.engines[sender];
                model.runUntil(() => {
                  const st = sending.stats();
                  return (st.queuedBytes > 0 && st.sendCredit < 7) || st.queuedBytes === 0;
                }, 10 * live.idleMs);
              } else {
                model.advance(args.delayFraction * live.idleMs * 0.5);
              }
            }
            const t0 = model.now;
            partitionAt = t0;
            const dMax = {
              client: maxTransitMs(model.net, 'server'),
              server: maxTransitMs(model.net, 'client'),
            };
            model.net.partition('both');
            const limit = Math.max(idle(config, 'client'), idle(config, 'server')) * 3 + 1000;
            model.runUntil(() => model.net.done, limit);
            for (const side of SIDES) {
              const s = model.side(side);
              const T = idle(config, side);
              if (s.closedInfo === undefined)
                fail(`I3: ${side} did not detect the partition within ${limit} ms`);
              const error = s.closedInfo.error;
              if (error === undefined || !allowed.has(error.code) || (error as { remote?: boolean }).remote) {
                fail(`I3: ${side} closed without a local liveness error`);
              }
              const took = s.closedAt! - t0;
              const bound = T + dMax[side];
              if (took > bound + 1e-6) {
                fail(
                  `I3: ${side} detected the partition after ${took} ms, above T ${T} + d_max ${dMax[side]} (mode ${mode})`,
                );
              }
            }
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  });

  // ----------------------------------------------------------------------------------------------
  it('I4: clean termination by client, server or both delivers everything, in order', () => {
    const plan = fc.record({
      kind: fc.constantFrom('client' as const, 'server' as const, 'both-same' as const, 'both' as const),
      at: fc.nat(),
      at2: fc.nat(),
    });
    const steps = arbitrarySchedule(
      {
        weights: {
          partition: 0.5,
          heal: 0.5,
          crash: 0,
          close: 0,
          'go-away': 0,
          'close-and-go-away': 0,
          'pause-consumer': 1.5,
        },
      },
      1,
    );
    const config = arbitraryModelConfig({
      closeOnGoAway: fc.integer({ min: 0, max: 2000 }),
    }).map((c) => withoutCloseTimeout(liveConfig(c)));
    const stats = new CoverageStats('I4');
    checkProperty(
      'I4 clean termination',
      fc.property(config, steps, plan, (config, schedule, plan) => {
        const live = liveBounds(config);
        const maxPartitionMs = Math.floor(live.idleMs / 3);
        runModel(
          config,
          {
            live,
            maxPartitionMs,
            allowedErrors: new Set(),
            graceMs: FOREVER_MS,
          },
          (model) => {
            const n = schedule.length + 1;
            const closeAt = plan.kind === 'server' ? -1 : plan.at % n;
            const goAwayAt = plan.kind === 'client' ? -1 : plan.kind === 'both-same' ? closeAt : plan.at2 % n;
            model.start();
            for (let i = 0; i <= schedule.length; i++) {
              if (i === goAwayAt) model.apply({ kind: 'go-away', graceMs: FOREVER_MS });
              if (i === closeAt) model.apply({ kind: 'close-when-flushed' });
              if (i < schedule.length) model.apply(schedule[i]);
            }
            for (const side of SIDES) model.net.resumeConsumer(side);
            model.net.heal('both');
            model.tick();
            const bound = progressBoundMs(model) + 10 * live.idleMs;
            if (!model.runUntil(() => model.net.done, bound))
              fail(`I4: termination not complete ${bound} ms later`);
            for (const side of SIDES) {
              const s = model.side(side);
              const info = s.closedInfo!;
              if (!info.clean) fail(`I4: ${side} did not close clean`);
              const peer = model.side(other(side));
              if (peer.delivered.length !== s.sent.length) {
                fail(`I4: ${other(side)} received ${peer.delivered.length} of ${s.sent.length} messages`);
              }
              if (info.delivery.consumed !== s.sent.length)
                fail(`I4: ${side} consumed ${info.delivery.consumed}`);
            }
            // Crossing CLOSE and GOAWAY ('both') may legitimately be 'local' on both sides.
            if (plan.kind === 'client') {
              if (model.side('client').closedInfo!.initiator !== 'local')
                fail('I4: client close, client initiator not local');
              if (model.side('server').closedInfo!.initiator !== 'remote')
                fail('I4: client close, server initiator not remote');
            }
            if (plan.kind === 'server') {
              if (model.side('server').closedInfo!.initiator !== 'local')
                fail('I4: GOAWAY, server initiator not local');
              if (model.side('client').closedInfo!.initiator !== 'remote')
                fail('I4: GOAWAY, client initiator not remote');
            }
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  });

  // ----------------------------------------------------------------------------------------------
  /** I6 as a property; `options` switch the known-bug workarounds off for the BUG properties. */
  function progressProperty(
    name: string,
    options: { smallSendQueues?: boolean; deadlockSafeSizes?: boolean } = {},
  ) {
    const steps = arbitrarySchedule(
      {
        weights: { partition: 0, heal: 0, crash: 0, close: 0, 'go-away': 0, 'close-and-go-away': 0 },
      },
      2,
    );
    const config = arbitraryModelConfig({ smallSendQueues: options.smallSendQueues }).map(liveConfig);
    const stats = new CoverageStats(name);
    checkProperty(
      name,
      fc.property(config, steps, (config, schedule) => {
        runModel(
          config,
          {
            live: liveBounds(config),
            allowedErrors: new Set(),

            ...(options.deadlockSafeSizes === undefined
              ? {}
              : { deadlockSafeSizes: options.deadlockSafeSizes }),
          },
          (model) => {
            model.start();
            for (const step of schedule) model.apply(step);
            for (const side of SIDES) model.net.resumeConsumer(side);
            model.tick();
            assertProgress(model, 'after the schedule');
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  }

  it('I6: on a live network with consuming applications every send completes within a bound', () => {
    progressProperty('I6 progress');
  });

  // ----------------------------------------------------------------------------------------------
  // Known engine bugs: each property below fails on the current engine; the properties above
  // steer around these bugs (KNOWN_BUGS in model-helpers.ts). Unskip once fixed and run with
  // HEARTWIRE_MODEL_EXPOSE_BUGS=1 to run every property without the workarounds.

  // BUG: engine.ts pollTransmit emits `writable` whenever `writableWanted && queuedBytes <
  // maxSendQueueBytes`, without regard to the message trySend refused: trySend refuses when
  // `queuedBytes > 0 && queuedBytes + payload.length > maxSendQueueBytes`. When nothing can be
  // sent (no credit, full transport buffer), an application that retries on `writable` as
  // documented gets writable → trySend false → writable … forever at one instant (the simulation
  // throws "client engine never goes quiet"). Minimal: client maxSendQueueBytes 1024, server
  // window 1024 not consuming; trySend(1500 B) → true (≈1000 B go out, 482 queued); trySend(900 B)
  // → false; every pollTransmit now emits `writable` and trySend(900 B) stays false. Fix: emit
  // `writable` only when the refused message would now be accepted (remember its size), or only
  // when queuedBytes decreased.
  it.skip('BUG back-pressure: with small send queues every send completes (writable busy loop)', () => {
    progressProperty('BUG writable loop', { smallSendQueues: true });
  });

  // BUG: incomplete-message credit deadlock. A message the receiver accepts (≤ max_message_size)
  // can get stuck forever with its END frame unsent: the sender is left with fewer than
  // 6 + remaining + 256 credit bytes, and the receiver never grants more, because rule 5's
  // argument ("once the application has consumed everything, C = R") fails when what is held is
  // an incomplete message, which the application cannot consume. Heartbeats keep flowing, so
  // nothing ever fails; the sender does not even report a credit stall (engine.ts
  // updateBlocked thinks 7 bytes of credit suffice, while pollTransmit sends nothing: it splits
  // at `min(remaining, …) − 6` and so always keeps ≥ 6 bytes for the END frame).
  // Two ways in:
  // (a) window growth lags: engine.ts onData grows the window by ONE doubling per non-END frame
  //     and grants only within C + W. After the window shrank back to its initial size
  //     (WINDOW_IDLE_SHRINK_MS) while L − C stayed at the old, larger grant, a message needing
  //     slightly more than L − C that arrives in a few large frames grows W to less than L − C:
  //     no grant is possible (not even by a heartbeat's raiseLimit), the sender uses up its
  //     credit, and no further frame comes to grow W again. Deterministic: server
  //     initialWindowBytes 2048, maxWindowBytes 32768, maxFramePayloadBytes 8192, zero-latency
  //     lossless link, everything consumed at once: client sends 200 × 100 B (window grows to
  //     32768, limit 99 750), idle 2.5 s (window back to 2048), 7 × 100 B (L − C = 24 798), then
  //     one message of 24 525 B (3 frames; cost L − C + 1): 60 s later the server holds
  //     24 537 credit bytes of it with window 16 384 and 261 bytes of credit outstanding, the
  //     client has 6 bytes queued and 261 credit (the END frame needs 268). Forever.
  // (b) fragmentation: SPEC §7 rule 6 sizes W for ⌈size / max_frame_payload⌉ headers, but §5.1
  //     lets a sender split a message into frames of any size, and pollTransmit splits at the
  //     transport's room (`maxDataBytes`) and at the credit: 6 bytes per extra frame can push the
  //     cost of a message of max_message_size beyond maxWindowBytes. Minimal: server
  //     initialWindowBytes 1024, maxWindowBytes 4096, maxFramePayloadBytes 1024 (max message
  //     3815), client sends 3475 B through a transport that takes 16 bytes per pollTransmit.
  // Fix direction: while a partial message is held, grow W (up to maxWindowBytes) so that
  // C + W covers its cost so far plus a frame and the 256-byte END overhead, grant without the
  // W/4 threshold when L − R < 268, and do not charge the 6-byte headers of an incomplete message
  // against the window (its fragments are stored packed, so this costs no memory); or make the
  // sender split only at max_frame_payload boundaries. The main properties cap message sizes
  // to (receiver's initialWindowBytes − 262) / 7 until then.
  it.skip('BUG progress: every message up to max_message_size completes (incomplete-message deadlock)', () => {
    progressProperty('BUG incomplete-message deadlock', { deadlockSafeSizes: false });
  });

  // BUG: handshake burst. The server opens when it sends WELCOME and heartbeats every T_c/3
  // from then on; the client has no idle deadline until WELCOME arrives (only the handshake
  // timeout, 10 s). If WELCOME is delayed by more than ~8/3·T_c (slow path, partition healed
  // within the handshake timeout), the queued heartbeats arrive together right after it, and the
  // client fails with ENHANCE_YOUR_CALM (more than 8 heartbeats in a window of T_c/3,
  // engine.ts onHeartbeat/rollFloodWindow) and sends ERROR ENHANCE_YOUR_CALM to a server that
  // did nothing wrong. SPEC §8's "at most 5 in one window with delays below T" does not hold
  // for delays the handshake tolerates. Minimal: T_c = 300, server T_s = 5000, path
  // server→client partitioned from t=0 and healed at 740 ms: the client opens at ≈750 ms and
  // fails at ≈850 ms. Fix: count floods by the sender's timestamps (heartbeats closer than
  // 0.9·I on the sender's clock), or forgive the heartbeats that arrive with/after WELCOME.
  it.skip('BUG: a WELCOME delayed within the handshake timeout does not end in ENHANCE_YOUR_CALM', () => {
    const stats = new CoverageStats('BUG handshake burst');
    const config = arbitraryModelConfig().map((c) => {
      const live = liveConfig(c);
      return withoutCloseTimeout({ ...live, server: { ...live.server, idleTimeoutMs: 5000 } });
    });
    checkProperty(
      'BUG handshake burst',
      fc.property(config, fc.integer({ min: 0, max: 4000 }), (config, delayMs) => {
        runModel(
          config,
          { allowedErrors: new Set(), tolerateHandshakeBurst: false },
          (model) => {
            model.net.partition('server-to-client');
            model.start();
            model.net.clock.setTimer(delayMs, () => model.net.heal('server-to-client'));
            model.advance(delayMs + 3 * config.client.idleTimeoutMs!);
            model.requestClose(true);
            if (!model.runUntil(() => model.net.done, 60_000)) fail('the close did not complete');
            for (const side of SIDES)
              if (!model.side(side).closedInfo!.clean) fail(`${side} did not close clean`);
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  });

  // BUG: credit-stall deadline at a fractional time loops forever. nextDeadline() returns
  // `blockedSince + creditStallReportMs`, but handleTimeout tests `now − blockedSince >=
  // creditStallReportMs`, which floating point can make false at exactly that time (e.g.
  // blockedSince 3193.2382683845617: 3193.2382683845617 + 5000 = 8193.23826838456, and
  // 8193.23826838456 − 3193.2382683845617 = 4999.999999999999). The deadline never moves: the
  // simulation's clock stops after 100 000 timers at one instant (found by I2 and I4 at
  // ≈ 1 run in 1000); a real adapter spins until its clock passes the deadline. The same
  // pattern applies to creditStallTimeoutMs. Fix: compare `now >= blockedSince + …`, the
  // expression nextDeadline uses. The main properties set creditStallReportMs to 10^9 until then.
  it.skip('BUG: handleTimeout at nextDeadline() always moves the deadline on (credit-stall report)', () => {
    checkProperty(
      'BUG credit-stall deadline',
      fc.property(
        // Times with a full 52-bit fraction, as the simulation's bandwidth arithmetic produces.
        fc.tuple(fc.integer({ min: 0, max: 20_000 }), fc.integer({ min: 1, max: 2 ** 31 - 1 })),
        fc.integer({ min: 100, max: 10_000 }),
        ([ms, fraction], reportMs) => {
          const t0 = ms + fraction / 2 ** 31 + fraction / 2 ** 52;
          const client = new Engine({
            role: 'client',
            creditStallReportMs: reportMs,
            idleTimeoutMs: 86_400_000,
          });
          const server = new Engine({ role: 'server', initialWindowBytes: 1024 });
          client.start(t0);
          server.start(t0);
          for (let i = 0; i < 3; i++) {
            for (const c of client.pollTransmit(t0)) server.receive(t0, c);
            for (const c of server.pollTransmit(t0)) client.receive(t0, c);
          }
          client.trySend(t0, new Uint8Array(4000)); // blocked on the server's credit from t0 on
          client.pollTransmit(t0);
          let reported = false;
          for (let i = 0; i < 100 && !reported; i++) {
            const due = client.nextDeadline();
            if (due === undefined) break;
            client.handleTimeout(due);
            client.pollTransmit(due);
            for (let e = client.pollEvent(); e !== undefined; e = client.pollEvent()) {
              if (e.type === 'credit-stall') reported = true;
            }
            if (!reported && client.nextDeadline() === due) {
              fail(`deadline ${due} (blocked since ${t0}, report after ${reportMs} ms) does not move`);
            }
          }
          if (!reported) fail('no credit-stall report');
        },
      ),
      propertyRuns(100),
    );
  });

  // BUG: a server takes the end-of-stream (or reset) of a client that died after CLOSE_ACK as a
  // clean close, although the client never sent its final CREDIT: engine.ts receiveEnd and
  // transportFailed finish cleanly in `close-ack-sent` unconditionally. The report then says
  // clean with consumed < queued, contradicting SPEC §9.4 ("on a clean close every message is
  // consumed"); an application trusting `clean` believes its last responses were consumed.
  // Minimal (engines joined directly): server trySend(1 B); client close(); server finish();
  // CLOSE_ACK reaches the client, whose application has not read the message yet; the client
  // process dies and its kernel sends FIN: server.receiveEnd() → closed { clean: true,
  // queued 1, consumed 0 }. Fix: in `close-ack-sent`, a FIN or reset is clean only if the
  // client's final CREDIT reported every message consumed (peerConsumed === queuedCount);
  // otherwise UNEXPECTED_EOF / TRANSPORT_ERROR. (SPEC §9.3 says "a transport reset in those two
  // states is still a clean close" and would need the same condition.)
  it.skip('BUG: after CLOSE_ACK, a client crash is not a clean close for the server', () => {
    const stats = new CoverageStats('BUG clean after crash');
    const config = arbitraryModelConfig().map((c) => withoutCloseTimeout(liveConfig(c)));
    checkProperty(
      'BUG clean after crash',
      fc.property(
        config,
        fc.integer({ min: 1, max: 20 }),
        fc.constantFrom('fin' as const, 'reset' as const),
        (config, count, mode) => {
          runModel(
            config,
            { live: liveBounds(config), tolerateCleanWithoutFinalCredit: false },
            (model) => {
              model.start();
              model.advance(config.client.idleTimeoutMs!);
              model.net.pauseConsumer('client');
              for (let i = 0; i < count; i++) model.apply({ kind: 'send', side: 'server', bytes: 10 });
              model.requestClose(true);
              const acked = () => model.engines.client.state === 'close-acked';
              if (!model.runUntil(acked, 60_000)) fail('the client never got CLOSE_ACK');
              model.net.crash('client', { notifyPeer: mode });
              if (!model.runUntil(() => model.side('server').closedInfo !== undefined, 60_000)) {
                fail('the server did not close');
              }
              model.tick();
            },
            stats,
          );
        },
      ),
      propertyRuns(100),
      stats,
    );
  });

  // BUG (SPEC §8 and engine): the "exact condition" for no false failure is not sufficient at
  // the handshake. The server's idle deadline starts when HELLO arrives, but the client can
  // send nothing until WELCOME has arrived, and its first HEARTBEAT then comes at a random
  // phase in [0, I) with I = T_s/3 (engine.ts open(): `nextHeartbeatAt = now + I·random()`).
  // The server therefore hears nothing for RTT + up to T_s/3 after HELLO, so any RTT above
  // ≈ 2/3·T_s can end in HEARTBEAT_TIMEOUT right after the handshake, although every frame takes
  // the same time (d(f) constant, differences 0 < 0.633·T). Minimal: T_c = T_s = 300 ms,
  // latency 125 ms each way, unlimited bandwidth, idle applications: 12 of 20 engine seeds fail
  // (server HEARTBEAT_TIMEOUT at 425 ms = HELLO at 125 + 300). Fix direction: the client sends a
  // HEARTBEAT as soon as WELCOME arrives (phase 0 for the first one), and SPEC §8 adds the
  // handshake term to the condition (RTT of the handshake, WELCOME out and the first frame
  // back, below T_s).
  it.skip('BUG: constant latency below T/2 each way (equal transit times) never fails liveness', () => {
    const stats = new CoverageStats('BUG handshake RTT');
    const config = fc
      .tuple(arbitraryModelConfig(), fc.double({ min: 0, max: 0.45, noNaN: true }))
      .map(([c, fraction]) => {
        const latency = fraction * Math.min(c.client.idleTimeoutMs!, c.server.idleTimeoutMs!);
        const path = { latencyMs: latency, bandwidthBytesPerMs: Infinity };
        return withoutCloseTimeout({
          ...c,
          clientToServer: { ...c.clientToServer, ...path },
          serverToClient: { ...c.serverToClient, ...path },
        });
      });
    checkProperty(
      'BUG handshake RTT',
      fc.property(config, (config) => {
        runModel(
          config,
          { allowedErrors: new Set() },
          (model) => {
            model.start();
            model.advance(5 * Math.max(config.client.idleTimeoutMs!, config.server.idleTimeoutMs!));
          },
          stats,
        );
      }),
      propertyRuns(100),
      stats,
    );
  });
});
