/**
 * `heartwire conformance client`: every case passes against heartwire's own client (connect()
 * in a loop), and broken clients (the same client behind a frame-rewriting proxy) fail the right
 * case with the right SPEC section.
 */
import { expect } from 'chai';
import net from 'node:net';
import { clientCases } from '../../src/conformance/cases/client.js';
import {
  defaultClientOptions,
  defaultWelcome,
  runClientConformance,
} from '../../src/conformance/client-runner.js';
import type { ClientRunOptions } from '../../src/conformance/client-runner.js';
import { ServerPeer } from '../../src/conformance/server-peer.js';
import type { RunResult } from '../../src/conformance/types.js';
import { concat, dataFrame, defaultHello, helloFrame } from '../../src/conformance/wire.js';
import { connect } from '../../src/node/connect.js';
import type { Connection } from '../../src/node/connection.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { decodeCloseAck, decodeWelcome, encodeCloseAck, encodeWelcome } from '../../src/protocol/messages.js';
import { report as figure } from '../figures.js';
import { MutatingProxy } from './mutating-proxy.js';
import type { Mutator } from './mutating-proxy.js';
import { expectCaught, explain, failures, variantTitle } from './helpers.js';
import type { BrokenVariant } from './helpers.js';

/**
 * heartwire's client as the conformance run expects a client to behave: connect again after
 * every close, send a few messages, consume everything, end on GOAWAY.
 */
function clientLoop(port: () => number | undefined): { stop: () => Promise<void> } {
  let stopped = false;
  let current: Connection | undefined;
  const loop = (async () => {
    while (!stopped) {
      const p = port();
      if (p !== undefined) {
        try {
          const conn = await connect({
            host: '127.0.0.1',
            port: p,
            idleTimeout: 1000,
            handshakeTimeout: 3000,
          });
          current = conn;
          conn.on('goaway', () => void conn.end().catch(() => {}));
          void (async () => {
            for await (const _message of conn);
          })().catch(() => {});
          for (let i = 0; i < 6 && !stopped; i++) await conn.send(new Uint8Array(700).fill(i));
          await conn.closed.catch(() => {});
        } catch {
          // a refused handshake is what many cases provoke; connect again
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      current?.abort();
      await loop;
    },
  };
}

async function runAgainst(only: string[], mutator?: Mutator): Promise<RunResult> {
  let port: number | undefined;
  let proxy: MutatingProxy | undefined;
  const client = clientLoop(() => port);
  const options: ClientRunOptions = {
    ...defaultClientOptions,
    host: '127.0.0.1',
    port: 0,
    toleranceMs: 250,
    timeoutMs: 5000,
    connectWaitMs: 20_000,
    only,
  };
  try {
    return await runClientConformance(options, clientCases, {
      onListening: (address) => {
        if (mutator === undefined) port = address.port;
        else {
          proxy = new MutatingProxy(address.port, mutator);
          void proxy.listen().then((p) => (port = p));
        }
      },
    });
  } finally {
    await client.stop();
    await proxy?.close();
  }
}

describe('heartwire conformance client', function () {
  this.timeout(120_000);

  it("every case passes against heartwire's own client", async () => {
    const run = await runAgainst([]);
    figure(
      `conformance client: ${run.results.length} cases against connect() in ${(run.durationMs / 1000).toFixed(1)} s: ${run.counts.pass} pass, ${run.counts.fail} fail, ${run.counts.info} info`,
    );
    expect(failures(run), explain(run)).to.deep.equal([]);
    expect(run.counts.info, explain(run)).to.equal(0);
    expect(run.results.length).to.equal(clientCases.length);
  });

  const variants: BrokenVariant[] = [
    {
      name: 'sends no heartbeats',
      only: ['8/client-first-heartbeat', '8/client-heartbeat-schedule'],
      mutator: { frame: (d, f) => (d === 'up' && f.type === FrameType.HEARTBEAT ? null : f) },
      caught: [
        { id: '8/client-first-heartbeat', section: '§8' },
        { id: '8/client-heartbeat-schedule', section: '§8' },
      ],
    },
    {
      name: 'ignores the credit granted (sees a 16 MiB initial_credit)',
      only: ['7/client-respects-credit'],
      mutator: {
        frame(d, f) {
          if (d !== 'down' || f.type !== FrameType.WELCOME) return f;
          return {
            ...f,
            payload: encodeWelcome({ ...decodeWelcome(f.payload), initialCredit: 16 * 1024 * 1024 }),
          };
        },
      },
      caught: [{ id: '7/client-respects-credit', section: '§7' }],
    },
    {
      name: 'does not check CLOSE_ACK counts (the proxy hides the mismatch)',
      only: ['9.1/client-checks-close-ack'],
      mutator: {
        frame(d, f) {
          if (d !== 'down' || f.type !== FrameType.CLOSE_ACK) return f;
          const ack = decodeCloseAck(f.payload);
          return {
            ...f,
            payload: encodeCloseAck({ ...ack, sentMessages: Math.max(0, ack.sentMessages - 1) }),
          };
        },
      },
      caught: [{ id: '9.1/client-checks-close-ack', section: '§9.1' }],
    },
  ];

  for (const variant of variants) {
    it(variantTitle('client', variant), async () => {
      const run = await runAgainst(variant.only, variant.mutator);
      expectCaught(run, variant.caught);
    });
  }
});

describe('conformance ServerPeer: the runner as the server of a client under test', function () {
  this.timeout(30_000);
  const sockets: net.Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  /** A ServerPeer and the raw client socket connected to it over 127.0.0.1. */
  async function pair(): Promise<{ peer: ServerPeer; client: net.Socket }> {
    const server = net.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
    sockets.push(client);
    const socket = await accepted;
    sockets.push(socket);
    server.close();
    return { peer: ServerPeer.accept(socket), client };
  }

  it("checks the client's messages against the max_message_size of our WELCOME, not of its HELLO", async () => {
    const { peer, client } = await pair();
    client.write(concat(PREAMBLE, helloFrame(defaultHello({ maxMessageSize: 1024 }))));
    expect(await peer.until(() => peer.hello, 10_000), 'HELLO').to.not.equal(undefined);
    peer.sendWelcome(defaultWelcome(peer, { maxMessageSize: 4096 }));
    // 3000 bytes: within our 4096 (above the client's own 1024, which limits what it receives).
    client.write(dataFrame(new Uint8Array(3000), true));
    client.write(dataFrame(new Uint8Array(5000), true));
    expect(await peer.until(() => (peer.messages.length === 2 ? true : undefined), 10_000)).to.equal(true);
    const sizes = peer.violations.filter((v) => v.message.includes('max_message_size'));
    expect(sizes.map((v) => v.message)).to.deep.equal([
      'a message of 5000 bytes above our max_message_size 4096',
    ]);
  });

  it("names the client's preamble when it is wrong", async () => {
    const { peer, client } = await pair();
    const bad = PREAMBLE.slice();
    bad[2] ^= 0xff;
    client.write(bad);
    expect(await peer.until(() => (peer.streamBroken ? true : undefined), 10_000)).to.equal(true);
    expect(peer.violations).to.have.length(1);
    expect(peer.violations[0]!.section).to.equal('§3');
    expect(peer.violations[0]!.message)
      .to.contain("the client's preamble starts 89 48")
      .and.not.contain('server');
  });
});
