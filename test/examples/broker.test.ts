import { expect } from 'chai';
import { setTimeout as sleep } from 'node:timers/promises';
import { Broker } from '../../examples/broker/broker.js';
import type { BrokerEvents } from '../../examples/broker/broker.js';
import { MqClient, PublishError } from '../../examples/mq-client/mq-client.js';
import type { Delivery } from '../../examples/mq-client/mq-client.js';
import { FaultProxy } from '../../src/testing/fault-proxy.js';
import { report } from '../figures.js';
import { collect, waitUntil } from './helpers.js';

const HOST = '127.0.0.1';
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (delivery: Delivery): string => decoder.decode(delivery.body);

describe('examples/broker', function () {
  this.timeout(15_000);
  const cleanup: (() => Promise<unknown>)[] = [];
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
  });
  function track<T extends { close(): Promise<unknown> }>(thing: T): T {
    cleanup.push(() => thing.close());
    return thing;
  }

  it('confirms publishes and delivers them in order, at most `prefetch` unacknowledged', async () => {
    const broker = track(new Broker());
    const { port } = await broker.listen(0, HOST);
    const publisher = track(new MqClient({ host: HOST, port }));
    const consumer = track(new MqClient({ host: HOST, port }));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => publisher.publish('jobs', encoder.encode(`m${i}`))),
    );
    const received = collect(consumer, 'jobs', { prefetch: 5, ack: false });
    await waitUntil(() => received.length === 5, '5 deliveries');
    await sleep(100);
    expect(received.map(text)).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4']);
    expect(broker.stats().queues[0]).to.include({ ready: 15, unacked: 5 });
    for (const delivery of received) delivery.ack();
    await waitUntil(() => received.length === 10, '5 more after the acks');
  });

  it('rejects publishes to a full queue with QUEUE_FULL (reject-publish), or drops the oldest (drop-head)', async () => {
    const strict = track(new Broker({ maxQueueLength: 3 }));
    const lenient = track(new Broker({ maxQueueLength: 3, overflow: 'drop-head' }));
    const strictClient = track(new MqClient({ host: HOST, port: (await strict.listen(0, HOST)).port }));
    const lenientClient = track(new MqClient({ host: HOST, port: (await lenient.listen(0, HOST)).port }));
    const outcomes = await Promise.allSettled(
      [1, 2, 3, 4, 5].map((i) => strictClient.publish('q', encoder.encode(`${i}`))),
    );
    expect(outcomes.map((o) => o.status)).to.deep.equal([
      'fulfilled',
      'fulfilled',
      'fulfilled',
      'rejected',
      'rejected',
    ]);
    const error = (outcomes[4] as PromiseRejectedResult).reason as PublishError;
    expect(error).to.be.instanceOf(PublishError);
    expect(error.code).to.equal('QUEUE_FULL');
    await Promise.all([1, 2, 3, 4, 5].map((i) => lenientClient.publish('q', encoder.encode(`${i}`))));
    expect(lenient.stats()).to.include({ dropped: 2 });
    expect(lenient.snapshot().queues[0]!.messages.map((m) => decoder.decode(m.body))).to.deep.equal([
      '3',
      '4',
      '5',
    ]);
  });

  it("redelivers a consumer's unacknowledged messages once heartbeats detect its silent path", async () => {
    const broker = track(new Broker({ server: { idleTimeout: 500, clientIdleTimeoutRange: [100, 60_000] } }));
    const { port } = await broker.listen(0, HOST);
    const proxy = track(new FaultProxy({ target: { host: HOST, port } }));
    const viaProxy = await proxy.listen();
    const disconnects: BrokerEvents['disconnect'][0][] = [];
    broker.on('disconnect', (event) => disconnects.push(event));

    const publisher = track(new MqClient({ host: HOST, port }));
    await Promise.all(
      Array.from({ length: 10 }, (_, i) => publisher.publish('jobs', encoder.encode(`m${i}`))),
    );
    // The first consumer takes 5 messages and never acks them.
    const doomed = track(new MqClient({ ...viaProxy, idleTimeout: 500, handshakeTimeout: 1000 }));
    const held = collect(doomed, 'jobs', { prefetch: 5, ack: false });
    await waitUntil(() => held.length === 5, 'the first consumer holding 5');

    proxy.blackhole();
    const silentSince = performance.now();
    await waitUntil(() => disconnects.length > 0, 'the broker to notice', 3000);
    const detectedAfter = performance.now() - silentSince;
    expect(disconnects[0]).to.include({ clean: false, requeued: 5 });
    expect(disconnects[0]!.error?.code).to.equal('HEARTBEAT_TIMEOUT');
    // The deadline runs from the last byte received: up to one heartbeat period (~1/3) before the silence.
    expect(detectedAfter).to.be.within(250, 1500);

    const rescuer = track(new MqClient({ host: HOST, port }));
    const received = collect(rescuer, 'jobs');
    await waitUntil(() => received.length === 10, 'all 10 at the second consumer');
    expect(received.map(text).sort()).to.deep.equal(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    expect(received.filter((d) => d.redelivered).map(text)).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4']);
  });

  it('loses nothing across a restart with a grace period, under load (counted)', async () => {
    const total = 1500;
    let broker = new Broker();
    const { port } = await broker.listen(0, HOST);
    cleanup.push(() => broker.close({ grace: 100 }));
    const backoff = { minDelay: 20, maxDelay: 200 };
    const publisher = track(new MqClient({ host: HOST, port, resendUnconfirmed: true, ...backoff }));
    const consumer = track(new MqClient({ host: HOST, port, ...backoff }));
    const received = collect(consumer, 'orders', { prefetch: 50 });

    let confirmed = 0;
    const publishing = (async () => {
      for (let i = 0; i < total; i++) {
        void publisher.publish('orders', encoder.encode(`order ${i}`)).then(() => confirmed++);
        if (i % 25 === 24) await sleep(5); // about 5 000 messages/s at most
      }
    })();

    await waitUntil(() => received.length >= total / 4, 'a quarter consumed');
    const snapshot = await broker.close({ grace: 2000 }); // GOAWAY; clients drain and reconnect
    broker = new Broker({ restore: snapshot });
    await broker.listen(port, HOST);

    await publishing;
    await waitUntil(() => confirmed === total, 'every publish confirmed', 10_000);
    const unique = () => new Set(received.map(text)).size;
    await waitUntil(() => unique() === total, 'every message consumed', 10_000);
    expect(unique()).to.equal(total);
    expect(broker.stats().queues.every((q) => q.ready === 0)).to.equal(true);
    const handedOver = snapshot.queues.reduce((n, q) => n + q.messages.length, 0);
    report(
      `restart: ${total} published and consumed, ${handedOver} handed over, ` +
        `${publisher.stats().resent} resent, ${received.length - total} duplicates, ` +
        `${received.filter((d) => d.redelivered).length} redelivered`,
    );
  });

  it('resends unconfirmed publishes after a reconnect when asked, and reports them otherwise', async () => {
    const broker = track(new Broker({ server: { idleTimeout: 500, clientIdleTimeoutRange: [100, 60_000] } }));
    const { port } = await broker.listen(0, HOST);
    const proxy = track(new FaultProxy({ target: { host: HOST, port } }));
    const viaProxy = await proxy.listen();
    const options = { ...viaProxy, idleTimeout: 500, handshakeTimeout: 500, minDelay: 20, maxDelay: 100 };
    const resending = track(new MqClient({ ...options, resendUnconfirmed: true }));
    const plain = track(new MqClient(options));
    await Promise.all([resending.connected(), plain.connected()]);

    proxy.blackhole('client-to-server'); // the publishes vanish on the way
    const resent = resending.publish('q', encoder.encode('resent'));
    const lost = plain.publish('q', encoder.encode('lost')).catch((error: unknown) => error);
    const error = (await lost) as PublishError;
    expect(error.code).to.equal('CONNECTION_LOST');
    // The broker's ERROR HEARTBEAT_TIMEOUT still got through (server-to-client is open): it
    // reported how many messages it received, so heartwire knows this one never arrived.
    expect(error.notProcessed).to.equal(true);
    proxy.heal();
    await resent;
    expect(resending.stats().resent).to.equal(1);
    expect(broker.snapshot().queues[0]!.messages.map((m) => decoder.decode(m.body))).to.deep.equal([
      'resent',
    ]);
  });
});
