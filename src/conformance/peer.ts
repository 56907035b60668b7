/**
 * The conformance runner's side of one connection: a raw TCP socket, the bytes it sends built
 * by hand or with the project's codec, and a monitor that decodes everything the peer sends and
 * records every departure from SPEC.md it can see, whatever the case is about.
 * @module
 */
import net from 'node:net';
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
  MAX_CONTROL_PAYLOAD,
  MAX_FRAME_PAYLOAD,
  MAX_IDLE_TIMEOUT_MS,
  MAX_STRING_BYTES,
  MIN_FRAME_PAYLOAD,
  MIN_IDLE_TIMEOUT_MS,
  MIN_INITIAL_CREDIT,
  PREAMBLE,
} from '../protocol/constants.js';
import { HeartwireError, wireErrorName } from '../protocol/errors.js';
import type { Close, ErrorBody, Frame, GoAway, Hello, Welcome } from '../protocol/frames.js';
import { encodeCloseAck, encodeGoAway, encodeWelcome } from '../protocol/messages.js';
import {
  closeFrame,
  concat,
  creditFrame,
  dataCost,
  dataFrame,
  decodeOne,
  heartbeatFrame,
  helloFrame,
  rawFrame,
} from './wire.js';

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
 * credit both ways, heartbeats, waiting). {@link ClientPeer} and {@link ServerPeer} add the
 * handshake and termination of their role.
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
  preambleOk = false;
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

  private chunks: Uint8Array[] = [];
  private buffered = 0;
  private readonly waiters = new Set<() => void>();

  protected constructor(socket: Socket) {
    this.socket = socket;
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
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    try {
      this.parse();
    } catch (error) {
      this.streamBroken = true;
      const code = error instanceof HeartwireError ? error.code : 'INTERNAL_ERROR';
      const section = code === 'FRAME_TOO_LARGE' ? '§4' : code === 'PROTOCOL_MISMATCH' ? '§3' : '§5';
      this.violation(section, `invalid byte stream from the peer (${code}): ${(error as Error).message}`);
    }
    this.notify();
  }

  private take(n: number): Uint8Array {
    const all = this.chunks.length === 1 ? this.chunks[0]! : concat(...this.chunks);
    const out = all.subarray(0, n);
    const rest = all.subarray(n);
    this.chunks = rest.length > 0 ? [rest] : [];
    this.buffered -= n;
    return out;
  }

  private peek(n: number): Uint8Array {
    if (this.chunks.length > 1) this.chunks = [concat(...this.chunks)];
    return this.chunks[0]!.subarray(0, n);
  }

  private parse(): void {
    if (!this.preambleOk) {
      if (this.buffered < PREAMBLE.length) {
        const got = this.peek(this.buffered);
        if (got.some((b, i) => b !== PREAMBLE[i])) throw new BadPreamble(got);
        return;
      }
      const got = this.take(PREAMBLE.length);
      if (got.some((b, i) => b !== PREAMBLE[i])) throw new BadPreamble(got);
      this.preambleOk = true;
    }
    while (this.buffered >= FRAME_HEADER_SIZE) {
      const head = this.peek(FRAME_HEADER_SIZE);
      const length = new DataView(head.buffer, head.byteOffset, 6).getUint32(0);
      const type = head[4]!;
      const flags = head[5]!;
      const ourMax = this.ourMaxFramePayload() ?? MAX_FRAME_PAYLOAD;
      if (length > Math.max(ourMax, MAX_CONTROL_PAYLOAD)) {
        throw new HeartwireError(
          'FRAME_TOO_LARGE',
          `frame type 0x${type.toString(16)} of ${length} bytes (our max_frame_payload ${ourMax})`,
        );
      }
      if (this.buffered < FRAME_HEADER_SIZE + length) return;
      const bytes = this.take(FRAME_HEADER_SIZE + length);
      const frame = decodeOne(
        bytes.slice(),
        Math.min(Math.max(ourMax, MIN_FRAME_PAYLOAD), MAX_FRAME_PAYLOAD),
      );
      const record: Received = { at: this.now(), frame, type, flags, length };
      this.check(record);
      this.received.push(record);
    }
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
    if (this.hello !== undefined && message.length > this.hello.maxMessageSize) {
      this.violation(
        '§6',
        `a message of ${message.length} bytes above our max_message_size ${this.hello.maxMessageSize}`,
      );
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

/** The client side of one connection to a server under test. */
export class ClientPeer extends WirePeer {
  goAway: GoAway | undefined;
  closeAckAt: number | undefined;
  closeSent = false;
  /** After CLOSE_ACK: send the final CREDIT and FIN (default on). */
  finishOnCloseAck = true;

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
    const range = (field: string, value: number, min: number, max: number): void => {
      if (!(value >= min && value <= max))
        this.violation('§6', `WELCOME ${field} = ${value} outside [${min}, ${max}]`);
    };
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

class BadPreamble extends HeartwireError {
  constructor(got: Uint8Array) {
    super(
      'PROTOCOL_MISMATCH',
      `the server's preamble starts ${Array.from(got, (b) => b.toString(16).padStart(2, '0')).join(' ')}`,
    );
  }
}

/** The server side of one connection from a client under test (`heartwire conformance client`). */
export class ServerPeer extends WirePeer {
  /** When HELLO arrived (ms since the connection was accepted). */
  helloAt: number | undefined;
  /** The client's CLOSE and when it arrived. */
  close: Close | undefined;
  closeAt: number | undefined;
  /** We sent CLOSE_ACK. */
  closeAckSent = false;

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
        const range = (field: string, value: number, min: number, max: number): void => {
          if (!(value >= min && value <= max))
            this.violation('§6', `HELLO ${field} = ${value} outside [${min}, ${max}]`);
        };
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
