import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import {
  codeOf,
  expectKeptMessagesIntact,
  KiB,
  MiB,
  observe,
  Pump,
  rejection,
  pseudoRandomBytes,
  report,
  sha256,
  sleep,
  useHarness,
  waitFor,
  within,
} from './helpers.js';

const SIZES = [0, 1, 64 * KiB, 3 * MiB];

describe('node transport: round trip', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('received messages kept without copying stay intact (views of read buffers that are never reused)', async () => {
    await expectKeptMessagesIntact(h(), {}, {});
  });

  it('carries 0 B, 1 B, 64 KiB and 3 MiB messages both ways intact, handle() runs 4 at once, stats() has RTT', async () => {
    const clientMessages = SIZES.map((size, i) => pseudoRandomBytes(size, 1000 + i));
    const serverMessages = SIZES.map((size, i) => pseudoRandomBytes(size, 2000 + i));
    const concurrencyProbe = 16;

    const serverReceived: string[] = [];
    let running = 0;
    let maxRunning = 0;
    let serverConnection: Connection | undefined;
    let handled: Promise<unknown> | undefined;
    const { port } = await h().server({ idleTimeout: 600 }, (connection) => {
      serverConnection = connection;
      handled = observe(
        connection.handle(
          async (message) => {
            running++;
            maxRunning = Math.max(maxRunning, running);
            // The first messages are checked for integrity, in arrival order (handlers start in order).
            if (serverReceived.length < SIZES.length) serverReceived.push(sha256(message));
            else await sleep(50); // the concurrency probe: slow handlers overlap
            running--;
          },
          { concurrency: 4 },
        ),
      );
      for (const message of serverMessages) void connection.send(message);
    });

    const client = await h().connect({ port, idleTimeout: 300 });
    const clientReceived: string[] = [];
    const reading = observe(
      (async () => {
        for await (const message of client) clientReceived.push(sha256(message));
      })(),
    );
    for (const message of clientMessages) await within(client.send(message), 10_000, 'send() of a message');
    for (let i = 0; i < concurrencyProbe; i++) void client.send(new Uint8Array(8));

    await waitFor(
      () => serverReceived.length === SIZES.length && clientReceived.length === SIZES.length,
      15_000,
      'every message both ways',
    );
    expect(serverReceived).to.deep.equal(clientMessages.map((m) => sha256(m)));
    expect(clientReceived).to.deep.equal(serverMessages.map((m) => sha256(m)));

    // Heartbeats every 100 ms (server to client) and 200 ms (client to server): RTT samples appear.
    await waitFor(
      () => client.stats().rttMs !== undefined && serverConnection!.stats().rttMs !== undefined,
      5000,
      'an RTT sample on both sides',
    );
    await waitFor(() => client.stats().heartbeatsReceived >= 5, 5000, 'a few heartbeats');
    const cs = client.stats();
    const ss = serverConnection!.stats();
    expect(cs.rttMs).to.be.a('number').and.to.be.at.least(0).and.below(1000);
    expect(cs.smoothedRttMs).to.be.a('number');
    expect(ss.rttMs).to.be.a('number').and.to.be.at.least(0).and.below(1000);
    expect(cs.heartbeatsSent).to.be.greaterThan(0);
    expect(cs.messagesSent).to.equal(SIZES.length + concurrencyProbe);
    expect(cs.remotePort).to.equal(port);

    await waitFor(() => maxRunning === 4 && running === 0, 5000, 'the concurrency probe');
    expect(maxRunning).to.equal(4);

    const clientClosed = observe(client.end());
    const [c, s] = await within(
      Promise.all([clientClosed, observe(serverConnection!.closed)]),
      10_000,
      'clean close',
    );
    expect(c.ok, `client close: ${String(!c.ok && c.error)}`).to.equal(true);
    expect(s.ok, `server close: ${String(!s.ok && s.error)}`).to.equal(true);
    if (c.ok) {
      expect(c.value.clean).to.equal(true);
      expect(c.value.delivery.consumed).to.equal(SIZES.length + concurrencyProbe);
    }
    if (s.ok) expect(s.value.delivery.consumed).to.equal(SIZES.length);
    expect((await reading).ok).to.equal(true);
    expect(((await handled) as { ok: boolean }).ok).to.equal(true);
    report(
      `round trip: client RTT ${cs.rttMs} ms (smoothed ${cs.smoothedRttMs?.toFixed(2)}), server RTT ${ss.rttMs} ms, ` +
        `heartbeats received client ${cs.heartbeatsReceived} / server ${ss.heartbeatsReceived}, max handler concurrency ${maxRunning}`,
    );
  });

  it('abort by signal: CANCELLED locally, RemoteError CANCELLED on the peer, every pending send() settles', async () => {
    const { port, next } = await h().server();
    const controller = new AbortController();
    const client = await h().connect({ port, signal: controller.signal });
    const server = await next();
    const clientPump = new Pump(client, { size: 64 * KiB });
    const serverPump = new Pump(server, { size: 64 * KiB });
    const clientClosed = observe(client.closed);
    const serverClosed = observe(server.closed);
    await sleep(200);
    controller.abort();
    const [c, s] = await within(Promise.all([clientClosed, serverClosed]), 5000, 'both sides to close');
    const clientError = rejection(c, 'client');
    const serverError = rejection(s, 'server');
    expect(codeOf(clientError)).to.equal('CANCELLED');
    expect(clientError.remote).to.not.equal(true);
    expect(codeOf(serverError)).to.equal('CANCELLED');
    expect(serverError.remote).to.equal(true);
    await within(Promise.all([clientPump.done, serverPump.done]), 5000, 'every send() to settle');
    expect(clientPump.outstanding + serverPump.outstanding).to.equal(0);
    expect(codeOf(clientPump.firstError)).to.equal('CANCELLED');
  });
});
