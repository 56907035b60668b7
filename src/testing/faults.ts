/**
 * fast-check arbitraries for fault schedules: random sequences of application actions, time
 * steps and network faults to apply to a {@link SimulatedNetwork}, for property tests.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { Engine } from 'heartwire';
 * import { SimulatedNetwork, arbitraryFaultSchedule, runFaultSchedule } from 'heartwire/testing';
 *
 * // Whatever the schedule, each side's engine ends closed (or crashed) within two minutes, and
 * // every message the server consumed was sent by the client, in order.
 * fc.assert(
 *   fc.property(arbitraryFaultSchedule({ maxSteps: 20 }), fc.integer(), (steps, seed) => {
 *     const net = new SimulatedNetwork({
 *       client: new Engine({ role: 'client', seed }),
 *       server: new Engine({ role: 'server', seed: seed + 1 }),
 *       seed,
 *     });
 *     net.start();
 *     try {
 *       runFaultSchedule(net, steps);
 *       net.close();
 *       if (!net.runUntilClosed(120_000)) throw new Error('still open after 120 s');
 *       net.server.delivered.forEach((m, i) => {
 *         const sent = net.client.sent[i];
 *         if (sent === undefined || m.payload.join() !== sent.join()) throw new Error(`message ${i + 1} differs`);
 *       });
 *     } catch (e) {
 *       throw new Error(`${String(e)}\n${net.formatTrace(200)}`, { cause: e });
 *     }
 *   }),
 *   { numRuns: 20 },
 * );
 * console.log('ok'); // → ok
 * ```
 * @module
 */
import fc from 'fast-check';
import type { CrashMode, PartitionDirection, PathParams, Side, SimulatedNetwork } from './simnet.js';

/** One step of a fault schedule. Steps take no time except `advance` (and `partition` with `healAfterMs`, which sets a timer). */
export type FaultStep =
  /** Let `ms` of virtual time pass. */
  | { kind: 'advance'; ms: number }
  /** The application of `side` sends one message of `bytes` bytes (see {@link faultPayload}). */
  | { kind: 'send'; side: Side; bytes: number }
  /** The application of `side` stops reading. */
  | { kind: 'pause-consumer'; side: Side }
  /** The application of `side` reads again. */
  | { kind: 'resume-consumer'; side: Side }
  /** Silent partition; healed after `healAfterMs` if given, otherwise only by a `heal` step. */
  | { kind: 'partition'; direction: PartitionDirection; healAfterMs?: number }
  /** End a partition. */
  | { kind: 'heal'; direction: PartitionDirection }
  /** `side` crashes (see {@link CrashMode}). */
  | { kind: 'crash'; side: Side; notifyPeer: CrashMode }
  /** Change latency and/or bandwidth of one direction (named by its sender) or both. */
  | { kind: 'set-path'; from: Side | 'both'; latencyMs?: number; bandwidthBytesPerMs?: number }
  /** The client application closes. */
  | { kind: 'close' }
  /** The server application goes away with a grace period. */
  | { kind: 'go-away'; graceMs: number }
  /** Client close and server GOAWAY at the same instant (they cross on the wire). */
  | { kind: 'close-and-go-away'; graceMs: number };

/** The kinds of {@link FaultStep}. */
export type FaultStepKind = FaultStep['kind'];

/** Options of {@link arbitraryFaultStep} and {@link arbitraryFaultSchedule}. */
export interface FaultScheduleOptions {
  /** Longest schedule. Default 40. */
  maxSteps?: number;
  /** Longest `advance` step, ms. Default 3000. */
  maxAdvanceMs?: number;
  /** Largest message of a `send` step, bytes. Default 4096. */
  maxMessageBytes?: number;
  /** Largest latency of a `set-path` step, ms. Default 500. */
  maxLatencyMs?: number;
  /** Bandwidth range of a `set-path` step, bytes/ms. Default [1, 10 000]. */
  bandwidthBytesPerMs?: readonly [number, number];
  /** Longest automatic heal delay of a `partition` step, ms. Default 10 000. */
  maxPartitionMs?: number;
  /** Longest grace of `go-away` steps, ms. Default 10 000. */
  maxGraceMs?: number;
  /**
   * Relative weight of each step kind; 0 removes a kind. Defaults: advance 6, send 6,
   * pause/resume-consumer 1 each, partition 1, heal 1, crash 0.2, set-path 1, close 0.5,
   * go-away 0.5, close-and-go-away 0.2.
   */
  weights?: Partial<Record<FaultStepKind, number>>;
}

const DEFAULT_WEIGHTS: Record<FaultStepKind, number> = {
  advance: 6,
  send: 6,
  'pause-consumer': 1,
  'resume-consumer': 1,
  partition: 1,
  heal: 1,
  crash: 0.2,
  'set-path': 1,
  close: 0.5,
  'go-away': 0.5,
  'close-and-go-away': 0.2,
};

const sideArb: fc.Arbitrary<Side> = fc.constantFrom('client', 'server');
const directionArb: fc.Arbitrary<PartitionDirection> = fc.constantFrom(
  'both',
  'client-to-server',
  'server-to-client',
);

/** Arbitrary single {@link FaultStep}. */
export function arbitraryFaultStep(options: FaultScheduleOptions = {}): fc.Arbitrary<FaultStep> {
  const maxLatency = options.maxLatencyMs ?? 500;
  const [minBw, maxBw] = options.bandwidthBytesPerMs ?? [1, 10_000];
  const grace = fc.integer({ min: 0, max: options.maxGraceMs ?? 10_000 });
  const byKind: Record<FaultStepKind, fc.Arbitrary<FaultStep>> = {
    advance: fc.record({
      kind: fc.constant('advance' as const),
      ms: fc.oneof(
        fc.integer({ min: 0, max: 50 }),
        fc.integer({ min: 0, max: options.maxAdvanceMs ?? 3000 }),
      ),
    }),
    send: fc.record({
      kind: fc.constant('send' as const),
      side: sideArb,
      bytes: fc.oneof(
        fc.integer({ min: 0, max: 64 }),
        fc.integer({ min: 0, max: options.maxMessageBytes ?? 4096 }),
      ),
    }),
    'pause-consumer': fc.record({ kind: fc.constant('pause-consumer' as const), side: sideArb }),
    'resume-consumer': fc.record({ kind: fc.constant('resume-consumer' as const), side: sideArb }),
    partition: fc.record(
      {
        kind: fc.constant('partition' as const),
        direction: directionArb,
        healAfterMs: fc.integer({ min: 0, max: options.maxPartitionMs ?? 10_000 }),
      },
      { requiredKeys: ['kind', 'direction'] },
    ),
    heal: fc.record({ kind: fc.constant('heal' as const), direction: directionArb }),
    crash: fc.record({
      kind: fc.constant('crash' as const),
      side: sideArb,
      notifyPeer: fc.constantFrom<CrashMode>('none', 'fin', 'reset'),
    }),
    'set-path': fc.record(
      {
        kind: fc.constant('set-path' as const),
        from: fc.constantFrom<Side | 'both'>('client', 'server', 'both'),
        latencyMs: fc.integer({ min: 0, max: maxLatency }),
        bandwidthBytesPerMs: fc.integer({ min: minBw, max: maxBw }),
      },
      { requiredKeys: ['kind', 'from'] },
    ),
    close: fc.constant({ kind: 'close' as const }),
    'go-away': fc.record({ kind: fc.constant('go-away' as const), graceMs: grace }),
    'close-and-go-away': fc.record({ kind: fc.constant('close-and-go-away' as const), graceMs: grace }),
  };
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  const choices = (Object.keys(byKind) as FaultStepKind[])
    .filter((kind) => weights[kind] > 0)
    .map((kind) => ({ arbitrary: byKind[kind], weight: Math.max(1, Math.round(weights[kind] * 10)) }));
  if (choices.length === 0) throw new RangeError('arbitraryFaultStep: every weight is 0');
  return fc.oneof(...choices);
}

/** Arbitrary fault schedule: a list of up to `maxSteps` {@link FaultStep}s. */
export function arbitraryFaultSchedule(options: FaultScheduleOptions = {}): fc.Arbitrary<FaultStep[]> {
  return fc.array(arbitraryFaultStep(options), { maxLength: options.maxSteps ?? 40 });
}

/** Options of {@link arbitraryPathParams}. */
export interface PathParamsOptions {
  /** Default 200. */
  maxLatencyMs?: number;
  /** Default [1, 10 000]. */
  bandwidthBytesPerMs?: readonly [number, number];
  /** Default [1024, 262 144]. */
  sendBufferBytes?: readonly [number, number];
  /** Default 4096. */
  maxChunkBytes?: number;
}

/** Arbitrary {@link PathParams} for the initial state of a path. */
export function arbitraryPathParams(options: PathParamsOptions = {}): fc.Arbitrary<PathParams> {
  const [minBw, maxBw] = options.bandwidthBytesPerMs ?? [1, 10_000];
  const [minBuf, maxBuf] = options.sendBufferBytes ?? [1024, 262_144];
  return fc.record({
    latencyMs: fc.integer({ min: 0, max: options.maxLatencyMs ?? 200 }),
    bandwidthBytesPerMs: fc.oneof(fc.integer({ min: minBw, max: maxBw }), fc.constant(Infinity)),
    sendBufferBytes: fc.integer({ min: minBuf, max: maxBuf }),
    maxChunkBytes: fc.integer({ min: 1, max: options.maxChunkBytes ?? 4096 }),
  });
}

/**
 * The payload a `send` step sends: `bytes` bytes that identify the message. The first bytes
 * are the side (0 client, 1 server) and the index of the send call (u32, big-endian), as far
 * as they fit; the rest is a pattern derived from both.
 */
export function faultPayload(side: Side, index: number, bytes: number): Uint8Array {
  const out = new Uint8Array(bytes);
  const tag = side === 'client' ? 0 : 1;
  const header = [tag, (index >>> 24) & 0xff, (index >>> 16) & 0xff, (index >>> 8) & 0xff, index & 0xff];
  for (let i = 0; i < bytes; i++) out[i] = i < header.length ? header[i] : (index * 31 + tag * 17 + i) & 0xff;
  return out;
}

/** A one-line description of a step, as written to the trace by {@link applyFaultStep}. */
export function describeFaultStep(step: FaultStep): string {
  const { kind, ...rest } = step;
  const args = Object.entries(rest)
    .map(([k, v]) => `${k}=${String(v)}`)
    .join(' ');
  return args ? `${kind} ${args}` : kind;
}

/** Applies one step to `net` (a note in its trace first). Steps on a crashed side are recorded and ignored. */
export function applyFaultStep(net: SimulatedNetwork, step: FaultStep): void {
  net.note(`step: ${describeFaultStep(step)}`);
  switch (step.kind) {
    case 'advance':
      net.advanceBy(step.ms);
      break;
    case 'send':
      net.send(step.side, faultPayload(step.side, net.side(step.side).sendCalls, step.bytes));
      break;
    case 'pause-consumer':
      net.pauseConsumer(step.side);
      break;
    case 'resume-consumer':
      net.resumeConsumer(step.side);
      break;
    case 'partition': {
      net.partition(step.direction);
      const direction = step.direction;
      if (step.healAfterMs !== undefined)
        net.clock.setTimer(net.now + step.healAfterMs, () => net.heal(direction));
      break;
    }
    case 'heal':
      net.heal(step.direction);
      break;
    case 'crash':
      net.crash(step.side, { notifyPeer: step.notifyPeer });
      break;
    case 'set-path': {
      const params: Partial<PathParams> = {};
      if (step.latencyMs !== undefined) params.latencyMs = step.latencyMs;
      if (step.bandwidthBytesPerMs !== undefined) params.bandwidthBytesPerMs = step.bandwidthBytesPerMs;
      net.setPath(step.from, params);
      break;
    }
    case 'close':
      net.close();
      break;
    case 'go-away':
      net.goAway({ graceMs: step.graceMs });
      break;
    case 'close-and-go-away':
      net.close();
      net.goAway({ graceMs: step.graceMs });
      break;
  }
}

/** Applies every step in order. */
export function runFaultSchedule(net: SimulatedNetwork, steps: readonly FaultStep[]): void {
  for (const step of steps) applyFaultStep(net, step);
}
