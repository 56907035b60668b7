/**
 * `heartwire conformance client`: the runner listens, the client under test connects again and
 * again (one connection per case), and each case plays a server that checks the client's
 * reaction: its HELLO, a bad preamble or WELCOME, its heartbeats and idle deadline, credit,
 * floods, GOAWAY and CLOSE_ACK.
 * @module
 */
import net from 'node:net';
import type { AddressInfo, Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Welcome } from '../protocol/frames.js';
import { describe } from './expect.js';
import { ServerPeer } from './server-peer.js';
import type { CaseResult, Outcome, RunResult, Status } from './types.js';
import { CaseFailure, runWithinBudget, selectBy } from './types.js';

/** Options of a run against a client. Times in ms. */
export interface ClientRunOptions {
  host: string;
  /** Port to listen on (0: any; the bound port is passed to `onListening`). */
  port: number;
  timeoutMs: number;
  toleranceMs: number;
  maxWaitMs: number;
  /** How long to wait for the client's next connection. */
  connectWaitMs: number;
  only: string[];
}

export const defaultClientOptions: Omit<ClientRunOptions, 'host' | 'port'> = {
  timeoutMs: 3000,
  toleranceMs: 200,
  maxWaitMs: 30_000,
  connectWaitMs: 15_000,
  only: [],
};

/** What a client case gets: one fresh connection from the client under test. */
export interface ClientCaseContext {
  readonly options: ClientRunOptions;
  readonly peer: ServerPeer;
  /**
   * Waits for HELLO and answers with the preamble and WELCOME (`welcome` over defaults derived
   * from HELLO); starts heartbeats unless told not to. Throws a CaseFailure without HELLO.
   */
  handshake(welcome?: Partial<Welcome>, options?: { heartbeats?: boolean }): Promise<void>;
  /** Waits for HELLO; throws a CaseFailure without it. */
  awaitHello(): Promise<void>;
  note(line: string): void;
}

/** One case of the client mode. */
export interface ClientCase {
  id: string;
  section: string;
  title: string;
  budgetMs?(options: ClientRunOptions): number;
  run(context: ClientCaseContext): Promise<Outcome>;
}

/** The WELCOME the runner answers with unless a case overrides fields. */
export function defaultWelcome(peer: ServerPeer, overrides: Partial<Welcome> = {}): Welcome {
  const hello = peer.hello!;
  return {
    version: 1,
    extensions: [],
    idleTimeoutMs: 1000,
    initialCredit: 64 * 1024,
    maxFramePayload: 64 * 1024,
    maxMessageSize: 1024 * 1024,
    clientIdleTimeoutMs: Math.min(Math.max(hello.idleTimeoutMs, 100), 86_400_000),
    applicationProtocol: '',
    ...overrides,
  };
}

/** Accepted connections, handed out one at a time. */
class Acceptor {
  private readonly queue: Socket[] = [];
  private waiter: ((socket: Socket) => void) | undefined;
  readonly server: net.Server;
  constructor() {
    this.server = net.createServer({ allowHalfOpen: true }, (socket) => {
      socket.on('error', () => {});
      if (this.waiter !== undefined) {
        const w = this.waiter;
        this.waiter = undefined;
        w(socket);
      } else this.queue.push(socket);
    });
  }
  next(timeoutMs: number): Promise<Socket | undefined> {
    const queued = this.queue.shift();
    if (queued !== undefined) return Promise.resolve(queued);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = undefined;
        resolve(undefined);
      }, timeoutMs);
      this.waiter = (socket) => {
        clearTimeout(timer);
        resolve(socket);
      };
    });
  }
  close(): Promise<void> {
    for (const s of this.queue.splice(0)) s.destroy();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

/** The client cases `only` selects. */
export function selectClientCases(cases: ClientCase[], only: string[]): ClientCase[] {
  return selectBy(cases, only);
}

/** Listens and runs the client cases, one connection each, in order. */
export async function runClientConformance(
  options: ClientRunOptions,
  cases: ClientCase[],
  hooks: { onListening?: (address: AddressInfo) => void; onResult?: (result: CaseResult) => void } = {},
): Promise<RunResult> {
  const acceptor = new Acceptor();
  await new Promise<void>((resolve, reject) => {
    acceptor.server.once('error', reject);
    acceptor.server.listen(options.port, options.host, () => resolve());
  });
  const address = acceptor.server.address() as AddressInfo;
  hooks.onListening?.(address);
  const started = performance.now();
  const startedAt = new Date().toISOString();
  const results: CaseResult[] = [];
  let missed = 0;
  try {
    for (const test of selectClientCases(cases, options.only)) {
      const t0 = performance.now();
      const socket = await acceptor.next(missed > 0 ? options.timeoutMs : options.connectWaitMs);
      let result: CaseResult;
      if (socket === undefined) {
        missed++;
        result = {
          id: test.id,
          section: test.section,
          title: test.title,
          status: 'fail',
          expected: 'a connection from the client under test',
          seen: 'no connection (the client must reconnect after every close)',
          durationMs: Math.round(performance.now() - t0),
          violations: [],
          notes: [],
        };
      } else {
        missed = 0;
        result = await runClientCase(test, options, ServerPeer.accept(socket));
      }
      results.push(result);
      hooks.onResult?.(result);
    }
  } finally {
    await acceptor.close();
  }
  const counts: Record<Status, number> = { pass: 0, fail: 0, info: 0 };
  for (const r of results) counts[r.status]++;
  return {
    target: `${address.address}:${address.port}`,
    mode: 'client',
    startedAt,
    durationMs: Math.round(performance.now() - started),
    results,
    counts,
  };
}

async function runClientCase(
  test: ClientCase,
  options: ClientRunOptions,
  peer: ServerPeer,
): Promise<CaseResult> {
  const notes: string[] = [];
  const awaitHello = async (): Promise<void> => {
    const hello = await peer.until(() => peer.hello ?? (peer.ended ? false : undefined), options.timeoutMs);
    if (hello === undefined || hello === false) {
      throw new CaseFailure({
        status: 'fail',
        expected: 'preamble and HELLO from the client',
        seen: describe(peer),
      });
    }
  };
  const context: ClientCaseContext = {
    options,
    peer,
    note: (line) => notes.push(line),
    awaitHello,
    async handshake(welcome = {}, handshakeOptions = {}) {
      await awaitHello();
      peer.sendWelcome(defaultWelcome(peer, welcome));
      if (handshakeOptions.heartbeats !== false) peer.startHeartbeats();
    },
  };
  const started = performance.now();
  const budget = test.budgetMs?.(options) ?? 4 * options.timeoutMs;
  const outcome = await runWithinBudget(
    test.title,
    budget,
    () => test.run(context),
    () => `did not finish within ${budget} ms: ${describe(peer)}`,
    () => peer.destroy(),
  );
  const result: CaseResult = {
    id: test.id,
    section: test.section,
    title: test.title,
    status: outcome.status,
    expected: outcome.expected,
    seen: outcome.seen,
    durationMs: Math.round(performance.now() - started),
    violations: peer.violations,
    notes,
  };
  if (peer.violations.length > 0 && result.status !== 'fail') {
    result.status = 'fail';
    result.seen = `${result.seen}; but ${peer.violations.length} SPEC violation(s) on the wire`;
  }
  return result;
}
