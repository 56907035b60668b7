/**
 * Issue 14 item 2: a rolling restart of THREE server processes under load. Each server names the
 * other two as alternatives (WELCOME and GOAWAY, SPEC.md §9.5) and ages its connections out
 * (`maxConnectionAge`); the clients are `ReconnectingClient`s that move make-before-break on
 * GOAWAY and resend exactly what the old connection reports not processed. The servers report
 * every message they consumed to this process, which counts sent / acked / lost / duplicated.
 * Figures go to test-results/figures.txt (see test/figures.ts).
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import type { Move } from '../../src/node/reconnect.js';
import { LOCALHOST, REPO_ROOT, now, report, sleep, waitFor, within } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('./fixtures/rolling-server.ts', import.meta.url));
const CLIENTS = 12;
/** Each client sends BURST messages every TICK ms: about 12 × 3 / 5 ms = 7 200 messages/s offered. */
const BURST = 3;
const TICK = 5;
const GRACE = 3000;
const MAX_AGE = 2500;

/** All consumed messages, key = client id × 2^32 + sequence → times consumed. */
const consumed = new Map<number, number>();

class ServerProcess {
  readonly child: ChildProcess;
  port = 0;
  drained: number | undefined;
  readonly exited: Promise<void>;
  private readonly listening: Promise<number>;

  constructor(options: { port?: number; alternatives?: string[] }) {
    this.child = spawn(
      process.execPath,
      ['--import', 'tsx', FIXTURE, JSON.stringify({ ...options, maxConnectionAge: MAX_AGE })],
      { cwd: REPO_ROOT, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] },
    );
    this.child.on('error', () => {});
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    this.listening = new Promise((resolve) => {
      this.child.on(
        'message',
        (m: { listening?: number; ids?: number[]; seqs?: number[]; drained?: number }) => {
          if (m.listening !== undefined) {
            this.port = m.listening;
            resolve(m.listening);
          }
          if (m.drained !== undefined) this.drained = m.drained;
          if (m.ids !== undefined)
            for (let i = 0; i < m.ids.length; i++) {
              const key = m.ids[i]! * 0x1_0000_0000 + m.seqs![i]!;
              consumed.set(key, (consumed.get(key) ?? 0) + 1);
            }
        },
      );
    });
  }

  ready(): Promise<number> {
    return within(this.listening, 20_000, 'a server process listening');
  }

  send(message: Record<string, unknown>): void {
    if (this.child.connected) this.child.send(message);
  }
}

interface ClientState {
  id: number;
  client: ReconnectingClient;
  seq: number;
  resend: Uint8Array[];
  loop: Promise<void>;
}

function message(id: number, seq: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, id);
  view.setUint32(4, seq);
  return bytes;
}

describe('rolling restart of three server processes under load (issue 14)', function () {
  this.timeout(90_000);
  const servers: ServerProcess[] = [];
  const clients: ClientState[] = [];
  afterEach(async () => {
    for (const c of clients.splice(0)) await c.client.close().catch(() => {});
    for (const s of servers.splice(0)) {
      s.child.kill('SIGKILL');
      await s.exited;
    }
  });

  it('moves every client make-before-break to an alternative: 0 lost, 0 duplicated, counted in test-results/figures.txt', async () => {
    consumed.clear();
    // Three servers, then each one learns the other two as alternatives.
    for (let i = 0; i < 3; i++) servers.push(new ServerProcess({}));
    const ports = await Promise.all(servers.map((s) => s.ready()));
    const others = (i: number): string[] => ports.filter((_, j) => j !== i).map((p) => `${LOCALHOST}:${p}`);
    servers.forEach((s, i) => s.send({ alternatives: others(i) }));
    await sleep(100);

    let running = true;
    const moves: Move[] = [];
    let notProcessed = 0;
    let unknown = 0;
    for (let id = 1; id <= CLIENTS; id++) {
      const client = new ReconnectingClient({
        host: LOCALHOST,
        port: ports[id % 3]!,
        minDelay: 50,
        maxDelay: 1000,
        idleTimeout: 5000,
      });
      const state: ClientState = { id, client, seq: 0, resend: [], loop: Promise.resolve() };
      client.on('moved', (move) => moves.push(move));
      client.on('disconnected', (d) => {
        // Certainly not processed: resend (no duplicate). Unknown: counted (and resent, so a
        // duplicate would show below, announced).
        notProcessed += d.notProcessed.length;
        unknown += d.unknown.length;
        state.resend.push(...d.notProcessed, ...d.unknown);
      });
      state.loop = (async () => {
        while (running || state.resend.length > 0) {
          let conn;
          try {
            conn = await client.connected();
          } catch {
            return;
          }
          for (let k = 0; k < BURST; k++) {
            const next = state.resend.shift() ?? (running ? message(id, ++state.seq) : undefined);
            if (next === undefined) break;
            try {
              await conn.send(next);
            } catch {
              state.resend.unshift(next); // not accepted: in no report, send it again
              break;
            }
          }
          await sleep(TICK);
        }
      })();
      clients.push(state);
    }
    await within(Promise.all(clients.map((c) => c.client.connected())), 10_000, 'every client connected');
    await sleep(800);

    /** Clients whose current, open connection is on `port`. */
    const on = (port: number): number =>
      clients.filter(
        (c) => c.client.connection?.state === 'open' && c.client.connection.stats().remotePort === port,
      ).length;
    const moveTimes: number[] = [];
    const distributions: string[] = [];
    const movedCounts: number[] = [];
    const restartTimes: number[] = [];
    let lastListening = 0;
    for (let i = 0; i < 3; i++) {
      const old = servers[i]!;
      const port = ports[i]!;
      const before = on(port);
      distributions.push(ports.map(on).join('/'));
      const movesBefore = moves.length;
      // Moved: none left on the draining server, and every client open on another one.
      const connectedElsewhere = (): number => ports.reduce((sum, p) => sum + (p === port ? 0 : on(p)), 0);
      // Make before break: when the old process is gone (its clients ended their connections only
      // once the new ones were open), every client is already open elsewhere. Causal, so not
      // timing-dependent; a break-before-make client fails it.
      let atExit = -1;
      old.child.once('exit', () => (atExit = connectedElsewhere()));
      const t0 = now();
      old.send({ drain: GRACE });
      await waitFor(
        () => on(port) === 0 && connectedElsewhere() === CLIENTS,
        GRACE + 5000,
        `the clients of server ${i} moved`,
      );
      moveTimes.push(now() - t0);
      movedCounts.push(before);
      await within(old.exited, GRACE + 5000, `server ${i} exited`);
      expect(atExit, `clients open elsewhere when server ${i} exited`).to.equal(CLIENTS);
      const replacement = new ServerProcess({ port, alternatives: others(i) });
      servers[i] = replacement;
      await replacement.ready();
      lastListening = now();
      restartTimes.push(lastListening - t0);
      expect(moves.length - movesBefore).to.be.at.least(before);
      await sleep(300);
    }
    // Rebalance: the last server restarted is empty; connection age moves clients back onto it.
    const fair = Math.floor(CLIENTS / 3 / 2);
    await waitFor(() => ports.every((p) => on(p) >= fair), 15_000, `every server holding ≥ ${fair} clients`);
    const rebalance = now() - lastListening;
    const distribution = ports.map(on);

    // Stop, flush the resend queues, end every connection cleanly, collect the servers' reports.
    running = false;
    await within(Promise.all(clients.map((c) => c.loop)), 15_000, 'the send loops');
    await within(Promise.all(clients.map((c) => c.client.close())), 15_000, 'the clients closing');
    const sent = clients.reduce((sum, c) => sum + c.seq, 0);
    await waitFor(() => consumed.size >= sent, 10_000, 'the servers reporting every message').catch(() => {});
    let duplicated = 0;
    for (const count of consumed.values()) duplicated += count - 1;
    let lost = 0;
    for (const c of clients)
      for (let seq = 1; seq <= c.seq; seq++) if (!consumed.has(c.id * 0x1_0000_0000 + seq)) lost++;
    const acked = consumed.size;
    const viaAlternatives = moves.filter((m) => m.viaAlternatives).length;
    const moveElapsed = moves.map((m) => m.elapsed).sort((a, b) => a - b);
    const p = (q: number): string => (moveElapsed[Math.floor(q * (moveElapsed.length - 1))] ?? 0).toFixed(0);
    report(
      `rolling restart of 3 server processes, ${CLIENTS} ReconnectingClients under load: sent ${sent}, acked ${acked}, ` +
        `lost ${lost}, duplicated ${duplicated}; handed back not processed and resent ${notProcessed}, unknown ${unknown}; ` +
        `${moves.length} make-before-break moves (${viaAlternatives} via alternatives; drains and MAX_AGE ${MAX_AGE} ms), ` +
        `GOAWAY→new connection open p50 ${p(0.5)} ms, max ${p(1)} ms; all clients off a draining server (distribution before: ${distributions.join(', ')}) in ` +
        `${moveTimes.map((t) => t.toFixed(0)).join(', ')} ms (${movedCounts.join(', ')} clients); drain→replacement listening ` +
        `${restartTimes.map((t) => t.toFixed(0)).join(', ')} ms; rebalance after the last restart (every server ≥ ${fair} clients) ` +
        `${rebalance.toFixed(0)} ms, final distribution ${distribution.join('/')}`,
    );
    expect(sent).to.be.greaterThan(1000);
    expect(lost, 'lost').to.equal(0);
    expect(duplicated, 'duplicated').to.equal(0);
    expect(unknown, 'unknown').to.equal(0);
    expect(viaAlternatives).to.equal(moves.length);
    expect(movedCounts.reduce((a, b) => a + b, 0)).to.be.at.least(3);
  });
});
