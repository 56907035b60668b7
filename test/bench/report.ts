/**
 * The markdown report of a bench run: environment and noise, the targets with verdicts, and one
 * table per part.
 * @module
 */
import { KiB, MiB, fmt, sizeLabel } from './lib/common.js';
import type { RttSummary } from './lib/common.js';
import type { DetectionResult } from './parts/detection.js';
import type { LivenessResult, PhaseResult } from './parts/liveness.js';
import type { ThroughputResult } from './parts/throughput.js';
import { profileTable } from './profile.js';
import type { BenchResults } from './run.js';

/** heartwire's defaults that the memory targets refer to. */
const DEFAULT_MAX_WINDOW = 8 * MiB;
const DEFAULT_MAX_SEND_QUEUE = MiB;
const DEFAULT_SOCKET_BUFFER_TARGET = 256 * KiB;
/** The "small slack" of the stalled-receiver memory target. */
const MEMORY_SLACK = MiB;
const PEERS = ['ws', 'http2-16m', 'yamux'];

/** One target and how this run did against it. */
export interface Verdict {
  target: string;
  measured: string;
  pass: boolean | undefined;
}

const mib = (bytes: number | undefined): string =>
  bytes === undefined ? '–' : `${(bytes / MiB).toFixed(2)} MiB`;
const ms = (value: number | undefined, digits = 2): string =>
  value === undefined ? '–' : `${value.toFixed(digits)}`;
const mark = (pass: boolean | undefined): string =>
  pass === undefined ? 'n/a' : pass ? '**met**' : '**missed**';

function row(cells: (string | number)[]): string {
  return `| ${cells.join(' | ')} |`;
}

function find(list: ThroughputResult[], system: string, size: number): ThroughputResult | undefined {
  return list.find((r) => r.system === system && r.size === size && r.error === undefined);
}

/**
 * heartwire ÷ raw framing from runs measured back to back (raw, heartwire … heartwire, raw):
 * the pair during which the rest of the machine was quietest, so both saw the same neighbours.
 */
export function matchedPair(
  hw: ThroughputResult,
  raw: ThroughputResult,
): { ratio: number; hw: number; raw: number; others: number; otherRatio?: number } | undefined {
  const h = hw.runDetails ?? [];
  const r = raw.runDetails ?? [];
  if (h.length < 2 || r.length < 2) return undefined;
  const pairs = [
    { hw: h[0]!, raw: r[0]! },
    { hw: h[h.length - 1]!, raw: r[r.length - 1]! },
  ]
    .filter((p) => p.hw.msgsPerSec > 0 && p.raw.msgsPerSec > 0)
    .map((p) => ({
      ratio: p.hw.msgsPerSec / p.raw.msgsPerSec,
      hw: p.hw.msgsPerSec,
      raw: p.raw.msgsPerSec,
      others: Math.max(p.hw.otherCpu, p.raw.otherCpu),
    }))
    .sort((a, b) => a.others - b.others);
  if (pairs.length === 0) return undefined;
  return { ...pairs[0]!, otherRatio: pairs[1]?.ratio };
}

/**
 * heartwire's documented send/receive paths besides the headline `write()` + `read()` (system ids
 * from `heartwire()` in lib/systems.ts), with the target each has at 64 B and 1 KiB as a ratio to
 * the raw framing of the same run, if any.
 */
export const PATHS: {
  system: string;
  sender: string;
  receiver: string;
  /** Target at 64 B and 1 KiB. */
  need?: number;
  /** Target at 64 KiB and 1 MiB. */
  needLarge?: number;
}[] = [
  {
    system: 'heartwire',
    sender: '`write()` + `drain`',
    receiver: '`read()` + `readable`',
    need: 0.8,
    needLarge: 0.85,
  },
  { system: 'heartwire-iterate', sender: '`write()` + `drain`', receiver: '`for await`', need: 0.6 },
  {
    system: 'heartwire-handle-sync',
    sender: '`write()` + `drain`',
    receiver: '`handle(fn)`, sync fn',
    need: 0.4,
  },
  {
    system: 'heartwire-handle-async',
    sender: '`write()` + `drain`',
    receiver: '`handle(async fn)`',
    need: 0.4,
  },
  {
    system: 'heartwire-handle16-async',
    sender: '`write()` + `drain`',
    receiver: '`handle(async fn, { concurrency: 16 })`',
    need: 0.3,
  },
  { system: 'heartwire-send-read', sender: '`await send()` loop', receiver: '`read()` + `readable`' },
  { system: 'heartwire-send-iterate', sender: '`await send()` loop', receiver: '`for await`', need: 0.5 },
  { system: 'heartwire-send-handle-async', sender: '`await send()` loop', receiver: '`handle(async fn)`' },
];

/** Messages per CPU-second of the busier of the two processes: the rate a cell would reach with a core each. */
function perBusyCore(r: ThroughputResult): number {
  const busiest = Math.max(r.serverCpu, r.clientCpu);
  return busiest > 0 ? r.msgsPerSec / (busiest / 100) : 0;
}

/** One path at one size against raw framing of the same run. */
function pathRatio(
  t: ThroughputResult[],
  system: string,
  size: number,
): { r: ThroughputResult; raw: ThroughputResult; ratio: number; coreRatio: number } | undefined {
  const r = find(t, system, size);
  const raw = find(t, 'raw', size);
  if (r === undefined || raw === undefined || raw.msgsPerSec <= 0) return undefined;
  const rawCore = perBusyCore(raw);
  return {
    r,
    raw,
    ratio: r.msgsPerSec / raw.msgsPerSec,
    coreRatio: rawCore > 0 ? perBusyCore(r) / rawCore : 0,
  };
}

/** Evaluate the issue's targets against a run. */
export function verdicts(results: BenchResults): Verdict[] {
  const out: Verdict[] = [];
  const t = results.throughput;
  for (const size of [64, KiB, 64 * KiB, MiB]) {
    const hw = find(t, 'heartwire', size);
    const raw = find(t, 'raw', size);
    if (hw === undefined || raw === undefined) continue;
    const small = size <= KiB;
    const need = small ? 0.8 : 0.85;
    const pair = matchedPair(hw, raw);
    const ratio = pair?.ratio ?? hw.msgsPerSec / raw.msgsPerSec;
    const peers = PEERS.map((id) => find(t, id, size)).filter((r): r is ThroughputResult => r !== undefined);
    const best = peers.reduce<ThroughputResult | undefined>(
      (a, b) => (a === undefined || b.msgsPerSec > a.msgsPerSec ? b : a),
      undefined,
    );
    const ahead = best === undefined ? undefined : hw.msgsPerSec > best.msgsPerSec;
    out.push({
      target: `${sizeLabel(size)}: ≥ ${need}× raw framing ${small ? 'msgs/s' : 'MB/s'}`,
      measured:
        pair === undefined
          ? `${ratio.toFixed(2)}× (${fmt(hw.msgsPerSec)} vs ${fmt(raw.msgsPerSec)} msgs/s)`
          : `${ratio.toFixed(2)}× (${fmt(pair.hw)} vs ${fmt(pair.raw)} msgs/s, measured back to back while others used ≤ ${fmt(pair.others)} %${pair.otherRatio === undefined ? '' : `; the other pair: ${pair.otherRatio.toFixed(2)}×`})${gcNote(hw, raw)}`,
      pass: ratio >= need,
    });
    // The same pair in processes holding an application's heap (run.ts runs it for large messages).
    const hwHeap = t.find(
      (r) => r.system.startsWith('heartwire@heap') && r.size === size && r.error === undefined,
    );
    const rawHeap = hwHeap && find(t, hwHeap.system.replace('heartwire', 'raw'), size);
    if (hwHeap !== undefined && rawHeap !== undefined) {
      const heapRatio = hwHeap.msgsPerSec / rawHeap.msgsPerSec;
      out.push({
        target: `${sizeLabel(size)}: ≥ ${need}× raw framing, both with a ${hwHeap.system.slice('heartwire@heap'.length)} MiB application heap`,
        measured: `${heapRatio.toFixed(2)}× (${fmt(hwHeap.msgsPerSec)} vs ${fmt(rawHeap.msgsPerSec)} msgs/s)${gcNote(hwHeap, rawHeap)}`,
        pass: heapRatio >= need,
      });
    }
    if (best !== undefined) {
      out.push({
        target: `${sizeLabel(size)}: ahead of every peer`,
        measured: `${(hw.msgsPerSec / best.msgsPerSec).toFixed(2)}× the best peer (${best.label}, ${fmt(best.msgsPerSec)} msgs/s)`,
        pass: ahead,
      });
    }
  }
  for (const path of PATHS) {
    if (path.need === undefined || path.system === 'heartwire') continue;
    for (const size of [64, KiB]) {
      const m = pathRatio(t, path.system, size);
      if (m === undefined) continue;
      out.push({
        target: `${sizeLabel(size)}: ${path.sender} + ${path.receiver} ≥ ${path.need}× raw framing msgs/s`,
        measured: `${m.ratio.toFixed(2)}× (${fmt(m.r.msgsPerSec)} vs ${fmt(m.raw.msgsPerSec)} msgs/s; per busy core ${m.coreRatio.toFixed(2)}×)`,
        pass: m.ratio >= path.need,
      });
    }
  }
  const live = results.liveness.find((r) => r.system === 'heartwire' && r.error === undefined);
  const liveHeap = results.liveness.find(
    (r) => r.system.startsWith('heartwire@heap') && r.error === undefined,
  );
  for (const r of [live, liveHeap]) {
    if (r?.load === undefined) continue;
    const p99 = r.load.rtt.p99;
    const heap =
      r === liveHeap ? `, with a ${r.system.slice('heartwire@heap'.length)} MiB application heap` : '';
    out.push({
      target: `heartbeat RTT p99 ≤ 2 ms under saturating load (default windows${heap})`,
      measured: `p99 ${ms(p99, 1)} ms (p50 ${ms(r.load.rtt.p50, 1)}, max ${ms(r.load.rtt.max, 1)}; ${r.load.rtt.count} samples, 0.1 ms resolution) at ${r.load.mbPerSec.toFixed(0)} MB/s`,
      pass: p99 === undefined ? undefined : p99 <= 2,
    });
  }
  if (live !== undefined && live.error === undefined) {
    out.push({
      target: 'stalled receiver: zero false failures',
      measured: live.falseFailureDetail ?? '–',
      pass: live.falseFailure === false,
    });
    const serverBound = DEFAULT_MAX_WINDOW + MEMORY_SLACK;
    const clientBound =
      DEFAULT_MAX_WINDOW + DEFAULT_MAX_SEND_QUEUE + DEFAULT_SOCKET_BUFFER_TARGET + MEMORY_SLACK;
    const serverRetained = live.serverRetained?.js;
    const clientRetained = live.clientRetained?.js;
    out.push({
      target: `stalled receiver: memory within window + slack (server ≤ ${mib(serverBound)}, client ≤ ${mib(clientBound)}, after GC)`,
      measured: `server ${mib(serverRetained)} retained (peak ${mib(live.serverPeak?.js)} incl. garbage), client ${mib(clientRetained)} (peak ${mib(live.clientPeak?.js)})`,
      pass:
        serverRetained === undefined || clientRetained === undefined
          ? undefined
          : serverRetained <= serverBound && clientRetained <= clientBound,
    });
  }
  const hwDetection = results.detection.filter((r) => r.system.startsWith('heartwire'));
  if (hwDetection.length > 0) {
    const worst = Math.max(
      ...hwDetection.map((r) => Math.max(r.clientMs ?? Infinity, r.serverMs ?? Infinity)),
    );
    const bound = hwDetection[0]!.boundMs;
    out.push({
      target: `detection ≤ idleTimeout + one heartbeat period (${bound.toFixed(0)} ms) in ${hwDetection.map((r) => r.case).join(', ')}`,
      measured: Number.isFinite(worst) ? `worst ${worst.toFixed(0)} ms` : 'not detected in some case',
      pass: worst <= bound,
    });
  }
  // Judged on the largest cell: its RSS delta (over 100 MB at 10 k) dwarfs the heap's own
  // fluctuation, which at 1 k (a delta of about 10 MB) can swing the figure either way; every
  // cell is listed in section 5.
  const idleCells = results.idle.filter((r) => r.error === undefined && r.system === 'heartwire');
  const largestIdle = Math.max(0, ...idleCells.map((r) => r.connections));
  for (const idle of idleCells.filter((r) => r.connections === largestIdle)) {
    out.push({
      target: `${fmt(idle.connections)} idle: ≤ ~16 KiB server memory per connection`,
      measured: `${(idle.serverRssPerConnection / KiB).toFixed(1)} KiB RSS (${(idle.serverJsPerConnection / KiB).toFixed(1)} KiB JS heap + buffers)`,
      pass: idle.serverRssPerConnection <= 16 * KiB,
    });
    if (idle.connections >= 10_000) {
      out.push({
        target: `${fmt(idle.connections)} idle: server CPU < 5 % of one core`,
        measured: `${idle.serverCpu.toFixed(1)} %`,
        pass: idle.serverCpu < 5,
      });
    }
  }
  return out;
}

/**
 * The two servers' heaps and major GC rates, when they differ in kind: a server whose heap is just
 * above V8's 8 MB incremental-marking threshold marks after every scavenge at high external
 * allocation rates, one below it never does (docs/IMPLEMENTATION.md, "Benchmark processes and V8").
 */
function gcNote(hw: ThroughputResult, raw: ThroughputResult): string {
  if (hw.serverHeap === undefined || raw.serverHeap === undefined) return '';
  const heaps = `; servers' heap ${(hw.serverHeap / 1e6).toFixed(1)} vs ${(raw.serverHeap / 1e6).toFixed(1)} MB`;
  if (hw.serverMajorGcsPerSec === undefined || raw.serverMajorGcsPerSec === undefined) return heaps;
  return `${heaps}, major GCs/s ${hw.serverMajorGcsPerSec.toFixed(1)} vs ${raw.serverMajorGcsPerSec.toFixed(1)}`;
}

/** The server's heap before the transfer and its major GCs per second in the window. */
function gcCell(r: ThroughputResult): string {
  if (r.serverHeap === undefined) return '';
  const rate = r.serverMajorGcsPerSec;
  return `${(r.serverHeap / 1e6).toFixed(1)}; ${rate === undefined ? '–' : rate.toFixed(1)}`;
}

/** heartwire's receive window at the end of a cell (the server's largest), if known. */
function windowReached(r: ThroughputResult): string {
  const window = (r.serverInfo as { maxReceiveWindow?: number } | undefined)?.maxReceiveWindow;
  return window === undefined ? '' : sizeLabel(window);
}

function throughputTable(list: ThroughputResult[], key: 'size' | 'connections'): string[] {
  const header = [
    key === 'size' ? 'size' : 'connections',
    'system',
    'msgs/s',
    'MB/s',
    '× raw framing',
    'server CPU %',
    'client CPU %',
    'others CPU %',
    'server heap MB; major GCs/s (with --gc)',
    'load 1 min',
    'runs (msgs/s)',
    'heartwire window',
  ];
  const lines = [
    row(header),
    row(['---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---', '---:']),
  ];
  const groups = [...new Set(list.map((r) => r[key]))];
  for (const group of groups) {
    const cells = list.filter((r) => r[key] === group);
    const raw = cells.find((r) => r.system === 'raw' && r.error === undefined);
    for (const r of cells) {
      const label = r.system === 'bulk' ? `${r.label} (msgs/s = MB/s ÷ size)` : r.label;
      const first = key === 'size' ? sizeLabel(r.size) : String(r.connections);
      if (r.error !== undefined) {
        lines.push(
          row([first, label, `error: ${r.error}`, ...new Array<string>(header.length - 3).fill('')]),
        );
        continue;
      }
      const ratio = raw === undefined ? undefined : r.msgsPerSec / raw.msgsPerSec;
      const pair = r.system === 'heartwire' && raw !== undefined ? matchedPair(r, raw) : undefined;
      const pairs =
        pair === undefined
          ? ''
          : ` (pairs ${[pair.ratio, pair.otherRatio]
              .filter((x) => x !== undefined)
              .map((x) => x.toFixed(2))
              .join(' / ')})`;
      lines.push(
        row([
          first,
          r.system === 'heartwire' ? `**${label}**` : label,
          r.system === 'bulk' ? `*${fmt(r.msgsPerSec)}*` : fmt(r.msgsPerSec),
          fmt(r.mbPerSec, 1),
          ratio === undefined ? '–' : `${ratio.toFixed(2)}${pairs}`,
          fmt(r.serverCpu),
          fmt(r.clientCpu),
          fmt(r.otherCpu),
          gcCell(r),
          fmt(r.loadavg[0], 2),
          r.runs !== undefined && r.runs.length > 1 ? r.runs.map((v) => fmt(v)).join(' / ') : '',
          r.system.startsWith('heartwire') ? windowReached(r) : '',
        ]),
      );
    }
  }
  return lines;
}

/** Table 1a: each documented path at the sizes it was measured at, with its target. */
function pathsTable(list: ThroughputResult[]): string[] {
  const lines = [
    row([
      'size',
      'sender',
      'receiver',
      'msgs/s',
      '× raw framing',
      '× write + read',
      'per busy core × raw',
      'server CPU %',
      'client CPU %',
      'others CPU %',
      'target (× raw)',
    ]),
    row(['---', '---', '---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---']),
  ];
  let any = false;
  for (const size of [...new Set(list.map((r) => r.size))]) {
    const headline = find(list, 'heartwire', size);
    for (const path of PATHS) {
      const m = pathRatio(list, path.system, size);
      if (m === undefined) continue;
      if (path.system !== 'heartwire') any = true;
      const need = size > KiB ? path.needLarge : path.need;
      const verdict = need === undefined ? '–' : `${need}: ${m.ratio >= need ? 'met' : 'missed'}`;
      lines.push(
        row([
          sizeLabel(size),
          path.sender,
          path.receiver,
          fmt(m.r.msgsPerSec),
          m.ratio.toFixed(2),
          headline === undefined ? '–' : (m.r.msgsPerSec / headline.msgsPerSec).toFixed(2),
          m.coreRatio.toFixed(2),
          fmt(m.r.serverCpu),
          fmt(m.r.clientCpu),
          fmt(m.r.otherCpu),
          verdict,
        ]),
      );
    }
  }
  return any ? lines : [];
}

function rttCells(rtt: RttSummary | undefined): string[] {
  return [ms(rtt?.p50), ms(rtt?.p99), ms(rtt?.max), String(rtt?.count ?? 0)];
}

function livenessTables(list: LivenessResult[], idleTimeoutMs: number): string[] {
  const lines: string[] = [
    '### 2. Heartbeat / ping RTT under saturating load (64 KiB messages, one connection)',
    '',
    row(['system', 'RTT p50 ms', 'p99 ms', 'max ms', 'samples', 'delivered MB/s during load', 'load 1 min']),
    row(['---', '---:', '---:', '---:', '---:', '---:', '---:']),
  ];
  for (const r of list) {
    if (r.error !== undefined || r.load === undefined) {
      lines.push(row([r.label, `error: ${r.error ?? 'no data'}`, '', '', '', '', '']));
      continue;
    }
    lines.push(row([r.label, ...rttCells(r.load.rtt), fmt(r.load.mbPerSec), fmt(r.loadavg[0], 2)]));
  }
  lines.push(
    '',
    `### 3. Stalled receiver (the server application stops consuming; the client keeps pushing)`,
    '',
    row([
      'system',
      'RTT p50 / p99 / max ms during stall',
      'answers',
      'longest wait ms',
      `false failure (timeout ${idleTimeoutMs} ms)`,
      'server retained / peak MiB',
      'client retained / peak MiB',
      'held at server end of stall',
      'errors',
    ]),
    row(['---', '---', '---:', '---:', '---', '---', '---', '---', '---']),
  );
  for (const r of list) {
    if (r.error !== undefined || r.stall === undefined) continue;
    const s: PhaseResult = r.stall;
    const info = r.serverInfoEndOfStall as
      { heldBytes?: number; userSpaceBufferedBytes?: number } | undefined;
    const held = info?.heldBytes ?? info?.userSpaceBufferedBytes;
    const errors = [
      ...(((r.serverInfoEnd as { errors?: string[] } | undefined)?.errors ?? []) as string[]),
      ...(((r.clientInfoEnd as { errors?: string[] } | undefined)?.errors ?? []) as string[]),
    ];
    lines.push(
      row([
        r.label,
        `${ms(s.rtt.p50)} / ${ms(s.rtt.p99)} / ${ms(s.rtt.max)}`,
        s.pingsSent === undefined
          ? `${s.rtt.count} heartbeat RTTs`
          : `${s.answered ?? 0} of ${s.pingsSent} pings`,
        fmt(s.longestWaitMs),
        r.falseFailure === true ? '**yes**' : 'no',
        `${mib(r.serverRetained?.js)} / ${mib(r.serverPeak?.js)}`,
        `${mib(r.clientRetained?.js)} / ${mib(r.clientPeak?.js)}`,
        held === undefined ? '–' : mib(held),
        errors.length === 0 ? '–' : errors.slice(0, 2).join('; '),
      ]),
    );
  }
  return lines;
}

function detectionTable(list: DetectionResult[]): string[] {
  const lines = [
    row([
      'system',
      'case',
      'client detects after ms',
      'server detects after ms',
      'bound ms',
      'waited ms',
      'codes',
    ]),
    row(['---', '---', '---:', '---:', '---:', '---:', '---']),
  ];
  const cell = (v: number | undefined): string => (v === undefined ? '**not detected**' : v.toFixed(0));
  for (const r of list) {
    lines.push(
      row([
        r.label,
        r.case,
        r.error ?? cell(r.clientMs),
        cell(r.serverMs),
        r.boundMs.toFixed(0),
        r.waitedMs.toFixed(0),
        [r.clientCode, r.serverCode].filter(Boolean).join(' / ') || '–',
      ]),
    );
  }
  return lines;
}

/** Render the whole report. */
export function renderReport(results: BenchResults): string {
  const e = results.env;
  const allCells = [...results.throughput, ...results.connections, ...results.window].filter(
    (r) => r.error === undefined,
  );
  const others = allCells.map((r) => r.otherCpu).sort((a, b) => a - b);
  const median = others.length > 0 ? others[Math.floor(others.length / 2)] : undefined;
  const idleWindow = (results.settings.idle as { settleMs: number; windowMs: number } | undefined) ?? {
    settleMs: 0,
    windowMs: 0,
  };
  const lines: string[] = [
    `# heartwire bench (${results.mode})`,
    '',
    `- Run at ${e.startedAt}, took ${results.durationSeconds.toFixed(0)} s; parts: ${results.parts.join(', ')}`,
    `- Machine: ${e.machine.cpus} × ${e.machine.model}, ${e.machine.memoryGiB} GiB, ${e.machine.kernel}, ulimit -n ${e.machine.openFilesLimit}`,
    `- Node ${e.node.version} (V8 ${e.node.v8}, libuv ${e.node.uv}, nghttp2 ${e.node.nghttp2}); ${Object.entries(
      e.packages,
    )
      .map(([n, v]) => `${n} ${v}`)
      .join(', ')}`,
    `- heartwire ${e.heartwire.version} at ${e.heartwire.commit}${e.heartwire.dirtyFiles > 0 ? ` + ${e.heartwire.dirtyFiles} uncommitted file(s) in src/` : ''}`,
    `- Load average (1/5/15 min): ${results.loadStart.join(' / ')} at the start, ${results.loadEnd.join(' / ')} at the end`,
    `- Noise: CPU used by other processes during the throughput windows (machine busy − our two children), median ${fmt(median)} % of one core, range ${fmt(others[0])}–${fmt(others[others.length - 1])} % (the machine has ${e.machine.cpus * 100} %).`,
    results.settings.waitQuietMaxSeconds
      ? `- \`--wait-quiet ${String(results.settings.waitQuietMaxSeconds)}\`: waited ${Number(results.settings.quietWaitSeconds ?? 0).toFixed(0)} s in total before cells for the rest of the machine to drop below 25 % of a core (cells still started after the maximum wait).`
      : '- Cells started without waiting for a quiet machine (`--wait-quiet` not given).',
    results.settings.appHeapMb === undefined
      ? '- Peer processes held no application heap (a run from before `--app-heap`).'
      : `- Peer processes held ${String(results.settings.appHeapMb)} MiB of live objects (\`--app-heap\`) but in the rows marked "(64 MiB heap)", which hold that much, as an application's process would: how V8 collects at these allocation rates depends on the heap's size (above 8 MB, a small heap is marked continuously), so the bare cells can compare processes on either side of a threshold (docs/IMPLEMENTATION.md, "Benchmark processes and V8").`,
    '',
  ];
  const v = verdicts(results);
  if (v.length > 0) {
    lines.push('## Targets', '', row(['target', 'measured', 'verdict']), row(['---', '---', '---']));
    for (const x of v) lines.push(row([x.target, x.measured, mark(x.pass)]));
    lines.push('');
  }
  lines.push('## Results', '');
  if (results.throughput.length > 0) {
    lines.push(
      '### 1. Throughput, one connection, client → server',
      '',
      'Messages delivered to the server application per second over the window; MB/s = 10^6 payload bytes/s; × raw framing = msgs/s ÷ raw framing msgs/s at the same size (the same ratio for MB/s). CPU in % of one core; "others" = the rest of the machine during the window. raw framing and heartwire are measured twice per size (first and last), the better run is shown; for heartwire, "pairs" are the ratios of the back-to-back runs (raw then heartwire first, heartwire then raw last), which saw the same neighbours. "heartwire window" = the receive window the server had grown to by the end.',
      '',
      ...throughputTable(results.throughput, 'size'),
      '',
    );
  }
  const pathLines = pathsTable(results.throughput);
  if (pathLines.length > 0) {
    lines.push(
      '### 1a. Every documented way to send and receive, one connection, client → server',
      '',
      'The same cells as in table 1, by path. × raw framing = msgs/s ÷ the raw framing\'s better run at that size in this run; × write + read = ÷ heartwire\'s `write()` + `read()` row. "Per busy core" divides each rate by the CPU share of the busier of its two processes before taking the ratio to raw framing: the ratio with a core each, a check on a loaded machine, where a cell waiting for a core is slower without costing more.',
      '',
      ...pathLines,
      '',
    );
  }
  if (results.connections.length > 0) {
    const single = results.throughput.filter(
      (r) => r.size === KiB && results.connections.some((c) => c.system === r.system),
    );
    lines.push(
      '### 1b. Throughput with N connections, 1 KiB messages (sum over connections)',
      '',
      ...throughputTable([...single, ...results.connections], 'connections'),
      '',
    );
  }
  if (results.liveness.length > 0) {
    lines.push(
      ...livenessTables(
        results.liveness,
        Number((results.settings.liveness as { idleTimeoutMs: number }).idleTimeoutMs),
      ),
      '',
    );
  }
  if (results.detection.length > 0) {
    lines.push(
      '### 4. Failure detection after a black hole (FaultProxy between client and server)',
      '',
      ...detectionTable(results.detection),
      '',
    );
  }
  if (results.idle.length > 0) {
    lines.push(
      '### 5. Idle heartbeating connections (heartwire defaults: 20 s idle timeout, heartbeats every ~6.7 s each way)',
      '',
      row([
        'system',
        'connections',
        'opened',
        'connect s',
        'server RSS / conn KiB',
        'server JS / conn KiB',
        'server RSS MiB',
        'server CPU %',
        'client CPU %',
        'others CPU %',
        'client RSS / conn KiB',
        'load 1 min',
      ]),
      row(['---', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:', '---:']),
      ...results.idle.map((r) =>
        r.error !== undefined
          ? row([r.label, r.connections, `error: ${r.error}`, '', '', '', '', '', '', '', '', ''])
          : row([
              r.system === 'heartwire' ? `**${r.label}**` : r.label,
              fmt(r.connections),
              fmt(r.opened),
              r.connectSeconds.toFixed(1),
              (r.serverRssPerConnection / KiB).toFixed(1),
              (r.serverJsPerConnection / KiB).toFixed(1),
              (r.serverRssTotal / MiB).toFixed(0),
              r.serverCpu.toFixed(1),
              r.clientCpu.toFixed(1),
              fmt(r.otherCpu),
              (r.clientRssPerConnection / KiB).toFixed(1),
              fmt(r.loadavg[0], 2),
            ]),
      ),
      '',
    );
  }
  if (results.window.length > 0) {
    lines.push(
      '### 6. heartwire throughput and memory by receive window (fixed: `initialReceiveWindow` = `receiveWindow`, one connection)',
      '',
      row([
        'message',
        'receive window',
        'msgs/s',
        'MB/s',
        'heartbeat RTT p50 / p99 ms',
        'server retained / peak',
        'client retained / peak',
        'server CPU %',
        'client CPU %',
        'others CPU %',
      ]),
      row(['---', '---:', '---:', '---:', '---', '---:', '---:', '---:', '---:', '---:']),
      ...results.window.map((r) =>
        r.error !== undefined
          ? row([
              sizeLabel(r.size),
              sizeLabel(r.receiveWindow),
              `error: ${r.error}`,
              '',
              '',
              '',
              '',
              '',
              '',
              '',
            ])
          : row([
              sizeLabel(r.size),
              sizeLabel(r.receiveWindow),
              fmt(r.msgsPerSec),
              fmt(r.mbPerSec, 1),
              `${ms(r.rtt?.p50, 0)} / ${ms(r.rtt?.p99, 0)}`,
              `${mib(r.serverRetained)} / ${mib(r.serverMemory?.js)}`,
              `${mib(r.clientRetained)} / ${mib(r.clientMemory?.js)}`,
              fmt(r.serverCpu),
              fmt(r.clientCpu),
              fmt(r.otherCpu),
            ]),
      ),
      '',
    );
  }
  if (results.profiles.length > 0) {
    lines.push('### CPU profiles of heartwire cells (self time in the measurement window)', '');
    for (const p of results.profiles) {
      lines.push(`**${p.cell}**`, '');
      for (const s of p.summaries) lines.push(profileTable(s), '');
    }
  }
  if (results.skipped.length > 0) {
    lines.push('### Skipped', '', ...results.skipped.map((s) => `- ${s}`), '');
  }
  lines.push(
    '### Method notes',
    '',
    '- Each cell runs a fresh server and client process (`node --import tsx`), loopback only; the client pushes as fast as back-pressure allows, the server counts messages its application received during the window after a warm-up. One run per cell: compare with the load and "others CPU" columns before trusting a difference.',
    '- raw framing: 4-byte length prefix; frames ≤ 2 KiB copied into recycled 256 KiB buffers written in one call, larger ones as header + payload with cork/writev; zero-copy parsing except frames spanning reads. http2 and yamux carry the same framing in one stream, batched the same way; ws sends one message per `send()` (no bufferutil installed: JS masking).',
    '- heartwire: `write()` + `drain` on the sender, `read()` + `readable` on the receiver, except in the rows that name another path (table 1a): `await send()` in a plain loop (yielding to the event loop every 5 ms, as the `write()` pump does), `for await`, `handle()` with a synchronous handler, an `async` one, or an `async` one at concurrency 16; default options except where a part says otherwise.',
    `- Parts 2–3: heartwire runs with idleTimeout ${String((results.settings.liveness as { idleTimeoutMs?: number } | undefined)?.idleTimeoutMs ?? '')} ms (heartbeats every ~⅓ of it) and default windows; its RTT samples are its own heartbeat RTTs from both sides, in 0.1 ms ticks. The others are pinged by the client every 50 ms; "false failure" for them means a ping waited longer than heartwire's idle timeout. Payloads are fresh allocations; memory peaks include garbage, "retained" is after a forced GC.`,
    "- Part 4: idle timeout 1000 ms on both sides; the plain socket uses `applyKeepAlive(socket, 1000)` (heartwire's own safety net). The proxy ACKs and discards bytes during the black hole, so kernel keepalive sees a healthy peer.",
    `- Part 5: one client process holds all connections; per-connection memory = (server after-GC memory with N open − with the first 100 open) ÷ (N − 100), the marginal cost (the first connections pay for compiling the connection path); CPU over a window of ${idleWindow.windowMs / 1000} s${idleWindow.windowMs === 13_333 ? ' (two heartbeat periods, so every connection counts once per period whatever its phase)' : ''}, after ${idleWindow.settleMs / 1000} s of settling. The ws row is a baseline at the same event rate: its server pings every connection on its own jittered timer every 6.7 s (heartwire: each side heartbeats every ~6.7 s).`,
    '- Part 6: the window is fixed (`initialReceiveWindow` = `receiveWindow`, no auto-tuning); heartwire runs with idleTimeout 500 ms there to get RTT samples.',
    '',
  );
  return lines.join('\n');
}
