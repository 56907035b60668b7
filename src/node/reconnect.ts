/**
 * A client that reconnects with capped exponential backoff and full jitter, and never replays
 * anything by itself.
 * @module
 */
import { EventEmitter } from 'node:events';
import { formatAlternative, parseAlternative } from '../protocol/alternatives.js';
import type { CloseInfo, GoAwayInfo } from '../protocol/types.js';
import { HeartwireError } from '../protocol/errors.js';
import { connectIn, dialedEndpoints } from './connect.js';
import type { Connection } from './connection.js';
import { nodeEnvironment } from './environment.js';
import type { Environment } from './environment.js';
import type { Runtime } from './runtime.js';
import type { ConnectOptions, Endpoint } from './options.js';
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
  /**
   * On GOAWAY, end the old connection (CLOSE) once its replacement is open (make before break),
   * or half-way through the grace at the latest. `false`: the application ends it. Default true.
   */
  endOnGoAway?: boolean;
  /**
   * Source of randomness for jitter and the order of alternatives, in [0, 1). Default
   * Math.random (in a `Simulation`: the simulation's seeded randomness).
   */
  random?: () => number;
}

/** What the application gets when a connection ends: it decides what to resend. */
export interface Disconnection {
  /** Generation of the connection that ended (1, 2, …). */
  generation: number;
  /** It had received GOAWAY and a newer connection had replaced it (make before break). */
  replaced: boolean;
  /**
   * Where that connection was connected, as SPEC.md §9.5 writes endpoints: `address:port` or
   * `[v6 address]:port` (TCP: the peer's address), `unix:/path` (a Unix domain socket).
   */
  endpoint: string | undefined;
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
  /**
   * After a GOAWAY, the replacement connection opened (before the old one was ended): `elapsed`
   * ms from the GOAWAY to the new connection's handshake; `alternative` when it went to an
   * endpoint the server named.
   */
  moved: [Move];
}

/** The `moved` event of a {@link ReconnectingClient}. */
export interface Move {
  /** Generation of the connection that received GOAWAY. */
  from: number;
  /** Generation of its replacement. */
  to: number;
  /** ms from receiving GOAWAY to the replacement's open. */
  elapsed: number;
  /** Alternatives (of the GOAWAY or an earlier WELCOME, SPEC.md §9.5) were tried first. */
  viaAlternatives: boolean;
  /**
   * Where the replacement connected, as SPEC.md §9.5 writes endpoints: `address:port` or
   * `[v6 address]:port` (TCP: the peer's address), `unix:/path` (a Unix domain socket).
   */
  endpoint: string | undefined;
}

/** Uniformly shuffled copy (Fisher-Yates) with the client's random source. */
function shuffled<T>(items: readonly T[], random: () => number): T[] {
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [out[i], out[j]] = [out[j]!, out[i]!];
  }
  return out;
}

/** An endpoint as SPEC.md §9.5 writes it: `host:port`, `[v6]:port` or `unix:/path`. */
const endpointKey = (endpoint: Endpoint): string => formatAlternative(endpoint);

/**
 * Where a connection is connected, as SPEC.md §9.5 writes endpoints: the Unix socket it was
 * dialled at (it has no remote address to read back), else the peer's TCP address; and every key
 * naming that server (the TCP address and the endpoint dialled, maybe a host name).
 */
function whereConnected(connection: Connection): { endpoint: string | undefined; keys: string[] } {
  const dialed = dialedEndpoints.get(connection);
  const { remoteAddress, remotePort } = connection.stats();
  const keys: string[] = [];
  if (dialed !== undefined && 'path' in dialed) keys.push(endpointKey(dialed));
  else if (remoteAddress !== undefined && remotePort !== undefined)
    keys.push(endpointKey({ host: remoteAddress, port: remotePort }));
  if (dialed !== undefined && !keys.includes(endpointKey(dialed))) keys.push(endpointKey(dialed));
  return { endpoint: keys[0], keys };
}

/** Most endpoints a client remembers as "do not reconnect" (two keys per server at most). */
const MAX_BANNED = 256;

/** A GOAWAY younger than this (ms after open) counts as a failed attempt: backoff grows. */
const GOAWAY_AT_OPEN_MS = 1000;

/**
 * Keeps one connection open. Backoff: attempt n waits a uniformly random delay in
 * `[0, min(maxDelay, minDelay × 2^n)]` (full jitter), honouring a GOAWAY's `retryAfterMs` and
 * `doNotReconnect`; the attempt counter resets only after `stableAfter` ms of a healthy connection.
 * `close()` cancels everything.
 *
 * **Make before break.** On GOAWAY the client opens the next connection at once (after a jitter
 * of at most `minDelay` ms, so that a server's clients do not all arrive together), trying the
 * GOAWAY's alternatives first in random order, then those of earlier WELCOMEs, then the
 * configured endpoints (SPEC.md §9.5). From the GOAWAY on, `connected()` no longer hands out the
 * old connection; when the new one is open it is handed out (`connected`, `moved`) and the old
 * one is ended (`endOnGoAway`), at the latest half-way through the grace. Messages already
 * written on the old one are processed by the old server or come back, exactly, in its
 * `disconnected` event (`notProcessed`: resend them; `unknown`: the application decides): nothing
 * is lost and nothing is resent silently. `retryAfterMs` delays only a reconnection to the
 * configured endpoints (alternatives are tried at once). After `doNotReconnect` the client never
 * dials that server's endpoint again (whoever names it later): it moves to the alternatives, or
 * to its other configured endpoints, and stops when none is left.
 */
export class ReconnectingClient extends EventEmitter<ReconnectingClientEvents> {
  private readonly options: ReconnectOptions;
  /** Dialling, time and timers: Node's, or a simulation's. */
  private readonly env: Environment;
  private readonly runtime: Runtime;
  private readonly random: () => number;
  private readonly configured: readonly Endpoint[];
  private current: Connection | undefined;
  private generation = 0;
  private failures = 0;
  private stopped = false;
  private retryTimer: unknown;
  private abortAttempt: AbortController | undefined;
  /** An attempt is scheduled or connecting. */
  private pending = false;
  private retryAfter = 0;
  private waiters: { resolve: (c: Connection) => void; reject: (error: Error) => void }[] = [];
  /** Connections that received GOAWAY and are not closed (never handed out), and how to end each. */
  private readonly draining = new Map<Connection, () => void>();
  /** Endpoints of the servers that sent GOAWAY with do_not_reconnect: never dialled again (SPEC.md §9.2). */
  private readonly banned = new Set<string>();
  /** The alternatives of the latest WELCOME that named any (SPEC.md §9.5). */
  private learned: readonly string[] = [];
  /** The GOAWAY the next attempt answers: its generation and receipt time. */
  private moving: { from: number; at: number; viaAlternatives: boolean } | undefined;
  private stopError: Error | undefined;

  /** Throws a `TypeError` (`ERR_INVALID_ARG_TYPE`) or `RangeError` (`ERR_OUT_OF_RANGE`) on an invalid option. */
  constructor(
    options: ReconnectOptions,
    /** @internal Node's sockets, time and randomness by default; a simulation's in `heartwire/testing`. */
    env: Environment = nodeEnvironment,
  ) {
    super();
    validateReconnectOptions(options);
    this.options = options;
    this.env = env;
    this.runtime = env.runtime;
    this.random = options.random ?? env.random;
    this.configured =
      options.endpoints ??
      (options.path !== undefined
        ? [{ path: options.path }]
        : [{ host: options.host ?? '127.0.0.1', port: options.port! }]);
    this.pending = true;
    queueMicrotask(() => void this.attempt(this.configuredFirst()));
  }

  /** The open connection, if any (the newest; it may be draining until its replacement opens). */
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
    if (current !== undefined && !this.draining.has(current) && current.state === 'open')
      return Promise.resolve(current);
    if (this.stopped) return Promise.reject(this.stoppedError());
    return new Promise((resolve, reject) => this.waiters.push({ resolve, reject }));
  }

  private stoppedError(): Error {
    return new HeartwireError('CONNECTION_CLOSED', 'the ReconnectingClient has stopped', {
      cause: this.stopError,
    });
  }

  /** Stop reconnecting and end the current connection (and any still draining) gracefully. */
  async close(): Promise<void> {
    if (this.stopped) return;
    this.stop(undefined);
    const open = new Set(this.draining.keys());
    if (this.current !== undefined) open.add(this.current);
    await Promise.all([...open].map((connection) => connection.end().catch(() => undefined)));
  }

  private stop(error: Error | undefined): void {
    if (this.stopped) return;
    this.stopped = true;
    this.stopError = error;
    if (this.retryTimer !== undefined) this.runtime.clearTimeout(this.retryTimer);
    this.pending = false;
    this.abortAttempt?.abort();
    const waiters = this.waiters;
    this.waiters = [];
    for (const waiter of waiters) waiter.reject(this.stoppedError());
    this.emit('stopped', error);
  }

  /** The configured endpoints, then the learned alternatives (shuffled), without duplicates. */
  private configuredFirst(): Endpoint[] {
    return this.dedupe([...this.configured, ...this.alternativeEndpoints(this.learned)]);
  }

  private alternativeEndpoints(list: readonly string[]): Endpoint[] {
    const out: Endpoint[] = [];
    for (const entry of shuffled(list, this.random)) {
      const endpoint = parseAlternative(entry);
      if (endpoint !== undefined) out.push(endpoint);
    }
    return out;
  }

  /** Without duplicates, and without the servers that said not to reconnect. */
  private dedupe(endpoints: Endpoint[]): Endpoint[] {
    const seen = new Set<string>();
    return endpoints.filter((endpoint) => {
      const key = endpointKey(endpoint);
      if (seen.has(key) || this.banned.has(key)) return false;
      seen.add(key);
      return true;
    });
  }

  private async attempt(endpoints: Endpoint[]): Promise<void> {
    if (this.stopped) return;
    const abort = new AbortController();
    this.abortAttempt = abort;
    const signal = this.options.signal ? AbortSignal.any([this.options.signal, abort.signal]) : abort.signal;
    let connection: Connection;
    try {
      // The list replaces the user's port/host/path (connect() takes one way to say where).
      const where = { port: undefined, host: undefined, path: undefined, endpoints };
      connection = await connectIn(this.env, { ...connectOptionsOf(this.options), ...where, signal });
    } catch (error) {
      this.pending = false;
      this.moving = undefined;
      this.failures++;
      this.scheduleRetry(error as Error, this.configuredFirst());
      return;
    }
    this.pending = false;
    // The attempt's abort controller guards the connect phase only: stop() must not abort an open
    // connection (close() ends it gracefully instead).
    this.abortAttempt = undefined;
    if (this.stopped) {
      connection.abort();
      return;
    }
    this.adopt(connection);
  }

  private adopt(connection: Connection): void {
    const generation = ++this.generation;
    this.current = connection;
    // The GOAWAY this connection answers, if any; its retryAfter no longer applies.
    const moving = this.moving;
    this.moving = undefined;
    this.retryAfter = 0;
    const openedAt = this.runtime.now();
    // Read now: a closed socket no longer knows its peer.
    const where = whereConnected(connection);
    const welcomed = connection.negotiated?.alternatives ?? [];
    if (welcomed.length > 0) this.learned = welcomed;
    let goneAway = false;
    let replaced = false;
    let endTimer: unknown;
    const end = (): void => {
      if (endTimer !== undefined) this.runtime.clearTimeout(endTimer);
      endTimer = undefined;
      if (this.options.endOnGoAway !== false) void connection.end().catch(() => undefined);
    };
    const onGoAway = (goAway: GoAwayInfo): void => {
      if (goneAway) return;
      goneAway = true;
      this.draining.set(connection, end);
      if (goAway.doNotReconnect) {
        for (const key of where.keys) this.banned.add(key);
        // Bounded: past MAX_BANNED endpoints the oldest may be dialled again (SPEC.md §9.2: SHOULD NOT).
        for (const key of this.banned) if (this.banned.size > MAX_BANNED) this.banned.delete(key);
      }
      if (this.runtime.now() - openedAt < Math.min(GOAWAY_AT_OPEN_MS, this.options.stableAfter ?? 10_000))
        this.failures++; // shed at open, or a flapping server: back off
      if (this.stopped || this.current !== connection || this.pending) {
        end(); // an older connection, or a replacement already under way
        return;
      }
      // The GOAWAY's alternatives first, then those of the WELCOMEs (SPEC.md §9.5), each shuffled;
      // never the server going away (as far as its address tells).
      const alternatives = this.dedupe([
        ...this.alternativeEndpoints(goAway.alternatives),
        ...this.alternativeEndpoints(this.learned),
      ]).filter((endpoint) => !where.keys.includes(endpointKey(endpoint)));
      // Make before break: the next connection now; this one ends once it is open. The
      // configured endpoints (maybe this very server) only after retryAfter when there is somewhere
      // else to go, and never this server after doNotReconnect (dedupe drops it).
      const restricted = goAway.doNotReconnect || goAway.retryAfterMs > 0;
      const endpoints =
        alternatives.length > 0 && restricted
          ? alternatives
          : this.dedupe([...alternatives, ...this.configured]);
      if (endpoints.length === 0) {
        end();
        return; // doNotReconnect and nowhere else to go: stops at the close (below)
      }
      this.retryAfter = goAway.retryAfterMs; // for the configured endpoints, if the move fails
      this.moving = { from: generation, at: this.runtime.now(), viaAlternatives: alternatives.length > 0 };
      // Jitter spreads a server's clients; it grows with repeated GOAWAYs at open (backoff).
      const spread =
        Math.min(this.options.minDelay ?? 100, goAway.graceMs / 4) * 2 ** Math.min(this.failures, 30);
      const jitter = this.jitter(Math.min(spread, this.options.maxDelay ?? 30_000));
      this.schedule(
        Math.max(alternatives.length > 0 ? 0 : goAway.retryAfterMs, jitter),
        endpoints,
        undefined,
      );
      // Break at the latest half-way through the grace, so that the close completes within it.
      if (this.options.endOnGoAway !== false) endTimer = this.runtime.setTimeout(end, goAway.graceMs / 2);
      replaced = true;
    };
    connection.on('goaway', onGoAway);
    // A server shedding load sends GOAWAY right at open: honour it even if it came before us.
    if (connection.goAway !== undefined) onGoAway(connection.goAway);
    let closeHandled = false;
    const onClose = (info: CloseInfo): void => {
      if (closeHandled) return;
      closeHandled = true;
      if (endTimer !== undefined) this.runtime.clearTimeout(endTimer);
      this.draining.delete(connection);
      const isCurrent = this.current === connection;
      if (isCurrent) this.current = undefined;
      if (this.runtime.now() - openedAt >= (this.options.stableAfter ?? 10_000)) this.failures = 0;
      else if (!goneAway) this.failures++;
      const report = info.delivery;
      this.emit('disconnected', {
        generation,
        replaced: replaced && !isCurrent,
        endpoint: where.endpoint,
        info,
        error: info.error,
        notProcessed: report.notProcessed,
        unknown: report.unknown,
      });
      if (this.stopped || !isCurrent || this.pending) return;
      this.scheduleRetry(info.error, this.configuredFirst());
    };
    connection.once('close', onClose);
    this.emit('connected', connection, generation);
    // Hand out only an open connection that is not draining (a listener may have ended it).
    if (connection.state === 'open' && !this.draining.has(connection)) {
      if (moving !== undefined) {
        this.emit('moved', {
          from: moving.from,
          to: generation,
          elapsed: this.runtime.now() - moving.at,
          viaAlternatives: moving.viaAlternatives,
          endpoint: where.endpoint,
        });
      }
      const waiters = this.waiters;
      this.waiters = [];
      for (const waiter of waiters) waiter.resolve(connection);
      // Break: the connections this one replaces end now.
      for (const [old, endOld] of this.draining) if (old !== connection) endOld();
    }
    // It may have closed as connect() resolved (the WELCOME and the close in one read): its
    // `close` event is then past, and without this the client would wait for it forever.
    const settled = connection.settledClose;
    if (settled !== undefined) onClose(settled);
  }

  private jitter(ceiling: number): number {
    return Math.round(this.random() * Math.max(0, ceiling));
  }

  private scheduleRetry(error: Error | undefined, endpoints: Endpoint[]): void {
    if (this.stopped) return;
    const max = this.options.maxAttempts ?? Number.POSITIVE_INFINITY;
    // Nowhere left to go: every endpoint known belongs to a server that said not to reconnect.
    if (this.failures >= max || endpoints.length === 0) {
      this.stop(error);
      return;
    }
    const minDelay = this.options.minDelay ?? 100;
    const maxDelay = this.options.maxDelay ?? 30_000;
    const ceiling = Math.min(maxDelay, minDelay * 2 ** Math.min(this.failures, 30));
    const delay = Math.max(this.retryAfter, this.jitter(ceiling));
    this.retryAfter = 0;
    this.schedule(delay, endpoints, error);
  }

  private schedule(delay: number, endpoints: Endpoint[], error: Error | undefined): void {
    this.pending = true;
    this.emit('reconnecting', { attempt: this.failures, delay, error });
    this.retryTimer = this.runtime.setTimeout(() => {
      this.retryTimer = undefined;
      void this.attempt(endpoints);
    }, delay);
  }
}
