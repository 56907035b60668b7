/**
 * Publishes and consumes messages with {@link MqClient}:
 *
 * ```sh
 * npx tsx examples/mq-client/main.ts                # with a broker started in this process
 * npx tsx examples/mq-client/main.ts --port 5673    # against a running broker (examples/broker/main.ts)
 * ```
 * @module
 */
import { parseArgs } from 'node:util';
import { Broker } from '../broker/broker.js';
import { MqClient } from './mq-client.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string' },
    host: { type: 'string', default: '127.0.0.1' },
    count: { type: 'string', default: '10000' },
    queue: { type: 'string', default: 'example' },
  },
});
const count = Number(values.count);

// Without --port, run a broker here.
const broker = values.port === undefined ? new Broker() : undefined;
const port = broker !== undefined ? (await broker.listen(0)).port : Number(values.port);
const host = values.host;

// Two clients: consuming and publishing on separate connections, so that a slow consumer never
// holds up the confirms of the publisher.
const publisher = new MqClient({ host, port, resendUnconfirmed: true });
const consumer = new MqClient({ host, port });
publisher.on('disconnected', ({ error }) =>
  console.log(`publisher disconnected${error ? `: ${error.code}` : ''}`),
);
publisher.on('reconnecting', ({ delay }) => console.log(`publisher reconnecting in ${delay} ms`));

const started = performance.now();
const encoder = new TextEncoder();
const publishing = (async () => {
  const confirms: Promise<void>[] = [];
  // publish() waits while maxUnconfirmed (1000) publishes await their confirm: memory stays bounded.
  for (let i = 0; i < count; i++)
    confirms.push(publisher.publish(values.queue, encoder.encode(`message ${i}`)));
  await Promise.all(confirms);
  console.log(`${count} publishes confirmed`);
})();

let received = 0;
for await (const delivery of consumer.subscribe(values.queue, { prefetch: 100 })) {
  delivery.ack();
  if (++received % Math.max(1, Math.floor(count / 5)) === 0) console.log(`received ${received}`);
  if (received === count) break;
}
await publishing;
const seconds = (performance.now() - started) / 1000;
console.log(
  `${received} messages through the broker in ${seconds.toFixed(2)} s (${Math.round(received / seconds)}/s)`,
);
await Promise.all([publisher.close(), consumer.close()]);
await broker?.close({ grace: 1000 });
