/**
 * (d) `@chainsafe/libp2p-yamux` over TCP (see `lib/yamux-socket.ts`), one stream per connection
 * carrying the bench's length-prefixed messages, batched like the raw framing. The sender waits
 * for the stream's `'drain'` event (re-checked every 100 ms): `stream.onDrain()` in
 * @libp2p/utils 7.4 resolves at once after its first use (see the peer research).
 * Liveness: `muxer.ping()`, which allows one ping in flight.
 * @module
 */
import type { Stream } from '@libp2p/interface';
import { BatchWriter, FrameParser, Kind } from '../lib/framing.js';
import type { ByteSink } from '../lib/framing.js';
import { yamuxOverSocket } from '../lib/yamux-socket.js';
import type { YamuxMuxer } from '../lib/yamux-socket.js';
import type { Counter, PeerClient, PeerModule, PeerServer, ProbeRecorder } from './types.js';
import { payloadSource, runPump } from './types.js';
import { connectAll, listenTcp } from './tcp.js';

/** Feed a yamux `'message'` payload (one buffer or a list) to a parser. */
function feed(parser: FrameParser, data: Uint8Array | Iterable<Uint8Array>): void {
  if (data instanceof Uint8Array) parser.push(data);
  else for (const buf of data) parser.push(buf);
}

/** A stream as a byte sink. yamux keeps references to what it is given: batches are never reused. */
function streamSink(stream: Stream): ByteSink {
  return {
    write: (chunk) => stream.send(chunk),
    cork: () => {},
    uncork: () => {},
  };
}

/** Resolve on the stream's next `'drain'`, or when a 100 ms re-check finds it writable again. */
function waitDrain(stream: Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      clearInterval(timer);
      stream.removeEventListener('drain', done);
      resolve();
    };
    const timer = setInterval(() => {
      if (!stream.writableNeedsDrain || stream.status !== 'open') done();
    }, 100);
    stream.addEventListener('drain', done);
  });
}

class YamuxServer implements PeerServer {
  readonly delivered: Counter = { messages: 0, bytes: 0 };
  private readonly streams = new Set<Stream>();
  private paused = false;
  private readonly errors: string[] = [];

  async listen(): Promise<number> {
    return listenTcp((socket) => {
      socket.setNoDelay(true);
      const muxer = yamuxOverSocket(socket, 'inbound');
      muxer.addEventListener('stream', (event) => {
        const stream = event.detail;
        this.streams.add(stream);
        const delivered = this.delivered;
        const parser = new FrameParser((kind, payload) => {
          if (kind !== Kind.DATA) return;
          delivered.messages++;
          delivered.bytes += payload.length;
        });
        stream.addEventListener('message', (message) => feed(parser, message.data));
        stream.addEventListener('close', (close) => {
          if (close.error !== undefined) this.errors.push(close.error.message);
          this.streams.delete(stream);
        });
        if (this.paused) stream.pause();
      });
    });
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
    for (const stream of this.streams) readable += stream.readBufferLength;
    return { connections: this.streams.size, userSpaceBufferedBytes: readable, errors: this.errors };
  }
}

interface Link {
  muxer: YamuxMuxer;
  stream: Stream;
  writer: BatchWriter;
}

class YamuxClient implements PeerClient {
  readonly sent: Counter = { messages: 0, bytes: 0 };
  private links: Link[] = [];
  private pumping = false;
  private probeTimer: NodeJS.Timeout | undefined;
  private readonly errors: string[] = [];

  async connect(port: number, count: number, parallel: number): Promise<void> {
    const sockets = await connectAll(port, count, parallel);
    this.links = await Promise.all(
      sockets.map(async (socket) => {
        const muxer = yamuxOverSocket(socket, 'outbound');
        const stream = await muxer.createStream();
        stream.addEventListener('close', (close: { error?: Error }) => {
          if (close.error !== undefined) this.errors.push(close.error.message);
        });
        return { muxer, stream, writer: new BatchWriter(streamSink(stream)) };
      }),
    );
  }

  pump(size: number, fresh: boolean): void {
    this.pumping = true;
    const next = payloadSource(size, fresh);
    const sent = this.sent;
    for (const { stream, writer } of this.links) {
      runPump({
        active: () => this.pumping && stream.status === 'open',
        send: () => {
          sent.messages++;
          sent.bytes += size;
          return writer.write(Kind.DATA, next());
        },
        wait: (resume) => void waitDrain(stream).then(resume),
        flush: () => writer.flush(),
      });
    }
  }

  stopPump(): void {
    this.pumping = false;
  }

  startProbe(intervalMs: number, probe: ProbeRecorder): void {
    const muxer = this.links[0]!.muxer;
    this.probeTimer = setInterval(() => {
      if (probe.inFlight > 0) return; // yamux allows one ping in flight
      const seq = probe.ping();
      muxer.ping().then(
        () => probe.answer(seq),
        () => {},
      );
    }, intervalMs);
  }

  stopProbe(): void {
    clearInterval(this.probeTimer);
  }

  info(): Record<string, unknown> {
    return { connections: this.links.filter((l) => l.stream.status === 'open').length, errors: this.errors };
  }
}

export const peer: PeerModule = {
  createServer: () => new YamuxServer(),
  createClient: () => new YamuxClient(),
};
