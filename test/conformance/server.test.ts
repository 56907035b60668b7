/**
 * `heartwire conformance server`: every case passes against heartwire's own server, and each
 * deliberately broken server (a correct one behind a frame-rewriting proxy) fails the right case
 * with the right SPEC section.
 */
import { expect } from 'chai';
import net from 'node:net';
import { report } from '../figures.js';
import { createServer } from '../../src/node/server.js';
import type { Server } from '../../src/node/server.js';
import type { Connection } from '../../src/node/connection.js';
import { serverCases } from '../../src/conformance/cases/index.js';
import { ClientPeer } from '../../src/conformance/client-peer.js';
import { concat, dataFrame, defaultHello, rawFrame } from '../../src/conformance/wire.js';
import { junitReport } from '../../src/conformance/report.js';
import { randomCase } from '../../src/conformance/random.js';
import { defaultServerOptions, runServerConformance } from '../../src/conformance/runner.js';
import type { ServerRunOptions } from '../../src/conformance/types.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import {
  decodeCloseAck,
  decodeHello,
  decodeWelcome,
  encodeCloseAck,
  encodeHello,
  encodeWelcome,
} from '../../src/protocol/messages.js';
import { MutatingProxy } from './mutating-proxy.js';
import type { Mutator } from './mutating-proxy.js';
import { expectCaught, explain, failures, variantTitle } from './helpers.js';
import type { BrokenVariant } from './helpers.js';

/** Server timeouts kept short so that the whole run takes seconds. */
const SERVER = { idleTimeout: 600, handshakeTimeout: 800 };

async function echo(conn: Connection): Promise<void> {
  try {
    for await (const message of conn) {
      if (!conn.write(message)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            conn.off('drain', done).off('close', done);
            resolve();
          };
          conn.on('drain', done).on('close', done);
        });
      }
    }
  } catch {
    // failures are the connection's; the runner sees them on the wire
  }
}

function options(port: number, extra: Partial<ServerRunOptions> = {}): ServerRunOptions {
  return {
    ...defaultServerOptions,
    host: '127.0.0.1',
    port,
    timeoutMs: 5000,
    toleranceMs: 250,
    maxWaitMs: 10_000,
    handshakeTimeoutMs: SERVER.handshakeTimeout,
    ...extra,
  };
}

describe('heartwire conformance server', function () {
  this.timeout(120_000);
  const servers: Server[] = [];
  const proxies: MutatingProxy[] = [];

  async function echoServer(onOpen?: (conn: Connection) => void): Promise<number> {
    const server = createServer(SERVER, (conn) => {
      onOpen?.(conn);
      void echo(conn);
    });
    servers.push(server);
    return (await server.listen(0, '127.0.0.1')).port;
  }

  async function brokenServer(mutator: Mutator): Promise<number> {
    const proxy = new MutatingProxy(await echoServer(), mutator);
    proxies.push(proxy);
    return proxy.listen();
  }

  afterEach(async () => {
    await Promise.all(proxies.splice(0).map((p) => p.close()));
    await Promise.all(servers.splice(0).map((s) => s.close({ grace: 0 })));
  });

  it('every case passes against heartwire createServer (echo, short timeouts)', async () => {
    const run = await runServerConformance(options(await echoServer()));
    const bySection = new Map<string, number>();
    for (const r of run.results) bySection.set(r.section, (bySection.get(r.section) ?? 0) + 1);
    report(
      `${run.results.length} cases in ${(run.durationMs / 1000).toFixed(1)} s: ${run.counts.pass} pass, ${run.counts.fail} fail, ${run.counts.info} info; per section ${[...bySection].map(([s, n]) => `${s} ${n}`).join(', ')}`,
    );
    expect(failures(run), explain(run)).to.deep.equal([]);
    // Only the GOAWAY cases cannot run without --goaway-within.
    expect(run.results.filter((r) => r.status === 'info').map((r) => r.id)).to.deep.equal([
      '9.2/goaway-then-close',
      '9.2/goaway-grace-expired',
    ]);
    expect(run.results.length).to.equal(serverCases.length);
    const junit = junitReport(run);
    expect(junit).to.match(/^<\?xml/);
    expect(junit).to.contain(`tests="${serverCases.length}" failures="0"`);
  });

  it('the GOAWAY cases pass against a server that goes away (conn.end with a grace)', async () => {
    const port = await echoServer((conn) => {
      setTimeout(() => void conn.end({ grace: 700 }).catch(() => {}), 300);
    });
    const run = await runServerConformance(options(port, { goAwayWithinMs: 300, only: ['9.2/'] }));
    expect(failures(run), explain(run)).to.deep.equal([]);
    expect(run.counts.pass).to.equal(2);
  });

  it('--random: 50 random sequences pass against createServer; against a server with wrong CLOSE_ACK counts the failure is shrunk and names §9.1 and the seed', async () => {
    const good = await runServerConformance(options(await echoServer()), [randomCase(50, 7)]);
    expect(failures(good), explain(good)).to.deep.equal([]);
    const port = await brokenServer({
      types: [FrameType.CLOSE_ACK],
      frame(d, f) {
        if (d !== 'down' || f.type !== FrameType.CLOSE_ACK) return f;
        const ack = decodeCloseAck(f.payload);
        return ack.deliveredMessages < 2
          ? f
          : { ...f, payload: encodeCloseAck({ ...ack, deliveredMessages: ack.deliveredMessages - 1 }) };
      },
    });
    const bad = await runServerConformance(options(port), [randomCase(50, 7)]);
    const result = bad.results[0]!;
    report(`conformance --random 50 --seed 7: ${good.results[0]!.seen}; broken server: ${result.seen}`);
    expect(result.status).to.equal('fail');
    expect(result.seen).to.contain('§9.1');
    expect(result.seen).to.contain('--seed 7');
    // Shrunk to the smallest sequence that still fails: two empty messages, then CLOSE.
    expect(result.seen).to.contain('[message(0), message(0)] then CLOSE');
  });

  // Each broken variant: a correct server behind a proxy that breaks one rule.
  const variants: BrokenVariant[] = [
    {
      name: 'drops its heartbeats',
      only: ['8/first-heartbeat', '8/heartbeat-schedule'],
      mutator: { frame: (d, f) => (d === 'down' && f.type === FrameType.HEARTBEAT ? null : f) },
      caught: [
        { id: '8/first-heartbeat', section: '§8' },
        { id: '8/heartbeat-schedule', section: '§8' },
      ],
    },
    {
      name: 'sends CLOSE_ACK with a wrong sent_messages count',
      only: ['9.1/'],
      mutator: {
        frame(d, f) {
          if (d !== 'down' || f.type !== FrameType.CLOSE_ACK) return f;
          const ack = decodeCloseAck(f.payload);
          return { ...f, payload: encodeCloseAck({ ...ack, sentMessages: ack.sentMessages + 1 }) };
        },
      },
      caught: [
        { id: '9.1/close-idle', section: '§9.1' },
        { id: '9.1/close-after-messages', section: '§9.1' },
      ],
    },
    {
      name: 'ignores the credit the client grants (sees a 16 MiB initial_credit)',
      only: ['7/rule1-server-respects-credit'],
      mutator: {
        frame(d, f) {
          if (d !== 'up') return f;
          if (f.type === FrameType.CREDIT) return null;
          if (f.type !== FrameType.HELLO) return f;
          return {
            ...f,
            payload: encodeHello({ ...decodeHello(f.payload), initialCredit: 16 * 1024 * 1024 }),
          };
        },
      },
      caught: [{ id: '7/rule1-server-respects-credit', section: '§7' }],
    },
    {
      name: 'accepts a bad preamble',
      only: ['3/bad-magic-then-hello', '3/bad-third-byte'],
      mutator: { preambleByte: (d, i, b) => (d === 'up' ? PREAMBLE[i]! : b) },
      caught: [
        { id: '3/bad-magic-then-hello', section: '§3' },
        { id: '3/bad-third-byte', section: '§3' },
      ],
    },
    {
      name: 'answers with a client_idle_timeout_ms out of range (50)',
      only: ['6/welcome-fields'],
      mutator: {
        frame(d, f) {
          if (d !== 'down' || f.type !== FrameType.WELCOME) return f;
          return { ...f, payload: encodeWelcome({ ...decodeWelcome(f.payload), clientIdleTimeoutMs: 50 }) };
        },
      },
      caught: [{ id: '6/welcome-fields', section: '§6' }],
    },
    {
      name: 'sets undefined flag bits on CREDIT and HEARTBEAT',
      only: ['5.3/received-bytes-reported'],
      mutator: {
        frame: (d, f) =>
          d === 'down' && (f.type === FrameType.CREDIT || f.type === FrameType.HEARTBEAT)
            ? { ...f, flags: f.flags | 0x80 }
            : f,
      },
      caught: [{ id: '5.3/received-bytes-reported', section: '§4' }],
    },
    {
      name: 'resets the connection right after ERROR instead of half-closing',
      only: ['11/error-then-half-close'],
      mutator: { resetOnServerEnd: true },
      caught: [{ id: '11/error-then-half-close', section: '§11' }],
    },
    {
      name: 'does not enforce the heartbeat flood limit (the proxy forwards one heartbeat in ten)',
      only: ['8/heartbeat-flood'],
      mutator: (() => {
        let n = 0;
        return {
          frame: (d: string, f: { type: number; flags: number; payload: Uint8Array }) =>
            d === 'up' && f.type === FrameType.HEARTBEAT && n++ % 10 !== 0 ? null : f,
        };
      })(),
      caught: [{ id: '8/heartbeat-flood', section: '§8' }],
    },
  ];

  for (const variant of variants) {
    it(variantTitle('server', variant), async () => {
      const port = await brokenServer(variant.mutator);
      const run = await runServerConformance(options(port, { only: variant.only }));
      expectCaught(run, variant.caught);
    });
  }
});

describe('conformance ClientPeer: the runner as the client of a server under test', function () {
  this.timeout(30_000);
  const sockets: net.Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
  });

  /** A ClientPeer and the raw server socket it connected to over 127.0.0.1. */
  async function pair(): Promise<{ peer: ClientPeer; server: net.Socket }> {
    const listener = net.createServer();
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    const accepted = new Promise<net.Socket>((resolve) => listener.once('connection', resolve));
    const peer = await ClientPeer.connect('127.0.0.1', (listener.address() as net.AddressInfo).port, 10_000);
    sockets.push(peer.socket);
    const server = await accepted;
    sockets.push(server);
    listener.close();
    return { peer, server };
  }

  it("checks the server's messages against the max_message_size of our HELLO, not of its WELCOME", async () => {
    const { peer, server } = await pair();
    peer.sendHello(defaultHello({ maxMessageSize: 4096 }));
    const welcome = {
      version: 1,
      extensions: [],
      idleTimeoutMs: 1000,
      initialCredit: 64 * 1024,
      maxFramePayload: 64 * 1024,
      maxMessageSize: 1024,
      clientIdleTimeoutMs: 1000,
      applicationProtocol: '',
    };
    server.write(concat(PREAMBLE, rawFrame(FrameType.WELCOME, 0, encodeWelcome(welcome))));
    server.write(dataFrame(new Uint8Array(3000), true));
    server.write(dataFrame(new Uint8Array(5000), true));
    expect(await peer.until(() => (peer.messages.length === 2 ? true : undefined), 10_000)).to.equal(true);
    const sizes = peer.violations.filter((v) => v.message.includes('max_message_size'));
    expect(sizes.map((v) => v.message)).to.deep.equal([
      'a message of 5000 bytes above our max_message_size 4096',
    ]);
  });

  it("names the server's preamble when it is wrong", async () => {
    const { peer, server } = await pair();
    peer.sendHello(defaultHello());
    const bad = PREAMBLE.slice();
    bad[2] ^= 0xff;
    server.write(bad);
    expect(await peer.until(() => (peer.streamBroken ? true : undefined), 10_000)).to.equal(true);
    expect(peer.violations).to.have.length(1);
    expect(peer.violations[0]!.section).to.equal('§3');
    expect(peer.violations[0]!.message)
      .to.contain("the server's preamble starts 89 48")
      .and.not.contain('client');
  });
});
