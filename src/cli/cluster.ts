/**
 * `heartwire serve --workers N`: one heartwire server per worker process, with `node:cluster`.
 *
 * Node 20 has no `reusePort`; `node:cluster` is how a Node server uses every core. The primary
 * process accepts and hands each socket to a worker, round-robin (Linux's default
 * `cluster.schedulingPolicy`); every worker runs an ordinary `createServer()` + `listen()` (TCP or
 * TLS: the handed-over socket is an ordinary `net.Socket`). This module is the primary's side:
 * fork, restart a crashed worker with backoff, roll one worker (SIGUSR2), drain all (SIGINT,
 * SIGTERM). The worker's side is in `serve.ts`: a worker drains (`server.close({ grace })`:
 * GOAWAY to each of its connections) when the primary sends {@link DrainMessage}, or when the
 * primary disappears.
 * @module
 */
import cluster from 'node:cluster';
import type { Worker } from 'node:cluster';
import type { Output } from './util.js';

/** Primary → worker: drain (GOAWAY with `grace` to every connection), then exit. */
export interface DrainMessage {
  heartwire: 'drain';
}

/** Worker → primary: listening, or its open connection count changed. */
export type WorkerMessage =
  { heartwire: 'listening'; address: string } | { heartwire: 'connections'; open: number; accepted: number };

/** Is `value` a message of this protocol (workers may send others)? */
function isWorkerMessage(value: unknown): value is WorkerMessage {
  return typeof value === 'object' && value !== null && 'heartwire' in value;
}

/** Options of {@link supervise}. */
export interface SuperviseOptions {
  /** Number of workers (≥ 1). */
  workers: number;
  /** The module a worker runs (the `heartwire` main) and its arguments. */
  exec: string;
  args: string[];
  /** The workers' drain grace (ms): the primary waits for them up to `grace` + 5 000 ms. */
  grace: number;
  /** What the server is, for the startup line (`echo`, `sink`). */
  mode: string;
  output: Output;
  /** Resolves when the user asks to stop (first SIGINT or SIGTERM). */
  stop: Promise<unknown>;
  /** Resolves on each request to roll one worker (the CLI: SIGUSR2). */
  onRoll: (roll: () => void) => void;
}

/** First restart delay after a crash (ms); doubles per crash in a row, capped at {@link MAX_BACKOFF}. */
const MIN_BACKOFF = 100;
const MAX_BACKOFF = 30_000;
/** A worker that lived this long resets the crash count (ms). */
const STABLE_AFTER = 10_000;
/** Extra time past the grace the primary waits for draining workers before SIGKILL (ms). */
const EXIT_MARGIN = 5000;

interface State {
  worker: Worker;
  startedAt: number;
  listening: boolean;
  draining: boolean;
  open: number;
  accepted: number;
}

/**
 * Run the primary: fork `workers` workers and supervise them until `stop` resolves, then drain
 * every worker and resolve with the exit code (0; 1 if a worker could not start listening, which
 * stops the others: a wrong port or address would only crash-loop). Never throws.
 *
 * - A worker that exits on its own after it listened is replaced after a backoff of
 *   min(30 s, 100 ms × 2^k), k the crashes in a row (reset by a worker that lived 10 s).
 * - Roll: fork a replacement first; once it listens, the oldest worker drains (GOAWAY) and exits.
 *   Its clients reconnect; the primary hands their new connections to the live workers.
 * - Stop: every worker drains; a worker still running `grace` + 5 s later is killed.
 */
export async function supervise(options: SuperviseOptions): Promise<number> {
  const { output, grace } = options;
  const states = new Map<number, State>();
  let stopping = false;
  let failed = false;
  let crashes = 0;
  let announced = false;
  let address = '';
  let rolls = 0;
  const restartTimers = new Set<NodeJS.Timeout>();
  let allExited: (() => void) | undefined;

  cluster.setupPrimary({ exec: options.exec, args: options.args });

  const live = (): State[] => [...states.values()].filter((s) => !s.draining);
  const totals = (): string => {
    const parts = [...states.values()].map(
      (s) => `${s.worker.id}:${s.open}${s.draining ? ' (draining)' : ''}`,
    );
    return `open connections per worker ${parts.join(', ')}`;
  };

  const fork = (onListening?: (s: State) => void): void => {
    const worker = cluster.fork();
    const state: State = {
      worker,
      startedAt: performance.now(),
      listening: false,
      draining: false,
      open: 0,
      accepted: 0,
    };
    states.set(worker.id, state);
    worker.on('message', (message: unknown) => {
      if (!isWorkerMessage(message)) return;
      if (message.heartwire === 'listening') {
        state.listening = true;
        address = message.address;
        if (stopping) drain(state);
        else onListening?.(state);
        if (!announced && live().every((s) => s.listening)) {
          announced = true;
          output.out(
            `heartwire ${options.mode} server: ${options.workers} worker(s) listening on ${address} ` +
              `(primary pid ${process.pid}); Ctrl-C to stop, SIGUSR2 rolls one worker`,
          );
        }
      } else if (message.heartwire === 'connections') {
        state.open = message.open;
        state.accepted = message.accepted;
      }
    });
    worker.on('error', () => {}); // IPC failures: the 'exit' that follows decides
    worker.on('exit', (code, signal) => {
      states.delete(worker.id);
      const lived = performance.now() - state.startedAt;
      const how = signal !== null ? `signal ${signal}` : `code ${code}`;
      if (state.draining) {
        output.out(`worker ${worker.id} (pid ${worker.process.pid}) drained and exited (${how})`);
      } else if (stopping) {
        output.out(`worker ${worker.id} (pid ${worker.process.pid}) exited (${how})`);
      } else if (!state.listening) {
        output.err(`heartwire serve: worker ${worker.id} exited (${how}) before listening; stopping`);
        failed = true;
        stopAll();
      } else {
        crashes = lived >= STABLE_AFTER ? 1 : crashes + 1;
        const delay = Math.min(MAX_BACKOFF, MIN_BACKOFF * 2 ** Math.min(crashes - 1, 20));
        output.out(
          `worker ${worker.id} (pid ${worker.process.pid}) exited (${how}); a new one in ${delay} ms`,
        );
        const timer = setTimeout(() => {
          restartTimers.delete(timer);
          if (!stopping) fork();
        }, delay);
        restartTimers.add(timer);
      }
      if (states.size === 0 && stopping) allExited?.();
    });
  };

  const drain = (state: State): void => {
    if (state.draining) return;
    state.draining = true;
    const message: DrainMessage = { heartwire: 'drain' };
    try {
      state.worker.send(message);
    } catch {
      state.worker.kill('SIGTERM'); // IPC gone: the worker's own SIGTERM handler drains
    }
  };

  const stopAll = (): void => {
    if (stopping) return;
    stopping = true;
    for (const timer of restartTimers) clearTimeout(timer);
    restartTimers.clear();
    for (const state of states.values()) if (state.listening) drain(state);
    // Workers not yet listening drain as soon as they listen (see fork()).
  };

  options.onRoll(() => {
    if (stopping) return;
    const oldest = live()
      .filter((s) => s.listening)
      .sort((a, b) => a.startedAt - b.startedAt)[0];
    if (oldest === undefined) {
      output.out('roll: no listening worker to roll');
      return;
    }
    rolls++;
    output.out(
      `roll ${rolls}: forking a replacement for worker ${oldest.worker.id} (pid ${oldest.worker.process.pid})`,
    );
    fork((replacement) => {
      if (stopping || oldest.draining) return;
      output.out(
        `roll ${rolls}: worker ${replacement.worker.id} (pid ${replacement.worker.process.pid}) listening; ` +
          `worker ${oldest.worker.id} drains its ${oldest.open} connection(s) (GOAWAY, grace ${grace} ms); ${totals()}`,
      );
      drain(oldest);
    });
  });

  for (let i = 0; i < options.workers; i++) fork();
  const exited = new Promise<void>((resolve) => (allExited = resolve));
  await Promise.race([options.stop, exited]);
  const open = [...states.values()].reduce((n, s) => n + s.open, 0);
  if (!failed)
    output.out(`shutting down: ${states.size} worker(s) drain ${open} connection(s), grace ${grace} ms`);
  stopAll();
  if (states.size > 0) {
    const deadline = setTimeout(() => {
      for (const state of states.values()) {
        output.err(`heartwire serve: worker ${state.worker.id} still running after the grace; killing it`);
        state.worker.kill('SIGKILL');
      }
    }, grace + EXIT_MARGIN);
    await exited;
    clearTimeout(deadline);
  }
  output.out(failed ? 'stopped (a worker failed to start)' : 'stopped');
  return failed ? 1 : 0;
}
