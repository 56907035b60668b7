/**
 * A request/ack job queue that never loses or duplicates a job: a submitter sends jobs to a
 * worker server, which does each job once and acknowledges it. Across partitions, crashes,
 * restarts and GOAWAYs the submitter's `ReconnectingClient` reconnects (backoff with jitter; make
 * before break on GOAWAY) and the submitter sends every job not acknowledged yet on each new
 * connection, and the worker recognises a job it has already done (by its id, in its durable
 * ledger) and only acknowledges it again: at-least-once delivery plus idempotence gives
 * exactly-once processing.
 *
 * The code uses only heartwire's public API, through a {@link Net}: the real `ReconnectingClient`
 * and `createServer()` in production, a `Simulation` of them in the property test
 * (`test/examples/jobs.test.ts`), unchanged.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { ReconnectingClient, createServer } from '../../src/index.js';
import type { Connection, ReconnectOptions, Server, ServerOptions } from '../../src/index.js';

/** What the application needs from the world: heartwire and a clock. A `Simulation` is one. */
export interface Net {
  createReconnectingClient(options: ReconnectOptions): ReconnectingClient;
  createServer(options: ServerOptions, onConnection: (connection: Connection) => unknown): Server;
  sleep(ms: number): Promise<void>;
}

/** The real world. */
export const realNet: Net = {
  createReconnectingClient: (options) => new ReconnectingClient(options),
  createServer,
  sleep: (ms) => sleep(ms),
};

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** The worker's durable record of the jobs it has done (a database table in real life). */
export class Ledger {
  /** Job id → how many times it was done (exactly once, if all goes well). */
  readonly done = new Map<string, number>();

  record(id: string): void {
    this.done.set(id, (this.done.get(id) ?? 0) + 1);
  }
}

/** Options of {@link startWorker}. */
export interface WorkerOptions {
  port: number;
  /** heartwire server options. */
  server?: ServerOptions;
  /**
   * The bug the property test must catch: `false` forgets to check the ledger, so a job resent
   * after a lost acknowledgement is done twice. Default true.
   */
  dedupe?: boolean;
}

/** A running worker: its server, and a way to stop consuming for a while (maintenance). */
export interface Worker {
  server: Server;
  /** Stop taking jobs for `ms` (the connections stay open; credit runs out; senders wait). */
  pause(ms: number): void;
}

/** Starts a worker server: each message is a job id; it does the job once and answers with the id. */
export async function startWorker(net: Net, ledger: Ledger, options: WorkerOptions): Promise<Worker> {
  const dedupe = options.dedupe ?? true;
  let resume: Promise<void> = Promise.resolve();
  const server = net.createServer(options.server ?? {}, (conn) =>
    conn.handle(async (message) => {
      await resume; // paused: the job waits, and its credit with it
      const id = decoder.decode(message);
      if (!dedupe || !ledger.done.has(id)) ledger.record(id); // do the job (idempotently)
      await conn.send(encoder.encode(id)); // acknowledge it
    }),
  );
  await server.listen(options.port);
  return {
    server,
    pause: (ms) => {
      resume = net.sleep(ms);
    },
  };
}

/** Options of {@link submitJobs}. */
export interface SubmitOptions {
  port: number;
  /** `ReconnectingClient` options besides the port: connect options and the backoff policy. */
  client?: Omit<ReconnectOptions, 'port'>;
  /** Called on each new connection (diagnostics). */
  onConnection?: (conn: Connection) => void;
}

/**
 * Submits `jobs` (their ids) and resolves once every one has been acknowledged. Whatever happens
 * to a connection — a failure, a crash, the server's GOAWAY — the `ReconnectingClient` opens
 * another, and every job not acknowledged yet is sent on it (its fate on the old connection is
 * unknown, or the old one is still draining: the worker dedupes). Rejects if the client stops.
 */
export async function submitJobs(net: Net, jobs: readonly string[], options: SubmitOptions): Promise<void> {
  const pending = new Set(jobs);
  if (pending.size === 0) return;
  const client = net.createReconnectingClient({ ...options.client, port: options.port });
  let done: () => void = () => {};
  let failed: (error: unknown) => void = () => {};
  const finished = new Promise<void>((resolve, reject) => {
    done = resolve;
    failed = reject;
  });
  client.once('stopped', (error) => failed(error ?? new Error('the client stopped')));
  client.on('connected', (conn) => {
    options.onConnection?.(conn);
    // Send every pending job; stops when the connection no longer accepts messages.
    void (async () => {
      for (const id of [...pending]) if (pending.has(id)) await conn.send(encoder.encode(id));
    })().catch(() => {});
    // Acknowledgements, until this connection closes (a replaced one still delivers them).
    void (async () => {
      for await (const ack of conn) {
        pending.delete(decoder.decode(ack));
        if (pending.size === 0) done();
      }
    })().catch(() => {}); // the connection failed: the client reconnects, the jobs are resent
  });
  try {
    await finished;
  } finally {
    await client.close();
  }
}
