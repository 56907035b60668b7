/**
 * SPEC.md §7 rule 5, consumption reports: a receiver reports what its application consumed
 * between grants, paced by the peer's `send_queue_limit` (one CREDIT per `Q / 4` credit bytes
 * consumed) or, when the peer stated none, each time its application has drained. Either way a
 * sender whose queue is full of consumed messages goes on without waiting for a heartbeat.
 */
import { expect } from 'chai';
import { encodeFrame, FrameCollector, FrameDecoder } from '../../src/protocol/codec.js';
import { FrameType, PREAMBLE } from '../../src/protocol/constants.js';
import { Engine } from '../../src/protocol/engine.js';
import type { Frame } from '../../src/protocol/frames.js';
import { concatBytes } from '../../src/testing/arbitraries.js';

const MESSAGE = 1024;
const COST = 6 + MESSAGE + 256;

interface Run {
  delivered: number;
  /** CREDIT frames the receiver sent after the handshake. */
  credits: number;
}

/**
 * The client sends `count` messages of 1 KiB; its bytes reach the server in chunks of `chunk`
 * bytes, and the server's application reads everything after each chunk. Time never advances,
 * so no heartbeat can carry a report: only CREDITs do.
 */
function run(count: number, chunk: number, options: { queue: number; hideQueueLimit?: boolean }): Run {
  const client = new Engine({ role: 'client', maxSendQueueBytes: options.queue });
  const server = new Engine({ role: 'server', initialWindowBytes: 8 * 1024 * 1024 });
  server.start(0);
  client.start(0);
  const toClient = new FrameDecoder({ expectPreamble: true, maxDataPayload: 1 << 24 });
  const seen = new FrameCollector();
  let first = true;
  let accepted = 0;
  let delivered = 0;
  const payload = new Uint8Array(MESSAGE);
  for (let round = 0; round < 100_000 && delivered < count; round++) {
    if (client.state === 'open') while (accepted < count && client.trySend(0, payload)) accepted++;
    let moved = 0;
    const toServer = client.pollTransmit(0);
    let out = concatBytes(toServer);
    if (first && options.hideQueueLimit === true) out = withoutQueueLimit(out);
    first = false;
    moved += out.length;
    const back = (): void => {
      for (const bytes of server.pollTransmit(0)) {
        moved += bytes.length;
        toClient.push(bytes, seen);
        client.receive(0, bytes);
      }
    };
    // As the Node adapter does: read what arrived, then flush what that made due.
    for (let at = 0; at < out.length; at += chunk) {
      server.receive(0, out.subarray(at, Math.min(at + chunk, out.length)));
      while (server.read(0) !== undefined) delivered++;
      back();
    }
    back();
    if (moved === 0) break;
  }
  const credits = seen.frames.filter((f: Frame) => f.type === FrameType.CREDIT).length;
  return { delivered, credits };
}

/** The client's first bytes (preamble + HELLO) re-encoded without `send_queue_limit`: an older peer. */
function withoutQueueLimit(bytes: Uint8Array): Uint8Array {
  const decoder = new FrameDecoder({ expectPreamble: true, maxDataPayload: 1 << 24 });
  const sink = new FrameCollector();
  decoder.push(bytes, sink);
  const [hello] = sink.frames;
  if (hello?.type !== FrameType.HELLO) throw new Error('expected HELLO first');
  expect(hello.hello.sendQueueLimit).to.be.greaterThan(0);
  const { sendQueueLimit: _, ...older } = hello.hello;
  return concatBytes([PREAMBLE, encodeFrame({ type: FrameType.HELLO, hello: older })]);
}

describe('SPEC.md §7 rule 5: consumption reports', () => {
  it('HELLO and WELCOME state each side’s send_queue_limit (its maxSendQueueBytes)', () => {
    const client = new Engine({ role: 'client', maxSendQueueBytes: 123_456 });
    client.start(0);
    const sink = new FrameCollector();
    new FrameDecoder({ expectPreamble: true, maxDataPayload: 1 << 24 }).push(
      concatBytes(client.pollTransmit(0)),
      sink,
    );
    const [hello] = sink.frames;
    expect(hello.type === FrameType.HELLO && hello.hello.sendQueueLimit).to.equal(123_456);
  });

  it('paced by the peer’s queue: one CREDIT per Q/4 consumed, however small the reads', () => {
    const queue = 64 * 1024;
    const count = 2000;
    const { delivered, credits } = run(count, 4096, { queue });
    expect(delivered).to.equal(count);
    // A report per Q/4 credit bytes consumed (plus a grant or two), not one per read (~690 reads).
    expect(credits).to.be.at.most(Math.ceil((count * COST) / (queue / 4)) + 4);
    // …and reports keep coming (a message's worth of overshoot per step at most).
    expect(credits).to.be.at.least(Math.floor((count * COST) / (queue / 4 + COST)) / 2);
  });

  it('a sender whose queue is smaller than one report step still never waits for a heartbeat', () => {
    // Q = 3000 B: the queue fills after three 1 KiB messages (payload + 64 B each).
    const { delivered } = run(500, 512, { queue: 3000 });
    expect(delivered).to.equal(500);
  });

  it('a peer that stated no send_queue_limit gets a report each time the application drains', () => {
    const count = 500;
    const chunk = 8192;
    const { delivered, credits } = run(count, chunk, { queue: 64 * 1024, hideQueueLimit: true });
    expect(delivered).to.equal(count);
    // About one report per chunk read (the reads drain the receiver each time).
    expect(credits).to.be.at.least(Math.floor((count * (MESSAGE + 6)) / chunk / 2));
  });
});
