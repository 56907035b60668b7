/**
 * The handshake (SPEC.md §3, §6): the client's preamble and HELLO, the server's checks of HELLO
 * and its WELCOME, the client's checks of WELCOME, each in the order of §6 ("Validation").
 * @module
 */
import { encodeControlFrame } from '../codec/encode.js';
import {
  FrameType,
  MAX_COUNTER,
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PREAMBLE,
} from '../constants.js';
import { usableAlternatives } from '../alternatives.js';
import { ProtocolError } from '../errors.js';
import type { Hello, Welcome } from '../frames.js';
import type { Negotiated } from '../types.js';
import type { Ring } from './ring.js';
import type { Settings } from './settings.js';

/** What the handshake agreed, for the parts the engine opens with it. */
export interface Agreement {
  readonly negotiated: Negotiated;
  readonly peerInitialCredit: number;
  readonly peerSendQueueLimit: number | undefined;
}

export class Handshake {
  /** Our preamble is queued: frames may follow it. */
  preambleSent = false;
  /** Client: when HELLO was queued (a first RTT sample when WELCOME arrives). */
  helloSentAt: number | undefined;
  /** Values agreed, once the handshake completed. */
  negotiated: Negotiated | undefined;

  constructor(
    private readonly settings: Settings,
    private readonly controlQueue: Ring<Uint8Array>,
  ) {}

  /** Client: queue the preamble and HELLO. */
  sendHello(now: number): void {
    const s = this.settings;
    const hello: Hello = {
      versions: [...s.versions],
      extensions: [...s.extensions],
      idleTimeoutMs: s.idleTimeoutMs,
      initialCredit: s.initialWindow,
      maxFramePayload: s.maxFramePayload,
      maxMessageSize: s.maxMessageBytes,
      applicationProtocols: [...s.applicationProtocols],
      sendQueueLimit: s.maxSendQueueBytes,
    };
    this.controlQueue.push(PREAMBLE);
    this.controlQueue.push(encodeControlFrame({ type: FrameType.HELLO, hello }));
    this.preambleSent = true;
    this.helloSentAt = now;
  }

  /** Server: check HELLO in the order of SPEC.md §6 ("Validation"), versions first, and answer it. */
  onHello(hello: Hello): Agreement {
    const s = this.settings;
    const common = hello.versions.filter((v) => s.versions.includes(v));
    if (common.length === 0) {
      throw new ProtocolError('UNSUPPORTED_VERSION', `no common version in [${hello.versions.join(', ')}]`);
    }
    checkRange('idle_timeout_ms', hello.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    checkRange('initial_credit', hello.initialCredit, MIN_INITIAL_CREDIT, MAX_COUNTER);
    checkRange('max_frame_payload', hello.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
    checkRange('max_message_size', hello.maxMessageSize, 1, MAX_COUNTER);
    const applicationProtocol =
      hello.applicationProtocols.find((p) => s.applicationProtocols.includes(p)) ?? '';
    if (applicationProtocol === '' && s.requireApplicationProtocol) {
      throw new ProtocolError('NO_APPLICATION_PROTOCOL', 'no common application protocol');
    }
    const [lo, hi] = s.clientIdleRange;
    const clientIdle = Math.min(
      Math.max(hello.idleTimeoutMs, lo, MIN_IDLE_TIMEOUT_MS),
      hi,
      MAX_IDLE_TIMEOUT_MS,
    );
    const welcome: Welcome = {
      version: Math.max(...common),
      extensions: hello.extensions.filter((e) => s.extensions.includes(e)),
      idleTimeoutMs: s.idleTimeoutMs,
      initialCredit: s.initialWindow,
      maxFramePayload: s.maxFramePayload,
      maxMessageSize: s.maxMessageBytes,
      clientIdleTimeoutMs: clientIdle,
      applicationProtocol,
      sendQueueLimit: s.maxSendQueueBytes,
      alternatives: [...s.alternatives],
    };
    this.controlQueue.push(PREAMBLE);
    this.controlQueue.push(encodeControlFrame({ type: FrameType.WELCOME, welcome }));
    this.preambleSent = true;
    return this.agree(
      welcome.version,
      welcome.extensions,
      applicationProtocol,
      s.idleTimeoutMs,
      clientIdle,
      hello,
      [...s.alternatives],
    );
  }

  /** Client: check WELCOME in the order of SPEC.md §6 ("Validation"), version first. */
  onWelcome(welcome: Welcome): Agreement {
    const s = this.settings;
    if (!s.versions.includes(welcome.version)) {
      throw new ProtocolError(
        'UNSUPPORTED_VERSION',
        `server chose version ${welcome.version}, which was not offered`,
      );
    }
    if (welcome.extensions.some((e) => !s.extensions.includes(e))) {
      throw new ProtocolError('PROTOCOL_ERROR', 'server accepted an extension that was not offered');
    }
    checkRange('idle_timeout_ms', welcome.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    checkRange('initial_credit', welcome.initialCredit, MIN_INITIAL_CREDIT, MAX_COUNTER);
    checkRange('max_frame_payload', welcome.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
    checkRange('max_message_size', welcome.maxMessageSize, 1, MAX_COUNTER);
    checkRange(
      'client_idle_timeout_ms',
      welcome.clientIdleTimeoutMs,
      MIN_IDLE_TIMEOUT_MS,
      MAX_IDLE_TIMEOUT_MS,
    );
    if (welcome.applicationProtocol !== '' && !s.applicationProtocols.includes(welcome.applicationProtocol)) {
      throw new ProtocolError('PROTOCOL_ERROR', 'server chose an application protocol that was not offered');
    }
    if (welcome.applicationProtocol === '' && s.requireApplicationProtocol) {
      throw new ProtocolError('NO_APPLICATION_PROTOCOL', 'the server chose no application protocol');
    }
    return this.agree(
      welcome.version,
      welcome.extensions,
      welcome.applicationProtocol,
      welcome.clientIdleTimeoutMs,
      welcome.idleTimeoutMs,
      welcome,
      usableAlternatives(welcome.alternatives ?? []),
    );
  }

  private agree(
    version: number,
    extensions: string[],
    applicationProtocol: string,
    localIdle: number,
    peerIdle: number,
    peer: { initialCredit: number; maxFramePayload: number; maxMessageSize: number; sendQueueLimit?: number },
    alternatives: string[],
  ): Agreement {
    this.negotiated = {
      version,
      extensions,
      applicationProtocol,
      localIdleTimeoutMs: localIdle,
      peerIdleTimeoutMs: peerIdle,
      heartbeatIntervalMs: peerIdle / 3,
      peerMaxFramePayload: peer.maxFramePayload,
      peerMaxMessageBytes: peer.maxMessageSize,
      alternatives,
    };
    return {
      negotiated: this.negotiated,
      peerInitialCredit: peer.initialCredit,
      peerSendQueueLimit: peer.sendQueueLimit,
    };
  }

  /**
   * Whether our side has a usable stream for one more frame (an ERROR): after our preamble. A
   * server sends its preamble only when it answers HELLO; it can still answer a peer that sent a
   * valid preamble with its own preamble and an ERROR frame.
   */
  readyForFrame(preambleReceived: boolean): boolean {
    if (this.preambleSent) return true;
    if (this.settings.role === 'server' && preambleReceived) {
      this.controlQueue.push(PREAMBLE);
      this.preambleSent = true;
      return true;
    }
    return false;
  }
}

function checkRange(field: string, value: number, min: number, max: number): void {
  if (!(value >= min && value <= max)) {
    throw new ProtocolError('PROTOCOL_ERROR', `${field} = ${value} is outside [${min}, ${max}]`);
  }
}
