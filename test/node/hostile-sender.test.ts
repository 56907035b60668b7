/**
 * Issue 10 C8: a peer that advertises `initial_credit` 2^53 − 1, reads everything and never
 * reports a message consumed cannot make a sender retain without bound, and a server's
 * `for (;;) await conn.send(1 MiB)` loop towards it does not starve the event loop: a healthy
 * client on the same server keeps its heartbeats.
 */
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { MiB, Peer, codeOf, observe, report, rss, sleep, useHarness, within } from './helpers.js';

const HOSTILE_READER = fileURLToPath(new URL('./fixtures/hostile-reader.ts', import.meta.url));

describe('node transport: a peer that never reports consumption', function () {
  this.timeout(60_000);
  const harness = useHarness();

  it('C8: the sender retains at most maxSendQueue + one message; a healthy client keeps its heartbeats', async () => {
    const MAX_SEND_QUEUE = 4 * MiB; // the default, stated here
    const MESSAGE = MiB;
    const DURATION = 5000; // 5 × the healthy client's idle timeout
    /** Guard for b6250a7, which keeps every message: stop before the machine suffers. */
    const RSS_GUARD = 1024 * MiB;
    const hostileConnection: { value?: Connection } = {};
    let sent = 0;
    let loopError: unknown;
    let stop = false;
    const { port, next } = await harness().server({ idleTimeout: 1000 }, (connection) => {
      // The first connection is the hostile one; the healthy client's echo is served below.
      if (hostileConnection.value === undefined) {
        hostileConnection.value = connection;
        void (async () => {
          try {
            // The README's pattern: fresh messages, awaited one after the other.
            while (!stop && rss() < RSS_GUARD) {
              await connection.send(new Uint8Array(MESSAGE).fill(sent & 0xff));
              sent++;
            }
          } catch (error) {
            loopError = error;
          }
        })();
      } else {
        void (async () => {
          for await (const message of connection) await connection.send(message);
        })().catch(() => {});
      }
    });
    const rssBefore = rss();
    const hostile = harness().track(
      new Peer(process.execPath, ['--import', 'tsx', HOSTILE_READER, JSON.stringify({ port })]),
    );
    let readBytes = 0;
    hostile.child.on('message', (message: { type?: string; bytes?: number }) => {
      if (message.type === 'read') readBytes = message.bytes ?? 0;
    });
    await hostile.next('open', 10_000);
    const server = await next();
    expect(server).to.equal(hostileConnection.value);

    const healthy = await harness().connect({ port, idleTimeout: 1000 });
    const healthyClosed = observe(healthy.closed);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    let maxQueue = 0;
    let maxRss = 0;
    let roundTrips = 0;
    const started = performance.now();
    while (performance.now() - started < DURATION) {
      const echoed = (async () => {
        await healthy.send(new Uint8Array(16));
        for await (const _ of healthy) break; // the echo
      })();
      if ((await observe(within(echoed, 3000, 'an echo'))).ok) roundTrips++;
      maxQueue = Math.max(maxQueue, server.stats().sendQueueBytes ?? 0);
      maxRss = Math.max(maxRss, rss());
      await sleep(50);
    }
    delay.disable();
    stop = true;
    await sleep(300); // the hostile peer's next report of what it read
    const heartbeats = healthy.stats().heartbeatsReceived;
    report(
      `hostile reader (initial_credit 2^53-1, never consumes) vs for(;;) await send(1 MiB): ` +
        `${sent} sends resolved, hostile read ${(readBytes / MiB).toFixed(1)} MiB, ` +
        `server send queue max ${(maxQueue / MiB).toFixed(2)} MiB (bound ${MAX_SEND_QUEUE / MiB} MiB + 1 message), ` +
        `RSS +${((maxRss - rssBefore) / MiB).toFixed(1)} MiB; healthy client: ${roundTrips} round trips, ` +
        `${heartbeats} heartbeats in ${DURATION} ms, event loop delay max ${(delay.max / 1e6).toFixed(0)} ms`,
    );
    expect(loopError, `send loop: ${codeOf(loopError)}`).to.equal(undefined);
    expect(maxQueue, 'what the server retains for the hostile connection').to.be.at.most(
      MAX_SEND_QUEUE + MESSAGE + 64,
    );
    expect(sent, 'sends resolved (accepted) in all').to.be.at.most(MAX_SEND_QUEUE / (MESSAGE + 64) + 1);
    expect(maxRss - rssBefore, 'RSS growth of the process (server, clients)').to.be.below(256 * MiB);
    const closedEarly = await Promise.race([healthyClosed, sleep(0).then(() => undefined)]);
    expect(
      closedEarly,
      `healthy client closed: ${codeOf(closedEarly && !closedEarly.ok && closedEarly.error)}`,
    ).to.equal(undefined);
    // Heartbeats every third of the idle timeout: 15 in 5 s; allow for a loaded machine.
    expect(heartbeats, 'heartbeats the healthy client received').to.be.at.least(8);
    expect(roundTrips, 'round trips of the healthy client').to.be.at.least(20);
    expect(delay.max / 1e6, 'longest event-loop stall (ms)').to.be.below(1000);
    await within(healthy.end(), 10_000, 'the healthy client to end');
  });
});
