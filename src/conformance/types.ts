/**
 * Shapes shared by the conformance runner, its cases and its reports.
 * @module
 */
import type { Hello } from '../protocol/frames.js';
import type { ClientPeer } from './client-peer.js';
import type { Violation } from './peer.js';

/** How a case ended. `info`: nothing wrong seen, but the case could not judge (or only informs). */
export type Status = 'pass' | 'fail' | 'info';

/** What a case concluded. */
export interface Outcome {
  status: Status;
  /** What SPEC.md requires, in a few words. */
  expected: string;
  /** What the implementation did. */
  seen: string;
}

/** Options of a run against a server. Times in ms. */
export interface ServerRunOptions {
  host: string;
  port: number;
  /** Bound on an ordinary wait (a reply, an error, a close). */
  timeoutMs: number;
  /** Allowance for scheduling and network delays in timing checks. */
  toleranceMs: number;
  /** Longest a case waits on a timeout the server declared; longer ones are reported as `info`. */
  maxWaitMs: number;
  /** The server's handshake timeout (SPEC.md §6 default 10 000). */
  handshakeTimeoutMs: number;
  /** The idle timeout the runner declares in HELLO (the server clamps it). */
  idleTimeoutMs: number;
  /** The server sends GOAWAY on every connection within this time (enables the §9.2 cases). */
  goAwayWithinMs: number | undefined;
  /** Cases run at the same time. */
  jobs: number;
  /** Run only the cases whose id starts with one of these (none: all). */
  only: string[];
}

/** Per-connection choices of {@link CaseContext.open}. */
export interface OpenOptions {
  /** Send heartbeats at the rate the server asks for (default true). */
  heartbeats?: boolean;
}

/** What a case gets to work with. Every connection it opens is closed after the case. */
export interface CaseContext {
  readonly options: ServerRunOptions;
  /** A fresh TCP connection, nothing sent. */
  connect(): Promise<ClientPeer>;
  /**
   * A fresh connection through the handshake (preamble, HELLO with `hello` over the runner's
   * defaults, WELCOME). Throws a {@link CaseFailure} if the handshake does not complete.
   */
  open(hello?: Partial<Hello>, options?: OpenOptions): Promise<ClientPeer>;
  /** A line of detail for the report. */
  note(line: string): void;
}

/** One conformance case. */
export interface ConformanceCase {
  /** Stable id, `section/name`, e.g. `7/rule2-data-beyond-credit`. */
  id: string;
  /** SPEC.md section, e.g. `§7`. */
  section: string;
  /** One line: what is checked. */
  title: string;
  /** Upper bound on the case's duration (default: `4 × timeoutMs`). */
  budgetMs?(options: ServerRunOptions): number;
  run(context: CaseContext): Promise<Outcome>;
}

/** The result of one case. */
export interface CaseResult {
  id: string;
  section: string;
  title: string;
  status: Status;
  expected: string;
  seen: string;
  durationMs: number;
  /** SPEC departures the monitor saw on the case's connections (each fails the case). */
  violations: Violation[];
  notes: string[];
}

/** The result of a whole run. */
export interface RunResult {
  target: string;
  mode: 'server' | 'client';
  startedAt: string;
  durationMs: number;
  results: CaseResult[];
  counts: Record<Status, number>;
}

/** Thrown by case helpers to end a case with an outcome. */
export class CaseFailure extends Error {
  readonly outcome: Outcome;
  constructor(outcome: Outcome) {
    super(`${outcome.expected}: ${outcome.seen}`);
    this.outcome = outcome;
  }
}

/**
 * Run one case within its time budget: its outcome, a failure naming what was seen when the
 * budget ran out (`late()`), or a runner error. `cleanup` runs in every case.
 */
export async function runWithinBudget(
  title: string,
  budget: number,
  run: () => Promise<Outcome>,
  late: () => string,
  cleanup: () => void,
): Promise<Outcome> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<Outcome>((resolve) => {
    timer = setTimeout(() => resolve({ status: 'fail', expected: title, seen: late() }), budget);
  });
  try {
    return await Promise.race([run(), timeout]);
  } catch (error) {
    return error instanceof CaseFailure
      ? error.outcome
      : { status: 'fail', expected: title, seen: `runner error: ${(error as Error).message}` };
  } finally {
    clearTimeout(timer);
    cleanup();
  }
}

/** The cases `only` selects (by id prefix or section, e.g. `7/` or `§7`); all when it is empty. */
export function selectBy<C extends { id: string; section: string }>(cases: C[], only: string[]): C[] {
  if (only.length === 0) return cases;
  return cases.filter((c) =>
    only.some((o) => c.id.startsWith(o) || c.section === o || c.section.startsWith(`${o}.`)),
  );
}

/** A closed-over peer list, for cleanup. */
export type PeerList = ClientPeer[];
