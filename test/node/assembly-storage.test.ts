/**
 * Storage for messages the engine assembles from pieces (`EngineOptions.allocate`), as the Node
 * adapter gives it: 4 KiB and more in an ArrayBuffer of its own, smaller sizes as views of a
 * shared 16 KiB slab (a small ArrayBuffer of its own cost 1–2.6 µs per socket read at 1 KiB).
 * The views must never overlap, and a message assembled in a slab must arrive intact over a real
 * socket whatever the read boundaries.
 */
import { expect } from 'chai';
import { connect, createServer } from '../../src/index.js';
import type { Connection } from '../../src/index.js';
import { engineOptions } from '../../src/node/options.js';

describe('Node adapter: storage of assembled messages', () => {
  it('carves sizes under 4 KiB from 16 KiB slabs without overlap; 4 KiB and more stand alone', () => {
    const allocate = engineOptions('server', {}).allocate!;
    const sizes = [1, 7, 1030, 4095, 3000, 2000, 64, 4000, 4000, 4000];
    const views = sizes.map((size) => allocate(size));
    for (const [i, view] of views.entries()) {
      expect(view.length).to.equal(sizes[i]);
      expect(view.byteOffset % 8).to.equal(0);
      expect(view.buffer.byteLength).to.equal(16 * 1024);
    }
    // Views of one slab never overlap.
    for (let i = 0; i < views.length; i++)
      for (let j = i + 1; j < views.length; j++) {
        const [a, b] = [views[i]!, views[j]!];
        if (a.buffer !== b.buffer) continue;
        const apart = a.byteOffset + a.length <= b.byteOffset || b.byteOffset + b.length <= a.byteOffset;
        expect(apart, `views ${i} and ${j} overlap`).to.equal(true);
      }
    // 22 KiB in all: at least two slabs, each new one used from its start.
    const slabs = new Set(views.map((v) => v.buffer));
    expect(slabs.size).to.be.at.least(2);
    for (const [i, view] of views.entries())
      if (i > 0 && view.buffer !== views[i - 1]!.buffer) expect(view.byteOffset).to.equal(0);
    const large = allocate(4096);
    expect(large.length).to.equal(4096);
    expect(large.byteOffset).to.equal(0);
    expect(large.buffer.byteLength).to.equal(4096);
  });

  it('messages of every size under 4 KiB, spanning reads, arrive intact and stay intact', async function () {
    this.timeout(20_000);
    const received: Uint8Array[] = [];
    let serverConn: Connection | undefined;
    const server = createServer({}, (conn) => {
      serverConn = conn;
      conn.on('readable', () => {
        for (let m = conn.read(); m !== undefined; m = conn.read()) received.push(m);
      });
      // A read() consumer ends its side itself once the client has ended.
      conn.on('peer-closed', () => void conn.end().catch(() => {}));
    });
    const { port } = await server.listen(0, '127.0.0.1');
    const client = await connect({ host: '127.0.0.1', port });
    // Sizes 1 … 4095 (a deterministic spread), each payload a pattern of its index, so that a
    // message overwritten by a later one (overlapping storage) shows.
    const sent: Uint8Array[] = [];
    for (let i = 0; i < 6000; i++) {
      const size = 1 + ((i * 2654435761) % 4095);
      const payload = new Uint8Array(size);
      for (let k = 0; k < size; k++) payload[k] = (i + k) & 0xff;
      sent.push(payload);
      if (!client.write(payload)) await new Promise<void>((resolve) => client.once('drain', resolve));
    }
    const deadline = Date.now() + 15_000;
    while (received.length < sent.length && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(received.length).to.equal(sent.length);
    // Checked after all have arrived: a later message written into an earlier one's storage fails here.
    for (let i = 0; i < sent.length; i++) expect(received[i], `message ${i}`).to.deep.equal(sent[i]);
    await client.end();
    await serverConn?.closed;
    await server.close();
  });
});
