/**
 * What a `Connection` and a `Server` need from the world besides bytes: time, deferred callbacks
 * and timers (a {@link Runtime}), and a byte stream (a {@link Transport}). In a process these are
 * Node's (`performance.now()`, `process.nextTick`, `setImmediate`, `setTimeout`, the shared
 * timer wheel) and a `net.Socket`; in `heartwire/testing`'s `Simulation` they are a virtual
 * clock and simulated TCP connections. The same `Connection` class runs on either.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { sharedWheel } from './timer-wheel.js';
import type { TimerWheel } from './timer-wheel.js';

/** Time and deferred work, as Node provides them (or a simulation does). */
export interface Runtime {
  /** Monotonic time, ms (`performance.now()` in a process). */
  now(): number;
  /** Run `fn` after the current operation, before I/O (`process.nextTick`). */
  nextTick(fn: () => void): void;
  /** Run `fn` on the next turn of the event loop (`setImmediate`). */
  setImmediate(fn: () => void): void;
  /** Run `fn` after `ms` (`setTimeout`); the timer does not keep a process alive when `unref`. */
  setTimeout(fn: () => void, ms: number, unref?: boolean): unknown;
  clearTimeout(handle: unknown): void;
  /** The coarse timer wheel the engines' deadlines go into. */
  readonly wheel: TimerWheel;
}

/** Node's runtime: the real clock, the process-wide timer wheel. */
export const nodeRuntime: Runtime = {
  now: () => performance.now(),
  nextTick: (fn) => process.nextTick(fn),
  setImmediate: (fn) => setImmediate(fn),
  setTimeout: (fn, ms, unref) => {
    const timer = setTimeout(fn, ms);
    if (unref === true) timer.unref();
    return timer;
  },
  clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  wheel: sharedWheel(),
};

/**
 * The part of a `net.Socket` a `Connection` uses. A `net.Socket` or `tls.TLSSocket` is one; the
 * simulation's sockets are another. Events: `data` (a chunk), `end`, `error`, `close`, `drain`.
 */
export interface Transport {
  on(event: 'data', listener: (chunk: Uint8Array) => void): this;
  on(event: 'end' | 'close' | 'drain', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  once(event: 'close', listener: () => void): this;
  setNoDelay(noDelay?: boolean): this;
  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean;
  end(): this;
  destroy(error?: Error): this;
  cork(): void;
  uncork(): void;
  readonly writableLength: number;
  readonly destroyed: boolean;
  readonly remoteAddress?: string | undefined;
  readonly remotePort?: number | undefined;
}
