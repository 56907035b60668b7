/**
 * The demos of `heartwire demo` (`npm start`), loaded at run time by `src/cli/demo.ts`:
 * `claims.ts` (the three claims, through fault proxies) and `rolling.ts` (three brokers, a
 * rolling restart under load). Run directly: `npx tsx examples/demo/main.ts [--quick] [--rolling]`.
 * @module
 */
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { processOutput } from '../../src/cli/util.js';
import type { Output } from '../../src/cli/util.js';
import { claimsDemo } from './claims.js';
import { rollingDemo } from './rolling.js';

/** Run a demo; resolves with the exit status. */
export function runDemo(
  options: { quick: boolean; rolling: boolean },
  output: Output,
  stop: Promise<unknown>,
): Promise<number> {
  return options.rolling ? rollingDemo(options.quick, output, stop) : claimsDemo(options.quick, output, stop);
}

const entry = process.argv[1] === undefined ? undefined : realpathSync(process.argv[1]);
if (entry === fileURLToPath(import.meta.url)) {
  const args = process.argv.slice(2);
  const stop = new Promise((resolve) => process.once('SIGINT', resolve));
  process.exitCode = await runDemo(
    { quick: args.includes('--quick'), rolling: args.includes('--rolling') },
    processOutput,
    stop,
  );
  setTimeout(() => process.exit(), 2000).unref();
}
