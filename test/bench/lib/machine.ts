/**
 * What the results depend on: machine, load, software versions; and the machine-wide CPU use
 * that tells how much a neighbour took during a measurement.
 * @module
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';

const REPO = fileURLToPath(new URL('../../../', import.meta.url));

/** Cumulative machine CPU time from /proc/stat, in clock ticks. */
export interface CpuTimes {
  busy: number;
  total: number;
}

/** Read /proc/stat (Linux); zeros elsewhere. */
export function readCpuTimes(): CpuTimes {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!;
    const fields = line.trim().split(/\s+/).slice(1, 9).map(Number);
    const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as number[];
    const busy = user! + nice! + system! + irq! + softirq! + steal!;
    return { busy, total: busy + idle! + iowait! };
  } catch {
    return { busy: 0, total: 0 };
  }
}

/** Machine-wide busy CPU between two readings, in % of one core (100 × cores at most). */
export function machineBusyPercent(a: CpuTimes, b: CpuTimes): number {
  const total = b.total - a.total;
  if (total <= 0) return 0;
  return ((b.busy - a.busy) / total) * os.cpus().length * 100;
}

function packageVersion(name: string): string {
  try {
    const file = `${REPO}/node_modules/${name}/package.json`;
    return (JSON.parse(readFileSync(file, 'utf8')) as { version: string }).version;
  } catch {
    return 'not installed';
  }
}

function git(args: string[]): string {
  try {
    return execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
}

/** Machine, software and repository state at the start of a run. */
export interface Environment {
  startedAt: string;
  machine: { cpus: number; model: string; memoryGiB: number; kernel: string; openFilesLimit: string };
  node: { version: string; v8: string; uv: string; nghttp2: string };
  packages: Record<string, string>;
  heartwire: { version: string; commit: string; dirtyFiles: number };
}

/** Collect the {@link Environment}. */
export function environment(): Environment {
  const cpus = os.cpus();
  let openFilesLimit = 'unknown';
  try {
    openFilesLimit = execFileSync('sh', ['-c', 'ulimit -n'], { encoding: 'utf8' }).trim();
  } catch {
    // keep unknown
  }
  const names = [
    'ws',
    '@chainsafe/libp2p-yamux',
    '@libp2p/utils',
    '@libp2p/interface',
    'uint8arraylist',
    'tsx',
  ];
  const pkg = JSON.parse(readFileSync(`${REPO}/package.json`, 'utf8')) as { version: string };
  return {
    startedAt: new Date().toISOString(),
    machine: {
      cpus: cpus.length,
      model: cpus[0]?.model ?? 'unknown',
      memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
      kernel: `${os.type()} ${os.release()}`,
      openFilesLimit,
    },
    node: {
      version: process.version,
      v8: process.versions.v8,
      uv: process.versions.uv ?? '',
      nghttp2: process.versions.nghttp2 ?? '',
    },
    packages: Object.fromEntries(names.map((n) => [n, packageVersion(n)])),
    heartwire: {
      version: pkg.version,
      commit: git(['rev-parse', '--short', 'HEAD']),
      dirtyFiles: git(['status', '--porcelain', '--', 'src']).split('\n').filter(Boolean).length,
    },
  };
}

/** The load average, rounded, for recording with each result. */
export function loadAverage(): number[] {
  return os.loadavg().map((v) => Math.round(v * 100) / 100);
}
