import { expect } from 'chai';
import { decodeAll, encodeFrame } from '../../../src/protocol/codec.js';
import { FrameType } from '../../../src/protocol/constants.js';
import type { Frame } from '../../../src/protocol/frames.js';
import { drain, openWired, wired } from './helpers.js';

function frames(chunks: Uint8Array[]): Frame[] {
  return chunks.flatMap((c) => decodeAll(c, { expectPreamble: false, maxDataPayload: 1 << 16 }));
}

describe('connection/transmit', () => {
  it('sends in the order of SPEC.md §8: control frames, heartbeat (which carries the credit), DATA', () => {
    const p = wired('client');
    openWired(p);
    p.send.queue(0, new Uint8Array(10));
    p.controlQueue.push(encodeFrame({ type: FrameType.CREDIT, creditLimit: 7, consumedMessages: 0 }));
    p.live.heartbeatDue = true;
    p.w.creditDirty = true;
    expect(p.transmit.wantsToTransmit).to.equal(true);
    const out = p.transmit.pollTransmit(3, Number.POSITIVE_INFINITY);
    const sent = frames(out);
    expect(sent.map((f) => f.type)).to.deep.equal([FrameType.CREDIT, FrameType.HEARTBEAT, FrameType.DATA]);
    expect(sent[0]).to.deep.include({ creditLimit: 7 });
    expect(p.transmit.bytesSent).to.equal(out.reduce((n, c) => n + c.length, 0));
    expect(p.live.lastSentAt).to.equal(3);
    expect(p.transmit.wantsToTransmit).to.equal(false);
    expect(p.transmit.pollTransmit(4, Number.POSITIVE_INFINITY)).to.deep.equal([]);
    expect(p.live.lastSentAt).to.equal(3);
    // Without a heartbeat, a credit goes before DATA; at most one frame past the room given.
    p.send.queue(4, new Uint8Array(10));
    p.send.queue(4, new Uint8Array(10));
    p.w.creditDirty = true;
    const next = frames(p.transmit.pollTransmit(5, 1)).map((f) => f.type);
    expect(next).to.deep.equal([FrameType.CREDIT, FrameType.DATA]);
    expect(p.transmit.wantsToTransmit).to.equal(true);
  });

  it('before the handshake completes, only the control queue goes out', () => {
    const p = wired('client');
    p.controlQueue.push(new Uint8Array([1, 2, 3]));
    expect(p.transmit.pollTransmit(0, Number.POSITIVE_INFINITY)).to.deep.equal([new Uint8Array([1, 2, 3])]);
    expect(p.transmit.wantsToTransmit).to.equal(false);
  });

  it('client: CLOSE follows the data and moves to close-sent; the final CREDIT to fin-sent', () => {
    const p = wired('client');
    openWired(p);
    p.send.queue(0, new Uint8Array(10));
    p.live.heartbeatDue = false;
    p.t.close(0);
    drain(p.events);
    const out = frames(p.transmit.pollTransmit(1, Number.POSITIVE_INFINITY));
    expect(out.map((f) => f.type)).to.deep.equal([FrameType.DATA, FrameType.CLOSE]);
    expect(p.machine.state).to.equal('close-sent');
    expect(p.transmit.mayTransmitAfterRead).to.equal(true);
    p.machine.move('close-acked');
    p.t.finalFrameDue = true;
    const last = frames(p.transmit.pollTransmit(2, Number.POSITIVE_INFINITY));
    expect(last.map((f) => f.type)).to.deep.equal([FrameType.CREDIT]);
    expect(p.machine.state).to.equal('fin-sent');
    expect(drain(p.events).map((e) => e.type)).to.include('end-transport');
  });
});
