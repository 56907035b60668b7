/**
 * (c) `node:http2`, cleartext, one POST stream per connection carrying the bench's
 * length-prefixed messages, batched like the raw framing. `window` (bytes) sets the server's
 * stream and connection receive windows; without it node's defaults (64 KiB) apply.
 * Liveness: `session.ping()`.
 * @module
 */
import http2 from 'node:http2';
import type net from 'node:net';
import { BatchWriter, FrameParser, Kind } from '../lib/framing.js';
import type { Counter, PeerClient, PeerModule, PeerOptions, PeerServer, ProbeRecorder } from './types.js';
import { payloadSource, runPump } from './types.js';
import { openAll } from './tcp.js';

class Http2Server implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly streams = new Set<http2.ServerHttp2Stream>();
  private paused = false;
  private readonly errors: string[] = [];

  constructor(private readonly window: number | undefined) {}

  async listen(): Promise<number> {
    const settings = this.window === undefined ? {} : { initialWindowSize: this.window };
    const server = http2.createServer({ settings, maxSessionMemory: 1024 });
    server.on('session', (session) => {
      if (this.window !== undefined) session.setLocalWindowSize(this.window);
      session.on('error', (error) => this.errors.push(error.message));
    });
    server.on('stream', (stream) => {
      this.streams.add(stream);
      stream.respond({ ':status': 200 });
      const delivered = this.delivered;
      const parser = new FrameParser((kind, payload) => {
        if (kind !== Kind.DATA) return;
        delivered.messages++;
        delivered.bytes += payload.length;
      });
      stream.on('data', (chunk: Buffer) => parser.push(chunk));
      stream.on('error', (error) => this.errors.push(error.message));
      stream.on('close', () => this.streams.delete(stream));
      if (this.paused) stream.pause();
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return (server.address() as net.AddressInfo).port;
  }

  pause(): void {
    this.paused = true;
    for (const stream of this.streams) stream.pause();
  }

  resume(): void {
    this.paused = false;
    for (const stream of this.streams) stream.resume();
  }

  info(): Record<string, unknown> {
    let readable = 0;
    for (const stream of this.streams) readable += stream.readableLength;
    return { connections: this.streams.size, userSpaceBufferedBytes: readable, errors: this.errors };
  }
}

interface Link {
  session: http2.ClientHttp2Session;
  stream: http2.ClientHttp2Stream;
  writer: BatchWriter;
}

class Http2Client implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private links: Link[] = [];
  private pumping = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly errors: string[] = [];

  async connect(port: number, count: number, parallel: number): Promise<void> {
    this.links = await openAll(
      count,
      parallel,
      () =>
        new Promise<Link>((resolve, reject) => {
          const session = http2.connect(`http://127.0.0.1:${port}`, { maxOutstandingPings: 1000 });
          session.once('error', reject);
          session.once('connect', () => {
            session.off('error', reject);
            session.on('error', (error) => this.errors.push(error.message));
            const stream = session.request({ ':method': 'POST', ':path': '/' });
            stream.on('error', (error) => this.errors.push(error.message));
            resolve({ session, stream, writer: new BatchWriter(stream) });
          });
        }),
    );
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    for (const { stream, writer } of this.links) {
      runPump({
        active: () => this.pumping && !stream.destroyed,
        send: () => {
          sent.messages++;
          sent.bytes += size;
          return writer.write(Kind.DATA, next());
        },
        wait: (resume) => stream.once('drain', resume),
        flush: () => writer.flush(),
      });
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  startProbe(intervalMs: number, probe: ProbeRecorder): void {
    const session = this.links[0]!.session;
    this.probeTimer = setInterval(() => {
      const seq = probe.ping();
      session.ping((error) => {
        if (error === null) probe.answer(seq);
      });
    }, intervalMs);
  }

  stopProbe(): void {
    clearInterval(this.probeTimer);
  }

  info(): Record<string, unknown> {
    return { connections: this.links.filter((l) => !l.session.destroyed).length, errors: this.errors };
  }
}

export const peer: PeerModule = {
  createServer: (options: PeerOptions) => new Http2Server(options.window as number | undefined),
  createClient: () => new Http2Client(),
};
