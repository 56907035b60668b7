/**
 * A {@link QueueStore} on Redis Streams, shared by several broker processes: each queue is a
 * stream with one consumer group, each broker one consumer of it.
 *
 * - **Publish**: `XADD` (in a script that first checks `XLEN` against `maxQueueLength`); the
 *   broker confirms once Redis answered.
 * - **Prefetch**: `XREADGROUP … >` fetches at most what the broker's local consumers can take
 *   (their free prefetch, `demand()`), into a local buffer; from then on the entries are in this
 *   broker's pending list (PEL). When the demand falls below what is buffered (the consumers left,
 *   e.g. moved to another broker, while a read was under way), the excess goes back to the stream
 *   at once (as a requeue, keeping its flag): a live broker renews what it holds, so a message
 *   kept in a buffer that no local consumer takes would never reach the consumers of the others.
 * - **Ack**: `XACK` + `XDEL` (a stream holds only unacknowledged messages, so `XLEN` is the
 *   queue's length, ready and in flight).
 * - **Requeue** (nack, or a client's connection closed): `XADD` a copy flagged redelivered and
 *   `XACK` + `XDEL` the original, in one `MULTI`: any broker may deliver it next, at the tail.
 * - **Leases and redelivery**: every `leaseTimeout / 3` a live broker renews the entries it holds
 *   (`XCLAIM … JUSTID` to itself, which resets their idle time). A broker that dies stops renewing;
 *   once its entries are idle for `leaseTimeout` (the dead consumer's heartbeat timeout) the other
 *   brokers take them with `XAUTOCLAIM` and deliver them again, flagged redelivered.
 *
 * At-least-once: a message processed by a client whose ack never reached Redis (its broker died)
 * is delivered again; a publish whose confirm was lost and that the client resends is stored twice.
 * @module
 */
import { hostname } from 'node:os';
import { Redis } from 'ioredis';
import type { RedisOptions } from 'ioredis';
import type {
  BrokerSnapshot,
  PublishOutcome,
  QueueStore,
  Settlement,
  StoreListener,
  StoredMessage,
} from './store.js';

/** Options of a {@link RedisQueueStore}. */
export interface RedisStoreOptions {
  /** Redis URL (`redis://host:port/db`), or ioredis options. Default `redis://127.0.0.1:6379`. */
  redis?: string | RedisOptions;
  /** Prefix of the stream keys (one stream per queue). Default `heartwire:queue:`. */
  prefix?: string;
  /** Consumer group shared by the brokers. Default `brokers`. */
  group?: string;
  /** This broker's consumer name, unique among the brokers. Default `<hostname>-<pid>-<random>`. */
  consumer?: string;
  /**
   * A broker that has not renewed a held message for this long is considered dead and the others
   * take the message over (ms). Use the broker's heartbeat timeout (`idleTimeout`). Default 20 000.
   */
  leaseTimeout?: number;
  /** Most messages a queue holds, ready and in flight; further publishes get `QUEUE_FULL`. 0: no limit. Default 10 000. */
  maxQueueLength?: number;
  /** Most entries fetched by one `XREADGROUP` or `XAUTOCLAIM` per queue. Default 500. */
  maxFetch?: number;
  /** How long one blocking `XREADGROUP` waits (ms); a queue that gains consumers waits at most this long for its first fetch. Default 100. */
  blockMs?: number;
}

/** A message of this store: its stream entry id. */
interface RedisMessage extends StoredMessage {
  id: string;
}

interface StreamQueue {
  key: string;
  /** Fetched or claimed, not yet taken by the broker. */
  buffer: RedisMessage[];
  bufferBytes: number;
  /** Entry ids this broker holds (buffered or delivered, not settled): renewed each lease period. */
  held: Set<string>;
  /** What the broker's consumers can take now. */
  demand: number;
  /** The consumer group exists (created once per queue and store). */
  group: Promise<void> | undefined;
  /** XAUTOCLAIM cursor. */
  cursor: string;
}

const PUBLISH_SCRIPT = `
local max = tonumber(ARGV[2])
if max > 0 and redis.call('XLEN', KEYS[1]) >= max then return 0 end
redis.call('XADD', KEYS[1], '*', 'b', ARGV[1])
return 1`;

type Entry = [id: Buffer, fields: Buffer[] | null];

/** Queues in Redis Streams; see the module documentation. */
export class RedisQueueStore implements QueueStore {
  /** Commands. */
  readonly redis: Redis;
  /** Blocking reads (a blocked connection cannot carry other commands). */
  private readonly reader: Redis;
  private readonly prefix: string;
  private readonly group: string;
  readonly consumer: string;
  private readonly leaseTimeout: number;
  private readonly maxQueueLength: number;
  private readonly maxFetch: number;
  private readonly blockMs: number;
  private readonly queues = new Map<string, StreamQueue>();
  private listener: StoreListener = { ready: () => {}, error: () => {} };
  private closed = false;
  private wakeReader: (() => void) | undefined;
  private readonly leaseTimer: NodeJS.Timeout;
  private leasing = false;
  private readonly reading: Promise<void>;

  constructor(options: RedisStoreOptions = {}) {
    const redis = options.redis ?? 'redis://127.0.0.1:6379';
    // RESP2: the reply shapes parsed below (RESP3 turns XREADGROUP's reply into a map).
    this.redis =
      typeof redis === 'string' ? new Redis(redis, { protocol: 2 }) : new Redis({ protocol: 2, ...redis });
    this.reader = this.redis.duplicate();
    // ioredis reconnects by itself; its 'error' events must not crash the process.
    for (const client of [this.redis, this.reader]) client.on('error', (error: Error) => this.fail(error));
    this.redis.defineCommand('heartwirePublish', { numberOfKeys: 1, lua: PUBLISH_SCRIPT });
    this.prefix = options.prefix ?? 'heartwire:queue:';
    this.group = options.group ?? 'brokers';
    this.consumer =
      options.consumer ?? `${hostname()}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
    this.leaseTimeout = options.leaseTimeout ?? 20_000;
    this.maxQueueLength = options.maxQueueLength ?? 10_000;
    this.maxFetch = options.maxFetch ?? 500;
    this.blockMs = options.blockMs ?? 100;
    this.leaseTimer = setInterval(() => void this.renewAndClaim(), Math.max(10, this.leaseTimeout / 3));
    this.leaseTimer.unref();
    this.reading = this.readLoop();
  }

  attach(listener: StoreListener): void {
    this.listener = listener;
  }

  async publish(name: string, body: Uint8Array): Promise<PublishOutcome> {
    const queue = this.queue(name);
    try {
      await this.ensureGroup(queue);
      const publish = (this.redis as unknown as Record<string, (...args: unknown[]) => Promise<number>>)
        .heartwirePublish!;
      const stored = await publish.call(this.redis, queue.key, Buffer.from(body), this.maxQueueLength);
      if (stored === 0) return { ok: false, code: 'QUEUE_FULL', message: `queue ${name} is full` };
      return { ok: true, dropped: 0 };
    } catch (error) {
      return { ok: false, code: 'UNAVAILABLE', message: `store: ${(error as Error).message}` };
    }
  }

  ready(name: string): number {
    return this.queues.get(name)?.buffer.length ?? 0;
  }

  take(name: string): StoredMessage | undefined {
    const queue = this.queues.get(name);
    const message = queue?.buffer.shift();
    if (queue !== undefined && message !== undefined) queue.bufferBytes -= message.body.length;
    return message;
  }

  settle(name: string, message: StoredMessage, how: Settlement): void {
    const queue = this.queue(name);
    this.remove(queue, [message as RedisMessage], how === 'requeue');
  }

  demand(name: string, count: number): void {
    const queue = this.queue(name);
    const wasWanting = queue.demand > queue.buffer.length;
    queue.demand = Math.max(0, count);
    this.giveBackExcess(queue);
    if (!wasWanting && queue.demand > queue.buffer.length) {
      const wake = this.wakeReader;
      this.wakeReader = undefined;
      wake?.();
    }
  }

  bytes(name: string): number {
    return this.queues.get(name)?.bufferBytes ?? 0;
  }

  /** Publishes the snapshot's messages (ignoring `maxQueueLength`). Asynchronous: errors go to the listener. */
  restore(snapshot: BrokerSnapshot): void {
    for (const { name, messages } of snapshot.queues) {
      const queue = this.queue(name);
      void this.ensureGroup(queue)
        .then(() => {
          const multi = this.redis.multi();
          for (const { body, redelivered } of messages)
            multi.xadd(queue.key, '*', 'b', Buffer.from(body), ...(redelivered ? ['r', '1'] : []));
          return multi.exec();
        })
        .catch((error: Error) => this.fail(error));
    }
  }

  snapshot(): BrokerSnapshot {
    return { queues: [] }; // the messages are in Redis
  }

  /** Gives the buffered (fetched, never delivered) messages back to the streams, then disconnects. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearInterval(this.leaseTimer);
    this.wakeReader?.();
    for (const queue of this.queues.values()) this.giveBack(queue, 0);
    this.reader.disconnect(); // interrupts a blocking read
    await this.reading;
    // Leave the groups, where this broker holds nothing any more (deleting a consumer that still
    // has pending entries would orphan them: those stay, for XAUTOCLAIM).
    for (const queue of this.queues.values()) {
      if (queue.group === undefined) continue;
      try {
        const pending = (await this.redis.xpending(
          queue.key,
          this.group,
          '-',
          '+',
          1,
          this.consumer,
        )) as unknown[];
        if (pending.length === 0)
          await this.redis.xgroup('DELCONSUMER', queue.key, this.group, this.consumer);
      } catch {
        // Redis is gone: the consumer stays listed, harmless.
      }
    }
    await this.redis.quit().catch(() => this.redis.disconnect()); // after the commands queued above
  }

  // ------------------------------------------------------------------ internals

  private queue(name: string): StreamQueue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = {
        key: this.prefix + name,
        buffer: [],
        bufferBytes: 0,
        held: new Set(),
        demand: 0,
        group: undefined,
        cursor: '0-0',
      };
      this.queues.set(name, queue);
    }
    return queue;
  }

  private ensureGroup(queue: StreamQueue): Promise<void> {
    queue.group ??= this.redis.xgroup('CREATE', queue.key, this.group, '0', 'MKSTREAM').then(
      () => undefined,
      (error: Error) => {
        if (!error.message.startsWith('BUSYGROUP')) {
          queue.group = undefined; // try again next time
          throw error;
        }
      },
    );
    return queue.group;
  }

  private fail(error: Error): void {
    if (!this.closed) this.listener.error(error);
  }

  /**
   * Remove entries from the stream (`XACK` + `XDEL`, in one `MULTI`), `XADD`ing a copy of each
   * first unless `requeue` is false: flagged redelivered if `true` (it was delivered), with its
   * own flag if `undefined` (given back: never delivered by this broker).
   */
  private remove(queue: StreamQueue, messages: RedisMessage[], requeue: boolean | undefined): void {
    if (messages.length === 0) return;
    const multi = this.redis.multi();
    for (const { id, body, redelivered } of messages) {
      queue.held.delete(id);
      if (requeue !== false) {
        const flag = requeue === true || redelivered ? ['r', '1'] : [];
        multi.xadd(queue.key, '*', 'b', Buffer.from(body), ...flag);
      }
      multi.xack(queue.key, this.group, id).xdel(queue.key, id);
    }
    // If this fails the entries stay in our pending list; renewals stop once they are not held, so
    // another broker (or this one) claims them after the lease: redelivered, not lost.
    multi.exec().catch((error: Error) => this.fail(error));
  }

  /** Give the buffered messages beyond the first `keep` back to the stream (to any broker's consumers). */
  private giveBack(queue: StreamQueue, keep: number): void {
    if (queue.buffer.length <= keep) return;
    const excess = queue.buffer.splice(keep);
    for (const message of excess) queue.bufferBytes -= message.body.length;
    this.remove(queue, excess, undefined);
  }

  /**
   * Buffered messages beyond the demand: the local consumers cannot take them now (they left or
   * are full while a read or claim was under way). Held here they would be renewed, never claimed
   * by another broker, and delivered only if a consumer came back: give them back instead.
   */
  private giveBackExcess(queue: StreamQueue): void {
    this.giveBack(queue, queue.demand);
  }

  /** How many more entries `queue` should fetch. */
  private wanted(queue: StreamQueue): number {
    return Math.min(this.maxFetch, queue.demand - queue.buffer.length);
  }

  /** Add fetched or claimed entries to the local buffers and tell the broker. */
  private received(queue: StreamQueue, name: string, entries: Entry[], claimed: boolean): void {
    let added = 0;
    for (const [rawId, fields] of entries) {
      if (fields === null) continue; // deleted meanwhile (acked by another broker)
      const id = rawId.toString();
      let body: Buffer | undefined;
      let redelivered = claimed;
      for (let i = 0; i + 1 < fields.length; i += 2) {
        const field = fields[i]!.toString();
        if (field === 'b') body = fields[i + 1];
        else if (field === 'r') redelivered = true;
      }
      if (body === undefined || queue.held.has(id)) continue;
      queue.held.add(id);
      queue.buffer.push({ id, body, redelivered });
      queue.bufferBytes += body.length;
      added++;
    }
    if (added === 0) return;
    this.listener.ready(name); // the broker takes what its consumers can, and updates the demand
    this.giveBackExcess(queue);
  }

  /** Fetch new entries of the queues whose consumers have room, one blocking read at a time. */
  private async readLoop(): Promise<void> {
    while (!this.closed) {
      const wanting = [...this.queues].filter(([, queue]) => this.wanted(queue) > 0);
      if (wanting.length === 0) {
        await new Promise<void>((wake) => (this.wakeReader = wake));
        continue;
      }
      try {
        await Promise.all(wanting.map(([, queue]) => this.ensureGroup(queue)));
        const counts = wanting.map(([, queue]) => this.wanted(queue));
        const keys = wanting.map(([, queue]) => queue.key);
        let reply: [Buffer, Entry[]][] | null = null;
        if (wanting.length > 1) {
          // COUNT applies to every stream of one read: read each queue for its own demand,
          // without blocking, so that none fetches more than its consumers can take.
          const pipeline = this.reader.pipeline();
          wanting.forEach(([, queue], i) =>
            pipeline.callBuffer('XREADGROUP', this.readArgs([queue.key], counts[i]!)),
          );
          for (const [error, streams] of (await pipeline.exec()) ?? []) {
            if (error !== null) throw error;
            if (streams !== null) (reply ??= []).push(...(streams as [Buffer, Entry[]][]));
          }
        }
        // Nothing yet: wait for the first new entry of any of them (for the smallest demand).
        reply ??= (await this.reader.callBuffer(
          'XREADGROUP',
          this.readArgs(keys, Math.min(...counts), this.blockMs),
        )) as [Buffer, Entry[]][] | null;
        for (const [key, entries] of reply ?? []) {
          const found = wanting.find(([, queue]) => queue.key === key.toString());
          // A closed store still records what it read, so that close() gives it back.
          if (found !== undefined) this.received(found[1], found[0], entries, false);
        }
        if (this.closed) {
          for (const [, queue] of wanting) this.giveBack(queue, 0);
        }
      } catch (error) {
        if (this.closed) return;
        this.fail(error as Error);
        await new Promise((resolve) => setTimeout(resolve, 100));
        if ((error as Error).message.startsWith('NOGROUP'))
          for (const queue of this.queues.values()) queue.group = undefined;
      }
    }
  }

  /** `XREADGROUP` arguments: new entries of `keys`, at most `count` of each, blocking for `block` ms. */
  private readArgs(keys: string[], count: number, block?: number): (string | number)[] {
    const blocking = block === undefined ? [] : ['BLOCK', block];
    return [
      'GROUP',
      this.group,
      this.consumer,
      'COUNT',
      count,
      ...blocking,
      'STREAMS',
      ...keys,
      ...keys.map(() => '>'),
    ];
  }

  /**
   * Renew the lease of every entry this broker holds (`XCLAIM` to itself resets the idle time),
   * then take over the entries of dead brokers (`XAUTOCLAIM` idle ≥ `leaseTimeout`) for the
   * queues whose consumers have room.
   */
  private async renewAndClaim(): Promise<void> {
    if (this.leasing || this.closed) return;
    this.leasing = true;
    try {
      const renew = this.redis.pipeline();
      let renewing = 0;
      for (const queue of this.queues.values()) {
        if (queue.held.size === 0) continue;
        renew.call('XCLAIM', [queue.key, this.group, this.consumer, 0, ...queue.held, 'JUSTID']);
        renewing++;
      }
      if (renewing > 0) await renew.exec();
      for (const [name, queue] of this.queues) {
        const count = this.wanted(queue);
        if (count <= 0 || queue.group === undefined) continue;
        const reply = (await this.redis.callBuffer('XAUTOCLAIM', [
          queue.key,
          this.group,
          this.consumer,
          this.leaseTimeout,
          queue.cursor,
          'COUNT',
          count,
        ])) as [Buffer, Entry[], Buffer[]?];
        queue.cursor = reply[0].toString();
        this.received(queue, name, reply[1], true);
      }
    } catch (error) {
      this.fail(error as Error);
    } finally {
      this.leasing = false;
    }
  }
}
