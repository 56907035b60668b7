/**
 * Simulated TCP for {@link Simulation}: sockets with the `net.Socket` interface a `Connection`
 * uses, joined in pairs by two {@link PathDirection}s, and listeners with the `net.Server`
 * interface a `Server` uses. Events are emitted from the virtual event loop's tasks.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import type { SimLoop } from './event-loop.js';
import { PathDirection } from './path.js';
import type { CrashMode, PathParams, Segment } from './path.js';

function netError(code: string, message: string): Error {
  return Object.assign(new Error(`${message} (simulated)`), { code });
}

/** One end of a simulated TCP connection. */
export class SimSocket extends EventEmitter {
  destroyed = false;
  allowHalfOpen = true;
  remoteAddress: string | undefined;
  remotePort: number | undefined;
  /** The direction this socket writes into (set once connected). */
  out: PathDirection | undefined;
  #connected = false;
  #finReceived = false;
  #closeEmitted = false;
  /** Closed locally (destroyed or crashed): data arriving is answered with a reset. */
  #rstSent = false;
  /** The machine died: nothing is delivered to it, ever. */
  dead = false;
  #needDrain = false;
  #onClose: (() => void) | undefined;

  constructor(
    private readonly loop: SimLoop,
    remote: { address: string; port: number },
  ) {
    super();
    this.remoteAddress = remote.address;
    this.remotePort = remote.port;
  }

  /** @internal Attach the outgoing direction; `onClose` runs once when the socket closes. */
  attach(out: PathDirection, onClose: () => void): void {
    this.out = out;
    this.#onClose = onClose;
  }

  /** @internal The connection is established: `connect` (and `secureConnect`) for a client. */
  connected(emit: boolean): void {
    this.#connected = true;
    if (emit && !this.destroyed) {
      this.emit('connect');
      this.emit('secureConnect');
    }
  }

  get writableLength(): number {
    const out = this.out;
    if (out === undefined || this.destroyed) return 0;
    return Math.max(0, out.buffered - out.params.sendBufferBytes);
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  cork(): void {}
  uncork(): void {}

  write(chunk: Uint8Array, callback?: (error?: Error | null) => void): boolean {
    if (this.destroyed || this.out === undefined || this.out.finQueued) {
      if (callback !== undefined) this.loop.nextTick(() => callback(netError('EPIPE', 'write after end')));
      return false;
    }
    // Copied: the writer may reuse its buffer once the callback has run.
    this.out.write(chunk.slice());
    if (callback !== undefined) this.loop.nextTick(() => callback(null));
    if (this.writableLength > 0) {
      this.#needDrain = true;
      return false;
    }
    return true;
  }

  end(chunk?: Uint8Array): this {
    if (chunk !== undefined) this.write(chunk);
    if (this.destroyed || this.out === undefined) return this;
    this.out.end();
    this.#maybeClose();
    return this;
  }

  destroy(error?: Error): this {
    if (this.destroyed) return this;
    this.destroyed = true;
    this.#needDrain = false;
    // The kernel still sends what it holds, then FIN; bytes arriving later are answered with a reset.
    if (this.out !== undefined && !this.#rstSent && !this.dead) this.out.end();
    this.loop.nextTick(() => {
      if (error !== undefined) this.emit('error', error);
      this.#emitClose();
    });
    return this;
  }

  /** @internal The machine or process behind this socket crashed (see {@link CrashMode}). */
  crash(mode: CrashMode, inbound: PathDirection | undefined): void {
    if (this.dead) return;
    const out = this.out;
    if (mode === 'none') {
      this.dead = true;
      out?.discard();
      if (inbound !== undefined) inbound.blackholed = true;
    } else if (mode === 'reset') {
      if (out !== undefined && !this.#rstSent) {
        this.#rstSent = true;
        out.reset();
      }
    } else if (out !== undefined && !this.#rstSent) out.end();
    // The process is gone: its objects see the socket closed and never send again.
    if (!this.destroyed) {
      this.destroyed = true;
      this.loop.nextTick(() => this.#emitClose());
    }
  }

  /** @internal Bytes left the send buffer. */
  departed(): void {
    if (this.#needDrain && this.writableLength === 0 && !this.destroyed) {
      this.#needDrain = false;
      this.emit('drain');
    }
    this.#maybeClose();
  }

  /** @internal A segment from the peer arrives. */
  arrive(segment: Segment): void {
    if (this.dead || this.#rstSent) return;
    if (this.destroyed) {
      // Data reaching a closed socket: the kernel answers with a reset, dropping its unsent bytes.
      if (segment.kind === 'data' && this.out !== undefined) {
        this.#rstSent = true;
        this.out.reset();
      }
      return;
    }
    if (segment.kind === 'data') {
      this.emit('data', segment.bytes);
    } else if (segment.kind === 'fin') {
      if (this.#finReceived) return;
      this.#finReceived = true;
      this.emit('end');
      if (!this.allowHalfOpen) this.end();
      this.#maybeClose();
    } else {
      this.destroyed = true;
      this.#rstSent = true;
      this.out?.discard();
      this.emit('error', netError('ECONNRESET', 'connection reset by peer'));
      this.#emitClose();
    }
  }

  #maybeClose(): void {
    if (this.#finReceived && this.out?.finSent === true && this.out.buffered === 0 && !this.destroyed) {
      this.destroyed = true;
      this.loop.nextTick(() => this.#emitClose());
    }
  }

  #emitClose(): void {
    if (this.#closeEmitted) return;
    this.#closeEmitted = true;
    this.#onClose?.();
    this.emit('close');
  }

  get connecting(): boolean {
    return !this.#connected;
  }
}

/** A simulated TCP connection: two sockets, two directions. */
export class SimLink {
  readonly client: SimSocket;
  readonly server: SimSocket;
  readonly clientToServer: PathDirection;
  readonly serverToClient: PathDirection;

  constructor(
    loop: SimLoop,
    random: () => number,
    params: { clientToServer: PathParams; serverToClient: PathParams },
    client: SimSocket,
    server: SimSocket,
    onClose: (link: SimLink) => void,
  ) {
    this.client = client;
    this.server = server;
    this.clientToServer = new PathDirection(
      params.clientToServer,
      loop.clock,
      random,
      (seg) => server.arrive(seg),
      () => client.departed(),
    );
    this.serverToClient = new PathDirection(
      params.serverToClient,
      loop.clock,
      random,
      (seg) => client.arrive(seg),
      () => server.departed(),
    );
    let open = 2;
    const closed = (): void => {
      if (--open === 0) onClose(this);
    };
    client.attach(this.clientToServer, closed);
    server.attach(this.serverToClient, closed);
  }

  get directions(): PathDirection[] {
    return [this.clientToServer, this.serverToClient];
  }
}

/** A simulated listening socket, as a `Server` uses a `net.Server`. */
export class SimListener extends EventEmitter {
  listening = false;
  #address: AddressInfo | string | null = null;
  /** Sockets accepted and not closed yet. */
  readonly sockets = new Set<SimSocket>();
  #closeCallbacks: (() => void)[] = [];

  constructor(
    private readonly bind: (listener: SimListener, key: string) => string | undefined,
    private readonly unbind: (listener: SimListener) => void,
    private readonly loop: SimLoop,
    readonly onSocket: (socket: SimSocket) => void,
  ) {
    super();
  }

  listen(portOrPath: number | string, hostOrCallback: string | (() => void), callback?: () => void): this {
    const done = typeof hostOrCallback === 'function' ? hostOrCallback : callback!;
    const host = typeof hostOrCallback === 'string' ? hostOrCallback : '127.0.0.1';
    const key = typeof portOrPath === 'string' ? portOrPath : `${host}:${portOrPath}`;
    const bound = this.bind(this, key);
    this.loop.nextTick(() => {
      if (bound === undefined) {
        this.emit('error', netError('EADDRINUSE', `address already in use ${key}`));
        return;
      }
      this.listening = true;
      if (typeof portOrPath === 'string') this.#address = portOrPath;
      else {
        const port = Number(bound.slice(bound.lastIndexOf(':') + 1));
        this.#address = { address: host, family: 'IPv4', port };
      }
      done();
    });
    return this;
  }

  address(): AddressInfo | string | null {
    return this.#address;
  }

  close(callback?: () => void): this {
    if (this.listening) {
      this.listening = false;
      this.unbind(this);
    }
    if (callback !== undefined) this.#closeCallbacks.push(callback);
    this.#maybeClosed();
    return this;
  }

  /** @internal */
  accepted(socket: SimSocket): void {
    this.sockets.add(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.#maybeClosed();
    });
    this.onSocket(socket);
  }

  #maybeClosed(): void {
    if (this.listening || this.sockets.size > 0 || this.#closeCallbacks.length === 0) return;
    const callbacks = this.#closeCallbacks;
    this.#closeCallbacks = [];
    this.loop.nextTick(() => {
      for (const callback of callbacks) callback();
    });
  }
}
