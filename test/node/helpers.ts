/**
 * Shared helpers of the Node transport integration tests (test/node/*.test.ts): a per-test
 * harness that owns every server, connection, proxy, raw socket and child process a test
 * creates and closes them afterwards, guards against unhandled rejections and leaked handles,
 * plus payload, timing and raw-protocol utilities.
 *
 * Every wait is bounded; every bound is generous (the CI machine has 2 loaded cores).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import type { Connection } from '../../src/node/connection.js';
import type { ConnectOptions, ServerOptions } from '../../src/node/options.js';
import { createServer } from '../../src/node/server.js';
import type { Server } from '../../src/node/server.js';
import { decodeAll, encodeControlFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { wireErrorName } from '../../src/protocol/errors.js';
import type { Frame, Hello } from '../../src/protocol/frames.js';
import { FaultProxy } from '../../src/testing/fault-proxy.js';

export const LOCALHOST = '127.0.0.1';
export const now = (): number => performance.now();
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Repository root (mocha and the fixtures resolve `tsx` from here). */
export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** The child-process peer (see fixtures/peer.ts). */
export const PEER_FIXTURE = fileURLToPath(new URL('./fixtures/peer.ts', import.meta.url));

// ------------------------------------------------------------------ small utilities

/** The `code` of a heartwire error (or Node's errno code), or a description of a non-error. */
export function codeOf(error: unknown): string {
  if (error !== null && typeof error === 'object' && 'code' in error)
    return String((error as { code: unknown }).code);
  return `no code: ${String(error)}`;
}

/** Rejects with a descriptive error when `promise` does not settle within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** Polls `condition` every `interval` ms until it holds; fails after `ms`. */
export async function waitFor(
  condition: () => boolean,
  ms: number,
  what: string,
  interval = 10,
): Promise<void> {
  const deadline = now() + ms;
  while (!condition()) {
    if (now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(interval);
  }
}

export type Settled<T> = { ok: true; value: T; at: number } | { ok: false; error: unknown; at: number };

/** Observe a promise's outcome and the time it settled, without ever leaving a rejection unhandled. */
export function observe<T>(promise: Promise<T>): Promise<Settled<T>> {
  return promise.then(
    (value) => ({ ok: true as const, value, at: now() }),
    (error: unknown) => ({ ok: false as const, error, at: now() }),
  );
}

/** Expect a settled outcome to be a rejection; returns the error. */
export function rejection<T>(outcome: Settled<T>, what: string): Error & { code?: string; remote?: boolean } {
  if (outcome.ok) expect.fail(`${what} resolved (clean close) where a typed error was expected`);
  return (outcome as { error: Error & { code?: string; remote?: boolean } }).error;
}

export function sha256(...chunks: Uint8Array[]): string {
  const hash = createHash('sha256');
  for (const chunk of chunks) hash.update(chunk);
  return hash.digest('hex');
}

/** Deterministic pseudo-random bytes (xorshift32), fast enough for megabytes. */
export function pseudoRandomBytes(size: number, seed: number): Uint8Array {
  const out = new Uint8Array(size);
  let x = seed >>> 0 || 0x9e3779b9;
  let i = 0;
  for (; i + 4 <= size; i += 4) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    out[i] = x;
    out[i + 1] = x >>> 8;
    out[i + 2] = x >>> 16;
    out[i + 3] = x >>> 24;
  }
  for (; i < size; i++) out[i] = (x = (x * 1103515245 + 12345) >>> 0) >>> 24;
  return out;
}

/** A message carrying its sequence number in its first 4 bytes (big-endian), then filler. */
export function seqMessage(seq: number, size = 64): Uint8Array {
  const out = pseudoRandomBytes(Math.max(4, size), seq * 2654435761);
  new DataView(out.buffer).setUint32(0, seq);
  return out;
}

export function seqOf(message: Uint8Array): number {
  return new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(0);
}

/** Check that `received` is exactly 1 … n in order, and n ≥ `atLeast`. */
export function expectContiguous(received: readonly number[], atLeast: number, what: string): void {
  for (let i = 0; i < received.length; i++) {
    if (received[i] !== i + 1) expect.fail(`${what}: message #${i + 1} has sequence number ${received[i]}`);
  }
  expect(
    received.length,
    `${what}: received ${received.length}, but ${atLeast} sends resolved`,
  ).to.be.at.least(atLeast);
}

/** Resident set size in bytes. */
export const rss = (): number => process.memoryUsage().rss;

/** One summary line the lead collects: written to test-results/figures.txt (see test/figures.ts). */
export { report } from '../figures.js';

/**
 * Process warnings with one of `codes` (e.g. `HEARTWIRE_NO_HANDLER`), emitted by a test that
 * triggers them on purpose: from now until `stop()` they are collected in `warnings` instead of
 * reaching Node's own listener, which prints them. Every other warning still reaches it.
 */
export function captureWarnings(...codes: string[]): { warnings: Error[]; stop: () => void } {
  const others = process.listeners('warning');
  const warnings: Error[] = [];
  const listener = (warning: Error): void => {
    if (codes.includes((warning as { code?: string }).code ?? '')) warnings.push(warning);
    else for (const other of others) other.call(process, warning);
  };
  process.removeAllListeners('warning');
  process.on('warning', listener);
  return {
    warnings,
    stop() {
      process.off('warning', listener);
      for (const other of others) process.on('warning', other);
    },
  };
}

// ------------------------------------------------------------------ sending under load

/**
 * Sends sequence-numbered messages as fast as `send()` allows, with at most `inFlight` unresolved
 * sends, until `stop()` or until the connection refuses. `resolved` is the highest sequence number
 * whose `send()` resolved (they resolve in order); every send promise is tracked and `done`
 * resolves when all have settled.
 */
export class Pump {
  resolved = 0;
  attempted = 0;
  rejected = 0;
  /** First rejection reason, if any. */
  firstError: unknown;
  private stopped = false;
  private readonly pending = new Set<Promise<void>>();
  readonly done: Promise<void>;

  constructor(
    readonly connection: Connection,
    readonly options: { size?: number; inFlight?: number; max?: number; gapMs?: number } = {},
  ) {
    this.done = this.run();
  }

  stop(): void {
    this.stopped = true;
  }

  get outstanding(): number {
    return this.pending.size;
  }

  private async run(): Promise<void> {
    const inFlight = this.options.inFlight ?? 16;
    const max = this.options.max ?? Number.POSITIVE_INFINITY;
    while (!this.stopped && this.attempted < max && this.firstError === undefined) {
      if (this.pending.size >= inFlight) {
        await Promise.race(this.pending);
        continue;
      }
      const seq = ++this.attempted;
      const promise = this.connection.send(seqMessage(seq, this.options.size ?? 1024)).then(
        () => {
          this.resolved = Math.max(this.resolved, seq);
        },
        (error: unknown) => {
          this.rejected++;
          this.firstError ??= error;
        },
      );
      this.pending.add(promise);
      void promise.finally(() => this.pending.delete(promise));
      if (this.options.gapMs !== undefined) await sleep(this.options.gapMs);
      else if (this.attempted % 64 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    await Promise.all(this.pending);
  }
}

/** Reads every message of a connection with `for await`, recording sequence numbers. */
export class Reader {
  readonly seqs: number[] = [];
  bytes = 0;
  readonly done: Promise<Settled<void>>;
  constructor(
    connection: Connection,
    onMessage?: (message: Uint8Array) => void | Promise<void>,
    readonly options: { seq?: boolean } = {},
  ) {
    this.done = observe(
      (async () => {
        for await (const message of connection) {
          this.bytes += message.length;
          if (this.options.seq !== false) this.seqs.push(seqOf(message));
          if (onMessage) await onMessage(message);
        }
      })(),
    );
  }
}

// ------------------------------------------------------------------ raw protocol peers

/** Preamble + a valid HELLO, as a heartwire client opens a connection. */
export function helloBytes(overrides: Partial<Hello> = {}): Uint8Array {
  const hello: Hello = {
    versions: [1],
    extensions: [],
    idleTimeoutMs: 60_000,
    initialCredit: 65_536,
    maxFramePayload: 65_536,
    maxMessageSize: 1_000_000,
    applicationProtocols: [],
    ...overrides,
  };
  return Buffer.concat([PREAMBLE, encodeControlFrame({ type: FrameType.HELLO, hello })]);
}

/** A plain TCP socket that records everything the server sends. */
export class RawPeer {
  readonly socket: net.Socket;
  private readonly chunks: Buffer[] = [];
  /** Resolves when connected. */
  readonly connected: Promise<void>;
  /** Resolves at the socket's `close`, with the time and whether the server sent FIN first. */
  readonly closed: Promise<{ at: number; ended: boolean; error: string | undefined }>;
  ended = false;
  endedAt: number | undefined;
  private error: string | undefined;

  constructor(port: number) {
    this.socket = net.connect({ host: LOCALHOST, port, allowHalfOpen: true });
    this.socket.on('data', (chunk: Buffer) => this.chunks.push(chunk));
    this.socket.on('end', () => {
      this.ended = true;
      this.endedAt = now();
    });
    this.socket.on('error', (error: NodeJS.ErrnoException) => {
      this.error = error.code ?? error.message;
    });
    this.connected = new Promise((resolve, reject) => {
      this.socket.once('connect', () => resolve());
      this.socket.once('error', reject);
    });
    this.connected.catch(() => {});
    this.closed = new Promise((resolve) =>
      this.socket.once('close', () => resolve({ at: now(), ended: this.ended, error: this.error })),
    );
  }

  write(bytes: Uint8Array | string): void {
    if (!this.socket.destroyed && this.socket.writable) this.socket.write(bytes);
  }

  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** The server's frames (its stream starts with its preamble). */
  frames(): Frame[] {
    const bytes = this.received;
    if (bytes.length === 0) return [];
    return decodeAll(bytes, { expectPreamble: true, maxDataPayload: 16 * MiB });
  }

  /** The server's ERROR frame, if it sent one; its code by name. */
  errorFrame(): { code: number; name: string | undefined; message: string } | undefined {
    for (const frame of this.frames()) {
      if (frame.type === FrameType.ERROR) {
        return {
          code: frame.error.code,
          name: wireErrorName(frame.error.code),
          message: frame.error.message,
        };
      }
    }
    return undefined;
  }

  async waitForFrame(type: number, ms: number): Promise<Frame> {
    let found: Frame | undefined;
    await waitFor(
      () => (found = this.frames().find((f) => f.type === type)) !== undefined,
      ms,
      `frame ${type}`,
    );
    return found!;
  }
}

// ------------------------------------------------------------------ child processes

/** A child process running fixtures/peer.ts, with an IPC channel. */
export class Peer {
  readonly child: ChildProcess;
  private readonly messages: Record<string, unknown>[] = [];
  private waiters: (() => void)[] = [];
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;

  constructor(command: string, args: readonly string[], env: NodeJS.ProcessEnv = process.env) {
    this.child = spawn(command, args, {
      cwd: REPO_ROOT,
      env,
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (message: Record<string, unknown>) => {
      this.messages.push(message);
      const waiters = this.waiters;
      this.waiters = [];
      for (const wake of waiters) wake();
    });
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => resolve({ code, signal })),
    );
    this.child.on('error', () => {});
  }

  /** Run fixtures/peer.ts in a plain child process. */
  static node(mode: string, options: Record<string, unknown> = {}): Peer {
    return new Peer(process.execPath, ['--import', 'tsx', PEER_FIXTURE, mode, JSON.stringify(options)]);
  }

  /** Wait for the first message (from now on or already received) with `type`. */
  async next(type: string, ms: number): Promise<Record<string, unknown> & { at: number }> {
    const deadline = now() + ms;
    for (;;) {
      const index = this.messages.findIndex((m) => m.type === type);
      if (index >= 0) {
        const [message] = this.messages.splice(index, 1);
        return { ...message!, at: now() } as Record<string, unknown> & { at: number };
      }
      const left = deadline - now();
      if (left <= 0 || this.child.exitCode !== null || this.child.signalCode !== null) {
        throw new Error(
          `peer ${this.child.pid}: no '${type}' message within ${ms} ms (got ${JSON.stringify(this.messages)})`,
        );
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 200));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  send(message: Record<string, unknown>): void {
    if (this.child.connected) this.child.send(message);
  }

  kill(signal: NodeJS.Signals = 'SIGKILL'): void {
    if (this.child.exitCode === null && this.child.signalCode === null && this.child.pid !== undefined) {
      try {
        process.kill(this.child.pid, signal);
      } catch {
        // already gone
      }
    }
  }
}

// ------------------------------------------------------------------ the harness

const TRACKED_RESOURCES = ['TCPSocketWrap', 'TCPServerWrap', 'TLSWrap', 'Timeout', 'ProcessWrap', 'PipeWrap'];

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const name of process.getActiveResourcesInfo()) {
    if (TRACKED_RESOURCES.includes(name)) counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  return counts;
}

function leaked(baseline: Map<string, number>): string[] {
  const out: string[] = [];
  for (const [name, count] of resourceCounts()) {
    // Mocha's own timer of the (async) afterEach hook that runs this check.
    const before = (baseline.get(name) ?? 0) + (name === 'Timeout' ? 1 : 0);
    if (count > before) out.push(`${name}: ${count} (before the test: ${before})`);
  }
  return out;
}

/**
 * Send `count` messages of 18 B to 2 KiB client → server, keep every message the server reads
 * without copying it, and check them all at the end. Most of them are views of the transport's
 * read buffers (docs/IMPLEMENTATION.md, "Memory" (b)), so this fails if the transport ever reused a read buffer.
 */
export async function expectKeptMessagesIntact(
  harness: Harness,
  serverOptions: ServerOptions,
  clientOptions: ConnectOptions,
  count = 3000,
): Promise<void> {
  const kept: Uint8Array[] = [];
  const { port } = await harness.server(serverOptions, (connection) => {
    const drain = (): void => {
      for (let m = connection.read(); m !== undefined; m = connection.read()) kept.push(m);
    };
    connection.on('readable', drain);
    drain();
  });
  const client = await harness.connect({ port, ...clientOptions });
  const sizeOf = (i: number): number => 18 + ((i * 7919) % 2000);
  for (let i = 0; i < count; i++) {
    if (!client.write(pseudoRandomBytes(sizeOf(i), 5000 + i))) {
      await within(new Promise<void>((resolve) => client.once('drain', () => resolve())), 10_000, 'drain');
    }
  }
  await waitFor(() => kept.length === count, 20_000, 'every message');
  const views = kept.filter((m) => m.byteLength < m.buffer.byteLength).length;
  expect(views, 'messages that are views of a larger read buffer').to.be.greaterThan(count / 2);
  expect(new Set(kept.map((m) => m.buffer)).size, 'read buffers').to.be.greaterThan(10);
  for (let i = 0; i < count; i++) {
    expect(Buffer.from(kept[i]!).equals(pseudoRandomBytes(sizeOf(i), 5000 + i)), `message ${i}`).to.equal(
      true,
    );
  }
}

/** Server options every test starts from: the client's small idle timeouts are not clamped. */
export const baseServerOptions: ServerOptions = {
  idleTimeout: 1000,
  clientIdleTimeoutRange: [100, 60_000],
  handshakeTimeout: 5000,
};

/**
 * Owns everything a test creates. `useHarness()` installs it in a `describe`: before each test a
 * fresh harness; after each test it closes everything, then checks that no unhandled rejection
 * happened and that no socket, server, timer or child process outlives the test.
 */
export class Harness {
  readonly servers: Server[] = [];
  readonly clients: Connection[] = [];
  readonly proxies: FaultProxy[] = [];
  readonly raws: RawPeer[] = [];
  readonly peers: Peer[] = [];
  private readonly cleanups: (() => unknown)[] = [];

  /** A listening heartwire server; every handshaken connection is recorded in `connections`. */
  async server(
    options: ServerOptions = {},
    onConnection?: (connection: Connection) => void,
  ): Promise<{ server: Server; port: number; connections: Connection[]; next: () => Promise<Connection> }> {
    const server = createServer({ ...baseServerOptions, ...options });
    this.servers.push(server);
    const connections: Connection[] = [];
    let waiters: ((c: Connection) => void)[] = [];
    let taken = 0;
    server.on('connection', (connection) => {
      connections.push(connection);
      onConnection?.(connection);
      const w = waiters;
      waiters = [];
      for (const wake of w) wake(connection);
    });
    const { port } = await server.listen(0, LOCALHOST);
    const next = async (): Promise<Connection> => {
      const index = taken++;
      if (connections[index] !== undefined) return connections[index]!;
      return within(
        new Promise<Connection>((resolve) => {
          const check = (): void => {
            if (connections[index] !== undefined) resolve(connections[index]!);
            else waiters.push(check);
          };
          check();
        }),
        10_000,
        'a server connection',
      );
    };
    return { server, port, connections, next };
  }

  /** `connect()`, tracked; idle timeout 1000 unless given. */
  async connect(options: ConnectOptions): Promise<Connection> {
    const connection = await connect({ idleTimeout: 1000, host: LOCALHOST, ...options });
    this.clients.push(connection);
    return connection;
  }

  async proxy(targetPort: number): Promise<{ proxy: FaultProxy; port: number }> {
    const proxy = new FaultProxy({ target: { host: LOCALHOST, port: targetPort } });
    this.proxies.push(proxy);
    const { port } = await proxy.listen();
    return { proxy, port };
  }

  raw(port: number): RawPeer {
    const peer = new RawPeer(port);
    this.raws.push(peer);
    return peer;
  }

  peer(mode: string, options: Record<string, unknown> = {}): Peer {
    const peer = Peer.node(mode, options);
    this.peers.push(peer);
    return peer;
  }

  track(peer: Peer): Peer {
    this.peers.push(peer);
    return peer;
  }

  defer(cleanup: () => unknown): void {
    this.cleanups.push(cleanup);
  }

  /** Close everything, best effort, bounded. */
  async close(): Promise<void> {
    for (const cleanup of this.cleanups.reverse()) {
      try {
        await within(Promise.resolve(cleanup()), 5000, 'a deferred cleanup');
      } catch {
        // best effort
      }
    }
    for (const connection of this.clients) connection.abort();
    for (const raw of this.raws) raw.socket.destroy();
    for (const peer of this.peers) peer.kill();
    await Promise.all(
      this.peers.map((p) => within(p.exited, 5000, 'a child process to exit').catch(() => undefined)),
    );
    await Promise.all(
      this.proxies.map((p) => within(p.close(), 5000, 'a proxy to close').catch(() => undefined)),
    );
    for (const server of this.servers) for (const connection of server.connections) connection.abort();
    await Promise.all(
      this.servers.map((s) =>
        within(s.close({ grace: 0 }), 5000, 'a server to close').catch(() => undefined),
      ),
    );
  }
}

/**
 * Install a fresh {@link Harness} around each test of the current `describe`, with the
 * unhandled-rejection and leaked-handle checks. Returns an accessor for the current harness.
 */
export function useHarness(): () => Harness {
  let harness: Harness | undefined;
  let baseline = new Map<string, number>();
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown): void => {
    unhandled.push(reason);
  };
  before(() => {
    process.on('unhandledRejection', onUnhandled);
  });
  after(() => {
    process.off('unhandledRejection', onUnhandled);
  });
  beforeEach(() => {
    unhandled.length = 0;
    baseline = resourceCounts();
    harness = new Harness();
  });
  afterEach(async function () {
    this.timeout(30_000);
    await harness!.close();
    harness = undefined;
    // Let closes propagate (socket close callbacks, linger timers of at most 1 s after a clean
    // or ended close; a clean close may linger 5 s for a peer that never sends FIN).
    const deadline = now() + 7000;
    let left = leaked(baseline);
    while (left.length > 0 && now() < deadline) {
      await sleep(50);
      left = leaked(baseline);
    }
    const rejections = unhandled.splice(0);
    expect(
      rejections.map((r) => String(r)),
      'unhandled rejections during the test',
    ).to.deep.equal([]);
    expect(left, 'handles still active after everything was closed').to.deep.equal([]);
  });
  return () => {
    if (harness === undefined) throw new Error('no harness outside a test');
    return harness;
  };
}
