/**
 * Decoded frame shapes (SPEC.md §5). Counters are plain numbers below 2^53.
 * @module
 */
import type { FrameType } from './constants.js';

/** HELLO payload (proto `heartwire.v1.Hello`). */
export interface Hello {
  versions: number[];
  extensions: string[];
  idleTimeoutMs: number;
  initialCredit: number;
  maxFramePayload: number;
  maxMessageSize: number;
  applicationProtocols: string[];
  /** Optional (0 or absent: not stated): see SPEC.md §6, `send_queue_limit`. */
  sendQueueLimit?: number;
}

/** WELCOME payload (proto `heartwire.v1.Welcome`). */
export interface Welcome {
  version: number;
  extensions: string[];
  idleTimeoutMs: number;
  initialCredit: number;
  maxFramePayload: number;
  maxMessageSize: number;
  clientIdleTimeoutMs: number;
  applicationProtocol: string;
  /** Optional (0 or absent: not stated): see SPEC.md §6, `send_queue_limit`. */
  sendQueueLimit?: number;
  /** Other endpoints of the service (SPEC.md §9.5). Absent: none; decoded frames always carry it, unfiltered. */
  alternatives?: string[];
}

/** GOAWAY reasons (proto `GoAwayReason`). */
export const GoAwayReason = {
  UNSPECIFIED: 0,
  SHUTTING_DOWN: 1,
  RESTARTING: 2,
  OVERLOADED: 3,
  REPLACED: 4,
  MAX_AGE: 5,
} as const;

/** GOAWAY payload (proto `heartwire.v1.GoAway`). */
export interface GoAway {
  graceMs: number;
  /** A {@link GoAwayReason} value; unknown values are kept as numbers. */
  reason: number;
  consumedMessages: number;
  retryAfterMs: number;
  doNotReconnect: boolean;
  message: string;
  /** Where to connect next (SPEC.md §9.5). Absent: none; decoded frames always carry it, unfiltered. */
  alternatives?: string[];
}

/** CLOSE payload (proto `heartwire.v1.Close`). */
export interface Close {
  sentMessages: number;
  consumedMessages: number;
}

/** CLOSE_ACK payload (proto `heartwire.v1.CloseAck`). */
export interface CloseAck {
  sentMessages: number;
  consumedMessages: number;
  deliveredMessages: number;
}

/** ERROR payload (proto `heartwire.v1.Error`). */
export interface ErrorBody {
  /** Numeric wire code (see `WireErrorCode`); unknown codes are kept. */
  code: number;
  message: string;
  consumedMessages: number;
  deliveredMessages: number;
}

/** A DATA frame. */
export interface DataFrame {
  type: typeof FrameType.DATA;
  /** END flag: last frame of its message. */
  end: boolean;
  payload: Uint8Array;
}

/** A CREDIT frame. */
export interface CreditFrame {
  type: typeof FrameType.CREDIT;
  creditLimit: number;
  consumedMessages: number;
}

/** A HEARTBEAT frame. */
export interface HeartbeatFrame {
  type: typeof FrameType.HEARTBEAT;
  /** ECHO flag: `echoTimestamp` and `echoDelay` are valid. */
  echo: boolean;
  timestamp: number;
  echoTimestamp: number;
  echoDelay: number;
  receivedBytes: number;
  creditLimit: number;
  consumedMessages: number;
}

export interface HelloFrame {
  type: typeof FrameType.HELLO;
  hello: Hello;
}
export interface WelcomeFrame {
  type: typeof FrameType.WELCOME;
  welcome: Welcome;
}
export interface GoAwayFrame {
  type: typeof FrameType.GOAWAY;
  goAway: GoAway;
}
export interface CloseFrame {
  type: typeof FrameType.CLOSE;
  close: Close;
}
export interface CloseAckFrame {
  type: typeof FrameType.CLOSE_ACK;
  closeAck: CloseAck;
}
export interface ErrorFrame {
  type: typeof FrameType.ERROR;
  error: ErrorBody;
}
/** An extension frame (types 0x40–0xFF), passed through undecoded. */
export interface ExtensionFrame {
  type: 'extension';
  frameType: number;
  flags: number;
  payload: Uint8Array;
}

/** Any decoded frame. */
export type Frame =
  | DataFrame
  | CreditFrame
  | HeartbeatFrame
  | HelloFrame
  | WelcomeFrame
  | GoAwayFrame
  | CloseFrame
  | CloseAckFrame
  | ErrorFrame
  | ExtensionFrame;

/** Any frame other than DATA. */
export type ControlFrame = Exclude<Frame, DataFrame>;
