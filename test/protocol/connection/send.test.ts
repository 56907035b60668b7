import { expect } from 'chai';
import { decodeAll } from '../../../src/protocol/codec.js';
import { dataFrameCost } from '../../../src/protocol/codec/wire.js';
import { FrameType } from '../../../src/protocol/constants.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { SEND_QUEUE_MESSAGE_OVERHEAD, Sender } from '../../../src/protocol/connection/send.js';
import { Timer, Timers } from '../../../src/protocol/connection/timers.js';
import type { Frame } from '../../../src/protocol/frames.js';
import type { EngineEvent } from '../../../src/protocol/types.js';
import { settings, thrownCode } from './helpers.js';

function sender(options = {}): { send: Sender; timers: Timers; events: Ring<EngineEvent> } {
  const timers = new Timers();
  const events = new Ring<EngineEvent>();
  const send = new Sender(settings('client', options), timers, events);
  send.start(1 << 20, 1024, 1 << 20);
  return { send, timers, events };
}

/** One `pollTransmit`'s DATA, decoded. */
function transmit(send: Sender, budget = Number.POSITIVE_INFINITY): Frame[] {
  const out: Uint8Array[] = [];
  send.begin(out, budget, 0);
  send.writeData(budget);
  send.end(0);
  const bytes = new Uint8Array(out.reduce((n, c) => n + c.length, 0));
  let at = 0;
  for (const chunk of out) {
    bytes.set(chunk, at);
    at += chunk.length;
  }
  return decodeAll(bytes, { expectPreamble: false, maxDataPayload: 1 << 20 });
}

describe('connection/send', () => {
  it('the send queue accepts below its bound, then refuses until consumption makes room (writable)', () => {
    const { send, events } = sender({ maxSendQueueBytes: 1000 });
    const payload = new Uint8Array(300);
    let accepted = 0;
    while (send.queue(0, payload)) accepted++;
    expect(accepted).to.equal(3);
    expect(send.outboxBytes).to.equal(3 * (300 + SEND_QUEUE_MESSAGE_OVERHEAD));
    expect(send.queueFull).to.equal(true);
    transmit(send);
    expect(send.writtenCount).to.equal(3);
    expect(send.onCredit(0, 0, 1)).to.equal(true);
    expect(send.queueFull).to.equal(false);
    expect(events.shift()).to.deep.equal({ type: 'writable' });
    expect(send.queue(0, payload)).to.equal(true);
  });

  it('fragments within the peer frame size, END on the last frame only', () => {
    const { send } = sender();
    send.queue(0, new Uint8Array(2500).fill(1));
    const frames = transmit(send);
    expect(frames.map((f) => (f.type === FrameType.DATA ? [f.payload.length, f.end] : []))).to.deep.equal([
      [1024, false],
      [1024, false],
      [452, true],
    ]);
    expect(send.sentCredit).to.equal(dataFrameCost(1024, false) * 2 + dataFrameCost(452, true));
  });

  it('never cuts a message below MIN_FRAGMENT to fit the credit, and watches the stall', () => {
    const { send, timers, events } = sender({ creditStallReportMs: 100, creditStallTimeoutMs: 1000 });
    send.peerLimit = 400;
    send.queue(5, new Uint8Array(800));
    expect(send.nextFrameSize(800, 400)).to.equal(-1);
    expect(send.nextFrameSize(800, 600)).to.equal(594);
    expect(transmit(send)).to.have.length(0);
    expect(send.blockedSince).to.equal(0);
    expect(timers.get(Timer.CREDIT_STALL_REPORT)).to.equal(100);
    expect(timers.get(Timer.CREDIT_STALL)).to.equal(1000);
    send.reportStall(150);
    expect(events.shift()).to.deep.equal({ type: 'credit-stall', blockedMs: 150 });
    send.onCredit(200, 2000, 0);
    expect(send.blockedSince).to.equal(undefined);
    expect(timers.isArmed(Timer.CREDIT_STALL)).to.equal(false);
    expect(events.shift()).to.deep.equal({ type: 'credit-resumed', blockedMs: 200 });
  });

  it('a peer reporting more messages consumed than were written is a PROTOCOL_ERROR', () => {
    const { send } = sender();
    send.queue(0, new Uint8Array(1));
    expect(thrownCode(() => send.onCredit(0, 0, 1))).to.equal('PROTOCOL_ERROR');
  });

  it('the delivery report: consumed, unknown (written), not processed (never written)', () => {
    const { send } = sender();
    for (let i = 0; i < 4; i++) send.queue(0, new Uint8Array([i]));
    transmit(send, 14);
    expect(send.writtenCount).to.equal(2);
    send.onCredit(0, 0, 1);
    const report = send.deliveryReport();
    expect(report.queued).to.equal(4);
    expect(report.consumed).to.equal(1);
    expect(report.notProcessedFrom).to.equal(3);
    expect(report.unknown.map((p) => p[0])).to.deep.equal([1]);
    expect(report.notProcessed.map((p) => p[0])).to.deep.equal([2, 3]);
  });
});
