/**
 * Options shared by `connect()` and `createServer()`, and their translation to engine options.
 * @module
 */
import type { ConnectionOptions as TlsConnectionOptions, TlsOptions } from 'node:tls';
import {
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
} from '../protocol/constants.js';
import { MAX_ALTERNATIVES, invalidAlternative } from '../protocol/alternatives.js';
import { Engine } from '../protocol/engine.js';
import type { EngineOptions, MemoryBudget } from '../protocol/types.js';
import type { LifecycleOptions } from './lifecycle.js';

/** Options of a connection, client or server side. Times in ms, sizes in bytes. */
export interface ConnectionOptions {
  /** Silence this side tolerates before it declares the peer dead (`HEARTBEAT_TIMEOUT`). Default 20 000. */
  idleTimeout?: number;
  /** Largest receive window (credit granted to the peer). Default 8 MiB; it starts at `initialReceiveWindow` and auto-tunes. */
  receiveWindow?: number;
  /** Receive window a connection starts with and shrinks back to when idle. Default 64 KiB (at most `receiveWindow`). */
  initialReceiveWindow?: number;
  /** Largest message this side accepts. Default 4 MiB (at most what fits `receiveWindow`). */
  maxMessageSize?: number;
  /** Largest DATA frame payload this side accepts. Default 64 KiB. */
  maxFramePayload?: number;
  /**
   * Bound of the send queue, which keeps every accepted message until the peer reports it
   * consumed (for the delivery report): messages are accepted while it holds less than this,
   * each counting its payload plus 64 bytes; then `write()` returns false and `send()` waits.
   * It also caps the bytes in flight (keep it above bandwidth × RTT). Default 4 MiB.
   */
  maxSendQueue?: number;
  /** Bound on the heartwire handshake (after TCP/TLS connect). Default 10 000. */
  handshakeTimeout?: number;
  /** Bound on the termination handshake. Default 30 000. */
  closeTimeout?: number;
  /** Fail with `WRITE_STALL` when the socket accepts no bytes for this long. Default: `idleTimeout`; 0 disables. */
  writeStallTimeout?: number;
  /** Fail with `CREDIT_STALL` when blocked on the peer's credit this long. Default 0 (never; a `credit-stall` event is emitted after 5 s). */
  creditStallTimeout?: number;
  /** Bytes kept in the socket's user-space buffer at most; more DATA waits in the engine so control frames stay prompt. Default 256 KiB. */
  socketBufferTarget?: number;
  /** Application protocols to negotiate (ALPN-like). */
  applicationProtocols?: readonly string[];
  /** Shared memory budget for receive-window growth (see `SharedMemoryBudget`). */
  memoryBudget?: MemoryBudget;
  /** Abort the connection (or the connect attempt) when this signal aborts. */
  signal?: AbortSignal;
}

/** Where a server listens: TCP `{ host, port }` or a Unix domain socket `{ path }`. */
export type Endpoint = { host: string; port: number } | { path: string };

/** Options of `connect()`. */
export interface ConnectOptions extends ConnectionOptions {
  /** Host to connect to (with `port`), unless `endpoints` is given. */
  host?: string;
  port?: number;
  /** Unix domain socket to connect to (instead of `host`/`port`), unless `endpoints` is given. */
  path?: string;
  /** Several endpoints (TCP or Unix) tried in staggered parallel; the first handshake wins. */
  endpoints?: readonly Endpoint[];
  /** Delay before starting the next endpoint while earlier ones are pending. Default 250. */
  attemptStagger?: number;
  /** Bound on each TCP (and TLS) connect attempt. Default 10 000. */
  connectTimeout?: number;
  /** Connect with TLS using these `node:tls` options (`true` for defaults). */
  tls?: TlsConnectionOptions | true;
  /** Local address to bind to. */
  localAddress?: string;
}

/** Options of `createServer()`. */
export interface ServerOptions extends ConnectionOptions, LifecycleOptions {
  /** Serve TLS with these `node:tls` options (key and cert at least). */
  tls?: TlsOptions;
  /**
   * Maximum simultaneous connections, counting those still in the handshake. When full, a new
   * socket evicts the oldest connection that has not completed the handshake (it gets ERROR
   * `REFUSED` if it sent the preamble); only when every slot holds a handshaken connection is the
   * new socket refused (preamble + ERROR `REFUSED`). So silent or slow sockets cannot keep out
   * clients that complete the handshake. Default 10 000; 0 refuses every connection.
   */
  maxConnections?: number;
  /** Range the server clamps the client's idle timeout to. Default [1000, 86 400 000]. */
  clientIdleTimeoutRange?: readonly [number, number];
  /** Grace period of the GOAWAY sent by `conn.end()` without an argument. Default 5 000. */
  defaultGrace?: number;
  /**
   * Other endpoints of the same service (SPEC.md §9.5), sent to every client in WELCOME (its
   * `conn.negotiated.alternatives`) and in every GOAWAY this server sends unless the call names
   * others (`server.close({ alternatives })`, `conn.end({ alternatives })`): where a client such as
   * `ReconnectingClient` goes next. At most 8 entries `"host:port"`, `"[v6]:port"` or
   * `"unix:/path"`, each at most 256 bytes; anything else throws a `RangeError`
   * (`ERR_OUT_OF_RANGE`). Changeable later with `server.alternatives = [...]`. Default none.
   */
  alternatives?: readonly string[];
}

/**
 * Storage the engine fills completely (`EngineOptions.allocate`): not zeroed, an ArrayBuffer of
 * its own (never Node's shared pool), as a plain `Uint8Array` (a `Buffer`'s `subarray()` is slower).
 */
function allocateUnzeroed(size: number): Uint8Array {
  return new Uint8Array(Buffer.allocUnsafeSlow(size).buffer, 0, size);
}

/** Translate user options to engine options. */
export function engineOptions(
  role: 'client' | 'server',
  options: ConnectionOptions & Pick<ServerOptions, 'clientIdleTimeoutRange' | 'alternatives'>,
): EngineOptions {
  const initial = options.initialReceiveWindow ?? Math.min(64 * 1024, options.receiveWindow ?? 64 * 1024);
  return {
    role,
    idleTimeoutMs: options.idleTimeout,
    initialWindowBytes: initial,
    maxWindowBytes: options.receiveWindow,
    maxMessageBytes: options.maxMessageSize,
    maxFramePayloadBytes: options.maxFramePayload,
    maxSendQueueBytes: options.maxSendQueue,
    handshakeTimeoutMs: options.handshakeTimeout,
    closeTimeoutMs: options.closeTimeout,
    writeStallTimeoutMs: options.writeStallTimeout,
    creditStallTimeoutMs: options.creditStallTimeout,
    clientIdleTimeoutRangeMs: options.clientIdleTimeoutRange,
    applicationProtocols: options.applicationProtocols,
    alternatives: role === 'server' ? options.alternatives : undefined,
    budget: options.memoryBudget,
    seed: (Math.random() * 0x1_0000_0000) >>> 0,
    allocate: allocateUnzeroed,
  };
}

// ------------------------------------------------------------------ validation

/** An option of the wrong type (Node's `ERR_INVALID_ARG_TYPE`). */
export class InvalidOptionTypeError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_TYPE';
  constructor(message: string) {
    super(message);
    this.name = 'TypeError';
  }
}

/** An option out of its range (Node's `ERR_OUT_OF_RANGE`). */
export class OptionRangeError extends RangeError {
  readonly code = 'ERR_OUT_OF_RANGE';
  constructor(message: string) {
    super(message);
    this.name = 'RangeError';
  }
}

/** An argument or option with a value that is never valid, e.g. an unknown option (Node's `ERR_INVALID_ARG_VALUE`). */
export class InvalidOptionValueError extends TypeError {
  readonly code = 'ERR_INVALID_ARG_VALUE';
  constructor(message: string) {
    super(message);
    this.name = 'TypeError';
  }
}

type Check = (name: string, value: unknown) => void;

/** Longest time option: what a Node timer can wait (about 24.8 days). */
const MAX_TIMEOUT_MS = 0x7fff_ffff;

function received(value: unknown): string {
  if (value === null) return 'Received null';
  if (typeof value === 'function') return `Received function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') return `Received an instance of ${value.constructor?.name ?? 'Object'}`;
  let shown = typeof value === 'string' ? `'${value.slice(0, 25)}'` : String(value);
  if (typeof value === 'string' && value.length > 25) shown = `${shown.slice(0, -1)}...'`;
  return typeof value === 'number' ? `Received ${shown}` : `Received type ${typeof value} (${shown})`;
}

function typeError(name: string, what: string, value: unknown): InvalidOptionTypeError {
  return new InvalidOptionTypeError(`The "${name}" option must be ${what}. ${received(value)}`);
}

/** A number in [min, max]; `integer` requires a whole number; Infinity only if `max` is Infinity. */
function number(min: number, max = Number.MAX_SAFE_INTEGER, integer = false): Check {
  return (name, value) => {
    if (typeof value !== 'number') throw typeError(name, 'of type number', value);
    const whole = integer && Number.isFinite(value) && !Number.isInteger(value);
    if (!(value >= min && value <= max) || whole) {
      const range = `${integer ? 'an integer ' : ''}>= ${min}${max === Number.POSITIVE_INFINITY ? '' : ` and <= ${max}`}`;
      throw new OptionRangeError(
        `The value of "${name}" is out of range. It must be ${range}. ${received(value)}`,
      );
    }
  };
}

const bool: Check = (name, value) => {
  if (typeof value !== 'boolean') throw typeError(name, 'of type boolean', value);
};
const string: Check = (name, value) => {
  if (typeof value !== 'string') throw typeError(name, 'of type string', value);
};
const host: Check = (name, value) => {
  string(name, value);
  if (value === '') throw new OptionRangeError(`The value of "${name}" must not be empty. Received ''`);
};
const port = number(1, 65_535, true);
const object: Check = (name, value) => {
  if (typeof value !== 'object' || value === null) throw typeError(name, 'an object', value);
};
const func: Check = (name, value) => {
  if (typeof value !== 'function') throw typeError(name, 'a function', value);
};
const stringArray: Check = (name, value) => {
  if (!Array.isArray(value)) throw typeError(name, 'an array of strings', value);
  value.forEach((item, i) => string(`${name}[${i}]`, item));
};

/**
 * Alternative endpoints a server may send (SPEC.md §9.5): an array of at most 8 valid entries;
 * throws `TypeError` (`ERR_INVALID_ARG_TYPE`) or `RangeError` (`ERR_OUT_OF_RANGE`) naming the entry.
 */
export const checkAlternatives: Check = (name, value) => {
  stringArray(name, value);
  const list = value as string[];
  if (list.length > MAX_ALTERNATIVES)
    throw new OptionRangeError(
      `The value of "${name}" is out of range. It must list at most ${MAX_ALTERNATIVES} endpoints. Received ${list.length}`,
    );
  const bad = invalidAlternative(list);
  if (bad >= 0)
    throw new OptionRangeError(
      `The value of "${name}[${bad}]" must be "host:port", "[v6]:port" or "unix:/absolute/path" of at most 256 bytes. ${received(list[bad])}`,
    );
};

const connectionChecks: Record<string, Check> = {
  idleTimeout: number(MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS),
  receiveWindow: number(MIN_INITIAL_CREDIT, Number.MAX_SAFE_INTEGER, true),
  initialReceiveWindow: number(MIN_INITIAL_CREDIT, Number.MAX_SAFE_INTEGER, true),
  maxMessageSize: number(1, Number.MAX_SAFE_INTEGER, true),
  maxFramePayload: number(MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD, true),
  maxSendQueue: number(1, Number.MAX_SAFE_INTEGER, true),
  handshakeTimeout: number(1, MAX_TIMEOUT_MS),
  closeTimeout: number(1, MAX_TIMEOUT_MS),
  writeStallTimeout: number(0, MAX_TIMEOUT_MS),
  creditStallTimeout: number(0, MAX_TIMEOUT_MS),
  socketBufferTarget: number(1, Number.MAX_SAFE_INTEGER, true),
  applicationProtocols: stringArray,
  memoryBudget: (name, value) => {
    object(name, value);
    for (const method of ['reserve', 'release'] as const) {
      if (typeof (value as Record<string, unknown>)[method] !== 'function')
        throw typeError(`${name}.${method}`, 'a function', (value as Record<string, unknown>)[method]);
    }
  },
  signal: (name, value) => {
    if (!(value instanceof AbortSignal)) throw typeError(name, 'an instance of AbortSignal', value);
  },
};

const connectChecks: Record<string, Check> = {
  ...connectionChecks,
  host,
  port,
  path: host,
  endpoints: (name, value) => {
    if (!Array.isArray(value) || value.length === 0)
      throw typeError(name, 'a non-empty array of { host, port }', value);
    value.forEach((endpoint: unknown, i) => {
      object(`${name}[${i}]`, endpoint);
      const e = endpoint as { host?: unknown; port?: unknown; path?: unknown };
      if (e.path !== undefined && e.port === undefined) {
        host(`${name}[${i}].path`, e.path);
        return;
      }
      host(`${name}[${i}].host`, e.host);
      port(`${name}[${i}].port`, e.port);
    });
  },
  attemptStagger: number(0, MAX_TIMEOUT_MS),
  connectTimeout: number(1, MAX_TIMEOUT_MS),
  tls: (name, value) => {
    if (typeof value !== 'boolean') object(name, value);
  },
  localAddress: string,
};

/** Options checked elsewhere (the lifecycle's own checks), known here so they are not unknown. */
const checkedElsewhere: Check = () => {};

const serverChecks: Record<string, Check> = {
  ...connectionChecks,
  maxConnectionAge: checkedElsewhere,
  maxConnectionAgeGrace: checkedElsewhere,
  targetConnections: checkedElsewhere,
  overloadRetryAfter: checkedElsewhere,
  tls: object,
  maxConnections: (name, value) => {
    if (value !== Number.POSITIVE_INFINITY) number(0, Number.MAX_SAFE_INTEGER, true)(name, value);
  },
  clientIdleTimeoutRange: (name, value) => {
    if (!Array.isArray(value) || value.length !== 2) throw typeError(name, 'an array [min, max]', value);
    number(MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS)(`${name}[0]`, value[0]);
    number(value[0] as number, MAX_IDLE_TIMEOUT_MS)(`${name}[1]`, value[1]);
  },
  defaultGrace: number(0, 0xffff_ffff),
  alternatives: checkAlternatives,
};

const reconnectChecks: Record<string, Check> = {
  ...connectChecks,
  minDelay: number(0, MAX_TIMEOUT_MS),
  maxDelay: number(0, MAX_TIMEOUT_MS),
  stableAfter: number(0, MAX_TIMEOUT_MS),
  maxAttempts: (name, value) => {
    if (value !== Number.POSITIVE_INFINITY) number(1, Number.MAX_SAFE_INTEGER, true)(name, value);
  },
  endOnGoAway: bool,
  random: func,
};

/** Edit distance between two short strings (case-insensitive), for "did you mean". */
function distance(a: string, b: string): number {
  a = a.toLowerCase();
  b = b.toLowerCase();
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++)
      row[j] = Math.min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    previous = row;
  }
  return previous[b.length];
}

/**
 * The name in `known` closest to the unknown `name` (a likely misspelling: within an edit
 * distance of about a third of its length, at least 2), or `undefined` when none is that close.
 */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let closest: string | undefined;
  let best = Math.max(2, Math.floor(name.length / 3)) + 1;
  for (const candidate of known) {
    const d = distance(name, candidate);
    if (d < best) {
      best = d;
      closest = candidate;
    }
  }
  return closest;
}

/**
 * Refuse an own key of `options` that is not in `known` (a misspelt option would otherwise be
 * ignored silently): `TypeError` `ERR_INVALID_ARG_VALUE` naming the key and the closest known one.
 */
export function rejectUnknownOptions(options: object, known: readonly string[], what: string): void {
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue;
    const closest = closestName(key, known);
    const hint = closest === undefined ? `Known options: ${known.join(', ')}.` : `Did you mean "${closest}"?`;
    throw new InvalidOptionValueError(`The option "${key}" is not an option of ${what}. ${hint}`);
  }
}

function validate(
  options: unknown,
  checks: Record<string, Check>,
  role: 'client' | 'server',
  what: string,
): asserts options is ConnectionOptions {
  checkOptionsObject(options, checks, what);
  if (options === undefined) return;
  // The engine checks the combination (e.g. a window too small for the frame size): its
  // RangeError, thrown here rather than at the first connection.
  try {
    new Engine(engineOptions(role, options as ConnectionOptions));
  } catch (error) {
    throw new OptionRangeError(`Invalid options: ${(error as Error).message}`);
  }
}

/** The endpoint is required: `port`, `path` or `endpoints`. */
function requireEndpoint(options: unknown): void {
  const o = options as ConnectOptions | undefined;
  if (o?.port === undefined && o?.path === undefined && o?.endpoints === undefined)
    throw typeError('port', 'of type number (or "path" or "endpoints" given)', undefined);
  // One way to say where: a TCP port (with its host), a Unix socket path, or a list of endpoints.
  const given = [
    o.endpoints !== undefined ? '"endpoints"' : '',
    o.path !== undefined ? '"path"' : '',
    o.port !== undefined ? '"port"' : o.path !== undefined && o.host !== undefined ? '"host"' : '',
  ].filter((name) => name !== '');
  if (given.length > 1)
    throw new InvalidOptionValueError(
      `connect() takes one of "port" (with "host"), "path" or "endpoints"; it was given ${given.join(' and ')}: which one is meant is ambiguous`,
    );
}

/**
 * Validate `connect()` options synchronously: a `TypeError` (`code` `ERR_INVALID_ARG_TYPE`) or
 * `RangeError` (`ERR_OUT_OF_RANGE`) naming the option; an unknown option (a misspelling) is a
 * `TypeError` `ERR_INVALID_ARG_VALUE` naming it and the closest known one.
 */
export function validateConnectOptions(options: unknown): asserts options is ConnectOptions {
  validate(options, connectChecks, 'client', 'connect()');
  requireEndpoint(options);
}

/** Validate `createServer()` options synchronously (see {@link validateConnectOptions}). */
export function validateServerOptions(options: unknown): asserts options is ServerOptions | undefined {
  validate(options, serverChecks, 'server', 'createServer()');
}

/** Validate `ReconnectingClient` options synchronously (see {@link validateConnectOptions}). */
export function validateReconnectOptions(options: unknown): void {
  validate(options, reconnectChecks, 'client', 'ReconnectingClient');
  requireEndpoint(options);
}

/** The options of `ReconnectingClient` that are its own (the backoff policy), not `connect()`'s. */
const RECONNECT_ONLY = Object.keys(reconnectChecks).filter((key) => !(key in connectChecks));

/** `ReconnectingClient` options without its own (backoff) options: what each `connect()` gets. */
export function connectOptionsOf<T extends object>(options: T): T {
  const copy = { ...options } as Record<string, unknown>;
  for (const key of RECONNECT_ONLY) delete copy[key];
  return copy as T;
}

/**
 * Check `server.listen()`'s arguments synchronously and say where to listen: a TCP `port` (a
 * whole number in [0, 65535], or a string of digits) on `host`, or `{ path }` for a Unix domain
 * socket. Any other string is refused (`TypeError` `ERR_INVALID_ARG_VALUE`, naming the fix)
 * rather than taken as a socket path, as `net.Server.listen()` would.
 */
export function listenTarget(
  portOrOptions: unknown,
  hostName: unknown,
): { port: number; host: string } | { path: string } {
  if (typeof portOrOptions === 'object' && portOrOptions !== null) {
    const path = (portOrOptions as { path?: unknown }).path;
    if (path === undefined)
      throw new InvalidOptionValueError(
        'server.listen() takes a port number and a host, or { path } for a Unix domain socket. ' +
          `Received an object without "path" (keys: ${Object.keys(portOrOptions).join(', ') || 'none'})`,
      );
    rejectUnknownOptions(portOrOptions, ['path'], 'server.listen()');
    host('path', path);
    return { path: path as string };
  }
  let port = portOrOptions ?? 0;
  if (typeof port === 'string') {
    if (!/^\d{1,5}$/.test(port))
      throw new InvalidOptionValueError(
        `The "port" argument of server.listen() must be a port number. ${received(port)}. ` +
          `For a Unix domain socket, call server.listen({ path: ${JSON.stringify(port)} })`,
      );
    port = Number(port);
  }
  if (typeof port !== 'number')
    throw new InvalidOptionTypeError(
      `The "port" argument of server.listen() must be of type number or { path }. ${received(port)}`,
    );
  number(0, 65_535, true)('port', port);
  host('host', hostName);
  return { port, host: hostName as string };
}

/**
 * Check `handle()`'s arguments: a function, `concurrency` a whole number ≥ 1 (or Infinity is
 * refused: a bound is the point), `onError` a function if given.
 */
export function validateHandleArguments(handler: unknown, options: unknown): void {
  if (typeof handler !== 'function')
    throw new InvalidOptionTypeError(`The "handler" argument must be of type function. ${received(handler)}`);
  if (options === undefined) return;
  if (options === null || typeof options !== 'object') throw typeError('options', 'an object', options);
  rejectUnknownOptions(options, ['concurrency', 'onError'], 'handle()');
  const { concurrency, onError } = options as { concurrency?: unknown; onError?: unknown };
  if (concurrency !== undefined) number(1, 1_000_000, true)('concurrency', concurrency);
  if (onError !== undefined && typeof onError !== 'function')
    throw typeError('onError', 'of type function', onError);
}

/** Check the fields of an options object: not an object, an unknown key or a wrong value throws. */
function checkOptionsObject(options: unknown, checks: Record<string, Check>, what: string): void {
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) throw typeError('options', 'an object', options);
  rejectUnknownOptions(options, Object.keys(checks), what);
  const record = options as Record<string, unknown>;
  for (const [key, check] of Object.entries(checks)) {
    const value = record[key];
    if (value !== undefined) check(key, value);
  }
}

const unreadMode: Check = (name, value) => {
  if (value !== 'discard' && value !== 'wait')
    throw new InvalidOptionValueError(`The "${name}" option must be 'discard' or 'wait'. ${received(value)}`);
};

/**
 * Check `conn.end()`'s options synchronously (a misspelt `unread: 'wait'` would otherwise drop
 * unread messages, the opposite of what was asked).
 */
export function validateEndOptions(options: unknown): void {
  checkOptionsObject(
    options,
    {
      grace: number(0, MAX_TIMEOUT_MS),
      reason: number(0, 0xffff_ffff, true),
      message: string,
      retryAfter: number(0, 0xffff_ffff),
      unread: unreadMode,
      alternatives: checkAlternatives,
      doNotReconnect: bool,
    },
    'end()',
  );
}

/** Check `server.close()`'s options synchronously (a grace that is not a number has no deadline). */
export function validateServerCloseOptions(options: unknown): void {
  checkOptionsObject(
    options,
    {
      grace: number(0, MAX_TIMEOUT_MS),
      message: string,
      alternatives: checkAlternatives,
      doNotReconnect: bool,
    },
    'server.close()',
  );
}
