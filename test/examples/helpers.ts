/** Shared by the tests of examples/broker (in memory and on Redis Streams). */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Delivery, MqClient } from '../../examples/mq-client/mq-client.js';

/** Polls `condition` (every 5 ms) until it holds; rejects after `timeoutMs`. */
export async function waitUntil(condition: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!condition()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** Collects deliveries of `queue` in the background, acking each unless `ack` is false. */
export function collect(
  client: MqClient,
  queue: string,
  options: { prefetch?: number; ack?: boolean } = {},
): Delivery[] {
  const received: Delivery[] = [];
  void (async () => {
    for await (const delivery of client.subscribe(queue, { prefetch: options.prefetch ?? 100 })) {
      received.push(delivery);
      if (options.ack !== false) delivery.ack();
    }
  })();
  return received;
}
