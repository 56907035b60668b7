/**
 * Issue 10 (9): peers that each hold an unfinished 4 MiB message must not pin a server's shared
 * memory budget and starve the other connections (SPEC.md §7, "Shared memory"). N raw peers send
 * all but the last KiB of a 4 MiB message and stall (heartbeating, so they stay alive); a healthy
 * client on the same server must still deliver 20 × 1 MiB and keep its heartbeats, and the
 * server's memory must stay within the stated bound.
 */
import net from 'node:net';
import { expect } from 'chai';
import type { Connection } from '../../src/node/connection.js';
import { SharedMemoryBudget } from '../../src/protocol/budget.js';
import { decodeAll, encodeControlFrame, encodeFrame } from '../../src/protocol/codec.js';
import { FrameType } from '../../src/protocol/constants.js';
import { wireErrorName } from '../../src/protocol/errors.js';
import type { MemoryBudget } from '../../src/protocol/types.js';
import {
  helloBytes,
  LOCALHOST,
  MiB,
  KiB,
  now,
  report,
  rss,
  sleep,
  useHarness,
  waitFor,
  within,
} from './helpers.js';

const MESSAGE = 4 * MiB;
/** Payload of each attacker frame, and one shared buffer for all of them (no attacker memory). */
const FRAGMENT = 16 * KiB;
const FILLER = new Uint8Array(FRAGMENT).fill(0x41);

/**
 * A raw peer that completes the handshake, then sends a 4 MiB message as fast as the server's
 * credit allows but stops 1 KiB before its end, and heartbeats every 400 ms to stay alive.
 */
class Pinner {
  readonly socket: net.Socket;
  private received = Buffer.alloc(0);
  private limit = 0;
  private sentCredit = 0;
  private sentPayload = 0;
  private maxFrame = 1024;
  private open = false;
  private heartbeat: NodeJS.Timeout | undefined;
  error: string | undefined;
  closed = false;

  constructor(port: number) {
    this.socket = net.connect({ host: LOCALHOST, port, allowHalfOpen: true });
    this.socket.on('error', () => {});
    this.socket.on('connect', () => this.socket.write(helloBytes({ idleTimeoutMs: 60_000 })));
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('close', () => {
      this.closed = true;
      clearInterval(this.heartbeat);
    });
  }

  get pinned(): number {
    return this.sentPayload;
  }

  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    let frames;
    try {
      frames = decodeAll(this.received, { expectPreamble: true, maxDataPayload: 16 * MiB });
    } catch {
      return; // a frame cut in the middle: wait for the rest
    }
    for (const frame of frames) {
      if (frame.type === FrameType.WELCOME) {
        this.limit = Math.max(this.limit, frame.welcome.initialCredit);
        this.maxFrame = frame.welcome.maxFramePayload;
        this.open = true;
      } else if (frame.type === FrameType.CREDIT || frame.type === FrameType.HEARTBEAT) {
        this.limit = Math.max(this.limit, frame.creditLimit);
      } else if (frame.type === FrameType.ERROR) {
        this.error = wireErrorName(frame.error.code) ?? String(frame.error.code);
      }
    }
    if (!this.open) return;
    if (this.heartbeat === undefined) {
      this.heartbeat = setInterval(() => this.sendHeartbeat(), 400);
      this.sendHeartbeat();
    }
    this.pump();
  }

  private sendHeartbeat(): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(
      encodeControlFrame({
        type: FrameType.HEARTBEAT,
        echo: false,
        timestamp: Math.floor(now() * 10) % 0x1_0000_0000,
        echoTimestamp: 0,
        echoDelay: 0,
        receivedBytes: 0,
        creditLimit: 65_536,
        consumedMessages: 0,
      }),
    );
  }

  /** DATA frames without END, within credit, until 1 KiB before the end of the message. */
  private pump(): void {
    const target = MESSAGE - KiB;
    const frames: Uint8Array[] = [];
    for (;;) {
      const size = Math.min(
        FRAGMENT,
        this.maxFrame,
        target - this.sentPayload,
        this.limit - this.sentCredit - 6,
      );
      if (size < 512) break;
      frames.push(encodeFrame({ type: FrameType.DATA, end: false, payload: FILLER.subarray(0, size) }));
      this.sentCredit += 6 + size;
      this.sentPayload += size;
    }
    if (frames.length > 0 && this.socket.writable) this.socket.write(Buffer.concat(frames));
  }

  destroy(): void {
    clearInterval(this.heartbeat);
    this.socket.destroy();
  }
}

describe('node transport: peers holding unfinished messages cannot starve the others (issue 10 (9))', function () {
  this.timeout(60_000);
  const h = useHarness();

  async function attack(label: string, budget: MemoryBudget | undefined, capacity: number): Promise<void> {
    const N = 20;
    const received = new Map<Connection, number>();
    const { server, port } = await h().server(
      { idleTimeout: 2000, ...(budget === undefined ? {} : { memoryBudget: budget }) },
      (connection) => {
        received.set(connection, 0);
        void (async () => {
          try {
            for await (const _message of connection) received.set(connection, received.get(connection)! + 1);
          } catch {
            // reported by closed
          }
        })();
      },
    );
    const shared = server.memoryBudget as SharedMemoryBudget;
    const healthy = await h().connect({ port, idleTimeout: 1000 });
    const healthyClosed = healthy.closed.then(
      () => 'CLEAN',
      (error: { code?: string }) => error.code,
    );
    const rssBefore = rss();
    const pinners = Array.from({ length: N }, () => new Pinner(port));
    h().defer(() => pinners.forEach((p) => p.destroy()));
    // Let the pinners take what they can.
    await waitFor(
      () =>
        pinners.every((p) => p.pinned >= MESSAGE - 2 * KiB || p.closed) ||
        shared.reserved >= capacity - 4 * MiB,
      20_000,
      'the pinners to pin memory',
    );
    const pinnedPeak = pinners.reduce((sum, p) => sum + p.pinned, 0);
    let maxReserved = shared.reserved;
    let maxRss = rss();
    const sampler = setInterval(() => {
      maxReserved = Math.max(maxReserved, shared.reserved);
      maxRss = Math.max(maxRss, rss());
    }, 20);
    h().defer(() => clearInterval(sampler));
    const heartbeatsBefore = healthy.stats().heartbeatsReceived;
    // The healthy client sends 20 × 1 MiB; the server consumes them.
    const t0 = now();
    const payload = new Uint8Array(MiB).fill(7);
    // One at a time: send() resolves within the server's credit (back-pressure).
    const sends = (async () => {
      for (let i = 0; i < 20; i++) await healthy.send(payload);
    })();
    const healthyServer = await waitFor(() => received.size > 0, 5000, 'the healthy connection').then(
      () => [...received.keys()][0]!,
    );
    let deliveredAt: number | undefined;
    try {
      await waitFor(() => received.get(healthyServer) === 20, 15_000, 'the healthy client’s 20 × 1 MiB');
      deliveredAt = now() - t0;
      await within(sends, 5000, 'the sends to resolve');
    } finally {
      clearInterval(sampler);
      const cut = pinners.filter((p) => p.error !== undefined);
      report(
        `memory pinning, ${label}: ${N} peers pinned ${(pinnedPeak / MiB).toFixed(1)} MiB; healthy client delivered ${received.get(healthyServer)} of 20 × 1 MiB ${deliveredAt === undefined ? 'within 15 s (FAILED)' : `in ${deliveredAt.toFixed(0)} ms`}, heartbeats received ${healthy.stats().heartbeatsReceived - heartbeatsBefore} meanwhile; pinners cut: ${cut.length} (${[...new Set(cut.map((p) => p.error))].join(', ')}); budget reserved max ${(maxReserved / MiB).toFixed(1)} of ${(capacity / MiB).toFixed(0)} MiB; server process RSS ${(rssBefore / MiB).toFixed(0)} → max ${(maxRss / MiB).toFixed(0)} MiB`,
      );
    }
    expect(healthy.state).to.equal('open');
    // Heartbeats keep arriving while the pinners still hold their messages (the delivery above
    // can be shorter than one heartbeat period: wait up to 3 periods of the peer's schedule).
    await waitFor(
      () => healthy.stats().heartbeatsReceived > heartbeatsBefore,
      3000,
      'a heartbeat on the healthy connection during the attack',
    );
    expect(maxReserved).to.be.at.most(capacity);
    // Stated bound (SPEC.md §7): credit held ≤ N × initial window + budget; RSS adds read buffers
    // (≤ 4/3 of it) and everything else in this process (clients, test): a generous margin.
    const bound = (N + 1) * 64 * KiB + capacity;
    expect(maxRss - rssBefore).to.be.below((4 / 3) * bound + 64 * MiB);
    await sleep(100);
    await healthy.end();
    expect(await healthyClosed).to.equal('CLEAN');
  }

  it('with a 64 MiB SharedMemoryBudget (the issue’s configuration)', async () => {
    await attack('SharedMemoryBudget(64 MiB)', new SharedMemoryBudget(64 * MiB), 64 * MiB);
  });

  it('with the server’s default budget', async () => {
    await attack('default server budget', undefined, 256 * MiB);
  });
});
