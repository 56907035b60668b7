import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import {
  codeOf,
  now,
  observe,
  Pump,
  Reader,
  rejection,
  report,
  sleep,
  useHarness,
  waitFor,
  within,
} from './helpers.js';

/** Both sides' idle timeout. */
const IDLE = 1000;
/** Allowed detection time beyond the idle timeout (timer lateness on a loaded machine). */
const MARGIN = 1500;

interface Case {
  clientSends: boolean;
  serverSends: boolean;
  /** The server's application never reads. */
  serverStalled: boolean;
}

describe('node transport: black hole (FaultProxy) → HEARTBEAT_TIMEOUT on both sides', function () {
  this.timeout(30_000);
  const h = useHarness();

  async function run(name: string, c: Case): Promise<void> {
    const { port: serverPort, next } = await h().server({ idleTimeout: IDLE });
    const { proxy, port } = await h().proxy(serverPort);
    const client = await h().connect({ port, idleTimeout: IDLE });
    const server: Connection = await next();
    expect(client.negotiated!.localIdleTimeoutMs).to.equal(IDLE);

    const clientReader = new Reader(client, undefined, { seq: false });
    const serverReader = c.serverStalled ? undefined : new Reader(server, undefined, { seq: false });
    const clientPump = c.clientSends ? new Pump(client, { size: 16 * 1024 }) : undefined;
    const serverPump = c.serverSends ? new Pump(server, { size: 16 * 1024 }) : undefined;
    const clientClosed = observe(client.closed);
    const serverClosed = observe(server.closed);

    if (c.serverStalled) {
      // The peer is alive but not consuming: that is never a liveness failure.
      await waitFor(
        () => client.stats().sendCredit < 7 + 16 * 1024,
        10_000,
        'the client to run out of credit',
      );
      await sleep(2 * IDLE);
      expect(client.state).to.equal('open');
      expect(server.state).to.equal('open');
      expect(server.stats().heldBytes).to.be.greaterThan(0);
    } else {
      await sleep(IDLE / 2);
    }
    if (c.clientSends)
      expect(clientPump!.resolved, 'client messages sent before the black hole').to.be.greaterThan(0);

    proxy.blackhole();
    const t0 = now();
    const [co, so] = await within(
      Promise.all([clientClosed, serverClosed]),
      IDLE + MARGIN + 5000,
      'both sides to fail',
    );
    const clientMs = co.at - t0;
    const serverMs = so.at - t0;
    const clientError = rejection(co, 'client closed');
    const serverError = rejection(so, 'server closed');
    report(
      `black hole ${name}: client ${codeOf(clientError)} after ${clientMs.toFixed(0)} ms, ` +
        `server ${codeOf(serverError)} after ${serverMs.toFixed(0)} ms (idleTimeout ${IDLE}, bound ${IDLE + MARGIN})`,
    );
    expect(codeOf(clientError)).to.equal('HEARTBEAT_TIMEOUT');
    expect(codeOf(serverError)).to.equal('HEARTBEAT_TIMEOUT');
    expect(clientError.remote, 'a local detection').to.not.equal(true);
    expect(serverError.remote, 'a local detection').to.not.equal(true);
    expect(clientMs).to.be.within(IDLE / 2, IDLE + MARGIN);
    expect(serverMs).to.be.within(IDLE / 2, IDLE + MARGIN);

    // Every pending send() settles, and the readers end with the same error.
    for (const pump of [clientPump, serverPump]) {
      if (pump === undefined) continue;
      await within(pump.done, 2000, 'every pending send() to settle');
      expect(pump.outstanding).to.equal(0);
      expect(codeOf(pump.firstError)).to.equal('HEARTBEAT_TIMEOUT');
    }
    for (const reader of [clientReader, serverReader]) {
      if (reader === undefined) continue;
      const outcome = await within(reader.done, 2000, 'the reader to end');
      expect(codeOf(rejection(outcome, 'for await'))).to.equal('HEARTBEAT_TIMEOUT');
    }
  }

  it('while idle', () => run('while idle', { clientSends: false, serverSends: false, serverStalled: false }));

  it('while both sides send', () =>
    run('while sending', { clientSends: true, serverSends: true, serverStalled: false }));

  it('while the receiving application is stalled (sender blocked on credit)', () =>
    run('while receiver stalled', { clientSends: true, serverSends: false, serverStalled: true }));

  for (const direction of ['client-to-server', 'server-to-client'] as const) {
    it(`one way (${direction}): the deaf side times out and its ERROR reaches the other side`, async () => {
      const { port: serverPort, next } = await h().server({ idleTimeout: IDLE });
      const { proxy, port } = await h().proxy(serverPort);
      const client = await h().connect({ port, idleTimeout: IDLE });
      const server = await next();
      const clientClosed = observe(client.closed);
      const serverClosed = observe(server.closed);
      await sleep(IDLE / 2);
      proxy.blackhole(direction);
      const t0 = now();
      const [co, so] = await within(
        Promise.all([clientClosed, serverClosed]),
        IDLE + MARGIN + 5000,
        'both sides',
      );
      const [deaf, told] = direction === 'client-to-server' ? [so, co] : [co, so];
      const deafError = rejection(deaf, 'the side that hears nothing');
      const toldError = rejection(told, 'the side that still hears');
      report(
        `black hole one way ${direction}: deaf side ${codeOf(deafError)} after ${(deaf.at - t0).toFixed(0)} ms, ` +
          `other side ${codeOf(toldError)} (remote: ${String(toldError.remote)}) after ${(told.at - t0).toFixed(0)} ms`,
      );
      expect(codeOf(deafError)).to.equal('HEARTBEAT_TIMEOUT');
      expect(deafError.remote).to.not.equal(true);
      expect(deaf.at - t0).to.be.within(IDLE / 2, IDLE + MARGIN);
      expect(codeOf(toldError)).to.equal('HEARTBEAT_TIMEOUT');
      expect(toldError.remote, 'the peer’s ERROR frame arrived').to.equal(true);
      expect(told.at - deaf.at).to.be.below(500);
    });
  }
});
