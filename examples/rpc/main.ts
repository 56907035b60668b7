/**
 * The RPC example, start to end in one process:
 *
 * ```sh
 * npx tsx examples/rpc/main.ts
 * ```
 *
 * Two servers, A and B, and one client that prefers A. It shows a call, a deadline, a
 * cancellation, and A going away (GOAWAY) while calls are in flight: they finish on A, new calls
 * go to B, and nothing fails.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { RpcClient, RpcError, RpcServer } from './rpc.js';
import type { RpcHandler } from './rpc.js';

/** The methods of a server called `name`. */
function methods(name: string): Record<string, RpcHandler> {
  return {
    whoami: () => name,
    // Works `ms` milliseconds unless cancelled (the signal also fires at the caller's deadline).
    work: async (params, { signal }) => {
      const { ms } = params as { ms: number };
      await sleep(ms, undefined, { signal });
      return `${name} worked ${ms} ms`;
    },
  };
}

const a = new RpcServer(methods('A'));
const b = new RpcServer(methods('B'));
const endpoints = [
  { host: '127.0.0.1', port: (await a.listen()).port },
  { host: '127.0.0.1', port: (await b.listen()).port },
];
const client = new RpcClient({ endpoints, defaultTimeout: 5000 });
client.on('connected', (endpoint) => console.log(`  [client] connected to ${endpoint}`));
client.on('goaway', (endpoint, { graceMs }) =>
  console.log(`  [client] GOAWAY from ${endpoint} (grace ${graceMs} ms)`),
);
client.on('disconnected', (endpoint, error) =>
  console.log(`  [client] ${endpoint} closed ${error ? `(${error.message})` : 'cleanly'}`),
);
const failure = (error: unknown): string => (error instanceof RpcError ? error.code : String(error));

console.log('1. a call');
console.log(`   whoami -> ${await client.call('whoami')}`);

console.log('2. a deadline: work 2000 ms with a 200 ms timeout');
await client
  .call('work', { ms: 2000 }, { timeout: 200 })
  .catch((error) => console.log(`   -> ${failure(error)}`));

console.log('3. a cancellation: abort after 100 ms');
const controller = new AbortController();
setTimeout(() => controller.abort(), 100);
await client
  .call('work', { ms: 2000 }, { signal: controller.signal })
  .catch((error) => console.log(`   -> ${failure(error)}`));

console.log('4. A goes away with three calls in flight');
const inFlight = [300, 600, 900].map((ms) => client.call<string>('work', { ms }));
await sleep(50);
const closing = a.close({ grace: 5000 });
await sleep(50);
console.log(`   a new call: whoami -> ${await client.call('whoami')}`);
for (const result of await Promise.allSettled(inFlight)) {
  console.log(`   in flight -> ${result.status === 'fulfilled' ? result.value : failure(result.reason)}`);
}
await closing;
console.log('   A is closed');

await client.close();
await b.close({ grace: 1000 });
