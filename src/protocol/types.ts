/**
 * Public types of the sans-IO engine: options, events, negotiated values, statistics and the
 * delivery report. See `engine.ts` for the engine itself.
 * @module
 */
import type { HeartwireError } from './errors.js';

/** Which end of the connection an engine is. The client opened the transport. */
export type Role = 'client' | 'server';

/** Connection states (SPEC.md §9.3). States only move forward. */
export type ConnectionState =
  | 'handshaking'
  | 'open'
  | 'going-away'
  | 'closing'
  | 'close-sent'
  | 'close-acked'
  | 'fin-sent'
  | 'peer-closed'
  | 'close-ack-sent'
  | 'closed';

/**
 * A memory budget shared by the connections of a process. A receiver grows its window only
 * after reserving the growth here, and gives reservations back when it shrinks or closes.
 * Pure bookkeeping: no allocation happens here.
 */
export interface MemoryBudget {
  /**
   * Try to reserve `bytes` for a connection that holds `held` bytes already, at time `now`;
   * returns how many were reserved (0 … bytes).
   */
  reserve(bytes: number, held?: number, now?: number): number;
  /** Return `bytes` previously reserved. */
  release(bytes: number): void;
  /** Most bytes one connection may reserve (its window is capped to its initial window plus this). */
  readonly maxShare?: number;
  /** Pin time after which an incomplete message is cut while {@link underPressure} (ms). */
  readonly pinTimeoutMs?: number;
  /** True while memory is short: a reservation was refused for lack of capacity recently. */
  underPressure?(now: number): boolean;
}

/** Options of an engine. Every time is in milliseconds, every size in bytes. */
export interface EngineOptions {
  /** `client` or `server`. */
  role: Role;
  /** Silence this side tolerates before it declares the peer dead. Default 20 000. */
  idleTimeoutMs?: number;
  /** Receive window the connection starts with, and the credit granted in the handshake. Default 65 536. */
  initialWindowBytes?: number;
  /** Largest receive window auto-tuning may grow to. Default 8 MiB (at least `initialWindowBytes`). */
  maxWindowBytes?: number;
  /** Largest DATA frame payload this side accepts. Default 65 536. */
  maxFramePayloadBytes?: number;
  /** Largest message this side accepts. Default 4 MiB; clamped so that it fits `maxWindowBytes`. */
  maxMessageBytes?: number;
  /**
   * Bound of the send queue, which holds every message accepted and not yet reported consumed by
   * the peer (queued, in flight, or delivered and not consumed): `trySend` accepts a message
   * while the queue holds less than this, counting each message's payload plus 64 bytes, so the
   * queue never exceeds it by more than one message. This is all a sender retains for the
   * delivery report, whatever credit the peer grants; it also caps the bytes in flight, so keep
   * it above the path's bandwidth-delay product. Default 4 MiB.
   */
  maxSendQueueBytes?: number;
  /** Bound on the handshake. Default 10 000. */
  handshakeTimeoutMs?: number;
  /** Bound on the termination handshake, from `close()`/CLOSE to closed. Default 30 000. */
  closeTimeoutMs?: number;
  /** Fail with WRITE_STALL when the transport backlog does not shrink for this long. Default: `idleTimeoutMs`. 0 disables. */
  writeStallTimeoutMs?: number;
  /** Report a credit stall (event `credit-stall`) after blocked on credit this long. Default 5 000. */
  creditStallReportMs?: number;
  /** Fail with CREDIT_STALL after blocked on credit this long. Default 0 (never). */
  creditStallTimeoutMs?: number;
  /** Server only: range the client's idle timeout is clamped to. Default [1000, 86 400 000]. */
  clientIdleTimeoutRangeMs?: readonly [number, number];
  /** Protocol versions offered (client) or accepted (server). Default [1]. */
  versions?: readonly number[];
  /** Extensions offered (client) or accepted (server). Default none. */
  extensions?: readonly string[];
  /** Application protocols, most preferred first (client) or supported (server). Default none. */
  applicationProtocols?: readonly string[];
  /**
   * Fail the handshake with `NO_APPLICATION_PROTOCOL` if no application protocol is agreed
   * (server: none of the client's is supported; client: WELCOME names none). Default false.
   */
  requireApplicationProtocol?: boolean;
  /**
   * Server: other endpoints of the service, sent in WELCOME and, unless `goAway()` names others,
   * in GOAWAY (SPEC.md §9.5): at most 8 of `host:port`, `[v6]:port` or `unix:/path`. Default none.
   */
  alternatives?: readonly string[];
  /** Source of randomness in [0, 1) for jitter. Default: a PRNG seeded with `seed`. */
  random?: () => number;
  /** Seed of the default PRNG. Default 1. Adapters pass a random seed. */
  seed?: number;
  /** Shared memory budget for receive windows. Default: none (each connection up to its maximum). */
  budget?: MemoryBudget;
  /**
   * Storage for a received message assembled from pieces (it spanned frames or chunks), of at
   * least 4 KiB: `size` bytes the engine overwrites completely before anyone sees them, so they
   * need not be zeroed. Default `new Uint8Array(size)`; the Node adapter allocates without
   * zero-filling (`Buffer.allocUnsafeSlow`), which saves a pass over every large message.
   */
  allocate?: (size: number) => Uint8Array;
}

/** Values agreed in the handshake (the `open` event, `conn.negotiated`). */
export interface Negotiated {
  /** Protocol version both sides speak (1). */
  version: number;
  /** Extensions both sides enabled (`extensions` option); empty by default. */
  extensions: string[];
  /** The application protocol the server chose from the client's list, or `''` when none. */
  applicationProtocol: string;
  /** This side's idle timeout (after the server's clamp, for a client). */
  localIdleTimeoutMs: number;
  /** The peer's idle timeout: this side sends heartbeats every third of it. */
  peerIdleTimeoutMs: number;
  /** Mean heartbeat period this side uses. */
  heartbeatIntervalMs: number;
  /** Largest DATA payload the peer accepts. */
  peerMaxFramePayload: number;
  /** Largest message the peer accepts. */
  peerMaxMessageBytes: number;
  /**
   * Other endpoints of the service (SPEC.md §9.5): on a client, the usable ones of WELCOME (valid,
   * deduplicated, at most 8; empty when the server named none or predates them); on a server,
   * those it sent.
   */
  alternatives: string[];
}

/**
 * What became of the messages this side sent, at close (SPEC.md §9.4). Messages are numbered
 * 1, 2, … in the order they were accepted (`write()`, `send()`, `trySend()`), and every one of
 * them is in exactly one of three classes, in order:
 *
 * | messages | class | what to do |
 * |---|---|---|
 * | 1 … `consumed` | consumed by the peer's application | nothing: done |
 * | `consumed + 1` … `notProcessedFrom − 1` (`unknown`) | sent, fate unknown: the connection died before the peer reported on them | resend only if processing twice is harmless (idempotent), or ask the peer |
 * | `notProcessedFrom` … `queued` (`notProcessed`) | certainly not processed: never fully sent, or discarded by the peer (its CLOSE_ACK or ERROR said so) | safe to resend |
 *
 * On a clean close every message is consumed: `consumed === queued`, both arrays are empty.
 */
export interface DeliveryReport {
  /** Messages accepted for sending (sequence numbers 1 … `queued`). */
  queued: number;
  /** Messages 1 … `consumed` were consumed by the peer's application (taken with `read()`, `for await`, or settled by a `handle()` handler). */
  consumed: number;
  /** Messages `notProcessedFrom` … `queued` were certainly not processed: safe to retry. `queued + 1` when there are none. */
  notProcessedFrom: number;
  /** Payloads of the messages whose fate is unknown (`consumed + 1` … `notProcessedFrom − 1`), in order. */
  unknown: Uint8Array[];
  /** Payloads of the messages certainly not processed (`notProcessedFrom` … `queued`), in order: resend these. */
  notProcessed: Uint8Array[];
}

/**
 * Why and how a connection closed: the argument of the `close` event (always emitted, once),
 * and the value `conn.closed` and `conn.end()` resolve with on a clean close (on an unclean close
 * they reject with `error`, and the `close` event still carries the whole `CloseInfo`).
 */
export interface CloseInfo {
  /** True when the termination handshake completed (SPEC.md §9.1): both sides consumed everything, nothing was lost. */
  clean: boolean;
  /**
   * Who ended it: `local` (this side: `end()`, `abort()`, or a violation or timeout this side
   * detected), `remote` (the peer: its CLOSE, GOAWAY or ERROR), or `transport` (end of stream,
   * reset or silence outside the protocol).
   */
  initiator: 'local' | 'remote' | 'transport';
  /** The error, when not clean: a {@link HeartwireError} with a stable `code` (a {@link RemoteError} with `remote: true` when the peer reported it). */
  error?: HeartwireError;
  /** What became of this side's messages: consumed, unknown, or certainly not processed. */
  delivery: DeliveryReport;
  /**
   * Messages received from the peer complete that the application never took: discarded at the
   * close, never counted consumed (the peer reports them not processed after a clean close, or
   * unknown). 0 when the application read everything.
   */
  unread: number;
}

/** GOAWAY as received by a client (the `goaway` event): the server is going away. */
export interface GoAwayInfo {
  /** How long the server waits for this client's `end()` before it force-closes, in ms from when it sent GOAWAY. */
  graceMs: number;
  /** Why: a `GoAwayReason` value (`SHUTTING_DOWN`, `RESTARTING`, `OVERLOADED`, …); unknown values are kept as numbers. */
  reason: number;
  /** The server asks not to reconnect before this many ms (0: no wish). */
  retryAfterMs: number;
  /** The server asks this client not to reconnect to it at all (e.g. it was replaced). */
  doNotReconnect: boolean;
  /** A human-readable note from the server (up to 256 UTF-8 bytes; may be empty). */
  message: string;
  /**
   * Where to connect next (SPEC.md §9.5): the usable endpoints the GOAWAY named (valid,
   * deduplicated, at most 8), `host:port`, `[v6]:port` or `unix:/path`; empty when none.
   */
  alternatives: string[];
  /** Local time by which the server will force-close (receipt time + grace). */
  deadline: number;
}

/** Events the engine reports through `pollEvent()`. */
export type EngineEvent =
  /** The handshake completed. */
  | { type: 'open'; negotiated: Negotiated }
  /** Messages became available to `read()`/`take()` (edge: queue went from empty to non-empty). */
  | { type: 'readable' }
  /** `trySend` may accept again after it returned false. */
  | { type: 'writable' }
  /** The state changed. */
  | { type: 'state'; from: ConnectionState; to: ConnectionState }
  /** Client: the server is going away. */
  | { type: 'goaway'; goAway: GoAwayInfo }
  /** Server: the client sent CLOSE; no message will follow those already received. */
  | { type: 'peer-closed' }
  /** A new RTT sample. */
  | { type: 'rtt'; rttMs: number; smoothedRttMs: number }
  /** Queued data has been blocked on the peer's credit for `blockedMs`. */
  | { type: 'credit-stall'; blockedMs: number }
  /** Credit arrived after a reported stall. */
  | { type: 'credit-resumed'; blockedMs: number }
  /** Half-close the transport (send FIN) after writing everything `pollTransmit` returned. */
  | { type: 'end-transport' }
  /** The connection is closed: write what `pollTransmit` still returns, then close the transport. Always the last event. */
  | { type: 'closed'; info: CloseInfo };

/** A message taken with `take()`, to be given back with `release()`. */
export interface InboundMessage {
  /** Sequence number (1, 2, …) of the message in the peer's stream. */
  seq: number;
  /** The message's bytes (a view; see "Received messages are views" in the README). */
  payload: Uint8Array;
}

/** Counters and gauges of one connection. */
export interface EngineStats {
  /** Protocol state (SPEC.md §9.3). */
  state: ConnectionState;
  /** Latest RTT sample in ms (from heartbeat echoes), `undefined` before the first sample. */
  rttMs: number | undefined;
  /** Smoothed RTT in ms, `undefined` before the first sample. */
  smoothedRttMs: number | undefined;
  /** Bytes received and sent on the transport, every frame included. */
  bytesReceived: number;
  bytesSent: number;
  /** Whole messages received from the peer, and this side's messages completely handed to the transport. */
  messagesReceived: number;
  messagesSent: number;
  /** HEARTBEAT frames received and sent. */
  heartbeatsReceived: number;
  heartbeatsSent: number;
  /** Credit bytes the peer still lets us send. */
  sendCredit: number;
  /** Credit bytes we still let the peer send. */
  receiveCredit: number;
  /** Current receive window. */
  receiveWindow: number;
  /** Credit bytes held for unconsumed input (≤ receive window). */
  heldBytes: number;
  /** Payload bytes of messages queued locally, not yet sent. */
  queuedBytes: number;
  /**
   * What the send queue holds against its bound (`maxSendQueueBytes`): every message not yet
   * reported consumed by the peer, its payload plus 64 bytes.
   */
  sendQueueBytes: number;
  /** Total time spent blocked on the peer's credit, in ms. */
  creditBlockedMs: number;
  /** Time of the last byte received and sent, on the clock the engine is driven with (`performance.now()` in the Node transport). */
  lastReceivedAt: number | undefined;
  lastSentAt: number | undefined;
}
