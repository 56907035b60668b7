/**
 * The one bounded send queue (issue 10 B6, C8): every message `write()` or `send()` accepted is
 * in the delivery report at any close, exactly once; the queue's bound holds whatever the peer.
 */
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import type { CloseInfo, DeliveryReport } from '../../src/protocol/types.js';
import { codeOf, seqMessage, seqOf, useHarness, waitFor, within } from './helpers.js';

/** Every accepted message in exactly one class, in order, and `queued` equal to the accepted count. */
export function expectExactReport(delivery: DeliveryReport, accepted: readonly number[], what: string): void {
  expect(delivery.queued, `${what}: delivery.queued`).to.equal(accepted.length);
  const classified = [
    ...Array.from({ length: delivery.consumed }, (_, i) => accepted[i]!),
    ...delivery.unknown.map(seqOf),
    ...delivery.notProcessed.map(seqOf),
  ];
  expect(classified, `${what}: consumed + unknown + not processed`).to.deep.equal(accepted);
  expect(delivery.notProcessedFrom, `${what}: notProcessedFrom`).to.equal(
    delivery.consumed + delivery.unknown.length + 1,
  );
}

function closeInfo(connection: Connection): Promise<CloseInfo> {
  return new Promise((resolve) => connection.once('close', resolve));
}

describe('node transport: the send queue', function () {
  this.timeout(30_000);
  const harness = useHarness();

  it('B6: messages write() accepted after it returned false are in the report when the connection dies', async () => {
    // The case: 32 writes of 256 B to a server that reads nothing; the caller keeps
    // writing after false until SEND_QUEUE_FULL. On b6250a7: 32 accepted, delivery.queued 19.
    const { port, next } = await harness().server({ initialReceiveWindow: 4096, receiveWindow: 4096 });
    const client = await harness().connect({ port, maxSendQueue: 4096 });
    const server = await next();
    const closed = closeInfo(client);
    const accepted: number[] = [];
    let falses = 0;
    for (let seq = 1; seq <= 32; seq++) {
      try {
        if (!client.write(seqMessage(seq, 256))) falses++;
        accepted.push(seq);
      } catch (error) {
        expect(codeOf(error)).to.equal('SEND_QUEUE_FULL'); // refused: not accepted
      }
    }
    expect(falses, 'write() returned false').to.be.greaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, 50)); // let what the credit allows go out
    server.abort();
    const info = await within(closed, 10_000, 'the client to close');
    expect(info.clean).to.equal(false);
    expectExactReport(info.delivery, accepted, 'client');
    expect(info.delivery.consumed, 'the server consumed nothing').to.equal(0);
  });

  it('B6: write() returns false when the queue reaches maxSendQueue, throws only when the caller ignored it, and drain follows', async () => {
    const { port, next } = await harness().server({ initialReceiveWindow: 4096, receiveWindow: 4096 });
    const client = await harness().connect({ port, maxSendQueue: 8192 });
    const server = await next();
    let seq = 0;
    while (client.write(seqMessage(++seq, 1000)));
    const accepted = seq;
    // Each message counts its payload plus 64 bytes: the queue stopped at its bound.
    expect(client.stats().sendQueueBytes).to.be.at.least(8192);
    expect(client.stats().sendQueueBytes).to.be.below(8192 + 1064);
    expect(() => client.write(seqMessage(accepted + 1, 1000))).to.throw(/send queue is full/);
    const drained = new Promise<void>((resolve) => client.once('drain', resolve));
    const received: number[] = [];
    const drain = (): void => {
      for (let m = server.read(); m !== undefined; m = server.read()) received.push(seqOf(m));
    };
    server.on('readable', drain);
    server.on('peer-closed', () => void server.end());
    drain();
    await within(drained, 10_000, 'drain');
    expect(client.write(seqMessage(accepted + 1, 1000))).to.be.a('boolean');
    await waitFor(() => received.length === accepted + 1, 10_000, 'every message');
    expect(received).to.deep.equal(Array.from({ length: accepted + 1 }, (_, i) => i + 1));
    const info = await within(client.end(), 10_000, 'a clean end');
    expect(info.delivery.queued).to.equal(accepted + 1);
    expect(info.delivery.consumed).to.equal(accepted + 1);
  });

  it('send() waits while the queue is full, in call order; the waiting messages are not accepted and reject when the connection dies', async () => {
    const { port, next } = await harness().server({ initialReceiveWindow: 4096, receiveWindow: 4096 });
    const client = await harness().connect({ port, maxSendQueue: 4096 });
    const server = await next();
    const closed = closeInfo(client);
    const outcomes = new Map<number, 'resolved' | 'rejected'>();
    const promises: Promise<void>[] = [];
    for (let seq = 1; seq <= 40; seq++) {
      promises.push(
        client.send(seqMessage(seq, 256)).then(
          () => void outcomes.set(seq, 'resolved'),
          (error: unknown) => {
            expect(codeOf(error), 'the close error').to.equal('CANCELLED'); // the server aborted
            outcomes.set(seq, 'rejected');
          },
        ),
      );
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    const resolvedEarly = [...outcomes.values()].filter((o) => o === 'resolved').length;
    expect(resolvedEarly, 'sends accepted at once').to.be.within(1, 39);
    server.abort();
    await Promise.all(promises);
    const info = await closed;
    const accepted = [...outcomes].filter(([, o]) => o === 'resolved').map(([seq]) => seq);
    // Accepted ones form a prefix: callers are served in order.
    expect(accepted).to.deep.equal(Array.from({ length: accepted.length }, (_, i) => i + 1));
    expect(accepted.length).to.equal(resolvedEarly);
    expectExactReport(info.delivery, accepted, 'client');
  });
});
