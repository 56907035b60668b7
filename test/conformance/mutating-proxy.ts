/**
 * A TCP proxy on 127.0.0.1 that parses heartwire frames in both directions and lets a test
 * rewrite or drop them: a correct server behind it becomes a deliberately broken one.
 */
import net from 'node:net';
import type { AddressInfo, Server, Socket } from 'node:net';

/** `up`: client → server; `down`: server → client. */
export type Direction = 'up' | 'down';

/** A frame as the proxy sees it. */
export interface ProxyFrame {
  type: number;
  flags: number;
  payload: Uint8Array;
}

export interface Mutator {
  /** Rewrites preamble byte `index` (0–7) of a direction (default: unchanged). */
  preambleByte?(direction: Direction, index: number, byte: number): number;
  /** Frame types `frame` wants to see; others stream through unbuffered (default: every type). */
  types?: readonly number[];
  /** Returns the frame to forward (possibly changed), or null to drop it (default: unchanged). */
  frame?(direction: Direction, frame: ProxyFrame): ProxyFrame | null;
  /** When the server half-closes, reset the client's connection instead of passing the FIN on. */
  resetOnServerEnd?: boolean;
}

function encode(frame: ProxyFrame): Buffer {
  const out = Buffer.alloc(6 + frame.payload.length);
  out.writeUInt32BE(frame.payload.length, 0);
  out[4] = frame.type;
  out[5] = frame.flags;
  out.set(frame.payload, 6);
  return out;
}

/** Parses one direction and forwards what the mutator returns. */
class Pipe {
  private preambleIndex = 0;
  private buffer = Buffer.alloc(0);
  /** Payload bytes of the current frame still to stream through unparsed. */
  private passthrough = 0;
  constructor(
    private readonly direction: Direction,
    private readonly to: Socket,
    private readonly mutator: Mutator,
  ) {}

  push(chunk: Buffer): void {
    let data = chunk;
    if (this.preambleIndex < 8) {
      const n = Math.min(8 - this.preambleIndex, data.length);
      const head = Buffer.from(data.subarray(0, n));
      for (let i = 0; i < n; i++) {
        head[i] = this.mutator.preambleByte?.(this.direction, this.preambleIndex + i, head[i]!) ?? head[i]!;
      }
      this.preambleIndex += n;
      this.write(head);
      data = data.subarray(n);
    }
    this.buffer = this.buffer.length === 0 ? Buffer.from(data) : Buffer.concat([this.buffer, data]);
    for (;;) {
      if (this.passthrough > 0) {
        const n = Math.min(this.passthrough, this.buffer.length);
        this.write(this.buffer.subarray(0, n));
        this.buffer = this.buffer.subarray(n);
        this.passthrough -= n;
        if (this.passthrough > 0) return;
      }
      if (this.buffer.length < 6) return;
      const length = this.buffer.readUInt32BE(0);
      const types = this.mutator.types;
      if (this.mutator.frame === undefined || (types !== undefined && !types.includes(this.buffer[4]!))) {
        this.write(this.buffer.subarray(0, 6));
        this.buffer = this.buffer.subarray(6);
        this.passthrough = length;
        continue;
      }
      if (length > 64 * 1024 * 1024) {
        // Not a frame we can hold: pass the rest through untouched.
        this.write(this.buffer);
        this.buffer = Buffer.alloc(0);
        this.preambleIndex = Number.POSITIVE_INFINITY;
        return;
      }
      if (this.buffer.length < 6 + length) return;
      const frame: ProxyFrame = {
        type: this.buffer[4]!,
        flags: this.buffer[5]!,
        payload: new Uint8Array(this.buffer.subarray(6, 6 + length)),
      };
      this.buffer = this.buffer.subarray(6 + length);
      const out = this.mutator.frame === undefined ? frame : this.mutator.frame(this.direction, frame);
      if (out !== null) this.write(encode(out));
    }
  }

  private write(bytes: Buffer): void {
    if (bytes.length > 0 && !this.to.destroyed && !this.to.writableEnded) this.to.write(bytes);
  }
}

/** A frame-rewriting proxy in front of `upstream`. */
export class MutatingProxy {
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor(
    private readonly upstreamPort: number,
    private readonly mutator: Mutator,
  ) {
    this.server = net.createServer({ allowHalfOpen: true }, (client) => this.accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as AddressInfo).port;
  }

  private accept(client: Socket): void {
    const upstream = net.connect({ host: '127.0.0.1', port: this.upstreamPort, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      this.sockets.add(s);
      s.setNoDelay(true);
      s.on('close', () => this.sockets.delete(s));
    }
    const up = new Pipe('up', upstream, this.mutator);
    const down = new Pipe('down', client, this.mutator);
    client.on('data', (chunk: Buffer) => up.push(chunk));
    upstream.on('data', (chunk: Buffer) => down.push(chunk));
    client.on('end', () => upstream.end());
    upstream.on('end', () => {
      if (this.mutator.resetOnServerEnd === true) client.resetAndDestroy();
      else client.end();
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
