/**
 * Runs the example broker:
 *
 * ```sh
 * npx tsx examples/broker/main.ts --port 5673 [--state broker-state.json]
 * npx tsx examples/broker/main.ts --port 5674 --redis redis://127.0.0.1:6379   # queues in Redis
 * ```
 *
 * With `--redis`, several brokers share the queues of one Redis (Streams, one consumer group);
 * `ioredis` is loaded only then.
 *
 * Ctrl-C (or SIGTERM) shuts it down gracefully: GOAWAY to every client with `--grace` ms, and
 * the messages still held are written to `--state` (and read back at the next start), so a
 * restart loses nothing.
 * @module
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { Broker, createRedisStore } from './broker.js';
import type { BrokerSnapshot, OverflowPolicy, QueueStore } from './broker.js';

const usage = `usage: npx tsx examples/broker/main.ts [options]

  --port N               port to listen on (default 5673)
  --host H               address to listen on (default 127.0.0.1)
  --grace MS             GOAWAY grace period at shutdown (default 5000)
  --idle-timeout MS      heartwire idle timeout (default 20000)
  --max-queue-length N   messages per queue (default 10000)
  --overflow POLICY      reject-publish (default) or drop-head
  --state FILE           keep the messages held at shutdown in FILE, and load it at start
  --redis URL            keep the queues in Redis Streams (redis://host:port), shared with
                         other brokers on the same Redis (--max-queue-length applies there;
                         --overflow, --state do not)
  --lease-timeout MS     with --redis: a broker silent this long is dead, others redeliver
                         what it held (default: the idle timeout)
  -h, --help             show this help`;

/** Snapshot as JSON: bodies in base64. */
function save(file: string, snapshot: BrokerSnapshot): void {
  const queues = snapshot.queues.map(({ name, messages }) => ({
    name,
    messages: messages.map((m) => ({
      body: Buffer.from(m.body).toString('base64'),
      redelivered: m.redelivered,
    })),
  }));
  writeFileSync(file, JSON.stringify({ queues }));
}

function load(file: string): BrokerSnapshot {
  const { queues } = JSON.parse(readFileSync(file, 'utf8')) as {
    queues: { name: string; messages: { body: string; redelivered: boolean }[] }[];
  };
  return {
    queues: queues.map(({ name, messages }) => ({
      name,
      messages: messages.map((m) => ({ body: Buffer.from(m.body, 'base64'), redelivered: m.redelivered })),
    })),
  };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string', default: '5673' },
      host: { type: 'string', default: '127.0.0.1' },
      grace: { type: 'string', default: '5000' },
      'idle-timeout': { type: 'string', default: '20000' },
      'max-queue-length': { type: 'string', default: '10000' },
      overflow: { type: 'string', default: 'reject-publish' },
      state: { type: 'string' },
      redis: { type: 'string' },
      'lease-timeout': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage);
    return;
  }
  const overflow = values.overflow as OverflowPolicy;
  if (overflow !== 'reject-publish' && overflow !== 'drop-head')
    throw new Error(`unknown --overflow ${overflow}`);
  const restore = values.state !== undefined && existsSync(values.state) ? load(values.state) : undefined;
  let store: QueueStore | undefined;
  if (values.redis !== undefined) {
    store = await createRedisStore({
      redis: values.redis,
      leaseTimeout: Number(values['lease-timeout'] ?? values['idle-timeout']),
      maxQueueLength: Number(values['max-queue-length']),
    });
  }
  const broker = new Broker({
    store,
    server: { idleTimeout: Number(values['idle-timeout']) },
    maxQueueLength: Number(values['max-queue-length']),
    overflow,
    restore,
  });
  broker.on('store-error', (error) => console.error(`store: ${error.message}`));
  broker.on('connect', ({ id, remoteAddress }) => console.log(`connection ${id} from ${remoteAddress}`));
  broker.on('disconnect', ({ id, clean, error, requeued }) => {
    const how = clean ? 'closed cleanly' : `lost (${error?.code})`;
    console.log(`connection ${id} ${how}${requeued > 0 ? `, ${requeued} unacked message(s) requeued` : ''}`);
  });

  let stopping = false;
  const stop = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    console.log(`shutting down: GOAWAY to ${broker.stats().connections} client(s), grace ${values.grace} ms`);
    const snapshot = await broker.close({ grace: Number(values.grace) });
    const held = snapshot.queues.reduce((n, q) => n + q.messages.length, 0);
    if (values.state !== undefined) {
      save(values.state, snapshot);
      console.log(`${held} message(s) saved to ${values.state}`);
    } else if (held > 0) {
      console.log(`${held} message(s) still queued are dropped (use --state to keep them)`);
    }
    const { published, delivered, acked } = broker.stats();
    console.log(`published ${published}, delivered ${delivered}, acked ${acked}`);
  };
  process.on('SIGINT', () => void stop());
  process.on('SIGTERM', () => void stop());

  broker.listen(Number(values.port), values.host).then(
    ({ address, port }) => {
      const restored = restore?.queues.reduce((n, q) => n + q.messages.length, 0) ?? 0;
      console.log(
        `broker listening on ${address}:${port}${restored > 0 ? ` (${restored} message(s) restored)` : ''}` +
          (values.redis !== undefined ? `, queues in ${values.redis}` : ''),
      );
    },
    (error: Error) => {
      console.error(`broker: ${error.message}`);
      process.exitCode = 1;
    },
  );
}

main().catch((error: unknown) => {
  console.error(`broker: ${(error as Error).message}\n\n${usage}`);
  process.exitCode = 2;
});
