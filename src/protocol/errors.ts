/**
 * Typed errors. Every error heartwire reports is a {@link HeartwireError} with a stable
 * `code` string; wire errors (sent in ERROR frames) also have a numeric `wireCode`.
 * @module
 */

/** Numeric codes carried by ERROR frames (proto `ErrorCode`, SPEC.md §11). */
export const WireErrorCode = {
  PROTOCOL_ERROR: 1,
  FLOW_CONTROL_ERROR: 2,
  FRAME_TOO_LARGE: 3,
  MESSAGE_TOO_LARGE: 4,
  UNSUPPORTED_VERSION: 5,
  NO_APPLICATION_PROTOCOL: 6,
  ENHANCE_YOUR_CALM: 7,
  HEARTBEAT_TIMEOUT: 8,
  HANDSHAKE_TIMEOUT: 9,
  GOAWAY_GRACE_EXPIRED: 10,
  CREDIT_STALL: 11,
  CLOSE_TIMEOUT: 12,
  CANCELLED: 13,
  INTERNAL_ERROR: 14,
  REFUSED: 15,
  LIMIT_REACHED: 16,
} as const;

/** A wire error code name. */
export type WireErrorName = keyof typeof WireErrorCode;

/** Conditions detected locally and never sent on the wire (SPEC.md §11). */
export type LocalErrorName =
  | 'PROTOCOL_MISMATCH'
  | 'UNEXPECTED_EOF'
  | 'TRANSPORT_ERROR'
  | 'WRITE_STALL'
  | 'CONNECTION_CLOSED'
  | 'NOT_OPEN'
  | 'SEND_QUEUE_FULL'
  | 'REMOTE_ERROR'
  | 'CONNECT_TIMEOUT'
  | 'CONNECT_FAILED';

/** Every stable error code heartwire uses. */
export type ErrorCodeName = WireErrorName | LocalErrorName;

const wireNames = new Map<number, WireErrorName>(
  Object.entries(WireErrorCode).map(([name, code]) => [code, name as WireErrorName]),
);

/** Returns the name of a numeric wire code, or `undefined` for an unknown code. */
export function wireErrorName(code: number): WireErrorName | undefined {
  return wireNames.get(code);
}

/** Base class of all heartwire errors. */
export class HeartwireError extends Error {
  /** Stable, machine-readable code, e.g. `HEARTBEAT_TIMEOUT`. */
  readonly code: ErrorCodeName;
  constructor(code: ErrorCodeName, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HeartwireError';
    this.code = code;
  }
  /** The numeric code to put in an ERROR frame, if this error has one. */
  get wireCode(): number | undefined {
    return (WireErrorCode as Record<string, number>)[this.code];
  }
}

/** The peer broke the protocol: malformed frame, wrong state, bad handshake value, flood. */
export class ProtocolError extends HeartwireError {
  constructor(
    code:
      | 'PROTOCOL_ERROR'
      | 'FLOW_CONTROL_ERROR'
      | 'FRAME_TOO_LARGE'
      | 'MESSAGE_TOO_LARGE'
      | 'UNSUPPORTED_VERSION'
      | 'NO_APPLICATION_PROTOCOL'
      | 'ENHANCE_YOUR_CALM'
      | 'PROTOCOL_MISMATCH'
      | 'LIMIT_REACHED',
    message: string,
  ) {
    super(code, message);
    this.name = 'ProtocolError';
  }
}

/** The peer sent more DATA than the credit it was granted. */
export class FlowControlError extends ProtocolError {
  constructor(message: string) {
    super('FLOW_CONTROL_ERROR', message);
    this.name = 'FlowControlError';
  }
}

/** A deadline expired: heartbeat, handshake, close, GOAWAY grace, write or credit stall. */
export class TimeoutError extends HeartwireError {
  constructor(
    code:
      | 'HEARTBEAT_TIMEOUT'
      | 'HANDSHAKE_TIMEOUT'
      | 'CLOSE_TIMEOUT'
      | 'GOAWAY_GRACE_EXPIRED'
      | 'WRITE_STALL'
      | 'CREDIT_STALL',
    message: string,
  ) {
    super(code, message);
    this.name = 'TimeoutError';
  }
}

/**
 * The peer closed the connection with an ERROR frame. `code` is the peer's code name (e.g.
 * `GOAWAY_GRACE_EXPIRED`), or `REMOTE_ERROR` for a code this implementation does not know;
 * `remote` is always true, so a local and a remote condition with the same code can be told apart.
 */
export class RemoteError extends HeartwireError {
  /** Always true: the condition was detected by the peer. */
  readonly remote = true;
  /** The peer's numeric wire code. */
  readonly remoteCode: number;
  constructor(remoteCode: number, message: string) {
    const name = wireErrorName(remoteCode);
    super(
      name ?? 'REMOTE_ERROR',
      `peer closed with ${name ?? `code ${remoteCode}`}${message ? `: ${message}` : ''}`,
    );
    this.name = 'RemoteError';
    this.remoteCode = remoteCode;
  }
}

/** The transport ended or failed outside the protocol (EOF without termination, reset). */
export class TransportError extends HeartwireError {
  constructor(code: 'UNEXPECTED_EOF' | 'TRANSPORT_ERROR', message: string, options?: { cause?: unknown }) {
    super(code, message, options);
    this.name = 'TransportError';
  }
}

/** The application used the connection wrongly (closed, too large, cancelled). */
export class UsageError extends HeartwireError {
  constructor(
    code:
      | 'CONNECTION_CLOSED'
      | 'NOT_OPEN'
      | 'MESSAGE_TOO_LARGE'
      | 'CANCELLED'
      | 'SEND_QUEUE_FULL'
      | 'INTERNAL_ERROR',
    message: string,
  ) {
    super(code, message);
    this.name = 'UsageError';
  }
}

/**
 * Application code failed: a server's connection handler (a `'connection'` listener) or a
 * `handle()` handler threw or rejected with something other than the connection's own close
 * error. `cause` is what it threw. The connection is aborted with this error; the peer receives
 * `INTERNAL_ERROR` with this error's generic message, never the exception's text.
 */
export class HandlerError extends HeartwireError {
  constructor(message: string, cause: unknown) {
    super('INTERNAL_ERROR', message, { cause });
    this.name = 'HandlerError';
  }
}

/** One failed connect attempt: to TCP `host:port` or to the Unix socket `path`. */
export type ConnectAttempt =
  | { host: string; port: number; path?: undefined; error: Error }
  | { path: string; host?: undefined; port?: undefined; error: Error };

/** Every attempt to connect failed; `attempts` lists each address tried and why it failed. */
export class ConnectError extends HeartwireError {
  /** Each address tried, in the order the attempts started. */
  readonly attempts: ConnectAttempt[];
  constructor(code: 'CONNECT_TIMEOUT' | 'CONNECT_FAILED', message: string, attempts: ConnectAttempt[]) {
    super(code, message);
    this.name = 'ConnectError';
    this.attempts = attempts;
  }
}
