import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import type { CloseInfo } from '../../src/protocol/types.js';
import {
  codeOf,
  expectContiguous,
  now,
  observe,
  Pump,
  Reader,
  rejection,
  report,
  sleep,
  useHarness,
  within,
} from './helpers.js';
import type { Settled } from './helpers.js';

const IDLE = 1000;
const SIZE = 4096;

/** One side of a connection under load: reads everything, sends until told to stop. */
class Side {
  readonly reader: Reader;
  readonly pump: Pump;
  readonly closed: Promise<Settled<CloseInfo>>;
  constructor(readonly connection: Connection) {
    this.reader = new Reader(connection);
    this.pump = new Pump(connection, { size: SIZE, inFlight: 16 });
    this.closed = observe(connection.closed);
  }
}

/** A server application: reads, sends, and stops sending when the client half-closes. */
function serverSide(connection: Connection): Side {
  const side = new Side(connection);
  connection.on('peer-closed', () => side.pump.stop());
  return side;
}

/** Nothing lost in either direction, and both ends closed cleanly with every message consumed. */
async function expectLossless(name: string, client: Side, server: Side): Promise<void> {
  const [c, s] = await within(
    Promise.all([client.closed, server.closed]),
    15_000,
    `${name}: both sides to close`,
  );
  expect(c.ok, `${name}: client closed: ${String(!c.ok && c.error)}`).to.equal(true);
  expect(s.ok, `${name}: server closed: ${String(!s.ok && s.error)}`).to.equal(true);
  await within(Promise.all([client.pump.done, server.pump.done]), 5000, `${name}: every send() to settle`);
  for (const [label, from, to] of [
    ['client → server', client, server],
    ['server → client', server, client],
  ] as const) {
    const { pump } = from;
    // Sends refused after end() reject synchronously with CONNECTION_CLOSED; every other one resolved.
    if (pump.rejected > 0) expect(codeOf(pump.firstError), `${name} ${label}`).to.equal('CONNECTION_CLOSED');
    expect(pump.resolved, `${name} ${label}: resolved`).to.equal(pump.attempted - pump.rejected);
    expect((await to.reader.done).ok, `${name} ${label}: reader ends cleanly`).to.equal(true);
    expectContiguous(to.reader.seqs, pump.resolved, `${name} ${label}`);
    expect(to.reader.seqs.length, `${name} ${label}: nothing beyond what was sent`).to.equal(pump.resolved);
  }
  if (c.ok && s.ok) {
    expect(c.value.clean && s.value.clean).to.equal(true);
    expect(c.value.delivery.consumed).to.equal(client.pump.resolved);
    expect(c.value.delivery.unknown).to.have.length(0);
    expect(s.value.delivery.consumed).to.equal(server.pump.resolved);
  }
}

describe('node transport: graceful termination under load', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('(a) client end() while both sides send: nothing lost, clean on both sides', async () => {
    const sides: Side[] = [];
    const { port } = await h().server({ idleTimeout: IDLE }, (c) => sides.push(serverSide(c)));
    const client = new Side(await h().connect({ port, idleTimeout: IDLE }));
    await sleep(500);
    const t0 = now();
    const ending = observe(client.connection.end());
    await expectLossless('(a)', client, sides[0]!);
    const ms = (await ending).at - t0;
    report(
      `termination (a) client end() under load: clean in ${ms.toFixed(0)} ms; client→server ${client.pump.resolved} msgs, ` +
        `server→client ${sides[0]!.pump.resolved} msgs, 0 lost`,
    );
  });

  it('(b) server.close({ grace }) while clients send; clients end() on goaway: nothing lost, clean', async () => {
    const GRACE = 5000;
    const sides: Side[] = [];
    const { server, port } = await h().server({ idleTimeout: IDLE }, (c) => sides.push(serverSide(c)));
    const clients: Side[] = [];
    for (let i = 0; i < 3; i++) {
      const connection = await h().connect({ port, idleTimeout: IDLE });
      connection.on('goaway', () => void connection.end());
      clients.push(new Side(connection));
    }
    await sleep(500);
    expect(sides).to.have.length(3);
    const t0 = now();
    const closing = observe(server.close({ grace: GRACE }));
    // Clients connected one after the other: the server saw them in the same order.
    await Promise.all(clients.map((client, i) => expectLossless(`(b) client ${i}`, client, sides[i]!)));
    const closed = await within(closing, GRACE + 5000, 'server.close()');
    const ms = closed.at - t0;
    report(
      `termination (b) server.close({ grace: ${GRACE} }) with 3 sending clients: closed in ${ms.toFixed(0)} ms; ` +
        `client→server ${clients.map((c) => c.pump.resolved).join('/')} msgs, server→client ${sides.map((s) => s.pump.resolved).join('/')} msgs, 0 lost`,
    );
    expect(closed.ok).to.equal(true);
    expect(ms, 'well before the grace deadline').to.be.below(GRACE);
  });

  it('(c) client end() and server.close() at the same moment: nothing lost, clean', async () => {
    const sides: Side[] = [];
    const { server, port } = await h().server({ idleTimeout: IDLE }, (c) => sides.push(serverSide(c)));
    const connection = await h().connect({ port, idleTimeout: IDLE });
    let goaways = 0;
    connection.on('goaway', () => {
      goaways++;
      void connection.end();
    });
    const client = new Side(connection);
    await sleep(500);
    const t0 = now();
    void connection.end();
    const closing = observe(server.close({ grace: 5000 }));
    await expectLossless('(c)', client, sides[0]!);
    const closed = await within(closing, 10_000, 'server.close()');
    expect(closed.ok).to.equal(true);
    report(
      `termination (c) end() + server.close() crossing: closed in ${(closed.at - t0).toFixed(0)} ms; goaway seen by client: ${goaways}; ` +
        `client→server ${client.pump.resolved}, server→client ${sides[0]!.pump.resolved} msgs, 0 lost`,
    );
  });

  it('a client that ignores GOAWAY is force-closed at the grace deadline (GOAWAY_GRACE_EXPIRED both sides)', async () => {
    const GRACE = 500;
    const sides: Side[] = [];
    const { server, port } = await h().server({ idleTimeout: IDLE }, (c) => sides.push(serverSide(c)));
    const connection = await h().connect({ port, idleTimeout: IDLE });
    let goaway: { graceMs: number } | undefined;
    connection.on('goaway', (info) => (goaway = info)); // ... and does not end()
    const client = new Side(connection);
    await sleep(300);
    const t0 = now();
    const closing = observe(server.close({ grace: GRACE }));
    const [c, s] = await within(
      Promise.all([client.closed, sides[0]!.closed]),
      GRACE + 5000,
      'the force close',
    );
    const serverError = rejection(s, 'server side');
    const clientError = rejection(c, 'client side');
    report(
      `GOAWAY ignored: server ${codeOf(serverError)} after ${(s.at - t0).toFixed(0)} ms, client ${codeOf(clientError)} ` +
        `(remote: ${String(clientError.remote)}) after ${(c.at - t0).toFixed(0)} ms (grace ${GRACE})`,
    );
    expect(goaway?.graceMs).to.equal(GRACE);
    expect(codeOf(serverError)).to.equal('GOAWAY_GRACE_EXPIRED');
    expect(serverError.remote).to.not.equal(true);
    expect(codeOf(clientError)).to.equal('GOAWAY_GRACE_EXPIRED');
    expect(clientError.remote).to.equal(true);
    expect(s.at - t0).to.be.within(GRACE - 50, GRACE + 1500);
    expect((await within(closing, 5000, 'server.close()')).ok).to.equal(true);
    // Every pending send() settles on both sides.
    await within(Promise.all([client.pump.done, sides[0]!.pump.done]), 5000, 'every send() to settle');
  });
});
