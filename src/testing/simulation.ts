/**
 * `Simulation`: run application code written against heartwire's public API — `connect()`,
 * `createServer()`, `Connection`, `Server` — on a simulated network and virtual time. The
 * connections are the real `Connection` class over simulated TCP ({@link SimSocket}); minutes of
 * protocol time take milliseconds, and a run is reproducible from its seed. Faults: latency,
 * bandwidth and segmentation ({@link Simulation.setPath}), partitions and one-way loss
 * ({@link Simulation.partition}), crashes ({@link Simulation.crash}); see `sim-faults.ts` for
 * fast-check arbitraries of fault schedules.
 * @module
 */
import { connectIn } from '../node/connect.js';
import type { Connection } from '../node/connection.js';
import type { AcceptedTransport, DialedTransport, Environment } from '../node/environment.js';
import type { ConnectOptions, Endpoint, ServerOptions } from '../node/options.js';
import { ReconnectingClient } from '../node/reconnect.js';
import type { ReconnectOptions } from '../node/reconnect.js';
import { Server } from '../node/server.js';
import { seededRandom } from '../protocol/engine.js';
import { SimLoop } from './event-loop.js';
import type { SimTimer } from './event-loop.js';
import { DEFAULT_PATH_PARAMS, checkPathParams } from './path.js';
import type { CrashMode, PartitionDirection, PathParams } from './path.js';
import { SimLink, SimListener, SimSocket } from './sim-socket.js';

/** Options of a {@link Simulation}. */
export interface SimulationOptions {
  /** Seed of every random choice (segmentation, engine jitter, connection age). Default 1. */
  seed?: number;
  /** Path parameters of new connections, both directions (over {@link DEFAULT_PATH_PARAMS}). */
  path?: Partial<PathParams>;
  /** The run fails when virtual time would pass this, ms. Default 3 600 000 (one hour). */
  timeLimit?: number;
}

/** A failure of a simulated run: the application threw, or left a rejection unhandled. */
export class SimulationError extends Error {
  readonly code = 'SIMULATION_FAILED';
  constructor(
    readonly seed: number,
    readonly at: number,
    cause: unknown,
  ) {
    super(
      `simulation failed (seed ${seed}, at ${at.toFixed(1)} ms of virtual time): ${cause instanceof Error ? cause.message : String(cause)}`,
      { cause },
    );
    this.name = 'SimulationError';
  }
}

/**
 * A simulated network of heartwire clients and servers on virtual time.
 *
 * `sim.createServer()`, `sim.connect()` and `sim.createReconnectingClient()` take the same
 * options and return the same `Server`, `Connection` and `ReconnectingClient` as
 * `createServer()`, `connect()` and `new ReconnectingClient()`; the application code is unchanged. Its
 * timers must come from the simulation ({@link sleep}, {@link setTimeout}): Node's would run
 * on real time. A task that throws, an unhandled rejection during {@link run}, or a connection
 * handler that fails (`HEARTWIRE_HANDLER_ERROR`) fails the run with a {@link SimulationError}
 * naming the seed.
 *
 * @example
 * ```ts
 * import { Simulation } from 'heartwire/testing';
 *
 * const sim = new Simulation({ seed: 7, path: { latencyMs: 40 } });
 * const replies = await sim.run(async () => {
 *   const server = sim.createServer({}, (conn) =>
 *     conn.handle(async (message) => void (await conn.send(message))),
 *   );
 *   const { port } = await server.listen(7000);
 *   const conn = await sim.connect({ port });
 *   await conn.send('ping');
 *   sim.partition(); // 3 s without a byte either way: less than the idle timeout
 *   await sim.sleep(3_000);
 *   sim.heal();
 *   const received: string[] = [];
 *   for await (const reply of conn) {
 *     received.push(new TextDecoder().decode(reply));
 *     await conn.end();
 *   }
 *   await server.close();
 *   return received;
 * });
 * console.log(replies.join(), sim.now > 3000); // → ping true
 * ```
 */
export class Simulation {
  readonly seed: number;
  readonly #loop: SimLoop;
  readonly #random: () => number;
  readonly #env: Environment;
  #defaults: PathParams;
  readonly #partitioned = { 'client-to-server': false, 'server-to-client': false };
  readonly #listeners = new Map<string, SimListener>();
  readonly #links = new Set<SimLink>();
  readonly #servers = new Map<Server, SimListener>();
  /** Addresses of servers whose machine vanished (`crash(server, 'none')`): nothing answers there. */
  readonly #silent = new Set<string>();
  #nextPort = 40_000;
  #failure: SimulationError | undefined;
  #failureWaiters: ((error: SimulationError) => void)[] = [];
  readonly #trace: string[] = [];

  constructor(options: SimulationOptions = {}) {
    const { seed = 1, timeLimit = 3_600_000 } = options;
    if (typeof seed !== 'number' || !Number.isSafeInteger(seed))
      throw new RangeError(`Simulation: seed must be an integer, got ${String(seed)}`);
    if (typeof timeLimit !== 'number' || !(timeLimit > 0))
      throw new RangeError(`Simulation: timeLimit must be a positive number of ms, got ${String(timeLimit)}`);
    this.seed = seed;
    this.#random = seededRandom(this.seed);
    this.#defaults = checkPathParams({ ...DEFAULT_PATH_PARAMS, ...options.path });
    this.#loop = new SimLoop({
      timeLimit,
      onFailure: (error) => this.fail(error),
    });
    const random = this.#random;
    this.#env = {
      runtime: this.#loop.runtime,
      dial: (endpoint) => this.#dial(endpoint),
      listener: (_options, onTransport) =>
        new SimListener(
          (listener, key) => this.#bind(listener, key),
          (listener) => this.#unbind(listener),
          this.#loop,
          (socket) => onTransport(socket as unknown as AcceptedTransport),
        ),
      prepare: () => {},
      warn: (message, code) => {
        if (code === 'HEARTWIRE_HANDLER_ERROR') this.fail(new Error(message));
        else this.note(`warning ${code}: ${message}`);
      },
      random,
      seed: () => (random() * 0x1_0000_0000) >>> 0,
    };
  }

  // ------------------------------------------------------------------ the public API, simulated

  /** `createServer()` on the simulated network. `listen(port)` binds a virtual address. */
  createServer(options?: ServerOptions, onConnection?: (connection: Connection) => unknown): Server;
  createServer(onConnection?: (connection: Connection) => unknown): Server;
  createServer(
    a?: ServerOptions | ((connection: Connection) => unknown),
    b?: (connection: Connection) => unknown,
  ): Server {
    let listener: SimListener | undefined;
    const env: Environment = {
      ...this.#env,
      listener: (options, onTransport) =>
        (listener = this.#env.listener(options, onTransport) as SimListener),
    };
    const server = typeof a === 'function' ? new Server({}, a, env) : new Server(a, b, env);
    this.#servers.set(server, listener!);
    server.once('close', () => this.#servers.delete(server));
    return server;
  }

  /** `connect()` on the simulated network. */
  connect(options: ConnectOptions): Promise<Connection> {
    return connectIn(this.#env, options);
  }

  /**
   * `new ReconnectingClient(options)` on the simulated network: the same class, dialling here,
   * its backoff and GOAWAY timers on virtual time, its jitter (and the order in which it tries
   * alternatives) from the simulation's seeded randomness unless `options.random` is given.
   * Throws synchronously on an invalid option, as the constructor does.
   */
  createReconnectingClient(options: ReconnectOptions): ReconnectingClient {
    return new ReconnectingClient(options, this.#env);
  }

  // ------------------------------------------------------------------ time

  /** Virtual time, ms. */
  get now(): number {
    return this.#loop.now;
  }

  /** Resolves after `ms` of virtual time. */
  sleep(ms: number): Promise<void> {
    return this.#loop.sleep(ms);
  }

  /** `setTimeout` on virtual time. */
  setTimeout(fn: () => void, ms: number): SimTimer {
    return this.#loop.setTimeout(() => fn(), ms);
  }

  clearTimeout(timer: SimTimer | undefined): void {
    this.#loop.clearTimeout(timer);
  }

  /** Tasks run so far, and the real time they took (ms). */
  get stats(): { steps: number; realMs: number; virtualMs: number } {
    return { steps: this.#loop.steps, realMs: this.#loop.realMs, virtualMs: this.now };
  }

  // ------------------------------------------------------------------ faults

  /**
   * Silently partitions every connection, present and future, in `direction` (one-way loss with
   * `client-to-server` or `server-to-client`): bytes are held, neither lost nor delivered, and no
   * FIN or reset passes, until {@link heal}. New connections cannot be established meanwhile.
   */
  partition(direction: PartitionDirection = 'both'): void {
    this.note(`partition ${direction}`);
    this.#setPartition(direction, true);
  }

  /** Ends a partition: held segments arrive one latency later, in order. */
  heal(direction: PartitionDirection = 'both'): void {
    this.note(`heal ${direction}`);
    this.#setPartition(direction, false);
  }

  /** Changes latency, bandwidth, buffer or segmentation of present and future connections. */
  setPath(params: Partial<PathParams>, direction: PartitionDirection = 'both'): void {
    this.note(`path ${direction} ${JSON.stringify(params)}`);
    if (direction === 'both') this.#defaults = checkPathParams({ ...this.#defaults, ...params });
    for (const link of this.#links) for (const d of this.#directions(link, direction)) d.setParams(params);
  }

  /**
   * The host of `server` crashes: its listening address goes and every connection it accepted
   * dies as `mode` says ({@link CrashMode}: `reset` by default; `fin` for a killed process whose
   * kernel closes the sockets; `none` for a machine that vanishes: then connection attempts to its
   * address get no answer, not a refusal, until a server listens there again). Its `Connection`
   * objects see their transport closed and never send again. Start a new server to model a restart.
   */
  crash(server: Server, mode: CrashMode = 'reset'): void {
    const listener = this.#servers.get(server);
    if (listener === undefined) return;
    this.note(`crash server (${mode})`);
    const key = (listener as { key?: string }).key;
    listener.close();
    if (mode === 'none' && key !== undefined) this.#silent.add(key);
    for (const socket of [...listener.sockets]) {
      const link = [...this.#links].find((l) => l.server === socket);
      socket.crash(mode, link?.clientToServer);
    }
  }

  // ------------------------------------------------------------------ running

  /**
   * Runs `main` in the simulation, then stops it (connections still open stay as they are, and
   * nothing runs any more). Resolves with its result; rejects with a
   * {@link SimulationError} (with the seed) if `main` throws or rejects, a simulated task throws,
   * a rejection is left unhandled meanwhile, or the time limit is reached.
   */
  async run<T>(main: () => Promise<T> | T): Promise<T> {
    if (this.#failure !== undefined) throw this.#failure;
    const onRejection = (reason: unknown): void => this.fail(reason);
    process.on('unhandledRejection', onRejection);
    let stopWaiting: (() => void) | undefined;
    const failed = new Promise<never>((_resolve, reject) => {
      const waiter = (error: SimulationError): void => reject(error);
      this.#failureWaiters.push(waiter);
      stopWaiting = () => (this.#failureWaiters = this.#failureWaiters.filter((w) => w !== waiter));
    });
    failed.catch(() => {});
    try {
      return await Promise.race([
        (async () => main())().catch((error: unknown) => {
          throw this.#wrap(error);
        }),
        failed,
      ]);
    } finally {
      stopWaiting?.();
      this.#loop.stop(); // the run is over: nothing runs after it
      // Rejections left unhandled by the last microtasks of the run are reported before it ends.
      await new Promise((resolve) => setImmediate(resolve));
      process.off('unhandledRejection', onRejection);
      if (this.#failure !== undefined) throw this.#failure; // eslint-disable-line no-unsafe-finally
    }
  }

  /** The failure that stopped the simulation, if any. */
  get failure(): SimulationError | undefined {
    return this.#failure;
  }

  /** Fails the run (with the seed): for the application's own checks. The loop stops. */
  fail(cause: unknown): void {
    if (this.#failure !== undefined) return;
    const error = this.#wrap(cause);
    this.#failure = error;
    this.note(`FAILED: ${error.message}`);
    this.#loop.stop();
    for (const waiter of this.#failureWaiters) waiter(error);
  }

  /** Stops the simulation: nothing runs any more (connections still open stay as they are). */
  stop(): void {
    this.#loop.stop();
  }

  /** Adds a line to the trace. */
  note(text: string): void {
    this.#trace.push(`${this.now.toFixed(1).padStart(10)} ${text}`);
    if (this.#trace.length > 2000) this.#trace.splice(0, 1000);
  }

  /** The last lines of the trace (faults, failures, warnings, notes). */
  formatTrace(lines = 50): string {
    return this.#trace.slice(-lines).join('\n');
  }

  // ------------------------------------------------------------------ the network

  #wrap(cause: unknown): SimulationError {
    return cause instanceof SimulationError ? cause : new SimulationError(this.seed, this.now, cause);
  }

  #directions(link: SimLink, direction: PartitionDirection) {
    if (direction === 'client-to-server') return [link.clientToServer];
    if (direction === 'server-to-client') return [link.serverToClient];
    return link.directions;
  }

  #setPartition(direction: PartitionDirection, on: boolean): void {
    if (direction !== 'server-to-client') this.#partitioned['client-to-server'] = on;
    if (direction !== 'client-to-server') this.#partitioned['server-to-client'] = on;
    for (const link of this.#links) for (const d of this.#directions(link, direction)) d.setPartitioned(on);
  }

  #bind(listener: SimListener, key: string): string | undefined {
    let bound = key;
    if (key.endsWith(':0')) bound = `${key.slice(0, -2)}:${this.#nextPort++}`;
    if (this.#listeners.has(bound)) return undefined;
    this.#listeners.set(bound, listener);
    this.#silent.delete(bound);
    (listener as { key?: string }).key = bound;
    return bound;
  }

  #unbind(listener: SimListener): void {
    const key = (listener as { key?: string }).key;
    if (key !== undefined && this.#listeners.get(key) === listener) this.#listeners.delete(key);
  }

  /** A client opens a connection: SYN after a latency (resent every second while partitioned). */
  #dial(endpoint: Endpoint): DialedTransport {
    const key = 'path' in endpoint ? endpoint.path : `${endpoint.host}:${endpoint.port}`;
    const remote =
      'path' in endpoint
        ? { address: endpoint.path, port: 0 }
        : { address: endpoint.host, port: endpoint.port };
    const client = new SimSocket(this.#loop, remote);
    const loop = this.#loop;
    const syn = (): void => {
      if (client.destroyed) return;
      if (this.#partitioned['client-to-server']) {
        loop.setTimeout(syn, 1000);
        return;
      }
      loop.setTimeout(() => {
        if (client.destroyed) return;
        const listener = this.#listeners.get(key);
        if (listener === undefined && this.#silent.has(key)) return; // no answer: connectTimeout
        if (listener === undefined) {
          // Refused: the reset comes back one latency later.
          loop.setTimeout(() => {
            if (client.destroyed) return;
            client.destroy(
              Object.assign(new Error(`connect ECONNREFUSED ${key} (simulated)`), { code: 'ECONNREFUSED' }),
            );
          }, this.#defaults.latencyMs);
          return;
        }
        const server = new SimSocket(loop, { address: '10.0.0.2', port: 50_000 + this.#links.size });
        const link = new SimLink(
          loop,
          this.#random,
          { clientToServer: { ...this.#defaults }, serverToClient: { ...this.#defaults } },
          client,
          server,
          (l) => this.#links.delete(l),
        );
        this.#links.add(link);
        link.clientToServer.setPartitioned(this.#partitioned['client-to-server']);
        link.serverToClient.setPartitioned(this.#partitioned['server-to-client']);
        server.connected(false);
        listener.accepted(server);
        // SYN-ACK: the client is connected one latency later (held while partitioned).
        const synAck = (): void => {
          if (client.destroyed) return;
          if (this.#partitioned['server-to-client']) loop.setTimeout(synAck, 1000);
          else client.connected(true);
        };
        loop.setTimeout(synAck, this.#defaults.latencyMs);
      }, this.#defaults.latencyMs);
    };
    loop.nextTick(syn);
    return client as unknown as DialedTransport;
  }

  /** Stops the loop (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    this.stop();
    return Promise.resolve();
  }
}
