import diagnosticsChannel from 'node:diagnostics_channel';
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { encodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import type { CloseInfo } from '../../src/protocol/types.js';
import {
  helloBytes,
  now,
  observe,
  pseudoRandomBytes,
  report,
  seqMessage,
  seqOf,
  sleep,
  useHarness,
  waitFor,
  within,
} from './helpers.js';
import type { Harness, RawPeer } from './helpers.js';

/** Server-side close reports of every connection, from the diagnostics channel. */
function recordCloses(h: Harness): { role: string; code: string | undefined; connection: Connection }[] {
  const closes: { role: string; code: string | undefined; connection: Connection }[] = [];
  const listener = (message: unknown): void => {
    const { connection, info } = message as { connection: Connection; info: CloseInfo };
    closes.push({ role: connection.role, code: info.clean ? 'CLEAN' : info.error?.code, connection });
  };
  diagnosticsChannel.subscribe('heartwire:connection:close', listener);
  h.defer(() => diagnosticsChannel.unsubscribe('heartwire:connection:close', listener));
  return closes;
}

/** A well-behaved client doing echo round trips, one at a time, for as long as the test runs. */
class Healthy {
  roundTrips = 0;
  private stopped = false;
  readonly done: Promise<unknown>;
  constructor(readonly connection: Connection) {
    this.done = observe(this.run());
  }
  private async run(): Promise<void> {
    const replies = this.connection[Symbol.asyncIterator]();
    for (let seq = 1; !this.stopped; seq++) {
      await this.connection.send(seqMessage(seq, 512));
      const reply = await replies.next();
      if (reply.done || seqOf(reply.value) !== seq) throw new Error(`bad echo for ${seq}`);
      this.roundTrips++;
    }
    await this.connection.end();
  }
  /** Assert the healthy client keeps exchanging messages. */
  async keepsGoing(what: string, more = 20): Promise<void> {
    const target = this.roundTrips + more;
    await waitFor(() => this.roundTrips >= target, 10_000, `the healthy client to go on (${what})`);
  }
  async finish(): Promise<void> {
    this.stopped = true;
    const outcome = (await within(this.done, 10_000, 'the healthy client to end')) as {
      ok: boolean;
      error?: unknown;
    };
    expect(outcome.ok, `healthy client: ${String(outcome.error)}`).to.equal(true);
  }
}

describe('node transport: hostile peers are cut with a typed error; others are served meanwhile', function () {
  this.timeout(30_000);
  const h = useHarness();

  async function setup(options: { handshakeTimeout?: number } = {}): Promise<{
    port: number;
    healthy: Healthy;
    closes: ReturnType<typeof recordCloses>;
  }> {
    const closes = recordCloses(h());
    const { port } = await h().server({ idleTimeout: 2000, receiveWindow: 64 * 1024, ...options }, (c) => {
      void c.handle((message) => c.send(message)).catch(() => {});
    });
    const healthy = new Healthy(await h().connect({ port, idleTimeout: 1000 }));
    h().defer(() => healthy.finish().catch(() => {}));
    await healthy.keepsGoing('before the attack', 5);
    return { port, healthy, closes };
  }

  /** The raw peer is closed by the server; returns the time from `t0` to the server's FIN. */
  async function cut(raw: RawPeer, t0: number, bound: number): Promise<number> {
    await within(
      (async () => {
        while (raw.endedAt === undefined && !raw.socket.destroyed) await sleep(5);
      })(),
      bound,
      'the server to close the hostile connection',
    );
    return (raw.endedAt ?? now()) - t0;
  }

  async function expectServerClose(
    closes: ReturnType<typeof recordCloses>,
    healthy: Healthy,
    code: string,
  ): Promise<void> {
    await waitFor(
      () =>
        closes.some(
          (c) => c.role === 'server' && c.connection !== healthy.connection && c.code !== undefined,
        ),
      5000,
      'the server-side close report',
    );
    const hostile = closes.filter((c) => c.role === 'server' && c.code !== 'CLEAN');
    expect(hostile.map((c) => c.code)).to.deep.equal([code]);
  }

  const garbage: [string, Uint8Array | string][] = [
    [
      'raw garbage',
      (() => {
        const bytes = pseudoRandomBytes(4096, 7);
        bytes[0] = 0x00;
        return bytes;
      })(),
    ],
    ['an HTTP client', 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: keep-alive\r\n\r\n'],
    ['a TLS ClientHello', Uint8Array.of(0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03)],
  ];
  for (const [name, bytes] of garbage) {
    it(`${name}: PROTOCOL_MISMATCH at the first byte, nothing sent back`, async () => {
      const { port, healthy, closes } = await setup();
      const raw = h().raw(port);
      await raw.connected;
      const t0 = now();
      raw.write(bytes);
      const ms = await cut(raw, t0, 5000);
      await healthy.keepsGoing(name);
      await expectServerClose(closes, healthy, 'PROTOCOL_MISMATCH');
      expect(raw.received.length, 'bytes the server sent to a non-heartwire peer').to.equal(0);
      report(
        `hostile ${name}: server PROTOCOL_MISMATCH, connection ended after ${ms.toFixed(0)} ms; healthy client ${healthy.roundTrips} round trips`,
      );
    });
  }

  /** Preamble + HELLO, wait for WELCOME; returns the server's initial credit and max frame payload. */
  async function handshake(raw: RawPeer): Promise<{ initialCredit: number; maxFramePayload: number }> {
    await raw.connected;
    raw.write(helloBytes());
    const welcome = await raw.waitForFrame(FrameType.WELCOME, 5000);
    if (welcome.type !== FrameType.WELCOME) throw new Error('not a WELCOME');
    return welcome.welcome;
  }

  /** What the server answers: its preamble (checked by the decoder), frames, an ERROR last, then FIN. */
  async function expectErrorFrame(raw: RawPeer, t0: number, code: string): Promise<number> {
    const ms = await cut(raw, t0, 5000);
    const frames = raw.frames();
    const last = frames[frames.length - 1];
    expect(last?.type, `last frame of ${JSON.stringify(frames.map((f) => f.type))}`).to.equal(
      FrameType.ERROR,
    );
    expect(raw.errorFrame()!.name).to.equal(code);
    return ms;
  }

  it('an oversized frame header before the handshake: preamble + ERROR FRAME_TOO_LARGE', async () => {
    const { port, healthy, closes } = await setup();
    const raw = h().raw(port);
    await raw.connected;
    const header = Buffer.alloc(6);
    header.writeUInt32BE(0x7fff_ffff, 0);
    header[4] = FrameType.HELLO;
    const t0 = now();
    raw.write(Buffer.concat([PREAMBLE, header]));
    const ms = await expectErrorFrame(raw, t0, 'FRAME_TOO_LARGE');
    expect(raw.frames()).to.have.length(1);
    await healthy.keepsGoing('oversized header');
    await expectServerClose(closes, healthy, 'FRAME_TOO_LARGE');
    report(`hostile oversized HELLO header: ERROR FRAME_TOO_LARGE, ended after ${ms.toFixed(0)} ms`);
  });

  it('an oversized DATA header after the handshake: ERROR FRAME_TOO_LARGE', async () => {
    const { port, healthy, closes } = await setup();
    const raw = h().raw(port);
    const { maxFramePayload } = await handshake(raw);
    const header = Buffer.alloc(6);
    header.writeUInt32BE(maxFramePayload + 1, 0);
    header[4] = FrameType.DATA;
    header[5] = 1;
    const t0 = now();
    raw.write(header);
    const ms = await expectErrorFrame(raw, t0, 'FRAME_TOO_LARGE');
    await healthy.keepsGoing('oversized DATA header');
    await expectServerClose(closes, healthy, 'FRAME_TOO_LARGE');
    report(
      `hostile oversized DATA header (${maxFramePayload + 1} > max_frame_payload): ERROR FRAME_TOO_LARGE, ended after ${ms.toFixed(0)} ms`,
    );
  });

  it('DATA beyond the granted credit: ERROR FLOW_CONTROL_ERROR', async () => {
    const { port, healthy, closes } = await setup();
    const raw = h().raw(port);
    const { initialCredit } = await handshake(raw);
    // One unfinished message (no END flag) cannot be consumed, so no credit can come back.
    const frames: Uint8Array[] = [];
    let cost = 0;
    while (cost <= initialCredit) {
      frames.push(encodeFrame({ type: FrameType.DATA, end: false, payload: new Uint8Array(1024) }));
      cost += 6 + 1024;
    }
    const t0 = now();
    raw.write(Buffer.concat(frames));
    const ms = await expectErrorFrame(raw, t0, 'FLOW_CONTROL_ERROR');
    await healthy.keepsGoing('credit violation');
    await expectServerClose(closes, healthy, 'FLOW_CONTROL_ERROR');
    report(
      `hostile credit violation (${cost} credit bytes > ${initialCredit} granted): ERROR FLOW_CONTROL_ERROR, ended after ${ms.toFixed(0)} ms`,
    );
  });

  it('a heartbeat flood: ERROR ENHANCE_YOUR_CALM', async () => {
    const { port, healthy, closes } = await setup();
    const raw = h().raw(port);
    await handshake(raw);
    const heartbeat = encodeControlFrame({
      type: FrameType.HEARTBEAT,
      echo: false,
      timestamp: 1,
      echoTimestamp: 0,
      echoDelay: 0,
      receivedBytes: 0,
      creditLimit: 65_536,
      consumedMessages: 0,
    });
    const t0 = now();
    raw.write(Buffer.concat(Array.from({ length: 20 }, () => heartbeat)));
    const ms = await expectErrorFrame(raw, t0, 'ENHANCE_YOUR_CALM');
    await healthy.keepsGoing('heartbeat flood');
    await expectServerClose(closes, healthy, 'ENHANCE_YOUR_CALM');
    report(`hostile heartbeat flood (20 at once): ERROR ENHANCE_YOUR_CALM, ended after ${ms.toFixed(0)} ms`);
  });

  describe('slowloris', () => {
    const HANDSHAKE = 1000;
    const MARGIN = 1500;

    it('a peer that sends the preamble and nothing more is cut at handshakeTimeout (ERROR HANDSHAKE_TIMEOUT)', async () => {
      const { port, healthy, closes } = await setup({ handshakeTimeout: HANDSHAKE });
      const raw = h().raw(port);
      await raw.connected;
      const t0 = now();
      raw.write(PREAMBLE);
      const ms = await expectErrorFrame(raw, t0, 'HANDSHAKE_TIMEOUT');
      await healthy.keepsGoing('slowloris');
      await expectServerClose(closes, healthy, 'HANDSHAKE_TIMEOUT');
      report(
        `slowloris (preamble only): ERROR HANDSHAKE_TIMEOUT, cut after ${ms.toFixed(0)} ms (handshakeTimeout ${HANDSHAKE})`,
      );
      expect(ms).to.be.within(HANDSHAKE - 50, HANDSHAKE + MARGIN);
    });

    it('a peer that trickles its HELLO one byte per 100 ms is cut at handshakeTimeout too', async () => {
      const { port, healthy, closes } = await setup({ handshakeTimeout: HANDSHAKE });
      const raw = h().raw(port);
      await raw.connected;
      const hello = helloBytes();
      const t0 = now();
      const trickle = (async () => {
        for (const byte of hello.subarray(0, hello.length - 1)) {
          if (raw.endedAt !== undefined || raw.socket.destroyed) return;
          raw.write(Uint8Array.of(byte));
          await sleep(100);
        }
      })();
      const ms = await expectErrorFrame(raw, t0, 'HANDSHAKE_TIMEOUT');
      await trickle;
      await expectServerClose(closes, healthy, 'HANDSHAKE_TIMEOUT');
      report(
        `slowloris (HELLO trickled): ERROR HANDSHAKE_TIMEOUT, cut after ${ms.toFixed(0)} ms (handshakeTimeout ${HANDSHAKE})`,
      );
      expect(ms).to.be.within(HANDSHAKE - 50, HANDSHAKE + MARGIN);
    });

    it('a peer that connects and sends nothing is cut at handshakeTimeout, with nothing sent to it', async () => {
      const { port, healthy, closes } = await setup({ handshakeTimeout: HANDSHAKE });
      const raw = h().raw(port);
      await raw.connected;
      const t0 = now();
      const ms = await cut(raw, t0, HANDSHAKE + MARGIN + 2000);
      await expectServerClose(closes, healthy, 'HANDSHAKE_TIMEOUT');
      expect(raw.received.length).to.equal(0);
      report(`silent TCP peer: cut after ${ms.toFixed(0)} ms (handshakeTimeout ${HANDSHAKE})`);
      expect(ms).to.be.within(HANDSHAKE - 50, HANDSHAKE + MARGIN);
    });
  });
});
