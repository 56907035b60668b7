/**
 * What the two demos (`claims.ts`, `rolling.ts`) share: the {@link Ledger} that publishes at a
 * rate and counts every message by id (confirmed, consumed, rejected, missing, duplicates), the
 * {@link Stage} a demo runs on (its output, its clock, what it closes at the end), and
 * {@link runStage}, which runs one, prints the verdict table and turns it into an exit status.
 * @module
 */
import { PublishError } from '../mq-client/mq-client.js';
import type { MqClient } from '../mq-client/mq-client.js';
import { delay, table } from '../../src/cli/util.js';
import type { Output } from '../../src/cli/util.js';

/** The queue both demos publish to and consume from. */
export const QUEUE = 'orders';

/** One row of the final table. */
export interface Verdict {
  claim: string;
  measured: string;
  ok: boolean;
}

/** A demo: what it says, what it owns and closes at the end. */
export abstract class Stage {
  private readonly started = performance.now();
  protected readonly disposers: (() => Promise<unknown>)[] = [];

  constructor(protected readonly output: Output) {}

  abstract run(): Promise<Verdict[]>;

  protected say(line: string): void {
    this.output.out(line);
  }

  /** A line stamped with the seconds since the demo started. */
  protected progress(line: string): void {
    const t = ((performance.now() - this.started) / 1000).toFixed(1).padStart(5);
    this.output.out(`  [${t} s] ${line}`);
  }

  /** Register something to close at the end, and return it. */
  protected own<T>(thing: T, close: (thing: T) => Promise<unknown>): T {
    this.disposers.push(() => close(thing));
    return thing;
  }

  /** Close everything owned, the last first; failures are ignored. */
  async dispose(): Promise<void> {
    for (const close of this.disposers.splice(0).reverse()) await close().catch(() => {});
  }
}

/**
 * Run `stage` until it ends or `stop` (Ctrl-C) interrupts it; print its verdicts as a table, then
 * `conclusion(failed)`. Resolves with the exit status: 0 when every verdict is ok.
 */
export async function runStage(
  stage: Stage,
  output: Output,
  stop: Promise<unknown>,
  conclusion: (failed: number) => string,
): Promise<number> {
  const interrupted = stop.then(() => 'interrupted' as const);
  try {
    const outcome = await Promise.race([stage.run(), interrupted]);
    if (outcome === 'interrupted') {
      output.err('heartwire demo: interrupted');
      return 1;
    }
    output.out('');
    const rows = [
      ['claim', 'measured', 'verdict'],
      ...outcome.map((v) => [v.claim, v.measured, v.ok ? 'PASS' : 'FAIL']),
    ];
    for (const line of table(rows)) output.out(line);
    const failed = outcome.filter((v) => !v.ok).length;
    output.out('');
    output.out(conclusion(failed));
    return failed === 0 ? 0 : 1;
  } catch (error) {
    output.err(`heartwire demo: ${(error as Error).message}`);
    return 1;
  } finally {
    await Promise.race([stage.dispose(), delay(5000)]);
  }
}

/** How {@link Ledger.produce} publishes. */
export interface Load {
  /** Messages per second, all producers together, and their size. */
  rate: number;
  bodyBytes: number;
  /** Message ids are `${tag}-${n}`. */
  tag: string;
  /** Publishing goes on while this holds. */
  running: () => boolean;
  /** Called about once a second while publishing. */
  report?: () => void;
}

/** Every message of a demo, by id: confirmed publishes, consumptions, rejected publishes. */
export class Ledger {
  /** Ids of the publishes the broker confirmed. */
  readonly confirmed = new Set<string>();
  /** Id → how many times it was consumed. */
  readonly consumed = new Map<string, number>();
  /** Publishes that were not confirmed (a PublishError). */
  rejected = 0;
  private consumerPaused: Promise<void> | undefined;
  private resumeConsumer: (() => void) | undefined;

  /** Publishes settled: confirmed and rejected. */
  get published(): number {
    return this.confirmed.size + this.rejected;
  }

  /** Consume `QUEUE` for the whole run, counting ids; honours pause(). */
  consume(consumer: MqClient, prefetch: number): void {
    void (async () => {
      for await (const delivery of consumer.subscribe(QUEUE, { prefetch })) {
        if (this.consumerPaused !== undefined) await this.consumerPaused;
        const id = new TextDecoder().decode(delivery.body.subarray(0, 24)).trimEnd();
        this.consumed.set(id, (this.consumed.get(id) ?? 0) + 1);
        delivery.ack();
      }
    })();
  }

  /** The consumers stop taking deliveries until resume(). */
  pause(): void {
    this.consumerPaused = new Promise((resolve) => (this.resumeConsumer = resolve));
  }

  resume(): void {
    this.resumeConsumer?.();
    this.consumerPaused = undefined;
  }

  /** Publish at `load.rate` while `load.running()`, split among the producers; resolves once all settled. */
  async produce(producers: MqClient[], load: Load): Promise<void> {
    const pending = new Set<Promise<void>>();
    const start = performance.now();
    let sent = 0;
    let nextReport = start + 1000;
    while (load.running()) {
      if (load.report !== undefined && performance.now() >= nextReport) {
        nextReport += 1000;
        load.report();
      }
      const due = Math.floor(((performance.now() - start) * load.rate) / 1000);
      // Never more than 2 000 publishes outstanding: the producers' memory stays bounded too.
      for (; sent < due && pending.size < 2000; sent++) {
        const id = `${load.tag}-${sent}`;
        const body = new Uint8Array(load.bodyBytes).fill(0x20);
        new TextEncoder().encodeInto(id, body);
        const publish = producers[sent % producers.length]!.publish(QUEUE, body).then(
          () => void this.confirmed.add(id),
          (error: unknown) => {
            this.rejected++;
            if (!(error instanceof PublishError)) throw error;
          },
        );
        pending.add(publish);
        void publish.finally(() => pending.delete(publish));
      }
      await delay(10);
    }
    await Promise.all(pending);
  }

  /** Wait until every confirmed message has been consumed (bounded by `limit` ms). */
  async caughtUp(limit: number): Promise<boolean> {
    const until = performance.now() + limit;
    while (this.missing() > 0 && performance.now() < until) await delay(20);
    return this.missing() === 0;
  }

  /** Confirmed messages not consumed (yet). */
  missing(): number {
    let missing = 0;
    for (const id of this.confirmed) if (!this.consumed.has(id)) missing++;
    return missing;
  }

  /** Consumptions beyond the first of each id (redeliveries: at-least-once). */
  duplicates(): number {
    return [...this.consumed.values()].reduce((n, times) => n + times - 1, 0);
  }
}
