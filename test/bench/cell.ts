/**
 * Development aid: measure single throughput cells quickly, e.g.
 * `node --import tsx test/bench/cell.ts raw,heartwire,heartwire-iterate 64,1024 [--repeat 3] [--probe] [--warmup 1000] [--window 2000] [--prof DIR] [--app-heap 64] [--gc]`.
 * Not part of `npm run bench`; it prints one line per cell.
 *
 * heartwire's send and receive modes are ids: `heartwire` (`write()` + `read()`),
 * `heartwire-<receive>` (`write()` + that receiver) and `heartwire-send-<receive>` (`await send()`
 * in a loop + that receiver), receive being `read`, `iterate` (`for await`), `handle-sync`,
 * `handle-async` or `handle16-async` (`handle()` with a synchronous handler, an async one, an async
 * one at concurrency 16). `hw-w<bytes>`: heartwire with that receive window.
 *
 * With `--repeat N` the list runs N times in order (so cells listed next to each other run back to
 * back each round) and, if `raw` is in the list, each cell's ratio to the raw framing of the same
 * round is printed, then the range of each over the rounds; "per core" divides each rate by the
 * CPU share of the busier of its two processes first (the ratio with a core each: a check when
 * the machine is loaded).
 * @module
 */
import { measureThroughput } from './parts/throughput.js';
import { BULK, HTTP2_TUNED, RAW, WS, YAMUX, heartwire, heartwireById, withAppHeap } from './lib/systems.js';
import type { System } from './lib/systems.js';

const systems: Record<string, System> = {
  raw: RAW,
  bulk: BULK,
  ws: WS,
  http2: HTTP2_TUNED,
  yamux: YAMUX,
  // heartwire over a Unix domain socket (peers/heartwire-unix.ts), to compare with TCP loopback.
  'heartwire-unix': {
    ...heartwire(),
    id: 'heartwire-unix',
    label: 'heartwire (Unix socket)',
    peer: 'heartwire-unix',
  },
};

const args = process.argv.slice(2);
const info = (value: unknown): string => {
  const window = (value as { maxReceiveWindow?: number } | undefined)?.maxReceiveWindow;
  return window === undefined ? '' : ` window ${window}`;
};
const flag = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const ids = (args[0] ?? 'raw,heartwire').split(',');
const sizes = (args[1] ?? '64').split(',').map(Number);
const windowMs = Number(flag('--window') ?? 2000);
const warmupMs = Number(flag('--warmup') ?? 1000);
const repeat = Number(flag('--repeat') ?? 1);
const prof = flag('--prof');
const probe = args.includes('--probe');
// Live heap of each peer process, MiB (see child.ts); an id `<id>@heap<MiB>` sets it for one system.
process.env.BENCH_APP_HEAP_MB = flag('--app-heap') ?? '0';
// `--gc`: each server counts its major GCs (MC/s in the output; the observer costs a few %).
if (args.includes('--gc')) process.env.BENCH_GC_COUNT = '1';

function system(id: string): System {
  // `<id>@heap<MiB>`: that system in processes holding an application heap (see child.ts).
  const heap = /^(.+)@heap(\d+)$/.exec(id);
  if (heap !== null) return withAppHeap(system(heap[1]!), Number(heap[2]));
  // `hw-w<bytes>`: heartwire with that receive window.
  const window = /^hw-w(\d+)$/.exec(id);
  // With --probe, heartwire heartbeats every ~167 ms (idle timeout 500 ms), as in the liveness part.
  const liveness = probe ? { idleTimeout: 500 } : {};
  const accept = probe ? { server: { clientIdleTimeoutRange: [100, 86_400_000] } } : {};
  if (window !== null) return heartwire({ receiveWindow: Number(window[1]), ...liveness }, 'read', accept);
  // `hw-q<bytes>`: heartwire whose client has that send queue bound (maxSendQueue).
  const queue = /^hw-q(\d+)$/.exec(id);
  if (queue !== null)
    return heartwire(liveness, 'read', { ...accept, client: { maxSendQueue: Number(queue[1]) } });
  const hw = heartwireById(id);
  if (hw !== undefined) {
    const { receive, send } = hw.options as { receive: never; send: never };
    return probe ? heartwire(liveness, receive, accept, send) : hw;
  }
  const other = systems[id];
  if (other === undefined) throw new Error(`unknown system ${id}`);
  return other;
}

/** msgs/s and ratio to raw of each id, per size, over the rounds. */
const seen = new Map<string, { rates: number[]; ratios: number[]; coreRatios: number[] }>();
/** Messages per CPU-second of the busier process (the rate with a core each; see report.ts). */
const perCore = (r: { msgsPerSec: number; serverCpu: number; clientCpu: number }): number =>
  r.msgsPerSec / (Math.max(r.serverCpu, r.clientCpu, 1) / 100);
for (let round = 0; round < repeat; round++) {
  for (const size of sizes) {
    const rates = new Map<string, number>();
    const cores = new Map<string, number>();
    for (const id of ids) {
      const r = await measureThroughput(
        system(id),
        size,
        1,
        { warmupMs, windowMs },
        {
          probe,
          profile: prof === undefined ? undefined : { dir: `${prof}/${id}-${size}` },
        },
      );
      rates.set(id, r.error === undefined ? r.msgsPerSec : 0);
      cores.set(id, r.error === undefined ? perCore(r) : 0);
      const rtt =
        r.rtt === undefined ? '' : ` rtt p50 ${r.rtt.p50} p99 ${r.rtt.p99} max ${r.rtt.max} n=${r.rtt.count}`;
      console.log(
        `${id.padEnd(26)} ${String(size).padStart(8)} ${Math.round(r.msgsPerSec).toLocaleString().padStart(11)} msgs/s ${r.mbPerSec.toFixed(1).padStart(8)} MB/s  cpu s ${r.serverCpu.toFixed(0)} c ${r.clientCpu.toFixed(0)} others ${r.otherCpu.toFixed(0)} heap ${((r.serverHeap ?? 0) / 1e6).toFixed(1)} MB MC/s ${r.serverMajorGcsPerSec?.toFixed(1) ?? '–'}${rtt}${r.error ? ' ERROR ' + r.error : ''}${info(r.serverInfo)}`,
      );
      // Nothing delivered: show what the server saw (its connections, failures).
      if (r.error === undefined && r.msgsPerSec === 0)
        console.log(`  server: ${JSON.stringify(r.serverInfo)}`);
    }
    const raw = rates.get('raw');
    const rawCore = cores.get('raw');
    for (const [id, rate] of rates) {
      const entry = seen.get(`${id} ${size}`) ?? { rates: [], ratios: [], coreRatios: [] };
      entry.rates.push(rate);
      if (raw !== undefined && raw > 0) entry.ratios.push(rate / raw);
      if (rawCore !== undefined && rawCore > 0) entry.coreRatios.push(cores.get(id)! / rawCore);
      seen.set(`${id} ${size}`, entry);
    }
    if (raw !== undefined && raw > 0 && rawCore !== undefined) {
      const ratios = [...rates]
        .filter(([id]) => id !== 'raw')
        .map(
          ([id, v]) => `${id} ${(v / raw).toFixed(2)} (per core ${(cores.get(id)! / rawCore).toFixed(2)})`,
        );
      console.log(`  round ${round + 1}, ${size} B, × raw: ${ratios.join(', ')}`);
    }
  }
}
if (repeat > 1) {
  const range = (xs: number[], digits: number): string =>
    xs.length === 0 ? '–' : `${Math.min(...xs).toFixed(digits)}–${Math.max(...xs).toFixed(digits)}`;
  for (const [key, { rates, ratios, coreRatios }] of seen) {
    console.log(
      `${key.padEnd(34)} msgs/s ${range(rates, 0).padStart(21)}   × raw ${range(ratios, 2)} (${ratios.map((r) => r.toFixed(2)).join(' ')})   per busy core × raw ${range(coreRatios, 2)}`,
    );
  }
}
