import { expect } from 'chai';
import { encodeControlFrame } from '../../../src/protocol/codec.js';
import { FrameType } from '../../../src/protocol/constants.js';
import { EndOfStream, StateMachine, frameBit, stateTable } from '../../../src/protocol/connection/state.js';
import { Timer, timerBit } from '../../../src/protocol/connection/timers.js';
import type { ControlFrame } from '../../../src/protocol/frames.js';
import type { ConnectionState } from '../../../src/protocol/types.js';
import { Pair } from '../pair.js';

describe('connection/state: SPEC.md §9.3 as data', () => {
  it('moves only as the table says, or to closed; the row follows the state', () => {
    const machine = new StateMachine('client');
    expect(machine.state).to.equal('handshaking');
    expect(() => machine.move('close-sent')).to.throw(/no move from handshaking to close-sent/);
    expect(machine.move('open')).to.equal(true);
    expect(machine.move('open')).to.equal(false);
    expect(machine.row).to.equal(stateTable('client').open);
    expect(() => machine.move('going-away')).to.throw();
    expect(machine.move('closed')).to.equal(true);
    expect(machine.row.timers).to.equal(0);
  });

  it('rows: a client after CLOSE_ACK has no idle deadline; a server in CLOSE_ACK_SENT sends nothing', () => {
    const client = stateTable('client');
    const server = stateTable('server');
    expect(client['close-acked']!.timers & timerBit(Timer.IDLE)).to.equal(0);
    expect(client['close-acked']!.timers & timerBit(Timer.HEARTBEAT)).to.not.equal(0);
    expect(server['close-ack-sent']!.sends).to.equal(0);
    expect(server['close-ack-sent']!.sendsError).to.equal(false);
    expect(server['close-ack-sent']!.endOfStream).to.equal(EndOfStream.CLEAN_IF_CONSUMED);
    expect(client['fin-sent']!.endOfStream).to.equal(EndOfStream.CLEAN);
    expect(server['peer-closed']!.accepts & frameBit(FrameType.DATA)).to.equal(0);
    expect(server['peer-closed']!.acceptsMessages).to.equal(true);
    expect(client.closing!.acceptsMessages).to.equal(false);
  });

  /** An open pair, the client moved to `state`, then `frame` from the server. */
  function deliver(state: ConnectionState, frame: ControlFrame): string | undefined {
    const pair = new Pair();
    pair.pump();
    if (state === 'closing') {
      pair.client.engine.trySend(pair.now, new Uint8Array(10));
      pair.client.engine.close(pair.now);
    }
    expect(pair.client.engine.state).to.equal(state);
    pair.client.engine.receive(pair.now, encodeControlFrame(frame));
    return pair.client.engine.closed?.error?.code;
  }

  it('the engine rejects a frame its row does not accept with PROTOCOL_ERROR', () => {
    const closeAck: ControlFrame = {
      type: FrameType.CLOSE_ACK,
      closeAck: { sentMessages: 0, consumedMessages: 0, deliveredMessages: 0 },
    };
    expect(deliver('open', closeAck)).to.equal('PROTOCOL_ERROR');
    expect(deliver('closing', closeAck)).to.equal('PROTOCOL_ERROR');
    expect(
      deliver('open', { type: FrameType.CLOSE, close: { sentMessages: 0, consumedMessages: 0 } }),
    ).to.equal('PROTOCOL_ERROR');
    expect(deliver('open', { type: FrameType.CREDIT, creditLimit: 1 << 20, consumedMessages: 0 })).to.equal(
      undefined,
    );
  });
});
