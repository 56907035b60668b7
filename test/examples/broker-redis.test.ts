import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Broker } from '../../examples/broker/broker.js';
import { RedisQueueStore } from '../../examples/broker/redis-store.js';
import type { StoredMessage } from '../../examples/broker/store.js';
import { MqClient } from '../../examples/mq-client/mq-client.js';
import type { Delivery } from '../../examples/mq-client/mq-client.js';
import { report } from '../figures.js';
import { collect, waitUntil } from './helpers.js';
import { spawnWithOutput, startTsx } from '../helpers/child.js';
import type { OutputChild } from '../helpers/child.js';

const HOST = '127.0.0.1';
const encoder = new TextEncoder();
const decoder = new TextDecoder();
const text = (delivery: Delivery): string => decoder.decode(delivery.body);
const MAIN = fileURLToPath(new URL('../../examples/broker/main.ts', import.meta.url));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, HOST, () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

describe('examples/broker on Redis Streams', function () {
  this.timeout(30_000);
  let redisServer: OutputChild | undefined;
  let url = '';
  const cleanup: (() => Promise<unknown>)[] = [];

  before(async function () {
    if (spawnSync('redis-server', ['--version']).status !== 0) {
      console.log(
        '      [skipped] redis-server not found: `apt-get install redis-server` to run these tests',
      );
      this.skip();
    }
    const port = await freePort();
    redisServer = spawnWithOutput('redis-server', [
      '--port',
      String(port),
      '--bind',
      HOST,
      '--save',
      '',
      '--appendonly',
      'no',
    ]);
    await redisServer.waitFor(/Ready to accept connections/, 10_000, { in: 'output' });
    url = `redis://${HOST}:${port}`;
  });
  after(async () => {
    if (redisServer !== undefined) await redisServer.stop('SIGTERM');
  });
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await step().catch(() => {});
  });
  function track<T extends { close(): Promise<unknown> }>(thing: T): T {
    cleanup.push(() => thing.close());
    return thing;
  }

  it('shares a queue between brokers: publish on one, consume on another, requeue when a consumer leaves', async () => {
    const stores = [1, 2].map(
      () => new RedisQueueStore({ redis: url, prefix: 'shared:', leaseTimeout: 1000 }),
    );
    const [a, b] = stores.map((store) => track(new Broker({ store })));
    const portA = (await a!.listen(0, HOST)).port;
    const portB = (await b!.listen(0, HOST)).port;
    const publisher = track(new MqClient({ host: HOST, port: portA }));
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => publisher.publish('jobs', encoder.encode(`m${i}`))),
    );

    // A consumer on broker B takes 5 and leaves without acking: they go back to the stream.
    const leaving = new MqClient({ host: HOST, port: portB });
    const held = collect(leaving, 'jobs', { prefetch: 5, ack: false });
    await waitUntil(() => held.length === 5, '5 deliveries on broker B');
    await sleep(100);
    expect(held.length).to.equal(5); // prefetch holds across brokers
    expect(held.map(text)).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4']);
    await leaving.close();

    const consumer = track(new MqClient({ host: HOST, port: portA }));
    const received = collect(consumer, 'jobs', { prefetch: 8 });
    await waitUntil(() => received.length === 20, 'all 20 on broker A');
    expect(received.map(text).sort()).to.deep.equal(Array.from({ length: 20 }, (_, i) => `m${i}`).sort());
    expect(
      received
        .filter((d) => d.redelivered)
        .map(text)
        .sort(),
    ).to.deep.equal(['m0', 'm1', 'm2', 'm3', 'm4']);
    // Acked entries are deleted: the stream is empty.
    await waitUntil(() => a!.stats().acked === 20, 'the acks');
    const redis = stores[0]!.redis;
    let length = -1;
    for (let i = 0; i < 100 && length !== 0; i++, await sleep(20)) length = await redis.xlen('shared:jobs');
    expect(length).to.equal(0);
    // A broker that closes leaves the consumer group (it holds nothing any more).
    const consumersBefore = (await stores[1]!.redis.xinfo(
      'CONSUMERS',
      'shared:jobs',
      'brokers',
    )) as unknown[];
    await a!.close({ grace: 100 });
    const consumersAfter = (await stores[1]!.redis.xinfo('CONSUMERS', 'shared:jobs', 'brokers')) as unknown[];
    expect(consumersAfter.length).to.equal(consumersBefore.length - 1);
  });

  it("gives a dead broker's unacknowledged messages to another one after its lease (XAUTOCLAIM)", async () => {
    const leaseTimeout = 800;
    const options = { redis: url, prefix: 'lease:', leaseTimeout };
    const dying = new RedisQueueStore(options);
    const a = new Broker({ store: dying });
    const b = track(new Broker({ store: new RedisQueueStore(options) }));
    const portA = (await a.listen(0, HOST)).port;
    const portB = (await b.listen(0, HOST)).port;
    const publisher = track(new MqClient({ host: HOST, port: portB }));
    await Promise.all(Array.from({ length: 10 }, (_, i) => publisher.publish('q', encoder.encode(`m${i}`))));
    const doomed = new MqClient({ host: HOST, port: portA });
    const held = collect(doomed, 'q', { prefetch: 4, ack: false });
    await waitUntil(() => held.length === 4, '4 held through broker A');
    const consumer = track(new MqClient({ host: HOST, port: portB }));
    const received = collect(consumer, 'q', { prefetch: 100 });
    await waitUntil(() => received.length === 6, 'the other 6 through broker B');

    // Broker A "dies": its Redis connections go, without giving anything back; its client is cut.
    const diedAt = performance.now();
    dying.redis.disconnect();
    (dying as unknown as { reader: { disconnect(): void } }).reader.disconnect();
    await dying.close();
    for (const conn of a.server.connections) conn.abort();
    await doomed.close();
    await a.server.close({ grace: 0 });

    await waitUntil(() => received.length === 10, "broker A's 4 through broker B", 5000);
    const after = performance.now() - diedAt;
    expect(after).to.be.above(leaseTimeout * 0.9);
    expect(received.slice(6).every((d) => d.redelivered)).to.equal(true);
    expect(received.map(text).sort()).to.deep.equal(Array.from({ length: 10 }, (_, i) => `m${i}`).sort());
    report(
      `lease: a dead broker's 4 unacked messages redelivered by another after ${Math.round(after)} ms (leaseTimeout ${leaseTimeout})`,
    );
  });

  it('gives back what it fetched for consumers that left meanwhile, instead of holding it (no lease expiry)', async () => {
    // The rolling demo lost a message this way: a broker's last consumer moved to another broker
    // while its XREADGROUP was blocked; the entry it then returned stayed in the broker's buffer,
    // its lease renewed, with no local consumer to take it and out of reach of the others.
    const leaseTimeout = 500;
    const options = { redis: url, prefix: 'giveback:', leaseTimeout, blockMs: 10_000 };
    // Named connections, to see in CLIENT LIST when the reader of "left" is blocked.
    const redis = { host: HOST, port: Number(new URL(url).port), connectionName: 'left' };
    const left = track(new RedisQueueStore({ ...options, redis, consumer: 'left' }));
    const other = track(new RedisQueueStore({ ...options, consumer: 'other' }));
    left.attach({ ready: () => {}, error: () => {} }); // a broker whose consumers are gone takes nothing
    const taken: StoredMessage[] = [];
    other.attach({
      ready: (queue) => {
        for (let message = other.take(queue); message !== undefined; message = other.take(queue))
          taken.push(message);
      },
      error: () => {},
    });
    expect(await other.publish('q', encoder.encode('first'))).to.deep.equal({ ok: true, dropped: 0 });
    // Broker "left" has a consumer with room: its reader fetches the first entry, then blocks.
    left.demand('q', 10);
    await waitUntil(() => left.ready('q') === 1, 'the first entry fetched by "left"');
    const blocked = async (): Promise<boolean> =>
      /name=left [^\n]*flags=b [^\n]*cmd=xreadgroup/.test(String(await other.redis.client('LIST')));
    for (let i = 0; i < 500 && !(await blocked()); i++) await sleep(10);
    expect(await blocked(), 'the reader of "left" blocked in XREADGROUP').to.equal(true);
    // Its consumers leave (moved to another broker): demand 0, while the read is under way.
    left.demand('q', 0);
    await other.publish('q', encoder.encode('second')); // answers the blocked read of "left"
    other.demand('q', 10);
    await waitUntil(
      () => taken.length === 2,
      'both entries reach the consumers of "other"',
      leaseTimeout * 6,
    );
    expect(taken.map((m) => decoder.decode(m.body)).sort()).to.deep.equal(['first', 'second']);
    expect(
      taken.map((m) => m.redelivered),
      'never delivered: not flagged',
    ).to.deep.equal([false, false]);
    expect(left.ready('q')).to.equal(0);
  });

  it('fetches no more than each queue wants when reading several queues at once (nothing to give back)', async () => {
    const store = track(new RedisQueueStore({ redis: url, prefix: 'counts:' }));
    store.attach({ ready: () => {}, error: () => {} });
    for (let i = 0; i < 10; i++)
      for (const name of ['a', 'b']) await store.publish(name, encoder.encode(`${name}${i}`));
    const ids = async (name: string): Promise<string[]> =>
      (await store.redis.xrange(`counts:${name}`, '-', '+')).map(([id]) => id);
    const before = await ids('a');
    store.demand('a', 1);
    store.demand('b', 5);
    await waitUntil(() => store.ready('a') === 1 && store.ready('b') === 5, 'the fetches');
    await sleep(200);
    expect([store.ready('a'), store.ready('b')]).to.deep.equal([1, 5]);
    // One read with COUNT 5 for both would have fetched 4 too many of "a" and given them back
    // (copies at the tail, with new ids).
    expect(await ids('a')).to.deep.equal(before);
  });

  it('loses nothing when one of three brokers (a child process) is killed under load (counted)', async function () {
    this.timeout(60_000);
    const total = 3000;
    const leaseTimeout = 1000;
    const started = performance.now();
    // Broker 0 runs in a child process (main.ts --redis) so that it can be SIGKILLed; brokers 1
    // and 2 run here (a process per broker costs about 10 s of start-up each on a loaded box).
    const child = startTsx([
      MAIN,
      '--port',
      '0',
      '--redis',
      url,
      '--idle-timeout',
      '2000',
      '--lease-timeout',
      String(leaseTimeout),
      '--max-queue-length',
      '0',
    ]);
    cleanup.push(() => child.stop());
    const local = [1, 2].map(() =>
      track(
        new Broker({
          server: { idleTimeout: 2000 },
          store: new RedisQueueStore({ redis: url, leaseTimeout, maxQueueLength: 0 }),
        }),
      ),
    );
    const ports = [
      Number((await child.waitFor(/listening on [\d.]+:(\d+)/, 30_000, { in: 'output' }))[1]),
      ...(await Promise.all(local.map(async (broker) => (await broker.listen(0, HOST)).port))),
    ];
    const startup = performance.now() - started;
    // Client i prefers broker i % 3 and knows the others.
    const endpoints = (i: number) => [0, 1, 2].map((k) => ({ host: HOST, port: ports[(i + k) % 3]! }));
    const backoff = { minDelay: 20, maxDelay: 200, attemptStagger: 1000, connectTimeout: 2000 };
    const producers = [0, 1].map((i) =>
      track(new MqClient({ endpoints: endpoints(i), resendUnconfirmed: true, ...backoff })),
    );
    const consumers = [0, 1, 2].map((i) => track(new MqClient({ endpoints: endpoints(i), ...backoff })));
    const lists = consumers.map((consumer) => collect(consumer, 'orders', { prefetch: 20 }));
    const received = (): Delivery[] => lists.flat();
    await Promise.all([...producers, ...consumers].map((client) => client.connected()));

    // The clients of broker 0 (producer 0 and consumer 0 prefer it): when they are back on another one.
    const moved: number[] = [];
    let killedAt = 0;
    for (const client of [...producers, ...consumers]) {
      let lost = false;
      client.on('disconnected', () => (lost = killedAt > 0));
      client.on('connected', () => {
        if (lost) moved.push(performance.now() - killedAt);
        lost = false;
      });
    }

    let confirmed = 0;
    let failed = 0;
    const publishing = producers.map(async (producer, p) => {
      for (let i = p; i < total; i += 2) {
        producer.publish('orders', encoder.encode(`order ${i}`)).then(
          () => confirmed++,
          () => failed++,
        );
        if (i % 40 >= 38) await sleep(10); // about 4 000 messages/s at most in all
      }
    });

    await waitUntil(() => lists.reduce((n, l) => n + l.length, 0) >= total / 3, 'a third consumed', 20_000);
    killedAt = performance.now();
    await child.stop(); // SIGKILL: no GOAWAY, no requeue, its Redis connections just vanish
    await Promise.all(publishing);
    await waitUntil(() => confirmed + failed === total, 'every publish answered', 20_000);
    const unique = (): number => new Set(received().map(text)).size;
    await waitUntil(() => unique() === total, 'every message consumed', 20_000).catch(() => {});
    const lost = total - unique();
    const duplicates = received().length - unique();
    const redelivered = received().filter((d) => d.redelivered).length;
    report(
      `broker kill (3 brokers on Redis, SIGKILL one under load): ${total} published, ` +
        `lost ${lost}, duplicates ${duplicates}, redelivered ${redelivered}, ` +
        `resent ${producers.reduce((n, p) => n + p.stats().resent, 0)}; ` +
        `clients of the killed broker on another one after ${moved.map((t) => `${Math.round(t)} ms`).join(', ')}; ` +
        `child broker started in ${Math.round(startup)} ms`,
    );
    expect(failed).to.equal(0);
    expect(lost).to.equal(0);
    expect(moved.length).to.be.at.least(1);
  });
});
