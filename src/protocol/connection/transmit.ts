/**
 * What the connection transmits, in the order of SPEC.md §8 ("Priority"): the queued control
 * frames (preamble, handshake, GOAWAY, ERROR), a heartbeat, a credit, DATA within the peer's
 * credit, then the termination's frame; with the count of bytes handed to the transport.
 * @module
 */
import { writeCreditFrame } from '../codec/encode.js';
import { CREDIT_FRAME_SIZE, HEARTBEAT_FRAME_SIZE } from '../codec/wire.js';
import { FrameType } from '../constants.js';
import type { EngineEvent } from '../types.js';
import type { Handshake } from './handshake.js';
import type { Lifecycle } from './lifecycle.js';
import type { Liveness } from './liveness.js';
import type { Receiver } from './receive.js';
import type { ReceiveWindow } from './receive-window.js';
import type { Ring } from './ring.js';
import type { Sender } from './send.js';
import type { Settings } from './settings.js';
import { frameBit } from './state.js';
import type { StateMachine } from './state.js';
import type { Termination } from './termination.js';

const HEARTBEAT_BIT = frameBit(FrameType.HEARTBEAT);

export class Transmitter {
  /** Bytes handed to the transport. */
  bytesSent = 0;

  constructor(
    private readonly settings: Settings,
    private readonly machine: StateMachine,
    private readonly handshake: Handshake,
    private readonly liveness: Liveness,
    private readonly send: Sender,
    private readonly window: ReceiveWindow,
    private readonly receiver: Receiver,
    private readonly termination: Termination,
    private readonly life: Lifecycle,
    private readonly controlQueue: Ring<Uint8Array>,
    private readonly events: Ring<EngineEvent>,
  ) {}

  /** See `Engine.mayTransmitAfterRead`. */
  get mayTransmitAfterRead(): boolean {
    return this.window.creditDirty || this.window.consumedReportDue || this.machine.row.state !== 'open';
  }

  /** See `Engine.wantsToTransmit`. */
  get wantsToTransmit(): boolean {
    if (this.controlQueue.length > 0) return true;
    if (this.machine.state === 'closed') return false;
    const w = this.window;
    const t = this.termination;
    return (
      this.liveness.heartbeatDue ||
      w.creditDirty ||
      w.consumedReportDue ||
      t.closeFrameDue ||
      t.finalFrameDue ||
      this.send.hasDataToSend
    );
  }

  /** See `Engine.pollTransmit`. */
  pollTransmit(now: number, maxDataBytes: number): Uint8Array[] {
    const out: Uint8Array[] = [];
    const send = this.send;
    const w = this.window;
    const t = this.termination;
    for (let bytes = this.controlQueue.shift(); bytes !== undefined; bytes = this.controlQueue.shift())
      out.push(bytes);
    if (this.machine.state === 'closed' || this.handshake.negotiated === undefined) {
      this.account(now, out);
      return out;
    }
    send.begin(out, maxDataBytes, HEARTBEAT_FRAME_SIZE + CREDIT_FRAME_SIZE);
    const live = this.liveness;
    if (live.heartbeatDue && (this.machine.row.sends & HEARTBEAT_BIT) !== 0) {
      const target = send.room(HEARTBEAT_FRAME_SIZE);
      w.raiseLimit();
      live.writeHeartbeat(target, send.txPos, now, w.receivedCredit, w.grantedLimit, w.consumedCount);
      w.reported();
      send.txPos += HEARTBEAT_FRAME_SIZE;
    }
    live.heartbeatDue = false;
    if (w.creditDirty || w.consumedReportDue) {
      const target = send.room(CREDIT_FRAME_SIZE);
      // A consumption report alone repeats the limit granted (rule 3: it changes nothing).
      if (w.creditDirty) w.raiseLimit();
      writeCreditFrame(target, send.txPos, w.grantedLimit, w.consumedCount);
      w.reported();
      send.txPos += CREDIT_FRAME_SIZE;
    }
    send.writeData(maxDataBytes);
    send.end(now);
    t.check();
    if (t.closeFrameDue) {
      t.closeFrameDue = false;
      out.push(t.closeFrame());
      this.machine.move('close-sent');
    }
    if (t.finalFrameDue) {
      t.finalFrameDue = false;
      out.push(this.finalFrame(now));
    }
    this.account(now, out);
    return out;
  }

  /** The frame that ends this side's transmissions in the termination handshake. */
  private finalFrame(now: number): Uint8Array {
    const t = this.termination;
    if (this.settings.role === 'server') {
      const frame = t.closeAckFrame();
      this.machine.move('close-ack-sent');
      return frame;
    }
    if (this.receiver.discardedCount > 0) {
      const frame = t.discardedFrame();
      this.life.finishClean(now, 'local');
      return frame;
    }
    const credit = t.finalCreditFrame();
    this.machine.move('fin-sent');
    this.events.push({ type: 'end-transport' });
    return credit;
  }

  private account(now: number, out: Uint8Array[]): void {
    if (out.length === 0) return;
    for (const bytes of out) this.bytesSent += bytes.length;
    this.liveness.lastSentAt = now;
  }
}
