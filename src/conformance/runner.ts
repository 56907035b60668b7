/**
 * Runs conformance cases against a server: each case on fresh connections, bounded by its
 * budget, with the wire monitor's findings folded into its result.
 * @module
 */
import { performance } from 'node:perf_hooks';
import { FrameType } from '../protocol/constants.js';
import type { Hello } from '../protocol/frames.js';
import { serverCases } from './cases/index.js';
import { describe } from './expect.js';
import { ClientPeer } from './client-peer.js';
import type {
  CaseContext,
  CaseResult,
  ConformanceCase,
  OpenOptions,
  RunResult,
  ServerRunOptions,
  Status,
} from './types.js';
import { CaseFailure, runWithinBudget, selectBy } from './types.js';
import { defaultHello } from './wire.js';

/** Defaults of {@link ServerRunOptions} (all but host and port). */
export const defaultServerOptions: Omit<ServerRunOptions, 'host' | 'port'> = {
  timeoutMs: 3000,
  toleranceMs: 200,
  maxWaitMs: 30_000,
  handshakeTimeoutMs: 10_000,
  idleTimeoutMs: 300,
  goAwayWithinMs: undefined,
  jobs: 4,
  only: [],
};

/** The cases `only` selects (by id prefix or section, e.g. `7/` or `§7`). */
export function selectCases(cases: ConformanceCase[], only: string[]): ConformanceCase[] {
  return selectBy(cases, only);
}

/** Runs the server cases (or `cases`) against `options.host:options.port`. */
export async function runServerConformance(
  options: ServerRunOptions,
  cases: ConformanceCase[] = serverCases,
  onResult?: (result: CaseResult) => void,
): Promise<RunResult> {
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const selected = selectCases(cases, options.only);
  const results: CaseResult[] = new Array(selected.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < selected.length) {
      const index = next++;
      results[index] = await runCase(selected[index]!, options);
      onResult?.(results[index]);
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, Math.min(options.jobs, selected.length)) }, worker));
  const counts: Record<Status, number> = { pass: 0, fail: 0, info: 0 };
  for (const r of results) counts[r.status]++;
  return {
    target: `${options.host}:${options.port}`,
    mode: 'server',
    startedAt,
    durationMs: Math.round(performance.now() - started),
    results,
    counts,
  };
}

/** Runs one case on fresh connections; never throws. */
export async function runCase(test: ConformanceCase, options: ServerRunOptions): Promise<CaseResult> {
  const peers: ClientPeer[] = [];
  const notes: string[] = [];
  const context: CaseContext = {
    options,
    note: (line) => notes.push(line),
    connect: async () => {
      const peer = await ClientPeer.connect(options.host, options.port, options.timeoutMs);
      peers.push(peer);
      return peer;
    },
    open: (hello, openOptions) => open(context, hello, openOptions),
  };
  const started = performance.now();
  const budget = test.budgetMs?.(options) ?? 4 * options.timeoutMs;
  const outcome = await runWithinBudget(
    test.title,
    budget,
    () => test.run(context),
    () =>
      `the case did not finish within its budget of ${budget} ms: ${peers.length > 0 ? describe(peers[peers.length - 1]!) : 'not connected'}`,
    () => {
      for (const peer of peers) peer.destroy();
    },
  );
  const violations = peers.flatMap((p) => p.violations);
  const result: CaseResult = {
    id: test.id,
    section: test.section,
    title: test.title,
    status: outcome.status,
    expected: outcome.expected,
    seen: outcome.seen,
    durationMs: Math.round(performance.now() - started),
    violations,
    notes,
  };
  if (violations.length > 0 && result.status !== 'fail') {
    result.status = 'fail';
    result.seen = `${result.seen}; but ${violations.length} SPEC violation(s) on the wire`;
  }
  return result;
}

/** `CaseContext.open`: connect, preamble + HELLO, WELCOME, heartbeats. */
async function open(
  context: CaseContext,
  hello: Partial<Hello> = {},
  options: OpenOptions = {},
): Promise<ClientPeer> {
  const peer = await context.connect();
  peer.sendHello(defaultHello({ idleTimeoutMs: context.options.idleTimeoutMs, ...hello }));
  const done = await peer.until(
    () => (peer.welcome !== undefined || peer.error !== undefined || peer.ended ? true : undefined),
    context.options.timeoutMs,
  );
  if (done === undefined || peer.welcome === undefined) {
    throw new CaseFailure({
      status: 'fail',
      expected: 'the handshake completes (preamble, WELCOME)',
      seen:
        done === undefined
          ? `no WELCOME within ${context.options.timeoutMs} ms: ${describe(peer)}`
          : describe(peer),
    });
  }
  if (options.heartbeats !== false) peer.startHeartbeats();
  return peer;
}

/** Whether `peer` saw a WELCOME frame. */
export function sawWelcome(peer: ClientPeer): boolean {
  return peer.find((r) => r.frame.type === FrameType.WELCOME) !== undefined;
}
