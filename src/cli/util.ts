/**
 * Small helpers shared by the `heartwire` commands: usage errors, argument checks, formatting.
 * @module
 */
import { parseArgs } from 'node:util';
import type { ParseArgsConfig } from 'node:util';
import { closestName } from '../node/options.js';

/** A command-line mistake: reported on one line, exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

/** Where a command writes; tests and the demo may pass their own. */
export interface Output {
  out: (line: string) => void;
  err: (line: string) => void;
}

/** The process's stdout and stderr. */
export const processOutput: Output = {
  out: (line) => process.stdout.write(`${line}\n`),
  err: (line) => process.stderr.write(`${line}\n`),
};

/**
 * `parseArgs` in strict mode, with its errors turned into {@link UsageError}s; an unknown long
 * option is named with the closest known one ("Unknown option '--hots'; did you mean --host?").
 */
export function parse<T extends ParseArgsConfig>(config: T): ReturnType<typeof parseArgs<T>> {
  try {
    return parseArgs(config); // strict by default: unknown options are errors
  } catch (error) {
    let message = (error as Error).message.replace(/\. To specify a positional argument.*$/s, '');
    const unknown = /^Unknown option '--([^']+)'$/.exec(message)?.[1];
    const closest =
      unknown === undefined ? undefined : closestName(unknown, Object.keys(config.options ?? {}));
    if (closest !== undefined) message += `; did you mean --${closest}?`;
    throw new UsageError(message);
  }
}

/** An integer option in [min, max]. */
export function integer(
  value: string | undefined,
  name: string,
  fallback: number,
  min = 0,
  max = Number.MAX_SAFE_INTEGER,
): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be an integer in [${min}, ${max}], got '${value}'`);
  return n;
}

/** `host:port`, `[v6]:port` or a bare `port` (host 127.0.0.1). */
export function hostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]*)):(\d+)$/.exec(value) ?? /^()()(\d+)$/.exec(value);
  const port = match ? Number(match[3]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) throw new UsageError(`expected host:port, got '${value}'`);
  return { host: match[1] || match[2] || '127.0.0.1', port };
}

/** Resolves after `ms`; does not keep the process alive by itself. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms).unref());
}

/** `1.2 kB`, `3.4 MB`: decimal units, 3 significant digits. */
export function bytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n;
  let unit = -1;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toPrecision(3)} ${units[unit]}`;
}

/** A duration: `0.42 ms`, `37 ms`, `1.25 s`, `15.0 s`. */
export function ms(value: number | undefined): string {
  if (value === undefined || Number.isNaN(value)) return '-';
  if (value < 10) return `${value.toFixed(2)} ms`;
  if (value < 1000) return `${Math.round(value)} ms`;
  return `${(value / 1000).toFixed(value < 10_000 ? 2 : 1)} s`;
}

/** A plain-text table: columns padded to their widest cell. */
export function table(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((row) => (row[i] ?? '').length)));
  return rows.map((row) =>
    row
      .map((cell, i) => cell.padEnd(widths[i]!))
      .join('  ')
      .trimEnd(),
  );
}
