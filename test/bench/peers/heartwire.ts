/**
 * heartwire through its public API, written the way the README shows each path. The sender
 * (`send`): `write()` + `'drain'` (default) or `await send()` in a plain loop. The receiver
 * (`receive`): `read()` + `'readable'` (default, the synchronous fast path), `for await`, or
 * `handle()` with a synchronous handler, an async one, or an async one at concurrency 16. RTT
 * samples are heartwire's own heartbeat RTTs (`'rtt'` events), so their rate follows
 * `idleTimeout` (a third of it).
 * @module
 */
import { connect, createServer } from '../../../src/index.js';
import type { Connection, ConnectOptions, ServerOptions } from '../../../src/index.js';
import { describeError, now, wallNow } from '../lib/common.js';
import type { Counter, PeerClient, PeerModule, PeerOptions, PeerServer, ProbeRecorder } from './types.js';
import { payloadSource, runPump } from './types.js';
import { openAll } from './tcp.js';

/** Longest the `await send()` loop runs before it yields to the event loop, ms (as `runPump`). */
const SLICE_MS = 5;

/** How the server application takes messages. */
export type ReceiveMode = 'read' | 'iterate' | 'handle-sync' | 'handle-async' | 'handle16-async';
/** How the client application gives messages. */
export type SendMode = 'write' | 'send';

/** A connection that ended uncleanly: when (wall clock) and why. */
export interface Failure {
  t: number;
  code: string;
}

function errorCode(error: unknown): string {
  const code = (error as { code?: unknown } | undefined)?.code;
  return code === undefined ? describeError(error) : String(code);
}

/** Record the unclean end of `connection` into `failures`. */
function watch(connection: Connection, failures: Failure[]): void {
  connection.closed.catch((error: unknown) => failures.push({ t: wallNow(), code: errorCode(error) }));
}

class HeartwireServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly connections = new Set<Connection>();
  private paused = false;
  private resumed: Promise<void> = Promise.resolve();
  private wake: () => void = () => {};
  /** `read` mode: drain functions of the open connections, called again on resume. */
  private readonly drains = new Set<() => void>();
  private probe: ProbeRecorder | undefined;
  private readonly failures: Failure[] = [];

  constructor(
    private readonly options: ServerOptions,
    private readonly receive: ReceiveMode,
  ) {}

  async listen(): Promise<number> {
    const server = createServer({ maxConnections: 100_000, ...this.options }, (connection) => {
      this.connections.add(connection);
      watch(connection, this.failures);
      void connection.closed.catch(() => {}).finally(() => this.connections.delete(connection));
      if (this.probe !== undefined && this.connections.size === 1) this.attachProbe(connection);
      void this.consume(connection).catch(() => {}); // failures are recorded by watch()
    });
    const { port } = await server.listen(0, '127.0.0.1');
    return port;
  }

  private async consume(connection: Connection): Promise<void> {
    const delivered = this.delivered;
    if (this.receive === 'read') {
      const drain = (): void => {
        if (this.paused) return;
        for (let message = connection.read(); message !== undefined; message = connection.read()) {
          delivered.messages++;
          delivered.bytes += message.length;
          if (this.paused) return;
        }
      };
      this.drains.add(drain);
      connection.on('readable', drain);
      drain();
      await connection.closed.finally(() => this.drains.delete(drain));
      return;
    }
    if (this.receive === 'handle-sync') {
      await connection.handle((message) => {
        delivered.messages++;
        delivered.bytes += message.length;
        return this.paused ? this.resumed : undefined;
      });
      return;
    }
    if (this.receive === 'handle-async' || this.receive === 'handle16-async') {
      await connection.handle(
        async (message) => {
          delivered.messages++;
          delivered.bytes += message.length;
          if (this.paused) await this.resumed;
        },
        { concurrency: this.receive === 'handle16-async' ? 16 : 1 },
      );
      return;
    }
    for await (const message of connection) {
      delivered.messages++;
      delivered.bytes += message.length;
      if (this.paused) await this.resumed;
    }
  }

  private attachProbe(connection: Connection): void {
    connection.on('rtt', (ms) => this.probe?.sample(ms));
  }

  pause(): void {
    if (this.paused) return;
    this.paused = true;
    this.resumed = new Promise((resolve) => (this.wake = resolve));
  }

  resume(): void {
    this.paused = false;
    this.wake();
    for (const drain of this.drains) drain();
  }

  startProbe(probe: ProbeRecorder): void {
    this.probe = probe;
    const first = this.connections.values().next().value;
    if (first !== undefined) this.attachProbe(first);
  }

  info(): Record<string, unknown> {
    let held = 0;
    let window = 0;
    for (const connection of this.connections) {
      const stats = connection.stats();
      held += stats.heldBytes;
      window = Math.max(window, stats.receiveWindow);
    }
    return {
      connections: this.connections.size,
      heldBytes: held,
      maxReceiveWindow: window,
      failures: this.failures,
    };
  }
}

class HeartwireClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private connections: Connection[] = [];
  private pumping = false;
  private readonly failures: Failure[] = [];
  private onRtt: ((ms: number) => void) | undefined;

  constructor(
    private readonly options: Omit<ConnectOptions, 'port' | 'host'>,
    private readonly mode: SendMode,
  ) {}

  async connect(port: number, count: number, parallel: number): Promise<void> {
    // Adds to the connections opened before (the idle part opens a few first).
    const opened = await openAll(count, parallel, () =>
      connect({ ...this.options, host: '127.0.0.1', port }),
    );
    for (const connection of opened) watch(connection, this.failures);
    this.connections.push(...opened);
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    for (const connection of this.connections) {
      if (this.mode === 'send') {
        void this.sendLoop(connection, next, size);
        continue;
      }
      let open = true;
      runPump({
        active: () => this.pumping && open,
        send: () => {
          try {
            const ok = connection.write(next());
            sent.messages++;
            sent.bytes += size;
            return ok;
          } catch {
            open = false; // the connection closed: its failure is recorded by watch()
            return true;
          }
        },
        wait: (resume) => connection.once('drain', resume),
      });
    }
  }

  /**
   * `await send()` in a plain loop, as the README shows it. The loop also yields (setImmediate)
   * every {@link SLICE_MS} ms, as `runPump` does: promises that resolve at once would otherwise
   * starve the bench's IPC and timers.
   */
  private async sendLoop(connection: Connection, next: () => Uint8Array, size: number): Promise<void> {
    const sent = this.sent;
    let until = now() + SLICE_MS;
    let count = 0;
    try {
      while (this.pumping) {
        await connection.send(next());
        sent.messages++;
        sent.bytes += size;
        if ((++count & 127) === 0 && now() > until) {
          await new Promise((resolve) => setImmediate(resolve));
          until = now() + SLICE_MS;
        }
      }
    } catch {
      // the connection closed: its failure is recorded by watch()
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  startProbe(_intervalMs: number, probe: ProbeRecorder): void {
    this.onRtt = (ms) => probe.sample(ms);
    this.connections[0]?.on('rtt', this.onRtt);
  }

  stopProbe(): void {
    if (this.onRtt !== undefined) this.connections[0]?.off('rtt', this.onRtt);
  }

  info(): Record<string, unknown> {
    const first = this.connections[0]?.stats();
    return {
      connections: this.connections.filter((c) => c.state !== 'closed').length,
      failures: this.failures,
      first:
        first === undefined
          ? undefined
          : {
              queuedBytes: first.queuedBytes,
              socketBufferedBytes: first.socketBufferedBytes,
              creditBlockedMs: first.creditBlockedMs,
              heartbeatsSent: first.heartbeatsSent,
              heartbeatsReceived: first.heartbeatsReceived,
            },
    };
  }
}

export const peer: PeerModule = {
  createServer: (options: PeerOptions) =>
    new HeartwireServer(
      (options.server ?? {}) as ServerOptions,
      (options.receive as ReceiveMode | undefined) ?? 'read',
    ),
  createClient: (options: PeerOptions) =>
    new HeartwireClient(
      (options.client ?? {}) as ConnectOptions,
      (options.send as SendMode | undefined) ?? 'write',
    ),
};
