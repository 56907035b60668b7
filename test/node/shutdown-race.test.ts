/**
 * Randomized shutdown races (issue 10 B6 "Done when"): seeded runs of client `end()`, server
 * `close({ grace })` with a random grace, both, the crash of either side (socket destroyed), a
 * server connection's GOAWAY, while clients send with `write()` (respecting `drain`) or `send()`
 * (several in flight), directly or through `ReconnectingClient` (which resends what was certainly
 * not processed). Every run checks, from the client's delivery reports and what the server
 * application saw:
 * - exact report: every accepted message is in exactly one class (consumed / unknown / not
 *   processed), in order, and `delivery.queued` equals the accepted count;
 * - consumed ⇒ the server application saw it; on a clean close, saw ⇔ consumed;
 * - not processed ⇒ the server never saw it (so resending it is safe);
 * - the server sees only accepted messages, and none twice (no duplicate, no unsafe retry);
 * - through `ReconnectingClient`: every message is seen once, or reported unknown, or still
 *   waiting to be resent when the client stops.
 *
 * Default: a few seeded runs (under ~20 s). Long version: `npm run test:race`
 * (`HEARTWIRE_RACE_RUNS`, default 300 there; `HEARTWIRE_RACE_SEED` replays one seed).
 */
import { once } from 'node:events';
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { seededRandom } from '../../src/protocol/engine.js';
import type { CloseInfo, DeliveryReport } from '../../src/protocol/types.js';
import {
  LOCALHOST,
  codeOf,
  observe,
  report,
  seqMessage,
  seqOf,
  sleep,
  useHarness,
  within,
} from './helpers.js';

const RUNS = Number(process.env.HEARTWIRE_RACE_RUNS ?? 12);
const FIXED_SEED = process.env.HEARTWIRE_RACE_SEED;

type Ending = 'client-end' | 'server-close' | 'both' | 'client-crash' | 'server-crash' | 'server-goaway';
const ENDINGS: Ending[] = [
  'client-end',
  'server-close',
  'both',
  'client-crash',
  'server-crash',
  'server-goaway',
];

interface Totals {
  runs: number;
  accepted: number;
  consumed: number;
  unknown: number;
  notProcessed: number;
  clean: number;
  resent: number;
}

/** The socket under a connection (a crash is a socket destroyed without any protocol). */
function crash(connection: Connection): void {
  (connection as unknown as { socket: { destroy(): void } }).socket.destroy();
}

/** Check one connection's report against the messages it accepted and what the server saw. */
function checkReport(
  delivery: DeliveryReport,
  clean: boolean,
  accepted: readonly number[],
  seen: ReadonlySet<number>,
  what: string,
): void {
  expect(delivery.queued, `${what}: delivery.queued = accepted`).to.equal(accepted.length);
  const consumed = accepted.slice(0, delivery.consumed);
  const unknown = delivery.unknown.map(seqOf);
  const notProcessed = delivery.notProcessed.map(seqOf);
  expect(
    [...consumed, ...unknown, ...notProcessed],
    `${what}: every accepted message in one class`,
  ).to.deep.equal(accepted);
  for (const id of consumed)
    expect(seen.has(id), `${what}: #${id} reported consumed, never seen`).to.equal(true);
  for (const id of notProcessed)
    expect(seen.has(id), `${what}: #${id} reported not processed, but the server saw it`).to.equal(false);
  if (clean) {
    expect(unknown.length + notProcessed.length, `${what}: clean close, all consumed`).to.equal(0);
    for (const id of accepted) expect(seen.has(id), `${what}: clean close, #${id} unseen`).to.equal(true);
  }
}

/** Sends ids from `next()` on `connection` until told to stop or refused; records what was accepted. */
class Sender {
  readonly accepted: number[] = [];
  /** Ids whose `write()` threw or whose `send()` rejected: not accepted. */
  readonly refused: number[] = [];
  private stopped = false;
  readonly done: Promise<void>;
  constructor(
    readonly connection: Connection,
    readonly mode: 'write' | 'send',
    readonly next: () => number,
    readonly size: () => number,
    readonly inFlight: number,
  ) {
    this.done = this.run();
  }
  stop(): void {
    this.stopped = true;
  }
  private async run(): Promise<void> {
    const closed = this.connection.closed.then(
      () => undefined,
      () => undefined,
    );
    let count = 0;
    if (this.mode === 'write') {
      while (!this.stopped) {
        const id = this.next();
        let ok: boolean;
        try {
          ok = this.connection.write(seqMessage(id, this.size()));
        } catch (error) {
          // Never SEND_QUEUE_FULL: this sender waits for drain.
          expect(codeOf(error), 'write() refused').to.not.equal('SEND_QUEUE_FULL');
          this.refused.push(id);
          return;
        }
        this.accepted.push(id);
        if (!ok) await Promise.race([once(this.connection, 'drain'), closed]);
        else if (++count % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
      }
      return;
    }
    // send(): several in flight; they are accepted in call order (a prefix of the calls).
    const calls: { id: number; ok?: boolean }[] = [];
    const pending = new Set<Promise<void>>();
    while (!this.stopped) {
      if (pending.size >= this.inFlight) {
        await Promise.race(pending);
        continue;
      }
      const call: { id: number; ok?: boolean } = { id: this.next() };
      calls.push(call);
      const promise = this.connection.send(seqMessage(call.id, this.size())).then(
        () => void (call.ok = true),
        () => {
          call.ok = false;
          this.stopped = true;
        },
      );
      pending.add(promise);
      void promise.finally(() => pending.delete(promise));
      if (++count % 8 === 0) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(pending);
    let refused = false;
    for (const call of calls) {
      if (call.ok === true) {
        expect(refused, `send() #${call.id} accepted after an earlier one was refused`).to.equal(false);
        this.accepted.push(call.id);
      } else {
        refused = true;
        this.refused.push(call.id);
      }
    }
  }
}

describe('node transport: randomized shutdown races', function () {
  this.timeout(Math.max(60_000, RUNS * 8000));
  const harness = useHarness();
  const totals: Totals = {
    runs: 0,
    accepted: 0,
    consumed: 0,
    unknown: 0,
    notProcessed: 0,
    clean: 0,
    resent: 0,
  };

  after(() => {
    const classified = totals.consumed + totals.unknown + totals.notProcessed;
    report(
      `shutdown races: ${totals.runs} runs, ${totals.accepted} messages accepted = ${totals.consumed} consumed + ` +
        `${totals.unknown} unknown + ${totals.notProcessed} not processed (${totals.accepted - classified} in no class), ${totals.clean} clean closes, ` +
        `${totals.resent} resent by ReconnectingClient, 0 duplicates`,
    );
  });

  /** One direct run: one client connection, one ending, checked. */
  async function directRun(seed: number): Promise<void> {
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const ending = pick(ENDINGS);
    const mode = random() < 0.5 ? 'write' : 'send';
    const maxSendQueue = pick([2048, 16 * 1024, 256 * 1024]);
    const seen = new Set<number>();
    const duplicates: number[] = [];
    const serverConnections: Connection[] = [];
    const { server, port } = await harness().server({ idleTimeout: 1000 }, (connection) => {
      serverConnections.push(connection);
      void (async () => {
        for await (const message of connection) {
          const id = seqOf(message);
          if (seen.has(id)) duplicates.push(id);
          seen.add(id);
          if (random() < 0.05) await sleep(1); // a slower consumer now and then
        }
      })().catch(() => {});
    });
    const client = await harness().connect({ port, idleTimeout: 1000, maxSendQueue });
    const clientClose = new Promise<CloseInfo>((resolve) => client.once('close', resolve));
    let id = 0;
    const sender = new Sender(
      client,
      mode,
      () => ++id,
      () => pick([16, 200, 1000, 8000]),
      1 + Math.floor(random() * 16),
    );
    await sleep(20 + random() * 200);
    const grace = Math.floor(random() * 300);
    const serverConnection = serverConnections[0]!;
    switch (ending) {
      case 'client-end':
        sender.stop();
        await sender.done;
        void client.end().catch(() => {});
        break;
      case 'server-close':
        void server.close({ grace }).catch(() => {});
        client.once('goaway', () => {
          sender.stop();
          void sender.done.then(() => client.end().catch(() => {}));
        });
        break;
      case 'both':
        void server.close({ grace }).catch(() => {});
        await sleep(random() * 20);
        sender.stop();
        void sender.done.then(() => client.end().catch(() => {}));
        break;
      case 'client-crash':
        crash(client);
        break;
      case 'server-crash':
        crash(serverConnection);
        break;
      case 'server-goaway':
        void serverConnection.end({ grace }).catch(() => {});
        break;
    }
    const info = await within(clientClose, 15_000, `seed ${seed} (${ending}): the client to close`);
    sender.stop();
    await within(sender.done, 5000, `seed ${seed}: the sender to stop`);
    await within(observe(serverConnection.closed), 15_000, `seed ${seed}: the server connection to close`);
    const what = `seed ${seed} (${ending}, ${mode}, maxSendQueue ${maxSendQueue}, ${info.clean ? 'clean' : codeOf(info.error)})`;
    expect(duplicates, `${what}: duplicates`).to.deep.equal([]);
    for (const seenId of seen)
      expect(sender.accepted.includes(seenId), `${what}: the server saw #${seenId}, never accepted`).to.equal(
        true,
      );
    checkReport(info.delivery, info.clean, sender.accepted, seen, what);
    totals.runs++;
    totals.accepted += sender.accepted.length;
    totals.consumed += info.delivery.consumed;
    totals.unknown += info.delivery.unknown.length;
    totals.notProcessed += info.delivery.notProcessed.length;
    if (info.clean) totals.clean++;
    await server.close({ grace: 0 }).catch(() => {});
  }

  /** One run through ReconnectingClient: the server disrupts connections; the client resends. */
  async function reconnectingRun(seed: number): Promise<void> {
    const random = seededRandom(seed);
    const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
    const mode = random() < 0.5 ? 'write' : 'send';
    const maxSendQueue = pick([2048, 16 * 1024, 256 * 1024]);
    const seenCount = new Map<number, number>();
    const current: Connection[] = [];
    const { server, port } = await harness().server({ idleTimeout: 1000 }, (connection) => {
      current.push(connection);
      void (async () => {
        for await (const message of connection) {
          const id = seqOf(message);
          seenCount.set(id, (seenCount.get(id) ?? 0) + 1);
        }
      })().catch(() => {});
    });
    const rc = new ReconnectingClient({
      host: LOCALHOST,
      port,
      idleTimeout: 1000,
      maxSendQueue,
      minDelay: 5,
      maxDelay: 50,
    });
    harness().defer(() => rc.close());
    let nextId = 0;
    const resend: number[] = [];
    const unknown = new Set<number>();
    const failures: string[] = [];
    const senders = new Map<number, Sender>();
    let stopping = false;
    rc.on('connected', (connection, generation) => {
      if (stopping) return;
      senders.set(
        generation,
        new Sender(
          connection,
          mode,
          () => resend.shift() ?? ++nextId,
          () => pick([16, 200, 1000, 8000]),
          1 + Math.floor(random() * 16),
        ),
      );
    });
    let disconnections = 0;
    rc.on('disconnected', (d) => {
      disconnections++;
      const sender = senders.get(d.generation);
      if (sender === undefined) return;
      sender.stop();
      void sender.done.then(() => {
        resend.push(...sender.refused);
        const seen = new Set([...seenCount.keys()]);
        try {
          checkReport(
            d.info!.delivery,
            d.info!.clean,
            sender.accepted,
            seen,
            `seed ${seed} generation ${d.generation}`,
          );
        } catch (error) {
          failures.push(String(error));
        }
        const delivery = d.info!.delivery;
        totals.consumed += delivery.consumed;
        totals.unknown += delivery.unknown.length;
        totals.notProcessed += delivery.notProcessed.length;
        if (d.info!.clean) totals.clean++;
        for (const message of d.notProcessed) resend.push(seqOf(message));
        for (const message of d.unknown) unknown.add(seqOf(message));
        totals.resent += d.notProcessed.length;
      });
    });
    const disruptions = 2 + Math.floor(random() * 3);
    for (let i = 0; i < disruptions; i++) {
      await sleep(60 + random() * 150);
      const connection = current.at(-1);
      if (connection === undefined || connection.state === 'closed') continue;
      if (random() < 0.5) crash(connection);
      else void connection.end({ grace: Math.floor(random() * 200) }).catch(() => {});
    }
    await sleep(100);
    stopping = true;
    for (const sender of senders.values()) sender.stop();
    await within(rc.close(), 15_000, `seed ${seed}: ReconnectingClient.close()`);
    await within(
      (async () => {
        while (disconnections < senders.size) await sleep(10);
        await Promise.all([...senders.values()].map((s) => s.done));
        await sleep(20); // the last 'disconnected' handler's checks
      })(),
      15_000,
      `seed ${seed}: every connection to report`,
    );
    expect(failures, `seed ${seed}: report checks`).to.deep.equal([]);
    const duplicates = [...seenCount].filter(([, n]) => n > 1).map(([id]) => id);
    expect(duplicates, `seed ${seed} (ReconnectingClient, ${mode}): seen twice`).to.deep.equal([]);
    const pendingResend = new Set(resend);
    for (let id = 1; id <= nextId; id++) {
      const fate = seenCount.has(id) || unknown.has(id) || pendingResend.has(id);
      // Ids taken by a write()/send() that was refused are resent too: they are pending or seen.
      expect(fate, `seed ${seed}: message #${id} neither seen, unknown nor handed back`).to.equal(true);
    }
    let accepted = 0;
    for (const sender of senders.values()) accepted += sender.accepted.length;
    await server.close({ grace: 0 }).catch(() => {});
    totals.runs++;
    totals.accepted += accepted;
  }

  const seeds =
    FIXED_SEED !== undefined ? [Number(FIXED_SEED)] : Array.from({ length: RUNS }, (_, i) => 1000 + i);
  it(`direct connections: ${seeds.length} seeded runs`, async () => {
    for (const seed of seeds) {
      try {
        await directRun(seed);
      } catch (error) {
        console.error(`shutdown race failed: replay with HEARTWIRE_RACE_SEED=${seed}`);
        throw error;
      }
    }
  });

  it(`through ReconnectingClient: ${Math.max(1, Math.ceil(seeds.length / 3))} seeded runs`, async () => {
    for (const seed of seeds.slice(0, Math.max(1, Math.ceil(seeds.length / 3)))) {
      try {
        await reconnectingRun(seed);
      } catch (error) {
        console.error(`shutdown race (ReconnectingClient) failed: replay with HEARTWIRE_RACE_SEED=${seed}`);
        throw error;
      }
    }
  });
});
