/**
 * Ending with unread messages (SPEC.md §9.1, "Unread messages"): `discardUnread()` drops what the
 * application will not read, returns its credit so the peer can finish, and both sides report
 * exactly which messages were discarded.
 */
import { expect } from 'chai';
import { Pair } from './pair.js';

const bytes = (n: number, fill = 1): Uint8Array => new Uint8Array(n).fill(fill);

describe('Engine: ending with unread messages', () => {
  it('client: a reply never read, then close: closes at once, server reports it not processed', () => {
    const pair = new Pair();
    const client = pair.client.engine;
    const server = pair.server.engine;
    client.trySend(0, bytes(10));
    pair.pump();
    expect(server.read(0)).to.have.length(10);
    for (let i = 0; i < 5; i++) server.trySend(0, bytes(100, i)); // replies the client never reads
    pair.pump();
    expect(client.readableMessages).to.equal(5);
    expect(client.read(0)).to.have.length(100); // it reads one
    client.discardUnread(0);
    client.close(0);
    pair.pump();
    expect(server.state).to.equal('peer-closed');
    server.finish(0);
    pair.pump();
    // No time passed: nothing waited for the application.
    expect(client.closed, 'client closed').to.not.equal(undefined);
    expect(client.closed!).to.deep.include({ clean: true, unread: 4 });
    expect(client.closed!.delivery).to.include({ queued: 1, consumed: 1, notProcessedFrom: 2 });
    const s = server.closed!;
    expect(s.clean).to.equal(false);
    expect(s.error!.code).to.equal('CANCELLED');
    expect(s.error).to.have.property('remote', true);
    // Exact: message 1 consumed, 2 … 5 certainly not processed (safe to resend).
    expect(s.delivery).to.include({ queued: 5, consumed: 1, notProcessedFrom: 2 });
    expect(s.delivery.notProcessed.map((m) => m[0])).to.deep.equal([1, 2, 3, 4]);
    expect(s.delivery.unknown).to.have.length(0);
  });

  it('client: returns the credit of discarded messages, so a server blocked on credit finishes', () => {
    const window = 16 * 1024;
    const pair = new Pair({ initialWindowBytes: window, maxWindowBytes: window }, {});
    const client = pair.client.engine;
    const server = pair.server.engine;
    // 20 × 4 KiB: five times what the client's window lets the server send.
    for (let i = 0; i < 20; i++) server.trySend(0, bytes(4096, i));
    pair.pump();
    expect(client.readableMessages).to.be.below(20);
    client.discardUnread(0);
    client.close(0);
    pair.pump();
    server.finish(0);
    pair.pump();
    expect(client.closed!).to.deep.include({ clean: true, unread: 20 });
    expect(client.heldBytes).to.equal(0);
    expect(server.closed!.delivery).to.include({ queued: 20, consumed: 0, notProcessedFrom: 1 });
    expect(server.closed!.delivery.notProcessed).to.have.length(20);
  });

  it('client: nothing unread: the usual clean close on both sides (final CREDIT, no ERROR)', () => {
    const pair = new Pair();
    pair.server.engine.trySend(0, bytes(10));
    pair.pump();
    expect(pair.client.engine.read(0)).to.have.length(10);
    pair.client.engine.discardUnread(0);
    pair.client.engine.close(0);
    pair.pump();
    pair.server.engine.finish(0);
    pair.pump();
    expect(pair.client.engine.closed!).to.deep.include({ clean: true, unread: 0 });
    expect(pair.server.engine.closed!).to.deep.include({ clean: true, unread: 0 });
  });

  it('server after CLOSE: discards the unread, CLOSE_ACK tells the client which were not processed', () => {
    const pair = new Pair();
    const client = pair.client.engine;
    const server = pair.server.engine;
    for (let i = 0; i < 6; i++) client.trySend(0, bytes(50, i));
    client.close(0);
    pair.pump();
    expect(server.read(0)![0]).to.equal(0);
    expect(server.read(0)![0]).to.equal(1);
    server.discardUnread(0);
    server.finish(0);
    pair.pump();
    expect(server.closed!).to.deep.include({ clean: true, unread: 4 });
    expect(client.closed!.clean).to.equal(true);
    expect(client.closed!.delivery).to.include({ queued: 6, consumed: 2, notProcessedFrom: 3 });
    expect(client.closed!.delivery.notProcessed.map((m) => m[0])).to.deep.equal([2, 3, 4, 5]);
  });

  it('without discardUnread the client still waits for its application (the old behaviour)', () => {
    const pair = new Pair({ closeTimeoutMs: 5000 });
    pair.server.engine.trySend(0, bytes(10));
    pair.pump();
    pair.client.engine.close(0);
    pair.pump();
    pair.server.engine.finish(0);
    pair.advanceTo(4000);
    expect(pair.client.engine.state).to.equal('close-acked');
    expect(pair.client.engine.read(pair.now)).to.have.length(10);
    pair.pump();
    expect(pair.client.engine.closed!).to.deep.include({ clean: true, unread: 0 });
    expect(pair.server.engine.closed!.clean).to.equal(true);
  });
});
