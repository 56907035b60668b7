/**
 * What a `SimulatedNetwork` keeps per side and per direction, and the context it gives each side's
 * application.
 * @module
 */
import type { CloseInfo, EngineEvent } from '../protocol/types.js';
import type { SimAppContext, SimApplication } from './application.js';
import type { EngineDriver, SimEngine } from './engine-driver.js';
import { checkPathParams } from './path.js';
import type { CrashMode, PathDirection, PathParams } from './path.js';
import type { SimulatedNetwork } from './simnet.js';
import type { DeliveredMessage, RecordedEvent, RejectedCall, Side, SimSide } from './simnet-types.js';

/** What the network knows of one side: the record a test reads ({@link SimSide}) and its sockets' state. */
export class SideState implements SimSide {
  events: RecordedEvent[] = [];
  delivered: { -readonly [K in keyof DeliveredMessage]: DeliveredMessage[K] }[] = [];
  sent: Uint8Array[] = [];
  outbox: Uint8Array[] = [];
  outboxBytes = 0;
  rejected: RejectedCall[] = [];
  sendCalls = 0;
  closedInfo: CloseInfo | undefined;
  closedAt: number | undefined;
  crashed: { at: number; mode: CrashMode } | undefined;
  eofAt: number | undefined;
  resetAt: number | undefined;
  consumerPaused = false;
  finishedAt: number | undefined;

  /** The engine emitted `closed`. */
  engineClosed = false;
  /** The socket is fully closed locally (by the engine or a crash): incoming data is answered with RST. */
  socketClosed = false;
  /** The socket was reset: nothing more is sent or received. */
  destroyed = false;
  /** This side's kernel sent a reset. */
  rstSent = false;
  /** The engine asked for a half-close; it must not transmit any more. */
  writeShut = false;
  peerClosed = false;
  readablePending = false;
  taken = new Set<number>();
  lastSeq = 0;
  context: SimAppContext | undefined;
  /** The adapter loop driving the engine (set by the network). */
  driver!: EngineDriver;

  constructor(
    readonly side: Side,
    readonly engine: SimEngine,
    readonly app: SimApplication,
  ) {}

  get active(): boolean {
    return !this.crashed && !this.engineClosed;
  }
}

/** One direction of the connection, named by its sender. */
export interface Path {
  readonly dir: PathDirection;
  readonly from: SideState;
  readonly to: SideState;
  bytesDelivered: number;
}

export function checkParams(p: PathParams): PathParams {
  try {
    return checkPathParams(p);
  } catch {
    throw new RangeError(`SimulatedNetwork: invalid path parameters ${JSON.stringify(p)}`);
  }
}

export function resetError(): Error {
  return Object.assign(new Error('connection reset by peer (simulated)'), { code: 'ECONNRESET' });
}

export function describeEvent(e: EngineEvent): string {
  switch (e.type) {
    case 'state':
      return `state ${e.from} -> ${e.to}`;
    case 'closed': {
      const { clean, initiator, error } = e.info;
      return `closed clean=${clean} initiator=${initiator}${error ? ` error=${error.code}` : ''}`;
    }
    case 'rtt':
      return `rtt ${e.rttMs} (smoothed ${e.smoothedRttMs})`;
    case 'credit-stall':
    case 'credit-resumed':
      return `${e.type} after ${e.blockedMs} ms`;
    case 'goaway':
      return `goaway grace=${e.goAway.graceMs}`;
    default:
      return e.type;
  }
}

/** The context of `s`'s application: its reads, takes and releases are recorded, then the engine is driven (`pump`). */
export function sideContext(
  s: SideState,
  net: SimulatedNetwork,
  pump: () => void,
  log: (text: string) => void,
): SimAppContext {
  const record = (seq: number, payload: Uint8Array, consumed: boolean) => {
    s.lastSeq = seq;
    s.delivered.push({ seq, payload, at: net.now, consumedAt: consumed ? net.now : undefined });
  };
  const ctx: SimAppContext = {
    side: s.side,
    engine: s.engine,
    network: net,
    get now() {
      return net.now;
    },
    get paused() {
      return s.consumerPaused;
    },
    read() {
      if (s.crashed) return undefined;
      const payload = s.engine.read(net.now);
      if (payload === undefined) s.readablePending = false;
      else record(s.lastSeq + 1, payload, true);
      pump();
      return payload;
    },
    take() {
      if (s.crashed) return undefined;
      const message = s.engine.take(net.now);
      if (message === undefined) s.readablePending = false;
      else {
        record(message.seq, message.payload, false);
        s.taken.add(message.seq);
      }
      pump();
      return message;
    },
    release(seq) {
      if (s.crashed) return;
      s.engine.release(net.now, seq);
      s.taken.delete(seq);
      const m = s.delivered.findLast((d) => d.seq === seq);
      if (m) m.consumedAt ??= net.now;
      pump();
    },
    readAll() {
      let n = 0;
      while (ctx.read() !== undefined) n++;
      if (n > 0) log(`app read ${n} message(s), last seq ${s.lastSeq}`);
      return n;
    },
    send(payload) {
      return net.send(s.side, payload);
    },
  };
  return ctx;
}
