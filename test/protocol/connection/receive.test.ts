import { expect } from 'chai';
import { FrameDecoder, encodeControlFrame, encodeFrame } from '../../../src/protocol/codec.js';
import { dataFrameCost } from '../../../src/protocol/codec/wire.js';
import { FrameType } from '../../../src/protocol/constants.js';
import type { Engine } from '../../../src/protocol/engine.js';
import type { ControlFrame } from '../../../src/protocol/frames.js';
import { Liveness } from '../../../src/protocol/connection/liveness.js';
import { Receiver } from '../../../src/protocol/connection/receive.js';
import { ReceiveWindow } from '../../../src/protocol/connection/receive-window.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { StateMachine } from '../../../src/protocol/connection/state.js';
import { Timers } from '../../../src/protocol/connection/timers.js';
import type { EngineEvent } from '../../../src/protocol/types.js';
import { settings, thrownCode } from './helpers.js';

function receiver(allocate?: (size: number) => Uint8Array): {
  r: Receiver;
  w: ReceiveWindow;
  events: Ring<EngineEvent>;
  control: ControlFrame[];
} {
  const s = settings('client', { maxMessageBytes: 100_000, initialWindowBytes: 1 << 20, allocate });
  const timers = new Timers();
  const events = new Ring<EngineEvent>();
  const machine = new StateMachine('client');
  machine.move('open');
  const decoder = new FrameDecoder({ expectPreamble: false, maxDataPayload: s.maxFramePayload });
  decoder.wholeMessageMax = s.maxMessageBytes;
  const w = new ReceiveWindow(s, timers, new Liveness(s, timers, events), decoder, () => {});
  w.grants = true;
  const control: ControlFrame[] = [];
  const engine = {
    onControl: (_now: number, frame: ControlFrame) => control.push(frame),
  } as unknown as Engine;
  const r = new Receiver(s, machine, w, decoder, events, engine);
  r.setDataAllowed(true);
  return { r, w, events, control };
}

const data = (payload: Uint8Array, end = true): Uint8Array =>
  encodeFrame({ type: FrameType.DATA, end, payload });
const concat = (...parts: Uint8Array[]): Uint8Array => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

describe('connection/receive', () => {
  it('assembled messages of 4 KiB and more come from the allocate option, every byte overwritten', () => {
    const sizes: number[] = [];
    // Storage full of garbage, as Buffer.allocUnsafeSlow may return.
    const { r } = receiver((size) => {
      sizes.push(size);
      return new Uint8Array(size).fill(0xee);
    });
    const big = new Uint8Array(5000).map((_, i) => i % 251);
    const framed = concat(data(big.subarray(0, 3000), false), data(big.subarray(3000)), data(big));
    const small = data(new Uint8Array(4095).fill(7));
    // Cut inside frames: a two-frame message (pieces), a one-frame message (assembly), a small one.
    r.receiveChunk(framed.subarray(0, 4000));
    r.receiveChunk(framed.subarray(4000, 9000));
    r.receiveChunk(concat(framed.subarray(9000), small.subarray(0, 10)));
    r.receiveChunk(small.subarray(10));
    expect(sizes).to.deep.equal([5000, 5000]);
    expect(r.inbox.shift()).to.deep.equal(big);
    expect(r.inbox.shift()).to.deep.equal(big);
    expect(r.inbox.shift()).to.deep.equal(new Uint8Array(4095).fill(7));
  });

  it('whole messages of a chunk: queued, counted, one readable event; credit settled per chunk', () => {
    const { r, w, events } = receiver();
    r.receiveChunk(concat(data(new Uint8Array(100).fill(1)), data(new Uint8Array(5).fill(2))));
    expect(r.receivedCount).to.equal(2);
    expect(r.inbox.length).to.equal(2);
    expect(w.receivedCredit).to.equal(dataFrameCost(100, true) + dataFrameCost(5, true));
    expect(events.shift()).to.deep.equal({ type: 'readable' });
    expect(events.shift()).to.equal(undefined);
  });

  it('a message spanning frames and chunks is assembled once complete', () => {
    const { r, w } = receiver();
    const stream = concat(data(new Uint8Array(3000).fill(3), false), data(new Uint8Array(2000).fill(4)));
    for (let i = 0; i < stream.length; i += 700) r.receiveChunk(stream.subarray(i, i + 700));
    expect(r.inbox.length).to.equal(1);
    const message = r.read(0)!;
    expect(message.length).to.equal(5000);
    expect(message[2999]).to.equal(3);
    expect(message[3000]).to.equal(4);
    expect(w.partialCost).to.equal(0);
    expect(w.consumedCount).to.equal(1);
    expect(w.heldBytes).to.equal(0);
  });

  it('control frames go to the engine after the messages before them', () => {
    const { r, control } = receiver();
    const credit: ControlFrame = { type: FrameType.CREDIT, creditLimit: 1, consumedMessages: 0 };
    r.receiveChunk(concat(data(new Uint8Array(50)), encodeControlFrame(credit)));
    expect(r.receivedCount).to.equal(1);
    expect(control).to.deep.equal([credit]);
  });

  it('take and release: credit returns in message order', () => {
    const { r, w } = receiver();
    r.receiveChunk(concat(data(new Uint8Array(50)), data(new Uint8Array(60))));
    r.take();
    r.take();
    expect(r.release(0, 2)).to.equal(true);
    expect(w.consumedCount).to.equal(0);
    expect(r.release(0, 2)).to.equal(false);
    expect(r.release(0, 1)).to.equal(true);
    expect(w.consumedCount).to.equal(2);
    expect(w.heldBytes).to.equal(0);
    expect(r.allConsumed).to.equal(true);
  });

  it('discard: messages dropped unread release their credit but count as neither consumed nor delivered', () => {
    const { r, w } = receiver();
    r.discarding = true;
    expect(r.receiveChunk(concat(data(new Uint8Array(50)), data(new Uint8Array(60))))).to.equal(true);
    expect(r.discardedCount).to.equal(2);
    expect(r.deliveredCount).to.equal(0);
    expect(w.consumedCount).to.equal(0);
    expect(w.heldBytes).to.equal(0);
  });

  it('a message over the local maximum is MESSAGE_TOO_LARGE', () => {
    const { r } = receiver();
    const big = concat(data(new Uint8Array(60_000), false), data(new Uint8Array(60_000), false));
    expect(thrownCode(() => r.receiveChunk(big))).to.equal('MESSAGE_TOO_LARGE');
  });

  it('DATA where the state accepts none is a PROTOCOL_ERROR', () => {
    const { r } = receiver();
    r.setDataAllowed(false);
    expect(thrownCode(() => r.receiveChunk(data(new Uint8Array(10))))).to.equal('PROTOCOL_ERROR');
  });
});
