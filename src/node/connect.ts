/**
 * `connect()`: bounded connect and handshake, several endpoints tried in staggered parallel
 * (Happy Eyeballs style), the first completed heartwire handshake wins.
 * @module
 */
import net from 'node:net';
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { Engine } from '../protocol/engine.js';
import { ConnectError, HeartwireError, UsageError } from '../protocol/errors.js';
import { Connection } from './connection.js';
import { engineOptions, validateConnectOptions } from './options.js';
import type { ConnectOptions, Endpoint } from './options.js';
import { applyKeepAlive } from './socket-options.js';

interface Attempt {
  endpoint: Endpoint;
  /** `host:port`, or the Unix socket's path. */
  name: string;
  socket?: Socket;
  connection?: Connection;
  timer?: NodeJS.Timeout;
  error?: Error;
  done: boolean;
}

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
  validateConnectOptions(options);
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
    let staggerTimer: NodeJS.Timeout | undefined;

    const cleanup = (winner?: Attempt): void => {
      settled = true;
      if (staggerTimer !== undefined) clearTimeout(staggerTimer);
      options.signal?.removeEventListener('abort', onAbort);
      for (const attempt of attempts) {
        if (attempt === winner) continue;
        if (attempt.timer !== undefined) clearTimeout(attempt.timer);
        if (attempt.connection !== undefined) attempt.connection.abort();
        else attempt.socket?.destroy();
      }
    };
    const onAbort = (): void => {
      if (settled) return;
      cleanup();
      reject(new UsageError('CANCELLED', 'connect aborted by signal'));
    };
    if (options.signal?.aborted) {
      reject(new UsageError('CANCELLED', 'connect aborted by signal'));
      return;
    }
    options.signal?.addEventListener('abort', onAbort, { once: true });

    const failed = (attempt: Attempt, error: Error): void => {
      if (attempt.done) return;
      attempt.done = true;
      attempt.error = error;
      if (attempt.timer !== undefined) clearTimeout(attempt.timer);
      if (settled) return;
      if (attempts.every((a) => a.done)) {
        cleanup();
        const list = attempts.map((a) => ({ ...a.endpoint, error: a.error! }));
        const timedOut = list.every(
          (a) =>
            a.error instanceof HeartwireError &&
            (a.error.code === 'CONNECT_TIMEOUT' || a.error.code === 'HANDSHAKE_TIMEOUT'),
        );
        const detail = attempts
          .map((a) => `${a.name} (${(a.error as HeartwireError).code ?? a.error!.message})`)
          .join(', ');
        const error = new ConnectError(
          timedOut ? 'CONNECT_TIMEOUT' : 'CONNECT_FAILED',
          `could not connect to ${detail}`,
          list,
        );
        reject(error);
      } else if (started < attempts.length && attempts.slice(0, started).every((a) => a.done)) {
        startNext();
      }
    };

    const startNext = (): void => {
      if (settled || started >= attempts.length) return;
      const attempt = attempts[started++]!;
      if (staggerTimer !== undefined) clearTimeout(staggerTimer);
      if (started < attempts.length) staggerTimer = setTimeout(startNext, stagger);
      const { endpoint } = attempt;
      const host = 'path' in endpoint ? undefined : endpoint.host;
      const where: { path?: string; host?: string; port?: number; localAddress?: string } =
        'path' in endpoint
          ? { path: endpoint.path }
          : { host: endpoint.host, port: endpoint.port, localAddress: options.localAddress };
      const socket = options.tls
        ? tls.connect({
            ...(options.tls === true ? {} : options.tls),
            ...where,
            servername:
              (options.tls === true ? undefined : options.tls.servername) ??
              (host !== undefined && !net.isIP(host) ? host : undefined),
            allowHalfOpen: true,
          } as tls.ConnectionOptions)
        : net.connect({ ...where, allowHalfOpen: true, noDelay: true } as net.NetConnectOpts);
      attempt.socket = socket;
      const onEarlyError = (error: Error): void => failed(attempt, error);
      socket.once('error', onEarlyError);
      attempt.timer = setTimeout(() => {
        socket.destroy();
        failed(
          attempt,
          new ConnectError(
            'CONNECT_TIMEOUT',
            `connect to ${attempt.name} timed out after ${connectTimeout} ms`,
            [],
          ),
        );
      }, connectTimeout);
      socket.once(options.tls ? 'secureConnect' : 'connect', () => {
        clearTimeout(attempt.timer);
        attempt.timer = undefined;
        socket.off('error', onEarlyError);
        if (settled) {
          socket.destroy();
          return;
        }
        applyKeepAlive(socket, options.idleTimeout);
        const connection = new Connection('client', socket, new Engine(engineOptions('client', options)), {
          socketBufferTarget: options.socketBufferTarget,
          maxSendQueue: options.maxSendQueue,
          signal: options.signal,
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
            resolve(connection);
          },
          (error: Error) => failed(attempt, error),
        );
      });
    };
    startNext();
  });
}
