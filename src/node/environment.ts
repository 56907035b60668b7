/**
 * Where `connect()` and a `Server` get their transports and time: the Node environment (TCP, TLS
 * or Unix sockets, real time), or a simulated one (`heartwire/testing`'s `Simulation`). Internal:
 * the public functions use {@link nodeEnvironment}.
 * @module
 */
import type { AddressInfo } from 'node:net';
import type * as Net from 'node:net';
import type * as Tls from 'node:tls';
import type { ConnectOptions, Endpoint, ServerOptions } from './options.js';
import { nodeRuntime } from './runtime.js';
import type { Runtime, Transport } from './runtime.js';
import { applyKeepAlive } from './socket-options.js';

// `node:net` and `node:tls` load on first use, not at import: the simulation (`heartwire/testing`)
// runs the same `connect()` and `Server` without them.
const net = (): typeof Net => process.getBuiltinModule('node:net');
const tls = (): typeof Tls => process.getBuiltinModule('node:tls');

/** A transport being opened: emits `connect` (`secureConnect` with TLS) once usable, or `error`. */
export interface DialedTransport extends Transport {
  once(event: 'connect' | 'secureConnect', listener: () => void): this;
  once(event: 'error', listener: (error: Error) => void): this;
  once(event: 'close', listener: () => void): this;
  off(event: 'error', listener: (error: Error) => void): this;
}

/** An accepted transport, as a listener hands it to a `Server`. */
export interface AcceptedTransport extends Transport {
  on(event: 'data', listener: (chunk: Uint8Array) => void): this;
  on(event: 'end' | 'close' | 'drain', listener: () => void): this;
  on(event: 'error', listener: (error: Error) => void): this;
  once(event: 'close', listener: () => void): this;
  end(): this;
  end(chunk: Uint8Array): this;
  allowHalfOpen: boolean;
}

/** The part of a `net.Server` a `Server` uses. */
export interface Listener {
  listen(port: number, host: string, callback: () => void): unknown;
  listen(path: string, callback: () => void): unknown;
  close(callback: () => void): unknown;
  address(): AddressInfo | string | null;
  readonly listening: boolean;
  on(event: 'error', listener: (error: Error) => void): unknown;
  once(event: 'error', listener: (error: Error) => void): unknown;
  off(event: 'error', listener: (error: Error) => void): unknown;
}

/** Transports, time and warnings for `connect()` and `Server`. */
export interface Environment {
  readonly runtime: Runtime;
  /** Start opening a transport to `endpoint`. */
  dial(endpoint: Endpoint, options: ConnectOptions): DialedTransport;
  /** A listener calling `onTransport` for every accepted transport. */
  listener(options: ServerOptions, onTransport: (transport: AcceptedTransport) => void): Listener;
  /** Socket options once a transport is open (TCP keepalive); returns nothing of interest. */
  prepare(transport: Transport, idleTimeout: number | undefined): void;
  /** Report something the application should know (`process.emitWarning` in a process). */
  warn(message: string, code: string): void;
  /** Randomness for jitter (maximum connection age). */
  random(): number;
  /** An engine seed for a new connection (random in a process, reproducible in a simulation). */
  seed(): number;
}

/** The real world: `node:net` / `node:tls`, `performance.now()`, Node's timers. */
export const nodeEnvironment: Environment = {
  runtime: nodeRuntime,
  dial(endpoint, options) {
    const host = 'path' in endpoint ? undefined : endpoint.host;
    const where: { path?: string; host?: string; port?: number; localAddress?: string } =
      'path' in endpoint
        ? { path: endpoint.path }
        : { host: endpoint.host, port: endpoint.port, localAddress: options.localAddress };
    if (!options.tls)
      return net().connect({ ...where, allowHalfOpen: true, noDelay: true } as Net.NetConnectOpts);
    const socket = tls().connect({
      ...(options.tls === true ? {} : options.tls),
      ...where,
      servername:
        (options.tls === true ? undefined : options.tls.servername) ??
        (host !== undefined && !net().isIP(host) ? host : undefined),
      allowHalfOpen: true,
    } as Tls.ConnectionOptions);
    return socket;
  },
  listener(options, onTransport) {
    if (options.tls !== undefined) {
      // Half-open only once TLS is up (see Server.accept()), so a failed client's FIN closes its
      // socket; Node's TLS server never destroys a socket whose TLS handshake failed or timed out.
      const server = tls().createServer(
        { ...options.tls, allowHalfOpen: false, handshakeTimeout: options.handshakeTimeout ?? 10_000 },
        onTransport,
      );
      server.on('tlsClientError', (_error, socket) => socket.destroy());
      return server;
    }
    return net().createServer({ allowHalfOpen: true, noDelay: true }, onTransport);
  },
  prepare(transport, idleTimeout) {
    applyKeepAlive(transport as Net.Socket, idleTimeout);
  },
  warn(message, code) {
    process.emitWarning(message, { type: 'HeartwireWarning', code });
  },
  random: Math.random,
  seed: () => (Math.random() * 0x1_0000_0000) >>> 0,
};
