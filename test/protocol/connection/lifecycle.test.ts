import { expect } from 'chai';
import { decodeAll } from '../../../src/protocol/codec.js';
import { FrameType } from '../../../src/protocol/constants.js';
import { TimeoutError, UsageError } from '../../../src/protocol/errors.js';
import { drain, openWired, wired } from './helpers.js';

describe('connection/lifecycle', () => {
  it('opening caches what the row allows: messages may be sent up to the peer limit', () => {
    const p = wired('client');
    expect(p.life.sendLimit).to.equal(-1);
    expect(p.life.open).to.equal(false);
    openWired(p);
    expect(p.life.open).to.equal(true);
    expect(p.life.sendLimit).to.equal(1 << 20);
    expect(drain(p.events).map((e) => e.type)).to.deep.equal(['state', 'open']);
    p.t.close(0);
    p.life.updateSendOpen();
    expect(p.life.sendLimit).to.equal(-1);
    expect(p.life.open).to.equal(false);
  });

  it('fail queues ERROR once frames may be sent, closes once, and emits closed', () => {
    const p = wired('client');
    openWired(p);
    p.handshake.preambleSent = true;
    drain(p.events);
    p.life.fail(5, new TimeoutError('CLOSE_TIMEOUT', 'late'), 'local', true);
    expect(p.machine.state).to.equal('closed');
    const error = decodeAll(p.controlQueue.shift()!, { expectPreamble: false, maxDataPayload: 1 });
    expect(error[0]?.type).to.equal(FrameType.ERROR);
    expect(drain(p.events).map((e) => e.type)).to.deep.equal(['state', 'closed']);
    p.life.fail(6, new UsageError('CANCELLED', 'again'), 'local', true);
    expect(p.controlQueue.length).to.equal(0);
    expect(p.events.length).to.equal(0);
    expect(p.t.closeInfo?.error?.code).to.equal('CLOSE_TIMEOUT');
  });

  it('end-of-stream is clean only where the row says so', () => {
    const p = wired('client');
    openWired(p);
    expect(p.life.endOfStreamIsClean()).to.equal(false);
    p.life.finishClean(1, 'remote');
    expect(p.machine.state).to.equal('closed');
    expect(p.t.closeInfo?.clean).to.equal(true);
  });
});
