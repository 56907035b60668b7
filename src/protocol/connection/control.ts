/**
 * Received control frames: each checked against the state's row of the state table (SPEC.md
 * §9.3), then dispatched by type to the part that handles it. A frame the row does not accept is
 * a `PROTOCOL_ERROR`, thrown to the engine's `receive`.
 * @module
 */
import { EXTENSION_IGNORABLE_FIRST, EXTENSION_MUST_UNDERSTAND_FIRST, FrameType } from '../constants.js';
import { ProtocolError, RemoteError } from '../errors.js';
import type { ControlFrame, ErrorBody } from '../frames.js';
import type { Handshake } from './handshake.js';
import type { Lifecycle } from './lifecycle.js';
import type { Liveness } from './liveness.js';
import type { Sender } from './send.js';
import type { Settings } from './settings.js';
import { EXTENSION_BIT, frameBit } from './state.js';
import type { StateMachine } from './state.js';
import type { Termination } from './termination.js';

export class ControlFrames {
  constructor(
    private readonly settings: Settings,
    private readonly machine: StateMachine,
    private readonly handshake: Handshake,
    private readonly liveness: Liveness,
    private readonly send: Sender,
    private readonly termination: Termination,
    private readonly life: Lifecycle,
  ) {}

  /** A control frame from the decoder (through the receiver), in the current state. */
  onControl(now: number, frame: ControlFrame): void {
    const row = this.machine.row;
    if (row.state === 'closed') return;
    if (frame.type === 'extension') {
      // Ignorable extension types change nothing (and count as such); others were not negotiated.
      if ((row.accepts & EXTENSION_BIT) === 0 || frame.frameType < EXTENSION_IGNORABLE_FIRST)
        this.rejectFrame(frame.frameType);
      return this.liveness.countNoop(now);
    }
    if ((row.accepts & frameBit(frame.type)) === 0) this.rejectFrame(frame.type);
    switch (frame.type) {
      case FrameType.CREDIT:
        if (!this.send.onCredit(now, frame.creditLimit, frame.consumedMessages)) this.liveness.countNoop(now);
        return;
      case FrameType.HEARTBEAT:
        this.liveness.checkHeartbeatRate(now, frame.timestamp);
        if (frame.receivedBytes > this.send.sentCredit) {
          throw new ProtocolError(
            'PROTOCOL_ERROR',
            `peer claims ${frame.receivedBytes} bytes received of ${this.send.sentCredit} sent`,
          );
        }
        this.send.onCredit(now, frame.creditLimit, frame.consumedMessages);
        return this.liveness.onHeartbeat(now, frame);
      case FrameType.HELLO:
        return this.life.opened(now, this.handshake.onHello(frame.hello));
      case FrameType.WELCOME:
        return this.life.opened(now, this.handshake.onWelcome(frame.welcome));
      case FrameType.GOAWAY:
        return this.termination.onGoAway(now, frame.goAway);
      case FrameType.CLOSE:
        return this.termination.onClose(now, frame.close);
      case FrameType.CLOSE_ACK:
        return this.termination.onCloseAck(now, frame.closeAck);
      case FrameType.ERROR:
        return this.onError(now, frame.error);
    }
  }

  /** A frame the state table does not accept in the current state: `PROTOCOL_ERROR`. */
  private rejectFrame(type: number): never {
    const row = this.machine.row;
    if (row.accepts === 0) throw new ProtocolError('PROTOCOL_ERROR', 'frame after CLOSE_ACK');
    if (row.state === 'handshaking') {
      const expected = this.settings.role === 'client' ? 'WELCOME' : 'HELLO';
      throw new ProtocolError('PROTOCOL_ERROR', `expected ${expected} as first frame`);
    }
    if (type >= EXTENSION_MUST_UNDERSTAND_FIRST)
      throw new ProtocolError('PROTOCOL_ERROR', `frame type 0x${type.toString(16)} was not negotiated`);
    throw new ProtocolError('PROTOCOL_ERROR', `unexpected ${frameName(type)} in state ${row.state}`);
  }

  /** The peer's ERROR: take its counts if plausible (SPEC.md §9.4), and close. */
  private onError(now: number, body: ErrorBody): void {
    if (this.termination.plausibleCounts(body)) {
      if (body.consumedMessages > this.send.peerConsumed) this.send.onCredit(now, 0, body.consumedMessages);
      this.send.peerDelivered = body.deliveredMessages;
    }
    this.life.fail(now, new RemoteError(body.code, body.message), 'remote', false);
  }
}

function frameName(type: number): string {
  for (const [name, code] of Object.entries(FrameType)) if (code === type) return name;
  return `0x${type.toString(16)}`;
}
