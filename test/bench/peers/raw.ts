/**
 * (a) The practical limit: the bench's own length-prefixed framing straight on a TCP socket,
 * small frames batched into 256 KiB writes (see `lib/framing.ts`). Ping/pong frames for liveness.
 * @module
 */
import net from 'node:net';
import { BatchWriter, FrameParser, Kind, readSeq, seqPayload } from '../lib/framing.js';
import type { Counter, PeerClient, PeerModule, PeerServer, ProbeRecorder } from './types.js';
import { payloadSource, runPump } from './types.js';
import { connectAll, listenTcp } from './tcp.js';

class RawServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly sockets = new Set<net.Socket>();
  private paused = false;
  private readonly errors: string[] = [];

  async listen(): Promise<number> {
    return listenTcp((socket) => {
      this.sockets.add(socket);
      socket.setNoDelay(true);
      const delivered = this.delivered;
      const parser = new FrameParser((kind, payload) => {
        if (kind === Kind.DATA) {
          delivered.messages++;
          delivered.bytes += payload.length;
        } else if (kind === Kind.PING) {
          // Answer at once, on a socket that carries nothing else this way.
          const pong = new Uint8Array(8);
          pong.set([0x80, 0, 0, 4], 0);
          pong.set(payload.subarray(0, 4), 4);
          socket.write(pong);
        }
      });
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', (error) => this.errors.push(error.message));
      socket.on('close', () => this.sockets.delete(socket));
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
    let readable = 0;
    for (const socket of this.sockets) readable += socket.readableLength;
    return { connections: this.sockets.size, userSpaceBufferedBytes: readable, errors: this.errors };
  }
}

class RawClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private sockets: net.Socket[] = [];
  private writers: BatchWriter[] = [];
  private pumping = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private probe: ProbeRecorder | undefined;
  private readonly errors: string[] = [];

  async connect(port: number, count: number, parallel: number): Promise<void> {
    this.sockets = await connectAll(port, count, parallel);
    for (const socket of this.sockets) {
      const parser = new FrameParser((kind, payload) => {
        if (kind === Kind.PONG) this.probe?.answer(readSeq(payload));
      });
      socket.on('data', (chunk: Buffer) => parser.push(chunk));
      socket.on('error', (error) => this.errors.push(error.message));
      this.writers.push(new BatchWriter(socket));
    }
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    this.sockets.forEach((socket, index) => {
      const writer = this.writers[index]!;
      runPump({
        active: () => this.pumping && !socket.destroyed,
        send: () => {
          sent.messages++;
          sent.bytes += size;
          return writer.write(Kind.DATA, next());
        },
        wait: (resume) => socket.once('drain', resume),
        flush: () => writer.flush(),
      });
    });
  }

  stopPump(): void {
    this.pumping = false;
  }

  startProbe(intervalMs: number, probe: ProbeRecorder): void {
    this.probe = probe;
    const writer = this.writers[0]!;
    // The ping goes behind whatever this connection has queued: that is what is measured.
    this.probeTimer = setInterval(() => {
      writer.write(Kind.PING, seqPayload(probe.ping()));
      writer.flush();
    }, intervalMs);
  }

  stopProbe(): void {
    clearInterval(this.probeTimer);
  }

  info(): Record<string, unknown> {
    return { connections: this.sockets.filter((s) => !s.destroyed).length, errors: this.errors };
  }
}

export const peer: PeerModule = {
  createServer: () => new RawServer(),
  createClient: () => new RawClient(),
};
