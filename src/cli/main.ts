/**
 * The `heartwire` command: `serve`, `ping`, `demo`, `conformance`. (The benchmark is a tool of the
 * repository, `npm run bench`, not a command: it needs the devDependencies and a clone.)
 *
 * Run from the sources with `npx tsx src/cli/main.ts <command>`, or as `heartwire <command>`
 * once built (`bin/heartwire.js` runs `dist/src/cli/main.js`).
 * Exit status: 0 ok, 1 failure, 2 usage error.
 * @module
 */
import { existsSync, readFileSync, realpathSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { conformance, conformanceHelp } from './conformance.js';
import { demo, demoHelp } from './demo.js';
import { ping, pingHelp } from './ping.js';
import { serve, serveHelp } from './serve.js';
import { processOutput, UsageError } from './util.js';
import type { Output } from './util.js';

/** Top-level help. */
export const help = `usage: heartwire <command> [options]

A framed heartbeat protocol over TCP with credit-based flow control.

commands:
  serve              run an echo or sink server until Ctrl-C
  ping host:port     RTT, credit and heartbeats of a connection, line by line; Ctrl-C for a summary
  demo               about a minute, no setup: a stalled consumer, a dead network path, and a
                     broker restart under load, each checked (exit 0 when all hold)
  conformance server HOST:PORT
                     test a server implementation of SPEC.md over the wire, case by case,
                     each failure named by its SPEC section (--json, --junit FILE)
  conformance client [--port N]
                     the other way round: play the server for a client implementation
  help [command]     show help

options: -h, --help (also after a command), -v, --version
Run 'heartwire <command> --help' for the options of a command.
exit status: 0 ok, 1 failure, 2 usage error`;

type Command = (args: string[], output: Output, stop: Promise<unknown>) => Promise<number>;

const commands: Record<string, { run: Command; help: string }> = {
  serve: { run: serve, help: serveHelp },
  ping: { run: ping, help: pingHelp },
  demo: { run: demo, help: demoHelp },
  conformance: { run: conformance, help: conformanceHelp },
};

/** The version in package.json, found upwards from this file (sources or `dist/`). */
function version(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dirname(dir) !== dir; dir = dirname(dir)) {
    const file = join(dir, 'package.json');
    if (!existsSync(file)) continue;
    const pkg = JSON.parse(readFileSync(file, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'heartwire') return pkg.version ?? 'unknown';
  }
  return 'unknown';
}

/**
 * Run the command line `argv` (without `node` and the script). `stop` resolves when the user
 * asks to stop (Ctrl-C). Resolves with the exit status; never throws.
 */
export async function main(
  argv: string[],
  output: Output = processOutput,
  stop: Promise<unknown> = new Promise(() => {}),
): Promise<number> {
  const [name, ...args] = argv;
  try {
    if (name === undefined) {
      output.err(help); // no command: a usage error
      return 2;
    }
    if (name === '-h' || name === '--help') {
      output.out(help);
      return 0;
    }
    if (name === '-v' || name === '--version') {
      output.out(version());
      return 0;
    }
    if (name === 'help') {
      const topic = args[0];
      if (topic === undefined) output.out(help);
      else if (commands[topic] !== undefined) output.out(commands[topic].help);
      else throw new UsageError(`no help for '${topic}'`);
      return 0;
    }
    const command = Object.hasOwn(commands, name) ? commands[name] : undefined;
    if (command === undefined) throw new UsageError(`unknown command '${name}'`);
    return await command.run(args, output, stop);
  } catch (error) {
    const prefix = name !== undefined && Object.hasOwn(commands, name) ? `heartwire ${name}` : 'heartwire';
    if (error instanceof UsageError) {
      output.err(`${prefix}: ${error.message} (see '${prefix} --help')`);
      return 2;
    }
    output.err(`${prefix}: ${(error as Error).message}`);
    return 1;
  }
}

/**
 * Run as a process: arguments from `process.argv`, the first Ctrl-C (SIGINT) or SIGTERM asks
 * the command to stop, a second one exits at once (130); the exit status is set at the end.
 */
export async function run(): Promise<void> {
  let signalled = false;
  const stop = new Promise<void>((resolve) => {
    const onSignal = (): void => {
      if (signalled) process.exit(130);
      signalled = true;
      resolve();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
  });
  const status = await main(process.argv.slice(2), processOutput, stop);
  process.exitCode = status;
  // Normally nothing is left running; if something is, do not hang on it.
  setTimeout(() => process.exit(status), 2000).unref();
}

const entry = process.argv[1] === undefined ? undefined : realpathSync(process.argv[1]);
if (entry === fileURLToPath(import.meta.url)) await run();
