/**
 * A request/ack job queue that never loses or duplicates a job: a submitter sends jobs to a
 * worker server, which does each job once and acknowledges it. Across partitions, crashes,
 * restarts and GOAWAYs the submitter reconnects and resends every job not acknowledged yet, and
 * the worker recognises a job it has already done (by its id, in its durable ledger) and only
 * acknowledges it again: at-least-once delivery plus idempotence gives exactly-once processing.
 *
 * The code uses only heartwire's public API, through a {@link Net}: the real `connect()` and
 * `createServer()` in production, a `Simulation` of them in the property test
 * (`test/examples/jobs.test.ts`), unchanged.
 * @module
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { connect, createServer } from '../../src/index.js';
import type { ConnectOptions, Connection, Server, ServerOptions } from '../../src/index.js';

/** What the application needs from the world: heartwire and a clock. A `Simulation` is one. */
export interface Net {
  connect(options: ConnectOptions): Promise<Connection>;
  createServer(options: ServerOptions, onConnection: (connection: Connection) => unknown): Server;
  sleep(ms: number): Promise<void>;
}

/** The real world. */
export const realNet: Net = { connect, createServer, sleep: (ms) => sleep(ms) };

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
  /** heartwire connect options (besides the port). */
  connect?: Omit<ConnectOptions, 'port'>;
  /** Wait this long before reconnecting after a failure, ms. Default 500. */
  retryDelay?: number;
  /** Called on each new connection (diagnostics). */
  onConnection?: (conn: Connection) => void;
}

/**
 * Submits `jobs` (their ids) and resolves once every one has been acknowledged. Whatever happens
 * to a connection — a failure, a crash, the server's GOAWAY — it reconnects and resends the jobs
 * not acknowledged yet (their fate on the old connection is unknown: the worker dedupes).
 */
export async function submitJobs(net: Net, jobs: readonly string[], options: SubmitOptions): Promise<void> {
  const pending = new Set(jobs);
  while (pending.size > 0) {
    let conn: Connection;
    try {
      conn = await net.connect({ ...options.connect, port: options.port });
    } catch {
      await net.sleep(options.retryDelay ?? 500); // server down or unreachable: try again
      continue;
    }
    options.onConnection?.(conn);
    // GOAWAY: finish this connection (its acks still arrive), then reconnect.
    if (conn.goAway !== undefined) void conn.end().catch(() => {});
    conn.on('goaway', () => void conn.end().catch(() => {}));
    // Send every pending job; stops when the connection no longer accepts messages.
    const sending = (async () => {
      for (const id of [...pending]) if (pending.has(id)) await conn.send(encoder.encode(id));
    })().catch(() => {});
    try {
      for await (const ack of conn) {
        pending.delete(decoder.decode(ack));
        if (pending.size === 0) await conn.end();
      }
    } catch {
      // The connection failed: the jobs still pending are resent on the next one.
    }
    await sending;
    if (pending.size > 0) await net.sleep(options.retryDelay ?? 500);
  }
}
