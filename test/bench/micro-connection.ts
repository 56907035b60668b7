/**
 * Development aid: the receiving `Connection` alone, in one process, without a kernel socket,
 * for each documented way to consume (`read()` + `'readable'`, `for await`, `handle()` with a
 * synchronous or an async handler, concurrency 1 or 16). A sans-IO client engine encodes the
 * messages; their bytes reach the server's `Connection` as 64 KiB `'data'` events on a stand-in
 * socket, each in its own callback with its microtasks run before the next (as a real socket's
 * reads in one poll phase). Prints the server side's CPU ns per message (connection, engine and
 * the consumer; the client's encoding is not counted), the best of rounds taken in turn, so that
 * what each receive path adds over `read()` shows without the noise of a shared machine.
 * `node --import tsx test/bench/micro-connection.ts [64,1024] [--modes read,iterate,…] [--rounds 5]`.
 * Not part of `npm run bench`.
 * @module
 */
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { Connection } from '../../src/node/connection.js';
import { engineOptions } from '../../src/node/options.js';
import { Engine } from '../../src/protocol/engine.js';

const MODES = ['read', 'iterate', 'handle-sync', 'handle-async', 'handle16-async'] as const;
type Mode = (typeof MODES)[number];

const args = process.argv.slice(2);
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const sizes = (args.find((a) => /^\d/.test(a)) ?? '64,1024').split(',').map(Number);
const modes = (flag('--modes')?.split(',') ?? [...MODES]) as Mode[];
for (const mode of modes)
  if (!MODES.includes(mode)) throw new Error(`unknown mode ${mode}; modes: ${MODES.join(', ')}`);
const rounds = Number(flag('--rounds') ?? 5);
const ROUND_MS = 500;
const CHUNK = 64 * 1024;

/** Just enough of `net.Socket` for a `Connection`: what it writes goes to `sink`. */
class StandInSocket extends EventEmitter {
  destroyed = false;
  writableLength = 0;
  remoteAddress = '127.0.0.1';
  remotePort = 1;
  constructor(private readonly sink: (chunk: Uint8Array) => void) {
    super();
  }
  setNoDelay(): this {
    return this;
  }
  cork(): void {}
  uncork(): void {}
  write(chunk: Uint8Array, callback?: () => void): boolean {
    this.sink(chunk);
    if (callback !== undefined) process.nextTick(callback);
    return true;
  }
  end(): void {}
  destroy(): void {
    this.destroyed = true;
  }
}

const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

/** CPU time of this process, ns (the machine may be shared: wall time would count others' turns). */
function cpuNs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) * 1000;
}

/** A server `Connection` consuming in `mode`, fed by a client engine. */
interface Setup {
  mode: Mode;
  client: Engine;
  socket: StandInSocket;
  connection: Connection;
  delivered: () => number;
  best: number;
}

async function setUp(mode: Mode): Promise<Setup> {
  const client = new Engine({ ...engineOptions('client', {}), seed: 1 });
  const server = new Engine({ ...engineOptions('server', {}), seed: 2 });
  const socket = new StandInSocket((chunk) => client.receive(performance.now(), chunk));
  const connection = new Connection('server', socket as unknown as Socket, server, {});
  client.start(performance.now());
  for (let i = 0; i < 10; i++) {
    for (const c of client.pollTransmit(performance.now())) socket.emit('data', c.slice());
    await turn();
  }
  await connection.opened;
  while (client.pollEvent() !== undefined);
  let delivered = 0;
  const count = (message: Uint8Array): void => {
    delivered++;
    if (message.length < 0) throw new Error('unreachable');
  };
  if (mode === 'read') {
    connection.on('readable', () => {
      for (let m = connection.read(); m !== undefined; m = connection.read()) count(m);
    });
  } else if (mode === 'iterate') {
    void (async () => {
      for await (const m of connection) count(m);
    })().catch(() => {});
  } else {
    const handler = mode === 'handle-sync' ? count : async (m: Uint8Array): Promise<void> => count(m);
    void connection.handle(handler, { concurrency: mode === 'handle16-async' ? 16 : 1 }).catch(() => {});
  }
  return { mode, client, socket, connection, delivered: () => delivered, best: Infinity };
}

/** Push messages of `size` for {@link ROUND_MS}; returns server-side CPU ns per message. */
async function round(s: Setup, payload: Uint8Array): Promise<number> {
  const { client, socket } = s;
  let ns = 0;
  const first = s.delivered();
  const deadline = performance.now() + ROUND_MS;
  while (performance.now() < deadline) {
    const t = performance.now();
    while (client.trySend(t, payload));
    const chunks = client.pollTransmit(t);
    const all = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    let at = 0;
    for (const c of chunks) {
      all.set(c, at);
      at += c.length;
      client.transmitted(c);
    }
    // Like a socket's reads within one poll phase: each 'data' event in its own callback, with
    // the microtasks it queued run to completion before the next (setImmediate callbacks are run so).
    const t0 = cpuNs();
    for (let i = 0; i < all.length; i += CHUNK) {
      const chunk = all.subarray(i, Math.min(all.length, i + CHUNK));
      setImmediate(() => socket.emit('data', chunk));
    }
    await turn();
    ns += cpuNs() - t0;
    while (client.pollEvent() !== undefined);
  }
  return ns / (s.delivered() - first);
}

for (const size of sizes) {
  const setups: Setup[] = [];
  for (const mode of modes) setups.push(await setUp(mode));
  const payload = new Uint8Array(size).fill(7);
  // Round-robin, so that every mode sees the same neighbours; the best round counts.
  for (let r = 0; r < rounds; r++) {
    for (const s of setups) s.best = Math.min(s.best, await round(s, payload));
  }
  for (const s of setups) s.connection.abort();
  const base = setups[0]!.best;
  console.log(
    `${String(size).padStart(6)} B, CPU ns per message (ratio to ${setups[0]!.mode}): ${setups.map((s) => `${s.mode} ${s.best.toFixed(0)} (${(base / s.best).toFixed(2)}×)`).join(', ')}`,
  );
}
