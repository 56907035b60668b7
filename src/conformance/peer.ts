/**
 * The conformance runner's side of one connection: a raw TCP socket, the bytes it sends built
 * by hand or with the project's codec, and a monitor that decodes everything the peer sends and
 * records every departure from SPEC.md it can see, whatever the case is about.
 * @module
 */
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import {
  EXTENSION_IGNORABLE_FIRST,
  EXTENSION_MUST_UNDERSTAND_FIRST,
  FLAG_ECHO,
  FLAG_END,
  FRAME_HEADER_SIZE,
  FrameType,
  HEARTBEAT_TICKS_PER_MS,
  MAX_FRAME_PAYLOAD,
  MAX_STRING_BYTES,
  MIN_FRAME_PAYLOAD,
} from '../protocol/constants.js';
import { HeartwireError, wireErrorName } from '../protocol/errors.js';
import type { ErrorBody, Frame, Hello, Welcome } from '../protocol/frames.js';
import { FrameReader } from './frame-reader.js';
import { concat, creditFrame, dataCost, dataFrame, heartbeatFrame } from './wire.js';

/** A departure from SPEC.md seen on the wire. */
export interface Violation {
  /** SPEC.md section, e.g. `§7`. */
  section: string;
  message: string;
  /** ms since the connection started. */
  at: number;
}

/** A frame received from the peer. */
export interface Received {
  /** ms since the connection started. */
  at: number;
  frame: Frame;
  /** The frame's type byte, flags and payload length as they were on the wire. */
  type: number;
  flags: number;
  length: number;
}

/** The smallest DATA fragment without END (SPEC.md §5.1). */
const MIN_FRAGMENT = 512;
const U32 = 0x1_0000_0000;
const utf8 = new TextEncoder();

/** Name of a wire error code, or its number. */
export function codeName(code: number): string {
  return wireErrorName(code) ?? `code ${code}`;
}

/** A frame's name for reports. */
export function frameName(frame: Frame): string {
  if (frame.type === 'extension') return `extension 0x${frame.frameType.toString(16)}`;
  for (const [name, code] of Object.entries(FrameType)) if (code === frame.type) return name;
  return String(frame.type);
}

/**
 * One side of a connection to an implementation under test: what both roles share (framing,
 * credit both ways, heartbeats, waiting). `ClientPeer` (client-peer.ts) and `ServerPeer`
 * (server-peer.ts) add the handshake and termination of their role.
 */
export abstract class WirePeer {
  readonly socket: Socket;
  private readonly t0 = performance.now();
  readonly received: Received[] = [];
  readonly violations: Violation[] = [];
  /** Bytes received in all, the preamble included. */
  bytesReceived = 0;
  /** When the first byte arrived (ms since start). */
  firstByteAt: number | undefined;
  /** The peer's preamble was complete and correct. */
  get preambleOk(): boolean {
    return this.reader.preambleOk;
  }
  /** End-of-stream (FIN) from the peer, ms since start. */
  eofAt: number | undefined;
  /** The socket closed (either way), ms since start. */
  closedAt: number | undefined;
  /** A socket error (reset, …). */
  socketError: Error | undefined;
  /** Decoding stopped: the peer's byte stream is invalid. */
  streamBroken = false;

  /** The HELLO of this connection (sent or received). */
  hello: Hello | undefined;
  /** The WELCOME of this connection (sent or received). */
  welcome: Welcome | undefined;
  /** The handshake completed: DATA, CREDIT and HEARTBEAT are allowed. */
  open = false;
  error: ErrorBody | undefined;
  /** Our FIN was sent. */
  finSent = false;

  // Credit, we as the receiver of the peer's DATA.
  /** L: the limit we granted. */
  grantedLimit = 0;
  /** R: credit bytes received. */
  receivedCredit = 0;
  /** C: credit released (messages consumed). */
  releasedCredit = 0;
  /** W: the window we keep granting (the initial credit we announced). */
  window = 0;
  /** Complete messages received (and consumed: the runner consumes at once). */
  messages: Uint8Array[] = [];
  private partial: Uint8Array[] = [];
  /** Frames received of the message in progress. */
  protected get partialFrames(): number {
    return this.partial.length;
  }
  private partialCost = 0;
  /** Consume messages and grant credit automatically (default on). */
  autoCredit = true;

  // Credit, we as the sender.
  /** S: credit bytes we sent. */
  sentCredit = 0;
  /** Complete messages we sent. */
  sentMessages = 0;
  /** P: the highest limit the peer granted. */
  peerLimit = 0;
  /** The highest `Consumed Messages` the peer reported. */
  peerConsumed = 0;

  /** The peer's last heartbeat: its timestamp and when it arrived (ms since start). */
  lastHeartbeat: { timestamp: number; at: number } | undefined;
  /** Timestamps of the heartbeats we sent, with when we sent them (ms since start). */
  readonly sentHeartbeats: { timestamp: number; at: number }[] = [];
  private heartbeatTimer: NodeJS.Timeout | undefined;

  private readonly reader: FrameReader;
  private readonly waiters = new Set<() => void>();

  /** `peerRole`: the role of the implementation under test, at the other end of `socket`. */
  protected constructor(socket: Socket, peerRole: 'client' | 'server') {
    this.socket = socket;
    this.reader = new FrameReader(peerRole);
    socket.on('data', (chunk: Buffer) => this.onBytes(chunk));
    socket.on('end', () => {
      this.eofAt ??= this.now();
      this.notify();
    });
    socket.on('error', (error) => {
      this.socketError ??= error;
      this.notify();
    });
    socket.on('close', () => {
      this.closedAt ??= this.now();
      this.stopHeartbeats();
      this.notify();
    });
  }

  /** ms since the connection started. */
  now(): number {
    return performance.now() - this.t0;
  }

  /** The transport is closed or ended by the peer. */
  get ended(): boolean {
    return this.eofAt !== undefined || this.closedAt !== undefined || this.socketError !== undefined;
  }

  /** Writes bytes as they are. */
  send(bytes: Uint8Array): void {
    if (this.socket.destroyed || this.socket.writableEnded) return;
    this.socket.write(bytes);
  }

  /** Half-closes the transport (FIN). */
  end(): void {
    this.stopHeartbeats();
    this.finSent = true;
    if (!this.socket.destroyed && !this.socket.writableEnded) this.socket.end();
  }

  /** Destroys the socket and stops every timer. */
  destroy(): void {
    this.stopHeartbeats();
    this.socket.destroy();
  }

  /**
   * Resolves with the first value `probe` returns other than `undefined`, checked now and after
   * every event; `undefined` after `timeoutMs`.
   */
  until<T>(probe: () => T | undefined, timeoutMs: number): Promise<T | undefined> {
    const first = probe();
    if (first !== undefined) return Promise.resolve(first);
    return new Promise((resolve) => {
      const check = (): void => {
        const value = probe();
        if (value === undefined) return;
        done(value);
      };
      const done = (value: T | undefined): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(value);
      };
      const timer = setTimeout(() => done(undefined), Math.max(0, timeoutMs));
      this.waiters.add(check);
    });
  }

  /** Resolves after `ms` (events are still processed meanwhile). */
  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  /** The first received frame at index ≥ `from` matching `match`. */
  find(match: (r: Received) => boolean, from = 0): Received | undefined {
    for (let i = from; i < this.received.length; i++) if (match(this.received[i]!)) return this.received[i];
    return undefined;
  }

  /** Resolves when the peer has ended or closed the transport (true), or after `timeoutMs` (false). */
  async waitEnded(timeoutMs: number): Promise<boolean> {
    return (await this.until(() => (this.ended ? true : undefined), timeoutMs)) === true;
  }

  // ------------------------------------------------------------------ sending as a client

  /** Heartbeat fields as this side would send them now. */
  heartbeatFields(now = this.now()): Parameters<typeof heartbeatFrame>[0] {
    const timestamp = Math.floor((performance.now() * HEARTBEAT_TICKS_PER_MS) % U32) >>> 0;
    const last = this.lastHeartbeat;
    return {
      echo: last !== undefined,
      timestamp,
      echoTimestamp: last?.timestamp ?? 0,
      echoDelay: last === undefined ? 0 : Math.max(0, Math.floor((now - last.at) * HEARTBEAT_TICKS_PER_MS)),
      receivedBytes: this.receivedCredit,
      creditLimit: this.grantedLimit,
      consumedMessages: this.messages.length,
    };
  }

  /** Sends one HEARTBEAT now. */
  sendHeartbeat(): void {
    const fields = this.heartbeatFields();
    this.sentHeartbeats.push({ timestamp: fields.timestamp, at: this.now() });
    this.send(heartbeatFrame(fields));
  }

  /** Sends a HEARTBEAT now and then every `intervalMs` (default: the peer's idle timeout / 3). */
  startHeartbeats(intervalMs?: number): void {
    this.stopHeartbeats();
    const interval = intervalMs ?? (this.peerIdleTimeoutMs() ?? 3000) / 3;
    this.sendHeartbeat();
    this.heartbeatTimer = setInterval(() => {
      if (this.ended || this.finSent) this.stopHeartbeats();
      else this.sendHeartbeat();
    }, interval);
  }

  stopHeartbeats(): void {
    if (this.heartbeatTimer !== undefined) clearInterval(this.heartbeatTimer);
    this.heartbeatTimer = undefined;
  }

  /** Sends a CREDIT frame with our current limit and consumed count. */
  sendCredit(): void {
    this.send(creditFrame(this.grantedLimit, this.messages.length));
  }

  /** Accounts for DATA bytes sent by hand (raw frames the peer is expected to accept). */
  noteDataSent(payloadLength: number, end: boolean): void {
    this.sentCredit += dataCost(payloadLength, end);
    if (end) this.sentMessages++;
  }

  /**
   * Sends one message as DATA frames within the peer's credit and `max_frame_payload`, waiting
   * for credit as needed. Resolves true once every frame is written, false if credit did not
   * come within `timeoutMs` (or the connection ended).
   */
  async sendMessage(payload: Uint8Array, timeoutMs: number): Promise<boolean> {
    const maxFrame = this.peerMaxFramePayload() ?? MIN_FRAME_PAYLOAD;
    let offset = 0;
    for (;;) {
      if (this.ended) return false;
      const remaining = payload.length - offset;
      const available = this.peerLimit - this.sentCredit;
      if (remaining <= maxFrame && dataCost(remaining, true) <= available) {
        this.send(dataFrame(payload.subarray(offset), true));
        this.noteDataSent(remaining, true);
        return true;
      }
      const size = Math.min(remaining, maxFrame, available - FRAME_HEADER_SIZE);
      if (remaining > 0 && size >= Math.min(remaining, MIN_FRAGMENT)) {
        this.send(dataFrame(payload.subarray(offset, offset + size), false));
        this.noteDataSent(size, false);
        offset += size;
        continue;
      }
      const limit = this.peerLimit;
      const more = await this.until(
        () => (this.peerLimit > limit || this.ended ? true : undefined),
        timeoutMs,
      );
      if (more === undefined) return false;
    }
  }

  // ------------------------------------------------------------------ receiving and checking

  protected violation(section: string, message: string): void {
    this.violations.push({ section, message, at: Math.round(this.now()) });
  }

  private notify(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  private onBytes(chunk: Buffer): void {
    this.firstByteAt ??= this.now();
    this.bytesReceived += chunk.length;
    if (this.streamBroken) return;
    this.reader.push(chunk);
    try {
      for (;;) {
        const next = this.reader.next(this.ourMaxFramePayload() ?? MAX_FRAME_PAYLOAD);
        if (next === undefined) break;
        const record: Received = { at: this.now(), ...next };
        this.check(record);
        this.received.push(record);
      }
    } catch (error) {
      this.streamBroken = true;
      const code = error instanceof HeartwireError ? error.code : 'INTERNAL_ERROR';
      const section = code === 'FRAME_TOO_LARGE' ? '§4' : code === 'PROTOCOL_MISMATCH' ? '§3' : '§5';
      this.violation(section, `invalid byte stream from the peer (${code}): ${(error as Error).message}`);
    }
    this.notify();
  }

  /** Checks one received frame against SPEC.md and updates the connection state. */
  private check(r: Received): void {
    const { frame, flags, type } = r;
    if (this.error !== undefined)
      this.violation('§11', `${frameName(frame)} after ERROR (ERROR is the last frame)`);
    const defined = type === FrameType.DATA ? FLAG_END : type === FrameType.HEARTBEAT ? FLAG_ECHO : 0;
    if (type < EXTENSION_MUST_UNDERSTAND_FIRST && (flags & ~defined) !== 0) {
      this.violation(
        '§4',
        `${frameName(frame)} with undefined flag bits 0x${flags.toString(16)} (MUST be sent as 0)`,
      );
    }
    switch (frame.type) {
      case FrameType.DATA:
        this.beforeFrame(r);
        return this.onData(frame.payload, frame.end);
      case FrameType.CREDIT:
        this.beforeFrame(r);
        return this.onCredit(frame.creditLimit, frame.consumedMessages, 'CREDIT');
      case FrameType.HEARTBEAT: {
        this.beforeFrame(r);
        if (!frame.echo && (frame.echoTimestamp !== 0 || frame.echoDelay !== 0)) {
          this.violation('§5.3', 'HEARTBEAT without ECHO has non-zero echo fields (MUST be 0)');
        }
        if (frame.receivedBytes > this.sentCredit) {
          this.violation(
            '§5.3',
            `HEARTBEAT reports ${frame.receivedBytes} credit bytes received, but we sent ${this.sentCredit}`,
          );
        }
        this.lastHeartbeat = { timestamp: frame.timestamp, at: r.at };
        return this.onCredit(frame.creditLimit, frame.consumedMessages, 'HEARTBEAT');
      }
      case FrameType.ERROR: {
        const e = frame.error;
        this.error = e;
        this.checkString(e.message, 'Error.message');
        if (e.deliveredMessages > this.sentMessages || e.consumedMessages > e.deliveredMessages) {
          this.violation(
            '§9.4',
            `ERROR consumed/delivered = ${e.consumedMessages}/${e.deliveredMessages} with ${this.sentMessages} messages sent (need consumed ≤ delivered ≤ sent)`,
          );
        }
        if (e.consumedMessages > this.peerConsumed) this.peerConsumed = e.consumedMessages;
        this.stopHeartbeats();
        return;
      }
      case 'extension':
        this.beforeFrame(r);
        if (frame.frameType < EXTENSION_IGNORABLE_FIRST && !this.welcome?.extensions.length) {
          this.violation(
            '§13',
            `must-understand extension frame 0x${frame.frameType.toString(16)} not negotiated`,
          );
        }
        return;
      default:
        return this.onRoleFrame(r);
    }
  }

  /** Role checks on a DATA, CREDIT, HEARTBEAT or extension frame (e.g. not before the handshake). */
  protected abstract beforeFrame(r: Received): void;
  /** A HELLO, WELCOME, GOAWAY, CLOSE or CLOSE_ACK frame. */
  protected abstract onRoleFrame(r: Received): void;
  /** The idle timeout the peer declared (we heartbeat every third of it). */
  protected abstract peerIdleTimeoutMs(): number | undefined;
  /** The largest DATA payload the peer accepts. */
  protected abstract peerMaxFramePayload(): number | undefined;
  /** The largest DATA payload we announced. */
  protected abstract ourMaxFramePayload(): number | undefined;
  /** The largest message we announced. */
  protected abstract ourMaxMessageSize(): number | undefined;

  protected checkString(value: string, field: string): void {
    if (utf8.encode(value).length > MAX_STRING_BYTES)
      this.violation('§5.4', `${field} longer than 256 bytes`);
  }

  /** Checks a handshake field: `value` in [`min`, `max`] (SPEC.md §6). */
  protected checkRange(frame: string, field: string, value: number, min: number, max: number): void {
    if (!(value >= min && value <= max))
      this.violation('§6', `${frame} ${field} = ${value} outside [${min}, ${max}]`);
  }

  private onData(payload: Uint8Array, end: boolean): void {
    if (!this.open) return; // reported as a frame before the handshake
    const cost = dataCost(payload.length, end);
    if (this.receivedCredit + cost > this.grantedLimit) {
      this.violation(
        '§7',
        `rule 1: DATA of cost ${cost} with ${this.receivedCredit} credit bytes received and a limit of ${this.grantedLimit}`,
      );
    }
    this.receivedCredit += cost;
    this.partialCost += cost;
    if (payload.length === 0 && !end) this.violation('§5.1', 'an empty DATA frame without END');
    this.partial.push(payload);
    if (!end) return;
    const frames = this.partial;
    this.partial = [];
    const message = frames.length === 1 ? frames[0]! : concat(...frames);
    let remaining = message.length;
    for (let i = 0; i < frames.length - 1; i++) {
      if (frames[i]!.length < Math.min(remaining, MIN_FRAGMENT)) {
        this.violation(
          '§5.1',
          `a DATA frame without END of ${frames[i]!.length} bytes with ${remaining} bytes of its message left (MIN_FRAGMENT 512)`,
        );
        break;
      }
      remaining -= frames[i]!.length;
    }
    const maxMessage = this.ourMaxMessageSize();
    if (maxMessage !== undefined && message.length > maxMessage) {
      this.violation('§6', `a message of ${message.length} bytes above our max_message_size ${maxMessage}`);
    }
    this.messages.push(message);
    const messageCost = this.partialCost;
    this.partialCost = 0;
    if (this.autoCredit) {
      this.releasedCredit += messageCost;
      const limit = this.releasedCredit + this.window;
      if (limit - this.grantedLimit >= this.window / 4) {
        this.grantedLimit = limit;
        this.sendCredit();
      }
    }
  }

  protected onCredit(limit: number, consumed: number, what: string): void {
    if (consumed > this.sentMessages) {
      this.violation(
        '§5.2',
        `${what} reports ${consumed} of our messages consumed, but we sent ${this.sentMessages}`,
      );
    }
    if (limit > this.peerLimit) this.peerLimit = limit;
    if (consumed > this.peerConsumed) this.peerConsumed = consumed;
  }
}
