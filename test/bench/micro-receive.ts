/**
 * Development aid: the receive path of the sans-IO engine alone (decode, queue, read, grant),
 * and its send path (queue, encode), without sockets, to compare code changes quickly. Prints ns
 * per message for each size.
 * `node --import tsx test/bench/micro-receive.ts [64,1024] [--rounds 5] [--cpu]`; with `--cpu` the
 * process's CPU time is measured instead of the wall clock (on a shared machine, time spent
 * waiting for a core then does not count).
 * Not part of `npm run bench`.
 * @module
 */
import { Engine } from '../../src/protocol/engine.js';

const args = process.argv.slice(2);
const sizes = (args.find((a) => /^\d/.test(a)) ?? '64,1024').split(',').map(Number);
const roundsIndex = args.indexOf('--rounds');
const rounds = roundsIndex >= 0 ? Number(args[roundsIndex + 1]) : 5;
const CHUNK = 64 * 1024;
const cpu = args.includes('--cpu');
/** A clock in ns: wall (hrtime) or this process's CPU time. */
const clock = cpu
  ? (): bigint => {
      const u = process.cpuUsage();
      return BigInt(u.user + u.system) * 1000n;
    }
  : (): bigint => process.hrtime.bigint();

function pair(): { client: Engine; server: Engine } {
  const client = new Engine({ role: 'client', maxWindowBytes: 8 << 20, seed: 1 });
  const server = new Engine({ role: 'server', maxWindowBytes: 8 << 20, seed: 2 });
  server.start(0);
  client.start(0);
  for (let i = 0; i < 10; i++) {
    for (const c of client.pollTransmit(0)) server.receive(0, c);
    for (const c of server.pollTransmit(0)) client.receive(0, c);
  }
  while (client.pollEvent() !== undefined);
  while (server.pollEvent() !== undefined);
  return { client, server };
}

/** Cut a byte stream into read-sized chunks, as a socket would deliver it. */
function rechunk(chunks: Uint8Array[]): Uint8Array[] {
  const total = chunks.reduce((n, c) => n + c.length, 0);
  const all = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    all.set(c, at);
    at += c.length;
  }
  const out: Uint8Array[] = [];
  for (let i = 0; i < total; i += CHUNK) out.push(all.slice(i, Math.min(total, i + CHUNK)));
  return out;
}

for (const size of sizes) {
  const { client, server } = pair();
  const payload = new Uint8Array(size).fill(7);
  let now = 1;
  let sink = 0;
  let best = Infinity;
  let bestSend = Infinity;
  for (let round = 0; round < rounds; round++) {
    let messages = 0;
    let receiveNs = 0n;
    let sendNs = 0n;
    const deadline = Date.now() + 700;
    while (Date.now() < deadline) {
      now += 0.01;
      const s0 = clock();
      while (client.trySend(now, payload));
      const sent = client.pollTransmit(now);
      sendNs += clock() - s0;
      for (const c of sent) client.transmitted(c);
      const chunks = rechunk(sent);
      const t0 = clock();
      for (const chunk of chunks) {
        server.receive(now, chunk);
        for (let m = server.read(now); m !== undefined; m = server.read(now)) {
          sink += m.length;
          messages++;
        }
      }
      const back = server.pollTransmit(now);
      receiveNs += clock() - t0;
      for (const c of back) client.receive(now, c);
      while (server.pollEvent() !== undefined);
      while (client.pollEvent() !== undefined);
    }
    best = Math.min(best, Number(receiveNs) / messages);
    bestSend = Math.min(bestSend, Number(sendNs) / messages);
  }
  console.log(
    `${String(size).padStart(6)} B: ${best.toFixed(1)} ns/message receive path, ${bestSend.toFixed(1)} send path (trySend + pollTransmit), best of ${rounds} rounds${cpu ? ', CPU time' : ''} (window ${server.receiveWindow}, ${sink > 0 ? 'ok' : ''})`,
  );
}
