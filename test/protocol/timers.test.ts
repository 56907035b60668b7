/**
 * Timer behaviour of an idle connection on the virtual clock: how often each side's one timer
 * wakes, heartbeat periods when timers fire as late as `timerSlack` allows, and detection.
 */
import { expect } from 'chai';
import { Engine } from '../../src/protocol/engine.js';
import type { EngineOptions } from '../../src/protocol/types.js';
import { VirtualClock } from '../../src/testing/clock.js';
import { EngineDriver } from '../../src/testing/engine-driver.js';

interface Side {
  engine: Engine;
  driver: EngineDriver;
  /** Times at which a heartbeat left this side. */
  heartbeats: number[];
  lastReceivedAt: number;
  closedAt: number | undefined;
  peer?: Side;
}

/**
 * Two engines over a link of fixed latency, each driven by the simulations' adapter loop
 * (`EngineDriver`: one timer, re-armed whenever `nextDeadline()` changes, as
 * `src/node/connection.ts` does), its timer firing `late(slack)` after the deadline (0: on time;
 * the wheel fires at most `timerSlack` late).
 */
class IdlePair {
  readonly clock = new VirtualClock();
  readonly client: Side;
  readonly server: Side;
  linkUp = true;

  constructor(
    private readonly late: (slack: number) => number,
    options: Partial<EngineOptions> = {},
    private readonly latency = 1,
  ) {
    this.client = this.side(new Engine({ role: 'client', seed: 11, ...options }));
    this.server = this.side(new Engine({ role: 'server', seed: 22, ...options }));
    this.client.peer = this.server;
    this.server.peer = this.client;
    this.server.driver.start();
    this.client.driver.start();
  }

  private side(engine: Engine): Side {
    const s = { engine, heartbeats: [], lastReceivedAt: 0, closedAt: undefined } as unknown as Side;
    let heartbeatsSent = 0;
    s.driver = new EngineDriver(
      engine,
      this.clock,
      {
        room: () => Number.POSITIVE_INFINITY,
        backlog: () => 0,
        write: (chunks) => {
          const now = this.clock.now;
          for (let n = engine.stats().heartbeatsSent; heartbeatsSent < n; heartbeatsSent++)
            s.heartbeats.push(now);
          if (this.linkUp) {
            const peer = s.peer!;
            for (const chunk of chunks) {
              const copy = chunk.slice();
              this.clock.setTimer(now + this.latency, () => {
                peer.lastReceivedAt = this.clock.now;
                peer.engine.receive(this.clock.now, copy);
                peer.driver.pump();
              });
            }
          }
          for (const chunk of chunks) engine.transmitted(chunk);
          return chunks.length > 0;
        },
        event: (e) => {
          if (e.type === 'closed') s.closedAt ??= this.clock.now;
        },
      },
      { name: 'IdlePair', late: this.late },
    );
    return s;
  }
}

describe('Engine timers (idle connection, virtual clock)', () => {
  const T = 20_000;
  const I = T / 3;

  for (const [label, late] of [
    ['on time', () => 0],
    ['as late as timerSlack allows', (slack: number) => slack],
  ] as const) {
    it(`wakes each side about once per heartbeat period, never more than twice (timers ${label})`, () => {
      const pair = new IdlePair(late);
      const periods = 300;
      pair.clock.advanceTo(periods * I);
      for (const side of [pair.client, pair.server]) {
        expect(side.engine.state).to.equal('open');
        // Each heartbeat period needs one wake-up (its heartbeat); nothing else may wake an idle side.
        expect(side.driver.wakeups).to.be.at.most(2 * periods);
        expect(side.driver.wakeups).to.be.at.most(side.heartbeats.length + 2);
      }
    });

    it(`keeps every heartbeat period within [0.9 I, 1.1 I] (timers ${label})`, () => {
      const pair = new IdlePair(late);
      pair.clock.advanceTo(200 * I);
      for (const side of [pair.client, pair.server]) {
        // The first two: the one at open, then the random phase in [0, I).
        const gaps = side.heartbeats.slice(2).map((t, i) => t - side.heartbeats[i + 1]!);
        expect(gaps.length).to.be.greaterThan(150);
        expect(Math.min(...gaps)).to.be.at.least(0.9 * I);
        expect(Math.max(...gaps)).to.be.at.most(1.1 * I);
        expect(side.heartbeats[1]! - side.heartbeats[0]!).to.be.below(I + 1e-9);
      }
    });
  }

  it('timerSlack is a small fraction of the heartbeat period, at most 64 ms', () => {
    const pair = new IdlePair(() => 0);
    pair.clock.advanceTo(100);
    expect(pair.server.engine.timerSlack).to.equal(64);
    expect(pair.client.engine.timerSlack).to.equal(64);
    const short = new IdlePair(() => 0, { idleTimeoutMs: 1000 });
    short.clock.advanceTo(100);
    expect(short.client.engine.timerSlack).to.be.closeTo(1000 / 3 / 100, 1e-9);
    expect(short.server.engine.timerSlack).to.be.closeTo(1000 / 3 / 100, 1e-9);
  });

  it('detects a silent path within T plus the timer slack, with late timers', () => {
    const pair = new IdlePair((slack) => slack);
    pair.clock.advanceTo(10 * I);
    pair.linkUp = false;
    const cut = pair.clock.now;
    pair.clock.advanceTo(cut + 2 * T);
    for (const side of [pair.client, pair.server]) {
      expect(side.engine.closed!.error?.code).to.equal('HEARTBEAT_TIMEOUT');
      // Not before T of silence; at most the slack after it (and far within T + one period).
      expect(side.closedAt! - side.lastReceivedAt).to.be.at.least(T);
      expect(side.closedAt! - side.lastReceivedAt).to.be.at.most(T + side.engine.timerSlack + 1e-9);
    }
  });
});
