/**
 * Timer behaviour of an idle connection on the virtual clock: how often each side's one timer
 * wakes, heartbeat periods when timers fire as late as `timerSlack` allows, and detection.
 */
import { expect } from 'chai';
import { Engine } from '../../src/protocol/engine.js';
import type { EngineOptions } from '../../src/protocol/types.js';
import { VirtualClock } from '../../src/testing/clock.js';

interface Side {
  engine: Engine;
  timer: number | undefined;
  armedFor: number | undefined;
  wakeups: number;
  /** Times at which a heartbeat left this side. */
  heartbeats: number[];
  lastReceivedAt: number;
  closedAt: number | undefined;
  peer?: Side;
}

/**
 * Two engines over a link of fixed latency, each with one timer armed the way
 * `src/node/connection.ts` does: re-armed whenever `nextDeadline()` changes, firing `late(slack)`
 * after the deadline (0: on time; the wheel fires at most `timerSlack` late).
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
    this.server.engine.start(0);
    this.client.engine.start(0);
    this.service(this.server);
    this.service(this.client);
  }

  private side(engine: Engine): Side {
    return {
      engine,
      timer: undefined,
      armedFor: undefined,
      wakeups: 0,
      heartbeats: [],
      lastReceivedAt: 0,
      closedAt: undefined,
    };
  }

  private service(s: Side): void {
    const now = this.clock.now;
    const sent = s.engine.stats().heartbeatsSent;
    const chunks = s.engine.pollTransmit(now);
    for (let i = s.engine.stats().heartbeatsSent - sent; i > 0; i--) s.heartbeats.push(now);
    while (s.engine.pollEvent() !== undefined);
    if (s.engine.closed !== undefined) s.closedAt ??= now;
    const peer = s.peer!;
    if (this.linkUp) {
      for (const chunk of chunks) {
        const copy = chunk.slice();
        this.clock.setTimer(now + this.latency, () => {
          peer.lastReceivedAt = this.clock.now;
          peer.engine.receive(this.clock.now, copy);
          this.service(peer);
        });
      }
    }
    if (chunks.length > 0 && 'transmitted' in s.engine) {
      for (const chunk of chunks) (s.engine as { transmitted(c: Uint8Array): void }).transmitted(chunk);
    }
    const deadline = s.engine.nextDeadline();
    if (deadline === s.armedFor) return;
    if (s.timer !== undefined) this.clock.cancel(s.timer);
    s.timer = undefined;
    s.armedFor = deadline;
    if (deadline === undefined) return;
    s.timer = this.clock.setTimer(deadline + this.late(s.engine.timerSlack), () => {
      s.timer = undefined;
      s.armedFor = undefined;
      s.wakeups++;
      s.engine.handleTimeout(this.clock.now);
      this.service(s);
    });
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
        expect(side.wakeups).to.be.at.most(2 * periods);
        expect(side.wakeups).to.be.at.most(side.heartbeats.length + 2);
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
