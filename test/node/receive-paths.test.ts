/**
 * The receive paths' guarantees, over loopback: `handle()` (lanes: a synchronous handler runs
 * inline, an async one is followed per lane, p-queue runs the lanes when concurrency > 1) and
 * `for await` (an iterator with a synchronous fast path). Concurrency limit, credit returned as
 * each handler settles, errors, order, the end of the stream, breaking out of `for await`.
 */
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import type { Settled } from './helpers.js';
import { codeOf, observe, seqMessage, seqOf, sleep, useHarness, waitFor, within } from './helpers.js';

/** A promise with its resolve/reject at hand. */
function deferred(): { promise: Promise<void>; resolve: () => void; reject: (error: Error) => void } {
  let resolve!: () => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<void>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe('node transport: receive paths (handle(), for await)', function () {
  this.timeout(30_000);
  const h = useHarness();

  /** A server and a client; `onServer` gets the server side of the connection first. */
  async function pair(onServer: (connection: Connection) => void): Promise<Connection> {
    const { port } = await h().server({}, onServer);
    return h().connect({ port });
  }

  it('handle(): at most `concurrency` handlers run, they start in message order, and all of them run', async () => {
    const count = 60;
    const concurrency = 3;
    let running = 0;
    let maxRunning = 0;
    const started: number[] = [];
    let handled: Promise<Settled<void>> | undefined;
    const client = await pair((connection) => {
      handled = observe(
        connection.handle(
          async (message) => {
            started.push(seqOf(message));
            running++;
            maxRunning = Math.max(maxRunning, running);
            await sleep(started.length % 4); // handlers settle out of order
            running--;
          },
          { concurrency },
        ),
      );
    });
    for (let seq = 1; seq <= count; seq++) client.write(seqMessage(seq, 100));
    await waitFor(() => started.length === count, 15_000, 'every handler to start');
    expect(started).to.deep.equal(Array.from({ length: count }, (_, i) => i + 1));
    expect(maxRunning).to.equal(concurrency);
    await within(client.end(), 10_000, 'a clean close');
    const outcome = await within(handled!, 10_000, 'handle() to resolve');
    expect(outcome.ok, String((outcome as { error?: unknown }).error)).to.equal(true);
    expect(running).to.equal(0);
  });

  it('handle(): a message credit returns when its handler settles, not before, in message order', async () => {
    const gates: ReturnType<typeof deferred>[] = [];
    let server: Connection | undefined;
    const client = await pair((connection) => {
      server = connection;
      void connection
        .handle(
          (message) => {
            const gate = deferred();
            gates[seqOf(message)] = gate;
            return gate.promise;
          },
          { concurrency: 2 },
        )
        .catch(() => {});
    });
    for (let seq = 1; seq <= 4; seq++) client.write(seqMessage(seq, 1000));
    await waitFor(() => gates[1] !== undefined && gates[2] !== undefined, 10_000, 'two handlers running');
    await waitFor(() => server!.stats().messagesReceived === 4, 10_000, 'all four messages received');
    const held = server!.stats().heldBytes;
    const cost = held / 4; // each message's credit cost (payload and overhead): all four are equal
    await sleep(100);
    expect(gates[3], 'a third handler while two run').to.equal(undefined);
    expect(server!.stats().heldBytes, 'credit held while the handlers run').to.equal(held);

    gates[1]!.resolve(); // its credit returns, the next message starts
    await waitFor(() => gates[3] !== undefined, 10_000, 'the third handler');
    const afterOne = server!.stats().heldBytes;
    expect(held - afterOne, 'one message of credit back').to.equal(cost);
    expect(gates[4]).to.equal(undefined);

    // Out of order: the fourth handler starts, but credit returns in message order (SPEC: the
    // consumed count is a prefix), so message 3's credit waits for message 2's handler.
    gates[3]!.resolve();
    await waitFor(() => gates[4] !== undefined, 10_000, 'the fourth handler');
    await sleep(50);
    expect(server!.stats().heldBytes, 'no credit back before message 2 settles').to.equal(afterOne);
    gates[2]!.resolve();
    await waitFor(() => server!.stats().heldBytes < afterOne, 10_000, 'credit of messages 2 and 3');
    expect(afterOne - server!.stats().heldBytes, 'two messages of credit back').to.equal(2 * cost);
    gates[4]!.resolve();
    await waitFor(() => server!.stats().heldBytes === 0, 10_000, 'all credit back');
  });

  it('handle(): a synchronous handler runs every message in order, its credit returning as it returns; a non-native thenable is followed', async () => {
    const count = 5000;
    const seen: number[] = [];
    let thenableSettled = 0;
    let handled: Promise<Settled<void>> | undefined;
    const client = await pair((connection) => {
      handled = observe(
        connection.handle((message) => {
          const seq = seqOf(message);
          seen.push(seq);
          if (seq % 1000 !== 0) return undefined;
          // Every 1000th: a thenable that is not a Promise, settling a little later.
          return {
            then(resolve: () => void) {
              setTimeout(() => {
                thenableSettled++;
                resolve();
              }, 5);
            },
          };
        }),
      );
    });
    for (let seq = 1; seq <= count; seq++) client.write(seqMessage(seq, 64));
    const closed = client.end();
    const outcome = await within(handled!, 15_000, 'handle() to resolve');
    expect(outcome.ok, String((outcome as { error?: unknown }).error)).to.equal(true);
    expect(seen).to.deep.equal(Array.from({ length: count }, (_, i) => i + 1));
    expect(thenableSettled).to.equal(5);
    const info = await within(closed, 10_000, 'a clean close');
    expect(info.delivery.consumed).to.equal(count);
  });

  it('handle(): a handler that throws or rejects goes to onError with its message, and the others go on', async () => {
    const errors: [string, number][] = [];
    const seen: number[] = [];
    let handled: Promise<Settled<void>> | undefined;
    const client = await pair((connection) => {
      handled = observe(
        connection.handle(
          (message) => {
            const seq = seqOf(message);
            seen.push(seq);
            if (seq === 3) throw new Error('sync failure');
            if (seq === 6) return Promise.reject(new Error('async failure'));
            return seq % 2 === 0 ? sleep(1) : undefined;
          },
          {
            concurrency: 2,
            onError: (error, message) => errors.push([(error as Error).message, seqOf(message)]),
          },
        ),
      );
    });
    for (let seq = 1; seq <= 10; seq++) client.write(seqMessage(seq, 64));
    const info = await within(client.end(), 10_000, 'a clean close');
    expect((await within(handled!, 10_000, 'handle() to resolve')).ok).to.equal(true);
    expect(seen).to.have.members(Array.from({ length: 10 }, (_, i) => i + 1));
    expect(errors).to.deep.equal([
      ['sync failure', 3],
      ['async failure', 6],
    ]);
    // A failed handler has settled: its message counts as consumed.
    expect(info.delivery.consumed).to.equal(10);
  });

  it('handle(): without onError a failing handler aborts the connection; handle() rejects with that error', async () => {
    let handled: Promise<Settled<void>> | undefined;
    let server: Connection | undefined;
    const client = await pair((connection) => {
      server = connection;
      handled = observe(
        connection.handle((message) => {
          if (seqOf(message) === 2) throw new Error('boom');
        }),
      );
    });
    for (let seq = 1; seq <= 3; seq++) client.write(seqMessage(seq, 64));
    const outcome = (await within(handled!, 10_000, 'handle() to settle')) as {
      ok: boolean;
      error?: unknown;
    };
    expect(outcome.ok).to.equal(false);
    expect(codeOf(outcome.error)).to.equal('INTERNAL_ERROR');
    expect(((outcome.error as Error).cause as Error).message).to.equal('boom');
    expect(server!.state).to.equal('closed');
    await client.closed.catch(() => {});
  });

  it('handle(): resolves only once the stream has ended and every handler has settled; the server then finishes cleanly', async () => {
    const gate = deferred();
    let handled: Promise<Settled<void>> | undefined;
    let started = 0;
    let resolvedAt: number | undefined;
    const client = await pair((connection) => {
      handled = observe(
        connection
          .handle(
            async () => {
              started++;
              await gate.promise;
            },
            { concurrency: 16 },
          )
          .then(() => {
            resolvedAt = started;
          }),
      );
    });
    for (let seq = 1; seq <= 5; seq++) client.write(seqMessage(seq, 64));
    const closed = client.end();
    await waitFor(() => started === 5, 10_000, 'five handlers running');
    await sleep(100);
    expect(resolvedAt, 'handle() resolved while handlers run').to.equal(undefined);
    expect(client.state).to.not.equal('closed');
    gate.resolve();
    const info = await within(closed, 10_000, 'a clean close');
    expect(info.clean).to.equal(true);
    expect(info.delivery.consumed).to.equal(5);
    expect((await within(handled!, 10_000, 'handle() to resolve')).ok).to.equal(true);
    expect(resolvedAt).to.equal(5);
  });

  it('for await: messages in order; break stops the iterator and leaves the rest readable', async () => {
    let server: Connection | undefined;
    const client = await pair((connection) => {
      server = connection;
    });
    for (let seq = 1; seq <= 10; seq++) client.write(seqMessage(seq, 64));
    await waitFor(
      () => server !== undefined && server.stats().messagesReceived === 10,
      10_000,
      'ten messages',
    );
    const first: number[] = [];
    const iterator = server![Symbol.asyncIterator]();
    for await (const message of { [Symbol.asyncIterator]: () => iterator }) {
      first.push(seqOf(message));
      if (first.length === 3) break;
    }
    expect(first).to.deep.equal([1, 2, 3]);
    expect((await iterator.next()).done, 'next() after break').to.equal(true);
    expect(seqOf(server!.read()!)).to.equal(4);
    const rest: number[] = [];
    const reading = observe(
      (async () => {
        for await (const message of server!) rest.push(seqOf(message));
      })(),
    );
    for (let seq = 11; seq <= 20; seq++) client.write(seqMessage(seq, 64));
    await within(client.end(), 10_000, 'a clean close');
    expect((await within(reading, 10_000, 'for await to end')).ok).to.equal(true);
    expect(rest).to.deep.equal(Array.from({ length: 16 }, (_, i) => i + 5));
  });

  it('for await: a message arriving while the loop waits is handed out; an unclean close ends the loop with the error', async () => {
    let server: Connection | undefined;
    const seen: number[] = [];
    let reading: Promise<Settled<void>> | undefined;
    const client = await pair((connection) => {
      server = connection;
      reading = observe(
        (async () => {
          for await (const message of connection) seen.push(seqOf(message));
        })(),
      );
    });
    for (let seq = 1; seq <= 3; seq++) {
      client.write(seqMessage(seq, 64));
      await waitFor(() => seen.length === seq, 10_000, `message ${seq}`);
    }
    client.abort();
    const outcome = (await within(reading!, 10_000, 'for await to end')) as { ok: boolean; error?: unknown };
    expect(outcome.ok).to.equal(false);
    expect(codeOf(outcome.error)).to.equal('CANCELLED');
    expect(seen).to.deep.equal([1, 2, 3]);
    expect(server!.state).to.equal('closed');
  });
});
