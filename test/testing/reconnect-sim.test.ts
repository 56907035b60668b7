/**
 * `ReconnectingClient` on the `Simulation` (`sim.createReconnectingClient()`): the same class as
 * in a process, dialling on the simulated network, its backoff and GOAWAY timers on virtual time,
 * its jitter from the simulation's seed. Across a server crash and restart (each crash mode) and
 * across a GOAWAY naming an alternative (make before break, exact hand-back); same seed, same trace.
 */
import { expect } from 'chai';
import type { Disconnection, Move } from '../../src/node/reconnect.js';
import type { CrashMode } from '../../src/testing/path.js';
import { Simulation } from '../../src/testing/index.js';
import { report } from '../figures.js';

function numbered(seq: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, seq);
  return bytes;
}
const seqOf = (message: Uint8Array): number =>
  new DataView(message.buffer, message.byteOffset, message.byteLength).getUint32(0);
const codeOf = (error: unknown): string | undefined => (error as { code?: string } | undefined)?.code;
const range = (from: number, to: number): number[] =>
  Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Waits on virtual time until `condition` holds (checked every 10 ms), failing after `ms`. */
async function until(sim: Simulation, condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = sim.now + ms;
  while (!condition()) {
    if (sim.now > deadline) throw new Error(`timed out after ${ms} ms of virtual time: ${what}`);
    await sim.sleep(10);
  }
}

const MIN_DELAY = 100;
const MAX_DELAY = 10_000;
const DOWN_MS = 120_000;

interface CrashOutcome {
  trace: string[];
  delays: { attempt: number; delay: number }[];
  /** By the crashed server, by the restarted one. */
  consumed: [number[], number[]];
  notProcessed: number[];
  unknown: number[];
  downFor: number;
  reconnectedAfterRestart: number;
  virtualMs: number;
  realMs: number;
}

/**
 * A client consuming server on :7000 crashes (`mode`) while the client has messages in flight,
 * stays down two minutes, and restarts on the same address; the client resends what came back
 * as not processed and sends on. Everything the client wrote is consumed once, or reported.
 */
async function crashAndRestart(seed: number, mode: CrashMode): Promise<CrashOutcome> {
  const sim = new Simulation({ seed, path: { latencyMs: 5 } });
  const trace: string[] = [];
  const log = (line: string): void => void trace.push(`${sim.now.toFixed(1)} ${line}`);
  const delays: { attempt: number; delay: number }[] = [];
  const consumed: [number[], number[]] = [[], []];
  const notProcessed: number[] = [];
  const unknown: number[] = [];
  let downFor = 0;
  let reconnectedAfterRestart = 0;
  const started = performance.now();
  const serve = async (into: number[]) => {
    const server = sim.createServer({ idleTimeout: 3000 }, (conn) =>
      conn.handle((message) => void into.push(seqOf(message))),
    );
    await server.listen(7000);
    return server;
  };
  await sim.run(async () => {
    const server = await serve(consumed[0]);
    const client = sim.createReconnectingClient({
      port: 7000,
      idleTimeout: 3000,
      connectTimeout: 2000,
      minDelay: MIN_DELAY,
      maxDelay: MAX_DELAY,
    });
    client.on('connected', (_conn, generation) => log(`connected ${generation}`));
    client.on('reconnecting', ({ attempt, delay, error }) => {
      delays.push({ attempt, delay });
      log(`reconnecting attempt ${attempt} in ${delay} ms (${codeOf(error) ?? '-'})`);
    });
    const handedBack: Disconnection[] = [];
    client.on('disconnected', (d) => {
      handedBack.push(d);
      log(
        `disconnected ${d.generation} ${codeOf(d.error) ?? 'clean'} notProcessed ${d.notProcessed.length} unknown ${d.unknown.length}`,
      );
    });
    const first = await client.connected();
    for (let seq = 1; seq <= 20; seq++) await first.send(numbered(seq));
    await until(sim, () => consumed[0].length === 20, 1000, 'the first 20 consumed');
    await sim.sleep(30_000); // half a minute of heartbeats
    // 20 more in flight when the host crashes: consumed, or handed back as not processed/unknown.
    for (let seq = 21; seq <= 40; seq++) first.write(numbered(seq));
    await sim.sleep(6);
    sim.crash(server, mode);
    const down = sim.now;
    await sim.sleep(DOWN_MS);
    expect(client.connection, 'nothing to connect to while down').to.equal(undefined);
    const restarted = await serve(consumed[1]);
    downFor = sim.now - down;
    const back = sim.now;
    const second = await client.connected();
    reconnectedAfterRestart = sim.now - back;
    expect(second).to.not.equal(first);
    expect(handedBack.length).to.equal(1);
    const [d] = handedBack;
    notProcessed.push(...d!.notProcessed.map(seqOf));
    unknown.push(...d!.unknown.map(seqOf)); // the application decides; here: counted, not resent
    for (const m of d!.notProcessed) await second.send(m);
    for (let seq = 41; seq <= 60; seq++) await second.send(numbered(seq));
    await sim.sleep(60_000); // a stable minute on the restarted server
    expect(client.connection).to.equal(second);
    expect(second.state).to.equal('open');
    await client.close();
    await restarted.close();
  });
  return {
    trace,
    delays,
    consumed,
    notProcessed,
    unknown,
    downFor,
    reconnectedAfterRestart,
    virtualMs: sim.now,
    realMs: performance.now() - started,
  };
}

interface MoveOutcome {
  trace: string[];
  move: Move;
  consumedA: number[];
  consumedB: number[];
  notProcessed: number[];
  unknown: number[];
  order: string[];
  realMs: number;
  virtualMs: number;
}

/**
 * A (:7000, naming B :7001 as its alternative) consumes 50 messages and hangs on the 51st; its
 * connections get GOAWAY (grace 600 ms, retry_after 10 s). The client opens B before A's
 * connection ends, sends 100 new messages on B meanwhile, and resends on B exactly what A hands
 * back as not processed.
 */
async function goAwayToAlternative(seed: number): Promise<MoveOutcome> {
  const sim = new Simulation({ seed, path: { latencyMs: 5 } });
  const trace: string[] = [];
  const order: string[] = [];
  const log = (line: string): void => void trace.push(`${sim.now.toFixed(1)} ${line}`);
  const consumedA: number[] = [];
  const consumedB: number[] = [];
  const started = performance.now();
  let release: () => void = () => {};
  const stuck = new Promise<void>((resolve) => (release = resolve));
  const outcome = await sim.run(async () => {
    const b = sim.createServer({}, (conn) => {
      order.push('B accepted');
      return conn.handle((m) => void consumedB.push(seqOf(m)));
    });
    await b.listen(7001);
    const a = sim.createServer({ alternatives: ['127.0.0.1:7001'] }, (conn) => {
      conn.once('close', () => order.push('A closed'));
      return conn
        .handle(async (m) => {
          if (consumedA.length >= 50) await stuck;
          else consumedA.push(seqOf(m));
        })
        .catch(() => {}); // its grace expires with the 51st in hand
    });
    await a.listen(7000);
    const client = sim.createReconnectingClient({ port: 7000, idleTimeout: 1000, minDelay: 20 });
    client.on('connected', (conn, generation) =>
      log(`connected ${generation} to :${conn.stats().remotePort}`),
    );
    client.on('reconnecting', ({ attempt, delay }) => log(`reconnecting attempt ${attempt} in ${delay} ms`));
    client.on('disconnected', (d) =>
      log(`disconnected ${d.generation} replaced ${d.replaced} ${codeOf(d.error) ?? 'clean'}`),
    );
    const first = await client.connected();
    first.once('close', () => order.push('old connection closed'));
    const disconnected = new Promise<Disconnection>((resolve) => client.once('disconnected', resolve));
    const moved = new Promise<Move>((resolve) => client.once('moved', resolve));
    let oldStateAtMove = '';
    client.once('moved', (m) => {
      oldStateAtMove = first.state;
      order.push('moved');
      log(
        `moved ${m.from}->${m.to} via alternatives ${m.viaAlternatives} to ${m.endpoint} after ${m.elapsed} ms`,
      );
    });
    for (let seq = 1; seq <= 200; seq++) first.write(numbered(seq));
    await until(sim, () => consumedA.length === 50, 5000, 'A consuming 50');
    for (const conn of a.connections) void conn.end({ grace: 600, retryAfter: 10_000 }).catch(() => {});
    const move = await moved;
    const second = await client.connected();
    expect(second).to.not.equal(first);
    expect(second.stats().remotePort).to.equal(7001);
    expect(oldStateAtMove, 'the old connection is still open when the new one opens').to.equal('open');
    for (let seq = 201; seq <= 300; seq++) second.write(numbered(seq));
    const d = await disconnected;
    expect(d.generation).to.equal(1);
    expect(d.replaced).to.equal(true);
    expect(codeOf(d.error)).to.equal('GOAWAY_GRACE_EXPIRED');
    for (const m of d.notProcessed) second.write(m);
    const notProcessed = d.notProcessed.map(seqOf);
    await until(sim, () => consumedB.length === 100 + notProcessed.length, 5000, 'B consuming');
    release();
    await client.close();
    await Promise.all([a.close(), b.close()]);
    return { move, notProcessed, unknown: d.unknown.map(seqOf) };
  });
  return {
    trace,
    order,
    consumedA,
    consumedB,
    ...outcome,
    realMs: performance.now() - started,
    virtualMs: sim.now,
  };
}

describe('testing: ReconnectingClient on the Simulation', function () {
  this.timeout(30_000);

  for (const mode of ['reset', 'fin', 'none'] as const) {
    it(`across a server crash (${mode}), two minutes down and a restart: full-jitter backoff on virtual time, reconnects, nothing lost silently`, async () => {
      const out = await crashAndRestart(11, mode);
      // Backoff: attempt n waits at most min(maxDelay, minDelay × 2^n); the waits spread over the outage.
      expect(out.delays.length).to.be.greaterThan(DOWN_MS / MAX_DELAY);
      for (const { attempt, delay } of out.delays)
        expect(delay).to.be.at.most(Math.min(MAX_DELAY, MIN_DELAY * 2 ** attempt));
      expect(
        out.delays.some(({ delay }) => delay > MAX_DELAY / 2),
        'backoff reached the cap',
      ).to.equal(true);
      // Back within one capped wait (plus a connect attempt) of the restart.
      expect(out.reconnectedAfterRestart).to.be.at.most(MAX_DELAY + 2000 + 100); // + connectTimeout of an unanswered SYN
      // Exact: every message of the crashed connection is consumed by it (1…20, acknowledged) or
      // handed back as not processed or unknown (the crash: nobody can tell); nothing not processed
      // was consumed; the restarted server got exactly the resent and the new ones, once each.
      const [first, second] = out.consumed;
      const sorted = (list: number[]): number[] => [...list].sort((x, y) => x - y);
      expect(new Set(first).size, 'no duplicate').to.equal(first.length);
      expect(first.slice(0, 20)).to.deep.equal(range(1, 20));
      expect(out.notProcessed.filter((seq) => first.includes(seq))).to.deep.equal([]);
      expect(sorted([...out.notProcessed, ...out.unknown])).to.deep.equal(range(21, 40));
      expect(sorted(second)).to.deep.equal(sorted([...out.notProcessed, ...range(41, 60)]));
      expect(out.virtualMs).to.be.greaterThan(3 * 60_000);
      expect(out.realMs, 'minutes of virtual time in well under the wall time').to.be.lessThan(5_000);
      report(
        `simulated ReconnectingClient, crash ${mode}: ${(out.virtualMs / 1000).toFixed(0)} s virtual in ${out.realMs.toFixed(0)} ms real; ` +
          `${out.delays.length} retries during ${(out.downFor / 1000).toFixed(0)} s down, back ${out.reconnectedAfterRestart.toFixed(0)} ms after the restart; ` +
          `crashed server consumed ${first.length}, handed back ${out.notProcessed.length} not processed + ${out.unknown.length} unknown`,
      );
    });
  }

  it('on GOAWAY naming an alternative: make before break, and the exact hand-back of what was not processed', async () => {
    const out = await goAwayToAlternative(3);
    expect(out.move.viaAlternatives).to.equal(true);
    expect(out.move.endpoint).to.equal('127.0.0.1:7001');
    expect(out.move.elapsed).to.be.at.most(20 + 50); // jitter ≤ minDelay, then one handshake
    // Make before break, causally: B accepted and the client moved before A's connection closed.
    expect(out.order.indexOf('B accepted')).to.be.within(0, out.order.indexOf('old connection closed'));
    expect(out.order.indexOf('moved')).to.be.within(0, out.order.indexOf('old connection closed'));
    expect(out.order.indexOf('moved')).to.be.lessThan(out.order.indexOf('A closed'));
    // Exact: A's consumed, the unknown (the one its handler held) and the not processed are 1…200.
    expect(out.consumedA).to.deep.equal(range(1, 50));
    expect(out.unknown).to.deep.equal([51]);
    expect([...out.consumedA, ...out.unknown, ...out.notProcessed].sort((x, y) => x - y)).to.deep.equal(
      range(1, 200),
    );
    const seenB = new Set(out.consumedB);
    expect(seenB.size, 'no duplicate on B').to.equal(out.consumedB.length);
    expect([...seenB].sort((x, y) => x - y)).to.deep.equal(
      [...out.notProcessed, ...range(201, 300)].sort((x, y) => x - y),
    );
    expect(out.realMs).to.be.lessThan(5_000);
    report(
      `simulated ReconnectingClient, GOAWAY move: new connection ${out.move.elapsed.toFixed(1)} ms after GOAWAY; ${out.notProcessed.length} handed back and resent, ` +
        `1 unknown; ${out.virtualMs.toFixed(0)} ms virtual in ${out.realMs.toFixed(0)} ms real`,
    );
  });

  it('is reproducible from the seed: same seed, same trace (and the seed matters)', async () => {
    const a = await crashAndRestart(5, 'none');
    const b = await crashAndRestart(5, 'none');
    const c = await crashAndRestart(6, 'none');
    expect(b.trace).to.deep.equal(a.trace);
    expect(b.consumed).to.deep.equal(a.consumed);
    expect(c.trace).to.not.deep.equal(a.trace);
    const m1 = await goAwayToAlternative(9);
    const m2 = await goAwayToAlternative(9);
    expect(m2.trace).to.deep.equal(m1.trace);
    expect(m2.order).to.deep.equal(m1.order);
    expect(m2.notProcessed).to.deep.equal(m1.notProcessed);
  });

  it('a connection that closes as connect() resolves (WELCOME and ERROR in one read) is reported and replaced, not waited on forever', async () => {
    // The server's replies are held until after its idle timeout: the client then reads the WELCOME
    // and the server's HEARTBEAT_TIMEOUT at once. (Found by the job queue property, examples/jobs.)
    const sim = new Simulation({ seed: 1, path: { latencyMs: 5 } });
    const events: string[] = [];
    await sim.run(async () => {
      const server = sim.createServer({ idleTimeout: 3000 }, (conn) => conn.handle(() => {}));
      await server.listen(7000);
      const client = sim.createReconnectingClient({ port: 7000, idleTimeout: 3000, minDelay: 100 });
      client.on('connected', (conn, generation) => events.push(`connected ${generation} ${conn.state}`));
      client.on('disconnected', (d) => events.push(`disconnected ${d.generation} ${codeOf(d.error)}`));
      await sim.sleep(11); // TCP is up, the HELLO on its way
      sim.partition('server-to-client');
      await sim.sleep(5000);
      sim.heal('server-to-client');
      // Without a reconnection nothing would be scheduled any more: this guard fails the run.
      const guard = sim.setTimeout(() => sim.fail(new Error('the client never reconnected')), 60_000);
      const conn = await client.connected();
      sim.clearTimeout(guard);
      expect(conn.state).to.equal('open');
      await client.close();
      await server.close();
    });
    expect(events.slice(0, 3)).to.deep.equal([
      'connected 1 closed',
      'disconnected 1 HEARTBEAT_TIMEOUT',
      'connected 2 open',
    ]);
  });

  it('takes its options as new ReconnectingClient() does (synchronous validation)', () => {
    const sim = new Simulation();
    expect(() => sim.createReconnectingClient({ port: 7000, minDelay: -1 })).to.throw(RangeError);
    expect(() =>
      sim.createReconnectingClient({ port: 7000, maxAttempts: 'x' as unknown as number }),
    ).to.throw(TypeError);
    sim.stop();
  });
});
