/**
 * `heartwire serve --workers 2`: node:cluster hands connections to two worker processes; SIGUSR2
 * rolls one worker (a replacement starts, then the oldest drains with GOAWAY) while the other
 * keeps serving. Clients (`ReconnectingClient`) sending numbered messages move to the live
 * workers, and every message is echoed: those the drained connection did not process come back
 * from `ReconnectingClient` (`notProcessed`: resent; `unknown`: resent, possibly a duplicate).
 */
import { expect } from 'chai';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { connect, ReconnectingClient } from '../../src/index.js';
import type { Connection } from '../../src/index.js';
import { report } from '../figures.js';
import { selfSignedCert, startCli, startTsx } from '../helpers/child.js';
import type { OutputChild } from '../helpers/child.js';

const CLIENTS = 6;
/** One message per client every PERIOD ms, while sending. */
const PERIOD = 10;

/** The pids of every process of the cluster seen in the output (to kill leftovers). */
function pids(stdout: string): number[] {
  return [...stdout.matchAll(/pid (\d+)/g)].map((m) => Number(m[1]));
}

/** One client: numbered messages out, echoes counted per id, handed-back messages resent. */
class Sender {
  readonly client: ReconnectingClient;
  /** Echo count per message id. */
  readonly echoes = new Map<number, number>();
  next = 0;
  pending: Uint8Array[] = [];
  generations = 0;
  goAwayAt: number | undefined;
  moveMs: number | undefined;
  echoesAfterMove = 0;
  notProcessed = 0;
  unknown = 0;
  private current: Connection | undefined;

  constructor(
    readonly index: number,
    port: number,
  ) {
    this.client = new ReconnectingClient({
      host: '127.0.0.1',
      port,
      minDelay: 20,
      maxDelay: 500,
      connectTimeout: 10_000,
    });
    this.client.on('connected', (conn) => {
      this.generations++;
      if (this.goAwayAt !== undefined && this.moveMs === undefined)
        this.moveMs = performance.now() - this.goAwayAt;
      this.current = conn;
      conn.on('goaway', () => {
        this.goAwayAt ??= performance.now();
        if (this.current === conn) this.current = undefined; // send nothing more on it
      });
      void this.read(conn);
      const resend = this.pending;
      this.pending = [];
      for (const message of resend) this.write(message);
    });
    this.client.on('disconnected', (d) => {
      this.notProcessed += d.notProcessed.length;
      this.unknown += d.unknown.length;
      this.pending.push(...d.notProcessed, ...d.unknown);
    });
  }

  private async read(conn: Connection): Promise<void> {
    try {
      for await (const message of conn) {
        const id = new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(4);
        this.echoes.set(id, (this.echoes.get(id) ?? 0) + 1);
        if (this.moveMs !== undefined && this.generations > 1) this.echoesAfterMove++;
      }
    } catch {
      // an unclean close: its delivery report comes with 'disconnected'
    }
  }

  /** Send the next numbered message (or queue it while there is no connection). */
  sendNext(): void {
    const message = new Uint8Array(8);
    const view = new DataView(message.buffer);
    view.setUint32(0, this.index);
    view.setUint32(4, this.next++);
    this.write(message);
  }

  private write(message: Uint8Array): void {
    const conn = this.current;
    if (conn === undefined) {
      this.pending.push(message);
      return;
    }
    try {
      conn.write(message);
    } catch {
      this.pending.push(message); // not accepted: never sent
    }
  }

  get lost(): number {
    let lost = 0;
    for (let id = 0; id < this.next; id++) if (!this.echoes.has(id)) lost++;
    return lost;
  }

  get duplicates(): number {
    let duplicates = 0;
    for (const count of this.echoes.values()) duplicates += count - 1;
    return duplicates;
  }
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

describe('heartwire serve --workers (node:cluster)', function () {
  this.timeout(60_000);
  /** The `heartwire serve --workers` process (or the cluster fixture) under test. */
  let primary: OutputChild | undefined;
  let senders: Sender[] = [];
  let dir: string | undefined;

  afterEach(async () => {
    await Promise.all(senders.splice(0).map((s) => s.client.close().catch(() => {})));
    if (primary === undefined) return;
    const stopping = primary;
    primary = undefined;
    await stopping.stop('SIGTERM', 10_000);
    for (const pid of pids(stopping.stdout)) {
      try {
        process.kill(pid, 'SIGKILL'); // a worker left behind (only if the primary was killed)
      } catch {
        // already gone
      }
    }
  });

  after(() => {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  it('SIGUSR2 drains one worker with GOAWAY; its clients move to the live workers, 0 messages lost', async () => {
    const started = performance.now();
    primary = startCli(['serve', '--workers', '2', '--port', '0', '--grace', '5000']);
    const [, port, primaryPid] = await primary.waitFor(
      /2 worker\(s\) listening on 127\.0\.0\.1:(\d+) \(primary pid (\d+)\)/,
      20_000,
    );
    const startupMs = performance.now() - started;
    senders = Array.from({ length: CLIENTS }, (_, i) => new Sender(i, Number(port)));
    await Promise.all(senders.map((s) => s.client.connected()));
    // Round-robin: each worker has some of the clients.
    const opened = (): RegExpMatchArray[] => [...primary!.stdout.matchAll(/\[worker (\d+)\] \+ connection/g)];
    for (const until = performance.now() + 10_000; opened().length < CLIENTS && performance.now() < until;)
      await sleep(50);
    const perWorker = new Map<string, number>();
    for (const m of opened()) perWorker.set(m[1]!, (perWorker.get(m[1]!) ?? 0) + 1);
    expect([...perWorker.keys()].sort(), 'both workers got clients').to.deep.equal(['1', '2']);

    let drains: string | undefined;
    let rollMs: number | undefined;
    let sending = true;
    const ticker = setInterval(() => {
      if (sending) for (const s of senders) s.sendNext();
    }, PERIOD);
    try {
      await sleep(1000);
      const rolled = performance.now();
      process.kill(Number(primaryPid), 'SIGUSR2');
      [, drains] = await primary.waitFor(/worker 1 drains its (\d+) connection\(s\)/, 20_000);
      await primary.waitFor(/worker 1 \(pid \d+\) drained and exited/, 20_000);
      rollMs = performance.now() - rolled;
      await sleep(1000); // keep sending on the live workers
    } finally {
      sending = false;
      clearInterval(ticker);
    }
    // Wait (bounded) for the last echoes.
    const deadline = performance.now() + 10_000;
    while (senders.some((s) => s.lost > 0 || s.pending.length > 0) && performance.now() < deadline)
      await sleep(50);

    const moved = senders.filter((s) => s.goAwayAt !== undefined);
    const sent = senders.reduce((n, s) => n + s.next, 0);
    const lost = senders.reduce((n, s) => n + s.lost, 0);
    const duplicates = senders.reduce((n, s) => n + s.duplicates, 0);
    const notProcessed = senders.reduce((n, s) => n + s.notProcessed, 0);
    const unknown = senders.reduce((n, s) => n + s.unknown, 0);
    const moveMs = moved.map((s) => s.moveMs ?? Number.NaN).sort((a, b) => a - b);

    // Every client of the drained worker got GOAWAY, reconnected and was served again.
    expect(moved.length, 'moved clients = the drained worker’s connections').to.equal(Number(drains));
    expect(moved.length).to.be.at.least(1);
    for (const s of moved) {
      expect(s.generations, `client ${s.index} reconnected`).to.equal(2);
      expect(s.echoesAfterMove, `client ${s.index} served after the move`).to.be.above(0);
    }
    for (const s of senders.filter((x) => x.goAwayAt === undefined))
      expect(s.generations, `client ${s.index} stayed`).to.equal(1);
    expect(lost, 'messages never echoed').to.equal(0);

    // The live workers hold every client: the drained worker exited, the others serve on.
    await Promise.all(senders.map((s) => s.client.close()));
    const liveWorkers = new Set(
      [...primary.stdout.matchAll(/\[worker (\d+)\] \+ connection/g)]
        .map((m) => m[1])
        .filter((w) => w !== '1'),
    );
    expect(liveWorkers.size, 'workers serving after the roll').to.be.at.least(1);
    primary.child.kill('SIGTERM');
    expect(await primary.exited).to.equal(0);
    expect(primary.stdout).to.match(/\nstopped\n/);

    report(
      `cluster roll (heartwire serve --workers 2, SIGUSR2): ${CLIENTS} clients, ${moved.length} moved off the ` +
        `drained worker, time to move (GOAWAY → connected to a live worker) median ${moveMs[moveMs.length >> 1]!.toFixed(0)} ms, ` +
        `max ${moveMs[moveMs.length - 1]!.toFixed(0)} ms; ${sent} messages, lost ${lost}, duplicates ${duplicates}; ` +
        `handed back ${notProcessed} not processed + ${unknown} unknown (resent); ` +
        `SIGUSR2 → replacement listening, worker 1 drained and exited ${rollMs!.toFixed(0)} ms; ` +
        `cluster startup ${startupMs.toFixed(0)} ms, whole test ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  });

  it('a worker that crashes is replaced (backoff), on the same port', async () => {
    primary = startCli(['serve', '--workers', '1', '--port', '0']);
    const [, port] = await primary.waitFor(/1 worker\(s\) listening on 127\.0\.0\.1:(\d+)/, 20_000);
    const [, pid] = await primary.waitFor(
      /\[worker 1\] heartwire echo server listening[^\n]*pid (\d+)/,
      15_000,
    );
    const crashed = performance.now();
    process.kill(Number(pid), 'SIGKILL');
    await primary.waitFor(/worker 1 \(pid \d+\) exited \(signal SIGKILL\); a new one in 100 ms/, 15_000);
    await primary.waitFor(/\[worker 2\] heartwire echo server listening on 127\.0\.0\.1:(\d+)/, 20_000);
    const replacedMs = performance.now() - crashed;
    const conn = await connect({ host: '127.0.0.1', port: Number(port) });
    conn.write(new Uint8Array([1, 2, 3]));
    for await (const reply of conn) {
      expect([...reply]).to.deep.equal([1, 2, 3]);
      break;
    }
    expect((await conn.end()).clean, 'clean close').to.equal(true);
    primary.child.kill('SIGTERM');
    expect(await primary.exited).to.equal(0);
    report(
      `cluster crash: SIGKILLed worker replaced (backoff 100 ms) and listening on the same port after ${replacedMs.toFixed(0)} ms`,
    );
  });

  it('a TLS server (createServer({ tls }) + listen() in each worker) works as-is under node:cluster', async function () {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'heartwire-cluster-tls-'));
    const { keyFile, certFile, skipped } = selfSignedCert(dir);
    if (skipped !== undefined) {
      console.log(`      (skipped: ${skipped})`);
      this.skip();
    }
    const cert = fs.readFileSync(certFile);
    primary = startTsx(['test/cli/fixtures/cluster-tls.ts', keyFile, certFile]);
    const [, port] = await primary.waitFor(/listening on port (\d+)/, 20_000);
    const clients = await Promise.all(
      Array.from({ length: 4 }, () =>
        connect({
          host: '127.0.0.1',
          port: Number(port),
          tls: { ca: cert, checkServerIdentity: (_host, peer) => tls.checkServerIdentity('localhost', peer) },
        }),
      ),
    );
    const workerPids = new Set<string>();
    const goaways: number[] = [];
    await Promise.all(
      clients.map(async (conn, i) => {
        conn.on('goaway', () => {
          goaways.push(i);
          void conn.end().catch(() => {});
        });
        conn.write(new TextEncoder().encode(`hello ${i}`));
        for await (const reply of conn) {
          const [pid, text] = new TextDecoder().decode(reply).split(':');
          expect(text).to.equal(`hello ${i}`);
          workerPids.add(pid!);
          break;
        }
      }),
    );
    expect(workerPids.size, 'connections handed to both workers').to.equal(2);
    // SIGTERM: each worker drains with GOAWAY; the clients end cleanly.
    primary.child.kill('SIGTERM');
    const closes = await Promise.all(
      clients.map((conn) =>
        conn.closed.then(
          () => 'clean',
          () => 'failed',
        ),
      ),
    );
    await primary.waitFor(/all workers drained/, 15_000);
    expect(goaways.length, 'GOAWAY to every client').to.equal(clients.length);
    report(
      `cluster TLS: 4 TLS connections over 2 workers (${[...workerPids].length} pids), GOAWAY to each at SIGTERM, closes ${closes.join('/')}`,
    );
  });
});
