import { expect } from 'chai';
import { openWired, wired } from './helpers.js';

describe('connection/stats', () => {
  it('assembles the counters of the parts', () => {
    const p = wired('client');
    expect(p.stats.collect(false, 0).lastReceivedAt).to.equal(undefined);
    openWired(p);
    p.stats.bytesReceived = 42;
    p.live.lastReceivedAt = 7;
    p.send.queue(0, new Uint8Array(10));
    p.transmit.pollTransmit(8, Number.POSITIVE_INFINITY);
    const stats = p.stats.collect(true, 10);
    expect(stats.state).to.equal('open');
    expect(stats.bytesReceived).to.equal(42);
    expect(stats.bytesSent).to.equal(p.transmit.bytesSent).and.to.be.greaterThan(10);
    expect(stats.messagesSent).to.equal(1);
    expect(stats.lastReceivedAt).to.equal(7);
    expect(stats.lastSentAt).to.equal(8);
    expect(stats.sendCredit).to.equal((1 << 20) - p.send.sentCredit);
  });
});
