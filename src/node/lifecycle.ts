/**
 * A server's connection lifecycle: a maximum connection age (with jitter and a grace period) so
 * that long-lived connections rebalance across a fleet behind a load balancer, and load shedding
 * above a target connection count. Both end connections with GOAWAY, so nothing in flight is lost.
 * Timers live in the process-wide timer wheel (testable on a virtual clock).
 * @module
 */
import { GoAwayReason } from '../protocol/frames.js';
import { WheelTimer, sharedWheel } from './timer-wheel.js';
import type { TimerWheel } from './timer-wheel.js';

/** Lifecycle options of a server (part of `ServerOptions`). Times in ms. */
export interface LifecycleOptions {
  /**
   * End each connection with GOAWAY `MAX_AGE` once it has been open this long, ±10 % at random
   * (so that a fleet's clients do not reconnect in lockstep). Default: no maximum age.
   */
  maxConnectionAge?: number;
  /**
   * Grace of the `MAX_AGE` GOAWAY: the client finishes what is in flight and moves; the server
   * force-closes the connection when the grace expires. Default: `defaultGrace` (5 000).
   */
  maxConnectionAgeGrace?: number;
  /**
   * Load shedding: while more than this many connections are open, each connection that opens
   * gets GOAWAY `OVERLOADED` at once, with `retry_after_ms` = `overloadRetryAfter` (clients
   * honouring it try again later or elsewhere). Unlike `maxConnections`, which refuses at the
   * door with ERROR `REFUSED`, the client learns when to come back. Default: no target.
   */
  targetConnections?: number;
  /** `retry_after_ms` of the `OVERLOADED` GOAWAY. Default 1 000. */
  overloadRetryAfter?: number;
}

/** What the lifecycle needs of a connection. */
export interface Endable {
  end(options: {
    grace?: number;
    reason?: number;
    message?: string;
    retryAfter?: number;
    alternatives?: readonly string[];
  }): Promise<unknown>;
}

/** Jitter of `maxConnectionAge`: ±10 %. */
export const AGE_JITTER = 0.1;
/** The age timer may fire this late (ms): it shares the wheel's coarsest buckets. */
const AGE_SLACK_MS = 64;
/** Longest age or grace accepted: Node timers overflow beyond 2^31 − 1 ms. */
const MAX_MS = 2 ** 31 - 1;

function check(name: string, value: number | undefined, min: number): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isFinite(value) || value < min || value > MAX_MS)
    throw new RangeError(`heartwire: ${name} must be a number in [${min}, ${MAX_MS}], got ${String(value)}`);
}

/** Validate lifecycle options synchronously (throws `RangeError`). */
export function validateLifecycleOptions(options: LifecycleOptions): void {
  check('maxConnectionAge', options.maxConnectionAge, 1);
  check('maxConnectionAgeGrace', options.maxConnectionAgeGrace, 0);
  check('targetConnections', options.targetConnections, 0);
  check('overloadRetryAfter', options.overloadRetryAfter, 0);
}

/**
 * Tracks a server's open connections: arms each one's age timer and sheds connections above the
 * target. `opened()` when a connection completes its handshake, `closed()` when it closes,
 * `stop()` when the server closes (its own GOAWAY then governs).
 */
export class ConnectionLifecycle {
  private readonly open = new Map<Endable, WheelTimer | undefined>();
  private stopped = false;
  /** Connections ended for their age, and shed, since the start. */
  readonly counts = { aged: 0, shed: 0 };

  constructor(
    private readonly options: LifecycleOptions & {
      defaultGrace?: number;
      /** The server's alternatives now, for the GOAWAYs sent here (SPEC.md §9.5). */
      alternatives?: () => readonly string[];
    },
    private readonly wheel: TimerWheel = sharedWheel(),
    private readonly random: () => number = Math.random,
  ) {
    validateLifecycleOptions(options);
  }

  /** Connections open now (handshake completed, not closed). */
  get size(): number {
    return this.open.size;
  }

  /** `connection` completed its handshake: shed it, or arm its age timer. */
  opened(connection: Endable): void {
    if (this.stopped) return;
    const { targetConnections, maxConnectionAge } = this.options;
    if (targetConnections !== undefined && this.open.size >= targetConnections) {
      this.counts.shed++;
      this.open.set(connection, undefined);
      connection
        .end({
          grace: this.options.defaultGrace,
          reason: GoAwayReason.OVERLOADED,
          retryAfter: this.options.overloadRetryAfter ?? 1000,
          message: `above the target of ${targetConnections} connections`,
          alternatives: this.options.alternatives?.(),
        })
        .catch(() => {});
      return;
    }
    if (maxConnectionAge === undefined) {
      this.open.set(connection, undefined);
      return;
    }
    const age = maxConnectionAge * (1 - AGE_JITTER + 2 * AGE_JITTER * this.random());
    const timer = new WheelTimer(() => this.expire(connection));
    this.open.set(connection, timer);
    this.wheel.schedule(timer, this.wheel.now() + age, AGE_SLACK_MS);
  }

  /** `connection` closed. */
  closed(connection: Endable): void {
    const timer = this.open.get(connection);
    if (timer !== undefined) this.wheel.cancel(timer);
    this.open.delete(connection);
  }

  /** The server is closing: no more age GOAWAYs or shedding. */
  stop(): void {
    this.stopped = true;
    for (const timer of this.open.values()) if (timer !== undefined) this.wheel.cancel(timer);
  }

  private expire(connection: Endable): void {
    if (this.stopped || !this.open.has(connection)) return;
    this.open.set(connection, undefined);
    this.counts.aged++;
    connection
      .end({
        grace: this.options.maxConnectionAgeGrace ?? this.options.defaultGrace,
        reason: GoAwayReason.MAX_AGE,
        message: 'maximum connection age reached',
        alternatives: this.options.alternatives?.(),
      })
      .catch(() => {});
  }
}
