/**
 * The send path's batch buffers (64 KiB, recycled through a process-wide pool of 32 once the
 * socket has written them) must be reused, not reallocated, while a connection streams. Node's
 * `Writable` emits `'drain'` before it calls back the writes that completed: a connection that
 * wrote again from inside `'drain'` took fresh batches while the written ones were not yet back,
 * up to 41 batches out at once at 1 KiB over loopback, so the pool overflowed and a batch in
 * twelve was a new, zero-filled 64 KiB allocation (and with a 1 MiB `socketBufferTarget`, one in
 * four: the client's CPU per message tripled). Driven through a real `stream.Duplex` whose writes
 * complete at once (as a socket's do while the kernel has room), so the order of `'drain'` and the
 * callbacks is Node's own.
 */
import { Duplex } from 'node:stream';
import { expect } from 'chai';
import { Connection } from '../../src/node/connection.js';
import { engineOptions } from '../../src/node/options.js';
import { Engine } from '../../src/protocol/engine.js';

const BATCH_SIZE = 64 * 1024;

/** A client-side transport whose bytes go straight into a server engine that consumes everything. */
class LoopbackDuplex extends Duplex {
  /** Distinct batch-sized buffers the connection wrote from. */
  readonly batches = new Set<ArrayBufferLike>();
  readonly remoteAddress = '127.0.0.1';
  readonly remotePort = 1;
  delivered = 0;

  constructor(private readonly server: Engine) {
    super();
  }

  setNoDelay(): this {
    return this;
  }

  override _read(): void {}

  override _write(
    chunk: Uint8Array,
    _encoding: BufferEncoding,
    callback: (error?: Error | null) => void,
  ): void {
    this.feed(chunk);
    callback();
  }

  override _writev(chunks: { chunk: Uint8Array }[], callback: (error?: Error | null) => void): void {
    for (const { chunk } of chunks) this.feed(chunk);
    callback();
  }

  private feed(chunk: Uint8Array): void {
    if (chunk.buffer.byteLength === BATCH_SIZE) this.batches.add(chunk.buffer);
    const server = this.server;
    const t = performance.now();
    server.receive(t, new Uint8Array(chunk)); // a copy: the connection recycles its batches
    for (let m = server.read(t); m !== undefined; m = server.read(t)) this.delivered++;
    while (server.pollEvent() !== undefined);
    // The server's credit comes back on a later turn, as a socket's would.
    const out = server.pollTransmit(t);
    if (out.length > 0) setImmediate(() => out.forEach((c) => this.push(Buffer.from(c))));
  }
}

describe('Connection: send batches are recycled', () => {
  it('streams 256 MiB of 1 KiB messages from at most 40 distinct batch buffers', async function () {
    this.timeout(60_000);
    const server = new Engine({ ...engineOptions('server', {}), seed: 2 });
    server.start(performance.now());
    const socket = new LoopbackDuplex(server);
    const client = new Engine({ ...engineOptions('client', {}), seed: 1 });
    const connection = new Connection('client', socket as never, client, {});
    for (const c of server.pollTransmit(performance.now())) socket.push(Buffer.from(c));
    await connection.opened;

    const payload = new Uint8Array(1024).fill(0x5a);
    const total = (256 * 1024 * 1024) / 1024;
    let sent = 0;
    await new Promise<void>((resolve) => {
      const pump = (): void => {
        while (sent < total) {
          sent++;
          if (!connection.write(payload)) {
            connection.once('drain', pump);
            return;
          }
          if (sent % 4096 === 0) {
            setImmediate(pump);
            return;
          }
        }
        resolve();
      };
      pump();
    });
    const deadline = performance.now() + 20_000;
    while (socket.delivered < total && performance.now() < deadline)
      await new Promise((resolve) => setImmediate(resolve));
    expect(socket.delivered).to.equal(total);
    // The pool holds 32; a few more may be out at once. Before the fix: hundreds.
    expect(socket.batches.size).to.be.at.most(40);
    connection.abort();
  });
});
