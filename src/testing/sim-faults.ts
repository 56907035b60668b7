/**
 * Fault schedules for a {@link Simulation}, as fast-check arbitraries: partitions (both ways or
 * one way), path changes (latency, bandwidth, segmentation), and application-level faults the
 * test gives meaning to (server crashes, graceful restarts with GOAWAY, stalled consumers).
 * fast-check shrinks a failing schedule to a minimal one; {@link describeSimFaults} prints it.
 *
 * @example
 * ```ts
 * import fc from 'fast-check';
 * import { Simulation, arbitrarySimFaults, describeSimFaults, scheduleSimFaults } from 'heartwire/testing';
 * import type { Server } from 'heartwire';
 *
 * // A client that reconnects until its message is echoed, whatever happens to the server.
 * await fc.assert(
 *   fc.asyncProperty(fc.integer(), arbitrarySimFaults({ maxFaults: 4, horizonMs: 2000, maxDurationMs: 3000 }), async (seed, faults) => {
 *     const sim = new Simulation({ seed });
 *     const start = async (): Promise<Server> => {
 *       const s = sim.createServer({}, (conn) => conn.handle(async (m) => void (await conn.send(m))));
 *       await s.listen(7000);
 *       return s;
 *     };
 *     await sim.run(async () => {
 *       let server: Server | undefined = await start();
 *       scheduleSimFaults(sim, faults, {
 *         crash: async ({ mode, downMs }) => {
 *           if (server === undefined) return;
 *           sim.crash(server, mode);
 *           server = undefined;
 *           await sim.sleep(downMs);
 *           server = await start();
 *         },
 *         restart: async ({ graceMs }) => {
 *           if (server === undefined) return;
 *           void server.close({ grace: graceMs });
 *           server = await start();
 *         },
 *       });
 *       for (;;) {
 *         try {
 *           const conn = await sim.connect({ port: 7000, idleTimeout: 2000, connectTimeout: 1000 });
 *           await conn.send('ping');
 *           for await (const reply of conn) if (reply.length === 4) return void (await conn.end());
 *         } catch {
 *           await sim.sleep(200); // failed or went away: try again
 *         }
 *       }
 *     }).catch((error: unknown) => {
 *       throw new Error(`seed ${seed}:\n${describeSimFaults(faults)}`, { cause: error });
 *     });
 *   }),
 *   { numRuns: 20 },
 * );
 * console.log('echoed every time'); // → echoed every time
 * ```
 * @module
 */
import fc from 'fast-check';
import type { CrashMode, PartitionDirection } from './path.js';
import type { Simulation } from './simulation.js';

/** One fault. `partition` and `path` are applied by the simulation; the others by the test's handlers. */
export type SimFault =
  /** Every connection is partitioned in `direction` (one-way loss unless `both`) for `forMs`. */
  | { kind: 'partition'; direction: PartitionDirection; forMs: number }
  /** Latency, bandwidth and largest segment of every connection change (both directions). */
  | { kind: 'path'; latencyMs: number; bandwidthBytesPerMs: number; maxChunkBytes: number }
  /** The server crashes (see {@link Simulation.crash}) and is down for `downMs`. */
  | { kind: 'crash'; mode: CrashMode; downMs: number }
  /** The server restarts gracefully: GOAWAY with `graceMs`, then a new server. */
  | { kind: 'restart'; graceMs: number }
  /** A consumer stops reading for `forMs`. */
  | { kind: 'stall'; forMs: number };

/** A fault and when it happens, in ms of virtual time after {@link scheduleSimFaults}. */
export interface TimedSimFault {
  atMs: number;
  fault: SimFault;
}

/** Options of {@link arbitrarySimFaults}. */
export interface SimFaultOptions {
  /** Most faults in a schedule. Default 8. */
  maxFaults?: number;
  /** Faults start within this many ms. Default 60 000. */
  horizonMs?: number;
  /** Longest partition, downtime, grace or stall, ms. Default 20 000. */
  maxDurationMs?: number;
  /** Largest latency of a `path` fault, ms. Default 300. */
  maxLatencyMs?: number;
  /** Relative weight of each kind; 0 leaves a kind out. Default 1 each. */
  weights?: Partial<Record<SimFault['kind'], number>>;
}

/** A fault schedule: up to `maxFaults` faults within `horizonMs`, sorted by time. */
export function arbitrarySimFaults(options: SimFaultOptions = {}): fc.Arbitrary<TimedSimFault[]> {
  const maxDuration = options.maxDurationMs ?? 20_000;
  const duration = fc.integer({ min: 1, max: maxDuration });
  const weights = { partition: 1, path: 1, crash: 1, restart: 1, stall: 1, ...options.weights };
  const kinds: { weight: number; arbitrary: fc.Arbitrary<SimFault> }[] = [
    {
      weight: weights.partition,
      arbitrary: fc.record({
        kind: fc.constant('partition' as const),
        direction: fc.constantFrom<PartitionDirection>('both', 'client-to-server', 'server-to-client'),
        forMs: duration,
      }),
    },
    {
      weight: weights.path,
      arbitrary: fc.record({
        kind: fc.constant('path' as const),
        latencyMs: fc.integer({ min: 0, max: options.maxLatencyMs ?? 300 }),
        bandwidthBytesPerMs: fc.integer({ min: 1, max: 10_000 }),
        maxChunkBytes: fc.integer({ min: 1, max: 1460 }),
      }),
    },
    {
      weight: weights.crash,
      arbitrary: fc.record({
        kind: fc.constant('crash' as const),
        mode: fc.constantFrom<CrashMode>('reset', 'fin', 'none'),
        downMs: duration,
      }),
    },
    {
      weight: weights.restart,
      arbitrary: fc.record({
        kind: fc.constant('restart' as const),
        graceMs: fc.integer({ min: 0, max: maxDuration }),
      }),
    },
    { weight: weights.stall, arbitrary: fc.record({ kind: fc.constant('stall' as const), forMs: duration }) },
  ].filter((k) => k.weight > 0);
  if (kinds.length === 0) throw new RangeError('arbitrarySimFaults: every kind has weight 0');
  const fault = fc.oneof(
    ...kinds.map((k) => ({ weight: Math.max(1, Math.round(k.weight * 10)), arbitrary: k.arbitrary })),
  );
  const timed = fc.record({ atMs: fc.integer({ min: 0, max: options.horizonMs ?? 60_000 }), fault });
  return fc
    .array(timed, { maxLength: options.maxFaults ?? 8 })
    .map((faults) => [...faults].sort((a, b) => a.atMs - b.atMs));
}

/** One line per fault, e.g. `at 1200 ms: partition client-to-server for 5000 ms`. */
export function describeSimFaults(faults: readonly TimedSimFault[]): string {
  if (faults.length === 0) return '(no faults)';
  return faults
    .map(({ atMs, fault }) => {
      const { kind, ...rest } = fault;
      const detail = Object.entries(rest)
        .map(([k, v]) => `${k}=${String(v)}`)
        .join(' ');
      return `at ${atMs} ms: ${kind} ${detail}`;
    })
    .join('\n');
}

/** What the test does for the application-level faults. A fault without a handler is skipped. */
export interface SimFaultHandlers {
  crash?: (fault: Extract<SimFault, { kind: 'crash' }>) => unknown;
  restart?: (fault: Extract<SimFault, { kind: 'restart' }>) => unknown;
  stall?: (fault: Extract<SimFault, { kind: 'stall' }>) => unknown;
}

/**
 * Schedules `faults` on `sim`, from now: partitions (healed after `forMs`, or when the last
 * overlapping partition of the same direction ends) and path changes are
 * applied by the simulation, the others by `handlers` (a returned promise that rejects fails
 * the run). Returns the time by which every partition has healed.
 */
export function scheduleSimFaults(
  sim: Simulation,
  faults: readonly TimedSimFault[],
  handlers: SimFaultHandlers = {},
): number {
  const start = sim.now;
  let quietAt = start;
  // Partitions may overlap: a direction heals only when the last partition holding it ends (a
  // short partition inside a long one must not end the long one early).
  const held: Record<Exclude<PartitionDirection, 'both'>, number> = {
    'client-to-server': 0,
    'server-to-client': 0,
  };
  const directions = (d: PartitionDirection): Exclude<PartitionDirection, 'both'>[] =>
    d === 'both' ? ['client-to-server', 'server-to-client'] : [d];
  for (const { atMs, fault } of faults) {
    if (fault.kind === 'partition') quietAt = Math.max(quietAt, start + atMs + fault.forMs);
    sim.setTimeout(() => {
      sim.note(`fault ${describeSimFaults([{ atMs, fault }])}`);
      const fail = (error: unknown): void => sim.fail(error);
      try {
        switch (fault.kind) {
          case 'partition':
            for (const d of directions(fault.direction)) held[d]++;
            sim.partition(fault.direction);
            sim.setTimeout(() => {
              for (const d of directions(fault.direction)) if (--held[d] === 0) sim.heal(d);
            }, fault.forMs);
            break;
          case 'path':
            sim.setPath({
              latencyMs: fault.latencyMs,
              bandwidthBytesPerMs: fault.bandwidthBytesPerMs,
              maxChunkBytes: fault.maxChunkBytes,
            });
            break;
          case 'crash':
            void Promise.resolve(handlers.crash?.(fault)).catch(fail);
            break;
          case 'restart':
            void Promise.resolve(handlers.restart?.(fault)).catch(fail);
            break;
          case 'stall':
            void Promise.resolve(handlers.stall?.(fault)).catch(fail);
            break;
        }
      } catch (error) {
        fail(error);
      }
    }, atMs);
  }
  return quietAt;
}
