import { expect } from 'chai';
import fc from 'fast-check';
import { UsageError } from '../../src/protocol/errors.js';
import { VirtualClock } from '../../src/testing/clock.js';
import type { DeliveryReport, EngineEvent, InboundMessage } from '../../src/protocol/types.js';
import {
  arbitraryFaultSchedule,
  arbitraryPathParams,
  describeFaultStep,
  faultPayload,
  runFaultSchedule,
  type FaultStep,
} from '../../src/testing/faults.js';
import {
  SimulatedNetwork,
  type SimAppContext,
  type SimApplication,
  type SimEngine,
  type SimulatedNetworkOptions,
} from '../../src/testing/simnet.js';
import { concatBytes as concat } from '../../src/testing/arbitraries.js';

const CLOSE_MARKER = 0xffffffff;

function frame(payload: Uint8Array, length = payload.length): Uint8Array {
  const out = new Uint8Array(4 + payload.length);
  new DataView(out.buffer).setUint32(0, length);
  out.set(payload, 4);
  return out;
}

const emptyReport: DeliveryReport = {
  queued: 0,
  consumed: 0,
  notProcessedFrom: 1,
  unknown: [],
  notProcessed: [],
};

/**
 * A stand-in engine with the real method signatures: messages travel as `u32 length + payload`
 * (length 0xFFFFFFFF = CLOSE); everything it receives and transmits is recorded.
 */
class FakeEngine implements SimEngine {
  /** Chunks received, with their arrival times. */
  rx: Uint8Array[] = [];
  rxAt: number[] = [];
  /** Chunks handed to the transport. */
  tx: Uint8Array[] = [];
  log: string[] = [];
  budgets: (number | undefined)[] = [];
  backlog: number[] = [];
  /** Bytes sent regardless of the budget (like control frames). */
  control: Uint8Array[] = [];
  /** Framed messages, limited by the budget. */
  data: Uint8Array[] = [];
  queuedBytes = 0;
  maxQueueBytes = Infinity;
  deadline: number | undefined;
  onTimeout: ((now: number) => void) | undefined;
  closeOnEof = false;
  closed = false;
  events: EngineEvent[] = [];
  inbox: Uint8Array[] = [];
  private wantWritable = false;
  private pending: Uint8Array = new Uint8Array(0);
  private takeSeq = 0;

  start(now: number): void {
    this.log.push(`start@${now}`);
  }
  receive(now: number, bytes: Uint8Array): void {
    this.rx.push(bytes);
    this.rxAt.push(now);
    this.pending = concat([this.pending, bytes]);
    while (this.pending.length >= 4) {
      const length = new DataView(this.pending.buffer, this.pending.byteOffset).getUint32(0);
      if (length === CLOSE_MARKER) {
        this.events.push({ type: 'peer-closed' });
        this.pending = this.pending.subarray(4);
        continue;
      }
      if (this.pending.length < 4 + length) break;
      if (this.inbox.length === 0) this.events.push({ type: 'readable' });
      this.inbox.push(this.pending.slice(4, 4 + length));
      this.pending = this.pending.subarray(4 + length);
    }
  }
  receiveEnd(now: number): void {
    this.log.push(`eof@${now}`);
    if (this.closeOnEof) this.emitClosed();
  }
  transportFailed(now: number, cause?: unknown): void {
    this.log.push(`failed@${now}:${(cause as { code?: string }).code}`);
    this.emitClosed();
  }
  handleTimeout(now: number): void {
    this.log.push(`timeout@${now}`);
    this.onTimeout?.(now);
  }
  nextDeadline(): number | undefined {
    return this.deadline;
  }
  pollTransmit(_now: number, maxDataBytes?: number): Uint8Array[] {
    this.budgets.push(maxDataBytes);
    const out = this.control.splice(0);
    let budget = maxDataBytes ?? Infinity;
    while (this.data.length > 0 && budget > 0) {
      const head = this.data[0];
      const n = Math.min(head.length, budget);
      out.push(head.subarray(0, n));
      if (n === head.length) this.data.shift();
      else this.data[0] = head.subarray(n);
      budget -= n;
      this.queuedBytes -= n;
    }
    if (this.wantWritable && this.queuedBytes < this.maxQueueBytes) {
      this.wantWritable = false;
      this.events.push({ type: 'writable' });
    }
    this.tx.push(...out);
    return out;
  }
  transmitBacklog(_now: number, bytes: number): void {
    this.backlog.push(bytes);
  }
  pollEvent(): EngineEvent | undefined {
    return this.events.shift();
  }
  trySend(_now: number, payload: Uint8Array): boolean {
    if (this.closed) throw new UsageError('CONNECTION_CLOSED', 'closed');
    if (this.queuedBytes >= this.maxQueueBytes) {
      this.wantWritable = true;
      return false;
    }
    this.data.push(frame(payload));
    this.queuedBytes += payload.length + 4;
    return true;
  }
  read(_now: number): Uint8Array | undefined {
    const m = this.inbox.shift();
    if (m) this.takeSeq++;
    return m;
  }
  take(_now: number): InboundMessage | undefined {
    const payload = this.inbox.shift();
    return payload && { seq: ++this.takeSeq, payload };
  }
  release(now: number, seq: number): void {
    this.log.push(`release ${seq}@${now}`);
  }
  close(now: number): void {
    this.log.push(`close@${now}`);
    this.data.push(frame(new Uint8Array(0), CLOSE_MARKER));
  }
  goAway(now: number, options: { graceMs: number }): void {
    this.log.push(`goAway ${options.graceMs}@${now}`);
  }
  finish(now: number): void {
    this.log.push(`finish@${now}`);
  }
  abort(now: number): void {
    this.log.push(`abort@${now}`);
    this.control.push(Uint8Array.of(0xee, 0xee)); // an "ERROR frame", flushed when closing
    this.emitClosed();
  }
  emitClosed(): void {
    if (this.closed) return;
    this.closed = true;
    this.events.push({
      type: 'closed',
      info: { clean: false, initiator: 'transport', delivery: emptyReport, unread: 0 },
    });
  }
  get rxBytes(): Uint8Array {
    return concat(this.rx);
  }
  get txBytes(): Uint8Array {
    return concat(this.tx);
  }
}

function setup(options: Partial<SimulatedNetworkOptions> = {}) {
  const client = new FakeEngine();
  const server = new FakeEngine();
  const net = new SimulatedNetwork({ client, server, ...options });
  net.start();
  return { net, client, server };
}

function bytes(n: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length: n }, (_, i) => (i * 7 + seed) & 0xff);
}

const payloads = (net: SimulatedNetwork, side: 'client' | 'server') =>
  net.side(side).delivered.map((m) => Array.from(m.payload));

describe('testing/SimulatedNetwork', () => {
  describe('path model', () => {
    it('delivers after the latency, not before', () => {
      const { net, server } = setup({ path: { latencyMs: 50, bandwidthBytesPerMs: Infinity } });
      net.send('client', bytes(10));
      net.advanceTo(49.999);
      expect(server.rx).to.have.length(0);
      net.advanceTo(50);
      expect(server.rxBytes).to.deep.equal(frame(bytes(10)));
      expect(server.rxAt.every((t) => t === 50)).to.equal(true);
      expect(net.server.delivered).to.deep.equal([{ seq: 1, payload: bytes(10), at: 50, consumedAt: 50 }]);
    });

    it('caps the bandwidth: 1000 bytes at 10 bytes/ms take 100 ms, plus latency', () => {
      const { net, server } = setup({ path: { latencyMs: 5, bandwidthBytesPerMs: 10 } });
      net.send('client', bytes(996));
      net.advanceTo(104.9);
      expect(server.rxBytes.length).to.be.greaterThan(0).and.lessThan(1000);
      expect(server.rxAt[0]).to.be.greaterThan(5);
      net.advanceTo(105 + 1e-6);
      expect(server.rxBytes).to.deep.equal(frame(bytes(996)));
      expect(server.rxAt.at(-1)).to.be.closeTo(105, 1e-6);
    });

    it('splits the stream into random segments, 1 byte included, deterministically per seed', () => {
      const sizes = (seed: number) => {
        const { net, server } = setup({ seed, path: { maxChunkBytes: 100, bandwidthBytesPerMs: Infinity } });
        net.send('client', bytes(5000));
        net.send('client', bytes(3));
        net.advanceBy(100);
        expect(server.rxBytes).to.deep.equal(concat([frame(bytes(5000)), frame(bytes(3))]));
        expect(payloads(net, 'server')).to.deep.equal([Array.from(bytes(5000)), Array.from(bytes(3))]);
        return server.rx.map((c) => c.length);
      };
      const a = sizes(7);
      expect(Math.max(...a)).to.be.at.most(100);
      expect(a).to.include(1);
      expect(new Set(a).size).to.be.greaterThan(10);
      expect(sizes(7)).to.deep.equal(a);
      expect(sizes(8)).to.not.deep.equal(a);
    });

    it('bounds the send buffer: pulls with the room as budget and reports the backlog', () => {
      const { net, client, server } = setup({ path: { sendBufferBytes: 1000, bandwidthBytesPerMs: 10 } });
      for (let i = 0; i < 20; i++) net.send('client', bytes(996, i));
      let maxBuffered = 0;
      for (let t = 0; t < 3000; t += 7) {
        net.advanceTo(t);
        maxBuffered = Math.max(maxBuffered, net.path('client').bufferedBytes);
      }
      expect(maxBuffered).to.equal(1000);
      expect(client.budgets.every((b) => b !== undefined && b >= 0 && b <= 1000)).to.equal(true);
      expect(client.backlog).to.include(1000);
      expect(client.backlog.at(-1)).to.equal(0);
      expect(net.server.delivered.map((m) => m.seq)).to.deep.equal(
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      expect(server.rxBytes).to.deep.equal(client.txBytes);
    });

    it('accepts control bytes beyond a full buffer', () => {
      const { net, client } = setup({ path: { sendBufferBytes: 100, bandwidthBytesPerMs: 1 } });
      net.send('client', bytes(500));
      expect(net.path('client').bufferedBytes).to.equal(100);
      client.control.push(bytes(30));
      client.deadline = 1; // any input drives the engine
      net.advanceBy(1);
      expect(net.path('client').bufferedBytes).to.be.within(100, 130);
      expect(client.budgets.at(-1)).to.equal(0);
    });

    it('partition holds bytes (no loss, no EOF, no reset) and delivers them in order after the heal', () => {
      const { net, client, server } = setup({
        path: { latencyMs: 10, bandwidthBytesPerMs: 100, sendBufferBytes: 500 },
      });
      net.send('client', bytes(10, 1));
      net.advanceBy(50);
      expect(net.server.delivered).to.have.length(1);
      net.partition();
      for (let i = 2; i <= 6; i++) net.send('client', bytes(300, i));
      net.send('server', bytes(20, 9));
      net.advanceBy(60_000);
      expect(net.server.delivered).to.have.length(1);
      expect(net.client.delivered).to.have.length(0);
      expect(net.path('client').bufferedBytes).to.equal(500); // full, not draining
      expect(client.budgets.at(-1)).to.equal(0);
      expect([...client.log, ...server.log].filter((l) => /eof|failed/.test(l))).to.deep.equal([]);
      const healedAt = net.now;
      net.heal();
      net.advanceBy(1000);
      expect(net.server.delivered.map((m) => m.payload[0])).to.deep.equal([
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
      ]);
      expect(net.server.delivered[1].at).to.be.at.least(healedAt + 10);
      expect(payloads(net, 'client')).to.deep.equal([Array.from(bytes(20, 9))]);
      expect(server.rxBytes).to.deep.equal(client.txBytes);
    });

    it('holds segments caught in flight by a partition and resends them one latency after the heal', () => {
      const { net, server } = setup({ path: { latencyMs: 100, bandwidthBytesPerMs: Infinity } });
      net.send('client', bytes(10));
      net.advanceTo(50);
      net.partition('client-to-server');
      net.advanceTo(1000);
      expect(server.rx).to.have.length(0);
      net.heal('client-to-server');
      net.advanceTo(1099);
      expect(server.rx).to.have.length(0);
      net.advanceTo(1100);
      expect(server.rxBytes).to.deep.equal(frame(bytes(10)));
    });

    it('a one-way partition blocks one direction only', () => {
      const { net } = setup({ path: { latencyMs: 10 } });
      net.partition('server-to-client');
      net.send('client', bytes(5, 1));
      net.send('server', bytes(5, 2));
      net.advanceBy(1000);
      expect(payloads(net, 'server')).to.deep.equal([Array.from(bytes(5, 1))]);
      expect(net.client.delivered).to.have.length(0);
      expect(net.path('server').partitioned).to.equal(true);
      net.heal('server-to-client');
      net.advanceBy(1000);
      expect(payloads(net, 'client')).to.deep.equal([Array.from(bytes(5, 2))]);
    });

    it('applies latency and bandwidth changes to bytes sent afterwards, keeping order', () => {
      const { net, server } = setup({ path: { latencyMs: 200, bandwidthBytesPerMs: Infinity } });
      net.send('client', bytes(10, 1));
      net.advanceBy(0); // the first message leaves the buffer with latency 200
      net.setPath('client', { latencyMs: 1 });
      net.send('client', bytes(10, 2));
      net.advanceTo(199);
      expect(server.rx).to.have.length(0); // the fast bytes wait behind the slow ones
      net.advanceTo(200);
      expect(net.server.delivered.map((m) => m.payload[0])).to.deep.equal([1, 2]);
      net.setPath('both', { bandwidthBytesPerMs: 1 });
      net.send('client', bytes(96, 3));
      net.advanceTo(299);
      expect(net.server.delivered).to.have.length(2);
      net.advanceTo(301 + 1e-6);
      expect(net.server.delivered).to.have.length(3);
    });

    it('rejects invalid path parameters', () => {
      expect(() => setup({ path: { bandwidthBytesPerMs: 0 } })).to.throw(RangeError);
      expect(() => setup({ path: { latencyMs: -1 } })).to.throw(RangeError);
      const { net } = setup();
      expect(() => net.setPath('client', { maxChunkBytes: 0.5 })).to.throw(RangeError);
    });
  });

  describe('crashes', () => {
    it("'none': nothing more from or to the crashed side, no FIN or reset, the peer's bytes pile up", () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: 1 } });
      net.send('client', bytes(100));
      net.advanceBy(20);
      const partial = server.rx.length;
      net.crash('client');
      const clientLog = client.log.length;
      net.send('server', bytes(50));
      net.advanceBy(10_000);
      expect(server.rxBytes.length).to.be.lessThan(104);
      expect(server.rx.length).to.be.at.most(partial + 2); // at most what was on the wire
      expect(client.rx).to.have.length(0);
      expect(client.log).to.have.length(clientLog);
      expect(server.log.filter((l) => /eof|failed/.test(l))).to.deep.equal([]);
      expect(net.path('server').bufferedBytes).to.equal(54);
      expect(net.send('client', bytes(1))).to.equal('rejected');
      expect(net.client.crashed).to.deep.equal({ at: 20, mode: 'none' });
      net.heal(); // no partition to heal: nothing changes
      net.advanceBy(1000);
      expect(client.rx).to.have.length(0);
    });

    it("'fin': the buffered bytes still go out, then EOF; later bytes from the peer are answered with a reset", () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: 1 } });
      net.send('client', bytes(96));
      net.advanceBy(20);
      net.crash('client', { notifyPeer: 'fin' });
      net.advanceBy(1000);
      expect(server.rxBytes).to.deep.equal(frame(bytes(96)));
      expect(server.log).to.include('eof@110');
      expect(net.server.eofAt).to.equal(110);
      net.send('server', bytes(5));
      net.advanceBy(1000);
      expect(client.rx).to.have.length(0);
      // 9 bytes at 1 byte/ms leave at 1029, reach the dead client at 1039; its RST arrives at 1049.
      expect(server.log.at(-1)).to.equal('failed@1049:ECONNRESET');
      expect(net.server.resetAt).to.equal(1049);
      expect(net.server.closedInfo?.initiator).to.equal('transport');
    });

    it("'reset': unsent bytes are dropped and the peer gets transportFailed after what was in flight", () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: 1 } });
      net.send('client', bytes(96));
      net.advanceBy(20);
      net.crash('client', { notifyPeer: 'reset' });
      expect(net.path('client').bufferedBytes).to.equal(0);
      net.advanceBy(1000);
      expect(server.rxBytes.length).to.be.within(1, 20);
      expect(server.log.at(-1)).to.equal('failed@30:ECONNRESET');
      expect(client.rx).to.have.length(0);
      expect(client.log).to.deep.equal(['start@0']);
    });

    it('ignores steps on a crashed side and records them', () => {
      const { net, client } = setup();
      net.crash('client', { notifyPeer: 'fin' });
      net.close();
      net.crash('client', { notifyPeer: 'reset' });
      expect(client.log).to.deep.equal(['start@0']);
      expect(net.client.rejected.map((r) => r.action)).to.deep.equal(['close']);
      expect(net.client.crashed?.mode).to.equal('fin');
    });
  });

  describe('engine driving', () => {
    it('arms one timer at nextDeadline() and calls handleTimeout then', () => {
      const { net, client } = setup();
      client.deadline = 100;
      net.send('client', bytes(1)); // any input re-arms
      client.onTimeout = (now) => (client.deadline = now + 50);
      net.advanceTo(260);
      expect(client.log.filter((l) => l.startsWith('timeout'))).to.deep.equal([
        'timeout@100',
        'timeout@150',
        'timeout@200',
        'timeout@250',
      ]);
      client.deadline = undefined;
      client.onTimeout = undefined;
      net.advanceTo(1000);
      expect(client.log.at(-1)).to.equal('timeout@300');
      expect(net.clock.pendingTimers).to.equal(0);
    });

    it('drive() runs any engine call and drives the engine afterwards', () => {
      const { net, client } = setup();
      net.drive('client', 'custom', (engine, now) => {
        (engine as FakeEngine).control.push(bytes(5));
        (engine as FakeEngine).log.push(`custom@${now}`);
      });
      expect(net.path('client').bytesWritten).to.equal(5);
      expect(client.log.at(-1)).to.equal('custom@0');
      expect(net.trace.at(-2)).to.match(/client +custom$/);
    });

    it('stops an engine whose deadline never moves past now (runaway guard)', () => {
      const { net, client } = setup({ clock: new VirtualClock({ maxTimersPerInstant: 50 }) });
      client.deadline = 5;
      net.send('client', bytes(1));
      expect(() => net.advanceBy(10)).to.throw(/more than 50 timers fired at t=5/);
    });

    it('end-transport: FIN reaches the peer after every byte written before it', () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: 2 } });
      net.send('client', bytes(196));
      client.deadline = 0;
      client.onTimeout = () => {
        client.deadline = undefined;
        client.control.push(bytes(7)); // written when the event is handled
        client.events.push({ type: 'end-transport' });
      };
      net.advanceBy(1000);
      expect(server.rxBytes).to.deep.equal(concat([frame(bytes(196)), bytes(7)]));
      const lastByteAt = server.rxAt.at(-1)!;
      expect(net.server.eofAt).to.equal(lastByteAt);
      expect(net.path('client').finSent).to.equal(true);
      // The client can still receive after its half-close.
      net.send('server', bytes(3));
      net.advanceBy(100);
      expect(net.client.delivered).to.have.length(1);
    });

    it('refuses bytes an engine produces after end-transport', () => {
      const { net, client } = setup();
      client.events.push({ type: 'end-transport' });
      net.send('client', bytes(1));
      expect(() => net.send('client', bytes(1))).to.throw(/after end-transport/);
    });

    it('closed: flushes, then FIN; data reaching the closed socket is answered with a reset', () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: Infinity } });
      net.send('server', bytes(1000)); // in flight towards the client when it closes
      net.abort('client');
      expect(net.client.closedAt).to.equal(0);
      net.advanceBy(1000);
      expect(server.rxBytes).to.deep.equal(Uint8Array.of(0xee, 0xee));
      expect(net.server.eofAt).to.equal(10);
      expect(client.rx).to.have.length(0);
      expect(net.server.resetAt).to.be.greaterThan(10);
      expect(server.log.at(-1)).to.match(/^failed@[\d.]+:ECONNRESET$/);
      expect(net.done).to.equal(true);
    });

    it('delivers EOF to the peer when an engine closes on EOF (a clean close in both directions)', () => {
      const { net, client, server } = setup({ path: { latencyMs: 10, bandwidthBytesPerMs: Infinity } });
      server.closeOnEof = true;
      client.events.push({ type: 'end-transport' });
      net.send('client', bytes(4));
      net.advanceBy(100);
      expect(net.server.closedAt).to.equal(10);
      expect(net.client.eofAt).to.equal(20);
      expect(net.server.resetAt).to.equal(undefined);
      expect(net.client.resetAt).to.equal(undefined);
    });
  });

  describe('application', () => {
    it('queues in the outbox when trySend refuses and retries on writable, in order', () => {
      const { net, client } = setup();
      expect(net.send('client', bytes(8, 1))).to.equal('sent');
      client.maxQueueBytes = 0;
      expect(net.send('client', bytes(8, 2))).to.equal('queued');
      expect(net.send('client', bytes(8, 3))).to.equal('queued');
      expect(net.client.outbox).to.have.length(2);
      client.maxQueueBytes = Infinity;
      client.deadline = 10; // an input at t=10: the engine reports 'writable'
      client.onTimeout = () => (client.deadline = undefined);
      net.send('client', bytes(8, 4)); // behind the outbox, whatever trySend would say
      net.advanceBy(1000);
      expect(net.client.outbox).to.have.length(0);
      expect(net.client.sent.map((p) => p[0])).to.deep.equal([1, 2, 3, 4]);
      expect(net.server.delivered.map((m) => [m.seq, m.payload[0]])).to.deep.equal([
        [1, 1],
        [2, 2],
        [3, 3],
        [4, 4],
      ]);
    });

    it('throws when the outbox exceeds its cap', () => {
      const { net, client } = setup({ maxOutboxBytes: 20 });
      client.maxQueueBytes = 0;
      net.send('client', bytes(8));
      net.send('client', bytes(8));
      expect(() => net.send('client', bytes(8))).to.throw(/outbox exceeds 20 bytes/);
    });

    it('records sends the engine rejects', () => {
      const { net, client } = setup();
      client.closed = true;
      expect(net.send('client', bytes(3))).to.equal('rejected');
      expect(net.client.rejected).to.have.length(1);
      expect(net.client.rejected[0].error).to.be.instanceOf(UsageError);
      expect(net.client.rejected[0].payload).to.deep.equal(bytes(3));
    });

    it('a paused consumer reads nothing until resumed', () => {
      const { net } = setup();
      net.pauseConsumer('server');
      for (let i = 1; i <= 3; i++) net.send('client', bytes(4, i));
      net.advanceBy(1000);
      expect(net.server.delivered).to.have.length(0);
      expect(net.server.consumerPaused).to.equal(true);
      net.resumeConsumer('server');
      expect(net.server.delivered.map((m) => [m.seq, m.payload[0], m.at])).to.deep.equal([
        [1, 1, 1000],
        [2, 2, 1000],
        [3, 3, 1000],
      ]);
    });

    it('runs a custom application (take/release recorded)', () => {
      const held: number[] = [];
      let saved: SimAppContext | undefined;
      const app: SimApplication = (event, ctx) => {
        saved = ctx;
        if (event.type === 'readable') for (let m = ctx.take(); m; m = ctx.take()) held.push(m.seq);
      };
      const { net, server } = setup({ applications: { server: app } });
      net.send('client', bytes(1));
      net.send('client', bytes(2));
      net.advanceBy(100);
      expect(held).to.deep.equal([1, 2]);
      expect(net.server.delivered.map((m) => m.consumedAt)).to.deep.equal([undefined, undefined]);
      saved!.release(2);
      expect(server.log.at(-1)).to.equal('release 2@100');
      expect(net.server.delivered.map((m) => m.consumedAt)).to.deep.equal([undefined, 100]);
    });

    it('finishes the server automatically after peer-closed, once everything is consumed and sent', () => {
      const { net, server } = setup();
      net.pauseConsumer('server');
      net.send('client', bytes(4));
      net.close();
      net.advanceBy(1000);
      expect(net.server.events.map((e) => e.event.type)).to.deep.equal(['readable', 'peer-closed']);
      expect(server.log.some((l) => l.startsWith('finish'))).to.equal(false);
      net.advanceBy(500);
      net.resumeConsumer('server');
      expect(server.log.at(-1)).to.equal('finish@1500');
      expect(net.server.finishedAt).to.equal(1500);
    });

    it('does not finish automatically with autoFinish: false', () => {
      const { net, server } = setup({ autoFinish: false });
      net.close();
      net.advanceBy(1000);
      expect(net.server.events.map((e) => e.event.type)).to.deep.equal(['peer-closed']);
      expect(server.log.some((l) => l.startsWith('finish'))).to.equal(false);
      net.finish();
      expect(server.log.at(-1)).to.equal('finish@1000');
    });

    it('passes goAway to the server engine', () => {
      const { net, server } = setup();
      net.goAway({ graceMs: 500 });
      expect(server.log.at(-1)).to.equal('goAway 500@0');
    });
  });

  describe('trace and determinism', () => {
    const scenario = (seed: number) => {
      const { net } = setup({ seed, path: { latencyMs: 3, bandwidthBytesPerMs: 50, maxChunkBytes: 64 } });
      net.send('client', bytes(300));
      net.send('server', bytes(200));
      net.advanceBy(5);
      net.partition('client-to-server');
      net.advanceBy(20);
      net.heal();
      net.advanceBy(100);
      return net;
    };

    it('writes a readable trace', () => {
      const net = scenario(1);
      const text = net.formatTrace();
      expect(text).to.match(/^ +0\.000 client +app send 300 B: sent$/m);
      expect(text).to.match(/^ +5\.000 \* +partition client-to-server$/m);
      expect(text).to.match(/server +rx \d+ B$/m);
      expect(text).to.match(/server +event readable$/m);
      expect(net.formatTrace(2).split('\n')).to.have.length(3); // "… N earlier lines" + 2
    });

    it('is deterministic for a seed', () => {
      expect(scenario(5).trace).to.deep.equal(scenario(5).trace);
      expect(scenario(5).trace).to.not.deep.equal(scenario(6).trace);
    });

    it('keeps only the most recent trace lines', () => {
      const { net } = setup({ maxTraceLines: 10 });
      for (let i = 0; i < 100; i++) net.note(`line ${i}`);
      expect(net.trace.length).to.be.at.most(20);
      expect(net.trace.at(-1)).to.match(/line 99$/);
      expect(net.formatTrace()).to.match(/^… \d+ earlier lines/);
    });
  });

  describe('fault schedules', () => {
    it('describes steps and builds identifiable payloads', () => {
      expect(describeFaultStep({ kind: 'send', side: 'server', bytes: 3 })).to.equal(
        'send side=server bytes=3',
      );
      expect(describeFaultStep({ kind: 'close' })).to.equal('close');
      expect(Array.from(faultPayload('server', 258, 7))).to.deep.equal([1, 0, 0, 1, 2, 84, 85]);
      expect(faultPayload('client', 1, 0)).to.have.length(0);
    });

    it('keeps every byte stream an in-order prefix under any fault schedule, and complete without crashes', () => {
      fc.assert(
        fc.property(
          arbitraryFaultSchedule({ maxSteps: 25, maxAdvanceMs: 2000 }),
          arbitraryPathParams({ maxLatencyMs: 50, maxChunkBytes: 512, bandwidthBytesPerMs: [5, 1000] }),
          fc.integer(),
          (steps: FaultStep[], path, seed) => {
            const { net, client, server } = setup({ seed, path });
            try {
              runFaultSchedule(net, steps);
              const prefix = (rx: Uint8Array, tx: Uint8Array) =>
                rx.length <= tx.length && rx.every((b, i) => b === tx[i]);
              expect(prefix(server.rxBytes, client.txBytes)).to.equal(true);
              expect(prefix(client.rxBytes, server.txBytes)).to.equal(true);
              if (steps.every((s) => s.kind !== 'crash')) {
                net.heal();
                net.resumeConsumer('client');
                net.resumeConsumer('server');
                net.advanceBy(600_000);
                expect(server.rxBytes).to.deep.equal(client.txBytes);
                expect(client.rxBytes).to.deep.equal(server.txBytes);
                for (const side of ['client', 'server'] as const) {
                  const peer = side === 'client' ? 'server' : 'client';
                  expect(net.side(side).delivered.map((m) => m.payload)).to.deep.equal(net.side(peer).sent);
                  expect(net.side(side).eofAt).to.equal(undefined);
                  expect(net.side(side).resetAt).to.equal(undefined);
                }
              }
            } catch (e) {
              throw new Error(`${String(e)}\n${net.formatTrace(60)}`, { cause: e });
            }
          },
        ),
        { numRuns: 150 },
      );
    });
  });
});
