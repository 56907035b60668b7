import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import type { Connection } from '../../src/node/connection.js';
import { createServer } from '../../src/node/server.js';
import type { Server } from '../../src/node/server.js';
import type { ServerOptions } from '../../src/node/options.js';
import { ConnectError } from '../../src/protocol/errors.js';
import { ReconnectingClient } from '../../src/node/reconnect.js';
import type { Disconnection, Move } from '../../src/node/reconnect.js';
import {
  codeOf,
  helloBytes,
  KiB,
  MiB,
  now,
  observe,
  pseudoRandomBytes,
  rejection,
  report,
  sha256,
  waitFor,
  within,
} from './helpers.js';
import { selfSignedCert } from '../helpers/child.js';

const SIZES = [0, 1, 64 * KiB, 1 * MiB];

describe('node transport: Unix domain sockets', function () {
  this.timeout(30_000);
  let dir: string;
  let n = 0;
  const cleanup: (() => Promise<unknown> | void)[] = [];
  const socketPath = (): string => path.join(dir, `s${n++}.sock`);

  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'heartwire-unix-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));
  afterEach(async () => {
    for (const step of cleanup.splice(0).reverse()) await Promise.resolve(step()).catch(() => {});
  });

  /** An echo server on a fresh Unix socket path. */
  async function echoServer(
    options: ServerOptions = {},
  ): Promise<{ server: Server; path: string; conns: Connection[] }> {
    const conns: Connection[] = [];
    const server = createServer(options, (conn) => {
      conns.push(conn);
      void conn.handle((message) => conn.send(message)).catch(() => {});
      conn.closed.catch(() => {});
    });
    cleanup.push(() => server.close({ grace: 200 }));
    const address = await server.listen({ path: socketPath() });
    return { server, path: address.path, conns };
  }

  it('round trip (0 B … 1 MiB both ways, checksums), RTT, clean end on both sides; the socket file goes at close()', async () => {
    const { server, path: where, conns } = await echoServer();
    expect(fs.statSync(where).isSocket()).to.equal(true);
    expect(server.address()).to.equal(undefined); // not a TCP address
    const t0 = now();
    const client = await connect({ path: where, idleTimeout: 1000 });
    const connectMs = now() - t0;
    cleanup.push(() => client.abort());
    const echoed: string[] = [];
    const reading = (async () => {
      for await (const message of client) {
        echoed.push(sha256(message));
        if (echoed.length === SIZES.length) return;
      }
    })();
    const sent = SIZES.map((size, i) => pseudoRandomBytes(size, i + 1));
    await Promise.all(sent.map((message) => client.send(message)));
    await within(reading, 10_000, 'the echoes');
    expect(echoed).to.deep.equal(sent.map((m) => sha256(m)));
    await waitFor(() => client.stats().smoothedRttMs !== undefined, 5000, 'an RTT sample');
    const rtt = client.stats().smoothedRttMs!;
    const [serverSide] = conns;
    const serverClosed = observe(serverSide!.closed);
    await within(client.end(), 5000, 'client end()');
    expect((await serverClosed).ok).to.equal(true);
    await server.close({ grace: 100 });
    expect(fs.existsSync(where)).to.equal(false);
    report(
      `Unix socket: connected in ${connectMs.toFixed(1)} ms; ${SIZES.length} messages up to 1 MiB echoed intact; RTT ${rtt.toFixed(2)} ms; clean end`,
    );
  });

  it('endpoints may be Unix paths: a missing one fails over to the next, and ConnectError names it', async () => {
    const { path: where } = await echoServer();
    const missing = path.join(dir, 'missing.sock');
    const client = await connect({ endpoints: [{ path: missing }, { path: where }], attemptStagger: 5000 });
    cleanup.push(() => client.abort());
    expect(client.state).to.equal('open');
    const outcome = await observe(connect({ endpoints: [{ path: missing }] }));
    const error = rejection(outcome, 'connect() to a missing path') as ConnectError;
    expect(error).to.be.instanceOf(ConnectError);
    expect(codeOf(error)).to.equal('CONNECT_FAILED');
    expect(error.attempts.map((a) => a.path)).to.deep.equal([missing]);
    expect(codeOf(error.attempts[0]!.error)).to.equal('ENOENT');
    expect(error.message).to.contain(missing);
  });

  it("ReconnectingClient across Unix sockets: 'moved' and 'disconnected' name unix:/path endpoints; never back to the server going away", async () => {
    const a = await echoServer();
    const b = await echoServer();
    const [atA, atB] = [`unix:${a.path}`, `unix:${b.path}`];
    // random 0: no jitter, and the shuffle reverses two entries (B's own path comes first below).
    const client = new ReconnectingClient({ path: a.path, idleTimeout: 1000, minDelay: 20, random: () => 0 });
    cleanup.push(() => client.close());
    const moves: Move[] = [];
    const ended: Disconnection[] = [];
    client.on('moved', (move) => moves.push(move));
    client.on('disconnected', (d) => ended.push(d));
    await within(client.connected(), 5000, 'connected to A');
    for (const conn of a.server.connections)
      void conn.end({ grace: 2000, alternatives: [atB] }).catch(() => {});
    await waitFor(() => moves.length === 1 && ended.length === 1, 5000, 'the move to B, then the end of A');
    expect(moves[0]).to.include({ from: 1, to: 2, viaAlternatives: true, endpoint: atB });
    expect(ended[0]).to.include({ generation: 1, replaced: true, endpoint: atA });
    // B names A and itself: it must not be picked again although it is still listening.
    for (const conn of b.server.connections)
      void conn.end({ grace: 2000, alternatives: [atA, atB] }).catch(() => {});
    await waitFor(
      () => moves.length === 2 && ended.length === 2,
      5000,
      'the move back to A, then the end of B',
    );
    expect(moves[1]).to.include({ from: 2, to: 3, viaAlternatives: true, endpoint: atA });
    expect(ended[1]).to.include({ generation: 2, replaced: true, endpoint: atB });
    expect([a.conns.length, b.conns.length], 'connections accepted by A and B').to.deep.equal([2, 1]);
  });

  it('a silent peer on a Unix socket is cut with HEARTBEAT_TIMEOUT at the idle timeout', async () => {
    const { path: address, conns } = await echoServer({
      idleTimeout: 500,
      clientIdleTimeoutRange: [100, 60_000],
    });
    // A raw peer completes the handshake (preamble + HELLO) and then says nothing, ever.
    const raw = net.connect({ path: address, allowHalfOpen: true });
    cleanup.push(() => void raw.destroy());
    raw.on('error', () => {});
    raw.on('data', () => {});
    await new Promise((resolve) => raw.once('connect', resolve));
    raw.write(helloBytes({ idleTimeoutMs: 500 }));
    await waitFor(() => conns.length === 1, 5000, 'the handshake');
    const silentSince = now();
    const outcome = await within(observe(conns[0]!.closed), 5000, 'the heartbeat deadline');
    const ms = outcome.at - silentSince;
    expect(codeOf(rejection(outcome, 'the silent connection'))).to.equal('HEARTBEAT_TIMEOUT');
    expect(ms).to.be.within(300, 2000);
    report(`Unix socket: silent peer cut with HEARTBEAT_TIMEOUT after ${ms.toFixed(0)} ms (idleTimeout 500)`);
  });

  it('TLS over a Unix socket: round trip and clean end', async function () {
    const certDir = fs.mkdtempSync(path.join(os.tmpdir(), 'heartwire-unix-tls-'));
    cleanup.push(() => fs.rmSync(certDir, { recursive: true, force: true }));
    const { keyFile, certFile, skipped } = selfSignedCert(certDir);
    if (skipped !== undefined) {
      console.log(`      (skipped: ${skipped})`);
      this.skip();
    }
    const key = fs.readFileSync(keyFile);
    const cert = fs.readFileSync(certFile);
    const { path: where } = await echoServer({ tls: { key, cert } });
    const client = await connect({
      path: where,
      tls: { ca: cert, checkServerIdentity: (_host, peer) => tls.checkServerIdentity('localhost', peer) },
    });
    cleanup.push(() => client.abort());
    const message = pseudoRandomBytes(256 * KiB, 7);
    const echoed = (async () => {
      for await (const received of client) return sha256(received);
      return undefined;
    })();
    await client.send(message);
    expect(await within(echoed, 10_000, 'the echo')).to.equal(sha256(message));
    await within(client.end(), 5000, 'client end()');
  });
});

describe('node transport: server.listen() keeps its TCP form', () => {
  it('listen(port, host) still resolves to the TCP address', async () => {
    const server = createServer();
    try {
      const address = await server.listen(0, '127.0.0.1');
      expect(address.port).to.be.above(0);
      expect(server.address()?.port).to.equal(address.port);
    } finally {
      await server.close({ grace: 0 });
    }
  });
});

describe('node transport: server.listen() takes a port or { path }, never a bare string as a path', () => {
  it("listen('abc') throws ERR_INVALID_ARG_VALUE naming { path } and creates no socket file", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'hw-listen-'));
    const cwd = process.cwd();
    const server = createServer();
    try {
      const loose = server as unknown as { listen: (...args: unknown[]) => Promise<unknown> };
      const thrown = (() => {
        process.chdir(dir); // a relative socket path would be created here
        try {
          void loose.listen('abc').catch(() => {});
        } catch (error) {
          return error as Error & { code?: string };
        } finally {
          process.chdir(cwd); // at once: nothing else runs while the directory is changed
        }
        return undefined;
      })();
      await new Promise((resolve) => setTimeout(resolve, 100)); // a listen would have bound by now
      expect(thrown, "listen('abc') throws").to.be.instanceOf(TypeError);
      expect(thrown!.code).to.equal('ERR_INVALID_ARG_VALUE');
      expect(thrown!.message).to.include('listen({ path: "abc" })');
      expect(fs.readdirSync(dir), 'no socket file').to.deep.equal([]);
      // A port given as a string of digits is a port; other bad arguments throw synchronously too.
      for (const [args, code] of [
        [[70_000], 'ERR_OUT_OF_RANGE'],
        [['-1'], 'ERR_INVALID_ARG_VALUE'],
        [[true], 'ERR_INVALID_ARG_TYPE'],
        [[{ port: 80 }], 'ERR_INVALID_ARG_VALUE'],
        [[{ path: 'x', host: 'h' }], 'ERR_INVALID_ARG_VALUE'],
        [[0, 42], 'ERR_INVALID_ARG_TYPE'],
      ] as const) {
        expect(() => loose.listen(...args), JSON.stringify(args))
          .to.throw()
          .with.property('code', code);
      }
      const address = (await server.listen('0', '127.0.0.1')) as { port: number };
      expect(address.port).to.be.above(0);
    } finally {
      await server.close({ grace: 0 });
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
