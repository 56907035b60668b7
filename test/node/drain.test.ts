/**
 * SPEC.md §11, "Closing the transport after ERROR": a connection that has sent ERROR half-closes
 * the transport and reads and discards what still arrives, for a bounded time and a bounded number
 * of bytes, before it closes it (closing with unread input would reset the connection, and the
 * reset can destroy the ERROR before the peer reads it). Driven through a stand-in socket, so the
 * calls the connection makes are observed exactly.
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { expect } from 'chai';
import { decodeAll, encodeControlFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import { Connection } from '../../src/node/connection.js';
import { createServer } from '../../src/node/server.js';
import { concatBytes as concat } from '../../src/testing/arbitraries.js';

/** The parts of a `net.Socket` a `Connection` uses, recording what it is asked to do. */
class StandInSocket extends EventEmitter {
  readonly written: Uint8Array[] = [];
  writableLength = 0;
  destroyed = false;
  ended = false;
  /** Bytes written after `end()` (there must be none). */
  writtenAfterEnd = 0;
  remoteAddress = '127.0.0.1';
  remotePort = 1;
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(chunk: Uint8Array, callback?: () => void): boolean {
    if (this.ended) this.writtenAfterEnd += chunk.length;
    this.written.push(chunk.slice());
    callback?.();
    return true;
  }
  end(chunk?: Uint8Array): this {
    if (chunk !== undefined) this.write(chunk);
    this.ended = true;
    return this;
  }
  destroy(): this {
    if (!this.destroyed) {
      this.destroyed = true;
      queueMicrotask(() => this.emit('close', false));
    }
    return this;
  }
  /** Bytes arriving from the peer. */
  receive(bytes: Uint8Array): void {
    this.emit('data', Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
  }
}

describe('Connection: closing the transport after ERROR (SPEC.md §11)', () => {
  it('sends ERROR, half-closes, then drains at most 1 MiB before closing', async () => {
    const socket = new StandInSocket();
    const connection = new Connection(
      'server',
      socket as unknown as Socket,
      new Engine({ role: 'server' }),
      {},
    );
    connection.closed.catch(() => {});
    const hello = encodeControlFrame({
      type: FrameType.HELLO,
      hello: {
        versions: [99],
        extensions: [],
        idleTimeoutMs: 1000,
        initialCredit: 65536,
        maxFramePayload: 65536,
        maxMessageSize: 65536,
        applicationProtocols: [],
      },
    });
    // The peer's HELLO, and more bytes behind it that the server will never process.
    socket.receive(concat([PREAMBLE, hello, new Uint8Array(1000)]));

    const frames = decodeAll(concat(socket.written), { expectPreamble: true, maxDataPayload: 65536 });
    expect(frames).to.have.length(1);
    expect(frames[0]!.type === FrameType.ERROR && frames[0].error.code).to.equal(5); // UNSUPPORTED_VERSION
    expect(socket.ended, 'half-closed after the ERROR').to.equal(true);
    expect(socket.writtenAfterEnd).to.equal(0);
    expect(socket.destroyed, 'still reading').to.equal(false);

    // The peer keeps sending: read and discarded, up to the bound.
    for (let i = 0; i < 8; i++) socket.receive(new Uint8Array(128 * 1024)); // 1 MiB
    expect(socket.destroyed, 'within the drain bound').to.equal(false);
    socket.receive(new Uint8Array(1));
    expect(socket.destroyed, 'past the drain bound').to.equal(true);
    const error = await connection.closed.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).to.have.property('code', 'UNSUPPORTED_VERSION');
  });

  it('a refused connection is answered with ERROR REFUSED, half-closed and drained at most 1 MiB', () => {
    // A handler: without one the socket would be refused for that (HEARTWIRE_NO_HANDLER), not the limit.
    const server = createServer({ maxConnections: 0 }, () => {});
    const socket = new StandInSocket();
    // What the listener does with each accepted socket.
    (server as unknown as { accept(socket: Socket): void }).accept(socket as unknown as Socket);
    const frames = decodeAll(concat(socket.written), { expectPreamble: true, maxDataPayload: 65536 });
    expect(frames.map((f) => f.type === FrameType.ERROR && f.error.code)).to.deep.equal([15]); // REFUSED
    expect(frames.map((f) => f.type === FrameType.ERROR && f.error.message)).to.deep.equal([
      'connection limit reached',
    ]);
    expect(socket.ended).to.equal(true);
    for (let i = 0; i < 8; i++) socket.receive(new Uint8Array(128 * 1024)); // 1 MiB, read and dropped
    expect(socket.destroyed, 'within the drain bound').to.equal(false);
    socket.receive(new Uint8Array(1));
    expect(socket.destroyed, 'past the drain bound').to.equal(true);
  });
});
