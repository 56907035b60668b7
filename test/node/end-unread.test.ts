/**
 * A client's `end()` with messages its application will not read settles promptly with an exact
 * report (`CloseInfo.unread`, and the server's `delivery.notProcessed`), instead of waiting for
 * `closeTimeout` and rejecting `CLOSE_TIMEOUT`; `end({ unread: 'wait' })` keeps the old behaviour,
 * and a reader that keeps reading after `end()` loses nothing.
 */
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import type { CloseInfo } from '../../src/protocol/types.js';
import { now, observe, report, sleep, useHarness, waitFor, within } from './helpers.js';
import type { Settled } from './helpers.js';

/** closeTimeout of these tests: the old behaviour hung this long (default 30 s). */
const CLOSE_TIMEOUT = 10_000;
/** Generous bound for "promptly" on a loaded 2-core machine (a few round trips on loopback). */
const PROMPT_MS = 2000;

describe('node transport: client end() with unread messages', function () {
  this.timeout(30_000);
  const h = useHarness();

  /** An echo server that answers each request with `replies` messages of `size` bytes. */
  async function setup(
    replies: number,
    size = 1024,
  ): Promise<{ port: number; serverInfos: Promise<CloseInfo>[]; servers: Connection[] }> {
    const serverInfos: Promise<CloseInfo>[] = [];
    const servers: Connection[] = [];
    const { port } = await h().server({ closeTimeout: CLOSE_TIMEOUT }, (connection) => {
      servers.push(connection);
      serverInfos.push(new Promise((resolve) => connection.once('close', resolve)));
      void connection
        .handle(async (message) => {
          for (let i = 0; i < replies; i++) await connection.send(new Uint8Array(size).fill(message[0]!));
        })
        .catch(() => {});
    });
    return { port, serverInfos, servers };
  }

  async function client(port: number): Promise<{ conn: Connection; info: Promise<CloseInfo> }> {
    const conn = await h().connect({ port, closeTimeout: CLOSE_TIMEOUT });
    return { conn, info: new Promise((resolve) => conn.once('close', resolve)) };
  }

  async function timeEnd(
    conn: Connection,
    options?: Parameters<Connection['end']>[0],
  ): Promise<{ ms: number; outcome: Settled<CloseInfo> }> {
    const t0 = now();
    const outcome = await within(observe(conn.end(options)), PROMPT_MS + 3000, 'end() to settle');
    return { ms: now() - t0, outcome };
  }

  it('breaking out of for await early: end() settles at once, the rest reported unread and not processed', async () => {
    const replies = 20;
    const { port, serverInfos } = await setup(replies);
    const { conn, info } = await client(port);
    await conn.send(Uint8Array.of(1));
    let read = 0;
    for await (const _message of conn) {
      if (++read === 3) break;
    }
    // Let every reply arrive (the server's sends resolve within the client's credit).
    await waitFor(() => conn.stats().messagesReceived === replies, 5000, 'all replies to arrive');
    const { ms, outcome } = await timeEnd(conn);
    expect(outcome.ok, `end(): ${String(!outcome.ok && outcome.error)}`).to.equal(true);
    const closed = await info;
    expect(closed).to.deep.include({ clean: true, unread: replies - read });
    expect(ms).to.be.below(PROMPT_MS);
    const server = await within(serverInfos[0]!, 5000, 'the server side to close');
    expect(server.error?.code).to.equal('CANCELLED');
    expect(server.delivery).to.include({ queued: replies, consumed: read, notProcessedFrom: read + 1 });
    expect(server.delivery.notProcessed).to.have.length(replies - read);
    report(
      `client end() after breaking out of for await (${read} of ${replies} replies read): settled in ${ms.toFixed(0)} ms, clean, unread ${closed.unread}; server: CANCELLED, ${server.delivery.notProcessed.length} reported not processed (closeTimeout ${CLOSE_TIMEOUT} ms)`,
    );
  });

  it('never reading, with the server blocked on credit: end() settles at once', async () => {
    // 64 × 64 KiB = 4 MiB of replies: far beyond the client's initial window, so the server is
    // blocked on credit when end() is called.
    const replies = 64;
    const { port, serverInfos, servers } = await setup(replies, 64 * 1024);
    const { conn, info } = await client(port);
    await conn.send(Uint8Array.of(2));
    await waitFor(() => servers[0]?.stats().sendCredit === 0, 5000, 'the server to block on credit');
    const { ms, outcome } = await timeEnd(conn);
    expect(outcome.ok, `end(): ${String(!outcome.ok && outcome.error)}`).to.equal(true);
    const closed = await info;
    expect(closed).to.deep.include({ clean: true, unread: replies });
    const server = await within(serverInfos[0]!, 5000, 'the server side to close');
    expect(server.delivery).to.include({ queued: replies, consumed: 0, notProcessedFrom: 1 });
    report(
      `client end() never having read ${replies} × 64 KiB replies (server blocked on credit): settled in ${ms.toFixed(0)} ms, unread ${closed.unread}, server reports ${server.delivery.notProcessed.length} not processed`,
    );
  });

  it("end({ unread: 'wait' }) waits for the application, which may then read and close cleanly", async () => {
    const { port, serverInfos } = await setup(2);
    const { conn, info } = await client(port);
    await conn.send(Uint8Array.of(3));
    await waitFor(() => conn.stats().messagesReceived === 2, 5000, 'the replies');
    const ending = observe(conn.end({ unread: 'wait' }));
    await sleep(500);
    expect(conn.state).to.equal('close-acked');
    let read = 0;
    for await (const _message of conn) read++;
    expect(read).to.equal(2);
    expect((await within(ending, 5000, 'end()')).ok).to.equal(true);
    expect(await info).to.deep.include({ clean: true, unread: 0 });
    expect((await serverInfos[0]!).clean).to.equal(true);
  });

  it('the half-close pattern (end(), then read until the loop ends) loses nothing', async () => {
    const replies = 200;
    const { port, serverInfos } = await setup(replies);
    const { conn, info } = await client(port);
    await conn.send(Uint8Array.of(4));
    const ending = observe(conn.end());
    let read = 0;
    for await (const _message of conn) read++;
    expect(read).to.equal(replies);
    expect((await within(ending, 5000, 'end()')).ok).to.equal(true);
    expect(await info).to.deep.include({ clean: true, unread: 0 });
    const server = await serverInfos[0]!;
    expect(server.clean).to.equal(true);
    expect(server.delivery.consumed).to.equal(replies);
  });

  it('a for await loop that is still running when end() is called keeps reading', async () => {
    const replies = 100;
    const { port, serverInfos } = await setup(replies);
    const { conn, info } = await client(port);
    let read = 0;
    const reading = (async () => {
      for await (const _message of conn) {
        read++;
        await sleep(1); // a slow consumer: replies wait in the inbox meanwhile
      }
    })();
    await conn.send(Uint8Array.of(5));
    await waitFor(() => read >= 1, 5000, 'the first reply');
    const ending = observe(conn.end());
    await within(reading, 10_000, 'the reader to finish');
    expect(read).to.equal(replies);
    expect((await within(ending, 5000, 'end()')).ok).to.equal(true);
    expect(await info).to.deep.include({ clean: true, unread: 0 });
    expect((await serverInfos[0]!).clean).to.equal(true);
  });
});
