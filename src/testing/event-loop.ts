/**
 * A virtual event loop: Node's `process.nextTick`, `setImmediate` and `setTimeout` on a
 * {@link VirtualClock}, so that a `Connection`, a `Server` and the application code using them
 * run on virtual time. One task runs per step; between steps the loop yields to the real event
 * loop (one `setImmediate`), so that every promise reaction a task caused has run before the next
 * task, as in Node. Time jumps to the next timer when nothing else is due. Deterministic as long
 * as the code under test takes time and timers only from the loop (not from Node's timers or I/O).
 * @module
 */
import { performance } from 'node:perf_hooks';
import type { Runtime } from '../node/runtime.js';
import { TimerWheel } from '../node/timer-wheel.js';
import { VirtualClock, type TimerId } from './clock.js';

/** A timer set with `Simulation.setTimeout()` (virtual time). */
export interface SimTimer {
  readonly id: TimerId;
}

/** Options of a {@link SimLoop}. */
export interface SimLoopOptions {
  /** The loop fails when virtual time would pass this (ms). Default 3 600 000 (one hour). */
  timeLimit?: number;
  /** Called once when a task throws or the time limit is reached; the loop stops. */
  onFailure: (error: Error) => void;
  /** Called each time the loop runs out of work: no task due and no timer set. */
  onIdle?: () => void;
}

const realTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** The virtual event loop of a simulation. */
export class SimLoop {
  readonly clock = new VirtualClock({ onTimerSet: () => this.#kick() });
  /** `nextTick` callbacks, all run in one step (microtasks follow them). */
  #ticks: (() => void)[] = [];
  /** `setImmediate` callbacks, one per step. */
  #immediates: (() => void)[] = [];
  #immediateHead = 0;
  #running = false;
  #stopped = false;
  #wake: (() => void) | undefined;
  readonly #timeLimit: number;
  readonly #onFailure: (error: Error) => void;
  readonly #onIdle: (() => void) | undefined;
  /** Times the loop has run out of work (see {@link idle}). */
  idleCount = 0;
  /** Steps run so far. */
  steps = 0;
  /** Real time spent running, ms. */
  realMs = 0;

  /** The runtime a `Connection` or `Server` runs on. */
  readonly runtime: Runtime;

  constructor(options: SimLoopOptions) {
    this.#timeLimit = options.timeLimit ?? 3_600_000;
    this.#onFailure = options.onFailure;
    this.#onIdle = options.onIdle;
    const wheel = new TimerWheel({
      now: () => this.clock.now,
      set: (delayMs, fn) => this.setTimeout(fn, delayMs),
      clear: (handle) => this.clearTimeout(handle as SimTimer),
    });
    this.runtime = {
      now: () => this.clock.now,
      nextTick: (fn) => this.nextTick(fn),
      setImmediate: (fn) => this.setImmediate(fn),
      setTimeout: (fn, ms) => this.setTimeout(fn, ms),
      clearTimeout: (handle) => this.clearTimeout(handle as SimTimer),
      wheel,
    };
  }

  /** Virtual time, ms. */
  get now(): number {
    return this.clock.now;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** True while the loop waits with no task due and no timer set: only a kick from outside wakes it. */
  get idle(): boolean {
    return this.#wake !== undefined;
  }

  /** Runs the loop if it is not running (a loop with nothing to do then goes {@link idle}). */
  start(): void {
    this.#kick();
  }

  nextTick(fn: () => void): void {
    this.#ticks.push(fn);
    this.#kick();
  }

  setImmediate(fn: () => void): void {
    this.#immediates.push(fn);
    this.#kick();
  }

  /** Calls `fn` after `ms` of virtual time. */
  setTimeout(fn: () => void, ms: number): SimTimer {
    const delay = Number.isFinite(ms) && ms > 0 ? ms : 0;
    return { id: this.clock.setTimer(this.clock.now + delay, fn) };
  }

  clearTimeout(timer: SimTimer | undefined): void {
    if (timer !== undefined) this.clock.cancel(timer.id);
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => this.setTimeout(resolve, ms));
  }

  /** Stops the loop for good: nothing runs any more. */
  stop(): void {
    this.#stopped = true;
    this.#wakeUp();
  }

  #kick(): void {
    if (this.#stopped) return;
    if (!this.#running) {
      this.#running = true;
      void this.#run();
    } else this.#wakeUp();
  }

  #wakeUp(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }

  async #run(): Promise<void> {
    for (;;) {
      // Every reaction of the last task (promise callbacks, the application's code) runs first.
      await realTurn();
      if (this.#stopped) return;
      const started = performance.now();
      let ran: boolean;
      try {
        ran = this.#step();
      } catch (error) {
        this.realMs += performance.now() - started;
        this.#fail(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      this.realMs += performance.now() - started;
      if (!ran) {
        if (this.#stopped) return;
        const woken = new Promise<void>((resolve) => (this.#wake = resolve));
        this.idleCount++;
        this.#onIdle?.();
        await woken;
      }
    }
  }

  /** Runs one task; false when none is due. */
  #step(): boolean {
    if (this.#ticks.length > 0) {
      const ticks = this.#ticks;
      this.#ticks = [];
      this.steps++;
      for (const tick of ticks) tick();
      return true;
    }
    if (this.#immediateHead < this.#immediates.length) {
      const fn = this.#immediates[this.#immediateHead]!;
      this.#immediates[this.#immediateHead++] = undefined as unknown as () => void;
      if (this.#immediateHead === this.#immediates.length) {
        this.#immediates = [];
        this.#immediateHead = 0;
      }
      this.steps++;
      fn();
      return true;
    }
    const next = this.clock.nextTimerAt();
    if (next === undefined) return false;
    if (next > this.#timeLimit) {
      this.#fail(
        new Error(
          `simulation time limit reached: a timer is due at ${next} ms, after timeLimit ${this.#timeLimit} ms (close the connections and servers, or raise timeLimit)`,
        ),
      );
      return false;
    }
    this.steps++;
    // One timer per step (the earliest), so that its reactions run before the next one fires.
    const fired = this.clock.firedTimers;
    this.clock.runUntil(() => this.clock.firedTimers !== fired, next - this.clock.now);
    return true;
  }

  #fail(error: Error): void {
    if (this.#stopped) return;
    this.#stopped = true;
    this.#onFailure(error);
  }
}
