/**
 * Misuse found by a newcomer's run of the README: handle()'s arguments are checked synchronously,
 * and a send() after the connection failed says why (the close error as its cause).
 */
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { connect } from '../../src/node/connect.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { createServer } from '../../src/node/server.js';
import { captureWarnings, useHarness, waitFor, within, observe, rejection } from './helpers.js';

describe('node API: misuse is reported at the call, with the reason', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('handle() checks its arguments synchronously (TypeError / RangeError)', async () => {
    const { port } = await h().server({});
    const conn = await h().connect({ port });
    const bad = conn as unknown as { handle: (...args: unknown[]) => Promise<void> };
    expect(() => bad.handle('x')).to.throw(TypeError, /"handler" argument must be of type function/);
    for (const concurrency of [0, -1, 1.5, Infinity, Number.NaN])
      expect(() => conn.handle(() => {}, { concurrency }), String(concurrency)).to.throw(RangeError);
    expect(() => bad.handle(() => {}, { concurrency: '2' })).to.throw(TypeError);
    expect(() => bad.handle(() => {}, { onError: 'log' })).to.throw(TypeError);
    // Nothing was started by the refused calls: a valid call is still the first handle().
    const handled = conn.handle(() => {}, { concurrency: 2 });
    handled.catch(() => {}); // the harness aborts the connection at the end of the test
    expect(conn.state).to.equal('open');
    const second = rejection(await observe(conn.handle(() => {})), 'second handle()');
    expect(second.code).to.equal('HANDLE_ALREADY_RUNNING');
  });

  it('a misspelt option is refused synchronously, naming it and the closest known one', async () => {
    const expectUnknown = (action: () => unknown, key: string, suggestion: string | undefined): void => {
      let thrown: unknown;
      try {
        action();
      } catch (error) {
        thrown = error;
      }
      expect(thrown, key).to.be.instanceOf(TypeError);
      expect((thrown as { code?: string }).code).to.equal('ERR_INVALID_ARG_VALUE');
      expect((thrown as Error).message).to.include(`"${key}"`);
      if (suggestion !== undefined)
        expect((thrown as Error).message).to.include(`Did you mean "${suggestion}"?`);
    };
    const loose = <T>(options: Record<string, unknown>): T => options as T;
    expectUnknown(() => connect(loose({ port: 1, idleTimout: 5000 })), 'idleTimout', 'idleTimeout');
    expectUnknown(() => connect(loose({ port: 1, Host: 'localhost' })), 'Host', 'host');
    expectUnknown(() => connect(loose({ port: 1, retries: 3 })), 'retries', undefined);
    // A ReconnectingClient option is not a connect() option.
    expectUnknown(() => connect(loose({ port: 1, maxAttempts: 3 })), 'maxAttempts', undefined);
    expectUnknown(() => createServer(loose({ maxConection: 10 })), 'maxConection', 'maxConnections');
    expectUnknown(() => createServer(loose({ gracePeriod: 10 })), 'gracePeriod', undefined);
    expectUnknown(() => new ReconnectingClient(loose({ port: 1, minDelai: 10 })), 'minDelai', 'minDelay');
    const { port } = await h().server({});
    const conn = await h().connect({ port });
    expectUnknown(() => conn.handle(() => {}, loose({ concurency: 2 })), 'concurency', 'concurrency');
    // Every documented option is still accepted, including a server's lifecycle options and a
    // ReconnectingClient's backoff (which its connect() calls do not get: test/node/lifecycle.test.ts, api.test.ts).
    await createServer({ maxConnectionAge: 60_000, targetConnections: 5, defaultGrace: 10 }).close();
    const options = { host: '127.0.0.1', port, minDelay: 1, maxDelay: 10, maxAttempts: 2, endOnGoAway: true };
    await new ReconnectingClient(options).close();
  });

  it('end() and server.close() check their options synchronously: a misspelt unread or grace is not ignored', async () => {
    const { port, server } = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const conn = await h().connect({ port });
    const loose = <T>(options: Record<string, unknown>): T => options as T;
    const thrown = (action: () => unknown): { code?: string; message: string } => {
      try {
        action();
      } catch (error) {
        return error as { code?: string; message: string };
      }
      throw new Error('did not throw');
    };
    // `unread: 'wiat'` used to be taken as the default ('discard'): the opposite of what was asked.
    const typo = thrown(() => conn.end(loose({ unread: 'wiat' })));
    expect(typo.code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(typo.message).to.include('"unread"').and.include("'wait'");
    const key = thrown(() => conn.end(loose({ unred: 'wait' })));
    expect(key.code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(key.message).to.include('Did you mean "unread"?');
    expect(thrown(() => conn.end(loose({ grace: 'soon' }))).code).to.equal('ERR_INVALID_ARG_TYPE');
    expect(conn.state).to.equal('open'); // nothing was started by the refused calls
    // A grace that is not a number would leave the shutdown without its deadline.
    expect(thrown(() => server.close(loose({ grace: 'abc' }))).code).to.equal('ERR_INVALID_ARG_TYPE');
    expect(thrown(() => server.close({ grace: -1 })).code).to.equal('ERR_OUT_OF_RANGE');
    const misspelt = thrown(() => server.close(loose({ grce: 10 })));
    expect(misspelt.code).to.equal('ERR_INVALID_ARG_VALUE');
    expect(misspelt.message).to.include('Did you mean "grace"?');
    // Valid options still work.
    const info = await conn.end({ unread: 'wait' });
    expect(info.clean).to.equal(true);
    await server.close({ grace: 100, message: 'bye' });
  });

  it('listen() after close() throws instead of listening and refusing every connection, with no way to stop', async () => {
    const server = createServer({ idleTimeout: 5000 });
    await server.close();
    let thrown: unknown;
    try {
      void server.listen(0, '127.0.0.1');
    } catch (error) {
      thrown = error;
    }
    expect((thrown as { code?: string }).code).to.equal('ERR_SERVER_CLOSED');
    expect((thrown as Error).message).to.include('createServer()');
    expect(server.address()).to.equal(undefined); // not listening
  });

  it('connect() with two ways to say where (port and path, endpoints and port) is refused synchronously', () => {
    const cases = [
      { port: 1, path: '/tmp/x.sock' },
      { host: 'localhost', path: '/tmp/x.sock' },
      { port: 1, endpoints: [{ host: '127.0.0.1', port: 1 }] },
      { path: '/tmp/x.sock', endpoints: [{ path: '/tmp/y.sock' }] },
    ];
    for (const options of cases) {
      let thrown: (Error & { code?: string }) | undefined;
      try {
        void connect(options as never).catch(() => {});
      } catch (error) {
        thrown = error as Error & { code?: string };
      }
      expect(thrown, JSON.stringify(options)).to.be.instanceOf(TypeError);
      expect(thrown!.code).to.equal('ERR_INVALID_ARG_VALUE');
      expect(thrown!.message).to.include('ambiguous');
    }
  });

  it("end() against a server that reads nothing: CLOSE_TIMEOUT says what it waited for and the server's count", async () => {
    // No 'connection' handler reads: the server never consumes, so it never acknowledges CLOSE.
    const { port } = await h().server({});
    const conn = await h().connect({ port, closeTimeout: 500 });
    for (let i = 0; i < 3; i++) await conn.send(new Uint8Array(8));
    const error = rejection(await within(observe(conn.end()), 10_000, 'end()'), 'end()');
    expect(error.code).to.equal('CLOSE_TIMEOUT');
    expect(error.message).to.include('the server did not acknowledge CLOSE within 500 ms');
    expect(error.message).to.include('it had reported 0 of the 3 messages sent consumed');

    // The server's own close deadline says the same from its side, and the client reads it.
    const { port: port2, connections } = await h().server({ closeTimeout: 500 });
    const patient = await h().connect({ port: port2, closeTimeout: 30_000 });
    for (let i = 0; i < 3; i++) await patient.send(new Uint8Array(8));
    const remote = rejection(await within(observe(patient.end()), 10_000, 'end()'), 'end()');
    expect(remote.code).to.equal('CLOSE_TIMEOUT');
    expect(remote.remote).to.equal(true);
    const local = rejection(
      await within(observe(connections[0]!.closed), 5000, 'server side'),
      'server side',
    );
    for (const message of [remote.message, local.message])
      expect(message).to.include(
        "the server did not finish within 500 ms of the client's CLOSE: its application consumed 0 of the 3 client messages and did not end its side",
      );
  });

  it("a server with no 'connection' listener refuses at once, saying why, and warns once", async () => {
    const { warnings, stop } = captureWarnings('HEARTWIRE_NO_HANDLER');
    const server = createServer();
    try {
      const { port } = await server.listen(0, '127.0.0.1');
      for (let i = 0; i < 2; i++) {
        const error = rejection(
          await within(observe(connect({ host: '127.0.0.1', port })), 5000, 'connect()'),
          'connect()',
        );
        expect(error.code).to.equal('CONNECT_FAILED');
        expect(error.message).to.include(
          "(peer closed with REFUSED: the server has no 'connection' handler)",
        );
        expect((error.cause as { code?: string }).code).to.equal('REFUSED');
      }
      await waitFor(() => warnings.length > 0, 2000, 'the warning');
      expect(warnings).to.have.length(1);
    } finally {
      stop();
      await server.close({ grace: 0 });
    }
  });

  it('send() after the connection failed rejects with the close error as its cause', async () => {
    let serverSide: Connection | undefined;
    const { port } = await h().server({}, (conn) => {
      serverSide = conn;
    });
    const client = await h().connect({ port });
    await waitFor(() => serverSide !== undefined, 5000, 'the server side');
    serverSide!.abort();
    const closeError = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'closed');
    let thrown: unknown;
    try {
      await client.send(new Uint8Array(8));
    } catch (error) {
      thrown = error;
    }
    expect((thrown as { code?: string }).code).to.equal('CONNECTION_CLOSED');
    expect((thrown as Error).cause).to.equal(closeError);
    expect((thrown as Error).message).to.include(String((closeError as { code?: string }).code));
  });
});
