import { expect } from 'chai';
import { decodeAll } from '../../../src/protocol/codec.js';
import { FrameType, PROTOCOL_VERSION } from '../../../src/protocol/constants.js';
import type { Hello, Welcome } from '../../../src/protocol/frames.js';
import { Handshake } from '../../../src/protocol/connection/handshake.js';
import { Ring } from '../../../src/protocol/connection/ring.js';
import { settings, thrownCode } from './helpers.js';

function hello(overrides: Partial<Hello> = {}): Hello {
  return {
    versions: [PROTOCOL_VERSION],
    extensions: [],
    idleTimeoutMs: 20_000,
    initialCredit: 65_536,
    maxFramePayload: 65_536,
    maxMessageSize: 1 << 20,
    applicationProtocols: [],
    sendQueueLimit: 1 << 20,
    ...overrides,
  };
}

function welcome(overrides: Partial<Welcome> = {}): Welcome {
  return {
    version: PROTOCOL_VERSION,
    extensions: [],
    idleTimeoutMs: 20_000,
    initialCredit: 65_536,
    maxFramePayload: 65_536,
    maxMessageSize: 1 << 20,
    clientIdleTimeoutMs: 15_000,
    applicationProtocol: '',
    sendQueueLimit: 4096,
    ...overrides,
  };
}

describe('connection/handshake', () => {
  it('a client queues the preamble and HELLO stating its limits', () => {
    const queue = new Ring<Uint8Array>();
    const handshake = new Handshake(settings('client', { maxSendQueueBytes: 12_345 }), queue);
    handshake.sendHello(7);
    expect(handshake.helloSentAt).to.equal(7);
    const bytes = new Uint8Array([...queue.shift()!, ...queue.shift()!]);
    const [frame] = decodeAll(bytes, { expectPreamble: true, maxDataPayload: 1024 });
    expect(frame!.type).to.equal(FrameType.HELLO);
    expect(frame!.type === FrameType.HELLO && frame!.hello.sendQueueLimit).to.equal(12_345);
  });

  it('a server answers HELLO with WELCOME and agrees: the client idle timeout clamped to its range', () => {
    const queue = new Ring<Uint8Array>();
    const handshake = new Handshake(settings('server', { clientIdleTimeoutRangeMs: [5000, 10_000] }), queue);
    const agreement = handshake.onHello(hello({ idleTimeoutMs: 60_000 }));
    expect(agreement.negotiated.localIdleTimeoutMs).to.equal(20_000);
    expect(agreement.negotiated.peerIdleTimeoutMs).to.equal(10_000);
    expect(agreement.peerSendQueueLimit).to.equal(1 << 20);
    expect(handshake.negotiated).to.equal(agreement.negotiated);
    expect(queue.length).to.equal(2);
  });

  it('checks HELLO in the order of SPEC.md §6: versions first, then the ranges', () => {
    const handshake = new Handshake(settings('server'), new Ring());
    expect(thrownCode(() => handshake.onHello(hello({ versions: [99], idleTimeoutMs: 0 })))).to.equal(
      'UNSUPPORTED_VERSION',
    );
    expect(thrownCode(() => handshake.onHello(hello({ idleTimeoutMs: 0 })))).to.equal('PROTOCOL_ERROR');
    expect(thrownCode(() => handshake.onHello(hello({ maxFramePayload: 1 })))).to.equal('PROTOCOL_ERROR');
    const strict = new Handshake(
      settings('server', { applicationProtocols: ['a'], requireApplicationProtocol: true }),
      new Ring(),
    );
    expect(thrownCode(() => strict.onHello(hello({ applicationProtocols: ['b'] })))).to.equal(
      'NO_APPLICATION_PROTOCOL',
    );
  });

  it('a client rejects a WELCOME choosing what it did not offer', () => {
    const handshake = new Handshake(settings('client'), new Ring());
    expect(thrownCode(() => handshake.onWelcome(welcome({ version: 99 })))).to.equal('UNSUPPORTED_VERSION');
    expect(thrownCode(() => handshake.onWelcome(welcome({ extensions: ['x'] })))).to.equal('PROTOCOL_ERROR');
    expect(thrownCode(() => handshake.onWelcome(welcome({ applicationProtocol: 'z' })))).to.equal(
      'PROTOCOL_ERROR',
    );
    const agreement = handshake.onWelcome(welcome());
    expect(agreement.negotiated.localIdleTimeoutMs).to.equal(15_000);
    expect(agreement.negotiated.heartbeatIntervalMs).to.be.closeTo(20_000 / 3, 1e-9);
  });

  it('a server that has not answered can still send ERROR after a valid preamble: it queues its own', () => {
    const queue = new Ring<Uint8Array>();
    const handshake = new Handshake(settings('server'), queue);
    expect(handshake.readyForFrame(false)).to.equal(false);
    expect(handshake.readyForFrame(true)).to.equal(true);
    expect(queue.length).to.equal(1);
    expect(handshake.readyForFrame(true)).to.equal(true);
    expect(queue.length).to.equal(1);
  });
});
