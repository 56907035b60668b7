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
} {
  const s = settings('client', { initialWindowBytes: 4096, maxWindowBytes: 1 << 20, ...options });
  const timers = new Timers();
  const decoder = new FrameDecoder({ expectPreamble: false, maxDataPayload: 65_536 });
  const limits: number[] = [];
  const w = new ReceiveWindow(s, timers, new Liveness(s, timers, new Ring()), decoder, () =>
    limits.push(w.grantable()),
  );
  w.grants = true;
  return { w, timers, limits };
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
