/**
 * Summarize V8 CPU profiles written by the bench's children (`--cpu-prof`): self time per
 * function, mapped back to TypeScript `file:line` with the source maps each child saved next to
 * its profile (`maps.json` in the same directory, see `child.ts`), optionally restricted to the
 * measurement window.
 *
 * Usage: `node --import tsx test/bench/profile.ts <file.cpuprofile> [--top 25]`.
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { SourceMap } from 'node:module';
import type { SourceMapPayload } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../', import.meta.url));

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  children?: number[];
}

interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** One row of a profile summary. */
export interface HotFunction {
  functionName: string;
  /** `path:line` relative to the repository (TypeScript position when mapped). */
  location: string;
  selfMs: number;
  /** Share of the non-idle samples in the window, %. */
  selfPercent: number;
}

/** A profile summary. */
export interface ProfileSummary {
  /** What was profiled (default: the file name). */
  label: string;
  file: string;
  /** Busy (non-idle) ms within the window. */
  busyMs: number;
  windowMs: number;
  top: HotFunction[];
}

function shortUrl(url: string): string {
  if (url.startsWith('file://')) {
    const file = fileURLToPath(url);
    return file.startsWith(REPO) ? path.relative(REPO, file) : file;
  }
  return url;
}

/**
 * Summarize one profile. `window` (monotonic µs, the clock of `process.hrtime`) restricts the
 * samples to that interval.
 */
export function summarizeProfile(
  file: string,
  options: { top?: number; window?: [number, number]; label?: string } = {},
): ProfileSummary {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const mapsFile = path.join(path.dirname(file), 'maps.json');
  const payloads = existsSync(mapsFile)
    ? (JSON.parse(readFileSync(mapsFile, 'utf8')) as Record<string, SourceMapPayload>)
    : {};
  const maps = new Map<string, SourceMap>();
  const mapFor = (url: string): SourceMap | undefined => {
    if (!(url in payloads)) return undefined;
    let map = maps.get(url);
    if (map === undefined) {
      map = new SourceMap(payloads[url]!);
      maps.set(url, map);
    }
    return map;
  };

  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  let t = profile.startTime;
  const [from, to] = options.window ?? [Number.NEGATIVE_INFINITY, Number.POSITIVE_INFINITY];
  for (let i = 0; i < profile.samples.length; i++) {
    t += profile.timeDeltas[i]!;
    if (t < from || t > to) continue;
    // A sample's time is the delta to the next sample (the last one gets the mean).
    const next = profile.timeDeltas[i + 1] ?? profile.timeDeltas[i]!;
    const id = profile.samples[i]!;
    selfUs.set(id, (selfUs.get(id) ?? 0) + next);
  }

  const rows = new Map<string, { functionName: string; location: string; us: number }>();
  let busyUs = 0;
  for (const [id, us] of selfUs) {
    const frame = byId.get(id)!.callFrame;
    if (frame.functionName === '(idle)') continue;
    busyUs += us;
    let location = frame.url === '' ? '' : `${shortUrl(frame.url)}:${frame.lineNumber + 1}`;
    const map = frame.url === '' ? undefined : mapFor(frame.url);
    if (map !== undefined) {
      const entry = map.findEntry(frame.lineNumber, frame.columnNumber) as {
        originalSource?: string;
        originalLine?: number;
      };
      if (entry.originalSource !== undefined && entry.originalLine !== undefined) {
        location = `${shortUrl(entry.originalSource)}:${entry.originalLine + 1}`;
      }
    }
    const name = frame.functionName === '' ? '(anonymous)' : frame.functionName;
    const key = `${name}@${location}`;
    const row = rows.get(key) ?? { functionName: name, location, us: 0 };
    row.us += us;
    rows.set(key, row);
  }
  const top = [...rows.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, options.top ?? 25)
    .map((r) => ({
      functionName: r.functionName,
      location: r.location,
      selfMs: r.us / 1000,
      selfPercent: busyUs > 0 ? (r.us / busyUs) * 100 : 0,
    }));
  const windowMs = (Math.min(to, profile.endTime) - Math.max(from, profile.startTime)) / 1000;
  return { label: options.label ?? path.basename(file), file, busyMs: busyUs / 1000, windowMs, top };
}

/** Markdown table of a summary. */
export function profileTable(summary: ProfileSummary): string {
  const lines = [
    `${summary.label}: ${summary.busyMs.toFixed(0)} ms busy in a ${summary.windowMs.toFixed(0)} ms window (\`${summary.file}\`)`,
    '',
    '| self % | self ms | function | where |',
    '|---:|---:|---|---|',
    ...summary.top.map(
      (r) =>
        `| ${r.selfPercent.toFixed(1)} | ${r.selfMs.toFixed(0)} | \`${r.functionName}\` | ${r.location} |`,
    ),
  ];
  return lines.join('\n');
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  const file = process.argv[2];
  if (file === undefined) {
    console.error('usage: profile.ts <file.cpuprofile> [--top N]');
    process.exit(2);
  }
  const topIndex = process.argv.indexOf('--top');
  const top = topIndex > 0 ? Number(process.argv[topIndex + 1]) : 25;
  console.log(profileTable(summarizeProfile(path.resolve(file), { top })));
}
