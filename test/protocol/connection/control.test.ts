import { expect } from 'chai';
import { FrameType } from '../../../src/protocol/constants.js';
import { RemoteError } from '../../../src/protocol/errors.js';
import type { ControlFrame } from '../../../src/protocol/frames.js';
import { openWired, thrownCode, wired } from './helpers.js';

function credit(creditLimit: number, consumedMessages = 0): ControlFrame {
  return { type: FrameType.CREDIT, creditLimit, consumedMessages };
}

describe('connection/control', () => {
  it('rejects a frame the state row does not accept, naming what was expected', () => {
    const p = wired('client');
    expect(thrownCode(() => p.control.onControl(0, credit(1)))).to.equal('PROTOCOL_ERROR');
    try {
      p.control.onControl(0, credit(1));
    } catch (error) {
      expect((error as Error).message).to.equal('expected WELCOME as first frame');
    }
    openWired(p);
    const hello = { type: FrameType.HELLO, hello: {} } as ControlFrame;
    expect(() => p.control.onControl(0, hello)).to.throw(/unexpected HELLO in state open/);
  });

  it('rejects a must-understand extension that was not negotiated; counts an ignorable one', () => {
    const p = wired('client');
    openWired(p);
    const ext = (frameType: number): ControlFrame => ({
      type: 'extension',
      frameType,
      flags: 0,
      payload: new Uint8Array(0),
    });
    expect(() => p.control.onControl(0, ext(0x40))).to.throw(/0x40 was not negotiated/);
    expect(() => p.control.onControl(0, ext(0xc0))).to.not.throw();
  });

  it('CREDIT raises the peer limit; HEARTBEAT claiming more bytes than sent is a PROTOCOL_ERROR', () => {
    const p = wired('client');
    openWired(p);
    p.control.onControl(1, credit(2 << 20));
    expect(p.send.peerLimit).to.equal(2 << 20);
    const heartbeat: ControlFrame = {
      type: FrameType.HEARTBEAT,
      echo: false,
      timestamp: 0,
      echoTimestamp: 0,
      echoDelay: 0,
      receivedBytes: 1,
      creditLimit: 2 << 20,
      consumedMessages: 0,
    };
    expect(() => p.control.onControl(2, heartbeat)).to.throw(/peer claims 1 bytes received of 0 sent/);
  });

  it("the peer's ERROR closes the connection with a RemoteError, ignored once closed", () => {
    const p = wired('client');
    openWired(p);
    const error: ControlFrame = {
      type: FrameType.ERROR,
      error: { code: 1, message: 'bye', consumedMessages: 0, deliveredMessages: 0 },
    } as ControlFrame;
    p.control.onControl(5, error);
    expect(p.machine.state).to.equal('closed');
    expect(p.t.closeInfo?.initiator).to.equal('remote');
    expect(p.t.closeInfo?.error).to.be.instanceOf(RemoteError);
    expect(() => p.control.onControl(6, credit(1))).to.not.throw();
  });
});
