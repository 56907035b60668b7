/**
 * Part 1 (and part 6): throughput of one system, one message size, N connections, client →
 * server. A fresh server and client process per cell; the client pushes as fast as back-pressure
 * allows; after a warm-up the server counts messages delivered to its application over a window.
 * @module
 */
import path from 'node:path';
import { sleep, summarizeRtt } from '../lib/common.js';
import type { MemoryPeak, ProcessSnapshot, RttSummary } from '../lib/common.js';
import { spawnChild } from '../lib/child-process.js';
import { loadAverage, machineBusyPercent, readCpuTimes } from '../lib/machine.js';
import type { System } from '../lib/systems.js';
import type { ProbeReport } from '../peers/types.js';

/** Timing of one cell. */
export interface CellTiming {
  warmupMs: number;
  windowMs: number;
}

/** Where to write CPU profiles of a cell, if at all: `dir/server/` and `dir/client/`. */
export interface ProfileTarget {
  dir: string;
}

/** Result of one throughput cell. */
export interface ThroughputResult {
  system: string;
  label: string;
  size: number;
  connections: number;
  msgsPerSec: number;
  /** Payload MB/s (10^6 bytes). */
  mbPerSec: number;
  /** CPU % of one core over the window. */
  serverCpu: number;
  clientCpu: number;
  /** Machine-wide CPU use over the window by everything but the two children, % of one core. */
  otherCpu: number;
  /** Peak memory growth from the start of the transfer (after-GC baseline; includes garbage). */
  serverMemory?: MemoryPeak;
  clientMemory?: MemoryPeak;
  /**
   * The server's JS heap after a forced GC before the transfer (bytes), and its major GCs per
   * second over the window: the two figures that tell whether V8 marked continuously.
   */
  serverHeap?: number;
  serverMajorGcsPerSec?: number;
  /** heapUsed + arrayBuffers growth after a forced GC at the end of the transfer (still running). */
  serverRetained?: number;
  clientRetained?: number;
  /** Heartbeat RTT over the window, both sides' samples (with `probe`). */
  rtt?: RttSummary;
  /** Peer gauges at the end (errors, window, …). */
  serverInfo?: unknown;
  /** The measurement window on each child's monotonic clock (µs), to cut CPU profiles to it. */
  monoWindow?: { server: [number, number]; client: [number, number] };
  /** Load average (1/5/15 min) when the cell started. */
  loadavg: number[];
  windowMs: number;
  /** msgs/s of each run when the cell was measured more than once (the fields above are the best run). */
  runs?: number[];
  /** Each run's msgs/s and the CPU the rest of the machine used meanwhile, in run order. */
  runDetails?: { msgsPerSec: number; otherCpu: number }[];
  error?: string;
}

type Snap = ProcessSnapshot & { counters: { messages: number; bytes: number; info?: unknown } };

const js = (s: ProcessSnapshot): number => s.heapUsed + s.arrayBuffers;

/** Options of {@link measureThroughput}. */
export interface ThroughputOptions {
  /** Write CPU profiles of both children. */
  profile?: ProfileTarget;
  /** Record heartbeat/ping RTT during the window. */
  probe?: boolean;
}

/** Run one throughput cell. Never throws: failures are returned in `error`. */
export async function measureThroughput(
  system: System,
  size: number,
  connections: number,
  timing: CellTiming,
  options: ThroughputOptions = {},
): Promise<ThroughputResult> {
  const base = {
    system: system.id,
    label: system.label,
    size,
    connections,
    loadavg: loadAverage(),
    windowMs: timing.windowMs,
  };
  const config = { peer: system.peer, options: system.options, appHeapMb: system.appHeapMb };
  const hardLimitMs = 30_000 + timing.warmupMs + timing.windowMs;
  const { profile } = options;
  const server = spawnChild(
    `${system.id} server`,
    { role: 'server', ...config },
    { hardLimitMs, cpuProfile: profile && { dir: path.join(profile.dir, 'server') } },
  );
  const client = spawnChild(
    `${system.id} client`,
    { role: 'client', ...config },
    { hardLimitMs, cpuProfile: profile && { dir: path.join(profile.dir, 'client') } },
  );
  try {
    const port = await server.ready;
    await client.ready;
    await client.call('connect', { port, count: connections, parallel: 50 }, 20_000);
    const [sBase, cBase] = await Promise.all([
      server.call<Snap>('snap', { gc: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    // Sampling memory costs CPU (process.memoryUsage): every 100 ms here, not every 20 ms.
    await Promise.all([
      server.call('mem-start', { intervalMs: 100 }),
      client.call('mem-start', { intervalMs: 100 }),
    ]);
    if (options.probe === true) {
      await Promise.all([server.call('probe-start'), client.call('probe-start', { intervalMs: 50 })]);
    }
    await client.call('pump', { size, fresh: false });
    await sleep(timing.warmupMs);
    const [s0, c0] = await Promise.all([server.call<Snap>('snap'), client.call<Snap>('snap')]);
    const m0 = readCpuTimes();
    if (options.probe === true) await Promise.all([server.call('probe-report'), client.call('probe-report')]);
    await sleep(timing.windowMs);
    const [s1, c1] = await Promise.all([
      server.call<Snap>('snap', { info: true }),
      client.call<Snap>('snap'),
    ]);
    const m1 = readCpuTimes();
    let rtt: RttSummary | undefined;
    if (options.probe === true) {
      const reports = await Promise.all([
        server.call<ProbeReport>('probe-report'),
        client.call<ProbeReport>('probe-report'),
      ]);
      rtt = summarizeRtt(reports.flatMap((r) => r.samples));
    }
    const [sEnd, cEnd] = await Promise.all([
      server.call<Snap>('snap', { gc: true }),
      client.call<Snap>('snap', { gc: true }),
    ]);
    await client.call('stop-pump');
    const [serverMemory, clientMemory] = await Promise.all([
      server.call<MemoryPeak>('mem-stop'),
      client.call<MemoryPeak>('mem-stop'),
    ]);
    const seconds = (s1.t - s0.t) / 1000;
    const bytes = s1.counters.bytes - s0.counters.bytes;
    const messages = system.peer === 'bulk' ? bytes / size : s1.counters.messages - s0.counters.messages;
    const cpu = (a: Snap, b: Snap): number => ((b.cpuUs - a.cpuUs) / 1000 / (b.t - a.t)) * 100;
    const serverCpu = cpu(s0, s1);
    const clientCpu = cpu(c0, c1);
    return {
      ...base,
      msgsPerSec: messages / seconds,
      mbPerSec: bytes / seconds / 1e6,
      serverCpu,
      clientCpu,
      otherCpu: Math.max(0, machineBusyPercent(m0, m1) - serverCpu - clientCpu),
      serverMemory,
      clientMemory,
      serverHeap: sBase.heapUsed,
      serverMajorGcsPerSec:
        s1.majorGcs === undefined || s0.majorGcs === undefined
          ? undefined
          : (s1.majorGcs - s0.majorGcs) / seconds,
      serverRetained: js(sEnd) - js(sBase),
      clientRetained: js(cEnd) - js(cBase),
      rtt,
      serverInfo: s1.counters.info,
      monoWindow: { server: [s0.monoUs, s1.monoUs], client: [c0.monoUs, c1.monoUs] },
    };
  } catch (error) {
    return {
      ...base,
      msgsPerSec: 0,
      mbPerSec: 0,
      serverCpu: 0,
      clientCpu: 0,
      otherCpu: 0,
      error: String(error),
    };
  } finally {
    await Promise.all([client.exit(), server.exit()]);
  }
}
