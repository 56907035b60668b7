/**
 * `server.close({ grace })` is a hard deadline (SPEC.md §9.2): whatever a client does after
 * GOAWAY (or after its own CLOSE), every connection is force-closed when the grace expires, with
 * an exact delivery report, and `close()` settles within grace + 1 s linger (+ timer slack).
 */
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { encodeControlFrame } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/constants.js';
import type { CloseInfo } from '../../src/protocol/types.js';
import { helloBytes, now, observe, report, useHarness, waitFor, within } from './helpers.js';
import type { RawPeer, Settled } from './helpers.js';

/** The documented bound on `server.close()` beyond the grace: the 1 s linger and the timer slack. */
const LINGER_MS = 1000 + 64;
/** Generous margin for a loaded 2-core machine. */
const MARGIN_MS = 1500;

const closeFrame = (): Uint8Array =>
  encodeControlFrame({ type: FrameType.CLOSE, close: { sentMessages: 0, consumedMessages: 0 } });

describe('node transport: server.close({ grace }) is a hard deadline', function () {
  this.timeout(30_000);
  const h = useHarness();

  /**
   * A server that sends each client one message of `size` bytes at once and consumes with
   * `for await`; its idle and close timeouts are long, so that only the grace can end things.
   */
  async function setup(size: number): Promise<{
    server: import('../../src/node/server.js').Server;
    port: number;
    closes: Promise<Settled<CloseInfo>>[];
    infos: Promise<CloseInfo>[];
    connections: Connection[];
  }> {
    const closes: Promise<Settled<CloseInfo>>[] = [];
    const infos: Promise<CloseInfo>[] = [];
    const { server, port, connections } = await h().server(
      { idleTimeout: 60_000, closeTimeout: 20_000 },
      (connection) => {
        closes.push(observe(connection.closed));
        infos.push(new Promise((resolve) => connection.once('close', resolve)));
        connection.write(new Uint8Array(size).fill(7));
        void (async () => {
          try {
            for await (const _message of connection) {
              // consume
            }
          } catch {
            // reported by `closed`
          }
        })();
      },
    );
    return { server, port, closes, infos, connections };
  }

  async function handshake(raw: RawPeer, initialCredit = 65_536): Promise<void> {
    await raw.connected;
    raw.write(helloBytes({ idleTimeoutMs: 60_000, initialCredit }));
    await raw.waitForFrame(FrameType.WELCOME, 5000);
  }

  async function timeClose(
    server: import('../../src/node/server.js').Server,
    grace: number,
  ): Promise<number> {
    const t0 = now();
    await within(server.close({ grace }), grace + LINGER_MS + MARGIN_MS, 'server.close() to settle');
    return now() - t0;
  }

  it('a client that sends CLOSE after GOAWAY, then never reads its message nor sends its final FIN', async () => {
    const { server, port, closes, infos } = await setup(1024);
    const raw = h().raw(port);
    await handshake(raw);
    await waitFor(() => closes.length === 1, 5000, 'the server connection');
    const grace = 300;
    const closing = timeClose(server, grace);
    await raw.waitForFrame(FrameType.GOAWAY, 5000);
    raw.write(closeFrame());
    await raw.waitForFrame(FrameType.CLOSE_ACK, 5000);
    const ms = await closing;
    expect(await rejectionCode(closes[0]!)).to.equal('GOAWAY_GRACE_EXPIRED');
    // Written, never reported consumed: unknown (SPEC.md §9.4).
    const info = (await infos[0]!).delivery;
    expect(info).to.deep.include({ queued: 1, consumed: 0, notProcessedFrom: 2 });
    expect(ms).to.be.at.least(grace - 20);
    report(
      `server.close({ grace: ${grace} }), client sent CLOSE then withheld its final CREDIT and FIN: settled in ${ms.toFixed(0)} ms (bound ${grace + LINGER_MS})`,
    );
  });

  it('a client that sends CLOSE after GOAWAY and then withholds credit', async () => {
    // 8 KiB for a client that granted 1 KiB: the server cannot finish its message.
    const { server, port, closes, infos } = await setup(8192);
    const raw = h().raw(port);
    await handshake(raw, 1024);
    await waitFor(() => closes.length === 1, 5000, 'the server connection');
    const grace = 500;
    const closing = timeClose(server, grace);
    await raw.waitForFrame(FrameType.GOAWAY, 5000);
    raw.write(closeFrame());
    const ms = await closing;
    const error = await rejectionCode(closes[0]!);
    expect(error).to.equal('GOAWAY_GRACE_EXPIRED');
    expect(raw.errorFrame()?.name).to.equal('GOAWAY_GRACE_EXPIRED');
    // Not completely handed to the transport: certainly not processed.
    const info = (await infos[0]!).delivery;
    expect(info).to.deep.include({ queued: 1, consumed: 0, notProcessedFrom: 1 });
    expect(info.notProcessed).to.have.length(1);
    report(
      `server.close({ grace: ${grace} }), client sent CLOSE then withheld credit: settled in ${ms.toFixed(0)} ms (bound ${grace + LINGER_MS}), ERROR GOAWAY_GRACE_EXPIRED, 1 message reported not processed`,
    );
  });

  it('a client that sent CLOSE before server.close() and withholds its final FIN', async () => {
    const { server, port, closes, connections } = await setup(1024);
    const raw = h().raw(port);
    await handshake(raw);
    await waitFor(() => closes.length === 1, 5000, 'the server connection');
    raw.write(closeFrame());
    await raw.waitForFrame(FrameType.CLOSE_ACK, 5000);
    expect(connections[0]!.state).to.equal('close-ack-sent');
    const grace = 200;
    const ms = await timeClose(server, grace);
    expect(await rejectionCode(closes[0]!)).to.equal('GOAWAY_GRACE_EXPIRED');
    report(
      `server.close({ grace: ${grace} }) after the client's CLOSE, final FIN withheld: settled in ${ms.toFixed(0)} ms (bound ${grace + LINGER_MS})`,
    );
  });

  it('a heartwire client with an unread message that ends on GOAWAY', async () => {
    const { server, port, closes } = await setup(1024);
    const client = await h().connect({ port, idleTimeout: 60_000 });
    const clientClosed = observe(client.closed);
    client.on('goaway', () => void client.end().catch(() => {}));
    await waitFor(() => client.stats().messagesReceived === 1, 5000, 'the server message');
    const grace = 100;
    const ms = await timeClose(server, grace);
    await within(clientClosed, MARGIN_MS, 'the client to close');
    const server0 = await closes[0]!;
    report(
      `server.close({ grace: ${grace} }), heartwire client with an unread message ending on GOAWAY: settled in ${ms.toFixed(0)} ms (bound ${grace + LINGER_MS}); server side ${server0.ok ? 'clean' : (server0.error as { code: string }).code}`,
    );
  });

  it('a raw client that ignores GOAWAY and never reads', async () => {
    const { server, port, closes } = await setup(1024);
    const raw = h().raw(port);
    await handshake(raw);
    await waitFor(() => closes.length === 1, 5000, 'the server connection');
    raw.socket.pause();
    const grace = 300;
    const ms = await timeClose(server, grace);
    expect(await rejectionCode(closes[0]!)).to.equal('GOAWAY_GRACE_EXPIRED');
    report(
      `server.close({ grace: ${grace} }), client ignoring GOAWAY and not reading: settled in ${ms.toFixed(0)} ms (bound ${grace + LINGER_MS})`,
    );
  });
});

async function rejectionCode(closed: Promise<Settled<CloseInfo>>): Promise<string> {
  const outcome = await closed;
  if (outcome.ok) throw new Error('closed cleanly where a force-close was expected');
  return (outcome.error as { code: string }).code;
}
