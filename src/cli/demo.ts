/**
 * `heartwire demo` (`npm start`): a launcher. The demo itself is an application built on the
 * library, the example broker and its client, so it lives with them in `examples/demo/` and is
 * loaded at run time; nothing under `src/` imports `examples/` (issue 12: layers point one way).
 * A package built without its examples says so instead of failing on a missing import.
 * @module
 */
import { parse } from './util.js';
import type { Output } from './util.js';

/** Help text of `heartwire demo`. */
export const demoHelp = `usage: heartwire demo [--quick] [--rolling]

Runs a message broker, producers and consumers built on heartwire on 127.0.0.1, every client
behind a fault-injecting TCP proxy, and checks three claims by counting:

  1. a consumer that stops consuming: no false failure, memory within the receive window,
     then it catches up with nothing lost;
  2. a network path that goes silent: heartwire detects it within its idle timeout, next to a
     plain TCP socket with keepalive on the same kind of path;
  3. the broker shuts down with a grace period under load: GOAWAY, clients drain and move to a
     second broker, zero messages lost.

It takes about 40 s (--quick: about 12 s) and needs nothing but this package.

With --rolling, a second demo instead: three brokers on one queue store (Redis when
redis-server is installed, else a shared in-memory store, said so), producers and consumers
under load, and a rolling restart of the three brokers. Each GOAWAY names the other brokers
(alternatives); clients move make-before-break. Live counts, moved connections, lost 0.

options:
  --quick      shorter phases
  --rolling    the rolling-restart demo (three brokers)
  -h, --help   show this help

exit status: 0 when every claim holds, 1 otherwise.`;

/** What `examples/demo/main.ts` exports. */
interface DemoModule {
  runDemo(
    options: { quick: boolean; rolling: boolean },
    output: Output,
    stop: Promise<unknown>,
  ): Promise<number>;
}

/** Run `heartwire demo`; resolves with the exit status. `stop` (Ctrl-C) interrupts it. */
export async function demo(args: string[], output: Output, stop: Promise<unknown>): Promise<number> {
  const { values } = parse({
    args,
    options: {
      quick: { type: 'boolean' },
      rolling: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    output.out(demoHelp);
    return 0;
  }
  // From src/cli/ (tsx) or dist/src/cli/ (built): the examples are two levels up, side by side.
  const where = new URL('../../examples/demo/main.js', import.meta.url);
  let module: DemoModule;
  try {
    module = (await import(where.href)) as DemoModule;
  } catch (error) {
    if ((error as { code?: string }).code !== 'ERR_MODULE_NOT_FOUND') throw error;
    output.err(`heartwire demo: the demo application is not installed (${where.pathname})`);
    return 1;
  }
  return module.runDemo({ quick: values.quick ?? false, rolling: values.rolling ?? false }, output, stop);
}
