import { expect } from 'chai';
import { Engine } from '../../src/protocol/engine.js';
import { Pair } from './pair.js';

const bytes = (n: number, fill = 7): Uint8Array => new Uint8Array(n).fill(fill);

describe('Engine', () => {
  describe('handshake', () => {
    it('opens both sides and negotiates idle timeouts, clamping the client', () => {
      const pair = new Pair({ idleTimeoutMs: 300 }, { idleTimeoutMs: 6000 });
      expect(pair.client.engine.state).to.equal('open');
      expect(pair.server.engine.state).to.equal('open');
      const c = pair.client.engine.negotiated!;
      const s = pair.server.engine.negotiated!;
      expect(c.localIdleTimeoutMs).to.equal(1000); // clamped by the server's default range
      expect(s.peerIdleTimeoutMs).to.equal(1000);
      expect(c.peerIdleTimeoutMs).to.equal(6000);
      expect(c.heartbeatIntervalMs).to.equal(2000);
      expect(s.heartbeatIntervalMs).to.be.closeTo(333.3, 0.1);
    });

    it('rejects a peer that does not speak heartwire on its first byte', () => {
      const server = new Engine({ role: 'server' });
      server.start(0);
      server.receive(0, new TextEncoder().encode('G'));
      expect(server.state).to.equal('closed');
      expect(server.closed!.error!.code).to.equal('PROTOCOL_MISMATCH');
      expect(server.pollTransmit(0)).to.deep.equal([]);
    });

    it('a violation this side detects is closed with initiator local, not blamed on a remote error', () => {
      const pair = new Pair({}, {});
      // A frame header announcing a CREDIT frame of 17 bytes: FRAME_TOO_LARGE (SPEC §4.1).
      pair.server.engine.receive(1, new Uint8Array([0, 0, 0, 17, 0x01, 0]));
      const info = pair.server.engine.closed!;
      expect(info.error!.code).to.equal('FRAME_TOO_LARGE');
      expect(info.initiator).to.equal('local');
      expect((info.error as { remote?: boolean }).remote).to.not.equal(true);
    });

    it('fails with HANDSHAKE_TIMEOUT when the server never answers', () => {
      const client = new Engine({ role: 'client', handshakeTimeoutMs: 500 });
      client.start(0);
      client.pollTransmit(0);
      expect(client.nextDeadline()).to.equal(500);
      client.handleTimeout(500);
      expect(client.closed!.error!.code).to.equal('HANDSHAKE_TIMEOUT');
    });
  });

  describe('messages and credit', () => {
    it('delivers messages in order, splitting large ones into frames', () => {
      const pair = new Pair({ maxFramePayloadBytes: 1024 }, { maxFramePayloadBytes: 1024 });
      const big = new Uint8Array(100_000).map((_, i) => i & 0xff);
      expect(pair.client.engine.trySend(0, bytes(10, 1))).to.equal(true);
      expect(pair.client.engine.trySend(0, big)).to.equal(true);
      expect(pair.client.engine.trySend(0, new Uint8Array(0))).to.equal(true);
      const got: Uint8Array[] = [];
      for (let i = 0; i < 1000 && got.length < 3; i++) {
        pair.pump();
        for (let m = pair.server.engine.read(0); m; m = pair.server.engine.read(0)) got.push(m);
      }
      expect(got.map((m) => m.length)).to.deep.equal([10, 100_000, 0]);
      expect(got[1]).to.deep.equal(big);
    });

    it('never holds more than the window while the application does not consume', () => {
      const pair = new Pair({}, { initialWindowBytes: 4096, maxWindowBytes: 4096 });
      for (let i = 0; i < 100; i++) pair.client.engine.trySend(0, bytes(100));
      pair.pump();
      const server = pair.server.engine;
      expect(server.heldBytes).to.be.at.most(4096);
      expect(server.heldBytes).to.be.greaterThan(4096 - 106 - 7);
      expect(pair.client.engine.stats(0).sendCredit).to.be.lessThan(107);
      // consume everything: credit flows and all messages arrive
      let count = 0;
      for (let round = 0; round < 100 && count < 100; round++) {
        while (server.read(0)) count++;
        pair.pump();
      }
      expect(count).to.equal(100);
    });

    it('fails with FLOW_CONTROL_ERROR when a peer sends beyond its credit', () => {
      const pair = new Pair({}, { initialWindowBytes: 1024, maxWindowBytes: 1024 });
      // Forge a DATA frame of 2000 bytes directly.
      const frame = new Uint8Array(6 + 2000);
      new DataView(frame.buffer).setUint32(0, 2000);
      frame[4] = 0;
      frame[5] = 1;
      pair.server.engine.receive(0, frame);
      expect(pair.server.engine.closed!.error!.code).to.equal('FLOW_CONTROL_ERROR');
    });

    it("refuses a message over the peer's max_message_size with MESSAGE_TOO_LARGE naming that limit", () => {
      const pair = new Pair({}, { maxMessageBytes: 4096 });
      const client = pair.client.engine;
      expect(client.trySend(0, bytes(4096))).to.equal(true);
      let error: unknown;
      try {
        client.trySend(0, bytes(4097));
      } catch (e) {
        error = e;
      }
      expect(error).to.include({
        code: 'MESSAGE_TOO_LARGE',
        message: "message of 4097 bytes exceeds the peer's maxMessageSize of 4096 bytes",
      });
      expect(client.state).to.equal('open');
    });

    it('applies back-pressure with a bounded send queue', () => {
      const pair = new Pair({ maxSendQueueBytes: 1000 }, { initialWindowBytes: 1024, maxWindowBytes: 1024 });
      const client = pair.client.engine;
      let accepted = 0;
      while (client.trySend(0, bytes(400))) accepted++;
      // Accepted while the queue (payload + 64 per message) is below its bound: 0, 464, 928 < 1000,
      // then 1392: a fourth is refused. The queue never exceeds its bound by more than one message.
      expect(accepted).to.equal(3);
      expect(client.sendQueueFull).to.equal(true);
      expect(client.stats().sendQueueBytes).to.equal(3 * 464);
      pair.pump();
      // Sent, but the queue keeps every message until the peer reports it consumed.
      expect(pair.eventsOf(pair.client, 'writable').length).to.equal(0);
      expect(client.trySend(0, bytes(400))).to.equal(false);
      for (let i = 0; i < 3; i++) {
        expect(pair.server.engine.read(0)).to.have.length(400); // one message fits the 1024-byte window
        pair.pump();
      }
      expect(pair.eventsOf(pair.client, 'writable').length).to.equal(1);
      expect(client.stats().sendQueueBytes).to.equal(0);
    });
  });

  describe('liveness', () => {
    it('sends heartbeats within the peer interval and measures RTT', () => {
      const pair = new Pair({ idleTimeoutMs: 3000 }, { idleTimeoutMs: 3000 });
      pair.advanceTo(20_000);
      const c = pair.client.engine.stats(pair.now);
      expect(c.heartbeatsSent).to.be.within(17, 22);
      expect(c.heartbeatsReceived).to.be.within(17, 22);
      expect(c.rttMs).to.equal(0);
      expect(pair.client.engine.state).to.equal('open');
    });

    it('detects a silent path within the idle timeout', () => {
      const pair = new Pair({ idleTimeoutMs: 3000 }, { idleTimeoutMs: 3000 });
      pair.advanceTo(5000);
      pair.linkUp = false;
      const cut = pair.now;
      pair.advanceTo(20_000);
      for (const side of [pair.client, pair.server]) {
        const closed = side.events.find((e) => e.type === 'closed');
        expect(closed && closed.type === 'closed' && closed.info.error?.code).to.equal('HEARTBEAT_TIMEOUT');
        const at = side.engine.stats(pair.now).lastReceivedAt!;
        expect(at).to.be.at.most(cut);
      }
    });

    it('does not fail while the receiving application stalls for 100 idle timeouts', () => {
      const pair = new Pair(
        { idleTimeoutMs: 1000 },
        { idleTimeoutMs: 1000, initialWindowBytes: 8192, maxWindowBytes: 8192 },
      );
      for (let i = 0; i < 1000; i++) pair.client.engine.trySend(0, bytes(1000));
      pair.advanceTo(100_000);
      expect(pair.client.engine.state).to.equal('open');
      expect(pair.server.engine.state).to.equal('open');
      expect(pair.server.engine.heldBytes).to.be.at.most(8192);
      expect(pair.eventsOf(pair.client, 'credit-stall').length).to.equal(1);
    });
  });

  describe('termination', () => {
    it('client close: every message delivered, both sides clean, accounting exact', () => {
      const pair = new Pair();
      const client = pair.client.engine;
      const server = pair.server.engine;
      for (let i = 0; i < 10; i++) client.trySend(0, bytes(10, i));
      server.trySend(0, bytes(5));
      client.close(0);
      pair.pump();
      expect(server.state).to.equal('peer-closed');
      let got = 0;
      while (server.read(0)) got++;
      expect(got).to.equal(10);
      server.trySend(0, bytes(5)); // a last response after CLOSE
      server.finish(0);
      pair.pump();
      expect(client.state).to.equal('close-acked');
      while (client.read(0));
      pair.pump();
      expect(client.state).to.equal('closed');
      expect(server.state).to.equal('closed');
      expect(client.closed!.clean).to.equal(true);
      expect(server.closed!.clean).to.equal(true);
      expect(client.closed!.delivery).to.include({ queued: 10, consumed: 10, notProcessedFrom: 11 });
      expect(server.closed!.delivery).to.include({ queued: 2, consumed: 2, notProcessedFrom: 3 });
    });

    it('server GOAWAY: keeps working, then force-closes at the grace deadline', () => {
      const pair = new Pair();
      pair.server.engine.goAway(0, { graceMs: 1000 });
      pair.pump();
      const goaway = pair.eventsOf(pair.client, 'goaway');
      expect(goaway.length).to.equal(1);
      pair.client.engine.trySend(pair.now, bytes(3));
      pair.pump();
      expect(pair.server.engine.read(pair.now)).to.have.length(3);
      pair.advanceTo(1000);
      expect(pair.server.engine.closed!.error!.code).to.equal('GOAWAY_GRACE_EXPIRED');
      const remote = pair.client.engine.closed!.error!;
      expect(remote.code).to.equal('GOAWAY_GRACE_EXPIRED');
      expect(remote).to.have.property('remote', true);
      expect(pair.client.engine.closed!.delivery).to.include({ consumed: 1, notProcessedFrom: 2 });
    });

    it('CLOSE and GOAWAY crossing is a clean close', () => {
      const pair = new Pair();
      pair.client.engine.trySend(0, bytes(1));
      pair.client.engine.close(0);
      pair.server.engine.goAway(0, { graceMs: 5000 });
      pair.pump();
      while (pair.server.engine.read(0));
      pair.server.engine.finish(0);
      pair.pump();
      expect(pair.client.engine.closed!.clean).to.equal(true);
      expect(pair.server.engine.closed!.clean).to.equal(true);
    });

    it('EOF before the termination handshake is UNEXPECTED_EOF', () => {
      const pair = new Pair();
      pair.server.engine.receiveEnd(0);
      expect(pair.server.engine.closed!.error!.code).to.equal('UNEXPECTED_EOF');
    });
  });
});
