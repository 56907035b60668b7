/**
 * The claims demo of `heartwire demo` (`npm start`): about a minute, no setup. The example broker, two producers
 * and a consumer run on 127.0.0.1, each client behind a {@link FaultProxy}, and three claims are
 * checked by counting, not assumed:
 *
 * 1. A consumer that stops consuming causes no false failure, the memory it holds stays within
 *    its receive window, and it catches up afterwards with nothing lost.
 * 2. A network path that goes silent is detected in the configured idle timeout, where a plain
 *    TCP socket with keepalive notices nothing.
 * 3. The broker shuts down with a grace period under load: GOAWAY, clients drain and move to a
 *    second broker, nothing is lost.
 *
 * Exit status 0 when all three hold, 1 otherwise.
 * @module
 */
import net from 'node:net';
import { Broker } from '../broker/broker.js';
import { MqClient } from '../mq-client/mq-client.js';
import type { Delivery } from '../mq-client/mq-client.js';
import { FaultProxy } from '../../src/testing/fault-proxy.js';
import { bytes, delay, ms } from '../../src/cli/util.js';
import type { Output } from '../../src/cli/util.js';
import { Ledger, QUEUE, Stage, runStage } from './stage.js';
import type { Verdict } from './stage.js';

/** Durations and rates of a run. */
interface Settings {
  /** Messages per second, all producers together, and their size. */
  rate: number;
  bodyBytes: number;
  /** Phase 1: the consumer's idle timeout, how long it consumes, how long it stalls. */
  consumerIdleTimeout: number;
  consumeBeforeStall: number;
  stall: number;
  /** Phase 2: the idle timeout of the broker and of the watched client; how long to watch a plain socket. */
  pathIdleTimeout: number;
  plainSocketWatch: number;
  /** Phase 3: how long the producers run, when the broker goes away, with what grace. */
  restartLoad: number;
  shutdownAfter: number;
  grace: number;
}

const FULL: Settings = {
  rate: 1000,
  bodyBytes: 1024,
  consumerIdleTimeout: 1000,
  consumeBeforeStall: 2000,
  stall: 10_000,
  pathIdleTimeout: 2000,
  plainSocketWatch: 15_000,
  restartLoad: 8000,
  shutdownAfter: 3000,
  grace: 5000,
};

const QUICK: Settings = {
  rate: 1000,
  bodyBytes: 1024,
  consumerIdleTimeout: 500,
  consumeBeforeStall: 1000,
  stall: 2500,
  pathIdleTimeout: 1000,
  plainSocketWatch: 3000,
  restartLoad: 3000,
  shutdownAfter: 1000,
  grace: 2000,
};

/** The consumer's receive window: the most it may hold of messages it has not consumed. */
const CONSUMER_WINDOW = 256 * 1024;
const HOST = '127.0.0.1';

/** Run the claims demo; resolves with the exit status. `stop` (Ctrl-C) interrupts it. */
export function claimsDemo(quick: boolean, output: Output, stop: Promise<unknown>): Promise<number> {
  return runStage(new World(quick ? QUICK : FULL, output), output, stop, (failed) =>
    failed === 0 ? 'all three claims hold' : `${failed} claim(s) did not hold`,
  );
}

/** Everything the demo runs, and what it counts. */
class World extends Stage {
  private readonly s: Settings;
  private readonly proxies = new Map<string, FaultProxy>();
  private readonly ledger = new Ledger();

  constructor(settings: Settings, output: Output) {
    super(output);
    this.s = settings;
  }

  async run(): Promise<Verdict[]> {
    const s = this.s;
    // Broker A (the one that will go away) and broker B (where clients move), each behind a proxy.
    const brokerOptions = { idleTimeout: s.pathIdleTimeout, clientIdleTimeoutRange: [100, 60_000] as const };
    const a = this.own(new Broker({ server: brokerOptions, maxQueueLength: 100_000 }), (b) =>
      b.close({ grace: 100 }),
    );
    const b = this.own(new Broker({ server: brokerOptions, maxQueueLength: 100_000 }), (b) =>
      b.close({ grace: 100 }),
    );
    const proxyA = await this.proxy((await a.listen(0, HOST)).port);
    const proxyB = await this.proxy((await b.listen(0, HOST)).port);
    const endpoints = [proxyA, proxyB];
    const lost: string[] = [];
    for (const broker of [a, b]) {
      broker.on('disconnect', ({ clean, error }) => {
        if (!clean) lost.push(error?.code ?? 'unknown');
      });
    }

    const clientOptions = { endpoints, minDelay: 50, maxDelay: 500 };
    const producers = [1, 2].map(() =>
      this.own(new MqClient({ ...clientOptions, resendUnconfirmed: true }), (c) => c.close()),
    );
    const consumer = this.own(
      new MqClient({
        ...clientOptions,
        idleTimeout: s.consumerIdleTimeout,
        receiveWindow: CONSUMER_WINDOW,
        initialReceiveWindow: CONSUMER_WINDOW,
      }),
      (c) => c.close(),
    );
    await Promise.all([...producers, consumer].map((c) => c.connected()));
    this.ledger.consume(consumer, 1000);

    this.say(
      'heartwire demo: a message broker, 2 producers and a consumer on 127.0.0.1, each client behind a FaultProxy',
    );
    this.say(
      `  ${s.rate} messages/s of ${bytes(s.bodyBytes)}, published with confirms, consumed with acks, counted by id`,
    );
    const one = await this.stalledConsumer(a, producers, consumer, lost);
    const two = await this.silentPath(a);
    const three = await this.restart(a, b, producers, consumer, lost);
    return [one, two, three];
  }

  // ------------------------------------------------------------------ phase 1

  private async stalledConsumer(
    a: Broker,
    producers: MqClient[],
    consumer: MqClient,
    lost: string[],
  ): Promise<Verdict> {
    const s = this.s;
    const times = Math.round(s.stall / s.consumerIdleTimeout);
    this.say('');
    this.say(
      `[1/3] The consumer stops consuming for ${ms(s.stall)} (${times} x its idle timeout of ${ms(s.consumerIdleTimeout)}) while the producers push`,
    );
    const producing = this.produce(producers, s.consumeBeforeStall + s.stall, 'p1');
    await delay(s.consumeBeforeStall);
    this.ledger.pause();
    this.progress(`consumer paused with ${this.ledger.consumed.size} consumed`);
    const rssBefore = process.memoryUsage().rss;
    let heldMax = 0;
    let queuedMax = { ready: 0, bytes: 0 };
    let rssMax = rssBefore;
    const stallEnds = performance.now() + s.stall;
    let nextReport = performance.now() + 1000;
    while (performance.now() < stallEnds) {
      await delay(50);
      const stats = consumer.connection?.stats();
      heldMax = Math.max(heldMax, stats?.heldBytes ?? 0);
      rssMax = Math.max(rssMax, process.memoryUsage().rss);
      const queue = a.stats().queues.find((q) => q.name === QUEUE);
      if (queue !== undefined && queue.ready > queuedMax.ready) queuedMax = queue;
      if (performance.now() >= nextReport) {
        nextReport += 1000;
        const heard =
          stats?.lastReceivedAt === undefined ? '-' : ms(performance.now() - stats.lastReceivedAt);
        this.progress(
          `confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}, waiting in the broker ${queue?.ready ?? 0}; ` +
            `consumer holds ${bytes(stats?.heldBytes ?? 0)} of its ${bytes(CONSUMER_WINDOW)} window, last heard from the broker ${heard} ago`,
        );
      }
    }
    await producing;
    const failuresDuringStall = lost.length;
    const resumedAt = performance.now();
    this.ledger.resume();
    this.progress(
      `consumer resumed with ${this.ledger.confirmed.size - this.ledger.consumed.size} messages to catch up on`,
    );
    const caughtUp = await this.ledger.caughtUp(30_000);
    const catchUp = performance.now() - resumedAt;
    const missing = this.ledger.missing();
    const rss = `RSS +${bytes(Math.max(0, rssMax - rssBefore))}`;
    this.say(
      `  -> ${failuresDuringStall} connection(s) failed during the stall; the consumer held at most ${bytes(heldMax)} ` +
        `(window ${bytes(CONSUMER_WINDOW)}); the rest waited in the broker's bounded queue ` +
        `(at most ${queuedMax.ready} messages, ${bytes(queuedMax.bytes)}); process ${rss} (broker, clients and proxies)`,
    );
    this.say(
      `  -> caught up in ${ms(catchUp)}: ${this.ledger.consumed.size} of ${this.ledger.confirmed.size} confirmed messages consumed, ${missing} missing, ${this.ledger.rejected} rejected`,
    );
    return {
      claim: `1. consumer stalled ${ms(s.stall)} (${times} x idle)`,
      measured: `${failuresDuringStall} failures; held <= ${bytes(heldMax)} (window ${bytes(CONSUMER_WINDOW)}); RSS +${bytes(Math.max(0, rssMax - rssBefore))}; ${missing} lost`,
      ok:
        failuresDuringStall === 0 &&
        heldMax <= CONSUMER_WINDOW &&
        caughtUp &&
        missing === 0 &&
        this.ledger.rejected === 0,
    };
  }

  // ------------------------------------------------------------------ phase 2

  private async silentPath(a: Broker): Promise<Verdict> {
    const s = this.s;
    this.say('');
    this.say(
      `[2/3] The network path goes silent (FaultProxy blackhole): heartwire with idle timeout ${ms(s.pathIdleTimeout)}, next to plain TCP with keepalive`,
    );
    // A consumer behind its own proxy takes 10 messages and is busy with them (no acks yet).
    const brokerA = { host: HOST, port: a.server.address()!.port };
    const proxy = this.own(new FaultProxy({ target: brokerA }), (p) => p.close());
    const watched = this.own(
      new MqClient({ ...(await proxy.listen()), idleTimeout: s.pathIdleTimeout, handshakeTimeout: 1000 }),
      (c) => c.close(),
    );
    const publisher = this.own(new MqClient(brokerA), (c) => c.close());
    await Promise.all(
      Array.from({ length: 10 }, (_, i) =>
        publisher.publish('alerts', new TextEncoder().encode(`alert ${i}`)),
      ),
    );
    const held: Delivery[] = [];
    void (async () => {
      for await (const delivery of watched.subscribe('alerts', { prefetch: 10 })) held.push(delivery);
    })();
    while (held.length < 10) await delay(10);
    this.progress(
      'a second consumer holds 10 unacknowledged messages; its path and a plain TCP path go silent now',
    );

    const plain = await this.plainSocket();
    let clientDetected: number | undefined;
    let brokerDetected: number | undefined;
    let redeliveredAt: number | undefined;
    let silentAt = 0;
    watched.once('disconnected', ({ error }) => {
      if (error?.code === 'HEARTBEAT_TIMEOUT') clientDetected = performance.now() - silentAt;
    });
    a.on('disconnect', ({ error }) => {
      if (error?.code === 'HEARTBEAT_TIMEOUT') brokerDetected ??= performance.now() - silentAt;
    });
    proxy.blackhole();
    plain.proxy.blackhole();
    silentAt = performance.now();
    plain.watchFrom(silentAt);

    // Another consumer gets the 10 messages back once the broker has given up on the first.
    const rescuer = this.own(new MqClient(brokerA), (c) => c.close());
    let redelivered = 0;
    void (async () => {
      for await (const delivery of rescuer.subscribe('alerts')) {
        if (delivery.redelivered && ++redelivered === 10) redeliveredAt = performance.now() - silentAt;
        delivery.ack();
      }
    })();
    const bound = 2 * s.pathIdleTimeout + 1000;
    while (
      performance.now() - silentAt < bound &&
      (clientDetected === undefined || brokerDetected === undefined)
    )
      await delay(10);
    this.progress(
      `heartwire: the client detected HEARTBEAT_TIMEOUT after ${ms(clientDetected)}, the broker after ${ms(brokerDetected)}`,
    );
    while (performance.now() - silentAt < bound && redeliveredAt === undefined) await delay(10);
    this.progress(
      `the broker redelivered the 10 unacknowledged messages to another consumer (${ms(redeliveredAt)} after the silence began)`,
    );
    await Promise.all([watched.close(), publisher.close(), rescuer.close()]);

    let nextReport = silentAt + 5000;
    while (performance.now() - silentAt < s.plainSocketWatch && plain.event === undefined) {
      await delay(50);
      if (performance.now() >= nextReport) {
        nextReport += 5000;
        this.progress(`plain TCP socket after ${ms(performance.now() - silentAt)}: ${plain.describe()}`);
      }
    }
    const plainOutcome =
      plain.event === undefined
        ? `nothing after ${ms(s.plainSocketWatch)} (${plain.describe()})`
        : `${plain.event} after ${ms(plain.eventAt)}`;
    this.say(
      `  -> heartwire: detected in ${ms(clientDetected)} (client) and ${ms(brokerDetected)} (broker), idle timeout ${ms(s.pathIdleTimeout)}`,
    );
    this.say(`  -> plain TCP with setKeepAlive(true, 1000): ${plainOutcome}`);
    this.say('     (the proxy, like any middlebox, acknowledges keepalive probes and data hop by hop)');
    const limit = s.pathIdleTimeout * 1.5 + 250;
    const ok = (t: number | undefined): boolean => t !== undefined && t <= limit;
    const plainShort =
      plain.event === undefined
        ? `nothing in ${ms(s.plainSocketWatch)}`
        : `${plain.event} after ${ms(plain.eventAt)}`;
    return {
      claim: `2. silent path (idle ${ms(s.pathIdleTimeout)})`,
      measured: `detected in ${ms(clientDetected)} / ${ms(brokerDetected)}; plain TCP keepalive: ${plainShort}`,
      ok: ok(clientDetected) && ok(brokerDetected) && redelivered === 10,
    };
  }

  /** A plain TCP echo server, a proxy, and a client socket with keepalive that writes twice a second. */
  private async plainSocket() {
    const server = this.own(
      net.createServer((socket) => socket.on('error', () => {}).pipe(socket)),
      (server) => new Promise((resolve) => server.close(resolve)),
    );
    await new Promise<void>((resolve) => server.listen(0, HOST, resolve));
    const proxy = await this.proxy((server.address() as net.AddressInfo).port);
    const socket = net.connect(proxy);
    this.disposers.push(async () => socket.destroy());
    await new Promise((resolve) => socket.once('connect', resolve));
    socket.setKeepAlive(true, 1000);
    socket.setNoDelay(true);
    const state = {
      proxy: this.proxyOf(proxy),
      event: undefined as string | undefined,
      eventAt: undefined as number | undefined,
      writes: 0,
      silentAt: 0,
      watchFrom(t: number) {
        this.silentAt = t;
      },
      describe() {
        return `no error, no close, ${this.writes} writes accepted`;
      },
    };
    const note = (event: string): void => {
      if (state.event !== undefined || state.silentAt === 0) return;
      state.event = event;
      state.eventAt = performance.now() - state.silentAt;
    };
    socket.on('error', (error: NodeJS.ErrnoException) => note(`'error' ${error.code ?? error.message}`));
    socket.on('close', () => note("'close'"));
    socket.on('data', () => {});
    const writer = setInterval(() => {
      if (state.silentAt > 0 && socket.write('ping\n')) state.writes++;
    }, 500);
    this.disposers.push(async () => clearInterval(writer));
    return state;
  }

  // ------------------------------------------------------------------ phase 3

  private async restart(
    a: Broker,
    b: Broker,
    producers: MqClient[],
    consumer: MqClient,
    lost: string[],
  ): Promise<Verdict> {
    const s = this.s;
    this.say('');
    this.say(`[3/3] Broker A shuts down with a ${ms(s.grace)} grace period under load; broker B takes over`);
    const lostBefore = lost.length;
    const moves: number[] = [];
    let goAwayAt = 0;
    for (const client of [...producers, consumer]) {
      client.once('goaway', () => client.once('connected', () => moves.push(performance.now() - goAwayAt)));
    }
    const producing = this.produce(producers, s.restartLoad, 'p3', () =>
      this.progress(
        `confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}; ` +
          `connections to A ${a.stats().connections}, to B ${b.stats().connections}`,
      ),
    );
    await delay(s.shutdownAfter);
    this.progress(
      `confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}: broker A sends GOAWAY`,
    );
    goAwayAt = performance.now();
    const snapshot = await a.close({ grace: s.grace });
    const closedIn = performance.now() - goAwayAt;
    const handedOver = snapshot.queues.reduce((n, q) => n + q.messages.length, 0);
    b.restore(snapshot);
    this.progress(
      `broker A closed after ${ms(closedIn)} (grace ${ms(s.grace)}); ${handedOver} messages it still held handed over to B`,
    );
    await producing;
    const caughtUp = await this.ledger.caughtUp(30_000);
    const missing = this.ledger.missing();
    const duplicates = this.ledger.duplicates();
    const unclean = lost.length - lostBefore;
    this.say(
      `  -> ${moves.length} of 3 clients moved to B, in ${moves.length > 0 ? ms(Math.max(...moves)) : '-'} at most; ` +
        `${unclean} unclean close(s); A closed ${closedIn < s.grace ? 'before' : 'at'} the end of its grace`,
    );
    this.say(
      `  -> published ${this.ledger.published}, confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}, ` +
        `missing ${missing}, duplicates ${duplicates} (all phases)`,
    );
    return {
      claim: `3. shutdown under load (grace ${ms(s.grace)})`,
      measured: `${moves.length}/3 clients moved; ${this.ledger.confirmed.size} confirmed, ${this.ledger.consumed.size} consumed, ${missing} lost`,
      ok: caughtUp && missing === 0 && this.ledger.rejected === 0 && moves.length === 3,
    };
  }

  // ------------------------------------------------------------------ helpers

  private async proxy(port: number): Promise<{ host: string; port: number }> {
    const proxy = this.own(new FaultProxy({ target: { host: HOST, port } }), (p) => p.close());
    const address = await proxy.listen();
    this.proxies.set(`${address.host}:${address.port}`, proxy);
    return address;
  }

  private proxyOf(address: { host: string; port: number }): FaultProxy {
    return this.proxies.get(`${address.host}:${address.port}`)!;
  }

  /** Publish at the configured rate for `duration` ms, split among the producers; resolves once all settled. */
  private produce(producers: MqClient[], duration: number, tag: string, report?: () => void): Promise<void> {
    const end = performance.now() + duration;
    const { rate, bodyBytes } = this.s;
    return this.ledger.produce(producers, {
      rate,
      bodyBytes,
      tag,
      running: () => performance.now() < end,
      report,
    });
  }
}
