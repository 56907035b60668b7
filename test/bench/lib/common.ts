/**
 * Small helpers shared by the orchestrator and the child processes.
 * @module
 */
import { PerformanceObserver, constants, performance } from 'node:perf_hooks';

export const KiB = 1024;
export const MiB = 1024 * 1024;

/** Monotonic time in ms (this process only). */
export const now = (): number => performance.now();

/** Wall-clock time in ms with sub-ms resolution, comparable across processes on this machine. */
export const wallNow = (): number => performance.timeOrigin + performance.now();

/** Resolve after `ms`. */
export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** The `p`-quantile (0…1) of `values` (nearest rank), or `undefined` for no values. */
export function quantile(values: readonly number[], p: number): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1));
  return sorted[rank];
}

/** p50 / p99 / max of RTT samples. */
export interface RttSummary {
  count: number;
  p50?: number;
  p99?: number;
  max?: number;
}

/** Summarize RTT samples. */
export function summarizeRtt(samples: readonly number[]): RttSummary {
  return {
    count: samples.length,
    p50: quantile(samples, 0.5),
    p99: quantile(samples, 0.99),
    max: samples.length === 0 ? undefined : Math.max(...samples),
  };
}

/** One snapshot of a process: time, CPU, memory. */
export interface ProcessSnapshot {
  /** {@link wallNow} at the snapshot. */
  t: number;
  /** Monotonic µs (`process.hrtime`), the clock of V8 CPU profiles. */
  monoUs: number;
  /** CPU time used so far, µs (user + system). */
  cpuUs: number;
  rss: number;
  heapUsed: number;
  arrayBuffers: number;
  external: number;
  /** Major GCs (mark-compact) seen so far, once {@link countMajorGcs} has started; else undefined. */
  majorGcs?: number;
}

let majorGcs: number | undefined;

/**
 * Count this process's major GCs from now on (for snapshots). The bench reports them per second:
 * V8 starts incremental marking after every scavenge in some processes and not in others, which
 * moves throughput by up to 4× (docs/IMPLEMENTATION.md, "Benchmark processes and V8"). Only with
 * `--gc` (`BENCH_GC_COUNT=1`): observing GCs costs the raw framing 4–20 % at 64 B.
 */
export function countMajorGcs(): void {
  majorGcs = 0;
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      const detail = (entry as { detail?: { kind?: number } }).detail;
      if (detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) majorGcs = (majorGcs ?? 0) + 1;
    }
  }).observe({ entryTypes: ['gc'] });
}

/** Take a snapshot of this process; with `gc`, run a full GC first (needs `--expose-gc`). */
export function snapshot(gc = false): ProcessSnapshot {
  if (gc) runGc();
  const cpu = process.cpuUsage();
  const mem = process.memoryUsage();
  return {
    t: wallNow(),
    monoUs: Number(process.hrtime.bigint() / 1000n),
    cpuUs: cpu.user + cpu.system,
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    arrayBuffers: mem.arrayBuffers,
    external: mem.external,
    majorGcs,
  };
}

/** Run a full GC when `--expose-gc` is on (twice: finalizers free more on the second pass). */
export function runGc(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (gc !== undefined) {
    gc();
    gc();
  }
}

/** Peak memory seen by a {@link MemorySampler}, as growth over its baseline. */
export interface MemoryPeak {
  /** Largest RSS minus the baseline RSS. */
  rss: number;
  /** Largest heapUsed + arrayBuffers minus the baseline's. */
  js: number;
  samples: number;
}

/** Samples memory every `intervalMs` and keeps the peak growth over a baseline. */
export class MemorySampler {
  private timer: NodeJS.Timeout | undefined;
  private baseRss = 0;
  private baseJs = 0;
  private peakRss = 0;
  private peakJs = 0;
  private samples = 0;

  /** Start from the current memory (after a GC if available) as the baseline. */
  start(intervalMs = 20): void {
    this.stop();
    runGc();
    const mem = process.memoryUsage();
    this.baseRss = mem.rss;
    this.baseJs = mem.heapUsed + mem.arrayBuffers;
    this.peakRss = 0;
    this.peakJs = 0;
    this.samples = 0;
    this.timer = setInterval(() => this.sample(), intervalMs);
  }

  private sample(): void {
    const mem = process.memoryUsage();
    this.samples++;
    this.peakRss = Math.max(this.peakRss, mem.rss - this.baseRss);
    this.peakJs = Math.max(this.peakJs, mem.heapUsed + mem.arrayBuffers - this.baseJs);
  }

  /** Stop sampling and return the peak growth. */
  stop(): MemoryPeak {
    if (this.timer !== undefined) {
      clearInterval(this.timer);
      this.timer = undefined;
      this.sample();
    }
    return { rss: this.peakRss, js: this.peakJs, samples: this.samples };
  }
}

/** Format a number with thousands separators and `digits` decimals. */
export function fmt(value: number | undefined, digits = 0): string {
  if (value === undefined || !Number.isFinite(value)) return '–';
  return value.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

/** Human-readable size: `64 B`, `1 KiB`, `16 MiB`. */
export function sizeLabel(bytes: number): string {
  if (bytes >= MiB && bytes % MiB === 0) return `${bytes / MiB} MiB`;
  if (bytes >= KiB && bytes % KiB === 0) return `${bytes / KiB} KiB`;
  return `${bytes} B`;
}

/** Message of an unknown thrown value, with its `code` when it has one. */
export function describeError(error: unknown): string {
  if (error instanceof Error) {
    const code = (error as { code?: unknown }).code;
    return code === undefined ? error.message : `${String(code)}: ${error.message}`;
  }
  return String(error);
}
