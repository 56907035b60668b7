/**
 * Alternatives on the node API (SPEC.md §9.5) and ReconnectingClient's make-before-break on
 * GOAWAY: where it goes, when, and the exact hand-back of what the old connection did not process.
 * (The three-process rolling restart under load is test/node/rolling-restart.test.ts.)
 */
import { expect } from 'chai';
import { GoAwayReason } from '../../src/protocol/frames.js';
import type { GoAwayInfo } from '../../src/protocol/types.js';
import type { Connection } from '../../src/node/connection.js';
import type { Disconnection, Move } from '../../src/node/reconnect.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { LOCALHOST, codeOf, now, report, useHarness, waitFor, within } from './helpers.js';

function numbered(seq: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, seq);
  return bytes;
}
const seqOf = (message: Uint8Array): number =>
  new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(0);

describe('alternatives and make-before-break (issue 14 item 2)', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('WELCOME carries server.alternatives (changeable); GOAWAY carries close({ alternatives }) or conn.end({ alternatives })', async () => {
    const { server, port } = await h().server({ alternatives: ['127.0.0.1:7001', 'unix:/tmp/hw-b.sock'] });
    const first = await h().connect({ port });
    expect(first.negotiated?.alternatives).to.deep.equal(['127.0.0.1:7001', 'unix:/tmp/hw-b.sock']);
    expect(() => (server.alternatives = ['nope'])).to.throw(RangeError, /alternatives\[0\]/);
    server.alternatives = ['[::1]:7002'];
    const second = await h().connect({ port });
    expect(second.negotiated?.alternatives).to.deep.equal(['[::1]:7002']);
    const goaways = [first, second].map((c) => new Promise((resolve) => c.once('goaway', resolve)));
    // A server connection's end() names its own; close() names the server's (now [::1]:7002).
    const serverSide = [...server.connections];
    expect(() => void serverSide[0]!.end({ alternatives: ['x'] })).to.throw(RangeError);
    void serverSide[0]!.end({ grace: 2000, alternatives: ['10.0.0.9:1'] }).catch(() => {});
    void server.close({ grace: 2000 });
    const [a, b] = (await within(Promise.all(goaways), 5000, 'two GOAWAYs')) as { alternatives: string[] }[];
    const byConn = [a!.alternatives, b!.alternatives].sort();
    expect(byConn).to.deep.equal([['10.0.0.9:1'], ['[::1]:7002']].sort());
    await Promise.all([first.end(), second.end()].map((p) => p.catch(() => {})));
  });

  it('on GOAWAY, opens the next connection on an alternative before ending the old one, at once despite retry_after_ms', async () => {
    const b = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const a = await h().server(
      { alternatives: [`${LOCALHOST}:${b.port}`] },
      (c) => void c.handle(() => {}).catch(() => {}),
    );
    const client = new ReconnectingClient({ host: LOCALHOST, port: a.port, idleTimeout: 1000, minDelay: 20 });
    h().defer(() => client.close());
    const first = await within(client.connected(), 5000, 'connected to A');
    const moved = new Promise<Move>((resolve) => client.once('moved', resolve));
    let oldStateAtMove = '';
    client.once('moved', () => (oldStateAtMove = first.state));
    const t0 = now();
    for (const conn of a.server.connections)
      void conn.end({ grace: 4000, reason: GoAwayReason.OVERLOADED, retryAfter: 10_000 }).catch(() => {});
    const move = await within(moved, 3000, 'the move (retry_after_ms 10 000 applies to A only)');
    const second = await client.connected();
    expect(second).to.not.equal(first);
    expect(second.stats().remotePort).to.equal(b.port);
    expect(move.viaAlternatives).to.equal(true);
    expect(move.endpoint).to.equal(`${LOCALHOST}:${b.port}`);
    expect(oldStateAtMove, 'the old connection was still open when the new one opened').to.equal('open');
    const info = await within(first.closed, 3000, 'the old connection ended cleanly');
    expect(info.clean).to.equal(true);
    report(
      `make-before-break to an alternative: new connection open ${move.elapsed.toFixed(0)} ms after GOAWAY, old one closed cleanly ${(now() - t0).toFixed(0)} ms after`,
    );
  });

  it('a GOAWAY that names none: the alternatives of the WELCOME are tried first, never the server going away', async () => {
    const b = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const a = await h().server({ alternatives: [`${LOCALHOST}:${b.port}`] });
    // B names A and itself: a client on B must not pick B again when B goes away.
    b.server.alternatives = [`${LOCALHOST}:${a.port}`, `${LOCALHOST}:${b.port}`];
    const client = new ReconnectingClient({ host: LOCALHOST, port: a.port, idleTimeout: 1000, minDelay: 20 });
    h().defer(() => client.close());
    await within(client.connected(), 5000, 'connected to A');
    for (const conn of a.server.connections) void conn.end({ grace: 2000, alternatives: [] }).catch(() => {});
    await waitFor(
      () => client.connection?.stats().remotePort === b.port,
      5000,
      'the move to B (from the WELCOME)',
    );
    const moves: Move[] = [];
    client.on('moved', (m) => moves.push(m));
    for (const conn of b.server.connections) void conn.end({ grace: 2000, alternatives: [] }).catch(() => {});
    await waitFor(() => moves.length === 1, 5000, 'the move back to A');
    expect(client.connection?.stats().remotePort).to.equal(a.port);
  });

  it('doNotReconnect: end()/close() send it with alternatives; the client goes there and never back, and stops when only that server is left', async () => {
    const serve = (c: Connection): void => void c.handle(() => {}).catch(() => {});
    const [a, b, c] = [await h().server({}, serve), await h().server({}, serve), await h().server({}, serve)];
    const [atA, atB, atC] = [a, b, c].map((s) => `${LOCALHOST}:${s.port}`);
    // Checked synchronously, like the other options.
    expect(() => void b.server.close({ doNotReconnect: 'yes' as unknown as boolean }))
      .to.throw(TypeError, /doNotReconnect/)
      .with.property('code', 'ERR_INVALID_ARG_TYPE');
    // random 0: no jitter, and the shuffle reverses two entries.
    const client = new ReconnectingClient({
      host: LOCALHOST,
      port: a.port,
      idleTimeout: 1000,
      minDelay: 20,
      random: () => 0,
    });
    h().defer(() => client.close());
    const goAways: GoAwayInfo[] = [];
    const moves: Move[] = [];
    client.on('connected', (conn) => conn.on('goaway', (g) => goAways.push(g)));
    client.on('moved', (m) => moves.push(m));
    const stopped = new Promise((resolve) => client.once('stopped', resolve));
    await within(client.connected(), 5000, 'connected to A');
    const onA = a.connections[0]!;
    expect(() => void onA.end({ doNotReconnect: 1 as unknown as boolean })).to.throw(
      TypeError,
      /doNotReconnect/,
    );
    // "Don't come back here, go there."
    void onA.end({ grace: 2000, doNotReconnect: true, alternatives: [atB] }).catch(() => {});
    await waitFor(() => moves.length === 1, 5000, 'the move to B');
    expect(goAways[0]).to.include({ doNotReconnect: true });
    expect(goAways[0]!.alternatives).to.deep.equal([atB]);
    expect(moves[0]!.endpoint).to.equal(atB);
    // B names A (still listening), then C; shuffled, A comes first: the client must skip it.
    void b.connections[0]!.end({ grace: 2000, alternatives: [atC, atA] }).catch(() => {});
    await waitFor(() => moves.length === 2, 5000, 'the move to C');
    expect(moves[1]!.endpoint).to.equal(atC);
    // C says the same with none to offer: A (configured) and C are out, B is unknown: it stops.
    void c.server.close({ grace: 2000, doNotReconnect: true, alternatives: [] });
    await within(stopped, 5000, 'stopped: nowhere left to go');
    expect(goAways[2]).to.include({ doNotReconnect: true });
    expect(goAways[2]!.alternatives).to.deep.equal([]);
    expect(
      [a, b, c].map((s) => s.connections.length),
      'connections accepted by A, B, C',
    ).to.deep.equal([1, 1, 1]);
    await waitFor(() => client.connection === undefined, 5000, 'the last connection closed');
  });

  it('hands back exactly what the old connection did not process: notProcessed resent on the new one, nothing lost, no duplicate', async () => {
    const consumedA: number[] = [];
    const consumedB: number[] = [];
    let release: () => void = () => {};
    const stuck = new Promise<void>((resolve) => (release = resolve));
    const b = await h().server(
      {},
      (c) => void c.handle((m) => void consumedB.push(seqOf(m))).catch(() => {}),
    );
    // A consumes 50 messages, then its handler hangs on the 51st until the grace expires.
    const a = await h().server({ alternatives: [`${LOCALHOST}:${b.port}`] }, (c) => {
      void c
        .handle(async (m) => {
          const seq = seqOf(m);
          if (consumedA.length >= 50) await stuck;
          else consumedA.push(seq);
        })
        .catch(() => {});
    });
    h().defer(() => release());
    const client = new ReconnectingClient({ host: LOCALHOST, port: a.port, idleTimeout: 1000, minDelay: 20 });
    h().defer(() => client.close());
    const first = await within(client.connected(), 5000, 'connected to A');
    const disconnected = new Promise<Disconnection>((resolve) => client.once('disconnected', resolve));
    for (let seq = 1; seq <= 200; seq++) first.write(numbered(seq));
    await waitFor(() => consumedA.length === 50, 5000, 'A consuming 50');
    const moved = new Promise((resolve) => client.once('moved', resolve));
    for (const conn of a.server.connections) void conn.end({ grace: 600 }).catch(() => {});
    await within(moved, 5000, 'the move to B');
    const second = await within(client.connected(), 5000, 'the replacement on B');
    expect(second).to.not.equal(first);
    // New sends go to the new connection while the old one drains.
    for (let seq = 201; seq <= 300; seq++) second.write(numbered(seq));
    const d = await within(disconnected, 5000, 'the old connection closing (grace expired)');
    expect(d.replaced).to.equal(true);
    expect(d.generation).to.equal(1);
    expect(codeOf(d.error)).to.equal('GOAWAY_GRACE_EXPIRED');
    const notProcessed = d.notProcessed.map(seqOf);
    const unknown = d.unknown.map(seqOf);
    for (const m of d.notProcessed) second.write(m);
    await waitFor(() => consumedB.length === 100 + notProcessed.length, 5000, 'B consuming');
    // Exact: A's consumed, the unknown (the one its handler held) and the not processed partition 1…200.
    const all = [...consumedA, ...unknown, ...notProcessed].sort((x, y) => x - y);
    expect(all).to.deep.equal(Array.from({ length: 200 }, (_, i) => i + 1));
    expect(consumedA).to.deep.equal(Array.from({ length: 50 }, (_, i) => i + 1));
    expect(unknown).to.deep.equal([51]);
    const seenB = new Set(consumedB);
    expect(seenB.size, 'no duplicate on B').to.equal(consumedB.length);
    for (const seq of notProcessed) expect(seenB.has(seq)).to.equal(true);
    report(
      `make-before-break hand-back: old connection force-closed at its grace with 50 consumed, ${unknown.length} unknown, ` +
        `${notProcessed.length} not processed (resent on the new one), 100 new sends on the new one meanwhile; 0 lost, 0 duplicated`,
    );
  });
});
