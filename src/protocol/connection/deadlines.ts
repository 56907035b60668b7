/**
 * What each deadline of the timer table (`timers.ts`) does when it expires: the timeouts that
 * close the connection, and the periodic work (heartbeat, credit-stall report, pin check, window
 * shrink).
 * @module
 */
import { ProtocolError, TimeoutError } from '../errors.js';
import type { CloseInfo } from '../types.js';
import type { Lifecycle } from './lifecycle.js';
import type { Liveness } from './liveness.js';
import type { ReceiveWindow } from './receive-window.js';
import type { Sender } from './send.js';
import type { StateMachine } from './state.js';
import type { Termination } from './termination.js';
import { TIMER_COUNT, Timer } from './timers.js';
import type { Timers } from './timers.js';

export class Deadlines {
  constructor(
    private readonly machine: StateMachine,
    private readonly timers: Timers,
    private readonly liveness: Liveness,
    private readonly send: Sender,
    private readonly window: ReceiveWindow,
    private readonly termination: Termination,
    private readonly life: Lifecycle,
  ) {}

  /** The earliest deadline of those in `mask` (the state's row), or `undefined`. */
  next(mask: number): number | undefined {
    this.sync();
    const next = this.timers.next(mask);
    return next === Number.POSITIVE_INFINITY ? undefined : next;
  }

  /** Handle every deadline in `mask` due at `now`, in the order of the ids of `Timer`. */
  handle(now: number, mask: number): void {
    this.sync();
    const timers = this.timers;
    for (let id = 0; id < TIMER_COUNT; id++) {
      if (!timers.due(id, now, mask)) continue;
      switch (id) {
        case Timer.HANDSHAKE:
          return this.timeout(now, 'HANDSHAKE_TIMEOUT', 'the handshake did not complete in time', 'local');
        case Timer.IDLE:
          if (!this.liveness.onIdleTimer(now)) break;
          return this.timeout(
            now,
            'HEARTBEAT_TIMEOUT',
            `no frame from the peer for ${Math.round(now - this.liveness.lastReceivedAt)} ms`,
            'transport',
          );
        case Timer.GRACE:
          return this.timeout(
            now,
            'GOAWAY_GRACE_EXPIRED',
            this.machine.state === 'going-away'
              ? 'the client did not close within the GOAWAY grace period'
              : 'the termination did not complete within the GOAWAY grace period',
            'local',
          );
        case Timer.CLOSE:
          return this.timeout(now, 'CLOSE_TIMEOUT', this.termination.closeTimeoutMessage(), 'local');
        case Timer.WRITE_STALL:
          return this.timeout(
            now,
            'WRITE_STALL',
            `the transport accepted no bytes for ${Math.round(now - this.liveness.backlogSince)} ms`,
            'transport',
          );
        case Timer.CREDIT_STALL:
          return this.timeout(
            now,
            'CREDIT_STALL',
            `blocked on the peer's credit for ${Math.round(now - this.send.blockedSince!)} ms`,
            'local',
          );
        case Timer.CREDIT_STALL_REPORT:
          this.send.reportStall(now);
          break;
        case Timer.HEARTBEAT:
          this.liveness.onHeartbeatTimer(now);
          break;
        case Timer.PIN_CHECK: {
          const pinned = this.window.checkPin(now);
          if (pinned !== undefined)
            return this.life.fail(now, new ProtocolError('ENHANCE_YOUR_CALM', pinned), 'local', true);
          break;
        }
        case Timer.WINDOW_SHRINK:
          this.window.shrink();
          break;
      }
    }
  }

  private timeout(
    now: number,
    code: ConstructorParameters<typeof TimeoutError>[0],
    message: string,
    initiator: CloseInfo['initiator'],
  ): void {
    this.life.fail(now, new TimeoutError(code, message), initiator, true);
  }

  /**
   * Bring up to date the deadlines whose inputs change on the data path (each received chunk
   * moves the idle deadline, each DATA frame the window shrink): computed when a deadline is
   * asked for rather than per chunk. The others are armed where their inputs change.
   */
  private sync(): void {
    this.liveness.syncIdleTimer();
    this.window.syncShrinkTimer();
  }
}
