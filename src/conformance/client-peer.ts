/**
 * The conformance runner as the client of a server under test (`heartwire conformance`).
 * @module
 */
import net from 'node:net';
import {
  FrameType,
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PREAMBLE,
} from '../protocol/constants.js';
import type { GoAway, Hello, Welcome } from '../protocol/frames.js';
import { frameName, type Received, WirePeer } from './peer.js';
import { closeFrame, concat, helloFrame } from './wire.js';

/** The client side of one connection to a server under test. */
export class ClientPeer extends WirePeer {
  goAway: GoAway | undefined;
  closeAckAt: number | undefined;
  closeSent = false;
  /** After CLOSE_ACK: send the final CREDIT and FIN (default on). */
  finishOnCloseAck = true;

  private constructor(socket: net.Socket) {
    super(socket, 'server');
  }

  /** Connects to `host:port` within `timeoutMs`. */
  static connect(host: string, port: number, timeoutMs: number): Promise<ClientPeer> {
    return new Promise((resolve, reject) => {
      const socket = net.connect({ host, port, allowHalfOpen: true, noDelay: true });
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new Error(`TCP connect to ${host}:${port} did not complete in ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new ClientPeer(socket));
      });
      socket.once('error', (error) => {
        clearTimeout(timer);
        reject(new Error(`TCP connect to ${host}:${port} failed: ${error.message}`));
      });
    });
  }

  /** Sends the preamble and HELLO (as given); records what we announced. */
  sendHello(hello: Hello, preamble: Uint8Array = PREAMBLE): void {
    this.hello = hello;
    this.grantedLimit = hello.initialCredit;
    this.window = hello.initialCredit;
    this.send(concat(preamble, helloFrame(hello)));
  }

  /** Sends CLOSE with our exact counts. */
  sendClose(): void {
    this.closeSent = true;
    this.send(closeFrame({ sentMessages: this.sentMessages, consumedMessages: this.messages.length }));
  }

  protected peerIdleTimeoutMs(): number | undefined {
    return this.welcome?.idleTimeoutMs;
  }
  protected peerMaxFramePayload(): number | undefined {
    return this.welcome?.maxFramePayload;
  }
  protected ourMaxFramePayload(): number | undefined {
    return this.hello?.maxFramePayload;
  }
  protected ourMaxMessageSize(): number | undefined {
    return this.hello?.maxMessageSize;
  }

  protected beforeFrame(r: Received): void {
    if (this.closeAckAt !== undefined)
      this.violation('§9.1', `${frameName(r.frame)} after CLOSE_ACK (CLOSE_ACK is the server's last frame)`);
    if (!this.open)
      this.violation(
        '§6',
        `${frameName(r.frame)} before WELCOME (the server's first frame is WELCOME or ERROR)`,
      );
  }

  protected onRoleFrame(r: Received): void {
    const { frame } = r;
    if (frame.type !== FrameType.WELCOME) this.beforeFrame(r);
    switch (frame.type) {
      case FrameType.WELCOME:
        return this.onWelcome(frame.welcome);
      case FrameType.GOAWAY:
        if (this.goAway !== undefined) this.violation('§9.2', 'a second GOAWAY (a server sends at most one)');
        this.goAway = frame.goAway;
        this.checkString(frame.goAway.message, 'GoAway.message');
        return this.onCredit(0, frame.goAway.consumedMessages, 'GOAWAY');
      case FrameType.CLOSE_ACK: {
        const ack = frame.closeAck;
        if (!this.closeSent) this.violation('§9.3', 'CLOSE_ACK before our CLOSE');
        if (ack.sentMessages !== this.messages.length || this.partialFrames > 0) {
          this.violation(
            '§9.1',
            `CLOSE_ACK sent_messages = ${ack.sentMessages}, but ${this.messages.length} complete messages arrived before it`,
          );
        }
        if (ack.consumedMessages !== this.sentMessages || ack.deliveredMessages !== this.sentMessages) {
          this.violation(
            '§9.1',
            `CLOSE_ACK consumed/delivered = ${ack.consumedMessages}/${ack.deliveredMessages}, expected ${this.sentMessages}/${this.sentMessages} (after CLOSE the server consumes every message before CLOSE_ACK)`,
          );
        }
        this.onCredit(0, Math.min(ack.consumedMessages, this.sentMessages), 'CLOSE_ACK');
        this.closeAckAt = r.at;
        if (this.finishOnCloseAck) {
          this.sendCredit();
          this.end();
        }
        return;
      }
      default:
        this.violation('§5', `${frameName(frame)} from the server (sent by the client only)`);
    }
  }

  private onWelcome(w: Welcome): void {
    if (this.welcome !== undefined) {
      this.violation('§5', 'a second WELCOME (first frame only)');
      return;
    }
    this.welcome = w;
    const hello = this.hello;
    if (hello === undefined) {
      this.violation('§3', 'WELCOME before our HELLO');
      return;
    }
    const range = (field: string, value: number, min: number, max: number): void =>
      this.checkRange('WELCOME', field, value, min, max);
    if (!hello.versions.includes(w.version))
      this.violation('§6', `WELCOME version ${w.version} was not offered`);
    range('idle_timeout_ms', w.idleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    range('client_idle_timeout_ms', w.clientIdleTimeoutMs, MIN_IDLE_TIMEOUT_MS, MAX_IDLE_TIMEOUT_MS);
    range('initial_credit', w.initialCredit, MIN_INITIAL_CREDIT, Number.MAX_SAFE_INTEGER);
    range('max_frame_payload', w.maxFramePayload, MIN_FRAME_PAYLOAD, MAX_FRAME_PAYLOAD);
    range('max_message_size', w.maxMessageSize, 1, Number.MAX_SAFE_INTEGER);
    for (const e of w.extensions)
      if (!hello.extensions.includes(e))
        this.violation('§6', `WELCOME accepts extension '${e}', which was not offered`);
    if (w.applicationProtocol !== '' && !hello.applicationProtocols.includes(w.applicationProtocol))
      this.violation('§6', `WELCOME application_protocol '${w.applicationProtocol}' was not offered`);
    this.checkString(w.applicationProtocol, 'Welcome.application_protocol');
    this.peerLimit = w.initialCredit;
    this.open = true;
  }
}
