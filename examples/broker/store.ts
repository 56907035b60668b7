/**
 * Where a broker keeps its queues: the {@link QueueStore} interface, the in-memory store (the
 * default: one process, nothing to install) and a loader for the Redis Streams store
 * (`redis-store.ts`, several broker processes sharing queues).
 *
 * The broker owns the connections, subscriptions, prefetch and delivery tags; a store owns the
 * messages. A broker `take()`s a ready message to deliver it and later `settle()`s it (ack,
 * requeue or drop). Between the two the message is held by this broker; if the broker dies, a
 * distributed store gives it to another broker after a lease timeout (at-least-once).
 * @module
 */
import { Deque } from './deque.js';
import type { BrokerErrorCode } from './protocol.js';
import type { RedisStoreOptions } from './redis-store.js';

/** A message held by a store. Stores may keep their own fields on it (e.g. a stream entry id). */
export interface StoredMessage {
  body: Uint8Array;
  /** It was delivered before and not acknowledged. */
  redelivered: boolean;
}

/** Messages held by a store or a broker, queue by queue: hand them to the next one (`restore`). */
export interface BrokerSnapshot {
  queues: { name: string; messages: StoredMessage[] }[];
}

/** The answer to a publish: stored (and how many older messages `drop-head` removed), or refused. */
export type PublishOutcome =
  { ok: true; dropped: number } | { ok: false; code: BrokerErrorCode; message: string };

/** What a store tells its broker. */
export interface StoreListener {
  /** Messages of `queue` can be taken now (published elsewhere, fetched, reclaimed). */
  ready(queue: string): void;
  /** A background operation of the store failed (the store retries, or the message comes back later). */
  error(error: Error): void;
}

/** How a delivered message ends: processed, back to its queue (redelivered), or dropped. */
export type Settlement = 'ack' | 'requeue' | 'drop';

/**
 * A store of named FIFO queues with leases. `take()` is synchronous (a store that fetches from
 * elsewhere keeps a local prefetch buffer, filled according to `demand()`), so the broker's
 * dispatch loop stays synchronous; `publish()` may be asynchronous (the broker confirms once it
 * resolves).
 */
export interface QueueStore {
  /** Called once by the broker, before anything else. */
  attach(listener: StoreListener): void;
  /** Add a message at the tail of `queue`. Never rejects: failures are outcomes. */
  publish(queue: string, body: Uint8Array): PublishOutcome | Promise<PublishOutcome>;
  /** Messages of `queue` that `take()` can return now. */
  ready(queue: string): number;
  /** The next ready message of `queue`; this broker holds it until `settle()`. */
  take(queue: string): StoredMessage | undefined;
  /** A taken message is done with. `requeue`: it comes back (flagged redelivered) for any consumer. */
  settle(queue: string, message: StoredMessage, how: Settlement): void;
  /**
   * How many more messages the local consumers of `queue` can take now (their free prefetch).
   * Stores that fetch from elsewhere fetch up to that many, and give back to the other brokers
   * what they hold beyond it (e.g. fetched for consumers that left meanwhile: 0 when none is
   * left); the in-memory store ignores it.
   */
  demand?(queue: string, count: number): void;
  /** Body bytes of the ready messages of `queue` held here. */
  bytes(queue: string): number;
  /** Take over messages (from a previous broker), beyond the limits if need be. */
  restore(snapshot: BrokerSnapshot): void;
  /** The ready messages held here (a distributed store holds them elsewhere: empty). */
  snapshot(): BrokerSnapshot;
  /** The broker stopped: no connection holds a message any more. Give back what is held, release resources. */
  close(): Promise<void>;
}

/** What a full queue does with a new publish. */
export type OverflowPolicy =
  /** Refuse the publish: the publisher gets `Error{QUEUE_FULL}` instead of `Confirm`. */
  | 'reject-publish'
  /** Drop the oldest messages to make room (they are counted in `stats().dropped`). */
  | 'drop-head';

/** Limits of the {@link MemoryQueueStore}. */
export interface MemoryStoreOptions {
  /** Most messages a queue holds (ready, not counting deliveries awaiting an ack). Default 10 000. */
  maxQueueLength?: number;
  /** Most body bytes a queue holds. Default 64 MiB. */
  maxQueueBytes?: number;
  /** What a full queue does. Default `'reject-publish'`. */
  overflow?: OverflowPolicy;
}

interface MemoryQueue {
  messages: Deque<StoredMessage>;
  bytes: number;
}

/** The queues in this process's memory: the default store, synchronous, gone with the process. */
export class MemoryQueueStore implements QueueStore {
  private readonly queues = new Map<string, MemoryQueue>();
  private readonly limits: Required<MemoryStoreOptions>;

  constructor(options: MemoryStoreOptions = {}) {
    this.limits = {
      maxQueueLength: options.maxQueueLength ?? 10_000,
      maxQueueBytes: options.maxQueueBytes ?? 64 * 1024 * 1024,
      overflow: options.overflow ?? 'reject-publish',
    };
  }

  attach(): void {
    // Everything is synchronous: the broker dispatches after each call itself.
  }

  publish(name: string, body: Uint8Array): PublishOutcome {
    const queue = this.queue(name);
    const { maxQueueLength, maxQueueBytes, overflow } = this.limits;
    if (body.length > maxQueueBytes)
      return {
        ok: false,
        code: 'QUEUE_FULL',
        message: `message larger than the queue (${maxQueueBytes} bytes)`,
      };
    const fits = (): boolean =>
      queue.messages.length < maxQueueLength && queue.bytes + body.length <= maxQueueBytes;
    let dropped = 0;
    if (!fits()) {
      if (overflow === 'reject-publish')
        return { ok: false, code: 'QUEUE_FULL', message: `queue ${name} is full` };
      while (!fits()) {
        queue.bytes -= queue.messages.shift()!.body.length;
        dropped++;
      }
    }
    // Copy: the decoded body may be a view into a larger receive buffer.
    this.push(queue, { body: new Uint8Array(body), redelivered: false }, 'tail');
    return { ok: true, dropped };
  }

  ready(name: string): number {
    return this.queues.get(name)?.messages.length ?? 0;
  }

  take(name: string): StoredMessage | undefined {
    const queue = this.queues.get(name);
    const message = queue?.messages.shift();
    if (queue !== undefined && message !== undefined) queue.bytes -= message.body.length;
    return message;
  }

  settle(name: string, message: StoredMessage, how: Settlement): void {
    // Back to the head of its queue, flagged as redelivered.
    if (how === 'requeue') this.push(this.queue(name), { body: message.body, redelivered: true }, 'head');
  }

  bytes(name: string): number {
    return this.queues.get(name)?.bytes ?? 0;
  }

  restore(snapshot: BrokerSnapshot): void {
    for (const { name, messages } of snapshot.queues) {
      const queue = this.queue(name);
      for (const message of messages) this.push(queue, message, 'tail');
    }
  }

  snapshot(): BrokerSnapshot {
    return {
      queues: [...this.queues]
        .map(([name, queue]) => ({ name, messages: [...queue.messages] }))
        .filter((q) => q.messages.length > 0),
    };
  }

  close(): Promise<void> {
    return Promise.resolve(); // the messages stay readable with snapshot()
  }

  private queue(name: string): MemoryQueue {
    let queue = this.queues.get(name);
    if (queue === undefined) {
      queue = { messages: new Deque(), bytes: 0 };
      this.queues.set(name, queue);
    }
    return queue;
  }

  private push(queue: MemoryQueue, message: StoredMessage, where: 'head' | 'tail'): void {
    if (where === 'head') queue.messages.unshift(message);
    else queue.messages.push(message);
    queue.bytes += message.body.length;
  }
}

/**
 * The Redis Streams store (see `redis-store.ts`), loaded on demand so that `ioredis` is needed only
 * when it is used.
 */
export async function createRedisStore(options: RedisStoreOptions): Promise<QueueStore> {
  const { RedisQueueStore } = await import('./redis-store.js');
  return new RedisQueueStore(options);
}
