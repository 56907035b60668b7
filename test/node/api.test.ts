/**
 * The public API never crashes its caller's process (issue 10, A and E): connection handlers
 * owned by the server, end()/abort() inside event handlers after the engine closed, option
 * validation, listen() errors, payload types, typed errors with causes.
 */
import diagnostics_channel from 'node:diagnostics_channel';
import net from 'node:net';
import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import { Server, createServer } from '../../src/node/server.js';
import type { Disconnection } from '../../src/node/reconnect.js';
import { encodeControlFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import type { Welcome } from '../../src/protocol/frames.js';
import { HandlerError } from '../../src/protocol/errors.js';
import type { Connection } from '../../src/node/connection.js';
import type { CloseInfo } from '../../src/protocol/types.js';
import {
  LOCALHOST,
  captureWarnings,
  codeOf,
  report,
  helloBytes,
  observe,
  rejection,
  useHarness,
  waitFor,
  within,
} from './helpers.js';
import type { Harness, RawPeer } from './helpers.js';
import { runModule } from '../helpers/run-module.js';

describe('node API: the server owns its connection handlers (A1)', function () {
  this.timeout(30_000);
  const h = useHarness();
  /** A server whose handler is a direct `'connection'` listener (the harness's own wraps it). */
  async function serve(handler: (conn: Connection) => unknown): Promise<{ server: Server; port: number }> {
    const served = await h().server({});
    served.server.on('connection', handler);
    return served;
  }

  it('a handler that throws: the connection is aborted with HandlerError, reported, generic reason on the wire', async () => {
    const { server, port } = await serve(() => {
      throw new Error('secret detail of a bug');
    });
    const reported: [HandlerError, Connection | undefined][] = [];
    server.on('handler-error', (error, connection) => reported.push([error, connection]));
    const client = await h().connect({ port });
    const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
    expect(codeOf(error)).to.equal('INTERNAL_ERROR');
    expect(error.remote).to.equal(true);
    expect(error.message).to.not.include('secret');
    await waitFor(() => reported.length === 1, 5000, 'handler-error');
    const [failure, connection] = reported[0]!;
    expect(failure).to.be.instanceOf(HandlerError);
    expect(failure.code).to.equal('INTERNAL_ERROR');
    expect((failure.cause as Error).message).to.equal('secret detail of a bug');
    const serverClosed = rejection(await observe(connection!.closed), 'server side');
    expect(serverClosed).to.equal(failure);
  });

  it('an async handler rejecting with something else: aborted and reported', async () => {
    const { server, port } = await serve(async (conn) => {
      for await (const _message of conn) throw new TypeError('handler bug');
    });
    const reported: HandlerError[] = [];
    server.on('handler-error', (error) => reported.push(error));
    const client = await h().connect({ port });
    await client.send(new Uint8Array(10));
    const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
    expect(codeOf(error)).to.equal('INTERNAL_ERROR');
    await waitFor(() => reported.length === 1, 5000, 'handler-error');
    expect(reported[0]!.cause).to.be.instanceOf(TypeError);
  });

  it("an async handler rejecting with the connection's own close error: swallowed, nothing reported", async () => {
    let handlerOutcome: unknown;
    const { server, port } = await serve(async (conn) => {
      try {
        for await (const message of conn) await conn.send(message);
      } catch (error) {
        handlerOutcome = error;
        throw error;
      }
    });
    const reported: HandlerError[] = [];
    server.on('handler-error', (error) => reported.push(error));
    const warnings: Error[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(w);
    };
    process.on('warning', onWarning);
    try {
      const client = await h().connect({ port });
      client.write(new Uint8Array(100));
      client.abort();
      await waitFor(() => handlerOutcome !== undefined, 5000, 'the handler to reject');
      await new Promise((resolve) => setTimeout(resolve, 100));
      expect(codeOf(handlerOutcome)).to.equal('CANCELLED');
      expect(reported).to.deep.equal([]);
      expect(warnings.filter((w) => /handler/.test(w.message))).to.deep.equal([]);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('without a handler-error listener: one process warning, no crash', async () => {
    const { port } = await serve(async () => {
      await Promise.resolve();
      throw new Error('boom');
    });
    const { warnings, stop } = captureWarnings('HEARTWIRE_HANDLER_ERROR');
    try {
      for (let i = 0; i < 3; i++) {
        const client = await h().connect({ port });
        const error = rejection(await within(observe(client.closed), 10_000, 'client closed'), 'client');
        expect(codeOf(error)).to.equal('INTERNAL_ERROR');
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(warnings.length, 'warnings printed').to.equal(1);
    } finally {
      stop();
    }
  });
});

/** A hostile heartwire server on a raw socket: answers HELLO with WELCOME, then runs `script`. */
async function rawServer(
  h: () => Harness,
  script: (socket: net.Socket) => void,
  welcome: Partial<Welcome> = {},
): Promise<number> {
  const server = net.createServer({ allowHalfOpen: true }, (socket) => {
    socket.on('error', () => {});
    let received = 0;
    socket.on('data', (chunk: Buffer) => {
      received += chunk.length;
      if (received > 0 && !answered) {
        answered = true;
        socket.write(
          Buffer.concat([
            PREAMBLE,
            encodeControlFrame({
              type: FrameType.WELCOME,
              welcome: {
                version: 1,
                extensions: [],
                idleTimeoutMs: 10_000,
                initialCredit: 1024,
                maxFramePayload: 65_536,
                maxMessageSize: 1_000_000,
                clientIdleTimeoutMs: 10_000,
                applicationProtocol: '',
                ...welcome,
              },
            }),
          ]),
        );
        script(socket);
      }
    });
    let answered = false;
  });
  await new Promise<void>((resolve) => server.listen(0, LOCALHOST, resolve));
  h().defer(() => new Promise<void>((resolve) => server.close(() => resolve())));
  h().defer(() => {
    for (const socket of sockets) socket.destroy();
  });
  const sockets: net.Socket[] = [];
  server.on('connection', (socket) => sockets.push(socket));
  return (server.address() as net.AddressInfo).port;
}

const goAwayAndError = (): Buffer =>
  Buffer.concat([
    encodeControlFrame({
      type: FrameType.GOAWAY,
      goAway: {
        graceMs: 1000,
        reason: 1,
        consumedMessages: 0,
        retryAfterMs: 0,
        doNotReconnect: true,
        message: 'bye',
      },
    }),
    encodeControlFrame({
      type: FrameType.ERROR,
      error: { code: 13, message: 'gone', consumedMessages: 0, deliveredMessages: 0 },
    }),
  ]);

describe('node API: end()/abort() never throw, even for events dispatched after the close (A2)', function () {
  this.timeout(30_000);
  const h = useHarness();

  it("client: GOAWAY and ERROR in one read while write() has queued messages; end() on 'goaway'", async () => {
    let sendTrigger!: () => void;
    const trigger = new Promise<void>((resolve) => (sendTrigger = resolve));
    const port = await rawServer(h, (socket) => void trigger.then(() => socket.write(goAwayAndError())));
    const conn = await h().connect({ port, maxSendQueue: 1024 });
    let queued = 0;
    for (let i = 0; i < 10 && queued === 0; i++) if (!conn.write(new Uint8Array(4000))) queued++;
    expect(queued, 'writes that returned false (queued)').to.be.greaterThan(0);
    const calls: { threw: unknown; result: Promise<unknown> | undefined }[] = [];
    conn.on('goaway', () => {
      let result: Promise<unknown> | undefined;
      let threw: unknown;
      try {
        result = conn.end();
        conn.abort();
      } catch (error) {
        threw = error;
      }
      calls.push({ threw, result });
    });
    sendTrigger();
    const closed = await within(observe(conn.closed), 10_000, 'closed');
    expect(calls.length, 'goaway events').to.equal(1);
    expect(calls[0]!.threw, 'end() threw').to.equal(undefined);
    expect(calls[0]!.result, 'end() returns closed').to.equal(conn.closed);
    expect(codeOf(rejection(closed, 'closed'))).to.equal('CANCELLED');
  });

  it("server: the client's CLOSE and ERROR in one write while the server's write() has queued messages; end() on 'peer-closed'", async () => {
    const { server, port } = await h().server({ maxSendQueue: 1024 });
    const calls: { threw: unknown; result: Promise<unknown> | undefined }[] = [];
    let queued = 0;
    let serverConn: Connection | undefined;
    server.on('connection', (conn) => {
      serverConn = conn;
      for (let i = 0; i < 10 && queued === 0; i++) if (!conn.write(new Uint8Array(4000))) queued++;
      conn.on('peer-closed', () => {
        let result: Promise<unknown> | undefined;
        let threw: unknown;
        try {
          result = conn.end();
        } catch (error) {
          threw = error;
        }
        calls.push({ threw, result });
      });
    });
    const raw = h().raw(port);
    await raw.connected;
    raw.write(helloBytes({ initialCredit: 1024 }));
    await raw.waitForFrame(FrameType.WELCOME, 5000);
    await waitFor(() => serverConn !== undefined, 5000, 'the server connection');
    expect(queued, 'server writes that returned false (queued)').to.be.greaterThan(0);
    raw.write(
      Buffer.concat([
        encodeControlFrame({ type: FrameType.CLOSE, close: { sentMessages: 0, consumedMessages: 0 } }),
        encodeControlFrame({
          type: FrameType.ERROR,
          error: { code: 13, message: 'gone', consumedMessages: 0, deliveredMessages: 0 },
        }),
      ]),
    );
    const closed = await within(observe(serverConn!.closed), 10_000, 'server closed');
    expect(calls.length, 'peer-closed events').to.equal(1);
    expect(calls[0]!.threw, 'end() threw').to.equal(undefined);
    expect(calls[0]!.result).to.equal(serverConn!.closed);
    expect(codeOf(rejection(closed, 'closed'))).to.equal('CANCELLED');
  });

  it("ReconnectingClient's own GOAWAY handling: GOAWAY + ERROR in one read with queued writes", async () => {
    const port = await rawServer(h, (socket) => setTimeout(() => socket.write(goAwayAndError()), 100));
    const client = new ReconnectingClient({ host: LOCALHOST, port, maxSendQueue: 1024, maxAttempts: 1 });
    h().defer(() => client.close());
    client.on('connected', (conn) => {
      for (let i = 0; i < 10; i++) if (!conn.write(new Uint8Array(4000))) break;
    });
    const stopped = new Promise((resolve) => client.once('stopped', resolve));
    const disconnected = await within(
      new Promise<Disconnection>((resolve) => client.once('disconnected', resolve)),
      10_000,
      'disconnected',
    );
    expect(codeOf(disconnected.error)).to.equal('CANCELLED');
    await within(stopped, 10_000, 'stopped (the server said doNotReconnect)');
  });
});

describe('node API: options are validated synchronously, naming the option (A3)', () => {
  const timeBad = ['1000', -1, Number.NaN, 0, Number.POSITIVE_INFINITY];
  const sizeBad = ['65536', -1, Number.NaN, 0, Number.POSITIVE_INFINITY, 1.5];
  const zeroOk = ['10', -1, Number.NaN, Number.POSITIVE_INFINITY];
  const common: Record<string, unknown[]> = {
    idleTimeout: [...timeBad, 50, 86_400_001],
    receiveWindow: [...sizeBad, 1000],
    initialReceiveWindow: [...sizeBad, 1000],
    maxMessageSize: sizeBad,
    maxFramePayload: [...sizeBad, 1023],
    maxSendQueue: sizeBad,
    handshakeTimeout: timeBad,
    closeTimeout: timeBad,
    writeStallTimeout: zeroOk,
    creditStallTimeout: zeroOk,
    socketBufferTarget: sizeBad,
    applicationProtocols: ['x', [1]],
    memoryBudget: [1, {}],
    signal: ['abort', {}],
  };
  const connectOnly: Record<string, unknown[]> = {
    port: ['8080', -1, Number.NaN, 0, Number.POSITIVE_INFINITY, 65_536],
    host: [5, ''],
    endpoints: [[], [{ host: 'h', port: '1' }], 'h:1'],
    connectTimeout: timeBad,
    attemptStagger: zeroOk,
    tls: ['yes'],
    localAddress: [1],
  };
  const serverOnly: Record<string, unknown[]> = {
    maxConnections: ['10', -1, Number.NaN, 1.5],
    defaultGrace: zeroOk,
    clientIdleTimeoutRange: ['x', [1000], [5000, 1000], [0, 1000]],
    tls: ['yes'],
    alternatives: [
      'h:1',
      [1],
      ['h'],
      ['tcp://h:1'],
      ['h:0'],
      Array.from({ length: 9 }, (_, i) => `h:${i + 1}`),
    ],
  };
  const reconnectOnly: Record<string, unknown[]> = {
    minDelay: zeroOk,
    maxDelay: zeroOk,
    stableAfter: zeroOk,
    maxAttempts: ['3', -1, Number.NaN, 0, 1.5],
    endOnGoAway: ['yes'],
    random: [0.5],
  };
  const apis: [string, (options: Record<string, unknown>) => unknown, Record<string, unknown[]>][] = [
    ['connect()', (o) => connect({ port: 1, ...o }), { ...common, ...connectOnly }],
    ['createServer()', (o) => createServer(o), { ...common, ...serverOnly }],
    [
      'new ReconnectingClient()',
      (o) => new ReconnectingClient({ port: 1, maxAttempts: 1, ...o }),
      { ...common, ...connectOnly, ...reconnectOnly },
    ],
  ];
  for (const [api, call, table] of apis) {
    it(`${api}: every bad value throws TypeError ERR_INVALID_ARG_TYPE or RangeError ERR_OUT_OF_RANGE at once`, () => {
      let cases = 0;
      for (const [option, values] of Object.entries(table)) {
        for (const value of values) {
          let thrown: unknown;
          let result: unknown;
          try {
            result = call({ [option]: value });
          } catch (error) {
            thrown = error;
          }
          if (result instanceof Promise) result.catch(() => {});
          if (result instanceof ReconnectingClient) void result.close();
          if (result instanceof Server) void result.close();
          const what = `${api} { ${option}: ${typeof value === 'string' ? `'${value}'` : (JSON.stringify(value) ?? String(value))} }`;
          expect(thrown, `${what} did not throw synchronously`).to.be.instanceOf(Error);
          const error = thrown as Error & { code?: string };
          if (error instanceof TypeError) expect(error.code, what).to.equal('ERR_INVALID_ARG_TYPE');
          else {
            expect(error, what).to.be.instanceOf(RangeError);
            expect(error.code, what).to.equal('ERR_OUT_OF_RANGE');
          }
          if (typeof value === 'string' && option !== 'host' && option !== 'localAddress')
            expect(error, `${what}: a string is a type error`).to.be.instanceOf(TypeError);
          expect(error.message, `${what}: the message names the option`).to.include(option);
          cases++;
        }
      }
      expect(cases).to.be.greaterThan(50);
    });
  }

  it('valid edge values are accepted (0 where it means "off", Infinity where it means "no limit")', async () => {
    const server = createServer({ maxConnections: 0, defaultGrace: 0, writeStallTimeout: 0 });
    await server.close();
    const unlimited = createServer({ maxConnections: Number.POSITIVE_INFINITY });
    await unlimited.close();
    const client = new ReconnectingClient({
      port: 1,
      maxAttempts: Number.POSITIVE_INFINITY,
      minDelay: 0,
      creditStallTimeout: 0,
      attemptStagger: 0,
    });
    await client.close();
    await connect({ port: 1, writeStallTimeout: 0 }).catch(() => undefined);
  });

  it('connect() without port or endpoints throws a TypeError', () => {
    expect(() => connect({} as never)).to.throw(TypeError, /port/);
  });
});

describe('node API: server.listen() and server.close() (A4, D14)', function () {
  this.timeout(60_000);
  const h = useHarness();

  it('await server.listen(busyPort) in try/catch: a rejection only, no crash (A4)', async () => {
    const { port } = await h().server({});
    const result = await runModule(
      `import { createServer } from 'heartwire';
       const server = createServer(() => {});
       try {
         await server.listen(${port}, '127.0.0.1');
         console.log('listening?');
       } catch (error) {
         console.log('caught', (error as NodeJS.ErrnoException).code);
       }
       await new Promise((resolve) => setTimeout(resolve, 200));
       console.log('alive');`,
      { timeout: 30_000 },
    );
    expect(result.stdout, result.stderr).to.equal('caught EADDRINUSE\nalive\n');
    expect(result.code).to.equal(0);
  });

  it('in process too: listen() on a busy port rejects and emits no error event', async () => {
    const { port } = await h().server({});
    const server = createServer();
    const errors: Error[] = [];
    server.on('error', (error) => errors.push(error));
    const outcome = await observe(server.listen(port, LOCALHOST));
    expect(codeOf(rejection(outcome, 'listen'))).to.equal('EADDRINUSE');
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(errors).to.deep.equal([]);
    await server.close();
  });

  it('await server.close() after a refused connection (maxConnections: 0) settles; the process exits 0 (D14)', async () => {
    const result = await runModule(
      `import { createServer, connect } from 'heartwire';
       const server = createServer({ maxConnections: 0 }, () => {});
       const { port } = await server.listen(0, '127.0.0.1');
       try {
         await connect({ host: '127.0.0.1', port });
       } catch (error) {
         console.log('connect', (error as { code?: string }).code);
       }
       const t0 = performance.now();
       await server.close();
       console.log('closed in', Math.round(performance.now() - t0), 'ms');`,
      { timeout: 30_000 },
    );
    expect(result.code, `exit code (13: the close never settled); stderr:\n${result.stderr}`).to.equal(0);
    const ms = Number(/closed in (\d+) ms/.exec(result.stdout)?.[1]);
    expect(ms, result.stdout).to.be.lessThan(3000);
    report(`server.close() after a refused connection settled in ${ms} ms (exit code ${result.code})`);
  });
});

describe('node API: silent sockets do not keep handshaking clients out (C10)', function () {
  this.timeout(60_000);
  const h = useHarness();

  it('50 slots held by silent sockets: legitimate connects still succeed; handshaken connections are never evicted', async () => {
    const slots = 50;
    const { server, port } = await h().server({ maxConnections: slots, handshakeTimeout: 20_000 });
    let refused = 0;
    server.on('refused', () => refused++);
    const silent: RawPeer[] = [];
    for (let i = 0; i < slots; i++) silent.push(h().raw(port));
    await Promise.all(silent.map((r) => r.connected));
    await waitFor(() => server.connections.size === slots, 10_000, 'every slot taken by a silent socket');

    const legit: Connection[] = [];
    const times: number[] = [];
    for (let i = 0; i < 10; i++) {
      const t0 = performance.now();
      legit.push(await within(h().connect({ port }), 10_000, `legitimate connect ${i}`));
      times.push(performance.now() - t0);
    }
    await waitFor(() => silent.filter((r) => r.ended).length >= 10, 10_000, 'evicted sockets ended');
    expect(server.connections.size).to.be.at.most(slots);
    expect(refused, 'silent sockets evicted').to.equal(10);

    // Fill every slot with handshaken connections: now a newcomer is refused, nobody evicted.
    const more = await Promise.all(
      Array.from({ length: slots - legit.length }, () => within(h().connect({ port }), 20_000, 'fill')),
    );
    const handshaken = [...legit, ...more];
    await waitFor(() => silent.every((r) => r.ended), 10_000, 'every silent socket evicted');
    const outcome = await observe(h().connect({ port }));
    expect(codeOf(rejection(outcome, 'the connect beyond maxConnections'))).to.equal('CONNECT_FAILED');
    expect(String((outcome as { error: Error }).error.message)).to.include('REFUSED');
    expect(
      handshaken.every((c) => c.state === 'open'),
      'handshaken connections still open',
    ).to.equal(true);
    report(
      `maxConnections ${slots}, all held by silent sockets: 10 of 10 legitimate connects accepted (median ${Math.round(
        times.sort((a, b) => a - b)[5]!,
      )} ms, max ${Math.round(times.at(-1)!)} ms), 10 silent sockets evicted; with ${slots} handshaken connections the next connect is refused`,
    );
  });
});

describe('node API: payloads are bytes, a string is UTF-8, anything else a TypeError (A5)', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('every ArrayBufferView, ArrayBuffer and string arrives as its bytes; other values throw synchronously', async () => {
    const received: Uint8Array[] = [];
    const { server, port } = await h().server({});
    server.on('connection', (conn) => {
      void (async () => {
        for await (const message of conn) received.push(message.slice());
      })().catch(() => {});
    });
    const client = await h().connect({ port });
    const backing = new ArrayBuffer(16);
    new Uint8Array(backing).set([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]);
    const cases: [string, unknown, number[]][] = [
      ['a string (UTF-8)', 'héllo', [...new TextEncoder().encode('héllo')]],
      ['a Uint16Array', Uint16Array.of(1, 0x0203), [1, 0, 3, 2]],
      ['a DataView on part of a buffer', new DataView(backing, 4, 3), [4, 5, 6]],
      ['an ArrayBuffer', backing.slice(0, 2), [0, 1]],
      ['a Float32Array subarray', new Float32Array(backing).subarray(1, 2), [4, 5, 6, 7]],
      ['a Buffer', Buffer.from([9, 8, 7]), [9, 8, 7]],
      ['an empty string', '', []],
    ];
    for (const [, payload] of cases) await client.send(payload as never);
    client.write('by write()' as never);
    const bad: unknown[] = [42, {}, [1, 2, 3], null, undefined, true, Symbol('x'), () => 1];
    let thrown = 0;
    for (const value of bad) {
      for (const call of [() => client.write(value as never), () => client.send(value as never)]) {
        try {
          const result = call();
          if (result instanceof Promise) result.catch(() => {});
          expect.fail(`${String(value)} was accepted`);
        } catch (error) {
          expect(error, String(value)).to.be.instanceOf(TypeError);
          expect((error as { code?: string }).code).to.equal('ERR_INVALID_ARG_TYPE');
          thrown++;
        }
      }
    }
    expect(thrown).to.equal(bad.length * 2);
    expect(Number.isFinite(client.stats().sendCredit), 'sendCredit').to.equal(true);
    await waitFor(() => received.length === cases.length + 1, 10_000, 'every message');
    cases.forEach(([what, , bytes], i) => expect([...received[i]!], what).to.deep.equal(bytes));
    expect(new TextDecoder().decode(received[cases.length])).to.equal('by write()');
    const info = await within(client.end(), 10_000, 'a clean end');
    expect(info.clean).to.equal(true);
    expect(info.delivery.queued).to.equal(cases.length + 1);
  });
});

describe('node API: ReconnectingClient.connected() (D13)', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('rejects when the client stops (maxAttempts reached), pending callers too', async () => {
    const client = new ReconnectingClient({ host: LOCALHOST, port: 1, maxAttempts: 2, minDelay: 10 });
    h().defer(() => client.close());
    const pending = observe(client.connected());
    const stopped = new Promise((resolve) => client.once('stopped', resolve));
    await within(stopped, 10_000, 'stopped');
    const outcome = await within(pending, 5000, 'the pending connected() to settle');
    const error = rejection(outcome, 'connected() while stopping');
    expect(codeOf(error)).to.equal('CONNECTION_CLOSED');
    expect(codeOf((error as Error).cause)).to.equal('CONNECT_FAILED');
    expect(codeOf(rejection(await observe(client.connected()), 'connected() after'))).to.equal(
      'CONNECTION_CLOSED',
    );
  });

  it('rejects after close()', async () => {
    const { port } = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const client = new ReconnectingClient({ host: LOCALHOST, port, idleTimeout: 1000 });
    await within(client.connected(), 10_000, 'connected');
    await client.close();
    expect(codeOf(rejection(await observe(client.connected()), 'connected() after close()'))).to.equal(
      'CONNECTION_CLOSED',
    );
  });

  it('never hands out a connection that is draining after GOAWAY', async () => {
    const { server, port } = await h().server({});
    const client = new ReconnectingClient({
      host: LOCALHOST,
      port,
      idleTimeout: 1000,
      endOnGoAway: false,
      minDelay: 10,
    });
    h().defer(() => client.close());
    const first = await within(client.connected(), 10_000, 'connected');
    const goaway = new Promise((resolve) => first.once('goaway', resolve));
    for (const conn of server.connections) void conn.end({ grace: 300 }).catch(() => {});
    await within(goaway, 5000, 'goaway');
    const next = await within(client.connected(), 10_000, 'the next connection');
    expect(next, 'connected() after GOAWAY').to.not.equal(first);
    expect(next.state).to.equal('open');
  });
});

describe('node API: errors say what happened (E)', function () {
  this.timeout(30_000);
  const h = useHarness();

  it('an AbortSignal abort: name AbortError, code CANCELLED, cause = signal.reason (connect and open connection)', async () => {
    const { port } = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const reason = new Error('user pressed stop');
    const early = rejection(await observe(connect({ port, signal: AbortSignal.abort(reason) })), 'connect');
    expect(early.name).to.equal('AbortError');
    expect(codeOf(early)).to.equal('CANCELLED');
    expect(early.cause).to.equal(reason);
    const controller = new AbortController();
    const conn = await h().connect({ port, signal: controller.signal });
    controller.abort(reason);
    const closed = rejection(await within(observe(conn.closed), 5000, 'closed'), 'closed');
    expect(closed.name).to.equal('AbortError');
    expect(codeOf(closed)).to.equal('CANCELLED');
    expect(closed.cause).to.equal(reason);
  });

  it('a second handle(): HANDLE_ALREADY_RUNNING; a throwing handler: INTERNAL_ERROR, original as cause, generic reason to the peer', async () => {
    let serverConn: Connection | undefined;
    let second: unknown;
    const { port } = await h().server({}, (c) => {
      serverConn = c;
      void c
        .handle(() => {
          throw new RangeError('private detail');
        })
        .catch(() => {});
      c.handle(() => {}).catch((error: unknown) => (second = error));
    });
    const client = await h().connect({ port });
    await client.send(new Uint8Array(3));
    const remote = rejection(await within(observe(client.closed), 5000, 'client closed'), 'client');
    expect(codeOf(remote)).to.equal('INTERNAL_ERROR');
    expect(remote.message).to.not.include('private detail');
    const local = rejection(await observe(serverConn!.closed), 'server side');
    expect(local).to.be.instanceOf(HandlerError);
    expect(local.cause).to.be.instanceOf(RangeError);
    expect(codeOf(second)).to.equal('HANDLE_ALREADY_RUNNING');
  });

  it('the message counter limit: LIMIT_REACHED', async () => {
    const { port } = await h().server({}, (c) => void c.handle(() => {}).catch(() => {}));
    const conn = await h().connect({ port });
    (conn as unknown as { engine: { send: { queuedCount: number } } }).engine.send.queuedCount =
      Number.MAX_SAFE_INTEGER;
    expect(() => conn.write(new Uint8Array(1)))
      .to.throw()
      .with.property('code', 'LIMIT_REACHED');
  });

  it('a server that does not speak heartwire: PROTOCOL_MISMATCH, not CONNECT_FAILED', async () => {
    const sockets: net.Socket[] = [];
    const http = net.createServer((socket) => {
      sockets.push(socket);
      socket.on('error', () => {});
      socket.end('HTTP/1.1 400 Bad Request\r\n\r\n');
    });
    h().defer(() => sockets.forEach((s) => s.destroy()));
    await new Promise<void>((resolve) => http.listen(0, LOCALHOST, resolve));
    h().defer(() => new Promise<void>((resolve) => http.close(() => resolve())));
    const error = rejection(
      await observe(connect({ host: LOCALHOST, port: (http.address() as net.AddressInfo).port })),
      'connect',
    );
    expect(codeOf(error)).to.equal('PROTOCOL_MISMATCH');
    expect(codeOf(error.cause)).to.equal('PROTOCOL_MISMATCH');
  });

  it('a TLS client talking to a plain server: both sides hint at TLS', async () => {
    const closes: Error[] = [];
    const { server, port } = await h().server({});
    // The server-side connection closes before the handshake: watch every close in the process
    // (diagnostics channel) rather than polling server.connections, which can miss it.
    const seen = new Promise<void>((resolve) => {
      const onClose = (message: unknown): void => {
        const { connection, info } = message as { connection: Connection; info: CloseInfo };
        if (connection.role !== 'server' || !server.connections.has(connection)) return;
        if (info.error !== undefined) closes.push(info.error);
        resolve();
      };
      diagnostics_channel.subscribe('heartwire:connection:close', onClose);
      h().defer(() => diagnostics_channel.unsubscribe('heartwire:connection:close', onClose));
    });
    const error = rejection(
      await observe(
        connect({ host: LOCALHOST, port, tls: { rejectUnauthorized: false }, connectTimeout: 5000 }),
      ),
      'connect',
    );
    expect(error.message, error.message).to.match(/connect without tls/);
    await within(seen, 5000, 'the server-side close');
    expect(codeOf(closes[0])).to.equal('PROTOCOL_MISMATCH');
    expect(closes[0]!.message).to.match(/speaks TLS/);
  });

  it('durations in messages are whole milliseconds', async () => {
    const { server, port } = await h().server({ idleTimeout: 500 });
    const raw = h().raw(port);
    await raw.connected;
    raw.write(helloBytes({ idleTimeoutMs: 60_000 }));
    await waitFor(() => server.connections.size === 1, 5000, 'the connection');
    const [conn] = [...server.connections];
    const error = rejection(await within(observe(conn!.closed), 10_000, 'heartbeat timeout'), 'closed');
    expect(codeOf(error)).to.equal('HEARTBEAT_TIMEOUT');
    expect(error.message).to.match(/ \d+ ms/);
  });
});
