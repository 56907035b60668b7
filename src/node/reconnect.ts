/**
 * A client that reconnects with capped exponential backoff and full jitter, and never replays
 * anything by itself.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { CloseInfo, GoAwayInfo } from '../protocol/types.js';
import { HeartwireError } from '../protocol/errors.js';
import { connect } from './connect.js';
import type { Connection } from './connection.js';
import type { ConnectOptions } from './options.js';
import { connectOptionsOf, validateReconnectOptions } from './options.js';

/** Options of {@link ReconnectingClient}: `connect()` options plus the backoff policy. */
export interface ReconnectOptions extends ConnectOptions {
  /** Upper bound of the first retry delay (ms). Default 100. */
  minDelay?: number;
  /** Cap of the retry delay (ms). Default 30 000. */
  maxDelay?: number;
  /** The backoff resets only after a connection stayed open this long (ms). Default 10 000. */
  stableAfter?: number;
  /** Give up after this many consecutive failed attempts. Default: never. */
  maxAttempts?: number;
  /** On GOAWAY, end the connection at once (CLOSE), so the next one can start. Default true. */
  endOnGoAway?: boolean;
  /** Source of randomness for jitter, in [0, 1). Default Math.random. */
  random?: () => number;
}

/** What the application gets when a connection ends: it decides what to resend. */
export interface Disconnection {
  /** Generation of the connection that ended (1, 2, …). */
  generation: number;
  info: CloseInfo | undefined;
  error: Error | undefined;
  /** Messages certainly not processed by the peer: safe to send again. */
  notProcessed: Uint8Array[];
  /** Messages the peer may or may not have processed: the application decides. */
  unknown: Uint8Array[];
}

/** Events of a {@link ReconnectingClient}. */
export interface ReconnectingClientEvents {
  /** A connection is open; `generation` counts connections (events of older ones never leak). */
  connected: [Connection, number];
  /** A connection ended; nothing is resent automatically. */
  disconnected: [Disconnection];
  /** The next attempt starts after `delay` ms. */
  reconnecting: [{ attempt: number; delay: number; error: Error | undefined }];
  /** The client stopped for good (closed, `maxAttempts`, or the server said not to reconnect). */
  stopped: [Error | undefined];
}

/**
 * Keeps one connection open. Backoff: attempt n waits a uniformly random delay in
 * `[0, min(maxDelay, minDelay × 2^n)]` (full jitter), honouring a GOAWAY's `retryAfterMs` and
 * `doNotReconnect`; the attempt counter resets only after `stableAfter` ms of a healthy connection.
 * `close()` cancels everything.
 */
export class ReconnectingClient extends EventEmitter<ReconnectingClientEvents> {
  private readonly options: ReconnectOptions;
  private current: Connection | undefined;
  private generation = 0;
  private failures = 0;
  private stopped = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private abortAttempt: AbortController | undefined;
  private retryAfter = 0;
  private doNotReconnect = false;
  private waiters: { resolve: (c: Connection) => void; reject: (error: Error) => void }[] = [];
  /** The current connection received GOAWAY: it is draining and is not handed out. */
  private draining: Connection | undefined;
  private stopError: Error | undefined;

  /** Throws a `TypeError` (`ERR_INVALID_ARG_TYPE`) or `RangeError` (`ERR_OUT_OF_RANGE`) on an invalid option. */
  constructor(options: ReconnectOptions) {
    super();
    validateReconnectOptions(options);
    this.options = options;
    queueMicrotask(() => void this.attempt());
  }

  /** The open connection, if any. */
  get connection(): Connection | undefined {
    return this.current;
  }

  /**
   * Resolves with the open connection, at once if there is one, else with the next one. Never a
   * connection that is draining after a GOAWAY or closing. Rejects (`CONNECTION_CLOSED`, `cause`
   * = why it stopped) once the client has stopped: `close()`, `maxAttempts` reached, or the
   * server said not to reconnect; waiters pending at that moment are rejected too.
   */
  connected(): Promise<Connection> {
    const current = this.current;
    if (current !== undefined && current !== this.draining && current.state === 'open')
      return Promise.resolve(current);
    if (this.stopped) return Promise.reject(this.stoppedError());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private stoppedError(): Error {
    return new HeartwireError('CONNECTION_CLOSED', 'the ReconnectingClient has stopped', {
      cause: this.stopError,
    });
  }

  /** Stop reconnecting and end the current connection gracefully. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stop(undefined);
    const connection = this.current;
    if (connection !== undefined) await connection.end().catch(() => undefined);
  }

  private stop(error: Error | undefined): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopError = error;
    if (this.retryTimer !== undefined) clearTimeout(this.retryTimer);
    this.abortAttempt?.abort();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.stoppedError());
    this.emit('stopped', error);
  }

  private async attempt(): Promise<void> {
    if (this.stopped) return;
    const abort = new AbortController();
    this.abortAttempt = abort;
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, abort.signal]) : abort.signal;
    let connection: Connection;
    try {
      connection = await connect({ ...connectOptionsOf(this.options), signal });
    } catch (error) {
      this.failures++;
      this.scheduleRetry(error as Error);
      return;
    }
    // The attempt's abort controller guards the connect phase only: stop() must not abort an open
    // connection (close() ends it gracefully instead).
    this.abortAttempt = undefined;
    if (this.stopped) {
      connection.abort();
      return;
    }
    const generation = ++this.generation;
    this.current = connection;
    const openedAt = performance.now();
    let goneAway = false;
    const onGoAway = (goAway: GoAwayInfo): void => {
      if (goneAway) return;
      goneAway = true;
      this.draining = connection;
      this.retryAfter = goAway.retryAfterMs;
      this.doNotReconnect = goAway.doNotReconnect;
      if (this.options.endOnGoAway !== false) void connection.end().catch(() => undefined);
    };
    connection.on('goaway', onGoAway);
    // A server shedding load sends GOAWAY right at open: honour it even if it came before us.
    if (connection.goAway !== undefined) onGoAway(connection.goAway);
    connection.once('close', (info) => {
      if (this.current === connection) this.current = undefined;
      if (performance.now() - openedAt >= (this.options.stableAfter ?? 10_000)) this.failures = 0;
      else this.failures++;
      const report = info.delivery;
      this.emit('disconnected', {
        generation,
        info,
        error: info.error,
        notProcessed: report.notProcessed,
        unknown: report.unknown,
      });
      if (this.stopped) return;
      if (this.doNotReconnect) {
        this.stop(info.error);
        return;
      }
      this.scheduleRetry(info.error);
    });
    this.emit('connected', connection, generation);
    // Hand out only an open connection that is not draining (a listener may have ended it).
    if (connection.state !== 'open' || this.draining === connection) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.resolve(connection);
  }

  private scheduleRetry(error: Error | undefined): void {
    if (this.stopped) return;
    const max = this.options.maxAttempts ?? Number.POSITIVE_INFINITY;
    if (this.failures >= max) {
      this.stop(error);
      return;
    }
    const minDelay = this.options.minDelay ?? 100;
    const maxDelay = this.options.maxDelay ?? 30_000;
    const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(this.failures, 30));
    const random = this.options.random ?? Math.random;
    const delay = Math.max(this.retryAfter, Math.round(random() * ceiling));
    this.retryAfter = 0;
    this.emit('reconnecting', { attempt: this.failures, delay, error });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      void this.attempt();
    }, delay);
  }
}
