/**
 * SPEC.md §2: no value of 2^53 or more goes on the wire. A receiver whose credit limit would
 * reach 2^53 closes with ERROR `LIMIT_REACHED` instead of granting it.
 */
import { expect } from 'chai';
import { HeartwireError } from '../../src/protocol/errors.js';
import { Pair } from './pair.js';

/** Moves the server's credit counters (R, L, C) to just below 2^53, keeping them consistent. */
function nearTheLimit(pair: Pair, margin: number): void {
  // (the receive window and the send part of the engines: see src/protocol/connection/)
  const window = (pair.server.engine as unknown as { window: Record<string, number> }).window;
  const shift = Number.MAX_SAFE_INTEGER - margin - window.grantedLimit!;
  for (const field of ['receivedCredit', 'grantedLimit', 'releasedCredit', 'rateReleased'])
    window[field]! += shift;
  // The client's view: what it has sent and what it may send, shifted alike.
  const client = (pair.client.engine as unknown as { send: Record<string, number> }).send;
  client.sentCredit! += shift;
  client.peerLimit! += shift;
}

describe('SPEC.md §2: a credit limit that would reach 2^53', () => {
  it('closes with LIMIT_REACHED (ERROR to the peer) instead of granting it', () => {
    const pair = new Pair({}, { initialWindowBytes: 65_536, maxWindowBytes: 65_536 });
    nearTheLimit(pair, 30_000);
    const payload = new Uint8Array(1000);
    let delivered = 0;
    for (let i = 0; i < 100 && pair.server.engine.state === 'open'; i++) {
      pair.client.engine.trySend(pair.now, payload);
      pair.pump();
      while (pair.server.engine.read(pair.now) !== undefined) delivered++;
      pair.pump();
    }
    expect(delivered).to.be.greaterThan(10);
    const closed = pair.eventsOf(pair.server, 'closed');
    expect(closed).to.have.length(1);
    const info = (closed[0] as { info: { error?: HeartwireError } }).info;
    expect(info.error?.code).to.equal('LIMIT_REACHED');
    const peer = pair.eventsOf(pair.client, 'closed');
    expect((peer[0] as { info: { error?: HeartwireError } }).info.error?.code).to.equal('LIMIT_REACHED');
  });
});
