/**
 * A small message broker on heartwire: named queues, publisher confirms, consumers with a
 * prefetch limit, ack/nack, redelivery when a consumer's connection dies, and a graceful
 * shutdown that loses nothing.
 *
 * The messages live in a {@link QueueStore}: in this process's memory by default
 * ({@link MemoryQueueStore}), or in Redis Streams shared by several broker processes
 * (`createRedisStore()`, loaded on demand).
 *
 * Every limit is explicit: queue length and bytes (with an overflow policy), number of queues,
 * subscriptions per connection, prefetch. Memory per connection is bounded by heartwire's credit
 * (what a client sends) and by the connection's send queue (what the broker sends: the broker
 * stops delivering to a connection whose `write()` returned false until `'drain'`).
 * @module
 */
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { createServer } from '../../src/index.js';
import type { CloseInfo, Connection, HeartwireError, Server, ServerOptions } from '../../src/index.js';
import { decode, encode } from './protocol.js';
import type { Ack, BrokerErrorCode, Envelope, Nack, Publish, Subscribe } from './protocol.js';
import { MemoryQueueStore } from './store.js';
import type { BrokerSnapshot, OverflowPolicy, PublishOutcome, QueueStore, StoredMessage } from './store.js';

export { MemoryQueueStore, createRedisStore } from './store.js';
export type { BrokerSnapshot, OverflowPolicy, QueueStore, StoredMessage } from './store.js';

/** Options of a {@link Broker}. */
export interface BrokerOptions {
  /** heartwire server options: `idleTimeout`, `clientIdleTimeoutRange`, `receiveWindow`, `tls`, … */
  server?: ServerOptions;
  /**
   * Where the messages live. Default: a {@link MemoryQueueStore} with `maxQueueLength`,
   * `maxQueueBytes` and `overflow` (those three options apply to the default store only).
   */
  store?: QueueStore;
  /** Most messages a queue holds (ready, not counting deliveries awaiting an ack). Default 10 000. */
  maxQueueLength?: number;
  /** Most body bytes a queue holds. Default 64 MiB. */
  maxQueueBytes?: number;
  /** What a full queue does. Default `'reject-publish'`. */
  overflow?: OverflowPolicy;
  /** Most queues (created on first use). Default 1 000. */
  maxQueues?: number;
  /** Longest queue name, in UTF-16 code units. Default 255. */
  maxQueueNameLength?: number;
  /** Prefetch of a `Subscribe` that asks for 0. Default 100. */
  defaultPrefetch?: number;
  /** Largest prefetch granted. Default 10 000. */
  maxPrefetch?: number;
  /** Most subscriptions on one connection. Default 64. */
  maxSubscriptionsPerConnection?: number;
  /** Messages to start with, e.g. the result of a previous broker's `close()`. */
  restore?: BrokerSnapshot;
}

/** Counters of a broker since it started. */
export interface BrokerStats {
  connections: number;
  queues: { name: string; ready: number; unacked: number; consumers: number; bytes: number }[];
  published: number;
  rejected: number;
  delivered: number;
  redelivered: number;
  acked: number;
  nacked: number;
  dropped: number;
}

/** Events of a {@link Broker}. */
export interface BrokerEvents {
  /** A client connected. */
  connect: [{ id: number; remoteAddress: string | undefined }];
  /**
   * A client's connection closed. `requeued` unacknowledged deliveries went back to their queues.
   * `error` is set when the close was not clean (e.g. `HEARTBEAT_TIMEOUT`: the path went silent).
   */
  disconnect: [{ id: number; clean: boolean; error: HeartwireError | undefined; requeued: number }];
  /** A background operation of the store failed (e.g. Redis unreachable); the store retries. */
  'store-error': [Error];
}

/** A queue as this broker sees it: its local consumers (the messages are in the store). */
interface Queue {
  name: string;
  unacked: number;
  consumers: Consumer[];
  /** Round-robin position in `consumers`. */
  next: number;
}

interface Consumer {
  session: Session;
  queue: Queue;
  prefetch: number;
  unacked: number;
}

interface Outstanding {
  consumer: Consumer;
  message: StoredMessage;
}

/** One client connection. */
interface Session {
  conn: Connection;
  subscriptions: Map<string, Consumer>;
  /** Deliveries awaiting Ack/Nack, by delivery tag (tags are per connection). */
  outstanding: Map<number, Outstanding>;
  nextTag: number;
  /** False after `write()` returned false, until `'drain'`. */
  writable: boolean;
  /** No more deliveries: the broker is shutting down or the client sent CLOSE. */
  delivering: boolean;
  /** Publishes handed to an asynchronous store and not yet answered (at most {@link MAX_STORING}). */
  storing: number;
  /** Wakes the reading loop once `storing` is below its bound again. */
  storeRoom: (() => void) | undefined;
}

/**
 * Most publishes of one connection waiting for an asynchronous store: beyond it the broker stops
 * reading that connection, so heartwire's credit bounds what a slow store makes the broker hold.
 */
const MAX_STORING = 256;

/**
 * A message broker. `listen()` to start, `close({ grace })` to stop: the broker sends GOAWAY to
 * every client, stops delivering (each subscription gets `Drained` after its last delivery),
 * keeps accepting acks and publishes until the clients close, and resolves with the messages
 * still held so that a successor can take them over (`restore`).
 */
export class Broker extends EventEmitter<BrokerEvents> {
  /** The heartwire server; `server.connections` lists the open connections. */
  readonly server: Server;
  /** Where the messages live. */
  readonly store: QueueStore;
  private readonly queues = new Map<string, Queue>();
  private readonly sessions = new Set<Session>();
  private readonly limits: Required<
    Omit<BrokerOptions, 'server' | 'restore' | 'store' | 'maxQueueLength' | 'maxQueueBytes' | 'overflow'>
  >;
  private readonly counters = {
    published: 0,
    rejected: 0,
    delivered: 0,
    redelivered: 0,
    acked: 0,
    nacked: 0,
    dropped: 0,
  };
  private closing: Promise<BrokerSnapshot> | undefined;

  constructor(options: BrokerOptions = {}) {
    super();
    this.limits = {
      maxQueues: options.maxQueues ?? 1000,
      maxQueueNameLength: options.maxQueueNameLength ?? 255,
      defaultPrefetch: options.defaultPrefetch ?? 100,
      maxPrefetch: options.maxPrefetch ?? 10_000,
      maxSubscriptionsPerConnection: options.maxSubscriptionsPerConnection ?? 64,
    };
    this.store =
      options.store ??
      new MemoryQueueStore({
        maxQueueLength: options.maxQueueLength,
        maxQueueBytes: options.maxQueueBytes,
        overflow: options.overflow,
      });
    this.store.attach({
      ready: (name) => {
        const queue = this.queues.get(name);
        if (queue !== undefined) this.dispatch(queue);
      },
      error: (error) => {
        if (this.listenerCount('store-error') > 0) this.emit('store-error', error);
      },
    });
    if (options.restore !== undefined) this.restore(options.restore);
    this.server = createServer(options.server ?? {}, (conn) => this.accept(conn));
  }

  /** Start listening; resolves to the bound address. */
  listen(port = 0, host = '127.0.0.1'): Promise<AddressInfo> {
    return this.server.listen(port, host);
  }

  /**
   * Shut down gracefully: GOAWAY with `grace` ms to every client, no new deliveries, force-close
   * whoever is still connected when the grace expires. Resolves once every connection is closed
   * (unacknowledged deliveries are back in their queues) and the store is closed, with the
   * messages the broker still holds (none with a distributed store: they stay in it). Idempotent.
   */
  close(options: { grace?: number } = {}): Promise<BrokerSnapshot> {
    if (this.closing === undefined) {
      for (const session of this.sessions) this.stopDelivering(session, true);
      this.closing = this.server
        .close({ grace: options.grace ?? 5000 })
        .then(() => this.store.close())
        .then(() => this.snapshot());
    }
    return this.closing;
  }

  /**
   * Move up to `count` clients to other brokers (rebalancing): each gets GOAWAY naming
   * `alternatives` (SPEC.md §9.5), with `retryAfter` ms (default `grace`) before it may come back
   * here, and no more deliveries (`Drained`), as in `close()`; it finishes within `grace` (default
   * 5 000 ms) and reconnects there, make before break. The broker keeps serving everyone else.
   * Returns how many clients were asked to move.
   */
  moveClients(
    count: number,
    options: { alternatives: readonly string[]; grace?: number; retryAfter?: number },
  ): number {
    const grace = options.grace ?? 5000;
    let moved = 0;
    for (const session of this.sessions) {
      if (moved >= count) break;
      if (!session.delivering || session.conn.state !== 'open') continue; // already leaving
      this.stopDelivering(session, true);
      void session.conn
        .end({ grace, alternatives: options.alternatives, retryAfter: options.retryAfter ?? grace })
        .catch(() => {});
      moved++;
    }
    return moved;
  }

  /**
   * Take over the messages of a snapshot (from a previous broker's `close()`): they go to the
   * tail of their queues, beyond the length limits if need be (they were accepted already).
   */
  restore(snapshot: BrokerSnapshot): void {
    for (const { name, messages } of snapshot.queues) {
      const queue = this.queue(name);
      if (queue === undefined) continue;
      this.store.restore({ queues: [{ name, messages }] });
      this.dispatch(queue);
    }
  }

  /** The messages held now (ready and unacknowledged), queue by queue. */
  snapshot(): BrokerSnapshot {
    const ready = new Map(this.store.snapshot().queues.map((q) => [q.name, q.messages]));
    const names = new Set([...this.queues.keys(), ...ready.keys()]);
    const queues = [...names].map((name) => {
      const outstanding: StoredMessage[] = [];
      for (const session of this.sessions) {
        for (const { consumer, message } of session.outstanding.values()) {
          if (consumer.queue.name === name) outstanding.push({ body: message.body, redelivered: true });
        }
      }
      return { name, messages: [...outstanding, ...(ready.get(name) ?? [])] };
    });
    return { queues: queues.filter((q) => q.messages.length > 0) };
  }

  /** Counters and queue gauges. */
  stats(): BrokerStats {
    return {
      ...this.counters,
      connections: this.sessions.size,
      queues: [...this.queues.values()].map((q) => ({
        name: q.name,
        ready: this.store.ready(q.name),
        unacked: q.unacked,
        consumers: q.consumers.length,
        bytes: this.store.bytes(q.name),
      })),
    };
  }

  // ------------------------------------------------------------------ connections

  private accept(conn: Connection): void {
    const session: Session = {
      conn,
      subscriptions: new Map(),
      outstanding: new Map(),
      nextTag: 1,
      writable: true,
      delivering: this.closing === undefined,
      storing: 0,
      storeRoom: undefined,
    };
    this.sessions.add(session);
    conn.on('drain', () => {
      session.writable = true;
      for (const consumer of session.subscriptions.values()) this.dispatch(consumer.queue);
    });
    // The client sent CLOSE: it can no longer ack, so deliver nothing more.
    conn.on('peer-closed', () => this.stopDelivering(session, false));
    // Any close, clean or not, returns unacknowledged deliveries to their queues. A consumer
    // whose path went silent is detected by heartwire's heartbeat deadline (HEARTBEAT_TIMEOUT).
    conn.on('close', (info) => this.closeSession(session, info));
    this.emit('connect', { id: conn.id, remoteAddress: conn.stats().remoteAddress });
    void this.serve(session);
  }

  /** Read the client's requests in order; pause reading while our replies cannot be written. */
  private async serve(session: Session): Promise<void> {
    try {
      for await (const bytes of session.conn) {
        this.handle(session, bytes);
        if (!session.writable) await writable(session.conn);
        if (session.storing >= MAX_STORING) await new Promise<void>((wake) => (session.storeRoom = wake));
      }
    } catch {
      // An unclean close ends the loop with its error; the 'close' listener deals with it.
    }
  }

  private handle(session: Session, bytes: Uint8Array): void {
    let envelope: Envelope;
    try {
      envelope = decode(bytes);
    } catch (error) {
      this.reply(session, 'BAD_REQUEST', `malformed message: ${(error as Error).message}`);
      return;
    }
    switch (envelope.kind) {
      case 'publish':
        return this.publish(session, envelope.publish);
      case 'subscribe':
        return this.subscribe(session, envelope.subscribe);
      case 'ack':
        return this.settle(session, envelope.ack, 'ack');
      case 'nack':
        return this.settle(session, envelope.nack, 'nack');
      default:
        return this.reply(session, 'BAD_REQUEST', `a client does not send ${envelope.kind}`);
    }
  }

  private closeSession(session: Session, info: CloseInfo): void {
    this.sessions.delete(session);
    session.delivering = false;
    for (const consumer of session.subscriptions.values()) {
      consumer.queue.consumers = consumer.queue.consumers.filter((c) => c !== consumer);
    }
    // Back to the head of their queues, oldest first, flagged as redelivered.
    const outstanding = [...session.outstanding.values()].reverse();
    for (const { consumer, message } of outstanding) {
      consumer.queue.unacked--;
      this.store.settle(consumer.queue.name, message, 'requeue');
    }
    session.outstanding.clear();
    this.emit('disconnect', {
      id: session.conn.id,
      clean: info.clean,
      error: info.error,
      requeued: outstanding.length,
    });
    for (const consumer of session.subscriptions.values()) this.dispatch(consumer.queue);
  }

  /** No more deliveries on this connection; `notify`: tell each subscription (`Drained`). */
  private stopDelivering(session: Session, notify: boolean): void {
    if (!session.delivering) return;
    session.delivering = false;
    if (notify) {
      for (const queue of session.subscriptions.keys())
        this.send(session, { kind: 'drained', drained: { queue } });
    }
    for (const consumer of session.subscriptions.values()) this.dispatch(consumer.queue); // less demand
  }

  // ------------------------------------------------------------------ requests

  private publish(session: Session, { queue: name, id, body }: Publish): void {
    const refuse = (code: BrokerErrorCode, message: string): void => {
      this.counters.rejected++;
      this.reply(session, code, message, { id, queue: name });
    };
    const invalid = this.invalidName(name);
    if (invalid !== undefined) return refuse('BAD_REQUEST', invalid);
    const queue = this.queue(name);
    if (queue === undefined) return refuse('LIMIT_EXCEEDED', `at most ${this.limits.maxQueues} queues`);
    const done = (outcome: PublishOutcome): void => {
      if (!outcome.ok) return refuse(outcome.code, outcome.message);
      this.counters.published++;
      this.counters.dropped += outcome.dropped;
      this.send(session, { kind: 'confirm', confirm: { id } });
      this.dispatch(queue);
    };
    // The in-memory store answers at once; a distributed one once the message is stored there.
    const outcome = this.store.publish(name, body);
    if (!('then' in outcome)) return done(outcome);
    session.storing++;
    void outcome.then((answer) => {
      session.storing--;
      const wake = session.storeRoom;
      session.storeRoom = undefined;
      wake?.();
      done(answer);
    });
  }

  private subscribe(session: Session, { queue: name, prefetch }: Subscribe): void {
    const invalid = this.invalidName(name);
    if (invalid !== undefined) return this.reply(session, 'BAD_REQUEST', invalid, { queue: name });
    if (!session.delivering) {
      this.send(session, { kind: 'drained', drained: { queue: name } });
      return;
    }
    const { defaultPrefetch, maxPrefetch, maxSubscriptionsPerConnection } = this.limits;
    const granted = Math.min(prefetch === 0 ? defaultPrefetch : prefetch, maxPrefetch);
    const existing = session.subscriptions.get(name);
    if (existing !== undefined) {
      existing.prefetch = granted; // subscribing again changes the prefetch
      this.dispatch(existing.queue);
      return;
    }
    if (session.subscriptions.size >= maxSubscriptionsPerConnection) {
      return this.reply(session, 'LIMIT_EXCEEDED', `at most ${maxSubscriptionsPerConnection} subscriptions`, {
        queue: name,
      });
    }
    const queue = this.queue(name);
    if (queue === undefined)
      return this.reply(session, 'LIMIT_EXCEEDED', `at most ${this.limits.maxQueues} queues`);
    const consumer: Consumer = { session, queue, prefetch: granted, unacked: 0 };
    session.subscriptions.set(name, consumer);
    queue.consumers.push(consumer);
    this.dispatch(queue);
  }

  private settle(session: Session, request: Ack | Nack, how: 'ack' | 'nack'): void {
    const entry = session.outstanding.get(request.deliveryTag);
    if (entry === undefined) {
      return this.reply(session, 'UNKNOWN_DELIVERY_TAG', `no outstanding delivery ${request.deliveryTag}`);
    }
    session.outstanding.delete(request.deliveryTag);
    const { consumer, message } = entry;
    consumer.unacked--;
    consumer.queue.unacked--;
    if (how === 'ack') {
      this.counters.acked++;
      this.store.settle(consumer.queue.name, message, 'ack');
    } else {
      this.counters.nacked++;
      const requeue = (request as Nack).requeue;
      if (!requeue) this.counters.dropped++;
      this.store.settle(consumer.queue.name, message, requeue ? 'requeue' : 'drop');
    }
    this.dispatch(consumer.queue);
  }

  // ------------------------------------------------------------------ queues

  /**
   * Deliver ready messages to consumers with room (prefetch) and a writable connection, then
   * tell the store how many more they can take (a distributed store fetches that many).
   */
  private dispatch(queue: Queue): void {
    while (this.store.ready(queue.name) > 0) {
      const consumer = this.nextConsumer(queue);
      if (consumer === undefined) break;
      const message = this.store.take(queue.name);
      if (message === undefined) break;
      const { session } = consumer;
      const deliveryTag = session.nextTag++;
      session.outstanding.set(deliveryTag, { consumer, message });
      consumer.unacked++;
      queue.unacked++;
      this.counters.delivered++;
      if (message.redelivered) this.counters.redelivered++;
      const { body, redelivered } = message;
      this.send(session, { kind: 'deliver', deliver: { queue: queue.name, deliveryTag, body, redelivered } });
    }
    if (this.store.demand !== undefined) {
      let room = 0;
      for (const { session, prefetch, unacked } of queue.consumers) {
        if (session.delivering && session.writable) room += Math.max(0, prefetch - unacked);
      }
      this.store.demand(queue.name, room);
    }
  }

  /** Round robin over the consumers that can take one more delivery. */
  private nextConsumer(queue: Queue): Consumer | undefined {
    const { consumers } = queue;
    for (let i = 0; i < consumers.length; i++) {
      const consumer = consumers[(queue.next + i) % consumers.length]!;
      const { session } = consumer;
      if (session.delivering && session.writable && consumer.unacked < consumer.prefetch) {
        queue.next = (queue.next + i + 1) % consumers.length;
        return consumer;
      }
    }
    return undefined;
  }

  /** The queue called `name`, created on first use; `undefined` when `maxQueues` is reached. */
  private queue(name: string): Queue | undefined {
    let queue = this.queues.get(name);
    if (queue === undefined && this.queues.size < this.limits.maxQueues) {
      queue = { name, unacked: 0, consumers: [], next: 0 };
      this.queues.set(name, queue);
    }
    return queue;
  }

  private invalidName(name: string): string | undefined {
    if (name.length === 0) return 'empty queue name';
    if (name.length > this.limits.maxQueueNameLength)
      return `queue name longer than ${this.limits.maxQueueNameLength}`;
    return undefined;
  }

  // ------------------------------------------------------------------ replies

  private reply(
    session: Session,
    code: BrokerErrorCode,
    message: string,
    about: { id?: number; queue?: string } = {},
  ): void {
    this.send(session, {
      kind: 'error',
      error: { code, message, id: about.id ?? 0, queue: about.queue ?? '' },
    });
  }

  /** Queue a message to the client; a full send queue pauses deliveries and reading until `'drain'`. */
  private send(session: Session, envelope: Envelope): void {
    const bytes = encode(envelope);
    try {
      if (!session.conn.write(bytes)) session.writable = false;
    } catch (error) {
      // A full send queue (write() already returned false; a confirm or an error can still be
      // due): wait for room, in order, instead of dropping it. Otherwise the connection is
      // closing, and its 'close' listener requeues what it held.
      if ((error as { code?: unknown }).code === 'SEND_QUEUE_FULL') session.conn.send(bytes).catch(() => {});
    }
  }
}

/** Resolves on the connection's next `'drain'` or `'close'`. */
function writable(conn: Connection): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      conn.off('drain', done).off('close', done);
      resolve();
    };
    conn.on('drain', done).on('close', done);
  });
}
