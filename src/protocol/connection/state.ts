/**
 * SPEC.md §9.3 as data: for each role and state, the frames accepted, the frames this side sends,
 * the deadlines running, and the moves out of it. `test/protocol/state-table.test.ts` parses the
 * table and the diagrams of §9.3 out of SPEC.md and checks them against these rows.
 *
 * The engine keeps the row of its current state in {@link StateMachine.row}, so a check (may DATA
 * arrive? may a heartbeat go out?) is one field load and one bit test.
 * @module
 */
import { FrameType } from '../constants.js';
import { UsageError } from '../errors.js';
import type { ConnectionState, Role } from '../types.js';
import { Timer, timerBit } from './timers.js';

/**
 * The bit of a frame type in a frame mask: DATA, CREDIT and HEARTBEAT are bits 0–2, the protobuf
 * control types 0x10–0x15 bits 3–8, and bit 9 stands for the ignorable extension types.
 */
export function frameBit(type: number): number {
  return type < FrameType.HELLO ? 1 << type : 1 << (type - FrameType.HELLO + 3);
}
/** Ignorable extension frames (types 0x80–0xFF) in a frame mask: accepted wherever the peer's frames are. */
export const EXTENSION_BIT = 1 << 9;

const DATA = frameBit(FrameType.DATA);
const CREDIT = frameBit(FrameType.CREDIT);
const HEARTBEAT = frameBit(FrameType.HEARTBEAT);
const HELLO = frameBit(FrameType.HELLO);
const WELCOME = frameBit(FrameType.WELCOME);
const GOAWAY = frameBit(FrameType.GOAWAY);
const CLOSE = frameBit(FrameType.CLOSE);
const CLOSE_ACK = frameBit(FrameType.CLOSE_ACK);
const ERROR = frameBit(FrameType.ERROR);

/** How end-of-stream (or a reset) received in a state ends the connection (SPEC.md §9.3). */
export const EndOfStream = {
  /** `UNEXPECTED_EOF` (`TRANSPORT_ERROR` for a reset). */
  ERROR: 0,
  /** A clean close. */
  CLEAN: 1,
  /** Clean if the peer reported every message of ours consumed, else an error. */
  CLEAN_IF_CONSUMED: 2,
} as const;

/** One row of the state table. */
export interface StateRow {
  readonly state: ConnectionState;
  /** Frames accepted from the peer (`frameBit`s; any other is a `PROTOCOL_ERROR`). */
  readonly accepts: number;
  /**
   * Frames this side sends in this state (`frameBit`s). ERROR is not listed: it may be sent in
   * any state where {@link StateRow.sendsError} holds.
   */
  readonly sends: number;
  /** An ERROR can still go out (we have not ended our transmissions). */
  readonly sendsError: boolean;
  /** The application may queue messages (subject to `close()` and `finish()`). */
  readonly acceptsMessages: boolean;
  /** Deadlines that run in this state (`timerBit`s of {@link Timer}). */
  readonly timers: number;
  /** What end-of-stream received means here (`EndOfStream`). */
  readonly endOfStream: number;
  /** States this one moves to besides `closed` (which every state may move to). */
  readonly next: readonly ConnectionState[];
}

/** Deadlines of the implementation (not in §9.3) that run whenever the connection is open for frames. */
const WORK_TIMERS =
  timerBit(Timer.WRITE_STALL) |
  timerBit(Timer.CREDIT_STALL) |
  timerBit(Timer.CREDIT_STALL_REPORT) |
  timerBit(Timer.PIN_CHECK) |
  timerBit(Timer.WINDOW_SHRINK);
const HANDSHAKE_T = timerBit(Timer.HANDSHAKE);
const IDLE_T = timerBit(Timer.IDLE) | timerBit(Timer.HEARTBEAT);
const CLOSE_T = timerBit(Timer.CLOSE);
const GRACE_T = timerBit(Timer.GRACE);

function row(
  state: ConnectionState,
  accepts: number,
  sends: number,
  timers: number,
  next: readonly ConnectionState[],
  options: { acceptsMessages?: boolean; sendsError?: boolean; endOfStream?: number } = {},
): StateRow {
  return {
    state,
    accepts,
    sends,
    sendsError: options.sendsError ?? true,
    acceptsMessages: options.acceptsMessages ?? false,
    timers,
    endOfStream: options.endOfStream ?? EndOfStream.ERROR,
    next,
  };
}

const CLOSED_ROW = row('closed', 0, 0, 0, [], { sendsError: false });

/** Client rows (SPEC.md §9.3, "Client"). */
const CLIENT: Readonly<Partial<Record<ConnectionState, StateRow>>> = {
  handshaking: row('handshaking', WELCOME | ERROR, HELLO, HANDSHAKE_T, ['open']),
  open: row(
    'open',
    DATA | CREDIT | HEARTBEAT | GOAWAY | ERROR | EXTENSION_BIT,
    DATA | CREDIT | HEARTBEAT,
    IDLE_T | WORK_TIMERS,
    ['closing'],
    { acceptsMessages: true },
  ),
  closing: row(
    'closing',
    DATA | CREDIT | HEARTBEAT | GOAWAY | ERROR | EXTENSION_BIT,
    DATA | CREDIT | HEARTBEAT | CLOSE,
    IDLE_T | CLOSE_T | WORK_TIMERS,
    ['close-sent'],
  ),
  'close-sent': row(
    'close-sent',
    DATA | CREDIT | HEARTBEAT | GOAWAY | CLOSE_ACK | ERROR | EXTENSION_BIT,
    CREDIT | HEARTBEAT,
    IDLE_T | CLOSE_T | WORK_TIMERS,
    ['close-acked'],
  ),
  // The server is silent by design after CLOSE_ACK: no idle deadline.
  'close-acked': row(
    'close-acked',
    0,
    CREDIT | HEARTBEAT,
    timerBit(Timer.HEARTBEAT) | CLOSE_T | WORK_TIMERS,
    ['fin-sent'],
  ),
  'fin-sent': row('fin-sent', 0, 0, CLOSE_T | WORK_TIMERS, [], {
    sendsError: false,
    endOfStream: EndOfStream.CLEAN,
  }),
  closed: CLOSED_ROW,
};

/** Server rows (SPEC.md §9.3, "Server"; `handshaking` is §9.3's AWAITING_HELLO). */
const SERVER: Readonly<Partial<Record<ConnectionState, StateRow>>> = {
  handshaking: row('handshaking', HELLO | ERROR, WELCOME, HANDSHAKE_T, ['open']),
  open: row(
    'open',
    DATA | CREDIT | HEARTBEAT | CLOSE | ERROR | EXTENSION_BIT,
    DATA | CREDIT | HEARTBEAT | GOAWAY,
    IDLE_T | GRACE_T | WORK_TIMERS,
    ['going-away', 'peer-closed'],
    { acceptsMessages: true },
  ),
  'going-away': row(
    'going-away',
    DATA | CREDIT | HEARTBEAT | CLOSE | ERROR | EXTENSION_BIT,
    DATA | CREDIT | HEARTBEAT,
    IDLE_T | GRACE_T | WORK_TIMERS,
    ['peer-closed'],
    { acceptsMessages: true },
  ),
  'peer-closed': row(
    'peer-closed',
    CREDIT | HEARTBEAT | ERROR | EXTENSION_BIT,
    DATA | CREDIT | HEARTBEAT | CLOSE_ACK,
    IDLE_T | CLOSE_T | GRACE_T | WORK_TIMERS,
    ['close-ack-sent'],
    { acceptsMessages: true },
  ),
  'close-ack-sent': row(
    'close-ack-sent',
    CREDIT | HEARTBEAT | ERROR | EXTENSION_BIT,
    0,
    timerBit(Timer.IDLE) | CLOSE_T | GRACE_T | WORK_TIMERS,
    [],
    { sendsError: false, endOfStream: EndOfStream.CLEAN_IF_CONSUMED },
  ),
  closed: CLOSED_ROW,
};

/** The state table of a role. */
export function stateTable(role: Role): Readonly<Partial<Record<ConnectionState, StateRow>>> {
  return role === 'client' ? CLIENT : SERVER;
}

/** The state of one connection, with its row cached. */
export class StateMachine {
  private readonly table: Readonly<Partial<Record<ConnectionState, StateRow>>>;
  /** The row of the current state. */
  row: StateRow;

  /**
   * @param moved called after each move (`Lifecycle.moved`: updates what the parts cache from
   * the row and emits the `state` event)
   */
  constructor(
    role: Role,
    private readonly moved: (from: ConnectionState, to: ConnectionState) => void = () => {},
  ) {
    this.table = stateTable(role);
    this.row = this.table.handshaking!;
  }

  get state(): ConnectionState {
    return this.row.state;
  }

  /**
   * Move to `to`, which must be a move of the table (or `closed`). Returns false when already
   * there. Throws `INTERNAL_ERROR` on a move the table does not have: the engine only makes
   * the moves of SPEC.md §9.3.
   */
  move(to: ConnectionState): boolean {
    const from = this.row;
    if (from.state === to) return false;
    if (to !== 'closed' && !from.next.includes(to)) {
      throw new UsageError('INTERNAL_ERROR', `no move from ${from.state} to ${to} in the state table`);
    }
    this.row = this.table[to]!;
    this.moved(from.state, to);
    return true;
  }
}
