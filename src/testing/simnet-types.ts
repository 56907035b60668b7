/**
 * The public types of a `SimulatedNetwork`: its options and what it lets a test observe (each
 * side's record, each path's state).
 * @module
 */
import type { HeartwireError } from '../protocol/errors.js';
import type { CloseInfo, EngineEvent, Role } from '../protocol/types.js';
import type { VirtualClock } from './clock.js';
import type { SimApplication } from './application.js';
import type { SimEngine } from './engine-driver.js';
import type { CrashMode, PathParams } from './path.js';

/** One end of the simulated connection. */
export type Side = Role;

/** Outcome of {@link SimulatedNetwork.send}. */
export type SendResult = 'sent' | 'queued' | 'rejected';

/** A message handed to a side's application. */
export interface DeliveredMessage {
  /** Sequence number in the peer's stream (1, 2, …). */
  readonly seq: number;
  readonly payload: Uint8Array;
  /** Time the application read or took it. */
  readonly at: number;
  /** Time it was consumed (`read`, or `release` after `take`); `undefined` while held. */
  readonly consumedAt: number | undefined;
}

/** An engine event with the time it was polled. */
export interface RecordedEvent {
  readonly at: number;
  readonly event: EngineEvent;
}

/** A call the engine refused with a {@link HeartwireError} (or that the simulation refused). */
export interface RejectedCall {
  readonly at: number;
  /** What was attempted, e.g. `send 12 B`, `close`. */
  readonly action: string;
  /** The payload, for a rejected send. */
  readonly payload?: Uint8Array;
  readonly error: HeartwireError | Error;
}

/** What the simulation observed at one side. Read-only view for invariant checks. */
export interface SimSide {
  readonly side: Side;
  readonly engine: SimEngine;
  /** Every event the engine emitted, in order. */
  readonly events: readonly RecordedEvent[];
  /** Every message the application read or took, in order. */
  readonly delivered: readonly DeliveredMessage[];
  /** Payloads accepted by `trySend`, in order: `sent[i]` is message `i + 1`. */
  readonly sent: readonly Uint8Array[];
  /** Payloads waiting in the simulation's outbox for `writable`. */
  readonly outbox: readonly Uint8Array[];
  /** Calls the engine refused (for example `trySend` after close). */
  readonly rejected: readonly RejectedCall[];
  /** Number of `send` calls made for this side (accepted, queued or rejected). */
  readonly sendCalls: number;
  /** The `closed` event's info, once the engine has closed. */
  readonly closedInfo: CloseInfo | undefined;
  /** Time of the `closed` event. */
  readonly closedAt: number | undefined;
  /** Set when the side crashed. */
  readonly crashed: { readonly at: number; readonly mode: CrashMode } | undefined;
  /** Time end-of-stream (FIN) was delivered to the engine. */
  readonly eofAt: number | undefined;
  /** Time a reset was delivered to the engine (`transportFailed`). */
  readonly resetAt: number | undefined;
  /** Whether the built-in application has stopped reading. */
  readonly consumerPaused: boolean;
  /** Server: time `finish()` was called (automatically or not). */
  readonly finishedAt: number | undefined;
}

/** State of one direction of the path, named by its sending side. */
export interface PathState extends PathParams {
  readonly from: Side;
  readonly partitioned: boolean;
  /** Bytes in the sender's kernel send buffer, not yet sent. */
  readonly bufferedBytes: number;
  /** Segments (data, FIN, reset) that left the sender and have not been delivered. */
  readonly inFlight: number;
  /** Total bytes taken from the sender's engine. */
  readonly bytesWritten: number;
  /** Total bytes delivered to the receiver's engine. */
  readonly bytesDelivered: number;
  readonly finSent: boolean;
}

/** Options of a {@link SimulatedNetwork}. */
export interface SimulatedNetworkOptions {
  /** The client engine (role `client`). */
  client: SimEngine;
  /** The server engine (role `server`). */
  server: SimEngine;
  /** Clock to run on. Default: a new {@link VirtualClock} at 0. */
  clock?: VirtualClock;
  /** Seed of the segmentation PRNG. Default 1. */
  seed?: number;
  /** Parameters of both directions (over {@link DEFAULT_PATH_PARAMS}). */
  path?: Partial<PathParams>;
  /** Parameters of the client→server direction (over `path`). */
  clientToServer?: Partial<PathParams>;
  /** Parameters of the server→client direction (over `path`). */
  serverToClient?: Partial<PathParams>;
  /** Applications replacing {@link defaultApplication}, per side. */
  applications?: { client?: SimApplication; server?: SimApplication };
  /** {@link SimulatedNetwork.send} throws when a side's outbox would exceed this many bytes. Default 16 MiB. */
  maxOutboxBytes?: number;
  /**
   * Server: call `finish()` automatically after `peer-closed`, once the outbox is empty and every
   * received message has been consumed. Default true.
   */
  autoFinish?: boolean;
  /** Keep at most about this many trace lines (the oldest are dropped). Default 20 000. */
  maxTraceLines?: number;
}
