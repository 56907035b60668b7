/**
 * `heartwire bench`: the benchmark against raw framing, raw TCP, ws, node:http2 and yamux
 * (`test/bench/run.ts`, the same as `npm run bench`). The bench and its peers are
 * devDependencies, so it runs from a clone of the repository after `npm ci`.
 * @module
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { integer, parse, UsageError } from './util.js';
import type { Output } from './util.js';

/** Help text of `heartwire bench`. */
export const benchHelp = `usage: heartwire bench [options]

Run the benchmark (about 5 minutes; --quick about 1 minute): heartwire against a raw
length-prefixed framing, raw TCP bulk bytes, ws, node:http2 and @chainsafe/libp2p-yamux, client
and server in separate processes over loopback. Prints a markdown report with the targets and
writes latest.md, latest.json and chart.svg: a full run to test/bench/results/ (the committed
results), a --quick or --only run to test/bench/results/scratch/ (git-ignored), so a short run
never overwrites the full one. Needs a clone of the repository with its devDependencies
(npm ci); the same as 'npm run bench'.

options:
  --quick               short cells (about 1 minute)
  --only PARTS          some parts only: throughput, connections, liveness, detection, idle,
                        window, profile, or their numbers 1-6 (comma-separated)
  --cpu-prof            also profile heartwire's worst cells and summarize the hot functions
  --profile-sizes LIST  which throughput cells to profile (bytes, comma-separated; 0: the idle cell)
  --wait-quiet S        before each cell, wait up to S seconds for the machine to be quiet
  --out DIR             write the report to DIR instead
  -h, --help            show this help

exit status: 0 when the run completed (whatever the targets), 1 on failure, 2 usage error`;

/** The repository root holding `test/bench/run.ts`, found upwards from this file, or undefined. */
function repositoryRoot(): string | undefined {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string };
    if (pkg.name !== 'heartwire') continue;
    return existsSync(join(dir, 'test', 'bench', 'run.ts')) ? dir : undefined;
  }
  return undefined;
}

/**
 * Run `heartwire bench`: the bench runner in a child process, its output passed through.
 * Resolves with its exit code; `stop` (Ctrl-C) stops it.
 */
export async function bench(args: string[], output: Output, stop: Promise<unknown>): Promise<number> {
  const { values } = parse({
    args,
    options: {
      quick: { type: 'boolean' },
      only: { type: 'string' },
      'cpu-prof': { type: 'boolean' },
      'profile-sizes': { type: 'string' },
      'wait-quiet': { type: 'string' },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    output.out(benchHelp);
    return 0;
  }
  if (values['wait-quiet'] !== undefined) integer(values['wait-quiet'], 'wait-quiet', 0, 0, 3600);
  if (values['profile-sizes'] !== undefined && !/^\d+(,\d+)*$/.test(values['profile-sizes']))
    throw new UsageError(
      `--profile-sizes must be sizes in bytes, comma-separated, got '${values['profile-sizes']}'`,
    );
  const root = repositoryRoot();
  if (root === undefined) {
    throw new Error(
      'the bench runs from a clone of the repository (its peers are devDependencies): clone it, run npm ci, then npx heartwire bench',
    );
  }
  if (!existsSync(join(root, 'node_modules', 'tsx'))) {
    throw new Error(`the bench needs the devDependencies: run npm ci in ${root} first`);
  }
  const child = spawn(process.execPath, ['--import', 'tsx', join('test', 'bench', 'run.ts'), ...args], {
    cwd: root,
    stdio: 'inherit',
  });
  const exited = new Promise<number>((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code, signal) => resolve(code ?? (signal === null ? 1 : 130)));
  });
  void stop.then(() => child.kill('SIGINT'));
  const code = await exited;
  if (code !== 0) output.err(`heartwire bench: the bench runner exited with status ${code}`);
  return code === 0 ? 0 : 1;
}
