/**
 * `heartwire serve`: an echo or sink server, to ping, to test against, to watch.
 * @module
 */
import cluster from 'node:cluster';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { availableParallelism } from 'node:os';
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createServer } from '../index.js';
import type { Connection } from '../index.js';
import { supervise } from './cluster.js';
import type { WorkerMessage } from './cluster.js';
import { bytes, integer, parse, UsageError } from './util.js';
import type { Output } from './util.js';

/** Help text of `heartwire serve`. */
export const serveHelp = `usage: heartwire serve [options]

Run a heartwire server until Ctrl-C, then shut down gracefully (GOAWAY, grace period).

options:
  --port N            port to listen on (default 7878; 0 picks a free one)
  --host H            address to listen on (default 127.0.0.1)
  --mode echo|sink    echo every message back (default), or read and drop them
  --idle-timeout MS   silence tolerated before a client is declared dead (default 20000)
  --handshake-timeout MS
                      time a client has to complete the handshake (default 10000)
  --grace MS          GOAWAY grace period at shutdown (default 2000)
  --workers N|auto    run N server processes on one port with node:cluster (auto: one per
                      core); the primary hands each connection to a worker, round-robin
  -h, --help          show this help

It prints one line per connection opened and closed, with the reason of any failure.

With --workers: a worker that crashes is replaced (backoff 100 ms doubling to 30 s); SIGUSR2 to
the primary rolls one worker: a replacement starts, then the oldest worker drains (GOAWAY with
the grace to each of its clients, which reconnect to the live workers) and exits; Ctrl-C or
SIGTERM drains every worker.`;

/**
 * Run `heartwire serve`. Resolves with the exit code once `stop` resolves (the CLI passes
 * "first SIGINT or SIGTERM") and the server has shut down.
 */
export async function serve(args: string[], output: Output, stop: Promise<unknown>): Promise<number> {
  const { values } = parse({
    args,
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      mode: { type: 'string' },
      'idle-timeout': { type: 'string' },
      'handshake-timeout': { type: 'string' },
      grace: { type: 'string' },
      workers: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    output.out(serveHelp);
    return 0;
  }
  const port = integer(values.port, 'port', 7878, 0, 65535);
  const host = values.host ?? '127.0.0.1';
  const mode = values.mode ?? 'echo';
  if (mode !== 'echo' && mode !== 'sink') throw new UsageError(`--mode must be echo or sink, got '${mode}'`);
  const idleTimeout = integer(values['idle-timeout'], 'idle-timeout', 20_000, 100, 86_400_000);
  const handshakeTimeout = integer(values['handshake-timeout'], 'handshake-timeout', 10_000, 1, 86_400_000);
  const grace = integer(values.grace, 'grace', 2000);
  const workers =
    values.workers === 'auto' ? availableParallelism() : integer(values.workers, 'workers', 0, 1, 1024);

  if (workers > 0 && cluster.isPrimary) {
    const here = fileURLToPath(import.meta.url);
    // Port 0: pick the port here, so that a worker started later (a replacement) listens on the
    // same one even if every worker before it is gone (node:cluster shares a port-0 listener
    // only while one of its workers holds it).
    let chosen = port;
    if (port === 0) {
      try {
        chosen = await freePort(host);
      } catch (error) {
        output.err(`heartwire serve: cannot listen on ${host}:${port}: ${(error as Error).message}`);
        return 1;
      }
    }
    let roll = (): void => {};
    const code = await supervise({
      workers,
      exec: fileURLToPath(new URL(`./main${extname(here)}`, import.meta.url)),
      args: ['serve', ...args, '--port', String(chosen)], // the last --port wins
      grace,
      mode,
      output,
      stop,
      onRoll: (rollOne) => process.on('SIGUSR2', (roll = rollOne)),
    });
    process.off('SIGUSR2', roll);
    return code;
  }
  const worker = cluster.isWorker ? cluster.worker : undefined;
  if (worker !== undefined) {
    // A worker: lines carry its id; it drains when the primary says so or disappears.
    const prefix = `[worker ${worker.id}] `;
    const { out, err } = output;
    output = { out: (line) => out(prefix + line), err: (line) => err(prefix + line) };
    stop = Promise.race([
      stop,
      new Promise<void>((resolve) => {
        worker.on('message', (message: unknown) => {
          if ((message as { heartwire?: unknown } | null)?.heartwire === 'drain') resolve();
        });
        worker.on('disconnect', () => resolve());
      }),
    ]);
  }
  const tell = (message: WorkerMessage): void => {
    if (worker !== undefined && worker.isConnected()) worker.send(message, undefined, () => {});
  };
  let accepted = 0;

  const server = createServer({ idleTimeout, handshakeTimeout }, (conn) => {
    const { remoteAddress, remotePort } = conn.stats();
    output.out(`+ connection ${conn.id} from ${remoteAddress}:${remotePort}`);
    tell({ heartwire: 'connections', open: server.connections.size, accepted: ++accepted });
    conn.on('close', (info) => {
      const s = conn.stats();
      const traffic = `${s.messagesReceived} messages (${bytes(s.bytesReceived)}) in, ${s.messagesSent} (${bytes(s.bytesSent)}) out`;
      const how = info.clean ? 'closed cleanly' : `lost: ${info.error?.code} (${info.error?.message})`;
      output.out(`- connection ${conn.id} ${how}; ${traffic}`);
      tell({ heartwire: 'connections', open: server.connections.size, accepted });
    });
    void (mode === 'echo' ? echo(conn) : sink(conn)).catch(() => {}); // failures are reported by 'close'
  });
  let address;
  try {
    address = await server.listen(port, host);
  } catch (error) {
    output.err(`heartwire serve: cannot listen on ${host}:${port}: ${(error as Error).message}`);
    return 1;
  }
  output.out(
    `heartwire ${mode} server listening on ${address.address}:${address.port} (idle timeout ${idleTimeout} ms${worker ? `, pid ${process.pid}` : ''}); Ctrl-C to stop`,
  );
  tell({ heartwire: 'listening', address: `${address.address}:${address.port}` });
  await stop;
  output.out(`shutting down: GOAWAY to ${server.connections.size} connection(s), grace ${grace} ms`);
  await server.close({ grace });
  output.out('stopped');
  // A worker's IPC channel keeps it alive: close it, so that the worker exits now.
  if (worker?.isConnected()) worker.disconnect();
  return 0;
}

/** A TCP port free on `host` right now (bound, then released). */
function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once('error', reject);
    probe.listen(0, host, () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

/** Send every message back, respecting the client's credit. */
async function echo(conn: Connection): Promise<void> {
  for await (const message of conn) {
    if (!conn.write(message)) await drainOrClose(conn);
  }
}

/** Resolves on the connection's next `'drain'` or `'close'`. */
function drainOrClose(conn: Connection): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      conn.off('drain', done).off('close', done);
      resolve();
    };
    conn.on('drain', done).on('close', done);
  });
}

/** Read and drop every message: credit returns at once. */
async function sink(conn: Connection): Promise<void> {
  for await (const _message of conn);
}
