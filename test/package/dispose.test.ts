import { expect } from 'chai';
import { connect, createServer } from '../../src/index.js';
import type { CloseInfo, Connection } from '../../src/index.js';
import { LOCALHOST, within } from '../node/helpers.js';

describe('package: await using (Symbol.asyncDispose)', function () {
  this.timeout(20_000);

  it('leaving the scope ends a connection cleanly and closes the server', async () => {
    let clientClose: CloseInfo | undefined;
    let serverSide: Connection | undefined;
    let serverClosed = false;
    let received = '';
    {
      await using server = createServer({ idleTimeout: 5000 }, async (conn) => {
        serverSide = conn;
        for await (const msg of conn) received += new TextDecoder().decode(msg);
      });
      server.on('close', () => (serverClosed = true));
      const { port } = await server.listen(0, LOCALHOST);
      {
        await using conn = await connect({ host: LOCALHOST, port, idleTimeout: 5000 });
        conn.on('close', (info) => (clientClose = info));
        await conn.send(new TextEncoder().encode('hello'));
      }
      // The client's scope ended: end() ran and was awaited.
      expect(clientClose?.clean).to.equal(true);
      expect(clientClose?.delivery.consumed).to.equal(1);
      expect(received).to.equal('hello');
      await within(serverSide!.closed, 5000, 'server side closed');
    }
    expect(serverClosed).to.equal(true);
  });

  it('disposing a connection that already closed uncleanly does not throw', async () => {
    const server = createServer({ idleTimeout: 5000 }, (conn) => conn.abort());
    try {
      const { port } = await server.listen(0, LOCALHOST);
      const conn = await connect({ host: LOCALHOST, port, idleTimeout: 5000 });
      const error = await conn.closed.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.be.instanceOf(Error);
      await conn[Symbol.asyncDispose]();
    } finally {
      await server.close({ grace: 100 });
    }
  });
});
