/**
 * A simulated network joining a client and a server engine over a modelled TCP connection,
 * driven by a {@link VirtualClock}. Deterministic for a given seed; no real time, no I/O.
 *
 * The simulation drives each engine the way a real adapter does: after every input it drains
 * `pollTransmit` and `pollEvent`, keeps one timer per engine at `nextDeadline()`, reports the
 * transport backlog, half-closes on `end-transport` and closes on `closed`. Each direction of
 * the connection models a TCP path: a bounded kernel send buffer drained at a bandwidth cap,
 * a latency, random segmentation, and in-order delivery. Faults (partitions, crashes, path
 * changes, stalled consumers) can be switched at any time.
 *
 * Model details, per direction (named by its sender):
 * - The sender's kernel send buffer holds at most `sendBufferBytes` of DATA; the free room is
 *   passed to `pollTransmit` as `maxDataBytes` (control frames are always taken). Its unsent
 *   size is reported with `transmitBacklog` whenever it changes.
 * - Bytes leave the buffer in random-sized segments at `bandwidthBytesPerMs` and arrive
 *   `latencyMs` later, always in order; each segment is one `receive` call.
 * - A partition freezes the direction: the buffer stops draining, segments in flight are held
 *   and resent on heal. Nothing is lost and no FIN or reset is generated.
 * - `end-transport` queues a FIN behind the buffered bytes; `closed` flushes the engine once more,
 *   then closes the socket (FIN behind the buffered bytes). Data reaching a closed socket is
 *   answered with a reset that discards the closed side's unsent bytes, as TCP stacks do: an
 *   ERROR frame still in the send buffer is lost if the peer keeps sending.
 * - An engine that transmits after `end-transport` or `closed` makes the simulation throw.
 * @module
 */
import { seededRandom } from '../protocol/engine.js';
import type { Engine } from '../protocol/engine.js';
import { HeartwireError } from '../protocol/errors.js';
import type { EngineEvent } from '../protocol/types.js';
import { VirtualClock } from './clock.js';
import { defaultApplication } from './application.js';
import type { SimAppContext, SimApplication } from './application.js';
import { EngineDriver } from './engine-driver.js';
import type { SimEngine } from './engine-driver.js';
import { DEFAULT_PATH_PARAMS, PathDirection } from './path.js';
import type { CrashMode, PartitionDirection, PathParams, Segment } from './path.js';
import { SideState, checkParams, describeEvent, resetError, sideContext } from './sim-side.js';
import type { Path } from './sim-side.js';
import type { PathState, SendResult, Side, SimSide, SimulatedNetworkOptions } from './simnet-types.js';

export { DEFAULT_PATH_PARAMS, defaultApplication, seededRandom };
export type { CrashMode, PartitionDirection, PathParams, SimAppContext, SimApplication, SimEngine };
export type {
  DeliveredMessage,
  PathState,
  RecordedEvent,
  RejectedCall,
  SendResult,
  Side,
  SimSide,
  SimulatedNetworkOptions,
} from './simnet-types.js';

/**
 * Two engines joined by a simulated TCP connection. See the module documentation for the model.
 *
 * Call the engines only through the network ({@link send}, {@link close}, {@link drive}, the
 * application context…): the network drains an engine and re-arms its timer after each such call.
 * Reading an engine (`state`, `stats()`) directly is fine.
 *
 * The engines start with the handshake: a message sent before it completes is refused
 * (`'rejected'`), so wait for the `open` event first.
 *
 * @example
 * ```ts
 * import { Engine } from 'heartwire';
 * import { SimulatedNetwork } from 'heartwire/testing';
 *
 * const net = new SimulatedNetwork({
 *   client: new Engine({ role: 'client', seed: 1 }),
 *   server: new Engine({ role: 'server', seed: 2 }),
 *   seed: 42,
 *   path: { latencyMs: 20 },
 * });
 * net.start();
 * const opened = () => net.client.events.some((e) => e.event.type === 'open');
 * net.runUntil(opened, 1000); // the handshake: one round trip
 * console.log('sent:', net.send('client', new TextEncoder().encode('hello'))); // → sent: sent
 * net.partition(); // both ways, for 5 s (less than the default idle timeout)
 * net.advanceBy(5000);
 * net.heal();
 * net.close(); // the client ends the stream; the server finishes; both close cleanly
 * net.runUntilClosed(60_000);
 * const [message] = net.server.delivered;
 * console.log('delivered:', new TextDecoder().decode(message!.payload)); // → delivered: hello
 * console.log('clean:', net.client.closedInfo?.clean, net.server.closedInfo?.clean); // → clean: true true
 * console.log(net.formatTrace(5)); // the last lines of what happened
 * ```
 */
export class SimulatedNetwork {
  /** The clock driving the simulation. */
  readonly clock: VirtualClock;
  readonly #random: () => number;
  readonly #sides: Record<Side, SideState>;
  readonly #paths: Record<Side, Path>;
  readonly #maxOutboxBytes: number;
  readonly #autoFinish: boolean;
  readonly #maxTraceLines: number;
  readonly #trace: string[] = [];
  #droppedTraceLines = 0;

  constructor(options: SimulatedNetworkOptions) {
    this.clock = options.clock ?? new VirtualClock();
    this.#random = seededRandom(options.seed ?? 1);
    this.#maxOutboxBytes = options.maxOutboxBytes ?? 16 * 1024 * 1024;
    this.#autoFinish = options.autoFinish ?? true;
    this.#maxTraceLines = options.maxTraceLines ?? 20_000;
    const apps = options.applications ?? {};
    const client = new SideState('client', options.client, apps.client ?? defaultApplication);
    const server = new SideState('server', options.server, apps.server ?? defaultApplication);
    this.#sides = { client, server };
    const base = { ...DEFAULT_PATH_PARAMS, ...options.path };
    const path = (params: PathParams, from: SideState, to: SideState): Path => {
      const p: Path = {
        dir: new PathDirection(
          params,
          this.clock,
          this.#random,
          (seg) => this.#arrive(p, seg),
          () => this.#pump(from), // room in the buffer: pull more, report the backlog
          true,
        ),
        from,
        to,
        bytesDelivered: 0,
      };
      return p;
    };
    this.#paths = {
      client: path(checkParams({ ...base, ...options.clientToServer }), client, server),
      server: path(checkParams({ ...base, ...options.serverToClient }), server, client),
    };
    for (const s of [client, server]) {
      const p = this.#paths[s.side];
      s.driver = new EngineDriver(
        s.engine,
        this.clock,
        {
          room: () => Math.max(0, p.dir.params.sendBufferBytes - p.dir.buffered),
          write: (chunks) => this.#write(s, chunks, 'tx'),
          backlog: () => p.dir.buffered,
          event: (event) => this.#onEvent(s, event),
          extra: () => this.#maybeAutoFinish(s),
        },
        { name: `SimulatedNetwork: ${s.side}` },
      );
      s.driver.onTimer = () => this.#call(s, 'timeout', () => s.engine.handleTimeout(this.now), true);
    }
  }

  // ---------------------------------------------------------------- observation

  /** Current virtual time. */
  get now(): number {
    return this.clock.now;
  }

  /** What happened at the client. */
  get client(): SimSide {
    return this.#sides.client;
  }

  /** What happened at the server. */
  get server(): SimSide {
    return this.#sides.server;
  }

  /** What happened at `side`. */
  side(side: Side): SimSide {
    return this.#sides[side];
  }

  /** State of the direction whose sender is `from`. */
  path(from: Side): PathState {
    const p = this.#paths[from];
    return {
      ...p.dir.params,
      from,
      partitioned: p.dir.partitioned,
      bufferedBytes: p.dir.buffered,
      inFlight: p.dir.inFlight,
      bytesWritten: p.dir.bytesWritten,
      bytesDelivered: p.bytesDelivered,
      finSent: p.dir.finSent,
    };
  }

  /** True when both engines have closed or crashed. */
  get done(): boolean {
    return !this.#sides.client.active && !this.#sides.server.active;
  }

  /**
   * Readable log of everything that happened, one line per action: `time side action`.
   * Only the most recent lines are kept (see {@link SimulatedNetworkOptions.maxTraceLines}).
   */
  get trace(): readonly string[] {
    return this.#trace;
  }

  /** The trace as one string, optionally only its last `lines` lines. */
  formatTrace(lines?: number): string {
    const t = lines === undefined ? this.#trace : this.#trace.slice(-lines);
    const dropped = this.#droppedTraceLines + this.#trace.length - t.length;
    return (dropped > 0 ? `… ${dropped} earlier lines\n` : '') + t.join('\n');
  }

  /** Adds a line to the trace (for example the step a test is about to apply). */
  note(text: string): void {
    this.#log('*', text);
  }

  // ---------------------------------------------------------------- time

  /** Runs the simulation for `ms` milliseconds. */
  advanceBy(ms: number): void {
    this.clock.advanceBy(ms);
  }

  /** Runs the simulation up to time `t`. */
  advanceTo(t: number): void {
    this.clock.advanceTo(t);
  }

  /** Runs until `predicate()` holds or `limitMs` pass; returns whether it held. */
  runUntil(predicate: () => boolean, limitMs: number): boolean {
    return this.clock.runUntil(predicate, limitMs);
  }

  /** Runs until both engines have closed or crashed, at most `limitMs`; returns whether they did. */
  runUntilClosed(limitMs: number): boolean {
    return this.clock.runUntil(() => this.done, limitMs);
  }

  // ---------------------------------------------------------------- application

  /** Calls `start(now)` on both engines (the TCP connection is established). Call once. */
  start(): void {
    for (const s of [this.#sides.client, this.#sides.server]) {
      if (s.driver.started) throw new Error('SimulatedNetwork: already started');
      this.#call(s, 'start', () => s.driver.start());
    }
  }

  /**
   * The application of `side` sends `payload`: `trySend` at once if the outbox is empty,
   * otherwise (or if `trySend` returns false) queue it in the outbox, retried on `writable`.
   * Returns `rejected` if the engine threw a {@link HeartwireError} (recorded in
   * {@link SimSide.rejected}) or the side crashed. Throws if the outbox would exceed
   * {@link SimulatedNetworkOptions.maxOutboxBytes}.
   */
  send(side: Side, payload: Uint8Array): SendResult {
    const s = this.#sides[side];
    s.sendCalls++;
    const action = `send ${payload.length} B`;
    if (s.crashed) {
      this.#reject(s, action, new Error(`${side} crashed`), payload);
      return 'rejected';
    }
    let result: SendResult = 'queued';
    if (s.outbox.length === 0) {
      const accepted = this.#trySend(s, payload);
      if (accepted === undefined) return 'rejected';
      if (accepted) result = 'sent';
    }
    if (result === 'queued') {
      if (s.outboxBytes + payload.length > this.#maxOutboxBytes) {
        throw new Error(`SimulatedNetwork: ${side} outbox exceeds ${this.#maxOutboxBytes} bytes`);
      }
      s.outbox.push(payload);
      s.outboxBytes += payload.length;
    }
    this.#log(side, `app ${action}: ${result}`);
    this.#pump(s);
    return result;
  }

  /** Client application: `close(now)` (start the termination handshake). */
  close(): void {
    const s = this.#sides.client;
    this.#call(s, 'close', () => s.engine.close(this.now));
  }

  /** Server application: `goAway(now, options)`. */
  goAway(options: Parameters<Engine['goAway']>[1]): void {
    const s = this.#sides.server;
    this.#call(s, `goAway grace=${options.graceMs}`, () => s.engine.goAway(this.now, options));
  }

  /** Server application: `finish(now)`. Needed only with `autoFinish: false`. */
  finish(): void {
    const s = this.#sides.server;
    s.finishedAt ??= this.now;
    this.#call(s, 'finish', () => s.engine.finish(this.now));
  }

  /** The application of `side` aborts the connection. */
  abort(side: Side, error?: HeartwireError): void {
    const s = this.#sides[side];
    this.#call(s, 'abort', () => s.engine.abort(this.now, error));
  }

  /**
   * Runs `fn` against the engine of `side`, then drives the engine as after any input. Use it for
   * engine calls the network has no method for: an engine called behind the network's back is not
   * drained and its timer is not re-armed. Refused (and recorded) if the side crashed; a
   * {@link HeartwireError} thrown by `fn` is recorded in {@link SimSide.rejected}.
   */
  drive(side: Side, action: string, fn: (engine: SimEngine, now: number) => void): void {
    const s = this.#sides[side];
    this.#call(s, action, () => fn(s.engine, this.now));
  }

  /** The application of `side` stops reading messages (the built-in application honours this). */
  pauseConsumer(side: Side): void {
    this.#sides[side].consumerPaused = true;
    this.#log(side, 'consumer paused');
  }

  /** The application of `side` reads again, starting with the messages already waiting. */
  resumeConsumer(side: Side): void {
    const s = this.#sides[side];
    if (!s.consumerPaused) return;
    s.consumerPaused = false;
    this.#log(side, 'consumer resumed');
    if (s.readablePending && s.active) {
      this.#call(s, 'resume', () => s.app({ type: 'readable' }, this.#context(s)), true);
    } else {
      this.#pump(s);
    }
  }

  // ---------------------------------------------------------------- faults

  /**
   * Silently partitions the path: bytes are held (neither lost nor delivered), send buffers stop
   * draining, and no FIN or reset is delivered, until {@link heal}.
   */
  partition(direction: PartitionDirection = 'both'): void {
    this.#log('*', `partition ${direction}`);
    for (const p of this.#directions(direction)) p.dir.setPartitioned(true);
  }

  /**
   * Ends a partition. Segments held at the break are retransmitted: they arrive one latency
   * after the heal, in order, before anything sent later.
   */
  heal(direction: PartitionDirection = 'both'): void {
    this.#log('*', `heal ${direction}`);
    for (const p of this.#directions(direction)) {
      if (!p.dir.partitioned) continue;
      // A dead machine cannot retransmit what the partition swallowed.
      if (p.from.crashed?.mode === 'none') p.dir.dropHeld();
      p.dir.setPartitioned(false);
    }
  }

  /**
   * `side` crashes: its engine is never called again and nothing more is delivered to it.
   * See {@link CrashMode} for what the peer sees. Default mode `none`.
   */
  crash(side: Side, options: { notifyPeer?: CrashMode } = {}): void {
    const s = this.#sides[side];
    const mode = options.notifyPeer ?? 'none';
    this.#log(side, `crash (${mode})`);
    if (s.crashed) return;
    s.crashed = { at: this.now, mode };
    s.driver.stop();
    const out = this.#paths[side];
    const inbound = this.#paths[this.#peer(s).side];
    if (mode === 'none') {
      out.dir.discard();
      inbound.dir.blackholed = true;
    } else if (!s.destroyed) {
      s.socketClosed = true;
      if (mode === 'reset') {
        this.#sendReset(s);
      } else if (!s.rstSent) {
        out.dir.end();
      }
    }
  }

  /** Changes the parameters of one direction (named by its sender) or both. Latency applies to bytes leaving the send buffer from now on; bandwidth from the next segment on. */
  setPath(from: Side | 'both', params: Partial<PathParams>): void {
    const text = Object.entries(params).map(([k, v]) => `${k}=${String(v)}`);
    this.#log(from === 'both' ? '*' : from, `path ${text.join(' ')}`);
    for (const p of from === 'both' ? [this.#paths.client, this.#paths.server] : [this.#paths[from]]) {
      p.dir.params = checkParams({ ...p.dir.params, ...params });
      p.dir.kick();
      this.#pump(p.from); // the buffer may have more room now
    }
  }

  // ---------------------------------------------------------------- engine driving

  #peer(s: SideState): SideState {
    return s === this.#sides.client ? this.#sides.server : this.#sides.client;
  }

  #directions(direction: PartitionDirection): Path[] {
    if (direction === 'client-to-server') return [this.#paths.client];
    if (direction === 'server-to-client') return [this.#paths.server];
    return [this.#paths.client, this.#paths.server];
  }

  #log(who: Side | '*', text: string): void {
    this.#trace.push(`${this.now.toFixed(3).padStart(12)} ${who.padEnd(6)} ${text}`);
    if (this.#trace.length > 2 * this.#maxTraceLines) {
      const drop = this.#trace.length - this.#maxTraceLines;
      this.#trace.splice(0, drop);
      this.#droppedTraceLines += drop;
    }
  }

  #reject(s: SideState, action: string, error: HeartwireError | Error, payload?: Uint8Array): void {
    s.rejected.push({ at: this.now, action, error, ...(payload ? { payload } : {}) });
    this.#log(s.side, `${action} rejected: ${error.message}`);
  }

  /** Runs an application or timer input against the engine, then drives it. */
  #call(s: SideState, action: string, fn: () => void, quiet = false): void {
    if (s.crashed) {
      this.#reject(s, action, new Error(`${s.side} crashed`));
      return;
    }
    if (!quiet) this.#log(s.side, action);
    try {
      fn();
    } catch (e) {
      if (!(e instanceof HeartwireError)) throw e;
      this.#reject(s, action, e);
    }
    this.#pump(s);
  }

  /** `trySend` with recording; `undefined` when rejected. */
  #trySend(s: SideState, payload: Uint8Array): boolean | undefined {
    try {
      if (!s.engine.trySend(this.now, payload)) return false;
    } catch (e) {
      if (!(e instanceof HeartwireError)) throw e;
      this.#reject(s, `send ${payload.length} B`, e, payload);
      return undefined;
    }
    s.sent.push(payload);
    return true;
  }

  #flushOutbox(s: SideState): void {
    while (s.outbox.length > 0 && !s.crashed) {
      const payload = s.outbox[0];
      const accepted = this.#trySend(s, payload);
      if (accepted === false) return;
      s.outbox.shift();
      s.outboxBytes -= payload.length;
      if (accepted) this.#log(s.side, `outbox -> engine ${payload.length} B`);
    }
  }

  /** Drains transmit and events after any input until the engine is quiet, then re-arms its timer. */
  #pump(s: SideState): void {
    s.driver.pump();
  }

  /** Puts bytes the engine produced into its send buffer. Returns whether there were any. */
  #write(s: SideState, chunks: Uint8Array[], label: string): boolean {
    const n = chunks.reduce((sum, c) => sum + c.length, 0);
    if (n === 0) return false;
    if (s.writeShut) {
      throw new Error(`SimulatedNetwork: ${s.side} engine produced ${n} bytes after end-transport/closed`);
    }
    const p = this.#paths[s.side];
    if (s.destroyed || s.rstSent || s.crashed) {
      this.#log(s.side, `${label} ${n} B dropped (socket gone)`);
      return true;
    }
    for (const c of chunks) p.dir.write(c);
    this.#log(s.side, `${label} ${n} B (buffered ${p.dir.buffered})`);
    return true;
  }

  #onEvent(s: SideState, event: EngineEvent): void {
    s.events.push({ at: this.now, event });
    this.#log(s.side, `event ${describeEvent(event)}`);
    switch (event.type) {
      case 'readable':
        s.readablePending = true;
        break;
      case 'writable':
        this.#flushOutbox(s);
        break;
      case 'peer-closed':
        s.peerClosed = true;
        break;
      case 'end-transport':
        this.#shutdownWrite(s, 'flush');
        break;
      case 'closed':
        s.closedInfo = event.info;
        s.closedAt = this.now;
        this.#shutdownWrite(s, 'final flush');
        s.engineClosed = true;
        s.socketClosed = true;
        break;
    }
    s.app(event, this.#context(s));
  }

  /** Writes everything the engine still has (no budget), then queues FIN after it. */
  #shutdownWrite(s: SideState, label: string): void {
    if (s.writeShut) {
      this.#write(s, s.engine.pollTransmit(this.now), label); // throws if anything comes
      return;
    }
    this.#write(s, s.engine.pollTransmit(this.now), label);
    s.writeShut = true;
    if (!s.destroyed && !s.rstSent) this.#paths[s.side].dir.end();
  }

  #maybeAutoFinish(s: SideState): boolean {
    const ready =
      this.#autoFinish &&
      s.side === 'server' &&
      s.peerClosed &&
      s.finishedAt === undefined &&
      s.outbox.length === 0 &&
      !s.readablePending &&
      s.taken.size === 0;
    if (!ready) return false;
    s.finishedAt = this.now;
    this.#log(s.side, 'finish (auto)');
    try {
      s.engine.finish(this.now);
    } catch (e) {
      if (!(e instanceof HeartwireError)) throw e;
      this.#reject(s, 'finish', e);
    }
    return true;
  }

  #context(s: SideState): SimAppContext {
    return (s.context ??= sideContext(
      s,
      this,
      () => this.#pump(s),
      (text) => this.#log(s.side, text),
    ));
  }

  // ---------------------------------------------------------------- the kernels

  /** A segment reaches the receiver's kernel. */
  #arrive(p: Path, seg: Segment): void {
    const r = p.to;
    if (r.destroyed || (r.crashed && r.crashed.mode === 'none')) return;
    if (r.socketClosed) {
      if (seg.kind === 'data') {
        this.#log(r.side, `rx ${seg.bytes.length} B on closed socket: reset`);
        this.#sendReset(r);
      }
      return;
    }
    if (seg.kind === 'data') {
      p.bytesDelivered += seg.bytes.length;
      this.#log(r.side, `rx ${seg.bytes.length} B`);
      this.#call(r, 'receive', () => r.engine.receive(this.now, seg.bytes), true);
    } else if (seg.kind === 'fin') {
      r.eofAt = this.now;
      this.#call(r, 'rx FIN', () => r.engine.receiveEnd(this.now));
    } else {
      r.resetAt = this.now;
      r.destroyed = true;
      this.#paths[r.side].dir.discard();
      this.#call(r, 'rx RST', () => r.engine.transportFailed(this.now, resetError()));
    }
  }

  /** `s`'s kernel resets the connection: its unsent bytes are dropped and RST follows what is in flight. */
  #sendReset(s: SideState): void {
    if (s.rstSent) return;
    s.rstSent = true;
    this.#paths[s.side].dir.reset();
  }
}
