/**
 * (e) The byte ceiling: unframed bytes on a TCP socket, written 64 KiB at a time. No messages,
 * no liveness; its msgs/s is MB/s ÷ message size.
 * @module
 */
import type net from 'node:net';
import type { Counter, PeerClient, PeerModule, PeerServer } from './types.js';
import { runPump } from './types.js';
import { connectAll, listenTcp } from './tcp.js';

const CHUNK = 64 * 1024;

class BulkServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly sockets = new Set<net.Socket>();

  async listen(): Promise<number> {
    return listenTcp((socket) => {
      this.sockets.add(socket);
      socket.on('data', (chunk: Buffer) => {
        this.delivered.bytes += chunk.length;
      });
      socket.on('error', () => {});
      socket.on('close', () => this.sockets.delete(socket));
    });
  }

  pause(): void {
    for (const socket of this.sockets) socket.pause();
  }

  resume(): void {
    for (const socket of this.sockets) socket.resume();
  }

  info(): Record<string, unknown> {
    return { connections: this.sockets.size };
  }
}

class BulkClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private sockets: net.Socket[] = [];
  private pumping = false;

  async connect(port: number, count: number, parallel: number): Promise<void> {
    this.sockets = await connectAll(port, count, parallel);
    for (const socket of this.sockets) socket.on('error', () => {});
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
    return { connections: this.sockets.length };
  }
}

export const peer: PeerModule = {
  createServer: () => new BulkServer(),
  createClient: () => new BulkClient(),
};
