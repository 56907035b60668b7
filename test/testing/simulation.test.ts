import { expect } from 'chai';
import type { CloseInfo, Connection } from '../../src/index.js';
import { Simulation, SimulationError, scheduleSimFaults } from '../../src/testing/index.js';

const text = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

/** An echo server on `sim` at `port`. */
async function echoServer(sim: Simulation, port = 7000) {
  const server = sim.createServer({}, (conn) =>
    conn.handle(async (message) => void (await conn.send(message))),
  );
  await server.listen(port);
  return server;
}

describe('testing: Simulation (the real Connection and Server on simulated TCP)', () => {
  it('the TSDoc example: echo across a partition shorter than the idle timeout, clean close, virtual time', async () => {
    const sim = new Simulation({ seed: 7, path: { latencyMs: 40 } });
    const started = performance.now();
    const replies = await sim.run(async () => {
      const server = sim.createServer({}, (conn) =>
        conn.handle(async (message) => void (await conn.send(message))),
      );
      const { port } = await server.listen(7000);
      const conn = await sim.connect({ port });
      await conn.send('ping');
      sim.partition();
      await sim.sleep(3_000);
      sim.heal();
      const received: string[] = [];
      for await (const reply of conn) {
        received.push(text(reply));
        await conn.end();
      }
      await server.close();
      return received;
    });
    expect(replies).to.deep.equal(['ping']);
    expect(sim.now).to.be.greaterThan(3_000);
    expect(performance.now() - started).to.be.lessThan(5_000);
  });

  it('minutes of idle protocol time take milliseconds; heartbeats keep the connection alive', async () => {
    const sim = new Simulation({ seed: 1 });
    const started = performance.now();
    const rtts = await sim.run(async () => {
      const server = await echoServer(sim);
      const conn = await sim.connect({ port: 7000, idleTimeout: 3000 });
      const samples: number[] = [];
      conn.on('rtt', (rtt) => samples.push(rtt));
      await sim.sleep(10 * 60_000);
      expect(conn.state).to.equal('open');
      await conn.end();
      await server.close();
      return samples;
    });
    expect(rtts.length).to.be.greaterThan(50);
    expect(rtts.every((rtt) => rtt >= 10)).to.equal(true); // two 5 ms latencies at least
    expect(performance.now() - started).to.be.lessThan(10_000);
  });

  it('is reproducible from its seed, and the seed matters', async () => {
    const run = async (seed: number): Promise<string> => {
      const sim = new Simulation({ seed, path: { maxChunkBytes: 7, latencyMs: 3 } });
      return sim.run(async () => {
        const server = await echoServer(sim);
        const conn = await sim.connect({ port: 7000 });
        const log: string[] = [];
        conn.on('rtt', (rtt) => log.push(`rtt ${rtt.toFixed(3)} at ${sim.now.toFixed(3)}`));
        for (let i = 0; i < 20; i++) await conn.send(`message ${i}`);
        let n = 0;
        for await (const reply of conn) {
          log.push(`${text(reply)} at ${sim.now.toFixed(3)}`);
          if (++n === 20) await conn.end();
        }
        await server.close();
        return log.join('\n');
      });
    };
    const a = await run(5);
    expect(await run(5)).to.equal(a);
    expect(await run(6)).to.not.equal(a);
  });

  it('a partition longer than the idle timeout fails both sides with HEARTBEAT_TIMEOUT, as on a real network', async () => {
    const sim = new Simulation({ seed: 3 });
    await sim.run(async () => {
      const serverSide: Promise<CloseInfo>[] = [];
      const server = sim.createServer({ idleTimeout: 2000 }, (conn) => void serverSide.push(conn.closed));
      await server.listen(7000);
      const conn = await sim.connect({ port: 7000, idleTimeout: 2000 });
      await sim.sleep(100);
      sim.partition();
      const error = await conn.closed.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.have.property('code', 'HEARTBEAT_TIMEOUT');
      const serverError = await serverSide[0]!.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(serverError).to.have.property('code', 'HEARTBEAT_TIMEOUT');
      expect(sim.now).to.be.within(2000, 5000);
      sim.heal();
      await server.close();
    });
  });

  it('one-way loss (client-to-server) is noticed by both sides', async () => {
    const sim = new Simulation({ seed: 4 });
    await sim.run(async () => {
      const server = await echoServer(sim);
      const conn = await sim.connect({ port: 7000, idleTimeout: 2000 });
      sim.partition('client-to-server');
      const error = await conn.closed.then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.have.property('code', 'HEARTBEAT_TIMEOUT');
      sim.heal();
      await server.close();
    });
  });

  it('a crashed server resets its connections; a server restarted on the same address accepts again', async () => {
    const sim = new Simulation({ seed: 9 });
    await sim.run(async () => {
      const server = sim.createServer({}, () => {}); // reads nothing
      await server.listen(7000);
      const conn = await sim.connect({ port: 7000 });
      for (let i = 0; i < 3; i++) await conn.send(`job ${i}`);
      await sim.sleep(50);
      sim.crash(server, 'reset');
      const error = (await conn.closed.then(
        () => undefined,
        (e: unknown) => e,
      )) as { code: string };
      expect(error.code).to.be.oneOf(['TRANSPORT_ERROR', 'UNEXPECTED_EOF']);
      // A new server on the same address (a restart) accepts connections again.
      const restarted = await echoServer(sim);
      const again = await sim.connect({ port: 7000 });
      await again.send('hello');
      for await (const reply of again) {
        expect(text(reply)).to.equal('hello');
        await again.end();
      }
      await restarted.close();
    });
  });

  it('delivery reports as on a real network: a server that consumes 2 of 5 messages and aborts', async () => {
    const sim = new Simulation({ seed: 21 });
    const info = await sim.run(async () => {
      const server = sim.createServer({}, async (conn) => {
        let n = 0;
        for await (const message of conn) if (message.length > 0 && ++n === 2) break;
        conn.abort();
      });
      await server.listen(7000);
      const conn = await sim.connect({ port: 7000 });
      const closed = new Promise<CloseInfo>((resolve) => conn.once('close', resolve));
      for (let i = 0; i < 5; i++) await conn.send(`m${i}`);
      const result = await closed;
      await server.close();
      return result;
    });
    expect(info.clean).to.equal(false);
    expect(info.error?.code).to.equal('CANCELLED');
    expect(info.delivery.queued).to.equal(5);
    expect(info.delivery.consumed).to.equal(2);
    expect(info.delivery.unknown.length + info.delivery.notProcessed.length).to.equal(3);
    expect([...info.delivery.unknown, ...info.delivery.notProcessed].map(text)).to.deep.equal([
      'm2',
      'm3',
      'm4',
    ]);
  });

  it('connect() to an address nobody listens on fails as connect() does (ConnectError CONNECT_FAILED)', async () => {
    const sim = new Simulation();
    const error = await sim.run(() =>
      sim.connect({ port: 1234 }).then(
        () => undefined,
        (e: unknown) => e,
      ),
    );
    expect(error).to.have.property('code', 'CONNECT_FAILED');
  });

  it("connect() to a server whose machine vanished (crash 'none') times out instead of being refused", async () => {
    const sim = new Simulation();
    await sim.run(async () => {
      const server = await echoServer(sim);
      sim.crash(server, 'none');
      const error = await sim.connect({ port: 7000, connectTimeout: 4000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.have.property('code', 'CONNECT_TIMEOUT');
      const restarted = await echoServer(sim);
      const conn = await sim.connect({ port: 7000 });
      await conn.end();
      await restarted.close();
    });
  });

  it('connect() during a partition times out after connectTimeout, on virtual time', async () => {
    const sim = new Simulation();
    await sim.run(async () => {
      const server = await echoServer(sim);
      sim.partition();
      const error = await sim.connect({ port: 7000, connectTimeout: 30_000 }).then(
        () => undefined,
        (e: unknown) => e,
      );
      expect(error).to.have.property('code', 'CONNECT_TIMEOUT');
      expect(sim.now).to.be.within(30_000, 31_000);
      sim.heal();
      await server.close();
    });
  });

  it('a GOAWAY from server.close() reaches the client as the goaway event; the close is clean', async () => {
    const sim = new Simulation({ seed: 2 });
    await sim.run(async () => {
      const server = await echoServer(sim);
      const conn: Connection = await sim.connect({ port: 7000 });
      const goaway = new Promise((resolve) => conn.once('goaway', resolve));
      const closing = server.close({ grace: 1000 });
      await goaway;
      const info = await conn.end();
      expect(info.clean).to.equal(true);
      await closing;
    });
  });

  it('a stalled consumer: the sender waits for credit and is told (credit-stall), on virtual time', async () => {
    const sim = new Simulation({ seed: 12 });
    await sim.run(async () => {
      let resume!: () => void;
      const consuming = new Promise<void>((resolve) => (resume = resolve));
      const server = sim.createServer({ receiveWindow: 64 * 1024 }, async (conn) => {
        await consuming; // the application does not read until resumed
        for await (const message of conn) if (message.length === 0) break;
      });
      await server.listen(7000);
      const conn = await sim.connect({ port: 7000, maxSendQueue: 1024 * 1024 });
      const stalled = new Promise<number>((resolve) => conn.once('credit-stall', resolve));
      for (let i = 0; i < 100; i++) conn.write(new Uint8Array(4096));
      const blockedMs = await stalled;
      expect(blockedMs).to.be.at.least(5000);
      expect(conn.state).to.equal('open'); // alive: heartbeats flow, only credit is missing
      const resumed = new Promise<number>((resolve) => conn.once('credit-resumed', resolve));
      resume();
      expect(await resumed).to.be.at.least(5000);
      await conn.end();
      await server.close();
    });
  });

  it('works without run(): the loop runs while anything awaits it; stop() ends it', async () => {
    const sim = new Simulation({ seed: 5 });
    const server = sim.createServer((conn) => conn.handle(async (m) => void (await conn.send(m))));
    const { port } = await server.listen(0);
    expect(port).to.be.greaterThan(0);
    const conn = await sim.connect({ port });
    await conn.send('x');
    for await (const reply of conn) {
      expect(text(reply)).to.equal('x');
      break;
    }
    sim.stop();
    const at = sim.now;
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(sim.now).to.equal(at);
  });

  it('an unhandled rejection inside the simulated application fails the run with the seed', async () => {
    const sim = new Simulation({ seed: 1234 });
    const error = await sim
      .run(async () => {
        const server = await echoServer(sim);
        void Promise.reject(new Error('forgotten'));
        await sim.sleep(1000);
        await server.close();
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).to.be.instanceOf(SimulationError);
    expect((error as Error).message)
      .to.contain('seed 1234')
      .and.contain('forgotten');
  });

  it('a throwing event listener or connection handler fails the run with the seed', async () => {
    const sim = new Simulation({ seed: 77 });
    const error = await sim
      .run(async () => {
        const server = sim.createServer({}, () => {
          throw new Error('handler bug');
        });
        await server.listen(7000);
        const conn = await sim.connect({ port: 7000 });
        await conn.closed.catch(() => {});
        await sim.sleep(1000);
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).to.be.instanceOf(SimulationError);
    expect((error as Error).message)
      .to.contain('seed 77')
      .and.contain('handler');
    const sim2 = new Simulation({ seed: 78 });
    const error2 = await sim2
      .run(async () => {
        const server = await echoServer(sim2);
        const conn = await sim2.connect({ port: 7000 });
        conn.on('rtt', () => {
          throw new Error('listener bug');
        });
        await sim2.sleep(60_000);
        await server.close();
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((error2 as Error).message)
      .to.contain('seed 78')
      .and.contain('listener bug');
  });

  it('a run that never ends fails at the time limit', async () => {
    const sim = new Simulation({ timeLimit: 60_000 });
    const error = await sim
      .run(async () => {
        await echoServer(sim);
        await sim.connect({ port: 7000 });
        await new Promise(() => {}); // forever
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect((error as Error).message).to.contain('time limit');
  });

  it('a run stuck with nothing scheduled (no timer, no socket) fails with the seed instead of hanging', async () => {
    // Without this, the run's promise never settles: mocha times out, and a script's top-level
    // await exits with code 13 and no output at all.
    const outcome = async (sim: Simulation, main: () => Promise<void>): Promise<unknown> => {
      let timer: NodeJS.Timeout | undefined;
      const hung = new Promise((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)));
      try {
        return await Promise.race([
          sim.run(main).then(
            () => 'resolved',
            (e: unknown) => e,
          ),
          hung,
        ]);
      } finally {
        clearTimeout(timer);
      }
    };
    const sim = new Simulation({ seed: 4321 });
    const error = await outcome(sim, async () => {
      await new Promise(() => {}); // nothing will ever resolve this
    });
    expect(error).to.be.instanceOf(SimulationError);
    expect((error as Error).message)
      .to.contain('seed 4321')
      .and.contain('nothing is scheduled');
    // The usual way to get there: waiting for an event that has already fired.
    const sim2 = new Simulation({ seed: 99 });
    const error2 = await outcome(sim2, async () => {
      const server = await echoServer(sim2);
      const conn = await sim2.connect({ port: 7000 });
      await conn.end();
      await server.close();
      await new Promise((resolve) => conn.once('close', resolve)); // already emitted
    });
    expect(error2).to.be.instanceOf(SimulationError);
    expect((error2 as Error).message).to.contain('seed 99');
    // A run that finishes while the loop is idle is not affected.
    expect(await outcome(new Simulation(), async () => {})).to.equal('resolved');
    // A second run of the same simulation (its loop stopped) rejects instead of hanging.
    const once = new Simulation({ seed: 5 });
    expect(await outcome(once, () => once.sleep(10))).to.equal('resolved');
    const again = await outcome(once, () => once.sleep(10));
    expect(again).to.be.instanceOf(SimulationError);
    expect((again as Error).message).to.contain('create a new Simulation');
  });

  it('scheduleSimFaults: a short partition inside a long one does not end the long one early', async () => {
    for (const inner of ['both', 'client-to-server'] as const) {
      const sim = new Simulation({ seed: 3 });
      const replyAt = await sim.run(async () => {
        const server = await echoServer(sim);
        const conn = await sim.connect({ port: 7000, idleTimeout: 20_000 });
        scheduleSimFaults(sim, [
          { atMs: 0, fault: { kind: 'partition', direction: 'both', forMs: 5000 } },
          { atMs: 100, fault: { kind: 'partition', direction: inner, forMs: 100 } },
        ]);
        await sim.sleep(1000);
        await conn.send('x');
        for await (const reply of conn) {
          expect(text(reply)).to.equal('x');
          const at = sim.now;
          await conn.end();
          await server.close();
          return at;
        }
        return undefined;
      });
      // The schedule says both directions are cut until 5000 ms: no reply before then.
      expect(replyAt, inner).to.be.greaterThan(5000);
    }
  });

  it('checks its options synchronously (seed, timeLimit, stuckAfterMs, path)', () => {
    expect(() => new Simulation({ seed: 1.5 })).to.throw(RangeError, /seed/);
    expect(() => new Simulation({ timeLimit: 0 })).to.throw(RangeError, /timeLimit/);
    expect(() => new Simulation({ stuckAfterMs: 0 })).to.throw(RangeError, /stuckAfterMs/);
    expect(() => new Simulation({ path: { latencyMs: -1 } })).to.throw(RangeError, /path/);
    expect(() => new Simulation({ seed: -7, timeLimit: 1000, path: { latencyMs: 0 } })).to.not.throw();
  });
});
