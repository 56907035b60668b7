/**
 * Termination (SPEC.md §9): the client's close and the server's GOAWAY and finish, when CLOSE and
 * the final frame (CLOSE_ACK, the final CREDIT, or ERROR `CANCELLED`) are due, the checks of
 * received CLOSE, CLOSE_ACK and ERROR, the frames of the termination, and how the connection
 * closed (`CloseInfo`, with the delivery accounting of §9.4).
 * @module
 */
import { usableAlternatives } from '../alternatives.js';
import { writeCreditFrame } from '../codec/encode.js';
import { encodeControlFrame } from '../codec/encode.js';
import { CREDIT_FRAME_SIZE } from '../codec/wire.js';
import { FrameType } from '../constants.js';
import { ProtocolError, UsageError, WireErrorCode } from '../errors.js';
import type { HeartwireError } from '../errors.js';
import type { Close, CloseAck, ErrorBody, GoAway } from '../frames.js';
import type { CloseInfo, EngineEvent, GoAwayInfo } from '../types.js';
import type { Receiver } from './receive.js';
import type { ReceiveWindow } from './receive-window.js';
import type { Ring } from './ring.js';
import type { Sender } from './send.js';
import type { Settings } from './settings.js';
import type { StateMachine } from './state.js';
import { Timer } from './timers.js';
import type { Timers } from './timers.js';

/** Options of `Engine.goAway`. */
export interface GoAwayOptions {
  graceMs: number;
  reason?: number;
  retryAfterMs?: number;
  doNotReconnect?: boolean;
  message?: string;
  /** Where clients should go (SPEC.md §9.5); default: the `alternatives` option. */
  alternatives?: readonly string[];
}

export class Termination {
  /** Client: `close()` was called. */
  closeRequested = false;
  /** Server: `finish()` was called. */
  finishRequested = false;
  /** Server: `goAway()` ran once after the handshake (GOAWAY queued, or not needed). */
  goAwaySent = false;
  /** Server: `goAway()` called during the handshake, applied when it completes. */
  pendingGoAway: GoAwayOptions | undefined;
  /** Who started the termination handshake, for `CloseInfo.initiator` of a clean close. */
  initiator: CloseInfo['initiator'] | undefined;
  /** Client: the server's GOAWAY, once received. */
  goAwayReceived: GoAwayInfo | undefined;
  closeInfo: CloseInfo | undefined;
  /** Client: CLOSE is due (everything queued was handed over). */
  closeFrameDue = false;
  /** The frame that ends our transmissions is due: CLOSE_ACK (server) or the final CREDIT (client). */
  finalFrameDue = false;

  constructor(
    private readonly settings: Settings,
    private readonly machine: StateMachine,
    private readonly sender: Sender,
    private readonly receiver: Receiver,
    private readonly window: ReceiveWindow,
    private readonly timers: Timers,
    private readonly controlQueue: Ring<Uint8Array>,
    private readonly events: Ring<EngineEvent>,
  ) {}

  /** Client: `close()` (see `Engine.close`). */
  close(now: number): void {
    if (this.closeRequested || this.machine.state === 'closed') return;
    this.closeRequested = true;
    this.initiator ??= this.goAwayReceived === undefined ? 'local' : 'remote';
    this.timers.set(Timer.CLOSE, now + this.settings.closeTimeoutMs);
    if (this.machine.state === 'open') {
      this.machine.move('closing');
      this.check();
    }
  }

  /** Server: `goAway()` (see `Engine.goAway`). */
  goAway(now: number, options: GoAwayOptions): void {
    const state = this.machine.state;
    if (state === 'closed') return;
    const graceMs = Math.max(0, Math.min(Math.floor(options.graceMs), 0xffff_ffff));
    if (state === 'handshaking') {
      // Sent right after WELCOME; the grace counts from then.
      this.pendingGoAway = { ...options, graceMs };
      return;
    }
    // The deadline also bounds a termination handshake under way (the client already closed;
    // no GOAWAY is sent then).
    const deadline = now + graceMs;
    if (deadline < this.timers.get(Timer.GRACE)) this.timers.set(Timer.GRACE, deadline);
    if (this.goAwaySent) return;
    this.goAwaySent = true;
    if (state !== 'open') return;
    this.initiator ??= 'local';
    this.controlQueue.push(this.goAwayFrame(options, graceMs));
    this.machine.move('going-away');
  }

  /** Server: `finish()`. */
  finish(): void {
    this.finishRequested = true;
    this.check();
  }

  /** The handshake completed: a `close()` or `goAway()` called during it takes effect now. */
  opened(now: number): void {
    if (this.closeRequested) {
      this.machine.move('closing');
      this.check();
    }
    if (this.pendingGoAway !== undefined) this.goAway(now, this.pendingGoAway);
  }

  /** Server: the client's CLOSE. */
  onClose(now: number, close: Close): void {
    this.checkClose(close.sentMessages);
    this.sender.onCredit(now, 0, close.consumedMessages);
    this.initiator ??= 'remote';
    this.timers.set(Timer.CLOSE, now + this.settings.closeTimeoutMs);
    this.machine.move('peer-closed');
    this.events.push({ type: 'peer-closed' });
    this.check();
  }

  /** Client: the server's CLOSE_ACK. */
  onCloseAck(now: number, ack: CloseAck): void {
    this.checkCloseAck(ack.sentMessages, ack.consumedMessages, ack.deliveredMessages);
    this.sender.onCredit(now, 0, ack.consumedMessages);
    this.sender.peerDelivered = ack.deliveredMessages;
    this.machine.move('close-acked');
    this.check();
  }

  /**
   * Throw the {@link UsageError} that sending a message of `length` bytes would throw now (see
   * `Engine.assertSendable`): after `close()`, before the handshake, in a state that accepts no
   * more messages, after `finish()` once the client closed, or over the peer's message limit.
   */
  assertSendable(length: number): void {
    const state = this.machine.state;
    if (this.closeRequested) throw new UsageError('CONNECTION_CLOSED', 'cannot send after end()');
    if (state === 'handshaking') {
      throw new UsageError('NOT_OPEN', 'the handshake has not completed: wait for the open event');
    }
    if (!this.machine.row.acceptsMessages) {
      // The close error says why (a peer's ERROR, a heartbeat timeout, …): keep it as the cause.
      const error = this.closeInfo?.error;
      throw new UsageError(
        'CONNECTION_CLOSED',
        error === undefined
          ? `cannot send in state ${state}`
          : `cannot send: the connection closed (${error.code})`,
        { cause: error },
      );
    }
    if (this.settings.role === 'server' && this.finishRequested && state === 'peer-closed') {
      throw new UsageError(
        'CONNECTION_CLOSED',
        'cannot send: the client closed and this connection finished (its consumer reached the end of the stream)',
      );
    }
    const limit = this.sender.peerMaxMessageBytes;
    if (length > limit) {
      throw new UsageError(
        'MESSAGE_TOO_LARGE',
        `message of ${length} bytes exceeds the peer's maxMessageSize of ${limit} bytes`,
      );
    }
  }

  /** Advance the termination handshake when its conditions hold (SPEC.md §9.1). */
  check(): void {
    const state = this.machine.state;
    if (state === 'closing') {
      if (this.sender.allSent && !this.closeFrameDue) this.closeFrameDue = true;
    } else if (state === 'close-acked') {
      if (this.receiver.allConsumed && !this.finalFrameDue) this.finalFrameDue = true;
    } else if (state === 'peer-closed') {
      if (this.finishRequested && this.sender.allSent && this.receiver.allConsumed && !this.finalFrameDue)
        this.finalFrameDue = true;
    }
  }

  goAwayFrame(options: GoAwayOptions, graceMs: number): Uint8Array {
    return encodeControlFrame({
      type: FrameType.GOAWAY,
      goAway: {
        graceMs,
        reason: options.reason ?? 1,
        consumedMessages: this.window.consumedCount,
        retryAfterMs: options.retryAfterMs ?? 0,
        doNotReconnect: options.doNotReconnect ?? false,
        message: options.message ?? '',
        alternatives: [...(options.alternatives ?? this.settings.alternatives)],
      },
    });
  }

  closeFrame(): Uint8Array {
    return encodeControlFrame({
      type: FrameType.CLOSE,
      close: { sentMessages: this.sender.queuedCount, consumedMessages: this.window.consumedCount },
    });
  }

  closeAckFrame(): Uint8Array {
    return encodeControlFrame({
      type: FrameType.CLOSE_ACK,
      closeAck: {
        sentMessages: this.sender.queuedCount,
        consumedMessages: this.window.consumedCount,
        deliveredMessages: this.receiver.deliveredCount,
      },
    });
  }

  /** Client: the final CREDIT, reporting every message consumed. */
  finalCreditFrame(): Uint8Array {
    const credit = new Uint8Array(CREDIT_FRAME_SIZE);
    writeCreditFrame(credit, 0, this.window.grantedLimit, this.window.consumedCount);
    return credit;
  }

  /**
   * Client: messages were dropped unread. Instead of the final CREDIT (whose count would read as
   * a client that died before finishing), ERROR CANCELLED tells the server exactly which of its
   * messages were delivered; ours are all accounted by CLOSE_ACK (SPEC.md §9.1).
   */
  discardedFrame(): Uint8Array {
    return this.errorFrame(
      WireErrorCode.CANCELLED,
      `the client discarded ${this.receiver.discardedCount} unread messages`,
    );
  }

  errorFrame(code: number, message: string): Uint8Array {
    return encodeControlFrame({
      type: FrameType.ERROR,
      error: {
        code,
        message,
        consumedMessages: this.window.consumedCount,
        deliveredMessages: this.receiver.deliveredCount,
      },
    });
  }

  /** Server: CLOSE must follow every message the client sent, complete (SPEC.md §9.1). */
  checkClose(sentMessages: number): void {
    const received = this.receiver.receivedCount;
    if (sentMessages !== received || this.window.partialCost > 0) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `CLOSE after ${sentMessages} messages, but ${received} arrived complete`,
      );
    }
  }

  /** Client: CLOSE_ACK must follow every message the server sent, and count no more than we sent. */
  checkCloseAck(sentMessages: number, consumed: number, delivered: number): void {
    const received = this.receiver.receivedCount;
    if (sentMessages !== received || this.window.partialCost > 0) {
      throw new ProtocolError(
        'PROTOCOL_ERROR',
        `CLOSE_ACK after ${sentMessages} messages, but ${received} arrived`,
      );
    }
    if (delivered > this.sender.writtenCount || consumed > delivered) {
      throw new ProtocolError('PROTOCOL_ERROR', 'CLOSE_ACK reports more messages than were sent');
    }
  }

  /** Client: the server's GOAWAY (once). */
  onGoAway(now: number, goAway: GoAway): void {
    if (this.goAwayReceived !== undefined) throw new ProtocolError('PROTOCOL_ERROR', 'unexpected GOAWAY');
    this.sender.onCredit(now, 0, goAway.consumedMessages);
    this.goAwayReceived = {
      graceMs: goAway.graceMs,
      reason: goAway.reason,
      retryAfterMs: goAway.retryAfterMs,
      doNotReconnect: goAway.doNotReconnect,
      message: goAway.message,
      alternatives: usableAlternatives(goAway.alternatives ?? []),
      deadline: now + goAway.graceMs,
    };
    this.events.push({ type: 'goaway', goAway: this.goAwayReceived });
  }

  /** A peer's ERROR: whether its counts are plausible, and so may be trusted for the report. */
  plausibleCounts(body: ErrorBody): boolean {
    return (
      body.deliveredMessages <= this.sender.writtenCount && body.consumedMessages <= body.deliveredMessages
    );
  }

  /** What `CLOSE_TIMEOUT` waited for, with the counts this side knows (SPEC.md §9.1). */
  closeTimeoutMessage(): string {
    const { sender, receiver } = this;
    const within = `within ${this.settings.closeTimeoutMs} ms`;
    const unsent = sender.queuedCount - sender.writtenCount;
    const sent = `${sender.peerConsumed} of the ${sender.writtenCount} messages sent`;
    const consumed = this.window.consumedCount;
    const state = this.machine.state;
    switch (state) {
      case 'closing':
        return `CLOSE was not sent ${within}: ${unsent} of the ${sender.queuedCount} messages before it were still unsent (credit left: ${sender.creditAvailable()} bytes)`;
      case 'close-sent':
        return `the server did not acknowledge CLOSE ${within}; it had reported ${sent} consumed (a server acknowledges once its application has consumed them all and sent its last messages)`;
      case 'close-acked':
        return `the application did not consume the server's messages ${within} of CLOSE_ACK: ${consumed} of ${receiver.receivedCount} consumed`;
      case 'peer-closed':
        return `the server did not finish ${within} of the client's CLOSE: its application consumed ${consumed} of the ${receiver.receivedCount} client messages${this.finishRequested ? '' : ' and did not end its side'}; ${unsent} of its ${sender.queuedCount} messages unsent`;
      case 'close-ack-sent':
        return `the client did not send its final CREDIT and end of stream ${within} of CLOSE_ACK; it had reported ${sent} consumed`;
      default:
        return `the termination handshake did not complete ${within} (state ${state})`;
    }
  }

  /** How a clean close ended. */
  cleanClose(initiator: CloseInfo['initiator']): CloseInfo {
    this.closeInfo = {
      clean: true,
      initiator: this.initiator ?? initiator,
      delivery: this.sender.deliveryReport(),
      unread: this.receiver.discardedCount + this.receiver.inbox.length,
    };
    return this.closeInfo;
  }

  /** How a failure ended the connection. */
  failedClose(error: HeartwireError, initiator: CloseInfo['initiator']): CloseInfo {
    this.closeInfo = {
      clean: false,
      initiator,
      error,
      delivery: this.sender.deliveryReport(),
      unread: this.receiver.discardedCount + this.receiver.inbox.length,
    };
    return this.closeInfo;
  }
}
