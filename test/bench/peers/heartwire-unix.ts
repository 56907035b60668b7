/**
 * heartwire over a Unix domain socket instead of TCP loopback: the `read()` + `'readable'`
 * receiver and `write()` + `'drain'` sender of `heartwire.ts`, nothing else (no probe, no pause
 * bookkeeping beyond what the throughput part needs). The "port" the server reports is its
 * process id; the socket is `<tmpdir>/heartwire-bench-<pid>.sock`.
 * @module
 */
import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer } from '../../../src/index.js';
import type { Connection, ConnectOptions, ServerOptions } from '../../../src/index.js';
import type { Counter, PeerClient, PeerModule, PeerOptions, PeerServer } from './types.js';
import { payloadSource, runPump } from './types.js';
import { openAll } from './tcp.js';

const socketPath = (id: number): string => join(tmpdir(), `heartwire-bench-${id}.sock`);

class UnixServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly connections = new Set<Connection>();
  private readonly drains = new Set<() => void>();
  private paused = false;
  private errors = 0;

  constructor(private readonly options: ServerOptions) {}

  async listen(): Promise<number> {
    const server = createServer({ maxConnections: 100_000, ...this.options }, (connection) => {
      this.connections.add(connection);
      const drain = (): void => {
        if (this.paused) return;
        for (let message = connection.read(); message !== undefined; message = connection.read()) {
          this.delivered.messages++;
          this.delivered.bytes += message.length;
          if (this.paused) return;
        }
      };
      this.drains.add(drain);
      connection.on('readable', drain);
      drain();
      void connection.closed
        .catch(() => this.errors++)
        .finally(() => {
          this.connections.delete(connection);
          this.drains.delete(drain);
        });
    });
    const path = socketPath(process.pid);
    rmSync(path, { force: true }); // a stale socket of an earlier run
    await server.listen({ path });
    return process.pid;
  }

  pause(): void {
    this.paused = true;
  }

  resume(): void {
    this.paused = false;
    for (const drain of this.drains) drain();
  }

  info(): Record<string, unknown> {
    let window = 0;
    for (const connection of this.connections) window = Math.max(window, connection.stats().receiveWindow);
    return { connections: this.connections.size, maxReceiveWindow: window, errors: this.errors };
  }
}

class UnixClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private connections: Connection[] = [];
  private pumping = false;

  constructor(private readonly options: Omit<ConnectOptions, 'port' | 'host' | 'path'>) {}

  async connect(id: number, count: number, parallel: number): Promise<void> {
    const opened = await openAll(count, parallel, () => connect({ ...this.options, path: socketPath(id) }));
    for (const connection of opened) connection.closed.catch(() => {});
    this.connections.push(...opened);
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    for (const connection of this.connections) {
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
            open = false;
            return true;
          }
        },
        wait: (resume) => connection.once('drain', resume),
      });
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  info(): Record<string, unknown> {
    return { connections: this.connections.filter((c) => c.state !== 'closed').length };
  }
}

export const peer: PeerModule = {
  createServer: (options: PeerOptions) => new UnixServer((options.server ?? {}) as ServerOptions),
  createClient: (options: PeerOptions) => new UnixClient((options.client ?? {}) as ConnectOptions),
};
