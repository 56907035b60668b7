/**
 * `connect()`: bounded connect and handshake, several endpoints tried in staggered parallel
 * (Happy Eyeballs style), the first completed heartwire handshake wins.
 * @module
 */
import { Engine } from '../protocol/engine.js';
import { AbortError, ConnectError, HeartwireError, RemoteError } from '../protocol/errors.js';
import { Connection } from './connection.js';
import { engineOptions, validateConnectOptions } from './options.js';
import type { ConnectOptions, Endpoint } from './options.js';
import { nodeEnvironment } from './environment.js';
import type { DialedTransport, Environment } from './environment.js';

interface Attempt {
  endpoint: Endpoint;
  /** `host:port`, or the Unix socket's path. */
  name: string;
  socket?: DialedTransport;
  connection?: Connection;
  timer?: unknown;
  error?: Error;
  done: boolean;
}

/**
 * @internal The endpoint each connection of `connect()` was dialled at (a Unix socket has no
 * remote address to read back): for ReconnectingClient's `moved`/`disconnected` reports and to
 * tell which server a GOAWAY came from.
 */
export const dialedEndpoints = new WeakMap<Connection, Endpoint>();

/**
 * Connect to a heartwire server and complete the handshake.
 *
 * An endpoint is a TCP `{ host, port }` or a Unix domain socket `{ path }` (TCP keepalive and
 * `TCP_NODELAY` apply to TCP only). Each TCP or Unix (+TLS) connect is bounded by `connectTimeout` (default 10 000 ms) and the handshake
 * by `handshakeTimeout` (default 10 000 ms). With several `endpoints`, the next one starts
 * `attemptStagger` ms (default 250) after the previous one, or at once when it fails; the first
 * handshake wins and the others are closed. Rejects with a `ConnectError` listing every address
 * tried (`CONNECT_TIMEOUT` when every attempt timed out, `CONNECT_FAILED` otherwise), or
 * `CANCELLED` when `signal` aborts.
 *
 * Options are validated synchronously: invalid ones throw (not reject) a `TypeError` with `code`
 * `ERR_INVALID_ARG_TYPE` or a `RangeError` with `code` `ERR_OUT_OF_RANGE`, naming the option.
 */
export function connect(options: ConnectOptions): Promise<Connection> {
  return connectIn(nodeEnvironment, options);
}

/** @internal `connect()` in an environment: Node's, or a simulation's. */
export function connectIn(env: Environment, options: ConnectOptions): Promise<Connection> {
  validateConnectOptions(options);
  const runtime = env.runtime;
  const endpoints: readonly Endpoint[] =
    options.endpoints ??
    (options.path !== undefined
      ? [{ path: options.path }]
      : [{ host: options.host ?? '127.0.0.1', port: options.port! }]);
  const stagger = options.attemptStagger ?? 250;
  const connectTimeout = options.connectTimeout ?? 10_000;
  const attempts: Attempt[] = endpoints.map((endpoint) => ({
    endpoint,
    name: 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`,
    done: false,
  }));

  return new Promise<Connection>((resolve, reject) => {
    let settled = false;
    let started = 0;
    let staggerTimer: unknown;

    const cleanup = (winner?: Attempt): void => {
      settled = true;
      if (staggerTimer !== undefined) runtime.clearTimeout(staggerTimer);
      options.signal?.removeEventListener('abort', onAbort);
      for (const attempt of attempts) {
        if (attempt === winner) continue;
        if (attempt.timer !== undefined) runtime.clearTimeout(attempt.timer);
        if (attempt.connection !== undefined) attempt.connection.abort();
        else attempt.socket?.destroy();
      }
    };
    const onAbort = (): void => {
      if (settled) return;
      cleanup();
      reject(new AbortError('connect aborted by signal', options.signal?.reason));
    };
    if (options.signal?.aborted) {
      reject(new AbortError('connect aborted by signal', options.signal.reason));
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });

    /**
     * A hint when the failure looks like a TLS mismatch: a plain client whose server closed (or
     * answered non-heartwire bytes) during the heartwire handshake, or a TLS client whose server
     * closed before the TLS handshake completed.
     */
    const tlsHint = (attempt: Attempt): string => {
      const error = attempt.error as (Error & { code?: string }) | undefined;
      if (error === undefined) return '';
      if (options.tls) {
        return attempt.connection === undefined &&
          (error.code === 'ECONNRESET' || /before secure TLS connection/.test(error.message))
          ? ': the server closed before the TLS handshake completed; if it serves plain TCP, connect without tls'
          : '';
      }
      return attempt.connection !== undefined &&
        (error.code === 'UNEXPECTED_EOF' ||
          error.code === 'TRANSPORT_ERROR' ||
          error.code === 'PROTOCOL_MISMATCH')
        ? ': the server closed or answered without heartwire during the handshake; if it serves TLS, connect with tls'
        : '';
    };

    const failed = (attempt: Attempt, error: Error): void => {
      if (attempt.done) return;
      attempt.done = true;
      attempt.error = error;
      if (attempt.timer !== undefined) runtime.clearTimeout(attempt.timer);
      if (settled) return;
      if (attempts.every((a) => a.done)) {
        cleanup();
        const list = attempts.map((a) => ({ ...a.endpoint, error: a.error! }));
        const timedOut = list.every(
          (a) =>
            a.error instanceof HeartwireError &&
            (a.error.code === 'CONNECT_TIMEOUT' || a.error.code === 'HANDSHAKE_TIMEOUT'),
        );
        // Every server answered with something that is not heartwire: say so, not CONNECT_FAILED.
        const mismatch = list.every(
          (a) => a.error instanceof HeartwireError && a.error.code === 'PROTOCOL_MISMATCH',
        );
        const detail = attempts
          // A peer's refusal says why (e.g. `peer closed with REFUSED: connection limit reached`).
          .map((a) => {
            const what = a.error instanceof RemoteError ? a.error.message : (a.error as HeartwireError).code;
            return `${a.name} (${what ?? a.error!.message}${tlsHint(a)})`;
          })
          .join(', ');
        const error = new ConnectError(
          timedOut ? 'CONNECT_TIMEOUT' : mismatch ? 'PROTOCOL_MISMATCH' : 'CONNECT_FAILED',
          `could not connect to ${detail}`,
          list,
          { cause: list.length === 1 ? list[0]!.error : undefined },
        );
        reject(error);
      } else if (started < attempts.length && attempts.slice(0, started).every((a) => a.done)) {
        startNext();
      }
    };

    const startNext = (): void => {
      if (settled || started >= attempts.length) return;
      const attempt = attempts[started++]!;
      if (staggerTimer !== undefined) runtime.clearTimeout(staggerTimer);
      if (started < attempts.length) staggerTimer = runtime.setTimeout(startNext, stagger);
      const socket = env.dial(attempt.endpoint, options);
      attempt.socket = socket;
      const onEarlyError = (error: Error): void => failed(attempt, error);
      socket.once('error', onEarlyError);
      attempt.timer = runtime.setTimeout(() => {
        socket.destroy();
        failed(
          attempt,
          new ConnectError(
            'CONNECT_TIMEOUT',
            `connect to ${attempt.name} timed out after ${Math.round(connectTimeout)} ms`,
            [],
          ),
        );
      }, connectTimeout);
      socket.once(options.tls ? 'secureConnect' : 'connect', () => {
        runtime.clearTimeout(attempt.timer);
        attempt.timer = undefined;
        socket.off('error', onEarlyError);
        if (settled) {
          socket.destroy();
          return;
        }
        env.prepare(socket, options.idleTimeout);
        const engine = new Engine({ ...engineOptions('client', options), seed: env.seed() });
        const connection = new Connection('client', socket, engine, {
          socketBufferTarget: options.socketBufferTarget,
          maxSendQueue: options.maxSendQueue,
          signal: options.signal,
          runtime,
        });
        attempt.connection = connection;
        connection.opened.then(
          () => {
            if (settled) {
              connection.abort();
              return;
            }
            attempt.done = true;
            cleanup(attempt);
            dialedEndpoints.set(connection, attempt.endpoint);
            resolve(connection);
          },
          (error: Error) => failed(attempt, error),
        );
      });
    };
    startNext();
  });
}
