/**
 * Development aid: measure single throughput cells quickly, e.g.
 * `node --import tsx test/bench/cell.ts raw,heartwire 64,1024 [--probe] [--window 2000] [--prof DIR]`.
 * Not part of `npm run bench`; it prints one line per cell.
 * @module
 */
import { measureThroughput } from './parts/throughput.js';
import { BULK, HTTP2_TUNED, RAW, WS, YAMUX, heartwire } from './lib/systems.js';
import type { System } from './lib/systems.js';

const systems: Record<string, System> = {
  raw: RAW,
  bulk: BULK,
  ws: WS,
  http2: HTTP2_TUNED,
  yamux: YAMUX,
  heartwire: heartwire(),
  'heartwire-iterate': heartwire({}, 'iterate'),
  'heartwire-handle': heartwire({}, 'handle'),
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
const prof = flag('--prof');
for (const size of sizes) {
  for (const id of ids) {
    // `hw-w<bytes>`: heartwire with that receive window.
    const window = /^hw-w(\d+)$/.exec(id);
    const probe = args.includes('--probe');
    // With --probe, heartwire heartbeats every ~167 ms (idle timeout 500 ms), as in the liveness part.
    const liveness = probe ? { idleTimeout: 500 } : {};
    const accept = probe ? { server: { clientIdleTimeoutRange: [100, 86_400_000] } } : {};
    const system =
      window !== null
        ? heartwire({ receiveWindow: Number(window[1]), ...liveness }, 'read', accept)
        : id === 'heartwire' && probe
          ? heartwire(liveness, 'read', accept)
          : systems[id];
    if (system === undefined) throw new Error(`unknown system ${id}`);
    const r = await measureThroughput(
      system,
      size,
      1,
      { warmupMs: 1000, windowMs },
      {
        probe,
        profile: prof === undefined ? undefined : { dir: `${prof}/${id}-${size}` },
      },
    );
    const rtt =
      r.rtt === undefined ? '' : ` rtt p50 ${r.rtt.p50} p99 ${r.rtt.p99} max ${r.rtt.max} n=${r.rtt.count}`;
    console.log(
      `${id.padEnd(18)} ${String(size).padStart(8)} ${Math.round(r.msgsPerSec).toLocaleString().padStart(11)} msgs/s ${r.mbPerSec.toFixed(1).padStart(8)} MB/s  cpu s ${r.serverCpu.toFixed(0)} c ${r.clientCpu.toFixed(0)} others ${r.otherCpu.toFixed(0)}${rtt}${r.error ? ' ERROR ' + r.error : ''}${info(r.serverInfo)}`,
    );
  }
}
