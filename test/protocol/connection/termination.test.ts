import { expect } from 'chai';
import { decodeAll, FrameDecoder } from '../../../src/protocol/codec.js';
import { FrameType } from '../../../src/protocol/constants.js';
import type { Engine } from '../../../src/protocol/engine.js';
import { Liveness } from '../../../src/protocol/connection/liveness.js';
import { Receiver } from '../../../src/protocol/connection/receive.js';
import { ReceiveWindow } from '../../../src/protocol/connection/receive-window.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { Sender } from '../../../src/protocol/connection/send.js';
import { StateMachine } from '../../../src/protocol/connection/state.js';
import { Termination } from '../../../src/protocol/connection/termination.js';
import { Timers } from '../../../src/protocol/connection/timers.js';
import type { EngineEvent, Role } from '../../../src/protocol/types.js';
import { settings, thrownCode } from './helpers.js';

function parts(role: Role): { t: Termination; machine: StateMachine; send: Sender; r: Receiver } {
  const s = settings(role);
  const timers = new Timers();
  const events = new Ring<EngineEvent>();
  const machine = new StateMachine(role);
  machine.move('open');
  const decoder = new FrameDecoder({ expectPreamble: false, maxDataPayload: 1024 });
  const w = new ReceiveWindow(s, timers, new Liveness(s, timers, events), decoder, () => {});
  const r = new Receiver(s, machine, w, decoder, events, {} as Engine);
  const send = new Sender(s, timers, events);
  send.start(1 << 20, 1024, 1 << 20);
  const t = new Termination(s, machine, send, r, w, timers, new Ring<Uint8Array>(), events);
  return { t, machine, send, r };
}

describe('connection/termination', () => {
  it('client: CLOSE is due once everything queued was handed over', () => {
    const { t, machine, send } = parts('client');
    send.queue(0, new Uint8Array(10));
    machine.move('closing');
    t.check();
    expect(t.closeFrameDue).to.equal(false);
    send.begin([], Number.POSITIVE_INFINITY, 0);
    send.writeData(Number.POSITIVE_INFINITY);
    send.end(0);
    t.check();
    expect(t.closeFrameDue).to.equal(true);
    const [close] = decodeAll(t.closeFrame(), { expectPreamble: false, maxDataPayload: 1 });
    expect(close).to.deep.equal({ type: FrameType.CLOSE, close: { sentMessages: 1, consumedMessages: 0 } });
  });

  it('server: CLOSE_ACK is due after CLOSE, finish(), all sent and all consumed', () => {
    const { t, machine } = parts('server');
    machine.move('peer-closed');
    t.check();
    expect(t.finalFrameDue).to.equal(false);
    t.finishRequested = true;
    t.check();
    expect(t.finalFrameDue).to.equal(true);
  });

  it('checks CLOSE and CLOSE_ACK against the messages that arrived', () => {
    const { t } = parts('client');
    expect(thrownCode(() => t.checkClose(1))).to.equal('PROTOCOL_ERROR');
    expect(() => t.checkClose(0)).to.not.throw();
    expect(thrownCode(() => t.checkCloseAck(0, 0, 1))).to.equal('PROTOCOL_ERROR');
    expect(thrownCode(() => t.checkCloseAck(0, 2, 1))).to.equal('PROTOCOL_ERROR');
  });

  it('a second GOAWAY is a PROTOCOL_ERROR; the first sets the deadline from now', () => {
    const { t } = parts('client');
    const goAway = {
      graceMs: 500,
      reason: 1,
      consumedMessages: 0,
      retryAfterMs: 0,
      doNotReconnect: false,
      message: '',
    };
    t.onGoAway(100, goAway);
    expect(t.goAwayReceived!.deadline).to.equal(600);
    expect(thrownCode(() => t.onGoAway(100, goAway))).to.equal('PROTOCOL_ERROR');
  });

  it('close() moves an open client to closing; goAway() an open server to going-away, once', () => {
    const { t, machine } = parts('client');
    t.close(10);
    expect(machine.state).to.equal('closing');
    expect(t.initiator).to.equal('local');
    const server = parts('server');
    server.t.goAway(0, { graceMs: 100 });
    expect(server.machine.state).to.equal('going-away');
    expect(server.t.goAwaySent).to.equal(true);
    server.t.goAway(0, { graceMs: 50 });
    expect(server.machine.state).to.equal('going-away');
  });

  it('CloseInfo: clean or failed, with the delivery report and the unread count', () => {
    const { t, send, r } = parts('client');
    send.queue(0, new Uint8Array(1));
    r.discardedCount = 2;
    const clean = t.cleanClose('local');
    expect(clean.clean).to.equal(true);
    expect(clean.unread).to.equal(2);
    expect(clean.delivery.notProcessed).to.have.length(1);
    t.initiator = 'remote';
    expect(t.cleanClose('local').initiator).to.equal('remote');
  });
});
