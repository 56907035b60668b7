/**
 * The rolling-restart demo (`heartwire demo --rolling`): three brokers serve one queue from one
 * store (Redis Streams when `redis-server` is installed, started here on a free loopback port;
 * otherwise one in-memory store shared by the three brokers of this process, and the demo says
 * so). Producers and consumers run under load while the brokers restart one after the other:
 * each broker's GOAWAY names the other two (alternatives, SPEC.md §9.5), and the clients move
 * make-before-break. A moving client picks one of the alternatives at random, whatever their load,
 * and nothing brings clients back to a restarted broker by itself: after each restart the brokers
 * above their share move their surplus to it (GOAWAY naming only the brokers below their share).
 * Counted by message id: published, confirmed, consumed, lost, duplicates (redeliveries of
 * at-least-once), moved connections, the final spread. Exit status 0 when nothing is lost and
 * every client of each restarted broker moved.
 * @module
 */
import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import net from 'node:net';
import { Broker, createRedisStore } from '../broker/broker.js';
import type { QueueStore } from '../broker/broker.js';
import { MqClient } from '../mq-client/mq-client.js';
import { bytes, delay, ms } from '../../src/cli/util.js';
import type { Output } from '../../src/cli/util.js';
import { SharedMemoryStore } from './shared-store.js';
import { Ledger, Stage, runStage } from './stage.js';
import type { Verdict } from './stage.js';

const HOST = '127.0.0.1';

interface Settings {
  /** Messages per second, all producers together, and their size. */
  rate: number;
  bodyBytes: number;
  /** Load before the first restart, between restarts, after the last one. */
  warmup: number;
  between: number;
  after: number;
  grace: number;
}
const FULL: Settings = { rate: 1000, bodyBytes: 256, warmup: 3000, between: 3000, after: 3000, grace: 4000 };
const QUICK: Settings = { rate: 1000, bodyBytes: 256, warmup: 1000, between: 1000, after: 1000, grace: 2000 };

/** Run the rolling-restart demo; resolves with the exit status. `stop` (Ctrl-C) interrupts it. */
export function rollingDemo(quick: boolean, output: Output, stop: Promise<unknown>): Promise<number> {
  return runStage(new Scene(quick ? QUICK : FULL, output), output, stop, (failed) =>
    failed === 0 ? 'the rolling restart lost nothing' : 'the claim did not hold',
  );
}

/**
 * Which store the demo can use here: Redis Streams needs both `redis-server` and the `ioredis`
 * client, which is a development dependency of heartwire, not installed with the package. Else the
 * shared in-memory store, with the lines that say why.
 */
export function storeChoice(redisServer: boolean, ioredis: boolean): { redis: boolean; note: string[] } {
  if (redisServer && ioredis) return { redis: true, note: [] };
  const missing = redisServer
    ? 'the ioredis client is not installed (`npm install ioredis`)'
    : 'redis-server is not installed (`apt-get install redis-server`)';
  return {
    redis: false,
    note: [
      `  note: ${missing}, so the three brokers share an in-memory store in this process;`,
      '        with redis-server and ioredis they use Redis Streams (examples/broker/redis-store.ts)',
    ],
  };
}

/** Whether the `ioredis` module loads here. */
async function ioredisLoads(): Promise<boolean> {
  try {
    await import('ioredis');
    return true;
  } catch {
    return false;
  }
}

/** A free loopback port (for redis-server, which cannot report the one it picked). */
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

class Scene extends Stage {
  private readonly brokers: Broker[] = [];
  private readonly ports: number[] = [];
  private readonly ledger = new Ledger();
  private storeFor: () => Promise<QueueStore>;
  private storeName = '';

  constructor(
    private readonly s: Settings,
    output: Output,
  ) {
    super(output);
    this.storeFor = () => Promise.reject(new Error('no store'));
  }

  /**
   * Redis if `redis-server` runs here and `ioredis` loads, else the shared in-memory store (with a
   * visible note).
   */
  private async setUpStore(): Promise<void> {
    const choice = storeChoice(spawnSync('redis-server', ['--version']).status === 0, await ioredisLoads());
    if (choice.redis) {
      const port = await freePort();
      const redis: ChildProcess = spawn(
        'redis-server',
        ['--port', String(port), '--bind', HOST, '--save', '', '--appendonly', 'no'],
        { stdio: ['ignore', 'pipe', 'ignore'] },
      );
      redis.on('error', () => {});
      this.disposers.push(async () => {
        redis.kill('SIGTERM');
        await new Promise((resolve) => (redis.exitCode === null ? redis.once('exit', resolve) : resolve(0)));
      });
      const ready = await new Promise<boolean>((resolve) => {
        let seen = '';
        const timer = setTimeout(() => resolve(false), 10_000);
        redis.stdout!.on('data', (chunk: Buffer) => {
          seen += chunk.toString();
          if (/Ready to accept connections/.test(seen)) {
            clearTimeout(timer);
            resolve(true);
          }
        });
        redis.once('exit', () => resolve(false));
      });
      if (ready) {
        const url = `redis://${HOST}:${port}`;
        this.storeName = `Redis Streams (redis-server on ${HOST}:${port}, started for this demo)`;
        this.storeFor = () => createRedisStore({ redis: url, prefix: 'demo:', leaseTimeout: 2000 });
        return;
      }
    }
    const shared = new SharedMemoryStore({ maxQueueLength: 100_000 });
    this.storeName = 'one in-memory store shared by the three brokers of this process';
    for (const line of choice.note) this.say(line);
    if (choice.redis) this.say('  note: redis-server did not start within 10 s: an in-memory store instead');
    this.storeFor = async () => shared.view();
  }

  /** Start broker `i` on `port` (0: any), naming the other brokers as alternatives once known. */
  private async startBroker(i: number, port: number): Promise<Broker> {
    const broker = new Broker({
      store: await this.storeFor(),
      server: { idleTimeout: 2000, clientIdleTimeoutRange: [100, 60_000] },
    });
    this.brokers[i] = broker;
    this.disposers.push(() => broker.close({ grace: 100 }));
    this.ports[i] = (await broker.listen(port, HOST)).port;
    return broker;
  }

  private alternatives(i: number): string[] {
    return this.ports.filter((_, j) => j !== i).map((port) => `${HOST}:${port}`);
  }

  private distribution(): string {
    return this.brokers.map((b, i) => `${'ABC'[i]} ${b.stats().connections}`).join(', ');
  }

  private counts(): number[] {
    return this.brokers.map((b) => b.stats().connections);
  }

  /**
   * Give every broker its share of the connections (the counts at most one apart): the brokers
   * above their share move the surplus (GOAWAY naming only the brokers below theirs, retry_after
   * the grace), in at most three rounds, each bounded by the grace + 2 s. Without it the clients
   * spread over the alternatives at random and none comes back to a restarted broker: the last
   * one restarted ends with none. Resolves with the connections moved.
   */
  private async rebalance(moves: number[]): Promise<number> {
    let moved = 0;
    for (let round = 0; round < 3; round++) {
      const counts = this.counts();
      const total = counts.reduce((a, b) => a + b, 0);
      // The fullest brokers keep the remainder: fewest moves.
      const target: number[] = [];
      [0, 1, 2]
        .sort((x, y) => counts[y]! - counts[x]!)
        .forEach((i, rank) => (target[i] = Math.floor(total / 3) + (rank < total % 3 ? 1 : 0)));
      const under = [0, 1, 2].filter((i) => counts[i]! < target[i]!);
      if (under.length === 0) break;
      const alternatives = under.map((i) => `${HOST}:${this.ports[i]}`);
      const before = moves.length;
      let asked = 0;
      counts.forEach((count, i) => {
        const surplus = count - target[i]!;
        if (surplus > 0)
          asked += this.brokers[i]!.moveClients(surplus, { alternatives, grace: this.s.grace });
      });
      const until = performance.now() + this.s.grace + 2000;
      const settled = (): boolean =>
        moves.length - before >= asked && this.counts().every((count, i) => count === target[i]);
      while (!settled() && performance.now() < until) await delay(10);
      moved += moves.length - before;
    }
    return moved;
  }

  private balanced(): boolean {
    const counts = this.counts();
    return Math.max(...counts) - Math.min(...counts) <= 1;
  }

  async run(): Promise<Verdict[]> {
    const s = this.s;
    this.say('heartwire demo --rolling: three brokers, 3 producers and 3 consumers on 127.0.0.1');
    await this.setUpStore();
    for (let i = 0; i < 3; i++) await this.startBroker(i, 0);
    this.brokers.forEach((b, i) => (b.server.alternatives = this.alternatives(i)));
    this.say(
      `  store: ${this.storeName}; brokers A, B, C on ports ${this.ports.join(', ')}, each naming the other two in WELCOME and GOAWAY`,
    );
    this.say(
      `  ${s.rate} messages/s of ${bytes(s.bodyBytes)}, published with confirms, consumed with acks, counted by id`,
    );

    const options = (i: number) => ({ host: HOST, port: this.ports[i % 3]!, minDelay: 50, maxDelay: 500 });
    const producers = [0, 1, 2].map((i) => {
      const client = new MqClient({ ...options(i), resendUnconfirmed: true });
      this.disposers.push(() => client.close());
      return client;
    });
    const consumers = [0, 1, 2].map((i) => {
      const client = new MqClient(options(i));
      this.disposers.push(() => client.close());
      return client;
    });
    const clients = [...producers, ...consumers];
    await Promise.all(clients.map((c) => c.connected()));
    for (const consumer of consumers) this.ledger.consume(consumer, 200);

    // Moves: a client that got GOAWAY and then connected again, timed from the GOAWAY.
    const moves: number[] = [];
    for (const client of clients) {
      let goAwayAt: number | undefined;
      client.on('goaway', () => (goAwayAt = performance.now()));
      client.on('connected', () => {
        if (goAwayAt !== undefined) moves.push(performance.now() - goAwayAt);
        goAwayAt = undefined;
      });
    }

    let producing = true;
    const load = this.ledger.produce(producers, {
      rate: s.rate,
      bodyBytes: s.bodyBytes,
      tag: 'r',
      running: () => producing,
      report: () =>
        this.progress(
          `published ${this.ledger.published}, confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}; ` +
            `connections ${this.distribution()}; moved ${moves.length}`,
        ),
    });
    await delay(s.warmup);
    const restartTimes: number[] = [];
    const expectedMoves: number[] = [];
    let movedOnRestarts = 0;
    let rebalanced = 0;
    for (let i = 0; i < 3; i++) {
      const name = 'ABC'[i]!;
      const old = this.brokers[i]!;
      const held = old.stats().connections;
      expectedMoves.push(held);
      const movesBefore = moves.length;
      this.say('');
      this.say(
        `[${i + 1}/3] broker ${name} restarts (GOAWAY, grace ${ms(s.grace)}, alternatives ${this.alternatives(i).join(' ')})`,
      );
      const t0 = performance.now();
      await old.close({ grace: s.grace });
      const closedIn = performance.now() - t0;
      // A client that had nothing in flight may end the old connection before its replacement is
      // open (the jitter); wait for the moves (bounded) before counting them.
      const until = performance.now() + s.grace + 2000;
      while (moves.length - movesBefore < held && performance.now() < until) await delay(10);
      await this.startBroker(i, this.ports[i]!);
      this.brokers[i]!.server.alternatives = this.alternatives(i);
      restartTimes.push(performance.now() - t0);
      movedOnRestarts += moves.length - movesBefore;
      this.progress(
        `broker ${name} closed after ${ms(closedIn)} and is back on port ${this.ports[i]}; ` +
          `${moves.length - movesBefore} of its ${held} connections moved, in ${ms(Math.max(0, ...moves.slice(movesBefore)))} at most; ` +
          `connections ${this.distribution()}`,
      );
      const backAt = moves.length;
      const moved = await this.rebalance(moves);
      rebalanced += moved;
      this.progress(
        `rebalanced: ${moved} connections moved (GOAWAY naming the brokers below their share), ` +
          `in ${ms(Math.max(0, ...moves.slice(backAt)))} at most; connections ${this.distribution()}`,
      );
      await delay(s.between);
    }
    await delay(s.after);
    producing = false;
    await load;
    const caughtUp = await this.ledger.caughtUp(30_000);
    const missing = this.ledger.missing();
    const duplicates = this.ledger.duplicates();
    const movedOk = movedOnRestarts >= expectedMoves.reduce((a, b) => a + b, 0);
    const spread = `${this.distribution()} (${this.balanced() ? 'balanced' : 'UNBALANCED: more than one apart'})`;
    this.say('');
    this.say(
      `  -> published ${this.ledger.published}, confirmed ${this.ledger.confirmed.size}, consumed ${this.ledger.consumed.size}, ` +
        `lost ${missing}, duplicates ${duplicates} (redeliveries: at-least-once), rejected ${this.ledger.rejected}`,
    );
    this.say(
      `  -> ${movedOnRestarts} connections moved on the restarts (${expectedMoves.join(' + ')} held by the restarting brokers) ` +
        `and ${rebalanced} to rebalance, each in ${moves.length > 0 ? ms(Math.max(...moves)) : '-'} at most after its GOAWAY; ` +
        `final connections ${spread}`,
    );
    return [
      {
        claim: 'rolling restart of 3 brokers under load',
        measured:
          `${movedOnRestarts} + ${rebalanced} connections moved; ${this.ledger.confirmed.size} confirmed, ` +
          `${this.ledger.consumed.size} consumed, ${missing} lost; final ${spread}`,
        ok: caughtUp && missing === 0 && this.ledger.rejected === 0 && movedOk,
      },
    ];
  }
}
