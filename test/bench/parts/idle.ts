/**
 * Part 5: the cost of idle, heartbeating connections. One server process, one client process
 * holding N connections with default settings (heartbeats every third of the 20 s idle timeout,
 * both ways). Server memory per connection = (after-GC memory with N open − after-GC memory
 * with the first 100 open) ÷ (N − 100), the marginal cost; server CPU % = CPU time over a window
 * ÷ window (a whole number of heartbeat periods, so that every connection's heartbeats count
 * once per period whatever their phases).
 * @module
 */
import { sleep } from '../lib/common.js';
import type { ProcessSnapshot } from '../lib/common.js';
import { spawnChild } from '../lib/child-process.js';
import { loadAverage, machineBusyPercent, readCpuTimes } from '../lib/machine.js';
import type { System } from '../lib/systems.js';

/** Result of one idle run. */
export interface IdleResult {
  system: string;
  label: string;
  connections: number;
  opened: number;
  connectSeconds: number;
  /** Bytes per connection, server side. */
  serverRssPerConnection: number;
  serverJsPerConnection: number;
  serverRssTotal: number;
  /** CPU % of one core over the window. */
  serverCpu: number;
  clientCpu: number;
  otherCpu: number;
  clientRssPerConnection: number;
  windowMs: number;
  loadavg: number[];
  /** The CPU window on the server's monotonic clock (µs), to cut a CPU profile to it. */
  monoWindow?: [number, number];
  error?: string;
}

type Snap = ProcessSnapshot & { counters: { info?: { connections?: number } } };

const js = (s: ProcessSnapshot): number => s.heapUsed + s.arrayBuffers;

/** Connections opened before the memory baseline (at most a tenth of the cell's). */
const WARM_CONNECTIONS = 100;

/** Run one idle measurement. Never throws. */
export async function measureIdle(
  system: System,
  connections: number,
  options: { settleMs: number; windowMs: number; profileDir?: string },
): Promise<IdleResult> {
  const base = {
    system: system.id,
    label: system.label,
    connections,
    windowMs: options.windowMs,
    loadavg: loadAverage(),
  };
  const config = { peer: system.peer, options: system.options };
  const limit = { hardLimitMs: 120_000 + options.settleMs + options.windowMs };
  const server = spawnChild(
    `${system.id} server`,
    { role: 'server', ...config },
    { ...limit, cpuProfile: options.profileDir === undefined ? undefined : { dir: options.profileDir } },
  );
  const client = spawnChild(`${system.id} client`, { role: 'client', ...config }, limit);
  try {
    const port = await server.ready;
    await client.ready;
    // The first connections pay one-time costs (code compiled for the connection path, heap
    // pages): open a few before the baseline, so that the figure is the marginal cost per
    // connection.
    const warm = Math.min(WARM_CONNECTIONS, Math.floor(connections / 10));
    await client.call('connect', { port, count: warm, parallel: 50 }, 30_000);
    const [s0, c0] = await Promise.all([
      server.call<Snap>('snap', { gc: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    const started = Date.now();
    await client.call('connect', { port, count: connections - warm, parallel: 200 }, 90_000);
    const connectSeconds = (Date.now() - started) / 1000;
    await sleep(options.settleMs);
    const [w0, k0] = await Promise.all([server.call<Snap>('snap'), client.call<Snap>('snap')]);
    const m0 = readCpuTimes();
    await sleep(options.windowMs);
    const [w1, k1] = await Promise.all([server.call<Snap>('snap'), client.call<Snap>('snap')]);
    const m1 = readCpuTimes();
    const [s1, c1] = await Promise.all([
      server.call<Snap>('snap', { gc: true, info: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    const opened = s1.counters.info?.connections ?? 0;
    const cpu = (a: Snap, b: Snap): number => ((b.cpuUs - a.cpuUs) / 1000 / (b.t - a.t)) * 100;
    const serverCpu = cpu(w0, w1);
    const clientCpu = cpu(k0, k1);
    return {
      ...base,
      opened,
      connectSeconds,
      serverRssPerConnection: (s1.rss - s0.rss) / (connections - warm),
      serverJsPerConnection: (js(s1) - js(s0)) / (connections - warm),
      serverRssTotal: s1.rss,
      serverCpu,
      clientCpu,
      otherCpu: Math.max(0, machineBusyPercent(m0, m1) - serverCpu - clientCpu),
      clientRssPerConnection: (c1.rss - c0.rss) / (connections - warm),
      monoWindow: [w0.monoUs, w1.monoUs],
    };
  } catch (error) {
    return {
      ...base,
      opened: 0,
      connectSeconds: 0,
      serverRssPerConnection: 0,
      serverJsPerConnection: 0,
      serverRssTotal: 0,
      serverCpu: 0,
      clientCpu: 0,
      otherCpu: 0,
      clientRssPerConnection: 0,
      error: String(error),
    };
  } finally {
    await Promise.all([client.exit(20_000), server.exit(20_000)]);
  }
}
