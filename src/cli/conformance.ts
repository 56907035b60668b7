/**
 * `heartwire conformance server HOST:PORT`: test any server implementation of SPEC.md over the
 * wire, case by case, each named by its SPEC section.
 * @module
 */
import { writeFileSync } from 'node:fs';
import { clientCases } from '../conformance/cases/client.js';
import { serverCases } from '../conformance/cases/index.js';
import {
  defaultClientOptions,
  runClientConformance,
  selectClientCases,
} from '../conformance/client-runner.js';
import type { ClientRunOptions } from '../conformance/client-runner.js';
import { jsonReport, junitReport, resultDetail, resultLine, summaryLine } from '../conformance/report.js';
import { defaultServerOptions, runServerConformance, selectCases } from '../conformance/runner.js';
import type { ServerRunOptions } from '../conformance/types.js';
import { hostPort, integer, parse, UsageError } from './util.js';
import type { Output } from './util.js';

/** Help text of `heartwire conformance`. */
export const conformanceHelp = `usage: heartwire conformance server HOST:PORT [options]
       heartwire conformance client [--port N] [--host H] [options]

Test a server implementation of SPEC.md over the wire: preamble, handshake and each handshake
error, every frame type's limits, credit rules, flood limits, liveness, termination and delivery
accounting. Each case runs on fresh connections and is graded PASS, FAIL or INFO (could not
judge, e.g. the server does not echo), with its SPEC section and what was expected and seen.
Cases that need echoed messages expect an echo server (heartwire serve). Keep the server's
timeouts short for a fast run (e.g. heartwire serve --idle-timeout 1000).

client mode: listen on --port (default 7879; 0 picks one) and play a server that checks a client
implementation: its HELLO, its reaction to a bad preamble and to each bad WELCOME field, its
heartbeats and idle deadline, credit, floods, GOAWAY and CLOSE_ACK. The client under test must
connect again after every close (one connection per case), send messages, and end its connection
(CLOSE) when it receives GOAWAY.

options:
  --json                 print the report as JSON instead of text
  --junit FILE           also write a JUnit XML report to FILE
  --only IDS             comma-separated case ids or sections to run (e.g. 7/,§8,3/bad-third-byte)
  --list                 list the cases and exit
  --timeout MS           bound on each ordinary wait (default ${defaultServerOptions.timeoutMs})
  --tolerance MS         allowance in timing checks (default ${defaultServerOptions.toleranceMs})
  --max-wait MS          longest wait on a timeout the server declared; beyond it the case is
                         INFO (default ${defaultServerOptions.maxWaitMs})
  --handshake-timeout MS the server's handshake timeout (default ${defaultServerOptions.handshakeTimeoutMs}, the SPEC default)
  --idle-timeout MS      idle timeout the runner declares in HELLO (default ${defaultServerOptions.idleTimeoutMs}; the server clamps it)
  --goaway-within MS     the server sends GOAWAY on every connection within MS (enables §9.2 cases)
  --random N             server mode: instead of the fixed cases, N random sequences (messages,
                         CREDIT, HEARTBEAT, extension frames in random writes, then CLOSE or one
                         invalid frame); a failure is shrunk and printed with its seed
  --seed S               the seed of --random (default: a new one, printed)
  --jobs N               cases run at the same time (default ${defaultServerOptions.jobs}; server mode)
  --port N, --host H     where the client mode listens (default 7879, 127.0.0.1)
  --connect-wait MS      client mode: how long to wait for the client's next connection (default ${defaultClientOptions.connectWaitMs})
  -h, --help             show this help

exit status: 0 every case passed or was INFO, 1 some case failed, 2 usage error`;

/** Run `heartwire conformance`. */
export async function conformance(args: string[], output: Output): Promise<number> {
  const { values, positionals } = parse({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      junit: { type: 'string' },
      only: { type: 'string' },
      list: { type: 'boolean' },
      timeout: { type: 'string' },
      tolerance: { type: 'string' },
      'max-wait': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      'idle-timeout': { type: 'string' },
      'goaway-within': { type: 'string' },
      jobs: { type: 'string' },
      port: { type: 'string' },
      host: { type: 'string' },
      'connect-wait': { type: 'string' },
      random: { type: 'string' },
      seed: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    output.out(conformanceHelp);
    return 0;
  }
  const [mode, target, ...rest] = positionals;
  const only = (values.only ?? '').split(',').filter((s) => s !== '');
  if (values.list) {
    const list = mode === 'client' ? selectClientCases(clientCases, only) : selectCases(serverCases, only);
    for (const c of list) output.out(`${c.section.padEnd(6)} ${c.id.padEnd(40)} ${c.title}`);
    return 0;
  }
  if (mode === 'client') return runClient(positionals.slice(1), values, only, output);
  if (mode !== 'server')
    throw new UsageError(
      mode === undefined
        ? 'expected: server HOST:PORT, or client'
        : `unknown mode '${mode}' (expected: server or client)`,
    );
  if (target === undefined) throw new UsageError('expected HOST:PORT after server');
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  const { host, port } = hostPort(target);
  const d = defaultServerOptions;
  const options: ServerRunOptions = {
    host,
    port,
    timeoutMs: integer(values.timeout, 'timeout', d.timeoutMs, 1),
    toleranceMs: integer(values.tolerance, 'tolerance', d.toleranceMs, 0),
    maxWaitMs: integer(values['max-wait'], 'max-wait', d.maxWaitMs, 0),
    handshakeTimeoutMs: integer(values['handshake-timeout'], 'handshake-timeout', d.handshakeTimeoutMs, 1),
    idleTimeoutMs: integer(values['idle-timeout'], 'idle-timeout', d.idleTimeoutMs, 100, 86_400_000),
    goAwayWithinMs:
      values['goaway-within'] === undefined
        ? undefined
        : integer(values['goaway-within'], 'goaway-within', 0, 1),
    jobs: integer(values.jobs, 'jobs', d.jobs, 1, 64),
    only,
  };
  let cases = serverCases;
  if (values.random !== undefined) {
    const runs = integer(values.random, 'random', 100, 1, 1_000_000);
    const seed = integer(values.seed, 'seed', (Math.random() * 0x7fffffff) | 0, 0, 0x7fffffff);
    // fast-check is an optional peer dependency: loaded only for --random.
    const { randomCase } = await import('../conformance/random.js').catch((error: unknown) => {
      throw new Error('--random needs the optional dependency fast-check: npm install fast-check', {
        cause: error,
      });
    });
    cases = [randomCase(runs, seed)];
    options.only = [];
  } else if (values.seed !== undefined) throw new UsageError('--seed goes with --random');
  if (selectCases(cases, options.only).length === 0)
    throw new UsageError(`--only '${values.only}' selects no case`);
  if (!values.json) output.out(`heartwire conformance server ${host}:${port}`);
  const run = await runServerConformance(options, cases, (r) => {
    if (values.json) return;
    output.out(resultLine(r));
    for (const line of resultDetail(r)) output.out(line);
  });
  if (values.json) output.out(jsonReport(run));
  else output.out(summaryLine(run));
  if (values.junit !== undefined) writeFileSync(values.junit, `${junitReport(run)}\n`);
  return run.counts.fail > 0 ? 1 : 0;
}

type Values = Record<string, string | boolean | undefined>;

async function runClient(rest: string[], values: Values, only: string[], output: Output): Promise<number> {
  if (rest.length > 0) throw new UsageError(`unexpected argument '${rest[0]}'`);
  const d = defaultClientOptions;
  const str = (name: string): string | undefined => values[name] as string | undefined;
  const options: ClientRunOptions = {
    host: str('host') ?? '127.0.0.1',
    port: integer(str('port'), 'port', 7879, 0, 65535),
    timeoutMs: integer(str('timeout'), 'timeout', d.timeoutMs, 1),
    toleranceMs: integer(str('tolerance'), 'tolerance', d.toleranceMs, 0),
    maxWaitMs: integer(str('max-wait'), 'max-wait', d.maxWaitMs, 0),
    connectWaitMs: integer(str('connect-wait'), 'connect-wait', d.connectWaitMs, 1),
    only,
  };
  if (selectClientCases(clientCases, only).length === 0) throw new UsageError('--only selects no case');
  const json = values.json === true;
  const run = await runClientConformance(options, clientCases, {
    onListening: (a) => {
      if (!json)
        output.out(
          `heartwire conformance client: listening on ${a.address}:${a.port}; connect the client under test (again after every close)`,
        );
    },
    onResult: (r) => {
      if (json) return;
      output.out(resultLine(r));
      for (const line of resultDetail(r)) output.out(line);
    },
  });
  if (json) output.out(jsonReport(run));
  else output.out(summaryLine(run));
  const junit = str('junit');
  if (junit !== undefined) writeFileSync(junit, `${junitReport(run)}\n`);
  return run.counts.fail > 0 ? 1 : 0;
}
