/**
 * The engine-level adapter loop of the simulations: what a transport adapter does for a sans-IO
 * engine after every input — take the bytes it wants to send (as far as the transport has room),
 * report the transport's backlog, dispatch its events, repeat until it is quiet, then keep its
 * one timer at `nextDeadline()`. {@link SimulatedNetwork} drives its two engines with it, and so
 * do the engine-level test helpers; the Node `Connection` is the same loop over a socket.
 * @module
 */
import type { Engine } from '../protocol/engine.js';
import type { EngineEvent } from '../protocol/types.js';
import type { TimerId, VirtualClock } from './clock.js';

/**
 * The engine methods the simulations call. A real {@link Engine} fits; so does any test double
 * with the same method signatures.
 */
export type SimEngine = Pick<
  Engine,
  | 'start'
  | 'receive'
  | 'receiveEnd'
  | 'transportFailed'
  | 'handleTimeout'
  | 'nextDeadline'
  | 'pollTransmit'
  | 'transmitBacklog'
  | 'pollEvent'
  | 'trySend'
  | 'read'
  | 'take'
  | 'release'
  | 'close'
  | 'goAway'
  | 'finish'
  | 'abort'
>;

/** The transport and application side of an {@link EngineDriver}. */
export interface DriverHost {
  /** Free room for DATA in the transport's send buffer (`maxDataBytes` of `pollTransmit`). */
  room(): number;
  /** Takes the bytes the engine produced; returns whether there were any. */
  write(chunks: Uint8Array[]): boolean;
  /** Bytes the transport holds unsent (reported with `transmitBacklog` when it changes). */
  backlog(): number;
  /** An engine event. A `closed` event stops the driver after this call. */
  event(event: EngineEvent): void;
  /** More work of the loop (for example an automatic `finish()`); returns whether it did any. */
  extra?(): boolean;
}

/** Options of an {@link EngineDriver}. */
export interface EngineDriverOptions {
  /** Name in errors. */
  name: string;
  /** How late the timer fires after the deadline, given the engine's `timerSlack`. Default 0. */
  late?: (slack: number) => number;
  /** The loop throws after this many passes without going quiet. Default 100 000. */
  maxPasses?: number;
}

/** Drives one engine: see the module documentation. */
export class EngineDriver {
  #started = false;
  #stopped = false;
  #pumping = false;
  #dirty = false;
  #reportedBacklog = 0;
  #timer: TimerId | undefined;
  #timerAt: number | undefined;
  /** Times the timer fired. */
  wakeups = 0;
  readonly #late: (slack: number) => number;
  readonly #maxPasses: number;

  constructor(
    readonly engine: SimEngine,
    private readonly clock: VirtualClock,
    private readonly host: DriverHost,
    private readonly options: EngineDriverOptions,
  ) {
    this.#late = options.late ?? (() => 0);
    this.#maxPasses = options.maxPasses ?? 100_000;
  }

  get started(): boolean {
    return this.#started;
  }

  /** Neither closed nor stopped. */
  get active(): boolean {
    return !this.#stopped;
  }

  /** `start(now)`, then the loop. */
  start(): void {
    if (this.#started) throw new Error(`${this.options.name}: already started`);
    this.#started = true;
    this.engine.start(this.clock.now);
    this.pump();
  }

  /** Never call the engine again (it closed, or its process died); the timer goes. */
  stop(): void {
    this.#stopped = true;
    this.cancelTimer();
  }

  /** Drains transmit and events after any input until the engine is quiet, then re-arms its timer. */
  pump(): void {
    if (!this.#started) return; // events and bytes wait for start()
    if (this.#pumping) {
      this.#dirty = true;
      return;
    }
    this.#pumping = true;
    try {
      for (let pass = 0; this.active; pass++) {
        if (pass > this.#maxPasses) throw new Error(`${this.options.name}: the engine never goes quiet`);
        this.#dirty = false;
        let progressed = this.#pull();
        progressed = this.#reportBacklog() || progressed;
        const engine = this.engine;
        for (let e = engine.pollEvent(); e !== undefined; e = this.active ? engine.pollEvent() : undefined) {
          progressed = true;
          this.host.event(e);
          if (e.type === 'closed') this.stop();
        }
        if (this.active && this.host.extra !== undefined) progressed = this.host.extra() || progressed;
        if (!progressed && !this.#dirty) break;
      }
      this.armTimer();
    } finally {
      this.#pumping = false;
    }
  }

  /** Takes bytes from the engine while the send buffer has room. Returns whether any came. */
  #pull(): boolean {
    for (let calls = 0; ; calls++) {
      if (calls > this.#maxPasses) throw new Error(`${this.options.name}: pollTransmit never runs dry`);
      if (!this.host.write(this.engine.pollTransmit(this.clock.now, this.host.room()))) return calls > 0;
    }
  }

  #reportBacklog(): boolean {
    const backlog = this.host.backlog();
    if (!this.active || backlog === this.#reportedBacklog) return false;
    this.#reportedBacklog = backlog;
    this.engine.transmitBacklog(this.clock.now, backlog);
    return true;
  }

  /** Keeps the one timer at `nextDeadline()` (plus the lateness), or none. */
  armTimer(): void {
    const deadline = this.active ? this.engine.nextDeadline() : undefined;
    if (deadline === this.#timerAt && (deadline === undefined || this.#timer !== undefined)) return;
    this.cancelTimer();
    if (deadline === undefined) return;
    this.#timerAt = deadline;
    const slack = (this.engine as { timerSlack?: number }).timerSlack ?? 0;
    this.#timer = this.clock.setTimer(deadline + this.#late(slack), () => {
      this.#timer = undefined;
      this.#timerAt = undefined;
      this.wakeups++;
      this.onTimer();
    });
  }

  /** What the timer does: `handleTimeout(now)`, then the loop. Replaceable (the network logs it). */
  onTimer: () => void = () => {
    this.engine.handleTimeout(this.clock.now);
    this.pump();
  };

  cancelTimer(): void {
    if (this.#timer !== undefined) this.clock.cancel(this.#timer);
    this.#timer = undefined;
    this.#timerAt = undefined;
  }
}
