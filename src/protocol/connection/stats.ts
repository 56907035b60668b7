/**
 * The engine's counters and gauges (`Engine.stats()`), assembled from its parts.
 * @module
 */
import type { EngineStats } from '../types.js';
import type { Liveness } from './liveness.js';
import type { Receiver } from './receive.js';
import type { ReceiveWindow } from './receive-window.js';
import type { Sender } from './send.js';
import type { StateMachine } from './state.js';
import type { Transmitter } from './transmit.js';

export class Stats {
  /** Bytes received from the transport. */
  bytesReceived = 0;

  constructor(
    private readonly machine: StateMachine,
    private readonly liveness: Liveness,
    private readonly send: Sender,
    private readonly window: ReceiveWindow,
    private readonly receiver: Receiver,
    private readonly transmit: Transmitter,
  ) {}

  /** See `Engine.stats`; `started`: the engine's `start` was called. */
  collect(started: boolean, now: number | undefined): EngineStats {
    const send = this.send;
    const w = this.window;
    const live = this.liveness;
    const blockedNow = send.blockedSince === undefined || now === undefined ? 0 : now - send.blockedSince;
    return {
      state: this.machine.state,
      rttMs: live.rtt,
      smoothedRttMs: live.srtt,
      bytesReceived: this.bytesReceived,
      bytesSent: this.transmit.bytesSent,
      messagesReceived: this.receiver.receivedCount,
      messagesSent: send.writtenCount,
      heartbeatsReceived: live.heartbeatsReceived,
      heartbeatsSent: live.heartbeatsSent,
      sendCredit: Math.max(0, send.peerLimit - send.sentCredit),
      receiveCredit: Math.max(0, w.grantedLimit - w.receivedCredit),
      receiveWindow: w.window,
      heldBytes: w.heldBytes,
      queuedBytes: send.queuedBytes,
      sendQueueBytes: send.outboxBytes,
      creditBlockedMs: send.creditBlockedTotal + blockedNow,
      lastReceivedAt: started ? live.lastReceivedAt : undefined,
      lastSentAt: live.lastSentAt,
    };
  }
}
