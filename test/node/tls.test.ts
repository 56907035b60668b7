import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type net from 'node:net';
import tls from 'node:tls';
import { expect } from 'chai';
import { connect } from '../../src/node/connect.js';
import type { Connection } from '../../src/node/connection.js';
import type { Server } from '../../src/node/server.js';
import type { ConnectError } from '../../src/protocol/errors.js';
import {
  codeOf,
  expectKeptMessagesIntact,
  KiB,
  LOCALHOST,
  MiB,
  now,
  observe,
  pseudoRandomBytes,
  rejection,
  report,
  sha256,
  sleep,
  useHarness,
  waitFor,
  within,
} from './helpers.js';
import { selfSignedCert } from '../helpers/child.js';

const SIZES = [0, 1, 64 * KiB, 1 * MiB];

describe('node transport: TLS', function () {
  this.timeout(30_000);
  let dir: string | undefined;
  let key: Buffer;
  let cert: Buffer;

  before(function () {
    this.timeout(20_000);
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'heartwire-tls-'));
    const { keyFile, certFile, skipped } = selfSignedCert(dir);
    if (skipped !== undefined) {
      console.log(`      (skipped: ${skipped})`);
      this.skip();
    }
    key = fs.readFileSync(keyFile);
    cert = fs.readFileSync(certFile);
  });

  after(() => {
    if (dir !== undefined) fs.rmSync(dir, { recursive: true, force: true });
  });

  const h = useHarness();

  async function tlsServer(options: { handshakeTimeout?: number } = {}): Promise<{
    server: Server;
    port: number;
    received: string[];
    connections: Connection[];
  }> {
    const received: string[] = [];
    const { server, port, connections } = await h().server(
      { tls: { key, cert }, ...options },
      (connection) => {
        void connection
          .handle(async (message) => {
            received.push(sha256(message));
            await connection.send(message);
          })
          .catch(() => {});
      },
    );
    // Test-only: the raw TCP sockets of the (private) listener, so that a test exposing a leak can
    // still clean up after itself and not fail the hooks of the tests that follow.
    const listener = (server as unknown as { listener: net.Server }).listener;
    const sockets = new Set<net.Socket>();
    listener.on('connection', (socket: net.Socket) => {
      sockets.add(socket);
      socket.once('close', () => sockets.delete(socket));
    });
    h().defer(() => {
      for (const socket of sockets) socket.destroy();
    });
    return { server, port, received, connections };
  }

  /** The certificate is for CN=localhost; we connect to 127.0.0.1 and check the name ourselves. */
  const verifyAsLocalhost = (_host: string, peer: tls.PeerCertificate): Error | undefined =>
    tls.checkServerIdentity('localhost', peer);

  it('round trip (0 B … 1 MiB both ways, checksums), RTT, clean close', async () => {
    const { port, received, connections } = await tlsServer();
    const t0 = now();
    const client = await h().connect({ port, tls: { ca: cert, checkServerIdentity: verifyAsLocalhost } });
    const connectMs = now() - t0;
    const messages = SIZES.map((size, i) => pseudoRandomBytes(size, 77 + i));
    const echoed: string[] = [];
    const reading = observe(
      (async () => {
        for await (const message of client) echoed.push(sha256(message));
      })(),
    );
    for (const message of messages) await within(client.send(message), 10_000, 'send()');
    const expected = messages.map((m) => sha256(m));
    await waitFor(() => echoed.length === messages.length, 10_000, 'every echo');
    expect(received).to.deep.equal(expected);
    expect(echoed).to.deep.equal(expected);
    await waitFor(() => client.stats().rttMs !== undefined, 5000, 'an RTT sample');
    const closed = await within(observe(client.end()), 10_000, 'clean close');
    expect(closed.ok).to.equal(true);
    expect((await observe(connections[0]!.closed)).ok).to.equal(true);
    expect((await reading).ok).to.equal(true);
    report(
      `TLS: connected (TCP + TLS + handshake) in ${connectMs.toFixed(0)} ms; RTT ${client.stats().rttMs} ms; clean close`,
    );
  });

  it('received messages kept without copying stay intact over TLS (read buffers never reused)', async () => {
    await expectKeptMessagesIntact(
      h(),
      { tls: { key, cert } },
      { tls: { ca: cert, checkServerIdentity: verifyAsLocalhost } },
    );
  });

  it('a client that does not trust the certificate fails with CONNECT_FAILED and the TLS cause', async () => {
    const { port } = await tlsServer();
    const outcome = await observe(connect({ host: LOCALHOST, port, tls: true, connectTimeout: 5000 }));
    const error = rejection(outcome, 'connect()') as ConnectError;
    expect(codeOf(error)).to.equal('CONNECT_FAILED');
    expect(codeOf(error.attempts[0]!.error)).to.equal('DEPTH_ZERO_SELF_SIGNED_CERT');
  });

  it('releases the server-side socket of a client whose TLS handshake failed (server.close() completes)', async () => {
    const { server, port } = await tlsServer();
    const outcome = await observe(connect({ host: LOCALHOST, port, tls: true, connectTimeout: 5000 }));
    expect(outcome.ok).to.equal(false);
    const closing = await observe(within(server.close({ grace: 0 }), 3000, 'server.close()'));
    expect(closing.ok, String(!closing.ok && closing.error)).to.equal(true);
  });

  it('cuts a TCP peer that never starts TLS at handshakeTimeout (TLS slowloris)', async () => {
    const HANDSHAKE = 1000;
    const { port } = await tlsServer({ handshakeTimeout: HANDSHAKE });
    const raw = h().raw(port);
    await raw.connected;
    const t0 = now();
    const closed = await observe(
      within(
        (async () => {
          while (raw.endedAt === undefined && !raw.socket.destroyed) await sleep(5);
        })(),
        HANDSHAKE + 2500,
        'the server to cut the silent peer',
      ),
    );
    report(
      `TLS slowloris: ${closed.ok ? `cut after ${(closed.at - t0).toFixed(0)} ms` : 'NOT cut'} (handshakeTimeout ${HANDSHAKE})`,
    );
    expect(closed.ok, 'the server cuts a peer that never starts TLS').to.equal(true);
  });

  it('honours tls.servername when connecting to an IP address', async () => {
    const { port } = await tlsServer();
    const outcome = await observe(
      h().connect({ port, tls: { ca: cert, servername: 'localhost' }, connectTimeout: 5000 }),
    );
    if (!outcome.ok) {
      const error = outcome.error as ConnectError;
      expect.fail(
        `connect failed: ${codeOf(error.attempts?.[0]?.error)} ${String(error.attempts?.[0]?.error?.message)}`,
      );
    }
  });
});
