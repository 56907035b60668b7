import { expect } from 'chai';
import { TIMER_COUNT, Timer, Timers, timerBit } from '../../../src/protocol/connection/timers.js';

describe('connection/timers: every deadline in one table', () => {
  it('next() is the earliest armed deadline among those of the mask', () => {
    const timers = new Timers();
    const all = (1 << TIMER_COUNT) - 1;
    expect(timers.next(all)).to.equal(Number.POSITIVE_INFINITY);
    timers.set(Timer.IDLE, 500);
    timers.set(Timer.HEARTBEAT, 200);
    timers.set(Timer.CLOSE, 300);
    expect(timers.next(all)).to.equal(200);
    expect(timers.next(all & ~timerBit(Timer.HEARTBEAT))).to.equal(300);
    expect(timers.next(timerBit(Timer.HANDSHAKE))).to.equal(Number.POSITIVE_INFINITY);
    timers.set(Timer.HEARTBEAT, undefined);
    expect(timers.isArmed(Timer.HEARTBEAT)).to.equal(false);
    expect(timers.next(all)).to.equal(300);
    timers.stopAll();
    expect(timers.next(all)).to.equal(Number.POSITIVE_INFINITY);
  });

  it('due() holds for an armed deadline of the mask once its time has come', () => {
    const timers = new Timers();
    timers.set(Timer.GRACE, 100);
    const mask = timerBit(Timer.GRACE);
    expect(timers.due(Timer.GRACE, 99.9, mask)).to.equal(false);
    expect(timers.due(Timer.GRACE, 100, mask)).to.equal(true);
    expect(timers.due(Timer.GRACE, 100, timerBit(Timer.IDLE))).to.equal(false);
    expect(timers.due(Timer.IDLE, 1e9, mask | timerBit(Timer.IDLE))).to.equal(false);
  });

  it('ids are distinct bits, failures first', () => {
    const ids = Object.values(Timer);
    expect(new Set(ids).size).to.equal(TIMER_COUNT);
    expect(Math.max(...ids)).to.equal(TIMER_COUNT - 1);
    expect(Timer.HANDSHAKE).to.be.below(Timer.HEARTBEAT);
    expect(Timer.CREDIT_STALL).to.be.below(Timer.CREDIT_STALL_REPORT);
  });
});
