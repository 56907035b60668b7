/**
 * Issue 10 B7: a GOAWAY sent right at open (load shedding in the connection handler) is not
 * lost: `conn.goAway` holds it, the `goaway` event reaches a listener attached after `connect()`
 * resolves, and `ReconnectingClient` honours its `retryAfter`.
 */
import { expect } from 'chai';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { GoAwayReason } from '../../src/protocol/frames.js';
import type { GoAwayInfo } from '../../src/protocol/types.js';
import { LOCALHOST, report, sleep, useHarness, within } from './helpers.js';

describe('node transport: GOAWAY right at open (load shedding)', function () {
  this.timeout(30_000);
  const harness = useHarness();
  const shed = { grace: 2000, reason: GoAwayReason.OVERLOADED, retryAfter: 5000, message: 'busy' };

  it('the client sees it: conn.goAway after connect(), and the goaway event for a listener attached then', async () => {
    const { port } = await harness().server({}, (connection) => void connection.end(shed).catch(() => {}));
    const client = await harness().connect({ port });
    const event = new Promise<GoAwayInfo>((resolve) => client.once('goaway', resolve));
    const seen = await within(event, 5000, 'the goaway event');
    expect(seen.reason).to.equal(GoAwayReason.OVERLOADED);
    expect(seen.retryAfterMs).to.equal(5000);
    expect(seen.message).to.equal('busy');
    expect(client.goAway, 'conn.goAway').to.deep.equal(seen);
    // Acting on it closes cleanly (on b6250a7 nobody saw it: GOAWAY_GRACE_EXPIRED after the grace).
    const info = await within(client.end(), 5000, 'a clean end');
    expect(info.clean).to.equal(true);
  });

  it('ReconnectingClient honours retryAfter: one connection in 3 s, not one per backoff', async () => {
    let accepted = 0;
    const { port } = await harness().server({}, (connection) => {
      accepted++;
      void connection.end(shed).catch(() => {});
    });
    const client = new ReconnectingClient({
      host: LOCALHOST,
      port,
      idleTimeout: 1000,
      minDelay: 10,
      maxDelay: 200,
    });
    harness().defer(() => client.close());
    const delays: number[] = [];
    client.on('reconnecting', ({ delay }) => delays.push(delay));
    client.on('disconnected', () => {});
    await sleep(3000);
    report(
      `GOAWAY at open (retryAfter 5000): ${accepted} connection(s) in 3 s, retry delays ${delays.join(', ')} ms`,
    );
    // On b6250a7: 9 connections in 3 s.
    expect(accepted, 'connections accepted by the server in 3 s').to.equal(1);
    expect(delays.length).to.be.at.most(1);
    for (const delay of delays) expect(delay).to.be.at.least(5000);
  });
});
