import { expect } from 'chai';
import { Timer, timerBit } from '../../../src/protocol/connection/timers.js';
import { drain, openWired, wired } from './helpers.js';

describe('connection/deadlines', () => {
  it('the handshake deadline closes the connection with HANDSHAKE_TIMEOUT, not before it is due', () => {
    const p = wired('client');
    p.timers.set(Timer.HANDSHAKE, 100);
    const mask = p.machine.row.timers;
    expect(p.deadlines.next(mask)).to.equal(100);
    p.deadlines.handle(99, mask);
    expect(p.machine.state).to.equal('handshaking');
    p.deadlines.handle(100, mask);
    expect(p.machine.state).to.equal('closed');
    expect(p.t.closeInfo?.error?.code).to.equal('HANDSHAKE_TIMEOUT');
    expect(p.t.closeInfo?.initiator).to.equal('local');
  });

  it('only the deadlines of the mask count; none gives undefined', () => {
    const p = wired('client');
    p.timers.set(Timer.HANDSHAKE, 100);
    expect(p.deadlines.next(0)).to.equal(undefined);
    p.deadlines.handle(1000, timerBit(Timer.CLOSE));
    expect(p.machine.state).to.equal('handshaking');
  });

  it('a due heartbeat deadline makes a heartbeat due and keeps the connection open', () => {
    const p = wired('client');
    openWired(p);
    drain(p.events);
    p.live.heartbeatDue = false;
    const mask = p.machine.row.timers;
    const at = p.timers.next(timerBit(Timer.HEARTBEAT));
    expect(at).to.be.lessThan(Number.POSITIVE_INFINITY);
    p.deadlines.handle(at, timerBit(Timer.HEARTBEAT) & mask);
    expect(p.live.heartbeatDue).to.equal(true);
    expect(p.machine.state).to.equal('open');
  });
});
