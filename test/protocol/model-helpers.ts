/**
 * Model-based testing of two engines joined by the simulated network (`src/testing/simnet.ts`)
 * on the virtual clock: configuration and schedule arbitraries, a runner that checks the
 * invariants after every timer the simulation fires (every segment departure and arrival, every
 * engine deadline), and a `fc.check` wrapper that reports a replayable seed/path and the
 * readable trace of the failing run.
 *
 * Used by `model.test.ts`; see the invariants documented there.
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { FRAME_HEADER_SIZE } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import { HeartwireError } from '../../src/protocol/errors.js';
import type { CloseInfo, EngineOptions } from '../../src/protocol/types.js';
import {
  applyFaultStep,
  arbitraryFaultStep,
  arbitraryPathParams,
  faultPayload,
  type FaultScheduleOptions,
  type FaultStep,
} from '../../src/testing/faults.js';
import {
  SimulatedNetwork,
  defaultApplication,
  type PathParams,
  type Side,
  type SimApplication,
  type SimSide,
} from '../../src/testing/simnet.js';
import { Pair } from './pair.js';

export const SIDES: readonly Side[] = ['client', 'server'];
export const other = (side: Side): Side => (side === 'client' ? 'server' : 'client');

// ------------------------------------------------------------------------------------------------
// Run counts

/** Runs per property: `HEARTWIRE_PROPERTY_RUNS` (`npm run test:long` sets 2000), else `fallback`. */
export function propertyRuns(fallback: number): number {
  const env = Number(process.env.HEARTWIRE_PROPERTY_RUNS);
  return Number.isFinite(env) && env > 0 ? Math.floor(env) : fallback;
}

// ------------------------------------------------------------------------------------------------
// Configuration

/** How a side's application consumes: `read` (consume at once) or `take` + `release` after a delay. */
export type ConsumerConfig = { kind: 'read' } | { kind: 'take'; holdMs: readonly number[] };

/** Everything a model run is built from, apart from its schedule. */
export interface ModelConfig {
  client: Omit<EngineOptions, 'role'>;
  server: Omit<EngineOptions, 'role'>;
  clientToServer: PathParams;
  serverToClient: PathParams;
  netSeed: number;
  consumers: Record<Side, ConsumerConfig>;
  /** The client application closes this long after a GOAWAY arrives; `undefined`: it ignores GOAWAY. */
  closeOnGoAwayAfterMs: number | undefined;
}

const KiB = 1024;
const MiB = 1024 * 1024;

/** Sizes in [lo, hi], spread over the orders of magnitude (small values are as likely as large ones). */
export function spreadInt(lo: number, hi: number): fc.Arbitrary<number> {
  const steps = Math.max(1, Math.ceil(Math.log2(hi / lo)));
  return fc
    .tuple(fc.integer({ min: 0, max: steps }), fc.double({ min: 0, max: 1, noNaN: true }))
    .map(([e, f]) => Math.min(hi, Math.max(lo, Math.round(lo * 2 ** Math.min(steps, e + f)))));
}

/** Engine options within the ranges of the brief (idle 300…5000 ms, windows 1 KiB…1 MiB, frames 1…64 KiB). */
export function arbitraryEngineOptions(role: 'client' | 'server'): fc.Arbitrary<Omit<EngineOptions, 'role'>> {
  return fc
    .record({
      idleTimeoutMs: fc.integer({ min: 300, max: 5000 }),
      initialWindowBytes: spreadInt(KiB, MiB),
      maxWindowBytes: fc.oneof(spreadInt(KiB, MiB), fc.constant(MiB)),
      maxFramePayloadBytes: spreadInt(KiB, 64 * KiB),
      maxSendQueueBytes: spreadInt(KiB, MiB),
      creditStallReportMs: fc.integer({ min: 100, max: 10_000 }),
      seed: fc.integer(),
    })
    .map((o) =>
      role === 'server' ? { ...o, clientIdleTimeoutRangeMs: [100, 86_400_000] as const } : { ...o },
    );
}

export function arbitraryConsumer(maxHoldMs = 5000): fc.Arbitrary<ConsumerConfig> {
  return fc.oneof(
    { arbitrary: fc.constant<ConsumerConfig>({ kind: 'read' }), weight: 3 },
    {
      arbitrary: fc
        .array(
          fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 50 }), fc.integer({ min: 0, max: maxHoldMs })),
          {
            minLength: 1,
            maxLength: 8,
          },
        )
        .map((holdMs): ConsumerConfig => ({ kind: 'take', holdMs })),
      weight: 1,
    },
  );
}

/**
 * Path parameters (src/testing `arbitraryPathParams`), with segments of at most 64 … 4096 bytes.
 * Segment sizes are drawn in [1, max] biased towards tiny ones (15 % are 1 byte), so small
 * maxima add nothing but runtime, and 1-byte segments at unlimited bandwidth all fire at one
 * instant (the clock's runaway guard stops at 100 000).
 */
export function arbitraryPath(): fc.Arbitrary<PathParams> {
  return arbitraryPathParams({ maxLatencyMs: 500 }).map((p) => ({
    ...p,
    maxChunkBytes: Math.max(64, p.maxChunkBytes),
  }));
}

export function arbitraryModelConfig(
  options: {
    maxHoldMs?: number;
    closeOnGoAway?: fc.Arbitrary<number | undefined>;
  } = {},
): fc.Arbitrary<ModelConfig> {
  return fc.record({
    client: arbitraryEngineOptions('client'),
    server: arbitraryEngineOptions('server'),
    clientToServer: arbitraryPath(),
    serverToClient: arbitraryPath(),
    netSeed: fc.integer(),
    consumers: fc.record({
      client: arbitraryConsumer(options.maxHoldMs),
      server: arbitraryConsumer(options.maxHoldMs),
    }),
    closeOnGoAwayAfterMs:
      options.closeOnGoAway ?? fc.option(fc.integer({ min: 0, max: 2000 }), { nil: undefined }),
  });
}

/** Largest window an engine with these options may ever use (the engine's own resolution). */
export function maxWindowOption(o: Omit<EngineOptions, 'role'>): number {
  return Math.max(o.initialWindowBytes ?? 64 * KiB, o.maxWindowBytes ?? 8 * MiB);
}

/**
 * Largest message each side may send: the `max_message_size` its peer announces. Read from a
 * handshake between two fresh engines with the same options, so the test follows the engine's
 * clamp (SPEC §7 rule 6) whatever it becomes.
 */
export function peerMessageLimits(config: ModelConfig): Record<Side, number> {
  const { client: c, server: s } = new Pair(config.client, config.server);
  const [client, server] = [c.engine, s.engine];
  if (client.negotiated === undefined || server.negotiated === undefined) {
    throw new Error('peerMessageLimits: the handshake did not complete');
  }
  return { client: client.negotiated.peerMaxMessageBytes, server: server.negotiated.peerMaxMessageBytes };
}

// ------------------------------------------------------------------------------------------------
// Live network (SPEC §8 "no false failure")

/**
 * Control bytes that can sit in a send buffer beyond its DATA room: the simulation always takes
 * control frames (HEARTBEAT 42 B, CREDIT 22 B, CLOSE/CLOSE_ACK/GOAWAY/ERROR ≤ a few dozen bytes).
 */
export const CONTROL_SLACK_BYTES = 1024;

/**
 * Most bytes a send buffer can hold: the DATA room the simulation passes to `pollTransmit`, one
 * DATA frame beyond it (the engine stops after the frame that crosses the budget: up to the
 * receiver's `max_frame_payload` + 6) and the control slack.
 */
export function sendBufferBound(config: ModelConfig, from: Side): number {
  const path = from === 'client' ? config.clientToServer : config.serverToClient;
  const frame = config[other(from)].maxFramePayloadBytes ?? 64 * KiB;
  return path.sendBufferBytes + FRAME_HEADER_SIZE + frame + CONTROL_SLACK_BYTES;
}

/**
 * Bounds under which the network is "live" for both sides: with `T = min(T_c, T_s)`, every
 * direction has latency ≤ T/10 and a bandwidth at which a full send buffer
 * ({@link sendBufferBound}) drains within T/10. Then the transit time `d(f)` of every frame is
 * in [0, T/5], so any two differ by less than T/5 < T − 1.1·T/3 = 0.633·T, and the handshake's
 * round trip (HELLO in, WELCOME out, the client's first HEARTBEAT back) takes at most 0.4·T <
 * T_s: the exact condition of SPEC §8.
 */
export interface LiveBounds {
  /** min(T_c, T_s), ms. */
  idleMs: number;
  maxLatencyMs: number;
  /** Smallest bandwidth (bytes/ms) per direction, named by its sender. */
  minBandwidth: Record<Side, number>;
}

export function liveBounds(config: ModelConfig): LiveBounds {
  const idleMs = Math.min(config.client.idleTimeoutMs!, config.server.idleTimeoutMs!);
  const need = (from: Side) => (sendBufferBound(config, from) * 10) / idleMs;
  return {
    idleMs,
    maxLatencyMs: Math.floor(idleMs / 10),
    minBandwidth: { client: need('client'), server: need('server') },
  };
}

/** The configuration with both paths clamped into the live bounds. */
export function liveConfig(config: ModelConfig): ModelConfig {
  const b = liveBounds(config);
  const clamp = (p: PathParams, from: Side): PathParams => ({
    ...p,
    latencyMs: Math.min(p.latencyMs, b.maxLatencyMs),
    bandwidthBytesPerMs: Math.max(p.bandwidthBytesPerMs, b.minBandwidth[from]),
  });
  return {
    ...config,
    clientToServer: clamp(config.clientToServer, 'client'),
    serverToClient: clamp(config.serverToClient, 'server'),
  };
}

/** Upper bound of the transit time d(f) of a frame sent by `from` now (latency + a full send buffer). */
export function maxTransitMs(model: Model, from: Side): number {
  const p = model.net.path(from);
  return p.latencyMs + sendBufferBound(model.config, from) / p.bandwidthBytesPerMs;
}

// ------------------------------------------------------------------------------------------------
// Schedules

/** A schedule step: a fault step of `src/testing/faults.ts`, or one of the model's own. */
export type ModelStep =
  | FaultStep
  /** The application of `side` sends `count` messages of `bytes` bytes at once. */
  | { kind: 'burst'; side: Side; count: number; bytes: number }
  /** The client application closes once everything it sent has been accepted by the engine. */
  | { kind: 'close-when-flushed' }
  /** The application of `side` aborts. */
  | { kind: 'abort'; side: Side };

export const MAX_MESSAGE_BYTES = 200 * KiB;

export function arbitraryBurst(): fc.Arbitrary<ModelStep> {
  return fc.record({
    kind: fc.constant('burst' as const),
    side: fc.constantFrom<Side>('client', 'server'),
    count: fc.integer({ min: 1, max: 200 }),
    bytes: fc.integer({ min: 0, max: 64 }),
  });
}

/** Fault steps (sends 0 … 200 KiB) mixed with bursts of tiny messages. */
export function arbitraryModelStep(
  options: FaultScheduleOptions = {},
  burstWeight = 1,
): fc.Arbitrary<ModelStep> {
  const fault = arbitraryFaultStep({ maxMessageBytes: MAX_MESSAGE_BYTES, ...options });
  if (burstWeight <= 0) return fault;
  return fc.oneof({ arbitrary: fault, weight: 14 }, { arbitrary: arbitraryBurst(), weight: burstWeight });
}

/**
 * A schedule of 1 … `maxSteps` (default 40) steps, lengths spread over the whole range (the
 * default size of `fc.array` would keep most schedules below 10 steps).
 */
export function arbitrarySchedule(
  options: FaultScheduleOptions = {},
  burstWeight = 1,
): fc.Arbitrary<ModelStep[]> {
  return fc.array(arbitraryModelStep(options, burstWeight), {
    minLength: 1,
    maxLength: options.maxSteps ?? 40,
    size: 'max',
  });
}

export function describeStep(step: ModelStep): string {
  const { kind, ...rest } = step;
  const args = Object.entries(rest)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return args ? `${kind} ${args}` : kind;
}

// ------------------------------------------------------------------------------------------------
// The model

/** Thrown when an invariant does not hold. */
export class InvariantError extends Error {
  override name = 'InvariantError';
}

export function fail(message: string): never {
  throw new InvariantError(message);
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function errorText(info: CloseInfo): string {
  if (info.error === undefined) return `clean=${info.clean} initiator=${info.initiator}`;
  const remote = (info.error as { remote?: boolean }).remote === true ? 'remote ' : '';
  return `clean=${info.clean} initiator=${info.initiator} error=${remote}${info.error.code} (${info.error.message})`;
}

/**
 * Errors that may end a connection between two correct engines, given faults and deadlines.
 * Anything else (PROTOCOL_ERROR, FLOW_CONTROL_ERROR, FRAME_TOO_LARGE, ENHANCE_YOUR_CALM,
 * INTERNAL_ERROR, …, locally or from the peer) is a bug. WRITE_STALL has no wire code, so the
 * peer of a side that fails with it receives ERROR `CANCELLED`.
 */
export const FAULT_ERRORS: ReadonlySet<string> = new Set([
  'HEARTBEAT_TIMEOUT',
  'WRITE_STALL',
  'HANDSHAKE_TIMEOUT',
  'CLOSE_TIMEOUT',
  'GOAWAY_GRACE_EXPIRED',
  'UNEXPECTED_EOF',
  'TRANSPORT_ERROR',
  'CANCELLED',
]);

export interface ModelOptions {
  /** Error codes a close may carry; any other unclean close fails the run. Default {@link FAULT_ERRORS}. */
  allowedErrors?: ReadonlySet<string>;
  /** Live bounds to clamp `set-path` steps into (live properties). */
  live?: LiveBounds;
  /**
   * Healed partitions of live properties: the longest automatic heal of a partition step, and
   * the shortest time from its heal to the next partition (partition steps that come earlier are
   * skipped: back-to-back partitions add up to one long silence).
   */
  maxPartitionMs?: number;
  minPartitionGapMs?: number;
  /** Replace the grace of every GOAWAY step. */
  graceMs?: number;
  /** Extra invariant checked with the others, after every timer. */
  extraCheck?: (model: Model) => void;
}

/**
 * Two engines, the simulated network between them, and the invariant checks. All time passes
 * through {@link advance}/{@link runUntil}, which check after every timer the clock fires.
 */
export class Model {
  readonly net: SimulatedNetwork;
  readonly engines: Record<Side, Engine>;
  /** Timers fired under observation, i.e. invariant checks made. */
  checks = 0;
  /** Largest window each side has had (I1). */
  readonly maxWindowSeen: Record<Side, number> = { client: 0, server: 0 };
  /** Largest `heldBytes / largest window seen` (coverage). */
  readonly maxHeldRatio: Record<Side, number> = { client: 0, server: 0 };
  /** Time the termination was first requested, per kind (for reports). */
  closeRequestedAt: number | undefined;
  goAwayAt: number | undefined;

  readonly #config: ModelConfig;
  readonly #options: ModelOptions;
  readonly #allowed: ReadonlySet<string>;
  readonly #deliveredChecked: Record<Side, number> = { client: 0, server: 0 };
  readonly #consumedPrefix: Record<Side, number> = { client: 0, server: 0 };
  readonly #rejectedChecked: Record<Side, number> = { client: 0, server: 0 };
  readonly #closeChecked: Record<Side, boolean> = { client: false, server: false };
  /** Largest message the peer of each side accepts. */
  readonly #maxMessage: Record<Side, number>;
  #closeWhenFlushed = false;
  #clientAppClosed = false;
  /** No partition before this time (see {@link ModelOptions.minPartitionGapMs}). */
  #partitionAllowedAt = 0;

  constructor(config: ModelConfig, options: ModelOptions = {}) {
    this.#config = config;
    this.#options = options;
    this.#allowed = options.allowedErrors ?? FAULT_ERRORS;
    this.engines = {
      client: new Engine({ role: 'client', ...config.client }),
      server: new Engine({ role: 'server', ...config.server }),
    };
    this.#maxMessage = peerMessageLimits(config);
    this.net = new SimulatedNetwork({
      client: this.engines.client,
      server: this.engines.server,
      seed: config.netSeed,
      clientToServer: config.clientToServer,
      serverToClient: config.serverToClient,
      applications: { client: this.#application('client'), server: this.#application('server') },
      maxOutboxBytes: 64 * MiB,
    });
  }

  get config(): ModelConfig {
    return this.#config;
  }

  get now(): number {
    return this.net.now;
  }

  side(side: Side): SimSide {
    return this.net.side(side);
  }

  /** Whether the client application has closed (it sends nothing more). */
  get clientAppClosed(): boolean {
    return this.#clientAppClosed;
  }

  #application(side: Side): SimApplication {
    const consumer = this.#config.consumers[side];
    let next = 0;
    const consume: SimApplication =
      consumer.kind === 'read'
        ? defaultApplication
        : (event, app) => {
            if (event.type !== 'readable' || app.paused) return;
            for (let m = app.take(); m !== undefined; m = app.take()) {
              const hold = consumer.holdMs[next++ % consumer.holdMs.length];
              const seq = m.seq;
              if (hold === 0) app.release(seq);
              else app.network.clock.setTimer(app.now + hold, () => app.release(seq));
            }
          };
    return (event, app) => {
      consume(event, app);
      const delay = this.#config.closeOnGoAwayAfterMs;
      if (side === 'client' && event.type === 'goaway' && delay !== undefined) {
        app.network.clock.setTimer(app.now + delay, () => {
          app.network.note('client app: closes after GOAWAY');
          this.requestClose(true);
        });
      }
    };
  }

  start(): void {
    this.net.start();
    this.tick();
  }

  /** Client application closes: at once, or (`whenFlushed`) once its outbox is empty. */
  requestClose(whenFlushed: boolean): void {
    this.closeRequestedAt ??= this.now;
    this.#clientAppClosed = true;
    if (whenFlushed && this.side('client').outbox.length > 0) {
      this.#closeWhenFlushed = true;
      return;
    }
    this.net.close();
  }

  /** Applies a step; `advance` steps run under observation. */
  apply(step: ModelStep): void {
    const live = this.#options.live;
    switch (step.kind) {
      case 'advance':
        this.net.note(`step: ${describeStep(step)}`);
        this.advance(step.ms);
        return;
      case 'burst': {
        this.net.note(`step: ${describeStep(step)}`);
        if (step.side === 'client' && this.#clientAppClosed) return;
        if (this.engines[step.side].state === 'handshaking') return;
        for (let i = 0; i < step.count; i++) {
          const s = this.side(step.side);
          this.net.send(step.side, faultPayload(step.side, s.sendCalls, step.bytes));
        }
        break;
      }
      case 'send':
        if (step.side === 'client' && this.#clientAppClosed) {
          this.net.note(`step: ${describeStep(step)} (skipped: the client application has closed)`);
          return;
        }
        if (this.engines[step.side].state === 'handshaking') {
          // The engine refuses sends before `open` (NOT_OPEN); the application waits for it.
          this.net.note(`step: ${describeStep(step)} (skipped: ${step.side} is not open yet)`);
          return;
        }
        applyFaultStep(this.net, step);
        break;
      case 'close-when-flushed':
        this.net.note(`step: ${describeStep(step)}`);
        this.requestClose(true);
        break;
      case 'close':
      case 'close-and-go-away':
        this.closeRequestedAt ??= this.now;
        this.#clientAppClosed = true;
        if (step.kind === 'close-and-go-away') {
          this.goAwayAt ??= this.now;
          applyFaultStep(this.net, { ...step, graceMs: this.#options.graceMs ?? step.graceMs });
        } else applyFaultStep(this.net, step);
        break;
      case 'go-away':
        this.goAwayAt ??= this.now;
        applyFaultStep(this.net, { ...step, graceMs: this.#options.graceMs ?? step.graceMs });
        break;
      case 'abort':
        this.net.note(`step: ${describeStep(step)}`);
        this.net.abort(step.side);
        break;
      case 'partition': {
        const max = this.#options.maxPartitionMs;
        const healAfterMs = max === undefined ? step.healAfterMs : Math.min(step.healAfterMs ?? max, max);
        if (this.#options.minPartitionGapMs !== undefined) {
          if (this.now < this.#partitionAllowedAt) {
            this.net.note(
              `step: ${describeStep(step)} (skipped: less than the minimum gap after the last partition)`,
            );
            return;
          }
          this.#partitionAllowedAt = this.now + (healAfterMs ?? Infinity) + this.#options.minPartitionGapMs;
        }
        applyFaultStep(this.net, healAfterMs === undefined ? step : { ...step, healAfterMs });
        break;
      }
      case 'set-path': {
        if (live === undefined) {
          applyFaultStep(this.net, step);
          break;
        }
        const froms: Side[] = step.from === 'both' ? ['client', 'server'] : [step.from];
        const clamped: FaultStep = { ...step };
        if (step.latencyMs !== undefined) clamped.latencyMs = Math.min(step.latencyMs, live.maxLatencyMs);
        if (step.bandwidthBytesPerMs !== undefined) {
          clamped.bandwidthBytesPerMs = Math.max(
            step.bandwidthBytesPerMs,
            ...froms.map((f) => live.minBandwidth[f]),
          );
        }
        applyFaultStep(this.net, clamped);
        break;
      }
      default:
        applyFaultStep(this.net, step);
    }
    this.tick();
  }

  /** Lets `ms` pass, checking after every timer. */
  advance(ms: number): void {
    this.runUntil(() => false, ms);
  }

  /** Runs until `predicate` holds (checked after every timer, with the invariants) or `limitMs` pass. */
  runUntil(predicate: () => boolean, limitMs: number): boolean {
    const held = this.net.runUntil(() => {
      this.tick();
      return predicate();
    }, limitMs);
    this.tick();
    return held;
  }

  /** Deferred application actions, then the invariants. */
  tick(): void {
    this.checks++;
    if (this.#closeWhenFlushed && this.side('client').outbox.length === 0) {
      this.#closeWhenFlushed = false;
      this.net.close();
    }
    for (const side of SIDES) this.#checkSide(side);
    this.#options.extraCheck?.(this);
  }

  /** Number of `side`'s messages the peer application consumed (a contiguous prefix 1 … n). */
  peerConsumed(side: Side): number {
    const peer = other(side);
    const delivered = this.side(peer).delivered;
    let n = this.#consumedPrefix[peer];
    while (n < delivered.length && delivered[n].consumedAt !== undefined) n++;
    this.#consumedPrefix[peer] = n;
    return n;
  }

  #checkSide(side: Side): void {
    const engine = this.engines[side];
    const me = this.side(side);
    const peer = this.side(other(side));
    const where = `${side} at t=${this.now}`;

    // I1: input held for the application stays within the window. Stronger, SPEC §7 rule 4:
    // `L − C = (L − R) + (R − C) = receiveCredit + heldBytes` (R ≤ L, or FLOW_CONTROL_ERROR),
    // and every grant kept L ≤ C + W, so L − C never exceeds the largest window.
    const held = engine.heldBytes;
    const outstanding = held + engine.stats(this.now).receiveCredit;
    this.maxWindowSeen[side] = Math.max(this.maxWindowSeen[side], engine.receiveWindow);
    this.maxHeldRatio[side] = Math.max(this.maxHeldRatio[side], held / this.maxWindowSeen[side]);
    const optionMax = maxWindowOption(this.#config[side]);
    if (!(held >= 0 && held <= this.maxWindowSeen[side] && held <= optionMax)) {
      fail(
        `I1 ${where}: heldBytes ${held} exceeds the window (largest window seen ${this.maxWindowSeen[side]}, ` +
          `maxWindowBytes ${optionMax}, current window ${engine.receiveWindow})`,
      );
    }
    if (outstanding > this.maxWindowSeen[side]) {
      fail(
        `I1 ${where}: L − C = ${outstanding} (held ${held} + receive credit ${outstanding - held}) exceeds ` +
          `the largest window ${this.maxWindowSeen[side]}`,
      );
    }
    if (engine.receiveWindow > optionMax) {
      fail(`I1 ${where}: receive window ${engine.receiveWindow} above maxWindowBytes ${optionMax}`);
    }

    // Order and identity: what the application got is a prefix of what the peer's engine accepted.
    const delivered = me.delivered;
    for (let i = this.#deliveredChecked[side]; i < delivered.length; i++) {
      const d = delivered[i];
      if (d.seq !== i + 1) fail(`order ${where}: delivery #${i + 1} has seq ${d.seq}`);
      const sent = peer.sent[i];
      if (sent === undefined) fail(`order ${where}: delivered message ${d.seq} the peer never sent`);
      if (!sameBytes(d.payload, sent)) {
        fail(
          `identity ${where}: message ${d.seq} (${d.payload.length} B) differs from the one sent (${sent.length} B)`,
        );
      }
    }
    this.#deliveredChecked[side] = delivered.length;

    // Calls the engine refused: only sends after close, or messages above the peer's limit (the
    // model never sends before `open`, so NOT_OPEN would be a bug too).
    for (let i = this.#rejectedChecked[side]; i < me.rejected.length; i++) {
      const r = me.rejected[i];
      const crashed = !(r.error instanceof HeartwireError) && me.crashed !== undefined;
      const ok =
        crashed ||
        (r.error instanceof HeartwireError &&
          r.payload !== undefined &&
          (r.error.code === 'CONNECTION_CLOSED' ||
            (r.error.code === 'MESSAGE_TOO_LARGE' && r.payload.length > this.#maxMessage[side])));
      if (!ok) fail(`rejected ${where}: ${r.action} refused at t=${r.at}: ${r.error.message}`);
    }
    this.#rejectedChecked[side] = me.rejected.length;

    // I5 while open: the peer has consumed at least what we count as consumed.
    if (me.closedInfo === undefined) {
      const consumed = engine.deliveryReport().consumed;
      const actual = this.peerConsumed(side);
      if (consumed > actual) {
        fail(
          `I5 ${where}: deliveryReport().consumed = ${consumed}, but the peer application consumed ${actual}`,
        );
      }
    }

    const info = me.closedInfo;
    if (info === undefined) return;
    if (!this.#closeChecked[side]) {
      this.#closeChecked[side] = true;
      this.#checkClose(side, info);
    }
    // I5 after close: nothing reported as not processed ever reaches the peer application.
    const r = info.delivery;
    if (peer.delivered.length > r.notProcessedFrom - 1) {
      fail(
        `I5 ${where}: the ${other(side)} application received message ${peer.delivered.length}, ` +
          `but ${side} reported messages ≥ ${r.notProcessedFrom} as not processed`,
      );
    }
  }

  #checkClose(side: Side, info: CloseInfo): void {
    const me = this.side(side);
    const where = `${side} closed at t=${me.closedAt} (${errorText(info)})`;
    if (!info.clean) {
      const code = info.error?.code ?? '(no error)';
      if (!this.#allowed.has(code)) fail(`unexpected close, ${where}`);
    } else if (info.error !== undefined) {
      fail(`clean close with an error, ${where}`);
    }
    const r = info.delivery;
    const sent = me.sent;
    const consumedByPeer = this.peerConsumed(side);
    const text = `queued ${r.queued} consumed ${r.consumed} notProcessedFrom ${r.notProcessedFrom}`;
    if (r.queued !== sent.length)
      fail(`I5 ${where}: report ${text}, but ${sent.length} messages were accepted`);
    if (!(r.consumed >= 0 && r.consumed < r.notProcessedFrom && r.notProcessedFrom <= r.queued + 1)) {
      fail(`I5 ${where}: inconsistent report ${text}`);
    }
    if (r.consumed > consumedByPeer) {
      fail(`I5 ${where}: report ${text}, but the peer application consumed only ${consumedByPeer}`);
    }
    if (r.unknown.length !== r.notProcessedFrom - r.consumed - 1) {
      fail(`I5 ${where}: ${r.unknown.length} unknown payloads for ${text}`);
    }
    if (r.notProcessed.length !== r.queued - r.notProcessedFrom + 1) {
      fail(`I5 ${where}: ${r.notProcessed.length} not-processed payloads for ${text}`);
    }
    r.unknown.forEach((p, i) => {
      if (!sameBytes(p, sent[r.consumed + i]))
        fail(`I5 ${where}: unknown[${i}] is not message ${r.consumed + i + 1}`);
    });
    r.notProcessed.forEach((p, i) => {
      const seq = r.notProcessedFrom + i;
      if (!sameBytes(p, sent[seq - 1])) fail(`I5 ${where}: notProcessed[${i}] is not message ${seq}`);
    });
    if (info.clean && r.consumed !== r.queued) fail(`I5 ${where}: clean close but ${text}`);
  }

  /** A short summary of the run's end, for failure messages. */
  summary(): string {
    const lines: string[] = [];
    for (const side of SIDES) {
      const s = this.side(side);
      const e = this.engines[side];
      const st = e.stats(this.now);
      const info = s.closedInfo;
      lines.push(
        `${side}: state ${e.state}, sent ${s.sent.length} (outbox ${s.outbox.length}), delivered ${s.delivered.length}` +
          `${s.consumerPaused ? ' (consumer paused)' : ''}, held ${e.heldBytes} (window ${e.receiveWindow}, ` +
          `largest ${this.maxWindowSeen[side]}, limit granted ${e.creditLimitGranted}, receive credit ${st.receiveCredit}), ` +
          `send credit ${st.sendCredit}, queued ${st.queuedBytes} B` +
          (s.crashed ? `, crashed (${s.crashed.mode}) at ${s.crashed.at}` : '') +
          (info ? `, closed at ${s.closedAt}: ${errorText(info)} consumed ${info.delivery.consumed}` : ''),
      );
    }
    return lines.join('\n');
  }
}

// ------------------------------------------------------------------------------------------------
// Running properties with traces

const TRACE_LINES = Number(process.env.HEARTWIRE_TRACE_LINES) || 150;

/** An error carrying the failing run's trace. */
export class TracedError extends Error {
  override name = 'TracedError';
  constructor(
    message: string,
    readonly trace: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/**
 * What the runs of one property covered, printed when `HEARTWIRE_MODEL_STATS` is set (to see
 * that the schedules reach the interesting states: full windows, credit stalls, closes of every kind).
 */
export class CoverageStats {
  runs = 0;
  checks = 0;
  virtualMs = 0;
  messages = 0;
  bytesDelivered = 0;
  /** Runs in which some side held ≥ 90 % of its window. */
  fullWindowRuns = 0;
  /** Runs with a credit stall ≥ the idle timeout. */
  longCreditStallRuns = 0;
  readonly outcomes = new Map<string, number>();

  constructor(readonly name: string) {}

  record(model: Model): void {
    this.runs++;
    this.checks += model.checks;
    this.virtualMs += model.now;
    let full = false;
    let stalled = false;
    for (const side of SIDES) {
      const s = model.side(side);
      this.messages += s.sent.length;
      for (const d of s.delivered) this.bytesDelivered += d.payload.length;
      if (model.maxHeldRatio[side] >= 0.9) full = true;
      if (model.engines[side].stats(model.now).creditBlockedMs >= model.config[side].idleTimeoutMs!)
        stalled = true;
      const info = s.closedInfo;
      const key = `${side}: ${
        s.crashed
          ? `crashed(${s.crashed.mode})`
          : info === undefined
            ? 'open'
            : info.clean
              ? 'clean'
              : (info.error?.code ?? '?')
      }`;
      this.outcomes.set(key, (this.outcomes.get(key) ?? 0) + 1);
    }
    if (full) this.fullWindowRuns++;
    if (stalled) this.longCreditStallRuns++;
  }

  print(): void {
    if (!process.env.HEARTWIRE_MODEL_STATS) return;
    const outcomes = [...this.outcomes.entries()].sort().map(([k, v]) => `${k} ×${v}`);
    console.log(
      `      [${this.name}] ${this.runs} runs, ${this.checks} checks, ${(this.virtualMs / 1000).toFixed(0)} s virtual, ` +
        `${this.messages} messages, ${(this.bytesDelivered / 1e6).toFixed(1)} MB delivered, ` +
        `window ≥ 90 % full in ${this.fullWindowRuns} runs, credit stall ≥ T in ${this.longCreditStallRuns} runs\n` +
        `      outcomes: ${outcomes.join(', ')}`,
    );
  }
}

/** Runs `body` against a fresh model; a failure carries the summary and the trace of the run. */
export function runModel(
  config: ModelConfig,
  options: ModelOptions,
  body: (model: Model) => void,
  stats?: CoverageStats,
): void {
  const model = new Model(config, options);
  try {
    body(model);
    stats?.record(model);
  } catch (e) {
    // An invariant failure explains itself; anything else (a crash in the engine, the simulation
    // or this model) needs its stack.
    const message =
      e instanceof InvariantError
        ? `${e.name}: ${e.message}`
        : e instanceof Error
          ? String(e.stack)
          : String(e);
    const trace = model.net.formatTrace();
    throw new TracedError(
      `${message}\n--- state at t=${model.now}\n${model.summary()}\n--- last ${TRACE_LINES} trace lines\n` +
        model.net.formatTrace(TRACE_LINES),
      trace,
      { cause: e },
    );
  }
}

function safeStringify(value: unknown, max = 6000): string {
  let text: string;
  try {
    text = fc.stringify(value);
  } catch {
    text = String(value);
  }
  return text.length > max ? `${text.slice(0, max)}… (${text.length} chars)` : text;
}

/**
 * `fc.check` with the run count of {@link propertyRuns}; on failure, throws an error with the
 * seed and path to replay (`HEARTWIRE_PROPERTY_SEED`/`HEARTWIRE_PROPERTY_PATH`, or
 * `fc.assert(…, { seed, path, endOnFailure: true })`), the counterexample, the error with the
 * tail of the trace, and the file holding the full trace.
 */
export function checkProperty<Ts>(
  name: string,
  property: fc.IProperty<Ts>,
  runs: number,
  stats?: CoverageStats,
): void {
  const seedEnv = process.env.HEARTWIRE_PROPERTY_SEED;
  const pathEnv = process.env.HEARTWIRE_PROPERTY_PATH;
  const params: fc.Parameters<Ts> = { numRuns: runs };
  if (seedEnv !== undefined && seedEnv !== '') params.seed = Number(seedEnv);
  if (pathEnv !== undefined && pathEnv !== '') {
    params.path = pathEnv;
    params.endOnFailure = true;
  }
  const details = fc.check(property, params);
  if (!details.failed) {
    stats?.print();
    return;
  }
  const error = details.errorInstance;
  let traceFile = '';
  if (error instanceof TracedError) {
    traceFile = join(tmpdir(), `heartwire-model-${name.replace(/[^a-z0-9]+/gi, '-')}-${details.seed}.trace`);
    try {
      writeFileSync(traceFile, error.trace);
    } catch {
      traceFile = '(could not write the trace file)';
    }
  }
  const message = [
    `Property "${name}" failed after ${details.numRuns} run(s) and ${details.numShrinks} shrink(s).`,
    `Replay: HEARTWIRE_PROPERTY_SEED=${details.seed} HEARTWIRE_PROPERTY_PATH="${details.counterexamplePath}" ` +
      `npx mocha --no-config --node-option import=tsx --extension ts --timeout 0 test/protocol/model.test.ts -g "${name}"`,
    `   (or fc.assert(property, { seed: ${details.seed}, path: "${details.counterexamplePath}", endOnFailure: true }))`,
    details.interrupted ? 'The run was interrupted.' : '',
    `Counterexample: ${safeStringify(details.counterexample)}`,
    traceFile ? `Full trace: ${traceFile}` : '',
    `Error: ${error instanceof Error ? error.message : safeStringify(error)}`,
  ]
    .filter((l) => l !== '')
    .join('\n');
  throw new Error(message);
}
