/**
 * The connection's lifecycle: what each move of the state machine changes in the other parts
 * (what they cache from the state's row, the `state` event), opening every part once the handshake
 * agreed, and closing (a clean end, or a failure with its ERROR frame), with the close's one
 * `closed` event.
 * @module
 */
import type { FrameDecoder } from '../codec/decode.js';
import { FrameType } from '../constants.js';
import { WireErrorCode } from '../errors.js';
import type { HeartwireError } from '../errors.js';
import type { CloseInfo, ConnectionState, EngineEvent } from '../types.js';
import type { Agreement, Handshake } from './handshake.js';
import type { Liveness } from './liveness.js';
import type { Receiver } from './receive.js';
import type { ReceiveWindow } from './receive-window.js';
import type { Ring } from './ring.js';
import type { Sender } from './send.js';
import type { Settings } from './settings.js';
import { EndOfStream, frameBit } from './state.js';
import type { StateMachine } from './state.js';
import type { Termination } from './termination.js';
import { Timer, timerBit } from './timers.js';
import type { Timers } from './timers.js';

const DATA_BIT = frameBit(FrameType.DATA);
const CREDIT_BIT = frameBit(FrameType.CREDIT);
const HEARTBEAT_TIMER = timerBit(Timer.HEARTBEAT);

export class Lifecycle {
  /**
   * The largest message the application may send now: the peer's limit while `assertSendable`
   * would pass (state, close, finish), −1 otherwise. One field load per `trySend`.
   */
  sendLimit = -1;
  /** The state is `open` (cached from the row: `read()` asks after each message). */
  open = false;

  constructor(
    private readonly settings: Settings,
    private readonly machine: StateMachine,
    private readonly decoder: FrameDecoder,
    private readonly handshake: Handshake,
    private readonly liveness: Liveness,
    private readonly send: Sender,
    private readonly window: ReceiveWindow,
    private readonly receiver: Receiver,
    private readonly termination: Termination,
    private readonly timers: Timers,
    private readonly controlQueue: Ring<Uint8Array>,
    private readonly events: Ring<EngineEvent>,
  ) {}

  /** After each move of the state machine: what is cached from the row, and the `state` event. */
  moved(from: ConnectionState, to: ConnectionState): void {
    const row = this.machine.row;
    const dataAllowed = (row.accepts & DATA_BIT) !== 0;
    this.receiver.setDataAllowed(dataAllowed);
    this.open = row.state === 'open';
    this.decoder.dataAllowed = dataAllowed;
    this.window.grants = (row.sends & CREDIT_BIT) !== 0;
    this.updateSendOpen();
    if ((row.timers & HEARTBEAT_TIMER) === 0) this.timers.stop(Timer.HEARTBEAT);
    this.events.push({ type: 'state', from, to });
  }

  /** Recompute `sendLimit` (after a move, `close()` or `finish()`). */
  updateSendOpen(): void {
    const row = this.machine.row;
    const t = this.termination;
    const open =
      row.acceptsMessages &&
      !t.closeRequested &&
      !(this.settings.role === 'server' && t.finishRequested && row.state === 'peer-closed');
    this.sendLimit = open ? this.send.peerMaxMessageBytes : -1;
  }

  /** The handshake completed: open every part with what it agreed. */
  opened(now: number, agreement: Agreement): void {
    const n = agreement.negotiated;
    this.send.start(agreement.peerInitialCredit, n.peerMaxFramePayload, n.peerMaxMessageBytes);
    this.window.open(now, agreement.peerSendQueueLimit);
    this.timers.stop(Timer.HANDSHAKE);
    this.liveness.open(now, n.localIdleTimeoutMs, n.peerIdleTimeoutMs);
    this.machine.move('open');
    this.events.push({ type: 'open', negotiated: n });
    // The client's first RTT sample: HELLO to WELCOME.
    const helloSentAt = this.handshake.helloSentAt;
    if (this.settings.role === 'client' && helloSentAt !== undefined)
      this.liveness.recordRtt(now - helloSentAt);
    this.termination.opened(now);
  }

  /** End-of-stream (or a reset) now ends the connection cleanly (SPEC.md §9.3). */
  endOfStreamIsClean(): boolean {
    const eos = this.machine.row.endOfStream;
    return (
      eos === EndOfStream.CLEAN ||
      (eos === EndOfStream.CLEAN_IF_CONSUMED && this.send.peerConsumed === this.send.queuedCount)
    );
  }

  /** Close after the termination handshake (or what counts as its end). */
  finishClean(now: number, initiator: CloseInfo['initiator']): void {
    this.termination.cleanClose(initiator);
    this.enterClosed(now);
  }

  /** Close on `error`, sending ERROR first if `sendError` and the state and transport allow. */
  fail(now: number, error: HeartwireError, initiator: CloseInfo['initiator'], sendError: boolean): void {
    if (this.machine.state === 'closed') return;
    if (
      sendError &&
      this.machine.row.sendsError &&
      this.handshake.readyForFrame(this.decoder.preambleReceived)
    ) {
      this.controlQueue.push(
        this.termination.errorFrame(error.wireCode ?? WireErrorCode.CANCELLED, error.message),
      );
    }
    this.termination.failedClose(error, initiator);
    this.enterClosed(now);
  }

  private enterClosed(now: number): void {
    this.receiver.close();
    this.window.stopPinWatch();
    this.liveness.heartbeatDue = false;
    const w = this.window;
    w.creditDirty = false;
    w.consumedReportDue = false;
    this.termination.closeFrameDue = false;
    this.termination.finalFrameDue = false;
    this.send.close(now);
    this.machine.move('closed');
    w.returnReservation(true);
    this.events.push({ type: 'closed', info: this.termination.closeInfo! });
  }
}
