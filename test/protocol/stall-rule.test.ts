/**
 * The liveness stall rule (SPEC.md §8, "Our own stalls are not the peer's fault") on the virtual
 * clock: a side whose own process was stopped past its idle deadline extends the deadline once, by
 * one heartbeat period, and fails if the peer stays silent.
 */
import { expect } from 'chai';
import type { Engine } from '../../src/protocol/engine.js';
import { Pair } from './pair.js';

/**
 * Drive `engine` alone (its peer is silent) from `now`, firing each timer `late` ms after its
 * deadline, until it closes or `until`. Returns when it closed and the heartbeats it sent meanwhile.
 */
function runAlone(
  engine: Engine,
  now: number,
  until: number,
  late: number,
): { closedAt: number | undefined; heartbeats: number } {
  const sentBefore = engine.stats().heartbeatsSent;
  let closedAt: number | undefined;
  while (now <= until) {
    engine.handleTimeout(now);
    engine.pollTransmit(now);
    while (engine.pollEvent() !== undefined);
    if (engine.state === 'closed') {
      closedAt = now;
      break;
    }
    const next = engine.nextDeadline();
    if (next === undefined) break;
    now = Math.max(now, next) + late;
  }
  return { closedAt, heartbeats: engine.stats().heartbeatsSent - sentBefore };
}

describe('Liveness after a local stall (SPEC.md §8 stall rule)', () => {
  for (const late of [0, 1, 3]) {
    it(`extends the deadline once, then fails when the peer stays silent (timers ${late} ms late)`, () => {
      const pair = new Pair({ idleTimeoutMs: 1000, seed: 5 }, { idleTimeoutMs: 1000, seed: 6 });
      pair.advanceTo(500);
      pair.linkUp = false; // the client stays silent from now on
      const server = pair.server.engine;
      const heard = server.stats().lastReceivedAt!;
      const interval = server.negotiated!.heartbeatIntervalMs;
      // The server process is stopped for 2 s: its next timer fires 2 s after its deadline.
      const resumed = server.nextDeadline()! + 2000;
      expect(resumed).to.be.above(heard + 1000 + 250);
      const { closedAt, heartbeats } = runAlone(server, resumed, resumed + 30_000, late);
      expect(server.closed?.error?.code).to.equal('HEARTBEAT_TIMEOUT');
      // One heartbeat period of grace after the stall, no more (plus the timer's lateness).
      expect(closedAt! - resumed).to.be.at.least(interval);
      expect(closedAt! - resumed).to.be.at.most(interval + late + 1e-9);
      // The probe at once, and at most one scheduled heartbeat within the period.
      expect(heartbeats).to.be.within(1, 2);
    });
  }

  it('a peer that answers within the grace keeps the connection; a later stall gets its own grace', () => {
    const pair = new Pair({ idleTimeoutMs: 1000, seed: 5 }, { idleTimeoutMs: 1000, seed: 6 });
    pair.advanceTo(500);
    for (let stall = 0; stall < 3; stall++) {
      // Both processes stopped for 2 s; the bytes of the other side arrive once they resume.
      const server = pair.server.engine;
      const resumed = Math.max(server.nextDeadline()!, pair.client.engine.nextDeadline()!) + 2000;
      pair.now = resumed;
      server.handleTimeout(resumed);
      pair.client.engine.handleTimeout(resumed);
      pair.pump();
      pair.advanceTo(resumed + 3000);
      expect(server.state).to.equal('open');
      expect(pair.client.engine.state).to.equal('open');
    }
  });

  it('a timer late by less than the tolerance is not a stall: fails at the deadline', () => {
    const pair = new Pair({ idleTimeoutMs: 1000, seed: 5 }, { idleTimeoutMs: 1000, seed: 6 });
    pair.advanceTo(500);
    pair.linkUp = false;
    const server = pair.server.engine;
    const heard = server.stats().lastReceivedAt!;
    const { closedAt } = runAlone(server, pair.now, pair.now + 30_000, 200);
    expect(server.closed?.error?.code).to.equal('HEARTBEAT_TIMEOUT');
    expect(closedAt! - heard).to.be.at.most(1000 + 200 + 1e-9);
  });
});
