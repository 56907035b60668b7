/**
 * `npm run bench`: heartwire against a raw length-prefixed framing (the practical limit), raw
 * TCP bulk bytes (the byte ceiling), ws, node:http2 and @chainsafe/libp2p-yamux, over loopback,
 * client and server in separate processes. Prints a markdown report and writes
 * `results/latest.md`, `results/latest.json` and `results/chart.svg`.
 *
 * Throughput cells cover every documented way to send and receive (`write()` or `await send()`;
 * `read()`, `for await` or `handle()`), each as a ratio to the raw framing of the same run.
 *
 * Flags: `--quick` (about 1 minute), `--only <part>[,<part>…]` (throughput, connections,
 * liveness, detection, idle, window, profile; or 1–6), `--cpu-prof` (at the end, re-run
 * heartwire's two worst throughput cells with `--cpu-prof` on both children, and the largest
 * idle cell if it missed its CPU target, and summarize the hot functions),
 * `--profile-sizes 64,1048576` (which throughput cells to profile instead; 0 adds the idle cell),
 * `--out DIR` (where to write; default `results/` for a full run, `results/scratch/` for
 * `--quick` or `--only`, so that a short run never replaces the committed full results),
 * `--wait-quiet <s>` (on a shared machine: before each cell, wait up to that long until the rest
 * of the machine uses < 25 % of a core; waits do not count against the part budgets).
 *
 * Every cell runs in fresh child processes with a hard time limit; every part has a time budget
 * after which its remaining cells are skipped (and listed as skipped).
 * @module
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeOutputs } from './chart.js';
import { KiB, MiB, sizeLabel, sleep } from './lib/common.js';
import { mainThreadProfile } from './lib/child-process.js';
import { environment, loadAverage, machineBusyPercent, readCpuTimes } from './lib/machine.js';
import type { Environment } from './lib/machine.js';
import { BULK, HTTP2_DEFAULT, HTTP2_TUNED, RAW, WS, YAMUX, heartwire, withAppHeap } from './lib/systems.js';
import type { System } from './lib/systems.js';
import { measureDetection } from './parts/detection.js';
import type { DetectionCase, DetectionResult } from './parts/detection.js';
import { measureIdle } from './parts/idle.js';
import type { IdleResult } from './parts/idle.js';
import { measureLiveness } from './parts/liveness.js';
import type { LivenessResult, LivenessTiming } from './parts/liveness.js';
import { measureThroughput } from './parts/throughput.js';
import type { CellTiming, ThroughputResult } from './parts/throughput.js';
import { profileTable, summarizeProfile } from './profile.js';
import type { ProfileSummary } from './profile.js';

const RESULTS = fileURLToPath(new URL('./results/', import.meta.url));

/**
 * Where a run writes its report: `--out DIR` if given; else a full run (every part, not
 * `--quick`) replaces the committed results in `results/`, and any other run (`--quick`, `--only`)
 * writes to `results/scratch/` (git-ignored), so a short run never overwrites the full one.
 */
function outputDir(args: string[], quick: boolean): string {
  const out = argValue(args, '--out');
  if (out !== undefined) return path.resolve(out);
  return quick || args.includes('--only') ? path.join(RESULTS, 'scratch') : RESULTS;
}
let resultsDir = RESULTS;

/** The parts, in run order. */
export const PARTS = [
  'throughput',
  'connections',
  'liveness',
  'detection',
  'idle',
  'window',
  'profile',
] as const;
export type Part = (typeof PARTS)[number];

/** heartwire's idle timeout in parts 2–3 (heartbeats every ~167 ms, so enough RTT samples). */
const LIVENESS_IDLE_TIMEOUT = 500;
/** heartwire's (and the keepalive baseline's) idle timeout in part 4. */
const DETECTION_IDLE_TIMEOUT = 1000;
/** Lets the server accept clients' short idle timeouts (the default range starts at 1000 ms). */
const ACCEPT_SHORT_TIMEOUTS = { server: { clientIdleTimeoutRange: [100, 86_400_000] } };

/** Everything a run measured. */
export interface BenchResults {
  env: Environment;
  mode: 'full' | 'quick';
  parts: Part[];
  loadStart: number[];
  loadEnd: number[];
  durationSeconds: number;
  settings: Record<string, unknown>;
  throughput: ThroughputResult[];
  connections: ThroughputResult[];
  liveness: LivenessResult[];
  detection: DetectionResult[];
  idle: IdleResult[];
  window: (ThroughputResult & { receiveWindow: number })[];
  profiles: { cell: string; summaries: ProfileSummary[] }[];
  skipped: string[];
}

interface Plan {
  timing: CellTiming;
  sizes: number[];
  throughputSystems: System[];
  /** Extra systems measured only at these sizes (heartwire's other send and receive paths). */
  extra: { system: System; sizes: number[] }[];
  connectionCounts: number[];
  connectionSystems: System[];
  /**
   * Systems measured a second time at each size, in reverse order after the others: the table keeps
   * the better run (a neighbour's burst only ever slows a cell down).
   */
  repeatSystems: System[];
  liveness: LivenessTiming;
  livenessSystems: System[];
  detectionCases: DetectionCase[];
  detection: { settleMs: number; extraWaitMs: number };
  idleCounts: number[];
  /** Baselines for part 5 at the largest count (ws pinging at heartwire's heartbeat rate). */
  idleBaselines: System[];
  idle: { settleMs: number; windowMs: number };
  windows: number[];
  windowSizes: number[];
  /** Seconds each part may take before its remaining cells are skipped. */
  budget: Record<Part, number>;
}

function plan(quick: boolean): Plan {
  const hw = heartwire();
  if (quick) {
    return {
      timing: { warmupMs: 300, windowMs: 1000 },
      sizes: [64, 64 * KiB],
      throughputSystems: [RAW, hw, HTTP2_TUNED, YAMUX],
      extra: [
        ...QUICK_PATHS.map((system) => ({ system, sizes: [64] })),
        ...[RAW, hw].map((system) => ({ system: withAppHeap(system, APP_HEAP_MB), sizes: [64 * KiB] })),
      ],
      connectionCounts: [10],
      connectionSystems: [RAW, hw],
      repeatSystems: [],
      liveness: {
        warmupMs: 300,
        loadMs: 1200,
        stallMs: 1500,
        recoverMs: 500,
        idleTimeoutMs: LIVENESS_IDLE_TIMEOUT,
      },
      livenessSystems: [RAW, livenessHeartwire(), HTTP2_DEFAULT],
      detectionCases: ['sending'],
      detection: { settleMs: 500, extraWaitMs: 1000 },
      idleCounts: [1000],
      idleBaselines: [],
      idle: { settleMs: 500, windowMs: 2000 },
      windows: [64 * KiB, 16 * MiB],
      windowSizes: [KiB],
      budget: {
        throughput: 65,
        connections: 10,
        liveness: 25,
        detection: 15,
        idle: 15,
        window: 10,
        profile: 30,
      },
    };
  }
  return {
    timing: { warmupMs: 500, windowMs: 2000 },
    sizes: [64, KiB, 64 * KiB, MiB],
    throughputSystems: [RAW, hw, WS, HTTP2_TUNED, YAMUX],
    extra: [
      ...PATHS.map((system) => ({ system, sizes: [64, KiB] })),
      // Every size again in processes with an application's heap (see child.ts): the bare ones sit
      // on either side of V8's thresholds (at 64 B the compiled raw framing, 3.9 MB of heap,
      // measured 7.1-7.7 M msgs/s bare and 10.5-10.8 M with the heap).
      ...[RAW, hw].map((system) => ({
        system: withAppHeap(system, APP_HEAP_MB),
        sizes: [64, KiB, 64 * KiB, MiB],
      })),
    ],
    connectionCounts: [10, 100],
    connectionSystems: [RAW, BULK, hw, WS, HTTP2_TUNED, YAMUX],
    repeatSystems: [hw, RAW],
    liveness: {
      warmupMs: 500,
      loadMs: 2500,
      stallMs: 2500,
      recoverMs: 800,
      idleTimeoutMs: LIVENESS_IDLE_TIMEOUT,
    },
    livenessSystems: [
      RAW,
      livenessHeartwire(),
      withAppHeap(livenessHeartwire(), APP_HEAP_MB),
      WS,
      HTTP2_DEFAULT,
      HTTP2_TUNED,
      YAMUX,
    ],
    detectionCases: ['idle', 'sending', 'stalled'],
    detection: { settleMs: 1000, extraWaitMs: 1500 },
    idleCounts: [1000, 10_000],
    idleBaselines: [WS_IDLE],
    // Two heartbeat periods of the default 20 s idle timeout (20 000 / 3 ms each).
    idle: { settleMs: 1000, windowMs: 13_333 },
    windows: [16 * KiB, 64 * KiB, 256 * KiB, MiB, 4 * MiB, 16 * MiB],
    windowSizes: [KiB, 64 * KiB],
    budget: {
      throughput: 240,
      connections: 60,
      liveness: 80,
      detection: 45,
      idle: 80,
      window: 45,
      profile: 60,
    },
  };
}

/**
 * heartwire's other documented paths (the headline `heartwire` row is `write()` + `read()`): each
 * receive API behind `write()`, and `await send()` in a loop in front of `read()`, `for await` and
 * an async `handle()`.
 */
const PATHS: System[] = [
  heartwire({}, 'iterate'),
  heartwire({}, 'handle-sync'),
  heartwire({}, 'handle-async'),
  heartwire({}, 'handle16-async'),
  heartwire({}, 'read', {}, 'send'),
  heartwire({}, 'iterate', {}, 'send'),
  heartwire({}, 'handle-async', {}, 'send'),
];
/** `--quick`: the paths with a target of their own, at 64 B only. */
const QUICK_PATHS: System[] = [
  heartwire({}, 'iterate'),
  heartwire({}, 'handle-sync'),
  heartwire({}, 'handle16-async'),
  heartwire({}, 'iterate', {}, 'send'),
];

/** heartwire for parts 2–3: default windows and buffers; a short idle timeout for more RTT samples. */
function livenessHeartwire(): System {
  return heartwire({ idleTimeout: LIVENESS_IDLE_TIMEOUT }, 'read', ACCEPT_SHORT_TIMEOUTS);
}

/** ws as part 5's baseline: the server pings each connection every 6.67 s, heartwire's default heartbeat period. */
const WS_IDLE: System = {
  ...WS,
  id: 'ws-ping',
  label: 'ws, server pings each connection every 6.7 s',
  options: { idlePingMs: 20_000 / 3 },
};

const KEEPALIVE: System = {
  id: 'keepalive',
  label: 'plain TCP + keepalive',
  peer: 'keepalive',
  options: { idleTimeout: DETECTION_IDLE_TIMEOUT },
  colour: '#999999',
};

/** Parse `--only`: part names or numbers (1 = throughput + connections, 2 and 3 = liveness, …). */
function parseParts(value: string | undefined, cpuProf: boolean): Part[] {
  if (value === undefined) return PARTS.filter((p) => p !== 'profile' || cpuProf);
  const byNumber: Record<string, Part[]> = {
    '1': ['throughput', 'connections'],
    '2': ['liveness'],
    '3': ['liveness'],
    '4': ['detection'],
    '5': ['idle'],
    '6': ['window'],
  };
  const parts = new Set<Part>();
  for (const token of value.split(',').map((t) => t.trim())) {
    const known = byNumber[token] ?? (PARTS.includes(token as Part) ? [token as Part] : undefined);
    if (known === undefined) throw new Error(`unknown part ${token}; parts: ${PARTS.join(', ')} or 1–6`);
    for (const p of known) parts.add(p);
  }
  if (cpuProf) parts.add('profile');
  return PARTS.filter((p) => parts.has(p));
}

function argValue(args: string[], name: string): string | undefined {
  const index = args.indexOf(name);
  return index >= 0 ? args[index + 1] : undefined;
}

/** `--wait-quiet`: before each cell, wait (up to this long) for the rest of the machine to go quiet. */
let quietMaxMs = 0;
/** Live heap of each peer process, MiB (`--app-heap`; see child.ts). */
const DEFAULT_APP_HEAP_MB = 0;
/** The large-message cells run a second time with this application heap in each process. */
const APP_HEAP_MB = 64;
/** "Quiet": the whole machine uses at most this much CPU (% of one core) while the bench is idle. */
const QUIET_THRESHOLD = 25;
/** Total time spent waiting for quiet, ms. */
let quietWaitedMs = 0;

/** Wait until the machine's CPU use drops to {@link QUIET_THRESHOLD} or `maxMs` passes; returns the wait. */
async function waitForQuiet(maxMs: number): Promise<number> {
  const start = Date.now();
  for (;;) {
    const a = readCpuTimes();
    await sleep(500);
    if (machineBusyPercent(a, readCpuTimes()) <= QUIET_THRESHOLD || Date.now() - start >= maxMs) break;
  }
  const waited = Date.now() - start;
  quietWaitedMs += waited;
  return waited;
}

/** Runs cells while the part's budget lasts (time spent waiting for quiet excluded); records the rest as skipped. */
class PartClock {
  private readonly started = Date.now();
  private waited = 0;
  constructor(
    private readonly part: Part,
    private readonly budgetSeconds: number,
    private readonly skipped: string[],
  ) {}

  /**
   * Resolves true if there is time for a cell expected to take `expectedSeconds` (after waiting
   * for quiet with `--wait-quiet`); otherwise records it as skipped and resolves false.
   */
  async admit(cell: string, expectedSeconds: number): Promise<boolean> {
    const elapsed = (Date.now() - this.started - this.waited) / 1000;
    if (elapsed + expectedSeconds > this.budgetSeconds) {
      this.skipped.push(`${this.part}: ${cell} (part budget ${this.budgetSeconds} s)`);
      return false;
    }
    if (quietMaxMs > 0) this.waited += await waitForQuiet(quietMaxMs);
    return true;
  }
}

/** Add `r` to `list`, or merge it with an earlier run of the same cell, keeping the faster one. */
function keepBest(list: ThroughputResult[], r: ThroughputResult): void {
  const index = list.findIndex(
    (c) => c.system === r.system && c.size === r.size && c.connections === r.connections,
  );
  const detail = { msgsPerSec: r.error === undefined ? r.msgsPerSec : 0, otherCpu: r.otherCpu };
  if (index < 0) {
    list.push({ ...r, runs: [detail.msgsPerSec], runDetails: [detail] });
    return;
  }
  const previous = list[index]!;
  const runs = [...(previous.runs ?? []), detail.msgsPerSec];
  const runDetails = [...(previous.runDetails ?? []), detail];
  const best = r.error === undefined && (previous.error !== undefined || r.msgsPerSec > previous.msgsPerSec);
  list[index] = { ...(best ? r : previous), runs, runDetails };
}

function log(line: string): void {
  process.stderr.write(`${line}\n`);
}

function short(r: ThroughputResult): string {
  if (r.error !== undefined) return `ERROR ${r.error}`;
  return `${Math.round(r.msgsPerSec).toLocaleString('en-US')} msgs/s, ${r.mbPerSec.toFixed(1)} MB/s (server ${r.serverCpu.toFixed(0)} %, client ${r.clientCpu.toFixed(0)} %, others ${r.otherCpu.toFixed(0)} %, load ${r.loadavg[0]})`;
}

/** `npm run bench -- --help`. */
const HELP = `usage: npm run bench -- [options]

Run the benchmark (about 5 minutes; --quick about 1 minute): heartwire against a raw
length-prefixed framing, raw TCP bulk bytes, ws, node:http2 and @chainsafe/libp2p-yamux, client
and server in separate processes over loopback. Prints a markdown report and writes latest.md,
latest.json and chart.svg: a full run to test/bench/results/ (the committed results), a --quick
or --only run to test/bench/results/scratch/ (git-ignored). Needs a clone with its
devDependencies (npm ci).

options:
  --quick               short cells (about 1 minute)
  --only PARTS          some parts only: throughput, connections, liveness, detection, idle,
                        window, profile, or their numbers 1-6 (comma-separated)
  --cpu-prof            also profile heartwire's worst cells and summarize the hot functions
  --profile-sizes LIST  which throughput cells to profile (bytes, comma-separated; 0: the idle cell)
  --wait-quiet S        before each cell, wait up to S seconds for the machine to be quiet
  --app-heap MB         live heap each peer process holds, as an application would (default 0;
                        the 64 KiB and 1 MiB cells also run with 64 MiB: see docs/IMPLEMENTATION.md)
  --gc                  count each server's major GCs (table 1; costs the raw framing 4-20 % at 64 B)
  --out DIR             write the report to DIR instead
  -h, --help            show this help`;

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`${HELP}\n`);
    return;
  }
  const quick = args.includes('--quick');
  resultsDir = outputDir(args, quick);
  const cpuProf = args.includes('--cpu-prof');
  const parts = parseParts(argValue(args, '--only'), cpuProf);
  const profileSizes = argValue(args, '--profile-sizes')?.split(',').map(Number);
  quietMaxMs = Number(argValue(args, '--wait-quiet') ?? 0) * 1000;
  // Read by child.ts in every peer process (inherited through the environment).
  const appHeapMb = Number(argValue(args, '--app-heap') ?? DEFAULT_APP_HEAP_MB);
  if (!(appHeapMb >= 0 && appHeapMb <= 4096)) throw new Error('--app-heap takes MiB, 0 to 4096');
  process.env.BENCH_APP_HEAP_MB = String(appHeapMb);
  if (args.includes('--gc')) process.env.BENCH_GC_COUNT = '1';
  const p = plan(quick);
  const started = Date.now();
  const results: BenchResults = {
    env: environment(),
    mode: quick ? 'quick' : 'full',
    parts,
    loadStart: loadAverage(),
    loadEnd: [],
    durationSeconds: 0,
    settings: {
      throughputTiming: p.timing,
      liveness: p.liveness,
      detectionIdleTimeout: DETECTION_IDLE_TIMEOUT,
      detection: p.detection,
      idle: p.idle,
    },
    throughput: [],
    connections: [],
    liveness: [],
    detection: [],
    idle: [],
    window: [],
    profiles: [],
    skipped: [],
  };
  // A last-resort bound on the whole run: write what there is and stop.
  const overall = Object.values(p.budget).reduce((a, b) => a + b, 0) + 60 + (quietMaxMs > 0 ? 900 : 0);
  const watchdog = setTimeout(() => {
    log(`run exceeded ${overall} s: writing partial results`);
    results.skipped.push(`run stopped by the ${overall} s watchdog`);
    void finish(results, started).finally(() => process.exit(1));
  }, overall * 1000);
  watchdog.unref();
  log(
    `heartwire bench (${results.mode}): parts ${parts.join(', ')}; load average ${results.loadStart.join(' / ')}`,
  );
  const cellSeconds = (p.timing.warmupMs + p.timing.windowMs) / 1000 + 1.5;

  if (parts.includes('throughput')) {
    const clock = new PartClock('throughput', p.budget.throughput, results.skipped);
    for (const size of p.sizes) {
      const systems = [
        ...p.throughputSystems,
        ...p.extra.filter((e) => e.sizes.includes(size)).map((e) => e.system),
      ];
      for (const system of [...systems, ...p.repeatSystems]) {
        if (!(await clock.admit(`${system.id} ${sizeLabel(size)}`, cellSeconds))) continue;
        const r = await measureThroughput(system, size, 1, p.timing);
        log(`1  ${sizeLabel(size).padEnd(7)} ${system.label.padEnd(28)} ${short(r)}`);
        keepBest(results.throughput, r);
      }
    }
    // The byte ceiling does not depend on the message size: measured once.
    if (await clock.admit('bulk', cellSeconds)) {
      const r = await measureThroughput(BULK, 64 * KiB, 1, p.timing);
      log(`1  bulk    ${BULK.label.padEnd(28)} ${short(r)}`);
      for (const size of p.sizes)
        results.throughput.push({ ...r, size, msgsPerSec: (r.mbPerSec * 1e6) / size });
    }
  }

  if (parts.includes('connections')) {
    const clock = new PartClock('connections', p.budget.connections, results.skipped);
    for (const count of p.connectionCounts) {
      for (const system of p.connectionSystems) {
        if (!(await clock.admit(`${system.id} × ${count}`, cellSeconds + 1))) continue;
        const r = await measureThroughput(system, KiB, count, p.timing);
        results.connections.push(r);
        log(`1c ${String(count).padStart(3)} conns ${system.label.padEnd(28)} ${short(r)}`);
      }
    }
  }

  if (parts.includes('liveness')) {
    const clock = new PartClock('liveness', p.budget.liveness, results.skipped);
    const t = p.liveness;
    const expected = (t.warmupMs + t.loadMs + t.stallMs + t.recoverMs) / 1000 + 2.5;
    for (const system of p.livenessSystems) {
      if (!(await clock.admit(system.id, expected))) continue;
      const r = await measureLiveness(system, t);
      results.liveness.push(r);
      log(
        r.error !== undefined
          ? `2+3 ${system.label}: ERROR ${r.error}`
          : `2+3 ${system.label.padEnd(36)} load p50/p99 ${r.load?.rtt.p50?.toFixed(2)}/${r.load?.rtt.p99?.toFixed(2)} ms; stall p99 ${r.stall?.rtt.p99?.toFixed(2) ?? '–'} ms, false failure: ${r.falseFailure}`,
      );
    }
  }

  if (parts.includes('detection')) {
    const clock = new PartClock('detection', p.budget.detection, results.skipped);
    const hw = heartwire({ idleTimeout: DETECTION_IDLE_TIMEOUT }, 'read', ACCEPT_SHORT_TIMEOUTS);
    for (const system of [hw, KEEPALIVE]) {
      for (const testCase of p.detectionCases) {
        const expected =
          (p.detection.settleMs + DETECTION_IDLE_TIMEOUT * 1.34 + p.detection.extraWaitMs) / 1000 + 2;
        if (!(await clock.admit(`${system.id} ${testCase}`, expected))) continue;
        const r = await measureDetection(system, testCase, DETECTION_IDLE_TIMEOUT, p.detection);
        results.detection.push(r);
        const ms = (v: number | undefined): string =>
          v === undefined ? 'not detected' : `${v.toFixed(0)} ms`;
        log(
          `4  ${system.label.padEnd(24)} ${testCase.padEnd(8)} client ${ms(r.clientMs)}, server ${ms(r.serverMs)}${r.error === undefined ? '' : ` ERROR ${r.error}`}`,
        );
      }
    }
  }

  if (parts.includes('idle')) {
    const clock = new PartClock('idle', p.budget.idle, results.skipped);
    const largest = Math.max(...p.idleCounts);
    const runs = [
      ...p.idleCounts.map((count) => ({ system: heartwire(), count })),
      ...p.idleBaselines.map((system) => ({ system, count: largest })),
    ];
    for (const { system, count } of runs) {
      const expected = (p.idle.settleMs + p.idle.windowMs) / 1000 + 3 + count / 1000;
      if (!(await clock.admit(`${system.id} × ${count}`, expected))) continue;
      const r = await measureIdle(system, count, p.idle);
      results.idle.push(r);
      log(
        r.error !== undefined
          ? `5  ${system.label} ${count}: ERROR ${r.error}`
          : `5  ${system.label.padEnd(10)} ${String(count).padStart(6)} idle: ${(r.serverRssPerConnection / KiB).toFixed(1)} KiB RSS/conn, ${(r.serverJsPerConnection / KiB).toFixed(1)} KiB JS/conn, server CPU ${r.serverCpu.toFixed(1)} %`,
      );
    }
  }

  if (parts.includes('window')) {
    const clock = new PartClock('window', p.budget.window, results.skipped);
    for (const size of p.windowSizes) {
      for (const receiveWindow of p.windows) {
        // A message must fit the window with its frame headers.
        if (size + 64 > receiveWindow) continue;
        // A fixed window (initial = largest), so that each cell runs at the window it names.
        const options = {
          receiveWindow,
          initialReceiveWindow: receiveWindow,
          idleTimeout: LIVENESS_IDLE_TIMEOUT,
        };
        const system = {
          ...heartwire(options, 'read', ACCEPT_SHORT_TIMEOUTS),
          id: `heartwire-w${receiveWindow}`,
        };
        if (!(await clock.admit(`window ${sizeLabel(receiveWindow)} × ${sizeLabel(size)}`, cellSeconds)))
          continue;
        const r = await measureThroughput(system, size, 1, p.timing, { probe: true });
        results.window.push({ ...r, receiveWindow });
        log(`6  window ${sizeLabel(receiveWindow).padEnd(7)} ${sizeLabel(size).padEnd(7)} ${short(r)}`);
      }
    }
  }

  if (parts.includes('profile')) {
    await profileWorst(results, p, profileSizes);
  }

  clearTimeout(watchdog);
  await finish(results, started);
}

/** Re-run heartwire's worst single-connection cells (lowest ratio to raw) with CPU profiles. */
async function profileWorst(results: BenchResults, p: Plan, sizes: number[] | undefined): Promise<void> {
  const clock = new PartClock('profile', p.budget.profile, results.skipped);
  let chosen = sizes;
  if (chosen === undefined) {
    const ratios = p.sizes
      .map((size) => {
        const hw = results.throughput.find((r) => r.system === 'heartwire' && r.size === size);
        const raw = results.throughput.find((r) => r.system === 'raw' && r.size === size);
        return { size, ratio: hw && raw && raw.msgsPerSec > 0 ? hw.msgsPerSec / raw.msgsPerSec : undefined };
      })
      .filter((r) => r.ratio !== undefined)
      .sort((a, b) => a.ratio! - b.ratio!);
    chosen = ratios.length > 0 ? ratios.slice(0, 2).map((r) => r.size) : [64, MiB];
  }
  chosen = chosen.filter((size) => size > 0);
  const dir = path.join(os.tmpdir(), `heartwire-bench-profiles-${Date.now()}`);
  mkdirSync(dir, { recursive: true });
  for (const size of chosen) {
    const cell = `heartwire ${sizeLabel(size)}`;
    if (!(await clock.admit(cell, (p.timing.warmupMs + p.timing.windowMs) / 1000 + 4))) continue;
    const cellDir = path.join(dir, `heartwire-${size}`);
    const r = await measureThroughput(heartwire(), size, 1, p.timing, { profile: { dir: cellDir } });
    log(`P  ${cell} (profiled): ${short(r)}`);
    const summaries: ProfileSummary[] = [];
    for (const role of ['server', 'client'] as const) {
      try {
        const file = mainThreadProfile(path.join(cellDir, role));
        if (file === undefined) throw new Error('no main-thread profile written');
        const summary = summarizeProfile(file, {
          top: 20,
          window: r.monoWindow?.[role],
          label: `${cell}, ${role}`,
        });
        summaries.push(summary);
        log(profileTable(summary));
      } catch (error) {
        results.skipped.push(`profile: ${cell} ${role}: ${String(error)}`);
      }
    }
    results.profiles.push({ cell: `${cell}: ${short(r)}`, summaries });
  }
  // The idle cost, when the idle part ran and missed its CPU target (or when asked for by size 0).
  const idle = results.idle.find(
    (r) => r.system === 'heartwire' && r.connections === Math.max(...p.idleCounts),
  );
  if ((idle !== undefined && idle.serverCpu >= 5) || sizes?.includes(0) === true) {
    const count = Math.max(...p.idleCounts);
    const cell = `heartwire ${count} idle connections`;
    if (!(await clock.admit(cell, (p.idle.settleMs + p.idle.windowMs) / 1000 + 5 + count / 1000))) return;
    const cellDir = path.join(dir, `idle-${count}`);
    const r = await measureIdle(heartwire(), count, { ...p.idle, profileDir: cellDir });
    const file = mainThreadProfile(cellDir);
    if (file === undefined) {
      results.skipped.push(`profile: ${cell}: no main-thread profile written`);
      return;
    }
    const summary = summarizeProfile(file, { top: 20, window: r.monoWindow, label: `${cell}, server` });
    log(profileTable(summary));
    results.profiles.push({ cell: `${cell}: server CPU ${r.serverCpu.toFixed(1)} %`, summaries: [summary] });
  }
}

/** Format JSON the way the repository's prettier config wants it (so `npm run lint` stays clean). */
async function formatJson(file: string, value: unknown): Promise<string> {
  const text = `${JSON.stringify(value, null, 2)}\n`;
  try {
    const prettier = await import('prettier');
    const config = (await prettier.resolveConfig(file)) ?? {};
    return await prettier.format(text, { ...config, filepath: file });
  } catch {
    return text;
  }
}

async function finish(results: BenchResults, started: number): Promise<void> {
  results.loadEnd = loadAverage();
  results.settings.quietWaitSeconds = quietWaitedMs / 1000;
  results.settings.waitQuietMaxSeconds = quietMaxMs / 1000;
  results.settings.appHeapMb = Number(process.env.BENCH_APP_HEAP_MB);
  results.durationSeconds = (Date.now() - started) / 1000;
  mkdirSync(resultsDir, { recursive: true });
  const jsonFile = path.join(resultsDir, 'latest.json');
  writeFileSync(jsonFile, await formatJson(jsonFile, results));
  const markdown = writeOutputs(results, resultsDir);
  process.stdout.write(`${markdown}\n`);
  log(
    `wrote ${path.relative(process.cwd(), resultsDir)}/latest.md, latest.json, chart.svg (${results.durationSeconds.toFixed(0)} s)`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
