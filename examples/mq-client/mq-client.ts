/**
 * Client library of the example broker (`examples/broker`): publisher confirms, reconnection
 * with jittered backoff (heartwire's `ReconnectingClient`), optional resend of unconfirmed
 * publishes, and consumers with `for await`.
 *
 * ```ts
 * const client = new MqClient({ host: '127.0.0.1', port: 5673, resendUnconfirmed: true });
 * await client.publish('jobs', new TextEncoder().encode('hello')); // resolves on the broker's Confirm
 * for await (const delivery of client.subscribe('jobs', { prefetch: 10 })) {
 *   console.log(new TextDecoder().decode(delivery.body));
 *   delivery.ack();
 * }
 * ```
 *
 * Delivery is at-least-once: a delivery not acked before its connection ends comes again
 * (`redelivered`), and with `resendUnconfirmed` a publish whose confirm was lost is sent again.
 * @module
 */
import { EventEmitter } from 'node:events';
import { ReconnectingClient } from '../../src/index.js';
import type {
  Connection,
  Disconnection,
  GoAwayInfo,
  HeartwireError,
  ReconnectOptions,
} from '../../src/index.js';
import { decode, encode } from '../broker/protocol.js';
import type { BrokerErrorCode, BrokerErrorMessage, Deliver, Envelope } from '../broker/protocol.js';

/** Options of an {@link MqClient}: where to connect (`host`/`port` or `endpoints`), heartwire options, backoff. */
export interface MqClientOptions extends Omit<ReconnectOptions, 'endOnGoAway'> {
  /** Most publishes awaiting their confirm (sent or not yet sent); `publish()` waits for room. Default 1 000. */
  maxUnconfirmed?: number;
  /** Most body bytes of publishes awaiting their confirm. Default 16 MiB. */
  maxUnconfirmedBytes?: number;
  /**
   * After a connection ends, send its unconfirmed publishes again on the next connection
   * (at-least-once: one whose confirm was lost is duplicated). Default false: they reject with a
   * {@link PublishError} `CONNECTION_LOST` that says whether the broker certainly did not get it.
   */
  resendUnconfirmed?: boolean;
}

/** Why a publish failed. */
export type PublishErrorCode = BrokerErrorCode | 'CONNECTION_LOST' | 'CLOSED';

/** A publish that was not confirmed. */
export class PublishError extends Error {
  /** `QUEUE_FULL` and other broker codes, `CONNECTION_LOST`, or `CLOSED` (the client was closed). */
  readonly code: PublishErrorCode;
  /** True when the broker certainly did not enqueue the message: publishing it again cannot duplicate it. */
  readonly notProcessed: boolean;
  constructor(code: PublishErrorCode, message: string, notProcessed: boolean) {
    super(message);
    this.name = 'PublishError';
    this.code = code;
    this.notProcessed = notProcessed;
  }
}

/** Events of an {@link MqClient}. */
export interface MqClientEvents {
  /** Connection number `generation` is open (subscriptions are renewed, unsent publishes flow). */
  connected: [generation: number];
  /** A connection ended; `error` is undefined for a clean close (e.g. after GOAWAY). */
  disconnected: [{ generation: number; error: HeartwireError | undefined }];
  /** The broker is shutting down; the client finishes its deliveries and moves on. */
  goaway: [GoAwayInfo];
  /** The next connection attempt starts in `delay` ms. */
  reconnecting: [{ attempt: number; delay: number }];
  /** An error reply not tied to a publish (e.g. `UNKNOWN_DELIVERY_TAG`). */
  'broker-error': [BrokerErrorMessage];
}

/** Counters of an {@link MqClient}. */
export interface MqClientStats {
  /** Publishes awaiting their confirm (including not yet sent). */
  unconfirmed: number;
  unconfirmedBytes: number;
  confirmed: number;
  /** Publishes sent again after a reconnect (`resendUnconfirmed`). */
  resent: number;
  received: number;
}

interface PendingPublish {
  id: number;
  queue: string;
  body: Uint8Array;
  resolve: () => void;
  reject: (error: PublishError) => void;
  /** The connection it was written to, or undefined while unsent. */
  generation: number | undefined;
}

/** One connection to the broker. */
interface Session {
  conn: Connection;
  generation: number;
  /** False after `write()` returned false, until `'drain'`. */
  writable: boolean;
  /** GOAWAY received: no new publishes or subscriptions on this connection. */
  goingAway: boolean;
  /** Queues subscribed on this connection, and those the broker has drained. */
  subscribed: Set<string>;
  drained: Set<string>;
  /** Deliveries received on this connection and not yet acked or nacked. */
  unsettled: number;
  ended: boolean;
}

/** A message delivered to a consumer. Call `ack()` once processed, or `nack()`. */
export class Delivery {
  readonly queue: string;
  readonly body: Uint8Array;
  /** It was delivered before to a consumer that did not ack it: it may have been processed. */
  readonly redelivered: boolean;
  /** Number of the connection it arrived on (`'connected'` event). */
  readonly generation: number;
  readonly #tag: number;
  readonly #settle: (envelope: Envelope) => boolean;
  #settled = false;

  /** @internal Created by `MqClient`; `settle` sends an Ack or Nack on the delivery's connection. */
  constructor(deliver: Deliver, generation: number, settle: (envelope: Envelope) => boolean) {
    this.queue = deliver.queue;
    this.body = deliver.body;
    this.redelivered = deliver.redelivered;
    this.generation = generation;
    this.#tag = deliver.deliveryTag;
    this.#settle = settle;
  }

  /** The message was processed: the broker forgets it. False if its connection is gone (it will be redelivered). */
  ack(): boolean {
    return this.#once({ kind: 'ack', ack: { deliveryTag: this.#tag } });
  }

  /** The message was not processed: `requeue` (default) puts it back at the head of its queue, otherwise the broker drops it. */
  nack(options: { requeue?: boolean } = {}): boolean {
    return this.#once({ kind: 'nack', nack: { deliveryTag: this.#tag, requeue: options.requeue ?? true } });
  }

  #once(envelope: Envelope): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    return this.#settle(envelope);
  }
}

/** The deliveries of one queue, in order: `for await (const delivery of subscription)`. */
export class Subscription implements AsyncIterable<Delivery> {
  readonly queue: string;
  /** Most unacknowledged deliveries the broker sends (0: the broker's default). */
  readonly prefetch: number;
  private buffer: { delivery: Delivery; taken: () => void }[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  /** @internal Created by `MqClient.subscribe()`. */
  constructor(queue: string, prefetch: number) {
    this.queue = queue;
    this.prefetch = prefetch;
  }

  /**
   * @internal A delivery arrived. The returned promise resolves when the application takes it:
   * until then it holds heartwire credit, so a consumer that stops reading stops the broker
   * instead of growing memory.
   */
  push(delivery: Delivery): Promise<void> {
    return new Promise((taken) => {
      this.buffer.push({ delivery, taken });
      this.wake?.();
    });
  }

  /** @internal Forget the deliveries of a connection that ended: the broker redelivers them. */
  dropGeneration(generation: number): void {
    const dropped = this.buffer.filter((entry) => entry.delivery.generation === generation);
    this.buffer = this.buffer.filter((entry) => entry.delivery.generation !== generation);
    for (const entry of dropped) entry.taken();
  }

  /** @internal The client closed: iteration ends. */
  end(): void {
    this.ended = true;
    for (const entry of this.buffer) entry.taken();
    this.buffer = [];
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Delivery> {
    for (;;) {
      const next = this.buffer.shift();
      if (next !== undefined) {
        next.taken();
        yield next.delivery;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

/**
 * A broker client over one heartwire connection at a time, reconnecting with capped
 * exponential backoff and full jitter. Publishes wait for room (`maxUnconfirmed`, `maxUnconfirmedBytes`)
 * and resolve on the broker's confirm. On GOAWAY the client stops publishing on the old
 * connection, finishes its deliveries (until the broker says `Drained`), ends the connection
 * cleanly and reconnects: publishes issued meanwhile go out on the new connection.
 */
export class MqClient extends EventEmitter<MqClientEvents> {
  private readonly reconnecting: ReconnectingClient;
  private readonly maxUnconfirmed: number;
  private readonly maxUnconfirmedBytes: number;
  private readonly resend: boolean;
  private session: Session | undefined;
  private readonly pending = new Map<number, PendingPublish>();
  private unsent: PendingPublish[] = [];
  private pendingBytes = 0;
  private nextId = 1;
  private roomWaiters: (() => void)[] = [];
  private readonly subscriptions = new Map<string, Subscription>();
  private closed = false;
  private readonly counters = { confirmed: 0, resent: 0, received: 0 };

  constructor(options: MqClientOptions) {
    super();
    const { maxUnconfirmed, maxUnconfirmedBytes, resendUnconfirmed, ...reconnectOptions } = options;
    this.maxUnconfirmed = maxUnconfirmed ?? 1000;
    this.maxUnconfirmedBytes = maxUnconfirmedBytes ?? 16 * 1024 * 1024;
    this.resend = resendUnconfirmed ?? false;
    // GOAWAY is handled here (finish deliveries first), not by ending at once. heartwire refuses
    // options it does not know: only its own go to ReconnectingClient.
    this.reconnecting = new ReconnectingClient({ ...reconnectOptions, endOnGoAway: false });
    this.reconnecting.on('connected', (conn, generation) => this.onConnected(conn, generation));
    this.reconnecting.on('disconnected', (disconnection) => this.onDisconnected(disconnection));
    this.reconnecting.on('reconnecting', ({ attempt, delay }) => {
      if (!this.closed) this.emit('reconnecting', { attempt, delay });
    });
    this.reconnecting.on('stopped', (error) => {
      if (!this.closed)
        this.shutdown('CONNECTION_LOST', `gave up reconnecting: ${error?.message ?? 'stopped'}`);
    });
  }

  /** The open connection, if any (for `stats()`: RTT, credit, held bytes). */
  get connection(): Connection | undefined {
    return this.session?.conn;
  }

  /** Resolves once a connection is open. */
  async connected(): Promise<void> {
    await this.reconnecting.connected();
  }

  /**
   * Publish `body` to `queue`. Resolves when the broker confirms that the message is enqueued;
   * rejects with a {@link PublishError} (`QUEUE_FULL`, `CONNECTION_LOST`, `CLOSED`, …). Waits
   * first while `maxUnconfirmed` publishes (or `maxUnconfirmedBytes`) await their confirm.
   */
  async publish(queue: string, body: Uint8Array): Promise<void> {
    while (
      this.pending.size >= this.maxUnconfirmed ||
      (this.pending.size > 0 && this.pendingBytes + body.length > this.maxUnconfirmedBytes)
    ) {
      if (this.closed) break;
      await new Promise<void>((resolve) => this.roomWaiters.push(resolve));
    }
    if (this.closed) throw new PublishError('CLOSED', 'the client is closed', true);
    return new Promise<void>((resolve, reject) => {
      const publish: PendingPublish = {
        id: this.nextId++,
        queue,
        body,
        resolve,
        reject,
        generation: undefined,
      };
      this.pending.set(publish.id, publish);
      this.pendingBytes += body.length;
      this.unsent.push(publish);
      this.flush();
    });
  }

  /**
   * Consume `queue`: at most `prefetch` deliveries unacknowledged at once (0: the broker's
   * default). The subscription is renewed on every new connection and lasts until `close()`.
   */
  subscribe(queue: string, options: { prefetch?: number } = {}): Subscription {
    if (this.subscriptions.has(queue)) throw new Error(`already subscribed to ${queue}`);
    const subscription = new Subscription(queue, options.prefetch ?? 0);
    this.subscriptions.set(queue, subscription);
    if (this.session !== undefined && !this.session.goingAway) this.sendSubscribe(this.session, subscription);
    return subscription;
  }

  /** Counters. */
  stats(): MqClientStats {
    return { ...this.counters, unconfirmed: this.pending.size, unconfirmedBytes: this.pendingBytes };
  }

  /**
   * Stop: end the connection gracefully (publishes already sent get their confirms first), reject
   * the publishes still unconfirmed with `CLOSED`, and end every subscription's iteration.
   */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // End the connection ourselves first: ReconnectingClient.close() would abort it (CANCELLED).
    await this.session?.conn.end().catch(() => {});
    await this.reconnecting.close();
    this.shutdown('CLOSED', 'the client was closed before the confirm');
  }

  /** Reject what is still unconfirmed and end the subscriptions. */
  private shutdown(code: 'CLOSED' | 'CONNECTION_LOST', message: string): void {
    this.closed = true;
    for (const publish of this.pending.values()) {
      publish.reject(new PublishError(code, message, publish.generation === undefined));
    }
    this.pending.clear();
    this.unsent = [];
    this.pendingBytes = 0;
    for (const wake of this.roomWaiters.splice(0)) wake();
    for (const subscription of this.subscriptions.values()) subscription.end();
  }

  // ------------------------------------------------------------------ connection life cycle

  private onConnected(conn: Connection, generation: number): void {
    if (this.closed) return conn.abort();
    const session: Session = {
      conn,
      generation,
      writable: true,
      goingAway: false,
      subscribed: new Set(),
      drained: new Set(),
      unsettled: 0,
      ended: false,
    };
    this.session = session;
    conn.on('drain', () => {
      session.writable = true;
      this.flush();
    });
    conn.on('goaway', (goAway) => this.onGoAway(session, goAway));
    // A delivery's handler settles when the application takes it: credit returns only then.
    void conn.handle((bytes) => this.onMessage(session, bytes), { concurrency: 1 << 16 }).catch(() => {});
    for (const subscription of this.subscriptions.values()) this.sendSubscribe(session, subscription);
    this.unsent.sort((a, b) => a.id - b.id); // resent publishes keep their original order
    this.flush();
    this.emit('connected', generation);
  }

  private onDisconnected({ generation, info, notProcessed }: Disconnection): void {
    const session = this.session?.generation === generation ? this.session : undefined;
    if (session !== undefined) this.session = undefined;
    for (const subscription of this.subscriptions.values()) subscription.dropGeneration(generation);
    // Heartwire says which of our messages the broker certainly never processed.
    const certainlyLost = new Set<number>();
    for (const bytes of notProcessed) {
      const envelope = decode(bytes);
      if (envelope.kind === 'publish') certainlyLost.add(envelope.publish.id);
    }
    for (const publish of this.pending.values()) {
      if (publish.generation !== generation) continue;
      publish.generation = undefined;
      if (this.resend && !this.closed) {
        this.counters.resent++;
        this.unsent.push(publish);
      } else {
        this.forget(publish);
        const safe = certainlyLost.has(publish.id);
        const detail = safe ? 'the broker did not get it' : 'the broker may have enqueued it';
        publish.reject(
          new PublishError('CONNECTION_LOST', `connection lost before the confirm (${detail})`, safe),
        );
      }
    }
    this.emit('disconnected', { generation, error: info?.error });
  }

  private onGoAway(session: Session, goAway: GoAwayInfo): void {
    session.goingAway = true;
    this.emit('goaway', goAway);
    // End after the broker's Drained and our acks, or shortly before the grace expires anyway.
    const margin = Math.min(1000, goAway.graceMs / 4) + (session.conn.stats().smoothedRttMs ?? 0);
    const timer = setTimeout(
      () => this.end(session),
      Math.max(0, goAway.deadline - margin - performance.now()),
    );
    timer.unref();
    session.conn.once('close', () => clearTimeout(timer));
    this.maybeEnd(session);
  }

  /** After GOAWAY: end once every subscription is drained and every delivery settled. */
  private maybeEnd(session: Session): void {
    if (!session.goingAway || session.unsettled > 0) return;
    for (const queue of session.subscribed) if (!session.drained.has(queue)) return;
    this.end(session);
  }

  private end(session: Session): void {
    if (session.ended) return;
    session.ended = true;
    void session.conn.end().catch(() => {});
  }

  // ------------------------------------------------------------------ messages

  private onMessage(session: Session, bytes: Uint8Array): Promise<void> | void {
    let envelope: Envelope;
    try {
      envelope = decode(bytes);
    } catch {
      return; // not a broker message: ignore it
    }
    switch (envelope.kind) {
      case 'confirm':
        return this.settlePublish(envelope.confirm.id, undefined);
      case 'error': {
        const { error } = envelope;
        if (this.pending.has(error.id)) {
          // UNAVAILABLE: the broker's store did not answer, the message may be stored.
          const notProcessed = error.code !== 'UNAVAILABLE';
          return this.settlePublish(error.id, new PublishError(error.code, error.message, notProcessed));
        }
        this.emit('broker-error', error);
        return;
      }
      case 'deliver': {
        const subscription = this.subscriptions.get(envelope.deliver.queue);
        if (subscription === undefined) return;
        this.counters.received++;
        session.unsettled++;
        const settle = (reply: Envelope): boolean => this.settle(session, reply);
        return subscription.push(new Delivery(envelope.deliver, session.generation, settle));
      }
      case 'drained':
        session.drained.add(envelope.drained.queue);
        return this.maybeEnd(session);
    }
  }

  /** Send an Ack or Nack on the delivery's own connection (tags are per connection). */
  private settle(session: Session, envelope: Envelope): boolean {
    session.unsettled--;
    let sent = false;
    const bytes = encode(envelope);
    try {
      session.conn.write(bytes);
      sent = true;
    } catch (error) {
      // A full send queue (publishes filled it): the ack waits for room instead of being dropped.
      // Otherwise the connection is closing or gone: the broker redelivers the message.
      if ((error as { code?: unknown }).code === 'SEND_QUEUE_FULL') {
        session.conn.send(bytes).catch(() => {});
        sent = true;
      }
    }
    this.maybeEnd(session);
    return sent;
  }

  private settlePublish(id: number, error: PublishError | undefined): void {
    const publish = this.pending.get(id);
    if (publish === undefined) return;
    this.forget(publish);
    if (error === undefined) {
      this.counters.confirmed++;
      publish.resolve();
    } else publish.reject(error);
  }

  private forget(publish: PendingPublish): void {
    this.pending.delete(publish.id);
    this.pendingBytes -= publish.body.length;
    const waiters = this.roomWaiters.splice(0);
    for (const wake of waiters) wake();
  }

  /** Write unsent publishes while the connection accepts them. */
  private flush(): void {
    const session = this.session;
    if (session === undefined || session.goingAway) return;
    while (this.unsent.length > 0 && session.writable) {
      const publish = this.unsent[0]!;
      try {
        session.writable = session.conn.write(
          encode({ kind: 'publish', publish: { queue: publish.queue, id: publish.id, body: publish.body } }),
        );
      } catch {
        return; // closing: 'disconnected' follows, and the next connection sends it
      }
      this.unsent.shift();
      publish.generation = session.generation;
    }
  }

  private sendSubscribe(session: Session, subscription: Subscription): void {
    try {
      session.conn.write(
        encode({
          kind: 'subscribe',
          subscribe: { queue: subscription.queue, prefetch: subscription.prefetch },
        }),
      );
      session.subscribed.add(subscription.queue);
    } catch {
      // closing: the next connection subscribes again
    }
  }
}
