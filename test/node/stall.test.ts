import { createHash } from 'node:crypto';
import { expect } from 'chai';
import {
  KiB,
  MiB,
  now,
  observe,
  Pump,
  report,
  rss,
  seqMessage,
  seqOf,
  sleep,
  useHarness,
  within,
} from './helpers.js';

const IDLE = 500;
const STALL = 10 * IDLE;
const WINDOW = 1 * MiB;
const MESSAGE = 32 * KiB;
const RSS_SLACK = 64 * MiB;

describe('node transport: receiving application stalled for 10 × idleTimeout', function () {
  this.timeout(40_000);
  const h = useHarness();

  it('does not fail, holds at most the receive window, bounds memory, then delivers every byte intact', async () => {
    const rssBefore = rss();
    const { port, next } = await h().server({ idleTimeout: IDLE, receiveWindow: WINDOW });
    const client = await h().connect({ port, idleTimeout: IDLE });
    const server = await next();
    const clientClosed = observe(client.closed);
    const serverClosed = observe(server.closed);
    let creditStalls = 0;
    client.on('credit-stall', () => creditStalls++);

    let maxHeld = 0;
    let maxRss = rssBefore;
    let violations = 0;
    const poll = setInterval(() => {
      const s = server.stats();
      maxHeld = Math.max(maxHeld, s.heldBytes);
      if (s.heldBytes > WINDOW || s.heldBytes > s.receiveWindow) violations++;
      maxRss = Math.max(maxRss, rss());
    }, 5);
    h().defer(() => clearInterval(poll));

    // The client pushes as fast as send() lets it; the server application reads nothing.
    const pump = new Pump(client, { size: MESSAGE, inFlight: 32 });
    const t0 = now();
    await sleep(STALL);
    const stalledMs = now() - t0;
    expect(client.state, 'client after the stall').to.equal('open');
    expect(server.state, 'server after the stall').to.equal('open');
    const sentDuringStall = pump.resolved;
    const heldAtEnd = server.stats().heldBytes;
    const stallGrowth = maxRss - rssBefore;

    // Now the application reads: everything arrives, in order, intact.
    const received = createHash('sha256');
    let count = 0;
    let outOfOrder = 0;
    const reading = observe(
      (async () => {
        for await (const message of server) {
          count++;
          if (seqOf(message) !== count) outOfOrder++;
          received.update(message);
        }
      })(),
    );
    // The sender goes on for another 8 MiB, through the now growing window, then stops.
    await within(
      (async () => {
        while (pump.attempted < sentDuringStall + 256) await sleep(10);
      })(),
      15_000,
      'the sender to go on',
    );
    pump.stop();
    await within(pump.done, 15_000, 'every send() to resolve');
    expect(pump.rejected).to.equal(0);
    const total = pump.attempted;
    await within(
      (async () => {
        while (count < total) await sleep(10);
      })(),
      15_000,
      'every message to be read',
    );
    clearInterval(poll);

    const expected = createHash('sha256');
    for (let seq = 1; seq <= total; seq++) expected.update(seqMessage(seq, MESSAGE));
    expect(outOfOrder).to.equal(0);
    expect(count).to.equal(total);
    expect(received.digest('hex')).to.equal(expected.digest('hex'));
    expect(violations, 'polls where heldBytes exceeded the receive window').to.equal(0);
    expect(maxHeld).to.be.at.most(WINDOW);
    report(
      `stall ${stalledMs.toFixed(0)} ms (10 × idleTimeout ${IDLE}): no failure; server heldBytes max ${maxHeld} B ` +
        `(${heldAtEnd} B at end of stall, receiveWindow ${WINDOW} B); ${sentDuringStall} × ${MESSAGE / KiB} KiB sent during the stall, ` +
        `${total} in all delivered intact; RSS growth during the stall ${(stallGrowth / MiB).toFixed(1)} MiB ` +
        `(whole test ${((maxRss - rssBefore) / MiB).toFixed(1)} MiB); ` +
        `client credit-stall events ${creditStalls}`,
    );
    expect(stallGrowth).to.be.below(WINDOW + RSS_SLACK);
    expect(maxRss - rssBefore).to.be.below(WINDOW + RSS_SLACK);

    const closing = observe(client.end());
    const [c, s] = await within(Promise.all([closing, serverClosed]), 10_000, 'clean close');
    expect(c.ok && s.ok, 'both sides close cleanly').to.equal(true);
    expect((await clientClosed).ok).to.equal(true);
    expect((await reading).ok).to.equal(true);
  });
});
