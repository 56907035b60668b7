/**
 * The shared memory budget (SPEC.md §7, "Shared memory"): capacity and per-connection share,
 * memory pressure, the max_message_size a capped share allows, and the cut of an incomplete
 * message that pins memory (virtual time).
 */
import { expect } from 'chai';
import { SharedMemoryBudget } from '../../src/protocol/budget.js';
import { Engine } from '../../src/protocol/engine.js';
import { Pair } from './pair.js';

const KiB = 1024;
const MiB = 1024 * KiB;

describe('SharedMemoryBudget', () => {
  it('grants within its capacity and one connection’s share; refusals for capacity are pressure', () => {
    const budget = new SharedMemoryBudget(10 * MiB, { maxShare: 4 * MiB });
    expect(budget.reserve(3 * MiB, 0, 0)).to.equal(3 * MiB);
    expect(budget.reserve(3 * MiB, 3 * MiB, 0)).to.equal(1 * MiB); // capped by the share
    expect(budget.underPressure(0)).to.equal(false); // the share, not the capacity, limited it
    expect(budget.reserve(4 * MiB, 0, 10)).to.equal(4 * MiB);
    expect(budget.reserve(4 * MiB, 0, 20)).to.equal(2 * MiB); // capacity
    expect(budget.underPressure(20)).to.equal(true);
    expect(budget.underPressure(1019)).to.equal(true);
    expect(budget.underPressure(1020)).to.equal(false);
    budget.release(10 * MiB);
    expect(budget.reserved).to.equal(0);
  });

  it('a connection announces a max_message_size that fits its initial window plus its share', () => {
    const budget = new SharedMemoryBudget(4 * MiB, { maxShare: 1 * MiB });
    const pair = new Pair({}, { budget, initialWindowBytes: 64 * KiB });
    const limit = pair.client.engine.negotiated!.peerMaxMessageBytes;
    expect(limit).to.be.below(64 * KiB + 1 * MiB);
    expect(limit).to.be.above(1 * MiB - 32 * KiB);
  });

  /**
   * A client that sends the first part of a 512 KiB message and then only control frames
   * (heartbeats: it stays alive, its message makes no progress although it has credit). Returns
   * when the server failed, and how.
   */
  function pinned(budget: SharedMemoryBudget, pressure: boolean): { at: number; code: string | undefined } {
    const pair = new Pair({ idleTimeoutMs: 3000 }, { idleTimeoutMs: 3000, budget });
    const client = pair.client.engine;
    const server = pair.server.engine;
    client.trySend(0, new Uint8Array(512 * KiB));
    for (const chunk of client.pollTransmit(0)) server.receive(0, chunk);
    expect(server.stats().heldBytes).to.be.above(0);
    let now = 0;
    while (server.state !== 'closed' && now < 120_000) {
      for (const chunk of server.pollTransmit(now)) client.receive(now, chunk);
      for (const chunk of client.pollTransmit(now, 0)) server.receive(now, chunk); // control frames only
      now = Math.min(server.nextDeadline() ?? Infinity, client.nextDeadline() ?? Infinity);
      // Another connection is refused room: memory is short.
      if (pressure) budget.release(budget.reserve(budget.capacity, 0, now));
      server.handleTimeout(now);
      client.handleTimeout(now);
    }
    return { at: now, code: server.closed?.error?.code };
  }

  it('cuts an incomplete message pinned for pinTimeout while memory is short (ENHANCE_YOUR_CALM)', () => {
    const budget = new SharedMemoryBudget(8 * MiB, { maxShare: 8 * MiB, pinTimeout: 1000 });
    const { at, code } = pinned(budget, true);
    expect(code).to.equal('ENHANCE_YOUR_CALM');
    expect(at).to.be.within(1000, 1000 + 2 * 100);
  });

  it('otherwise only after the idle timeout', () => {
    const budget = new SharedMemoryBudget(8 * MiB, { maxShare: 8 * MiB, pinTimeout: 1000 });
    const { at, code } = pinned(budget, false);
    expect(code).to.equal('ENHANCE_YOUR_CALM');
    expect(at).to.be.within(3000, 3000 + 2 * 100);
  });

  it('a connection refused room retries, and proceeds once memory is freed', () => {
    const budget = new SharedMemoryBudget(256 * KiB, { maxShare: 256 * KiB });
    const hog = budget.reserve(256 * KiB, 0, 0); // another connection holds it all
    const pair = new Pair({ idleTimeoutMs: 60_000 }, { idleTimeoutMs: 60_000, budget });
    const message = new Uint8Array(200 * KiB);
    pair.client.engine.trySend(0, message);
    pair.advanceTo(500);
    expect(pair.server.engine.readableMessages).to.equal(0); // stuck: the window cannot grow
    expect(pair.server.engine.state).to.equal('open'); // and not cut: the sender had no credit
    budget.release(hog);
    pair.advanceTo(700);
    expect(pair.server.engine.read(pair.now)).to.have.length(200 * KiB);
  });

  it('the engine without a budget keeps its old limits', () => {
    const engine = new Engine({ role: 'server' });
    expect(engine.receiveWindow).to.equal(64 * KiB);
  });
});
