/**
 * The baseline of part 4: a plain TCP socket with kernel keepalive set the way heartwire sets its
 * safety net (`applyKeepAlive(socket, idleTimeout)`: first probe after `idleTimeout`). Bytes are
 * unframed (64 KiB writes). A failure is any `'error'` or `'close'` of the socket.
 * @module
 */
import type net from 'node:net';
import { applyKeepAlive } from '../../../src/index.js';
import { wallNow } from '../lib/common.js';
import type { Failure } from './heartwire.js';
import type { Counter, PeerClient, PeerModule, PeerOptions, PeerServer } from './types.js';
import { runPump } from './types.js';
import { connectAll, listenTcp } from './tcp.js';

const CHUNK = 64 * 1024;

function watch(socket: net.Socket, failures: Failure[]): void {
  let error: string | undefined;
  socket.on('error', (e: NodeJS.ErrnoException) => (error ??= e.code ?? e.message));
  socket.on('close', () => failures.push({ t: wallNow(), code: error ?? 'closed' }));
}

class KeepaliveServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly sockets = new Set<net.Socket>();
  private paused = false;
  private readonly failures: Failure[] = [];

  constructor(private readonly idleTimeout: number) {}

  async listen(): Promise<number> {
    return listenTcp((socket) => {
      applyKeepAlive(socket, this.idleTimeout);
      this.sockets.add(socket);
      watch(socket, this.failures);
      socket.on('data', (chunk: Buffer) => {
        this.delivered.bytes += chunk.length;
      });
      if (this.paused) socket.pause();
    });
  }

  pause(): void {
    this.paused = true;
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    this.paused = false;
    for (const socket of this.sockets) socket.resume();
  }

  info(): Record<string, unknown> {
    return { connections: this.sockets.size, failures: this.failures };
  }
}

class KeepaliveClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private sockets: net.Socket[] = [];
  private pumping = false;
  private readonly failures: Failure[] = [];

  constructor(private readonly idleTimeout: number) {}

  async connect(port: number, count: number, parallel: number): Promise<void> {
    this.sockets = await connectAll(port, count, parallel);
    for (const socket of this.sockets) {
      applyKeepAlive(socket, this.idleTimeout);
      watch(socket, this.failures);
      socket.on('data', () => {});
    }
  }

  pump(): void {
    this.pumping = true;
    const chunk = new Uint8Array(CHUNK).fill(0x5a);
    for (const socket of this.sockets) {
      runPump({
        active: () => this.pumping && !socket.destroyed,
        send: () => {
          this.sent.bytes += CHUNK;
          return socket.write(chunk);
        },
        wait: (resume) => socket.once('drain', resume),
      });
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  info(): Record<string, unknown> {
    return { connections: this.sockets.filter((s) => !s.destroyed).length, failures: this.failures };
  }
}

export const peer: PeerModule = {
  createServer: (options: PeerOptions) => new KeepaliveServer((options.idleTimeout as number) ?? 20_000),
  createClient: (options: PeerOptions) => new KeepaliveClient((options.idleTimeout as number) ?? 20_000),
};
