/**
 * Writes a run's outputs: `chart.svg` (throughput by message size; heartbeat/ping RTT under
 * load) and `latest.md` (see `report.ts`). The SVG is plain hand-built markup, no dependency.
 * @module
 */
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { sizeLabel } from './lib/common.js';
import { BULK, HTTP2_DEFAULT, HTTP2_TUNED, RAW, WS, YAMUX } from './lib/systems.js';
import { matchedPair, renderReport } from './report.js';
import type { BenchResults } from './run.js';

const COLOURS: Record<string, string> = {
  raw: RAW.colour,
  heartwire: '#d62728',
  ws: WS.colour,
  'http2-16m': HTTP2_TUNED.colour,
  http2: HTTP2_DEFAULT.colour,
  yamux: YAMUX.colour,
  bulk: BULK.colour,
};
const ORDER = ['raw', 'heartwire', 'ws', 'http2', 'http2-16m', 'yamux', 'bulk'];
const FONT = 'font-family="system-ui, sans-serif"';

const escape = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');

/** A log10 axis mapping [min, max] to [bottom, top] pixels. */
function logScale(min: number, max: number, bottom: number, top: number): (v: number) => number {
  const a = Math.log10(min);
  const b = Math.log10(max);
  return (v) => bottom - ((Math.log10(Math.max(min, Math.min(max, v))) - a) / (b - a)) * (bottom - top);
}

function axis(x: number, y: (v: number) => number, ticks: number[], unit: string, width: number): string[] {
  return ticks.flatMap((t) => [
    `<line x1="${x}" x2="${x + width}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" stroke="#e5e5e5"/>`,
    `<text x="${x - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end" font-size="11" ${FONT}>${t}${unit}</text>`,
  ]);
}

/** Grouped bars: MB/s by message size and system, log scale. */
function throughputPanel(
  results: BenchResults,
  x0: number,
  y0: number,
  width: number,
  height: number,
): string[] {
  const sizes = [...new Set(results.throughput.map((r) => r.size))].sort((a, b) => a - b);
  const systems = ORDER.filter((id) =>
    results.throughput.some((r) => r.system === id && r.error === undefined),
  );
  const out: string[] = [
    `<text x="${x0}" y="${y0 - 28}" font-size="15" font-weight="600" ${FONT}>Throughput by message size (one connection, MB/s, log scale)</text>`,
  ];
  if (sizes.length === 0 || systems.length === 0) return out;
  const bottom = y0 + height;
  const y = logScale(1, 10_000, bottom, y0);
  out.push(...axis(x0, y, [1, 10, 100, 1000, 10_000], '', width));
  const group = width / sizes.length;
  const bar = Math.min(22, (group - 20) / systems.length);
  sizes.forEach((size, g) => {
    const gx = x0 + g * group + (group - bar * systems.length) / 2;
    const raw = results.throughput.find((r) => r.system === 'raw' && r.size === size);
    systems.forEach((id, i) => {
      const r = results.throughput.find((c) => c.system === id && c.size === size && c.error === undefined);
      if (r === undefined) return;
      const top = y(r.mbPerSec);
      const x = gx + i * bar;
      out.push(
        `<rect x="${x.toFixed(1)}" y="${top.toFixed(1)}" width="${(bar - 2).toFixed(1)}" height="${(bottom - top).toFixed(1)}" fill="${COLOURS[id]}"><title>${escape(`${r.label}, ${sizeLabel(size)}: ${r.mbPerSec.toFixed(1)} MB/s`)}</title></rect>`,
      );
      if (id === 'heartwire' && raw !== undefined && raw.mbPerSec > 0) {
        // The ratio of the back-to-back pair with the quietest machine, as in the targets table.
        const ratio = matchedPair(r, raw)?.ratio ?? r.mbPerSec / raw.mbPerSec;
        out.push(
          `<text x="${(x + bar / 2).toFixed(1)}" y="${(top - 4).toFixed(1)}" text-anchor="middle" font-size="10" ${FONT}>${ratio.toFixed(2)}×</text>`,
        );
      }
    });
    out.push(
      `<text x="${(x0 + g * group + group / 2).toFixed(1)}" y="${bottom + 16}" text-anchor="middle" font-size="12" ${FONT}>${sizeLabel(size)}</text>`,
    );
  });
  systems.forEach((id, i) => {
    const label = results.throughput.find((r) => r.system === id)?.label ?? id;
    const lx = x0 + (i % 4) * (width / 4);
    const ly = bottom + 36 + Math.floor(i / 4) * 16;
    out.push(
      `<rect x="${lx}" y="${ly - 9}" width="10" height="10" fill="${COLOURS[id]}"/>`,
      `<text x="${lx + 14}" y="${ly}" font-size="11" ${FONT}>${escape(label)}</text>`,
    );
  });
  return out;
}

/** p50 and p99 RTT under load per system, log scale, with the 2 ms target line. */
function rttPanel(results: BenchResults, x0: number, y0: number, width: number, height: number): string[] {
  const rows = results.liveness.filter((r) => r.load !== undefined && r.load.rtt.count > 0);
  const out: string[] = [
    `<text x="${x0}" y="${y0 - 28}" font-size="15" font-weight="600" ${FONT}>Heartbeat / ping RTT under load (ms, log)</text>`,
  ];
  if (rows.length === 0) return out;
  const bottom = y0 + height;
  const y = logScale(0.1, 1000, bottom, y0);
  out.push(...axis(x0, y, [0.1, 1, 10, 100, 1000], '', width));
  out.push(
    `<line x1="${x0}" x2="${x0 + width}" y1="${y(2).toFixed(1)}" y2="${y(2).toFixed(1)}" stroke="#d62728" stroke-dasharray="4 3"/>`,
  );
  const slot = width / rows.length;
  rows.forEach((r, i) => {
    const colour = COLOURS[r.system] ?? '#666';
    const x = x0 + i * slot + slot / 2 - 12;
    for (const [k, value, opacity] of [
      [0, r.load!.rtt.p50 ?? 0.1, 1],
      [1, r.load!.rtt.p99 ?? 0.1, 0.45],
    ] as const) {
      const top = y(Math.max(0.1, value));
      out.push(
        `<rect x="${(x + k * 12).toFixed(1)}" y="${top.toFixed(1)}" width="11" height="${(bottom - top).toFixed(1)}" fill="${colour}" fill-opacity="${opacity}"><title>${escape(`${r.label}: ${k === 0 ? 'p50' : 'p99'} ${value.toFixed(2)} ms`)}</title></rect>`,
      );
    }
    const name = r.system === 'heartwire' ? 'heartwire' : r.system;
    out.push(
      `<text x="${(x + 12).toFixed(1)}" y="${bottom + 14}" text-anchor="end" font-size="10" transform="rotate(-35 ${(x + 12).toFixed(1)} ${bottom + 14})" ${FONT}>${escape(name)}</text>`,
    );
  });
  out.push(
    `<text x="${x0}" y="${bottom + 58}" font-size="10" ${FONT}>solid: p50, light: p99; dashed: target p99 ≤ 2 ms</text>`,
    `<text x="${x0}" y="${bottom + 72}" font-size="10" ${FONT}>heartwire: its heartbeats (0.1 ms resolution); others: pings every 50 ms</text>`,
  );
  return out;
}

/** Render the chart. */
export function renderChart(results: BenchResults): string {
  const width = 1180;
  const height = 480;
  const body = [
    ...throughputPanel(results, 70, 70, 640, 300),
    ...rttPanel(results, 820, 70, 330, 300),
    `<text x="70" y="${height - 10}" font-size="10" fill="#666" ${FONT}>${escape(
      `${results.env.startedAt} · ${results.env.machine.cpus} × ${results.env.machine.model} · Node ${results.env.node.version} · load ${results.loadStart.join('/')} → ${results.loadEnd.join('/')} · ${results.mode}`,
    )}</text>`,
  ];
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}

/** Write `chart.svg` and `latest.md` into `dir`; returns the markdown. */
export function writeOutputs(results: BenchResults, dir: string): string {
  const markdown = renderReport(results);
  writeFileSync(path.join(dir, 'chart.svg'), renderChart(results));
  writeFileSync(path.join(dir, 'latest.md'), markdown);
  return markdown;
}
