import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import type { Connection } from '../../src/node/connection.js';
import { AGE_JITTER, ConnectionLifecycle } from '../../src/node/lifecycle.js';
import type { Endable } from '../../src/node/lifecycle.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { createServer } from '../../src/node/server.js';
import type { Server } from '../../src/node/server.js';
import type { ServerOptions } from '../../src/node/options.js';
import { TimerWheel } from '../../src/node/timer-wheel.js';
import { GoAwayReason } from '../../src/protocol/frames.js';
import type { GoAwayInfo } from '../../src/protocol/types.js';
import { VirtualClock } from '../../src/testing/clock.js';
import { FrameType } from '../../src/protocol/constants.js';
import {
  codeOf,
  helloBytes,
  LOCALHOST,
  now,
  observe,
  RawPeer,
  rejection,
  report,
  waitFor,
  within,
} from './helpers.js';

/** A lifecycle on a virtual clock, and connections that record how they were ended. */
function virtual(options: ConstructorParameters<typeof ConnectionLifecycle>[0], seed = 1) {
  const clock = new VirtualClock();
  const wheel = new TimerWheel({
    now: () => clock.now,
    set: (delay, fn) => clock.setTimer(clock.now + delay, fn),
    clear: (handle) => clock.cancel(handle as number),
  });
  let state = seed >>> 0;
  const random = (): number => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0; // LCG: deterministic jitter
    return state / 2 ** 32;
  };
  const lifecycle = new ConnectionLifecycle(options, wheel, random);
  type Ended = Parameters<Endable['end']>[0] & { at: number };
  const connection = (): Endable & { ended: Ended[] } => {
    const ended: Ended[] = [];
    return { ended, end: (how) => (ended.push({ ...how, at: clock.now }), Promise.resolve()) };
  };
  return { clock, lifecycle, connection };
}

describe('server connection lifecycle (virtual clock)', () => {
  it('ends each connection with GOAWAY MAX_AGE at its age ±10 %, jittered across connections', () => {
    const age = 60_000;
    const { clock, lifecycle, connection } = virtual({ maxConnectionAge: age, maxConnectionAgeGrace: 7000 });
    const conns = Array.from({ length: 500 }, () => connection());
    for (const c of conns) lifecycle.opened(c);
    clock.advanceTo(age * (1 - AGE_JITTER) - 1);
    expect(conns.filter((c) => c.ended.length > 0)).to.have.length(0);
    clock.advanceTo(age * (1 + AGE_JITTER) + 64); // + the wheel's slack
    const at = conns.map((c) => {
      expect(c.ended).to.have.length(1);
      expect(c.ended[0]).to.include({ reason: GoAwayReason.MAX_AGE, grace: 7000 });
      return c.ended[0]!.at;
    });
    expect(Math.min(...at)).to.be.within(age * 0.9, age * 0.92);
    expect(Math.max(...at)).to.be.within(age * 1.08, age * 1.1 + 64);
    // Spread: the ages fall in distinct 1 %-wide slices, not in lockstep.
    expect(new Set(at.map((t) => Math.floor(t / (age / 100)))).size).to.be.at.least(15);
    expect(lifecycle.counts.aged).to.equal(500);
  });

  it('forgets a connection that closed before its age, and stops aging when the server closes', () => {
    const { clock, lifecycle, connection } = virtual({ maxConnectionAge: 1000 });
    const [closedEarly, survivor, other] = [connection(), connection(), connection()];
    lifecycle.opened(closedEarly);
    lifecycle.opened(survivor);
    clock.advanceBy(500);
    lifecycle.closed(closedEarly);
    clock.advanceBy(1000);
    expect(closedEarly.ended).to.have.length(0);
    expect(survivor.ended).to.have.length(1);
    expect(survivor.ended[0]!.grace).to.equal(undefined); // the connection's defaultGrace applies
    lifecycle.opened(other);
    lifecycle.stop();
    clock.advanceBy(5000);
    expect(other.ended).to.have.length(0);
    expect(lifecycle.size).to.equal(2);
  });

  it('sheds connections above targetConnections with GOAWAY OVERLOADED and retry_after_ms', () => {
    const { lifecycle, connection } = virtual({ targetConnections: 3, overloadRetryAfter: 2500 });
    const conns = Array.from({ length: 5 }, () => connection());
    for (const c of conns) lifecycle.opened(c);
    expect(conns.map((c) => c.ended.length)).to.deep.equal([0, 0, 0, 1, 1]);
    expect(conns[3]!.ended[0]).to.include({ reason: GoAwayReason.OVERLOADED, retryAfter: 2500 });
    lifecycle.closed(conns[3]!);
    lifecycle.closed(conns[4]!);
    lifecycle.closed(conns[0]!);
    const next = connection();
    lifecycle.opened(next);
    expect(next.ended).to.have.length(0); // below the target again
    expect(lifecycle.counts.shed).to.equal(2);
  });

  it('rejects invalid lifecycle options synchronously (RangeError at createServer)', () => {
    for (const bad of [
      { maxConnectionAge: 0 },
      { maxConnectionAge: Number.NaN },
      { maxConnectionAge: 2 ** 31 },
      { maxConnectionAgeGrace: -1 },
      { targetConnections: -1 },
      { overloadRetryAfter: Number.POSITIVE_INFINITY },
    ] as ServerOptions[]) {
      expect(() => createServer(bad), JSON.stringify(bad)).to.throw(RangeError);
    }
  });
});

describe('server connection lifecycle (real sockets)', function () {
  this.timeout(20_000);
  const cleanup: (() => Promise<unknown> | void)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await Promise.resolve(step()).catch(() => {});
  });

  /** A server that consumes (and counts) every message. */
  async function server(
    options: ServerOptions,
  ): Promise<{ server: Server; port: number; consumed: () => number }> {
    let consumed = 0;
    const s = createServer(options, (conn) => {
      void conn.handle(() => void consumed++).catch(() => {});
      conn.closed.catch(() => {});
    });
    cleanup.push(() => s.close({ grace: 100 }));
    const { port } = await s.listen(0, LOCALHOST);
    return { server: s, port, consumed: () => consumed };
  }

  it('maxConnectionAge: the client gets GOAWAY MAX_AGE near the age, moves to a new connection, nothing lost', async () => {
    const age = 600;
    const { port, consumed } = await server({ maxConnectionAge: age, maxConnectionAgeGrace: 2000 });
    const client = new ReconnectingClient({ host: LOCALHOST, port, minDelay: 10, maxDelay: 50 });
    cleanup.push(() => client.close());
    const goaways: { info: GoAwayInfo; afterMs: number }[] = [];
    const openedAt: number[] = [];
    let handedBack = 0;
    let written = 0;
    client.on('connected', (conn) => {
      const t = now();
      openedAt.push(t);
      conn.on('goaway', (info) => goaways.push({ info, afterMs: now() - t }));
      // A message every 2 ms on the current connection, through each GOAWAY.
      const sending = setInterval(() => {
        if (conn.state !== 'open') return clearInterval(sending);
        try {
          conn.write(new Uint8Array(100));
          written++;
        } catch {
          clearInterval(sending);
        }
      }, 2);
      conn.once('close', () => clearInterval(sending));
    });
    client.on('disconnected', (d) => (handedBack += d.notProcessed.length + d.unknown.length));
    await waitFor(() => openedAt.length >= 3, 10_000, 'two moves');
    await client.close();
    // Exact accounting across the moves: every message written was consumed or handed back.
    await waitFor(() => consumed() + handedBack === written, 5000, 'the accounting');
    expect(handedBack).to.equal(0);
    expect(goaways.length).to.be.at.least(2);
    for (const { info, afterMs } of goaways) {
      expect(info.reason).to.equal(GoAwayReason.MAX_AGE);
      expect(info.graceMs).to.equal(2000);
      expect(afterMs).to.be.within(age * 0.9 - 5, age * 1.1 + 500); // + timer slack and a loaded box
    }
    report(
      `maxConnectionAge ${age} ms: GOAWAY MAX_AGE after ${goaways.map((g) => g.afterMs.toFixed(0)).join(', ')} ms; ` +
        `next connection open ${(openedAt[1]! - openedAt[0]! - goaways[0]!.afterMs).toFixed(0)} ms after the first GOAWAY; ` +
        `${written} messages written across ${openedAt.length} connections, ${consumed()} consumed, 0 lost`,
    );
  });

  it('a client that ignores the MAX_AGE GOAWAY is force-closed when maxConnectionAgeGrace expires', async () => {
    const { port } = await server({ maxConnectionAge: 300, maxConnectionAgeGrace: 300 });
    const conn: Connection = await connect({ host: LOCALHOST, port });
    cleanup.push(() => conn.abort());
    const t0 = now();
    const outcome = await within(observe(conn.closed), 5000, 'the forced close');
    expect(codeOf(rejection(outcome, 'the ignored GOAWAY'))).to.equal('GOAWAY_GRACE_EXPIRED');
    expect(outcome.at - t0).to.be.within(300 * 0.9 + 300 - 5, 2000);
  });

  it('targetConnections: the connection above the target gets GOAWAY OVERLOADED with retry_after_ms right after WELCOME', async () => {
    const { server: s, port } = await server({ targetConnections: 1, overloadRetryAfter: 400 });
    const first = await connect({ host: LOCALHOST, port });
    cleanup.push(() => first.abort());
    // Seen on the wire: a client-side listener misses a GOAWAY sent at open until issue 10 item 7
    // (events before connect() resolves) is fixed.
    const raw = new RawPeer(port);
    cleanup.push(() => void raw.socket.destroy());
    await raw.connected;
    raw.write(helloBytes());
    const frame = await raw.waitForFrame(FrameType.GOAWAY, 5000);
    expect(frame.type === FrameType.GOAWAY && frame.goAway).to.include({
      reason: GoAwayReason.OVERLOADED,
      retryAfterMs: 400,
    });
    expect(raw.frames()[0]!.type).to.equal(FrameType.WELCOME); // then GOAWAY at once (maybe a CREDIT first)
    expect(first.state).to.equal('open'); // the connections below the target are untouched
    expect(s.connections.size).to.equal(2);
  });
});
