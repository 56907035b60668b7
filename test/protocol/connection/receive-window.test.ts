import { expect } from 'chai';
import { FrameDecoder } from '../../../src/protocol/codec.js';
import { Liveness } from '../../../src/protocol/connection/liveness.js';
import { ReceiveWindow } from '../../../src/protocol/connection/receive-window.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { Timer, Timers } from '../../../src/protocol/connection/timers.js';
import type { EngineOptions, MemoryBudget } from '../../../src/protocol/types.js';
import { settings } from './helpers.js';

function receiveWindow(options: Partial<EngineOptions> = {}): {
  w: ReceiveWindow;
  timers: Timers;
  limits: number[];
  liveness: Liveness;
} {
  const s = settings('client', { initialWindowBytes: 4096, maxWindowBytes: 1 << 20, ...options });
  const timers = new Timers();
  const decoder = new FrameDecoder({ expectPreamble: false, maxDataPayload: 65_536 });
  const limits: number[] = [];
  const liveness = new Liveness(s, timers, new Ring());
  const w = new ReceiveWindow(s, timers, liveness, decoder, () => limits.push(w.grantable()));
  w.grants = true;
  return { w, timers, limits, liveness };
}

/**
 * The application consumes `bytesPerMs` from `from` to `to` (ms), in 0.5 ms steps, as DATA arrives;
 * credit is granted (the limit raised) whenever the window asks. Returns the time reached and the
 * smallest window meanwhile.
 */
function consume(
  w: ReceiveWindow,
  from: number,
  to: number,
  bytesPerMs: number,
): { t: number; smallest: number } {
  let t = from;
  let smallest = w.window;
  for (; t < to; t += 0.5) {
    const bytes = Math.min(bytesPerMs / 2, w.grantedLimit - w.receivedCredit);
    w.receivedCredit += bytes;
    w.releasedCredit += bytes;
    w.maybeGrantCredit(t);
    if (w.creditDirty) {
      w.raiseLimit();
      w.creditDirty = false;
    }
    smallest = Math.min(smallest, w.window);
  }
  return { t, smallest };
}

describe('connection/receive-window', () => {
  it('grants in steps of W/4: L = max(L, C + W)', () => {
    const { w } = receiveWindow();
    expect(w.grantedLimit).to.equal(4096);
    w.receivedCredit = 2000;
    w.releasedCredit = 1000;
    w.maybeGrantCredit(0);
    expect(w.creditDirty).to.equal(false);
    w.releasedCredit = 1024;
    w.maybeGrantCredit(0);
    expect(w.creditDirty).to.equal(true);
    w.raiseLimit();
    expect(w.grantedLimit).to.equal(1024 + w.window);
    expect(w.heldBytes).to.equal(976);
  });

  it('a limit that would reach 2^53 is not granted: LIMIT_REACHED instead', () => {
    const { w, limits } = receiveWindow();
    w.releasedCredit = w.receivedCredit = Number.MAX_SAFE_INTEGER - 1000;
    w.maybeGrantCredit(0);
    expect(w.creditDirty).to.equal(false);
    expect(limits).to.have.length(1);
  });

  it('no grant in a state that sends no CREDIT', () => {
    const { w } = receiveWindow();
    w.grants = false;
    w.releasedCredit = 4096;
    w.maybeGrantCredit(0);
    expect(w.creditDirty).to.equal(false);
  });

  it('reports consumption once a quarter of the peer send queue bound was consumed', () => {
    const { w } = receiveWindow();
    w.open(0, 400);
    w.consumedCount = 1;
    w.releasedCredit = 99;
    expect(w.reportStepReached).to.equal(false);
    w.releasedCredit = 100;
    expect(w.reportStepReached).to.equal(true);
    w.reportConsumption(false);
    expect(w.consumedReportDue).to.equal(true);
    w.reported();
    expect(w.consumedReportDue).to.equal(false);
    expect(w.reportStepReached).to.equal(false);
  });

  it('a peer that stated no send queue bound: report when drained', () => {
    const { w } = receiveWindow();
    w.open(0, undefined);
    w.consumedCount = 1;
    w.reportConsumption(false);
    expect(w.consumedReportDue).to.equal(false);
    w.reportConsumption(true);
    expect(w.consumedReportDue).to.equal(true);
  });

  it('makes room for an incomplete message and its next frame, granting it when it is all that is held', () => {
    const { w } = receiveWindow();
    w.receivedCredit = 4000;
    w.partialCost = 4000;
    w.partialBytes = 3900;
    w.ensurePartialRoom(0);
    expect(w.window).to.be.at.least(4000 + 65_536);
    expect(w.creditDirty).to.equal(true);
  });

  it('grows only as far as the shared budget reserves, and gives reservations back', () => {
    let reserved = 0;
    const budget: MemoryBudget = {
      reserve: (bytes) => {
        const granted = Math.min(bytes, 3000 - reserved);
        reserved += granted;
        return granted;
      },
      release: (bytes) => {
        reserved -= bytes;
      },
    };
    const { w } = receiveWindow({ budget });
    w.receivedCredit = 4000;
    w.partialCost = 4000;
    w.partialBytes = 3900;
    w.ensurePartialRoom(0);
    expect(w.window).to.equal(4096 + 3000);
    w.partialCost = 0;
    w.receivedCredit = w.releasedCredit = 4000;
    w.shrink();
    expect(w.window).to.equal(4096);
    expect(reserved).to.be.at.most(3000);
    w.returnReservation(true);
    expect(reserved).to.equal(0);
  });

  it('window tuning: the window follows the consumption rate, and one slow interval does not halve it', () => {
    const { w, liveness } = receiveWindow();
    liveness.recordRtt(0.5);
    // 100 kB/ms over a 1 ms horizon (min RTT + 0.5 ms) wants 2 · 100 kB: the window grows to 256 KiB.
    let { t } = consume(w, 0, 100, 100_000);
    expect(w.window).to.equal(256 * 1024);
    // A 30 ms pause (a GC, other work in the process), then the same rate again: the interval that
    // spans the pause measures a low rate, and the window stays.
    const after = consume(w, t + 30, t + 60, 100_000);
    expect(after.smallest).to.equal(256 * 1024);
    t = after.t;
    // A rate that stays low for longer than the peak is kept: the window halves down to what it needs.
    consume(w, t, t + 1000, 10_000);
    expect(w.window).to.be.at.most(64 * 1024);
  });

  it('the window shrinks back after a while without DATA, unless a message is incomplete', () => {
    const { w, timers } = receiveWindow();
    w.window = 8192;
    w.lastDataAt = 100;
    w.syncShrinkTimer();
    expect(timers.get(Timer.WINDOW_SHRINK)).to.equal(2100);
    w.partialCost = 10;
    w.syncShrinkTimer();
    expect(timers.isArmed(Timer.WINDOW_SHRINK)).to.equal(false);
  });
});
