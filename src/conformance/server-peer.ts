/**
 * The conformance runner as the server of a client under test (`heartwire conformance client`).
 * @module
 */
import type { Socket } from 'node:net';
import {
  FrameType,
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PREAMBLE,
} from '../protocol/constants.js';
import type { Close, Welcome } from '../protocol/frames.js';
import { encodeCloseAck, encodeGoAway, encodeWelcome } from '../protocol/messages.js';
import { frameName, type Received, WirePeer } from './peer.js';
import { concat, rawFrame } from './wire.js';

/** The server side of one connection from a client under test (`heartwire conformance client`). */
export class ServerPeer extends WirePeer {
  /** When HELLO arrived (ms since the connection was accepted). */
  helloAt: number | undefined;
  /** The client's CLOSE and when it arrived. */
  close: Close | undefined;
  closeAt: number | undefined;
  /** We sent CLOSE_ACK. */
  closeAckSent = false;

  private constructor(socket: Socket) {
    super(socket, 'client');
  }

  /** Wraps an accepted socket. */
  static accept(socket: Socket): ServerPeer {
    socket.allowHalfOpen = true;
    socket.setNoDelay(true);
    return new ServerPeer(socket);
  }

  /** Sends the preamble (or `preamble`) and WELCOME; the connection is open from now on. */
  sendWelcome(welcome: Welcome, preamble: Uint8Array = PREAMBLE): void {
    this.welcome = welcome;
    this.grantedLimit = welcome.initialCredit;
    this.window = welcome.initialCredit;
    this.open = true;
    this.send(concat(preamble, rawFrame(FrameType.WELCOME, 0, encodeWelcome(welcome))));
  }

  /** Sends GOAWAY with `graceMs`. */
  sendGoAway(graceMs: number): void {
    const goAway = {
      graceMs,
      reason: 1,
      consumedMessages: this.messages.length,
      retryAfterMs: 0,
      doNotReconnect: false,
      message: 'conformance',
    };
    this.send(rawFrame(FrameType.GOAWAY, 0, encodeGoAway(goAway)));
  }

  /** Sends CLOSE_ACK with our exact counts, `sentDelta` added to `sent_messages`. */
  sendCloseAck(sentDelta = 0): void {
    this.closeAckSent = true;
    const n = this.messages.length;
    this.send(
      rawFrame(
        FrameType.CLOSE_ACK,
        0,
        encodeCloseAck({
          sentMessages: this.sentMessages + sentDelta,
          consumedMessages: n,
          deliveredMessages: n,
        }),
      ),
    );
    this.stopHeartbeats();
  }

  protected peerIdleTimeoutMs(): number | undefined {
    return this.welcome?.clientIdleTimeoutMs;
  }
  protected peerMaxFramePayload(): number | undefined {
    return this.hello?.maxFramePayload;
  }
  protected ourMaxFramePayload(): number | undefined {
    return this.welcome?.maxFramePayload;
  }
  protected ourMaxMessageSize(): number | undefined {
    return this.welcome?.maxMessageSize;
  }

  protected beforeFrame(r: Received): void {
    if (!this.open) {
      this.violation(
        '§6',
        `${frameName(r.frame)} before WELCOME (the client sends only the preamble and HELLO)`,
      );
    }
    if (this.close !== undefined && r.frame.type === FrameType.DATA) {
      this.violation('§9.1', 'DATA after CLOSE (rule 1)');
    }
  }

  protected onRoleFrame(r: Received): void {
    const { frame } = r;
    switch (frame.type) {
      case FrameType.HELLO: {
        if (this.hello !== undefined) {
          this.violation('§5', 'a second HELLO (first frame only)');
          return;
        }
        if (this.received.length > 0) this.violation('§6', 'HELLO is not the first frame');
        const h = frame.hello;
        this.hello = h;
        this.helloAt = r.at;
        const range = (field: string, value: number, min: number, max: number): void =>
          this.checkRange('HELLO', field, value, min, max);
        if (!h.versions.includes(1))
          this.violation('§6', `HELLO versions [${h.versions.join(', ')}] lack version 1`);
        range('idle_timeout_ms', h.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
        range('initial_credit', h.initialCredit, MIN_INITIAL_CREDIT, Number.MAX_SAFE_INTEGER);
        range('max_frame_payload', h.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
        range('max_message_size', h.maxMessageSize, 1, Number.MAX_SAFE_INTEGER);
        for (const p of h.applicationProtocols) this.checkString(p, 'Hello.application_protocols');
        this.peerLimit = h.initialCredit;
        return;
      }
      case FrameType.CLOSE: {
        this.beforeFrame(r);
        if (this.close !== undefined) this.violation('§9.3', 'a second CLOSE');
        const c = frame.close;
        this.close = c;
        this.closeAt = r.at;
        if (c.sentMessages !== this.messages.length || this.partialFrames > 0) {
          this.violation(
            '§9.1',
            `CLOSE sent_messages = ${c.sentMessages}, but ${this.messages.length} complete messages arrived before it`,
          );
        }
        this.onCredit(0, c.consumedMessages, 'CLOSE');
        return;
      }
      default:
        this.beforeFrame(r);
        this.violation('§5', `${frameName(frame)} from the client (sent by the server only)`);
    }
  }
}
