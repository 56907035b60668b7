import { expect } from 'chai';
import type { HeartbeatFrame } from '../../../src/protocol/frames.js';
import {
  FrameType,
  HEARTBEAT_TICKS_PER_MS,
  MAX_HEARTBEATS_PER_WINDOW,
} from '../../../src/protocol/constants.js';
import { Liveness } from '../../../src/protocol/connection/liveness.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { Timer, Timers } from '../../../src/protocol/connection/timers.js';
import type { EngineEvent } from '../../../src/protocol/types.js';
import { settings, thrownCode } from './helpers.js';

function liveness(options = {}): { live: Liveness; timers: Timers; events: Ring<EngineEvent> } {
  const timers = new Timers();
  const events = new Ring<EngineEvent>();
  const live = new Liveness(settings('client', { idleTimeoutMs: 3000, ...options }), timers, events);
  live.open(0, 3000, 3000);
  return { live, timers, events };
}

function heartbeat(atMs: number, echo?: { timestamp: number; delay: number }): HeartbeatFrame {
  return {
    type: FrameType.HEARTBEAT,
    echo: echo !== undefined,
    timestamp: Math.floor(atMs * HEARTBEAT_TICKS_PER_MS),
    echoTimestamp: echo?.timestamp ?? 0,
    echoDelay: echo?.delay ?? 0,
    receivedBytes: 0,
    creditLimit: 0,
    consumedMessages: 0,
  };
}

describe('connection/liveness', () => {
  it('opens with a heartbeat due and the next within the first period, less the slack', () => {
    const { live, timers } = liveness();
    expect(live.heartbeatDue).to.equal(true);
    expect(live.heartbeatInterval).to.equal(1000);
    expect(live.timerSlack).to.equal(10);
    expect(timers.get(Timer.HEARTBEAT)).to.be.within(0, 990);
    live.onHeartbeatTimer(5000);
    expect(timers.get(Timer.HEARTBEAT)).to.be.within(5900, 6100 - live.timerSlack);
  });

  it('the stall rule: a late idle timer grants one heartbeat period once, then fails', () => {
    const { live, timers } = liveness();
    live.lastReceivedAt = 100;
    live.heartbeatDue = false;
    live.syncIdleTimer();
    expect(timers.get(Timer.IDLE)).to.equal(3100);
    // On time: fail.
    expect(live.onIdleTimer(3100)).to.equal(true);
    // Late by more than the tolerance: a grace of one period and a probe, once per deadline.
    expect(live.onIdleTimer(4000)).to.equal(false);
    expect(live.heartbeatDue).to.equal(true);
    expect(timers.get(Timer.IDLE)).to.equal(5000);
    expect(live.onIdleTimer(9000)).to.equal(true);
    // Bytes arrived: a new deadline, and a new grace may be granted for it.
    live.lastReceivedAt = 8000;
    live.syncIdleTimer();
    expect(timers.get(Timer.IDLE)).to.equal(11_000);
    expect(live.onIdleTimer(12_000)).to.equal(false);
  });

  it('floods: more than MAX_HEARTBEATS_PER_WINDOW early heartbeats in a row is ENHANCE_YOUR_CALM', () => {
    const { live } = liveness();
    live.checkHeartbeatRate(0, 0);
    live.onHeartbeat(0, heartbeat(0));
    for (let i = 1; i <= MAX_HEARTBEATS_PER_WINDOW; i++) live.checkHeartbeatRate(i, heartbeat(i).timestamp);
    expect(thrownCode(() => live.checkHeartbeatRate(20, heartbeat(20).timestamp))).to.equal(
      'ENHANCE_YOUR_CALM',
    );
  });

  it('heartbeats at the agreed rate delivered together are not a flood', () => {
    const { live } = liveness();
    for (let i = 0; i < 50; i++) {
      const frame = heartbeat(i * 1000);
      live.checkHeartbeatRate(60_000, frame.timestamp);
      live.onHeartbeat(60_000, frame);
    }
    expect(live.heartbeatsReceived).to.equal(50);
  });

  it('an echo gives an RTT sample (echo delay subtracted), once per echoed timestamp', () => {
    const { live, events } = liveness();
    const sent = Math.floor(1000 * HEARTBEAT_TICKS_PER_MS);
    const frame = heartbeat(1200, { timestamp: sent, delay: 20 * HEARTBEAT_TICKS_PER_MS });
    live.onHeartbeat(1100, frame);
    expect(live.rtt).to.be.closeTo(80, 0.01);
    live.onHeartbeat(1150, frame);
    expect(live.rtt).to.be.closeTo(80, 0.01);
    const rtts: EngineEvent[] = [];
    for (let e = events.shift(); e !== undefined; e = events.shift()) if (e.type === 'rtt') rtts.push(e);
    expect(rtts).to.have.length(1);
  });

  it('write stall: armed while the backlog makes no progress, stopped at 0', () => {
    const { live, timers } = liveness({ writeStallTimeoutMs: 500 });
    live.transmitBacklog(10, 100);
    live.transmitBacklog(20, 150);
    expect(timers.get(Timer.WRITE_STALL)).to.equal(510);
    live.transmitBacklog(30, 50);
    expect(timers.get(Timer.WRITE_STALL)).to.equal(530);
    live.transmitBacklog(40, 0);
    expect(timers.isArmed(Timer.WRITE_STALL)).to.equal(false);
  });

  it('no-op control frames: more than allowed per window is ENHANCE_YOUR_CALM', () => {
    const { live } = liveness();
    expect(
      thrownCode(() => {
        for (let i = 0; i < 100_000; i++) live.countNoop(1);
      }),
    ).to.equal('ENHANCE_YOUR_CALM');
  });
});
