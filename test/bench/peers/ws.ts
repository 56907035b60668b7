/**
 * (b) `ws`: binary messages, no compression (`perMessageDeflate: false`), one `send()` per
 * message; the sender waits for the socket's `'drain'` once `bufferedAmount` reaches 256 KiB.
 * Liveness: `ws.ping()`, answered by ws's automatic pong. Masking is pure JS unless the optional
 * `bufferutil` is installed (it is not, here). With `idlePingMs`, the server pings every
 * connection on its own jittered timer (±10 %), like heartwire's heartbeats (part 5's baseline).
 * @module
 */
import type net from 'node:net';
import { WebSocket, WebSocketServer } from 'ws';
import { readSeq, seqPayload } from '../lib/framing.js';
import type { Counter, PeerClient, PeerModule, PeerOptions, PeerServer, ProbeRecorder } from './types.js';
import { payloadSource, runPump } from './types.js';
import { openAll } from './tcp.js';

const HIGH_WATER = 256 * 1024;

/** The ws socket underneath (ws exposes no drain event of its own). */
function rawSocket(ws: WebSocket): net.Socket {
  return (ws as unknown as { _socket: net.Socket })._socket;
}

class WsServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly clients = new Set<WebSocket>();
  private paused = false;
  private readonly errors: string[] = [];

  constructor(private readonly idlePingMs: number | undefined) {}

  /** Ping `ws` every `idlePingMs` ± 10 % (first one at a random phase) until it closes. */
  private schedulePings(ws: WebSocket, period: number): void {
    let timer: NodeJS.Timeout;
    const next = (delay: number): void => {
      timer = setTimeout(() => {
        if (ws.readyState !== WebSocket.OPEN) return;
        ws.ping();
        next(period * (0.9 + 0.2 * Math.random()));
      }, delay);
    };
    next(period * Math.random());
    ws.once('close', () => clearTimeout(timer));
  }

  async listen(): Promise<number> {
    const server = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      perMessageDeflate: false,
      maxPayload: 64 << 20,
    });
    server.on('connection', (ws) => {
      this.clients.add(ws);
      rawSocket(ws).setNoDelay(true);
      ws.on('message', (data: Buffer) => {
        this.delivered.messages++;
        this.delivered.bytes += data.length;
      });
      ws.on('error', (error) => this.errors.push(error.message));
      ws.on('close', (code, reason) => {
        if (code !== 1000 && code !== 1005) this.errors.push(`closed ${code} ${reason.toString()}`);
        this.clients.delete(ws);
      });
      if (this.paused) ws.pause();
      if (this.idlePingMs !== undefined) this.schedulePings(ws, this.idlePingMs);
    });
    await new Promise<void>((resolve) => server.once('listening', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  pause(): void {
    this.paused = true;
    for (const ws of this.clients) ws.pause();
  }

  resume(): void {
    this.paused = false;
    for (const ws of this.clients) ws.resume();
  }

  info(): Record<string, unknown> {
    let readable = 0;
    for (const ws of this.clients) readable += rawSocket(ws).readableLength;
    return { connections: this.clients.size, userSpaceBufferedBytes: readable, errors: this.errors };
  }
}

class WsClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private sockets: WebSocket[] = [];
  private pumping = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly errors: string[] = [];

  async connect(port: number, count: number, parallel: number): Promise<void> {
    // Adds to the sockets opened before (the idle part opens a few first).
    const opened = await openAll(
      count,
      parallel,
      () =>
        new Promise<WebSocket>((resolve, reject) => {
          const ws = new WebSocket(`ws://127.0.0.1:${port}/`, {
            perMessageDeflate: false,
            maxPayload: 64 << 20,
          });
          ws.once('open', () => {
            rawSocket(ws).setNoDelay(true);
            resolve(ws);
          });
          ws.once('error', reject);
        }),
    );
    for (const ws of opened) {
      ws.on('error', (error) => this.errors.push(error.message));
      ws.on('close', (code) => {
        if (code !== 1000 && code !== 1005) this.errors.push(`closed ${code}`);
      });
    }
    this.sockets.push(...opened);
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    for (const ws of this.sockets) {
      const socket = rawSocket(ws);
      runPump({
        active: () => this.pumping && ws.readyState === WebSocket.OPEN,
        send: () => {
          ws.send(next(), { binary: true });
          sent.messages++;
          sent.bytes += size;
          return ws.bufferedAmount < HIGH_WATER;
        },
        wait: (resume) => socket.once('drain', resume),
      });
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  startProbe(intervalMs: number, probe: ProbeRecorder): void {
    const ws = this.sockets[0]!;
    ws.on('pong', (data: Buffer) => probe.answer(readSeq(data)));
    this.probeTimer = setInterval(() => {
      if (ws.readyState === WebSocket.OPEN) ws.ping(seqPayload(probe.ping()));
    }, intervalMs);
  }

  stopProbe(): void {
    clearInterval(this.probeTimer);
  }

  info(): Record<string, unknown> {
    return {
      connections: this.sockets.filter((ws) => ws.readyState === WebSocket.OPEN).length,
      errors: this.errors,
    };
  }
}

export const peer: PeerModule = {
  createServer: (options: PeerOptions) => new WsServer(options.idlePingMs as number | undefined),
  createClient: () => new WsClient(),
};
