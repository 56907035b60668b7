/**
 * The types of a `Connection`'s public API: its events, its statistics, `handle()`'s options.
 * @module
 */
import type { EngineStats, GoAwayInfo, Negotiated, Role } from '../protocol/types.js';
import type { CloseInfo } from '../protocol/types.js';

/** Statistics of a connection: the engine's counters plus the socket's. */
export interface ConnectionStats extends EngineStats {
  id: number;
  role: Role;
  /** Bytes waiting in the socket's user-space buffer. */
  socketBufferedBytes: number;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
}

/** Options of `end()` (see `Connection.end`). */
export interface EndOptions {
  /** Server: the GOAWAY's grace, ms. Default: the server's `defaultGrace`. */
  grace?: number;
  /** Server: the GOAWAY's reason code. */
  reason?: number;
  /** Server: the GOAWAY's message. */
  message?: string;
  /** Server: the GOAWAY's `retry_after_ms`. */
  retryAfter?: number;
  /** Messages nobody reads: dropped (`'discard'`, the default) or waited for (`'wait'`). */
  unread?: 'discard' | 'wait';
  /** Server: where the client should go (SPEC.md §9.5); default: the server's `alternatives`. */
  alternatives?: readonly string[];
  /**
   * Server: the GOAWAY's `do_not_reconnect` (SPEC.md §9.2): the client should never connect to
   * this server again; it may go to the `alternatives` at once. Default false.
   */
  doNotReconnect?: boolean;
}

/** Options of `handle()`. */
export interface HandleOptions {
  /** How many handlers may run at once. Default 1. */
  concurrency?: number;
  /** Called when a handler throws or rejects; default: abort the connection with that error. */
  onError?: (error: unknown, message: Uint8Array) => void;
}

/**
 * Events of a `Connection`, with their arguments. Listeners run synchronously inside the
 * connection's processing; an exception thrown by a listener is the application's (as with any
 * `EventEmitter`). See the README's "Events and the close report" for what to do on each.
 */
export interface ConnectionEvents {
  /**
   * The handshake completed, with the values agreed. A client's `connect()` resolves only after
   * it, so a client reads `conn.negotiated` instead; a `Server` emits `connection` at this point.
   */
  open: [Negotiated];
  /**
   * Client only, at most once: the server is going away (GOAWAY). It keeps serving this
   * connection until `goAway.deadline` (`performance.now()` time: receipt + grace); finish what
   * is in flight, call `end()` before then, and open new work elsewhere (respecting
   * `retryAfterMs` and `doNotReconnect`). Not an error: after `end()` the close is clean. A
   * GOAWAY that crosses the client's own `end()` is still reported.
   */
  goaway: [GoAwayInfo];
  /**
   * Server only, at most once: the client ended its stream (CLOSE). No message follows those
   * already received. The connection finishes (sends its last messages, then CLOSE_ACK) when its
   * consumer reaches the end of the stream: the `for await` loop ends, or `handle()` settles;
   * a server consuming with `read()` calls `end()` itself.
   */
  'peer-closed': [];
  /**
   * Messages are ready for `read()`. Edge-triggered: emitted when the queue goes from empty to
   * non-empty, so a listener reads until `read()` returns `undefined`.
   */
  readable: [];
  /**
   * A new round-trip-time sample in ms, from a heartbeat echo (each side heartbeats about every
   * third of the peer's idle timeout). `stats()` has the latest and the smoothed RTT.
   */
  rtt: [number];
  /**
   * Queued data has waited this many ms for the peer's credit (reported once per stall, after
   * 5 000 ms): the peer is alive (heartbeats arrive) but its application is not consuming.
   * Informational: the connection fails with `CREDIT_STALL` only if `creditStallTimeout` is set.
   */
  'credit-stall': [number];
  /** Credit arrived after a reported `credit-stall`; the argument is how long, in ms, data waited in all. */
  'credit-resumed': [number];
  /** `write()` may be called again after it returned false (the send queue is below its bound). */
  drain: [];
  /**
   * The connection is closed, clean or not: always emitted exactly once, last. The
   * {@link CloseInfo} says whether the close was clean, who ended it, the error if any, and
   * what became of every message this side sent (`delivery`: consumed, unknown, not processed).
   */
  close: [CloseInfo];
}
