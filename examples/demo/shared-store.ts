/**
 * Several brokers of one process on one in-memory queue store: the stand-in for a distributed
 * store (Redis) when none is installed. Each broker gets its own {@link QueueStore} view of one
 * {@link MemoryQueueStore}; a publish, requeue or restore through one view tells the other brokers
 * that the queue has messages ready (the in-memory store itself tells nobody: its broker
 * dispatches after each call). Messages held by a broker that stops come back through `settle`.
 * @module
 */
import { MemoryQueueStore } from '../broker/broker.js';
import type {
  BrokerSnapshot,
  PublishOutcome,
  QueueStore,
  Settlement,
  StoreListener,
  StoredMessage,
} from '../broker/store.js';

/** One in-memory store shared by the brokers of this process. */
export class SharedMemoryStore {
  private readonly store: MemoryQueueStore;
  private readonly listeners = new Set<StoreListener>();

  constructor(options: { maxQueueLength?: number } = {}) {
    this.store = new MemoryQueueStore(options);
  }

  /** A view for one broker (`new Broker({ store: shared.view() })`). */
  view(): QueueStore {
    return new SharedView(this.store, this.listeners);
  }
}

class SharedView implements QueueStore {
  private listener: StoreListener | undefined;

  constructor(
    private readonly store: MemoryQueueStore,
    private readonly listeners: Set<StoreListener>,
  ) {}

  private others(queue: string): void {
    for (const listener of this.listeners) if (listener !== this.listener) listener.ready(queue);
  }

  attach(listener: StoreListener): void {
    this.listener = listener;
    this.listeners.add(listener);
  }

  publish(queue: string, body: Uint8Array): PublishOutcome {
    const outcome = this.store.publish(queue, body);
    if (outcome.ok) queueMicrotask(() => this.others(queue));
    return outcome;
  }

  ready(queue: string): number {
    return this.store.ready(queue);
  }

  take(queue: string): StoredMessage | undefined {
    return this.store.take(queue);
  }

  settle(queue: string, message: StoredMessage, how: Settlement): void {
    this.store.settle(queue, message, how);
    if (how === 'requeue') queueMicrotask(() => this.others(queue));
  }

  bytes(queue: string): number {
    return this.store.bytes(queue);
  }

  restore(snapshot: BrokerSnapshot): void {
    this.store.restore(snapshot);
    for (const { name } of snapshot.queues) queueMicrotask(() => this.others(name));
  }

  /** The messages stay in the shared store for the other brokers: nothing to hand over. */
  snapshot(): BrokerSnapshot {
    return { queues: [] };
  }

  async close(): Promise<void> {
    if (this.listener !== undefined) this.listeners.delete(this.listener);
  }
}
