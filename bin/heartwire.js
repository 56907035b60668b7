#!/usr/bin/env node
// The `heartwire` command: runs the compiled CLI (dist/src/cli/main.js, built by `npm run build`).
// From a source checkout without a build, use `npx tsx src/cli/main.ts` instead.
import process from 'node:process';

let cli;
try {
  cli = await import('../dist/src/cli/main.js');
} catch (error) {
  if (error?.code !== 'ERR_MODULE_NOT_FOUND' || !String(error.message).includes('dist')) throw error;
  process.stderr.write(
    'heartwire: the CLI is not built; run `npm run build` (or use `npx tsx src/cli/main.ts`)\n',
  );
  process.exit(1);
}
await cli.run();
